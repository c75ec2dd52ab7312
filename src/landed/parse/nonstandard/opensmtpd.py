"""OpenSMTPD (opensmtpd.org), ``Subject: Delivery status notification: failed|delayed``.

The human part (smtpd/bounce.c) lists one ``recipient: reason`` line per
failure, in OpenSMTPD's own words ("Envelope expired", "No MX found for
domain"). Its DSN part repeats the status without that text, so the text is
what is read::

        Hi!

        This is the MAILER-DAEMON, please DO NOT REPLY to this email.

        An error has occurred while attempting to deliver a message for
        the following list of recipients:

    kijitora@example.jp: 550 5.2.2 <kijitora@example.jp>... Mailbox Full

        Below is a copy of the original message:
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import dsn_fields, returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, squeeze

__all__ = ["read"]

_START = "    This is the MAILER-DAEMON, please DO NOT REPLY to this"
_RETURNED = ("    Below is a copy of the original message:",)
_LINE = re.compile(r"^([^ ]+?@[^ ]+?):? (.+)$")
# smtpd's own failure texts (mta.c, mta_session.c, bounce.c).
_REASONS = (
    ("expired", ("Envelope expired",)),
    ("hostunknown", ("Invalid domain name", "Domain does not exist")),
    # A domain without MX accepts no mail at all (RFC 7505 spirit; OpenSMTPD 6.x+).
    (
        "notaccept",
        (
            "Destination seem to reject all mails",
            "No MX found for domain",
            "No MX found for destination",
        ),
    ),
    (
        "networkerror",
        (
            "Address family mismatch on destination MXs",
            "All routes to destination blocked",
            "bad DNS lookup error code",
            "Could not retrieve source address",
            "Loop detected",
            "Network error on destination MXs",
            "No valid route to remote MX",
            "No valid route to destination",
            "Temporary failure in MX lookup",
        ),
    ),
    ("securityerror", ("Could not retrieve credentials",)),
)


def read(mail: Mail) -> Detected | None:
    """Read an OpenSMTPD bounce or delay warning."""
    body = mail.body
    start = body.find(_START)
    if start < 0 or "Delivery status notification" not in mail.headers.get("subject"):
        return None
    explanation, _ = cut(body[start:], _RETURNED)
    drafts: list[Draft] = []
    for line in explanation.split("\n")[1:]:
        match = _LINE.match(line)
        if match is not None and "@" in match.group(1):
            drafts.append(
                Draft(recipient=match.group(1).strip("<>"), diagnosis=squeeze(match.group(2)))
            )
    if not drafts:
        return None
    fields = dsn_fields(mail)
    actions = {r.final_recipient.lower(): r.action for r in fields.records} if fields else {}
    for draft in drafts:
        draft.action = actions.get(draft.recipient.lower(), "")
        for reason, phrases in _REASONS:
            if any(p in draft.diagnosis for p in phrases):
                draft.reason = reason
                break
    returned = returned_part(mail) or cut(body, _RETURNED)[1].partition("\n")[2]
    return Detected(dialect="opensmtpd", drafts=drafts, returned=returned)
