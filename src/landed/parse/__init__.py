"""Bounce, DSN, MDN, ARF and auto-reply parsing: bytes in, a report out.

Pure: no database, no network, no clock. ``parse`` never raises; a message it
cannot make sense of gives a ``not-bounce`` report (reason ``undefined``).

    >>> report = parse(raw_bytes, envelope_rcpt="bounces+TOKEN@bounce.example.com")
    >>> report.kind, [(r.recipient, r.reason, r.status, r.hard) for r in report.recipients]
"""

from __future__ import annotations

from landed.parse.pipeline import parse
from landed.parse.reasons import REASONS
from landed.parse.report import Kind, RecipientReport, Report, Token

__all__ = ["REASONS", "Kind", "RecipientReport", "Report", "Token", "parse"]
