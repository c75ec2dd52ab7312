"""``landed user``: dashboard logins. (being written)"""

from __future__ import annotations
