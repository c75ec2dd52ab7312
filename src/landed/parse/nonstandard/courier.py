"""Courier MTA (courier-mta.org): ``Subject: NOTICE: mail delivery status.``
(``WARNING: delayed mail.``), ``Message-ID: <courier.HEX.HEX@host>``, a DSN
part, and a text part with a transcript per recipient (courier/module.dsn)::

    <kijitora@example.co.jp>:
        mx.example.co.jp [192.0.2.95]:
    >>> RCPT TO:<kijitora@example.co.jp>
    <<< 550 5.1.1 <kijitora@example.co.jp>... User Unknown

The transcript is clearer than the DSN's ``Diagnostic-Code`` (often
``unknown; ...``), and it names the command. Courier's own failures (no remote
reply) are worded in its DNS code: "No such domain.", "DNS lookup failed.",
"This domain's DNS violates RFC 1035.".
"""

from __future__ import annotations

import re

from landed.parse import dsn
from landed.parse.draft import Detected
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze

__all__ = ["read"]

_SUBJECTS = ("NOTICE: mail delivery status.", "WARNING: delayed mail.")
_MESSAGE_ID = re.compile(r"^<courier\.[0-9A-F]+\.")
_HOST = re.compile(r"^[ \t]+([A-Za-z0-9.-]+\.[A-Za-z]{2,}|\[[0-9.:a-fA-F]+\])(?: \[[^\]]+\])?:$")
_REASONS = (
    ("hostunknown", "No such domain."),
    ("systemerror", "This domain's DNS violates RFC 1035."),
    ("networkerror", "DNS lookup failed."),
)


def _is_courier(mail: Mail) -> bool:
    headers = mail.headers
    return (
        "Courier mail server at " in headers.get("from")
        or any(s in mail.subject for s in _SUBJECTS)
        or _MESSAGE_ID.match(headers.get("message-id")) is not None
    )


def _transcript(text: str, recipient: str) -> list[str]:
    """The lines under ``<recipient>:`` up to the next blank line."""
    at = text.find(f"<{recipient}>:")
    if at < 0:
        return []
    block = text[at:].split("\n\n", 1)[0]
    return block.split("\n")[1:]


def read(mail: Mail) -> Detected | None:
    """Read a Courier DSN."""
    if not _is_courier(mail):
        return None
    detected = dsn.read(mail)
    if detected is None:
        return None
    detected.dialect = "courier"
    text = dsn.human_text(mail)
    for draft in detected.drafts:
        replies: list[str] = []
        for line in _transcript(text, draft.recipient):
            if line.startswith(">>> ") and not draft.command:
                draft.command = line[4:8].upper()
            elif line.startswith("<<< "):
                replies.append(line[4:])
            elif not draft.remote_mta:
                host = _HOST.match(line)
                if host is not None:
                    draft.remote_mta = host.group(1).strip("[]")
        if replies:
            draft.diagnosis = squeeze(" ".join(replies))
        for reason, sentence in _REASONS:
            if sentence in draft.diagnosis:
                draft.reason = reason
                break
    return detected
