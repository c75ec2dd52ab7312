"""amavis (amavisd-new), the content filter in front of Postfix and others:
``From: "Content-filter at <host>" <postmaster@host>`` and a DSN whose
Diagnostic-Code ends with amavis's verdict (amavisd's ``$reason`` texts)::

    Diagnostic-Code: smtp; 554 5.7.0 Reject, id=12345-01 - INFECTED: Eicar-Test-Signature
    Diagnostic-Code: smtp; 554 5.7.0 Reject, id=12345-01 - SPAM
    Diagnostic-Code: smtp; 554 5.6.0 Reject, id=12345-01 - BAD HEADER: Improper use of 8-bit ...

When amavis only passes on the next hop's refusal (a Postfix "User unknown"),
the text is the remote reply and the generic rules apply.
"""

from __future__ import annotations

from landed.parse import dsn
from landed.parse.draft import Detected
from landed.parse.mime import Mail

__all__ = ["read"]

# amavisd's verdict suffixes (lowercase), in amavisd's own order of checks.
_VERDICTS = (
    ("virusdetected", (" - infected",)),
    ("spamdetected", (" - spam",)),
    ("contenterror", (" - bad header:",)),
    ("exceedlimit", (" - message size exceeds recipient",)),
    (
        "systemerror",
        (
            " - temporary mta failure on relaying",
            " - rejected by next-hop mta on relaying",
            " - unable to relay message back to mta",
        ),
    ),
)


def read(mail: Mail) -> Detected | None:
    """Read an amavis DSN."""
    if not mail.headers.get("from").startswith('"Content-filter at '):
        return None
    detected = dsn.read(mail)
    if detected is None:
        return None
    detected.dialect = "amavis"
    for draft in detected.drafts:
        text = draft.diagnosis.lower()
        for reason, suffixes in _VERDICTS:
            if any(suffix in text for suffix in suffixes):
                draft.reason = reason
                break
    return detected
