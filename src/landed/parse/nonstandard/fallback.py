"""The last resort for bounces no dialect recognizes: a plain-text scan.

A message from a mailer daemon (or with a bounce-like subject) that no
detector read is scanned line by line for the ways MTAs introduce a failed
address ("Delivery failed: a@b", "Recipient: <a@b>", "<a@b>: ...", "Your
message to a@b ..."), up to where the returned message starts. All the text
read goes into the diagnostic, so the phrase tables still find a reason.
Sisimai's old RFC 3464 fallback scanner worked the same way.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.dsn import returned_part
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import squeeze

__all__ = ["read"]

_SENDER = re.compile(r"\b(?:postmaster|mailer-daemon|root)@", re.I)
_SUBJECT = re.compile(
    r"delivery (?:failed|failure|report)|failure notice|mail (?:delivery|error)|non-delivery|"
    r"returned mail|undeliverable mail|warning: ",
    re.I,
)
_SKIP = re.compile(
    r"^-+=|^\s+$|^\s*--|^\s+=\d+|^hi !|"
    r"content-(?:description|disposition|transfer-encoding|type): |"
    r"(?:name|charset)=|--$|: --------",
)
_STOP = re.compile(
    r"^\*\*\* .+ .+ \*\*\*|^content-type: message/delivery-status|"
    r"^here is a copy of the first part of the message|"
    r"^the non-delivered message is attached to this message\.|"
    r"^received:[ \t]*|^received-from-mta:[ \t]*|^reporting-mta:[ \t]*|^return-path:[ \t]*|"
    r"^a copy of the original message below this line:|attachment is a copy of the message|"
    r"below is a copy of the original message:|below this line is a copy of the message|"
    r"message contains .+ file attachments|message text follows: |original message follows|"
    r"the attachment contains the original mail headers|the first \d+ lines |"
    r"unsent message below|^bounced e-?mail:|"
    r"your message reads \(in part\):|^content-type:[ ]*(?:message/rfc822|text/rfc822-headers)",
)
_ADDRESS = re.compile(
    r"(?:^\s*|^\".+\"\s*|^[ \t]*recipient:[ \t]*|^ *address: |addressed to |"
    r"^ *(?:target|recipient|destination|failed) (?:e-?mail |mail )?address: *|"
    r"could not be delivered to: |"
    r"delivered to +|delivery failed: |did not reach the following recipient: |error-for: +|"
    r"failed recipient: |failed to deliver to |intended recipient: |mailbox is full: |rcpt to:|"
    r"smtp server <.+> rejected recipient |the following recipients returned permanent errors: |"
    r"the following message to |unknown user: |undeliverable to |undeliverable address: *|"
    r"you sent mail to |your message to )"
    r"['\"]?<?([^\s@=<>]+@[-.0-9a-z]+\.[0-9a-z]+)>?['\"]?"
)
_EXPANDED = re.compile(r"\((?:expanded|generated) from:? ([^@]+@[^@]+)\)")
_COMMAND = re.compile(r" (RCPT|MAIL|DATA) +command\b")


def _looks_like_bounce(mail: Mail) -> bool:
    headers = mail.headers
    if _SENDER.search(headers.get("from")) or _SUBJECT.search(headers.get("subject")):
        return True
    path = headers.get("return-path").lower()
    return path == "<>" or "mailer-daemon" in path


def read(mail: Mail) -> Detected | None:
    """Scan an unrecognized bounce for failed addresses."""
    if not _looks_like_bounce(mail):
        return None
    text = "\n".join(p.text for p in mail.parts if p.ctype == "text/plain") or mail.body
    drafts: list[Draft] = []
    lines: list[str] = []
    for line in text.split("\n"):
        lowered = line.lower()
        if _STOP.search(lowered):
            break
        if not line or _SKIP.search(lowered) or line.startswith("*"):
            continue
        match = _ADDRESS.search(lowered)
        if match is not None:
            address = line[match.start(1) : match.end(1)]
            if not drafts or drafts[-1].recipient.lower() != address.lower():
                if drafts or not lines:
                    drafts.append(Draft(recipient=address))
                else:
                    # Text before the first address belongs to the first recipient.
                    drafts.append(Draft(recipient=address, diagnosis=" ".join(lines)))
        elif drafts:
            expanded = _EXPANDED.search(line)
            if expanded is not None:
                drafts[-1].original_recipient = expanded.group(1).strip()
        if drafts:
            drafts[-1].diagnosis += " " + line
        else:
            lines.append(line)
    if not drafts:
        return None
    for draft in drafts:
        draft.diagnosis = squeeze(draft.diagnosis)
        command = _COMMAND.search(draft.diagnosis)
        if command is not None:
            draft.command = command.group(1)
    return Detected(dialect="fallback", drafts=drafts, returned=returned_part(mail))
