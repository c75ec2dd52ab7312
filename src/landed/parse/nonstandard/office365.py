"""Microsoft 365 / Exchange Online non-delivery reports ("Undeliverable: ...").

Human text first, then "Diagnostic information for administrators" with the
remote server's answer, then optionally DSN fields::

    Delivery has failed to these recipients or groups:

    kijitora@example.com<mailto:kijitora@example.com>
    The email address you entered couldn't be found. ...

    Diagnostic information for administrators:

    Generating server: BN3PR01MB0001.prod.outlook.com

    kijitora@example.com
    Remote Server returned '550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found
    by SMTP address lookup'  (one line in the message)

    Original message headers:

Recognized by at least two Exchange Online marks (``X-MS-Exchange-*`` headers,
``*.prod.outlook.com`` hosts in Received / Message-ID, an "Undeliverable:" subject).
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import DSN_TYPES, returned_part
from landed.parse.fields import read_fields
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze
from landed.parse.statuscodes import find_status

__all__ = ["read"]

_OUTLOOK_HOST = re.compile(r".+\.(?:outbound\.protection|prod)\.outlook\.com\b")
_MARK_HEADERS = (
    "x-ms-exchange-message-is-ndr",
    "x-microsoft-antispam-prvs",
    "x-exchange-antispam-report-test",
    "x-exchange-antispam-report-cfa-test",
    "x-ms-exchange-crosstenant-originalarrivaltime",
    "x-ms-exchange-crosstenant-fromentityheader",
    "x-ms-exchange-transport-crosstenantheadersstamped",
)
_START = re.compile(
    r"^(?:Delivery has failed to these recipients or groups:|Original Message Details|"
    r".+ rejected your message to the following e-?mail addresses:)"
)
_ERROR = re.compile(r"^(?:Diagnostic information for administrators:|Error Details)")
_END = re.compile(r"^(?:Original [Mm]essage [Hh]eaders:?|Message Hops)")
_RECIPIENT = re.compile(r"^.+@.+<mailto:(.+@.+)>$|^Recipient Address:[ ]+(.+)$")
# Exchange Online's documented enhanced codes (learn.microsoft.com NDR reference).
_STATUS_REASONS: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), reason)
    for pattern, reason in (
        (r"^4\.4\.7$", "expired"),
        (r"^4\.4\.312$", "networkerror"),
        (r"^4\.4\.316$", "expired"),
        (r"^4\.7\.26$", "securityerror"),
        (r"^4\.7\.[56]\d\d$", "blocked"),
        (r"^4\.7\.8[5-9]\d$", "blocked"),
        (r"^5\.0\.350$", "contenterror"),
        (r"^5\.1\.10$", "userunknown"),
        (r"^5\.4\.1$", "norelaying"),
        (r"^5\.4\.6$", "networkerror"),
        (r"^5\.4\.312$", "networkerror"),
        (r"^5\.4\.316$", "expired"),
        (r"^5\.6\.11$", "contenterror"),
        (r"^5\.7\.1$", "rejected"),
        (r"^5\.7\.1[23]$", "rejected"),
        (r"^5\.7\.124$", "rejected"),
        (r"^5\.7\.13[3-6]$", "rejected"),
        (r"^5\.7\.23$", "blocked"),
        (r"^5\.7\.25$", "networkerror"),
        (r"^5\.7\.50[1-3]$", "spamdetected"),
        (r"^5\.7\.50[45]$", "filtered"),
        (r"^5\.7\.50[67]$", "blocked"),
        (r"^5\.7\.508$", "toomanyconn"),
        (r"^5\.7\.509$", "securityerror"),
        (r"^5\.7\.510$", "notaccept"),
        (r"^5\.7\.511$", "rejected"),
        (r"^5\.7\.512$", "securityerror"),
        (r"^5\.7\.57$", "securityerror"),
        (r"^5\.7\.60[6-9]$", "blocked"),
        (r"^5\.7\.6[1-4]\d$", "blocked"),
        (r"^5\.7\.7[0-4]\d$", "toomanyconn"),
    )
)
_RCPT = re.compile(r"unknown recipient or mailbox unavailable ->.+<?.+@.+\.[a-zA-Z]+>?")


def _is_office365(mail: Mail) -> bool:
    headers = mail.headers
    votes = int("Undeliverable:" in headers.get("subject"))
    for name in _MARK_HEADERS:
        if name in headers:
            votes += 1
    message_id = headers.get("message-id")
    votes += int("outlook.com" in message_id and bool(_OUTLOOK_HOST.match(message_id)))
    if votes != 1:
        # Received lines give one vote at most: scan them only when it decides.
        return votes >= 2
    return any("outlook.com" in r and _OUTLOOK_HOST.match(r) for r in headers.get_all("received"))


def read(mail: Mail) -> Detected | None:
    """Read an Exchange Online non-delivery report."""
    if not _is_office365(mail):
        return None
    human = "\n".join(
        p.text for p in mail.parts if p.ctype.startswith("text/") and p.ctype != "text/html"
    )
    explanation, _ = cut(human or mail.body, ("Content-Type: message/rfc822",))
    drafts: list[Draft] = []
    started = ended = False
    lhost = ""
    tail: list[str] = []
    for line in explanation.split("\n"):
        if not started:
            started = _START.match(line) is not None
            continue
        if not line:
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            drafts.append(Draft(recipient=match.group(1) or match.group(2).strip()))
            continue
        if line.startswith("Generating server: "):
            lhost = line[19:].strip().lower()
            continue
        if ended:
            tail.append(line)
            continue
        if not drafts:
            continue
        if _ERROR.match(line):
            drafts[-1].diagnosis = line
        elif drafts[-1].diagnosis:
            if _END.match(line):
                ended = True
                continue
            drafts[-1].diagnosis += " " + line
    if not drafts:
        return None
    status_part = "\n\n".join(p.text for p in mail.parts if p.ctype in DSN_TYPES) or "\n".join(tail)
    records = read_fields(status_part).records
    for index, draft in enumerate(drafts):
        record = records[index] if index < len(records) else None
        if record is not None:
            draft.status = record.status
            draft.action = record.action
            draft.remote_mta = record.remote_mta
        draft.reporting_mta = lhost
        draft.diagnosis = squeeze(draft.diagnosis)
        if not draft.status or draft.status.endswith(".0.0"):
            draft.status = find_status(draft.diagnosis) or draft.status
        if _RCPT.search(draft.diagnosis):
            draft.command = "RCPT"
        for pattern, reason in _STATUS_REASONS:
            if draft.status and pattern.match(draft.status):
                draft.reason = reason
                break
    return Detected(dialect="office365", drafts=drafts, returned=returned_part(mail))
