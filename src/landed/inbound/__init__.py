"""Inbound I/O: receiving the mail that comes back (bounce domain SMTP, IMAP)."""

from __future__ import annotations
