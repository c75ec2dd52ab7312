"""qmail (qmail-send, qmail-remote; cr.yp.to/qmail) and its clones.

Plain text, ``Subject: failure notice``::

    Hi. This is the qmail-send program at mx.example.jp.
    I'm afraid I wasn't able to deliver your message to the following addresses.
    This is a permanent error; I've given up. Sorry it didn't work out.

    <kijitora@example.jp>:
    192.0.2.153 does not like recipient.
    Remote host said: 550 5.1.1 <kijitora@example.jp>... User Unknown
    Giving up on 192.0.2.153.

    --- Below this line is a copy of the message.

The failed command is only in qmail-remote's wording ("does not like
recipient" = RCPT, "failed on DATA command" = DATA, ...). Clones (Yahoo's old
MTA, vpopmail, Spanish and Japanese ISPs) keep the layout with other opening
sentences.
"""

from __future__ import annotations

import re

from landed.parse.draft import Detected, Draft
from landed.parse.mime import Mail
from landed.parse.nonstandard.common import cut, returned_after, squeeze
from landed.parse.reasons import aligned
from landed.parse.transcript import find_command

__all__ = ["read"]

_RETURNED = (
    "--- Below this line is a copy of the message.",  # qmail-send.c
    "--- Below this line is a copy of the mail header.",
    "--- Below the next line is a copy of the message.",  # clones
    "--- Mensaje original adjunto.",
    "Content-Type: message/rfc822",
    "Original message follows.",
)
_START = (
    "Hi. This is the qmail",  # qmail-send.c: "Hi. This is the qmail-send program at "
    "He/Her is not ",
    "unable to deliver your message to the following addresses",
    "Su mensaje no pudo ser entregado",
    "Sorry, we were unable to deliver your message to the following address",
    "This is the machine generated message from mail service",
    "This is the mail delivery agent at",
    "Unable to deliver message to the following address",
    "Unfortunately, your mail was not delivered to the following address:",
    "Your mail message to the following address",
    "Your message to the following addresses",
    "We're sorry.",
)
_RECIPIENT = re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$")
_REMOTE = re.compile(r"(?:Giving up on|Connected to|remote host) ([0-9A-Za-z.:-]+?)\.?(?:\s|$)")
# qmail-remote.c wording -> the command it failed at.
_COMMANDS = (
    ("CONN", (" but greeting failed.",)),
    ("EHLO", (" but my name was rejected.",)),
    ("MAIL", (" but sender was rejected.",)),
    ("RCPT", (" does not like recipient.",)),
    ("DATA", (" failed on DATA command", " failed after I sent the message")),
)
# qmail's own messages (qmail-local.c, qmail-remote.c, error_str.c) and qmail-ldap's.
_REASONS = (
    ("hostunknown", ("Sorry, I couldn't find any host ",)),  # qmail-remote.c
    ("mailboxfull", ("disk quota exceeded",)),  # error_str.c EDQUOT
    ("mesgtoobig", ("Message size exceeds fixed maximum message size:",)),
    (
        "networkerror",
        (
            "Sorry, I wasn't able to establish an SMTP connection",
            "Sorry. Although I'm listed as a best-preference MX or A for that host",
        ),
    ),
    # notqmail 1.08 when the destination has a null MX (RFC 7505)
    ("notaccept", ("Sorry, I couldn't find a mail exchanger or IP address",)),
    ("systemerror", ("bad interpreter: No such file or directory", "system error", "Unable to")),
    ("systemfull", ("Requested action not taken: mailbox unavailable (not enough free space)",)),
    ("userunknown", ("no mailbox here by that name",)),  # qmail-local.c (#5.1.1)
    # qmail-ldap patch
    ("exceedlimit", ("The message exeeded the maximum size the user accepts",)),
    (
        "suspend",
        (
            "Mailaddress is administrativly disabled",
            "Mailaddress is administrativley disabled",
            "Mailaddress is administratively disabled",
            "Mailaddress is administrativeley disabled",
        ),
    ),
    (
        "systemerror",
        (
            "Automatic homedir creator crashed",
            "Illegal value in LDAP attribute",
            "LDAP attribute is not given but mandatory",
            "Timeout while performing search on LDAP server",
            "Too many results returned but needs to be unique",
            "Permanent error while executing qmail-forward",
            "Temporary error in automatic homedir creation",
            "Temporary error while executing qmail-forward",
            "Temporary failure in LDAP lookup",
            "Unable to contact LDAP server",
            "Unable to login into LDAP server, bad credentials",
        ),
    ),
)
# qmail-send.c: "I'm not going to try again; this message has been in the queue too long."
_EXPIRED = "this message has been in the queue too long."
# A remote refusal after which the queue ran out: the remote text decides.
_ONHOLD = (" does not like recipient.", _EXPIRED)


def read(mail: Mail) -> Detected | None:
    """Read a qmail bounce."""
    body = mail.body
    # Every recipient is an "<address>:" line: without one there is nothing to
    # read, and this one test is cheaper than looking for each opening.
    if ">:" not in body or not any(marker in body for marker in _START):
        return None
    explanation, _ = cut(body, _RETURNED)
    lines = explanation.split("\n")
    started = False
    drafts: list[Draft] = []
    said: list[str] = []
    current: Draft | None = None
    for line in lines:
        if not started:
            started = any(marker in line for marker in _START)
            continue
        if not line:
            continue
        match = _RECIPIENT.match(line)
        if match is not None:
            current = Draft(recipient=match.group(1))
            drafts.append(current)
            said.append("")
            continue
        if current is None:
            continue
        current.diagnosis += line + " "
        if line.startswith("Remote host said:"):
            said[-1] = line
        if not current.remote_mta:
            host = _REMOTE.search(line)
            if host is not None:
                current.remote_mta = host.group(1)
    if not drafts:
        return None
    for draft, remote_said in zip(drafts, said, strict=True):
        draft.diagnosis = squeeze(draft.diagnosis)
        text = draft.diagnosis
        for command, phrases in _COMMANDS:
            if any(p in text for p in phrases):
                draft.command = command
                break
        if not draft.command and "no SMTP connection got far enough" in text:
            draft.command = find_command(text)
        if draft.command in ("EHLO", "HELO"):
            draft.reason = "blocked"
        elif aligned(text, _ONHOLD):
            draft.reason = "onhold"
        else:
            draft.reason = _own_reason(remote_said) or _own_reason(text)
        if not draft.command:
            draft.command = find_command(text)
    return Detected(dialect="qmail", drafts=drafts, returned=returned_after(body, _RETURNED))


def _own_reason(text: str) -> str:
    if not text:
        return ""
    if _EXPIRED in text and "Sorry, I wasn't able to establish an SMTP connection" in text:
        # qmail-send gave up after the queue lifetime (qmail-send.c): the
        # connection failures were only why it kept retrying.
        return "expired"
    for reason, phrases in _REASONS:
        if any(p in text for p in phrases):
            return reason
    return "expired" if _EXPIRED in text else ""
