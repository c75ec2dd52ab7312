"""Microsoft Exchange 5.5 / 2000 / 2003 non-delivery reports (no DSN)::

    Your message

      To:      shironeko@example.com
      Subject: Kijitora Cat
      Sent:    Thu, 29 Apr 2010 00:00:00 -0000

    did not reach the following recipient(s):

    kijitora@example.jp on Thu, 29 Apr 2010 00:00:00 -0000
        The recipient name is not recognized
        MSEXCH:IMS:NNN:KIJITORACAT:NEKO 0 (000C05A6)
    Unknown Recipient

The hexadecimal code in parentheses is Exchange's internal error (KB 284204).
Recognized by ``X-MS-Embedded-Report``, ``X-Mailer: Internet Mail Service``
(Exchange's SMTP connector), ``X-MimeOLE: Produced By Microsoft Exchange`` or a
``Received: ... with Internet Mail Service`` header.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_RECIPIENT = re.compile(
    r"^[ \t]*([^ ]+@[^ ]+) on[ \t]*.*$|^[ \t]*.+(?:SMTP|smtp)=([^ ]+@[^ ]+) on[ \t]*.*$"
)
_MSEXCH = re.compile(r"^[ \t]+(MSEXCH:.+)$")
_CODE = re.compile(r"^MSEXCH:.+[ \t]*\(([0-9A-F]{8})\)[ \t]*(.*)$")
_CODES = {
    "000B099C": "onhold",  # host unknown, message exceeds size limit, ...
    "000B09AA": "onhold",  # unable to relay for, message exceeds size limit, ...
    "000B09B6": "onhold",  # error reported by the remote MTA
    "000C05A6": "userunknown",  # unknown recipient
    "00010256": "systemerror",  # too many recipients
    "000D06B5": "systemerror",  # no proxy for recipient (non-SMTP mail?)
    "00120270": "networkerror",  # too many hops
    "00050311": "contenterror",  # conversion to Internet format failed
    "000502CC": "contenterror",
    "000B0981": "securityerror",  # 502 server does not support AUTH
    "000C0595": "filtered",  # ambiguous recipient
}


def _is_exchange(mail: Mail) -> bool:
    headers = mail.headers
    if "x-ms-embedded-report" in headers:
        return True
    mailer = headers.get("x-mailer")
    if mailer.startswith(
        ("Internet Mail Service (", "Microsoft Exchange Server Internet Mail Connector")
    ):
        return True
    if headers.get("x-mimeole").startswith("Produced By Microsoft Exchange"):
        return True
    return any(" with Internet Mail Service (" in r for r in headers.get_all("received"))


def read(mail: Mail) -> Detected | None:
    """Read an Exchange 2003-era non-delivery report."""
    if not _is_exchange(mail):
        return None
    explanation, _ = cut(mail.body, ("Content-Type: message/rfc822",))
    start = explanation.find("\nYour message")
    if start < 0 and not explanation.startswith("Your message"):
        return None
    seen = {"to": False, "subject": False, "sent": False}
    drafts: list[Draft] = []
    others: list[str] = []
    done = False
    for line in explanation[max(start, 0) :].split("\n")[1:]:
        if not all(seen.values()):
            stripped = line.strip()
            for key in seen:
                if stripped.lower().startswith(key + ":") and line[:1] in " \t":
                    seen[key] = True
            continue
        if done:
            break
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1) or match.group(2)))
            others.append("")
            continue
        if not drafts:
            continue
        draft = drafts[-1]
        exch = _MSEXCH.match(line)
        if exch is not None:
            draft.diagnosis += exch.group(1)
        elif draft.diagnosis.startswith("MSEXCH:"):
            draft.diagnosis += " " + line
            done = True
        else:
            others[-1] += " " + line
    if not drafts:
        return None
    for draft, other in zip(drafts, others, strict=True):
        diagnosis = squeeze(draft.diagnosis)
        code = _CODE.match(diagnosis)
        if code is not None:
            draft.reason = _CODES.get(code.group(1), "")
            diagnosis = code.group(2)
        if not draft.reason and other.strip():
            diagnosis = squeeze(f"{other} {diagnosis}")
        draft.diagnosis = diagnosis
    return Detected(dialect="exchange2003", drafts=drafts, returned=returned_part(mail))
