"""Bounce dialects: one module per MTA or provider whose bounces need more than
RFC 3464 (or are not RFC 3464 at all).

Each module has ``read(mail) -> Detected | None`` and returns None quickly when
the message is not its dialect (cheap header and marker checks first). They
are tried in a fixed order and the first hit wins (flufl.bounce issue #12:
running every detector and merging finds the same failure twice, and finds
"failures" in a quoted original message).

``EARLY`` dialects run before the generic RFC 3464 reader: their messages
are recognisable by a signature of their own and their DSN parts, if any, miss
something only their text says (the failed command, a provider error code).
``LATE`` dialects are plain-text formats with weaker signatures, tried after it.
"""

from __future__ import annotations

from collections.abc import Callable

from landed.parse.draft import Detected
from landed.parse.mime import Mail
from landed.parse.nonstandard import (
    activehunter,
    amavis,
    amazonses,
    apachejames,
    biglobe,
    courier,
    domino,
    dragonfly,
    einsundeins,
    exchange2003,
    exim,
    ezweb,
    fallback,
    fml,
    gmx,
    google,
    imailserver,
    interscanmss,
    kddi,
    mailfoundry,
    mailmarshal,
    mfilter,
    notes,
    office365,
    opensmtpd,
    postfix,
    qmail,
    sendmail,
    v5sendmail,
    verizon,
    x1,
    x3,
    x6,
    zoho,
)

__all__ = ["EARLY", "LATE"]

Reader = Callable[[Mail], Detected | None]

EARLY: tuple[tuple[str, Reader], ...] = (
    ("amazonses", amazonses.read),
    ("google", google.read),
    ("office365", office365.read),
    ("postfix", postfix.read),
    ("sendmail", sendmail.read),
    ("interscanmss", interscanmss.read),
    ("dragonfly", dragonfly.read),
    ("exim", exim.read),
    ("qmail", qmail.read),
    ("opensmtpd", opensmtpd.read),
    ("courier", courier.read),
    ("amavis", amavis.read),
    ("exchange2003", exchange2003.read),
    ("v5sendmail", v5sendmail.read),
    ("activehunter", activehunter.read),
    ("gmx", gmx.read),
    ("mailfoundry", mailfoundry.read),
    ("verizon", verizon.read),
    ("zoho", zoho.read),
    ("x1", x1.read),
    ("x3", x3.read),
    ("x6", x6.read),
    ("ezweb", ezweb.read),
    ("kddi", kddi.read),
    ("einsundeins", einsundeins.read),
    ("mailmarshal", mailmarshal.read),
    ("apachejames", apachejames.read),
    ("biglobe", biglobe.read),
    ("domino", domino.read),
    ("imailserver", imailserver.read),
    ("mfilter", mfilter.read),
    ("notes", notes.read),
    ("fml", fml.read),
)
LATE: tuple[tuple[str, Reader], ...] = (("fallback", fallback.read),)
