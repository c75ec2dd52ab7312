"""Ipswitch IMail Server: ``Subject: Undeliverable Mail``, ``X-Mailer: <SMTP32 v...>``::

    Unknown user: kijitora@example.com

    Original message follows.

Each line "<reason>: <address>" is one failed recipient; the SMTP stage is in
IMail's wording ("Additional RCPT TO generated following response:").
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_LINE = re.compile(r"^([^ ]+) (.+):[ \t]*([^ ]+@[^ ]+)")
_UNDELIVERABLE = re.compile(r"^undeliverable[ ]+to[ ]+(.+)$")
_ERROR = "Body of message generated response:"
_COMMANDS = (
    (
        "CONN",
        re.compile(r"(?:SMTP connection failed,|Unexpected connection response from server:)"),
    ),
    ("EHLO", re.compile(r"Unexpected response to EHLO/HELO:")),
    ("MAIL", re.compile(r"Server response to MAIL FROM:")),
    ("RCPT", re.compile(r"Additional RCPT TO generated following response:")),
    ("DATA", re.compile(r"DATA command generated response:")),
)
_REASONS = (
    ("hostunknown", re.compile(r"Unknown host")),
    ("userunknown", re.compile(r"^(?:Unknown user|Invalid final delivery userid)")),
    ("mailboxfull", re.compile(r"^User mailbox exceeds allowed size")),
    ("virusdetected", re.compile(r"^Requested action not taken: virus detected")),
    ("undefined", re.compile(r"^undeliverable to")),
    ("expired", re.compile(r"^Delivery failed \d+ attempts")),
)


def read(mail: Mail) -> Detected | None:
    """Read an IMail bounce."""
    headers = mail.headers
    if not (
        re.match(r"^Undeliverable Mail *$", headers.get("subject"))
        or headers.get("x-mailer").startswith("<SMTP32 v")
    ):
        return None
    explanation, _ = cut(mail.body, ("Original message follows.",))
    drafts: list[Draft] = []
    extra: list[str] = []
    for line in explanation.split("\n"):
        match = _LINE.match(line)
        undeliverable = _UNDELIVERABLE.match(line)
        if match is not None:
            drafts.append(
                Draft(
                    recipient=match.group(3).strip("<>"),
                    diagnosis=f"{match.group(1)} {match.group(2)}",
                )
            )
            extra.append("")
        elif undeliverable is not None:
            drafts.append(Draft(recipient=undeliverable.group(1).strip().strip("<>")))
            extra.append("")
        elif drafts:
            if _ERROR in line:
                extra[-1] = line
            elif extra[-1]:
                extra[-1] += " " + line
    for draft, more in zip(drafts, extra, strict=True):
        if more:
            draft.diagnosis = f"{more} {draft.diagnosis}"
        draft.diagnosis = squeeze(draft.diagnosis)
        draft.command = next((c for c, p in _COMMANDS if p.search(draft.diagnosis)), "")
        draft.reason = next((r for r, p in _REASONS if p.search(draft.diagnosis)), "")
    if not drafts:
        return None
    return Detected(
        dialect="imailserver",
        drafts=drafts,
        returned=cut(mail.body, ("Original message follows.",))[1],
    )
