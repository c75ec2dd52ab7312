"""Outbound I/O: handing one delivery's message to the mail world."""

from __future__ import annotations

from landed.transport.base import Reply, SendResult, Transport

__all__ = ["Reply", "SendResult", "Transport"]
