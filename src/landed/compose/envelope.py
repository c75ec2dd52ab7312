"""The SMTP envelope: VERP sender and RFC 3461 DSN parameters."""

from __future__ import annotations

import re
from dataclasses import dataclass

from landed.errors import InputError

VERP_PREFIX = "bounces+"
#: Printable ASCII except ``+`` and ``=``: what xtext leaves as it is.
_XTEXT_PLAIN = re.compile(r"[!-*,-<>-~]*")


@dataclass(frozen=True, slots=True)
class Envelope:
    """What goes on ``MAIL FROM`` and ``RCPT TO`` for one delivery."""

    mail_from: str
    rcpt_to: str
    envid: str


def verp_sender(token: str, bounce_domain: str) -> str:
    """``bounces+TOKEN@bounce_domain``: every bounce, standard or not, comes back here."""
    local = VERP_PREFIX + token
    if len(local) > 64:
        raise InputError("VERP local part exceeds 64 characters")
    return f"{local}@{bounce_domain}"


def xtext(value: str) -> str:
    """RFC 3461 §4 xtext: ``+``, ``=``, controls and non-ASCII as ``+HH``."""
    if _XTEXT_PLAIN.fullmatch(value):
        return value  # the usual case (tokens, plain addresses): nothing to encode
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


def dsn_mail_options(envid: str, ret: str = "HDRS") -> list[str]:
    """``MAIL FROM`` parameters: return only headers, and echo our envelope id."""
    return [f"RET={ret}", f"ENVID={xtext(envid)}"]


def dsn_rcpt_options(recipient: str, notify: str = "SUCCESS,FAILURE,DELAY") -> list[str]:
    """``RCPT TO`` parameters: which DSNs to send, and the original recipient."""
    return [f"NOTIFY={notify}", f"ORCPT=rfc822;{xtext(recipient)}"]
