"""``landed api`` and ``landed token``: the HTTP service and its API tokens. (being written)"""

from __future__ import annotations
