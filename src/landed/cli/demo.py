"""``landed demo``: landed with a sandbox mail world. (being written)"""

from __future__ import annotations
