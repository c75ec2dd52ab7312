"""What a detector hands back before classification: mutable, per recipient.

Detectors (:mod:`~landed.parse.dsn`, the dialects in
:mod:`~landed.parse.nonstandard`, ...) only *read*: they find recipients and
copy out what the message says about each (status field, diagnostic text,
remote host, the SMTP command that failed). Deciding the reason, the final
status and hard/soft is :mod:`~landed.parse.classify`'s job, done the same way
for every dialect.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Detected", "Draft"]


@dataclass(slots=True)
class Draft:
    """One recipient as a detector read it."""

    recipient: str = ""
    #: Original-Recipient, or the address an alias expanded from.
    original_recipient: str = ""
    action: str = ""
    #: Status field (or the code a dialect reads from its own wording).
    status: str = ""
    #: Diagnostic text: the remote server's reply or the MTA's explanation.
    diagnosis: str = ""
    #: Diagnostic-Code type ("SMTP", "X-Unix", "X-Postfix"), uppercased.
    spec: str = ""
    #: The SMTP command the failure answered (RCPT, DATA, ...), if known.
    command: str = ""
    #: A reason the dialect is sure of (its own wording says so); "" if not.
    reason: str = ""
    remote_mta: str = ""
    reporting_mta: str = ""
    reply_code: str = ""
    date: str = ""
    feedback_type: str = ""


@dataclass(slots=True)
class Detected:
    """A detector's reading of a whole message."""

    #: Which detector read it ("rfc3464", "postfix", "arf", ...).
    dialect: str
    drafts: list[Draft] = field(default_factory=list)
    #: The returned message's header block (or whole returned message), if any.
    returned: str = ""
    #: Kind decided by the detector ("feedback", "autoreply", "mdn"); "" = from the records.
    kind: str = ""
    envid: str = ""
    reporting_mta: str = ""
    #: MDN disposition ("displayed", "deleted", ...) and ARF/MDN extras.
    disposition: str = ""
    extra: dict[str, str] = field(default_factory=dict)
