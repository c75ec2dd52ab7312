"""Gmail and Google Workspace as the receiving side (support.google.com/a/answer/3726730,
support.google.com/mail/answer/81126 "Email sender guidelines").

Gmail's replies are (reply code, status code, sentence) triples. Only the text
after the class digit is compared (``421``/``521``, ``4.7.0``/``5.7.0``): Gmail
uses both classes for the same refusal.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from landed.parse.classify import Facts

HOSTS = ("aspmx.l.google.com", "gmail-smtp-in.l.google.com")
WORKSPACE_HOSTS = ("googlemail.com",)

_Triple = tuple[str, str, str]
_TABLE: tuple[tuple[str, tuple[_Triple, ...]], ...] = (
    (
        "authfailure",
        (
            ("451", "4.7.24", "the spf record of the sending domain"),
            ("550", "5.7.24", "the spf record of the sending domain"),
            ("421", "4.7.26", "senders to authenticate with either spf or dkim"),
            ("550", "5.7.26", "senders to authenticate with either spf or dkim"),
            ("550", "5.7.26", "fails to pass spf checks for an spf record with a hard fail"),
            ("550", "5.7.26", "has an spf record with a hard fail policy"),
            ("451", "4.7.26", "is not accepted due to domain's dmarc policy"),
            ("550", "5.7.26", "is not accepted due to domain's dmarc policy"),
            ("550", "5.7.1", "fails to pass authentication checks"),
            ("550", "5.7.26", "fails to pass authentication checks"),
            ("421", "4.7.27", "senders to authenticate with spf"),
            ("421", "4.7.27", "senders to authenticate their email with spf"),
            ("550", "5.7.27", "senders to authenticate with spf"),
            ("421", "4.7.30", "senders to authenticate their email with dkim"),
            ("550", "5.7.30", "senders to authenticate with dkim"),
            ("421", "4.7.32", "aligned with either the authenticated spf or dkim"),
            ("421", "5.7.32", "aligned with either the authenticated spf or dkim"),
            ("421", "4.7.40", "to add a dmarc record to "),
        ),
    ),
    (
        "badreputation",
        (
            ("421", "4.7.0", "very low reputation of the sending ip address"),
            ("421", "4.7.0", "very low reputation of the sending domain"),
            ("550", "5.7.1", "due to the very low reputation of the sending ip address"),
            ("550", "5.7.1", "due to the very low reputation of the sending domain"),
        ),
    ),
    (
        "blocked",
        (
            ("421", "4.7.0", "ip not in whitelist for rcpt domain"),
            ("421", "4.7.0", "try again later, closing connection."),
            ("501", "5.5.4", "empty helo/ehlo argument not allowed"),
            ("501", "5.5.4", "helo/ehlo argument is invalid"),
            ("421", "4.7.0", "an unusual rate of unsolicited mail"),
            ("421", "4.7.28", "an unusual rate of mail"),
            ("550", "5.7.1", "an unusual rate of unsolicited mail"),
            ("550", "5.7.28", "an unusual rate of unsolicited mail"),
        ),
    ),
    (
        "exceedlimit",
        (
            ("552", "5.2.3", "exceeded google's message size limits"),
            ("552", "5.3.4", "exceeds google's limit of limit attachments."),
            ("552", "5.3.4", "your message exceeded google's message header size limits"),
            ("552", "5.3.4", "bytes per individual header size"),
            ("552", "5.3.4", "exceeds google's header name limit of"),
            ("552", "5.3.4", "exceeds google's message header size limit"),
        ),
    ),
    (
        "expired",
        (("421", "4.7.0", "connection expired"), ("451", "4.4.2", "timeout - closing connection")),
    ),
    (
        "failedstarttls",
        (
            ("530", "5.7.0", "must issue a starttls command first"),
            ("454", "5.5.1", "starttls may not be repeated"),
            ("421", "4.7.0", "tls required for rcpt domain"),
            ("421", "4.7.29", "senders to use tls/ssl for smtp"),
            ("550", "5.7.29", "senders to use tls/ssl for smtp"),
        ),
    ),
    (
        "mailboxfull",
        (
            ("452", "4.2.2", "inbox is out of storage space"),
            ("552", "5.2.2", "inbox is out of storage space and inactive"),
            ("452", "4.2.2", "is over quota"),
            ("552", "5.2.2", "is over quota"),
            ("550", "5.7.1", "email quota exceeded"),
        ),
    ),
    (
        "mesgtoobig",
        (
            ("552", "5.3.4", "exceeded google's message size limits"),
            ("552", "5.3.4", "exceeds google's message size limit of"),
        ),
    ),
    (
        "networkerror",
        (
            ("554", "5.4.6", "message exceeded 50 hops"),
            ("554", "5.6.0", "message exceeded 50 hops"),
        ),
    ),
    (
        "norelaying",
        (
            ("550", "5.7.0", "mail relay denied"),
            ("550", "5.7.1", "invalid credentials for relay"),
            ("550", "5.7.1", "is not authorized to send email directly to our servers"),
        ),
    ),
    (
        "notcompliantrfc",
        (
            ("550", "5.7.1", "missing a valid address in the from: header"),
            ("550", "5.7.1", "multiple addresses in from: header are not accepted"),
            ("550", "5.7.1", "is not rfc 5322 compliant"),
            ("550", "5.7.1", "missing a valid message-id: header"),
            ("550", "5.7.1", "contains a unicode character in a disallowed header"),
            ("550", "5.7.1", "encoded-word syntax is not permitted"),
            ("553", "5.1.7", "is not a valid rfc 5321 address"),
            ("554", "5.6.0", "mail message is malformed"),
        ),
    ),
    (
        "policyviolation",
        (
            ("552", "5.7.0", "illegal attachment on your message"),
            ("552", "5.7.0", "blocked because its content presents a potential security issue"),
            ("550", "5.7.1", "you are sending to (or from) has a policy that prohibited"),
            ("421", "4.7.28", "sending messages with the same message-id:"),
        ),
    ),
    (
        "rejected",
        (
            ("550", "5.7.0", "mail sending denied"),
            ("550", "5.7.1", "unauthenticated email is not accepted"),
        ),
    ),
    (
        "requireptr",
        (
            ("421", "4.7.0", "does not have a ptr record"),
            ("421", "4.7.23", " have a ptr record, or the ptr record"),
            (
                "550",
                "5.7.1",
                "does not meet ipv6 sending guidelines regarding ptr records and authentication",
            ),
            ("550", "5.7.25", "does not have a ptr record"),
            ("550", "5.7.25", "does not match the ip address of the hostname"),
        ),
    ),
    (
        "securityerror",
        (
            ("454", "4.7.0", "too many login attempts"),
            ("501", "5.5.2", "cannot decode response"),
            ("503", "5.7.0", "no identity changes permitted"),
            ("530", "5.5.1", "authentication required."),
            ("530", "5.7.0", "authentication required."),
            ("535", "5.7.1", "application-specific password required"),
            ("535", "5.7.9", "application-specific password required"),
            ("535", "5.7.1", "please log in with your web browser"),
            ("534", "5.7.9", "please log in with your web browser"),
            ("534", "5.7.14", "please log in through your web browser"),
            ("535", "5.7.1", "username and password not accepted"),
            ("535", "5.7.8", "username and password not accepted"),
        ),
    ),
    (
        "spamdetected",
        (
            ("421", "4.7.0", "due to the nature of the content or the links within"),
            ("550", "5.7.1", "likely unsolicited mail"),
        ),
    ),
    (
        "speeding",
        (
            ("450", "4.2.1", "is receiving mail too quickly"),
            ("450", "4.2.1", "peak smtp relay limit exceeded for customer"),
            ("450", "4.2.1", "rate that prevents additional messages from being delivered"),
            ("550", "5.2.1", "rate that prevents additional messages from being delivered"),
            ("550", "5.4.5", "daily sending quota exceeded"),
            ("550", "5.4.5", "daily user sending limit exceeded"),
            ("550", "5.4.5", "daily smtp relay limit exceeded for"),
            ("550", "5.7.1", "daily smtp relay limit exceeded for"),
            ("550", "5.7.1", "daily smtp relay sending limit exceeded for"),
            ("550", "5.7.1", "this mail has been rate limited"),
        ),
    ),
    (
        "suspend",
        (
            ("550", "5.2.1", "account that you tried to reach is disabled"),
            ("550", "5.2.1", "account that you tried to reach is inactive"),
        ),
    ),
    (
        "syntaxerror",
        (
            ("451", "4.5.0", "smtp protocol violation"),
            ("454", "4.5.0", "smtp protocol violation"),
            ("525", "5.7.10", "smtp protocol violation"),
            ("535", "5.5.4", "optional argument not permitted"),
            ("501", "5.7.11", "syntax error"),
            ("501", "5.5.2", "syntax error"),
            ("555", "5.5.2", "syntax error"),
            ("502", "5.5.1", "too many unrecognized commands, goodbye"),
            ("502", "5.5.1", "unimplemented command"),
            ("502", "5.5.1", "unrecognized command"),
            ("503", "5.5.1", "bad sequence of commands"),
            ("503", "5.5.1", "ehlo/helo first"),
            ("503", "5.5.1", "mail first"),
            ("503", "5.5.1", "rcpt first"),
            ("503", "5.5.1", "no data after bdat"),
            ("504", "5.7.4", "unrecognized authentication type"),
            ("504", "5.7.4", "xoauth is no longer supported"),
            ("554", "5.7.0", "too many unauthenticated commands"),
        ),
    ),
    (
        "systemerror",
        (
            ("421", "4.3.0", "temporary system problem"),
            ("421", "4.7.0", "temporary system problem"),
            ("421", "4.4.5", "server busy"),
            ("451", "4.3.0", "multiple destination domains per transaction is unsupported"),
            ("451", "4.3.0", "mail server has temporarily rejected this message"),
            ("451", "4.3.0", "mail server temporarily rejected message"),
            ("452", "4.5.3", "domain policy size per transaction exceeded"),
            ("454", "4.7.0", "cannot authenticate due to temporary system problem"),
        ),
    ),
    (
        "toomanyconn",
        (
            ("452", "4.5.3", "your message has too many recipients"),
            ("550", "5.5.3", "too many recipients for this sender"),
        ),
    ),
    (
        "userunknown",
        (
            ("550", "5.1.1", "the email account that you tried to reach does not exist"),
            ("553", "5.1.2", "we weren't able to find the recipient domain"),
            ("553", "5.1.3", "is not a valid rfc 5321 address"),
        ),
    ),
)


def reason(facts: Facts) -> str:
    """Gmail's (reply, status, sentence) triples, the class digit ignored."""
    reply = facts.reply
    status = facts.status
    if len(reply) != 3 or len(status) < 5 or status[1] != ".":
        return ""
    reply_tail, status_tail = reply[1:], status[2:]
    text = facts.text
    for name, triples in _TABLE:
        for t_reply, t_status, phrase in triples:
            if (
                phrase in text
                and t_reply[1:] == reply_tail
                and t_status[2:].startswith(status_tail)
            ):
                return name
    return ""


_WORKSPACE = (
    ("hostunknown", (" responded with code NXDOMAIN", "Domain name not found")),
    (
        "networkerror",
        (" had no relevant answers.", "responded with code NXDOMAIN", "Domain name not found"),
    ),
    ("notaccept", ("Null MX",)),  # RFC 7505
    (
        "userunknown",
        (
            "because the address couldn't be found. Check for typos "
            "or unnecessary spaces and try again.",
        ),
    ),
)


def workspace_reason(facts: Facts) -> str:
    """Google Workspace's own DNS and address failures.

    An NXDOMAIN is ``hostunknown`` when the failure is permanent (5xx) and a
    ``networkerror`` when Google will retry (4xx).
    """
    klass = facts.status[:1]
    reply = facts.reply[:1]
    for name, phrases in _WORKSPACE:
        if not any(p in facts.diagnostic for p in phrases):
            continue
        if name == "networkerror" and "5" in (klass, reply):
            continue
        if name == "hostunknown" and (klass in ("4", "") or reply in ("4", "")):
            continue
        return name
    return ""
