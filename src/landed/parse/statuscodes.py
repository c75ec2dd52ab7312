"""RFC 3463 enhanced status codes and SMTP reply codes: finding them in text,
choosing between them, and what they say about the failure.

Bounce text often carries several codes (the DSN ``Status:`` field, a code in
the quoted SMTP reply, a code in a human sentence), and they disagree: a
``Status: 5.0.0`` next to ``550 5.1.1 user unknown`` is the MTA being vague,
not a second failure. :func:`prefer` encodes which one is more specific. The
choice follows Sisimai's (``smtp/status``), since the corpus expectations are
Sisimai's, and its rules match what the standards say: ``X.0.0`` and ``4.4.7``
carry less information than any other code.
"""

from __future__ import annotations

import re

__all__ = [
    "REASON_OF_STATUS",
    "find_reply",
    "find_status",
    "is_permanent",
    "is_temporary",
    "prefer",
    "pseudo_status",
    "reason_of_status",
    "valid_reply",
    "valid_status",
]

# A candidate code: class digit, subject digit, detail of 1-3 digits. The
# neighbours are checked in code (not a number before it, not a 4th digit).
_STATUS = re.compile(r"([245])\.([0-7])\.(\d{1,3})")
# A candidate reply code; the neighbours (not part of a longer number, a
# dotted code or a hyphenated id) are checked in code: a lookbehind here makes
# the scan several times slower.
_REPLY = re.compile(r"[245]\d\d")

# RFC 3463 / IANA registry detail codes -> reason (vocabulary of the corpus README).
# X.0.0, X.4.0, X.5.0, X.7.0 (and 4.3.0) say nothing beyond the class, so they
# are absent: the diagnostic text decides.
REASON_OF_STATUS: dict[str, str] = {
    "2.1.5": "delivered",
    "4.1.6": "hasmoved",
    "4.1.7": "rejected",
    "4.1.8": "rejected",
    "4.1.9": "systemerror",
    "4.2.1": "blocked",
    "4.2.2": "mailboxfull",
    "4.2.3": "exceedlimit",
    "4.2.4": "filtered",
    "4.3.1": "systemfull",
    "4.3.2": "notaccept",
    "4.3.3": "systemerror",
    "4.3.5": "systemerror",
    "4.4.1": "expired",
    "4.4.2": "networkerror",
    "4.4.3": "systemerror",
    "4.4.4": "networkerror",
    "4.4.5": "systemfull",
    "4.4.6": "networkerror",
    "4.4.7": "expired",
    "4.4.8": "networkerror",
    "4.5.3": "systemerror",
    "4.5.5": "systemerror",
    "4.6.0": "contenterror",
    "4.6.2": "contenterror",
    "4.6.5": "contenterror",
    "4.7.1": "blocked",
    "4.7.2": "blocked",
    "4.7.5": "securityerror",
    "4.7.6": "securityerror",
    "4.7.7": "securityerror",
    "4.7.12": "securityerror",
    "4.7.15": "securityerror",
    "4.7.16": "mesgtoobig",
    "4.7.24": "authfailure",
    "4.7.25": "requireptr",
    "4.7.26": "authfailure",
    "5.1.0": "userunknown",
    "5.1.1": "userunknown",
    "5.1.2": "hostunknown",
    "5.1.3": "userunknown",
    "5.1.4": "filtered",
    "5.1.6": "hasmoved",
    "5.1.7": "rejected",
    "5.1.8": "rejected",
    "5.1.9": "systemerror",
    "5.1.10": "notaccept",  # RFC 7505: null MX
    "5.2.0": "filtered",
    "5.2.1": "filtered",
    "5.2.2": "mailboxfull",
    "5.2.3": "exceedlimit",
    "5.2.4": "filtered",
    "5.3.0": "systemerror",
    "5.3.1": "systemfull",
    "5.3.2": "notaccept",
    "5.3.3": "systemerror",
    "5.3.4": "mesgtoobig",
    "5.3.5": "systemerror",
    "5.4.0": "networkerror",
    "5.4.3": "systemerror",
    "5.4.4": "hostunknown",
    "5.5.2": "syntaxerror",
    "5.5.3": "toomanyconn",
    "5.5.4": "systemerror",
    "5.5.5": "systemerror",
    "5.5.6": "syntaxerror",
    "5.6.0": "contenterror",
    "5.6.1": "contenterror",
    "5.6.2": "contenterror",
    "5.6.3": "contenterror",
    "5.6.5": "contenterror",
    "5.6.6": "contenterror",
    "5.6.7": "contenterror",
    "5.6.8": "contenterror",
    "5.6.9": "contenterror",
    "5.7.0": "securityerror",
    "5.7.1": "securityerror",
    "5.7.2": "securityerror",
    "5.7.3": "securityerror",
    "5.7.4": "securityerror",
    "5.7.5": "securityerror",
    "5.7.6": "securityerror",
    "5.7.7": "securityerror",
    "5.7.8": "securityerror",
    "5.7.9": "securityerror",
    "5.7.10": "securityerror",
    "5.7.11": "securityerror",
    "5.7.13": "suspend",  # RFC 5248: user account disabled
    "5.7.14": "securityerror",
    "5.7.15": "securityerror",
    "5.7.16": "mesgtoobig",
    "5.7.17": "hasmoved",  # RFC 7293: mailbox owner has changed
    "5.7.18": "hasmoved",  # RFC 7293: domain owner has changed
    "5.7.19": "securityerror",
    "5.7.20": "authfailure",  # RFC 7372: DKIM
    "5.7.21": "authfailure",
    "5.7.22": "authfailure",
    "5.7.23": "authfailure",  # RFC 7372: SPF
    "5.7.24": "authfailure",
    "5.7.25": "requireptr",  # RFC 7372: reverse DNS
    "5.7.26": "authfailure",  # RFC 7372: multiple checks
    "5.7.27": "notaccept",  # RFC 7505: sender has null MX
    "5.7.28": "spamdetected",  # RFC 8689 (mail flood)
    "5.7.29": "authfailure",  # RFC 8617: ARC
    "5.7.30": "failedstarttls",  # RFC 8689: REQUIRETLS
}

# The reason of a code whose detail is a Sisimai pseudo code X.0.9NN (the
# corpus writes codes that way when the email carries none).
_PSEUDO_DETAIL: dict[str, str] = {
    "authfailure": "926",
    "badreputation": "975",
    "blocked": "971",
    "contenterror": "960",
    "exceedlimit": "923",
    "expired": "947",
    "failedstarttls": "976",
    "filtered": "910",
    "hasmoved": "916",
    "hostunknown": "912",
    "mailboxfull": "922",
    "mailererror": "939",
    "mesgtoobig": "934",
    "networkerror": "944",
    "norelaying": "909",
    "notaccept": "932",
    "notcompliantrfc": "974",
    "onhold": "901",
    "policyviolation": "972",
    "rejected": "918",
    "requireptr": "973",
    "securityerror": "970",
    "spamdetected": "980",
    "speeding": "946",
    "suspend": "921",
    "systemerror": "930",
    "systemfull": "931",
    "syntaxerror": "902",
    "toomanyconn": "945",
    "userunknown": "911",
    "undefined": "900",
    "virusdetected": "981",
}
# Reasons that are never temporary: a 4xx pseudo code would contradict them.
_NEVER_TEMPORARY = frozenset({"hasmoved", "hostunknown", "userunknown"})

_REPLY_2 = ("211", "214", "220", "221", "235", "250", "251", "252", "253", "334", "354")
_REPLY_4 = ("421", "450", "451", "452", "422", "430", "432", "453", "454", "455", "458", "459")
_REPLY_5 = (
    "550", "552", "553", "551", "521", "525", "523", "524", "530", "533", "534", "535", "538",
    "555", "556", "554", "500", "501", "502", "503", "504",
)  # fmt: skip
_REPLY_ORDER = {"2": _REPLY_2, "4": _REPLY_4, "5": _REPLY_5}
_REPLY_ANY = _REPLY_5 + _REPLY_4 + _REPLY_2


def valid_status(code: str) -> bool:
    """Whether ``code`` is a syntactically valid enhanced status code (2/4/5.0-7.N)."""
    pieces = code.split(".")
    if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
        return False
    return pieces[0] in ("2", "4", "5") and len(pieces[1]) == 1 and pieces[1] <= "7"


def valid_reply(code: str) -> bool:
    """Whether ``code`` is an SMTP reply code that exists (RFC 5321, 4954, 7504)."""
    if len(code) != 3 or not code.isdigit():
        return False
    value = int(code)
    if value < 211 or value > 556 or value % 100 > 59:
        return False
    if value // 100 == 2:
        return value == 235 or value <= 221 or 250 <= value <= 253
    if value // 100 == 3:
        return value in (334, 354)
    return True


def reason_of_status(code: str) -> str:
    """The reason a status code names by itself, or ``""``."""
    return REASON_OF_STATUS.get(code, "")


def find_status(text: str, klass: str = "") -> str:
    """The most specific enhanced status code in ``text``, or ``""``.

    ``klass`` ("2", "4", "5") restricts the search to that class. Codes inside
    a longer dotted number (``192.0.2.1`` contains ``2.0.2``, ``5.1.1.1`` is an
    IPv4 address) or after a ``v``/``V`` (version numbers) are skipped;
    ``X.0.0`` and ``4.4.7`` are kept only when nothing better is there.
    """
    if len(text) < 5:
        return ""
    if "." not in text:
        return ""
    found: list[str] = []
    weak = ""
    size = len(text)
    for match in _STATUS.finditer(text):
        if klass and match.group(1) != klass:
            continue
        start = match.start()
        before = text[start - 1] if start else " "
        # After a digit, "." or "/" it is part of something else; after "v" a version.
        if before.isdigit() or before in "vV./":
            continue
        detail = match.group(3)
        end = match.end()
        if end < size and (
            text[end].isdigit()
            # "5.1.1.1": the start of a longer dotted number (an IPv4 address).
            or (text[end] == "." and end + 1 < size and text[end + 1].isdigit())
        ):
            continue
        code = match.group(0)
        if (match.group(2) == "0" and detail == "0") or code == "4.4.7":
            weak = code
            continue
        found.append(code)
    if weak:
        found.append(weak)
    if not found:
        return ""
    chosen = found[0]
    for code in found[1:]:
        chosen = prefer(chosen, code, "")
    return chosen


def prefer(field: str, in_text: str, reply: str = "") -> str:
    """Choose between a ``Status:`` value and a code found in the diagnostic text.

    The more specific one wins; when they disagree on the class, the class of
    the SMTP reply code (if any) decides.
    """
    if not field:
        return in_text
    if not in_text or len(in_text) < 5:
        return field
    if len(field) < 5:
        return in_text
    if reply and field[0] != in_text[0]:
        if reply[0] == field[0]:
            return field
        if reply[0] == in_text[0]:
            return in_text
    if field == in_text:
        return field
    if ".0.0" in field[1:]:
        return field if ".0.0" in in_text[1:] else in_text
    if ".0" in field[1:] and ".0" not in in_text[1:]:
        return in_text
    if ".0.0" in in_text[1:]:
        return field
    if field in ("4.4.7", "4.7.0") or field.startswith("5.3."):
        return in_text
    if field[1:4] in (".5.1", ".5.2", ".5.4", ".5.5"):
        return in_text
    if field == "5.1.1":
        if ".0" in in_text[1:] or in_text.startswith("5.5."):
            return field
        return in_text
    if field == "5.1.3" and in_text.startswith("5.7."):
        return in_text
    return field


def find_reply(text: str, status: str = "") -> str:
    """The first SMTP reply code in ``text``, preferring the class of ``status``."""
    if len(text) < 3 or "X-UNIX" in text or "x-unix" in text or "X-Unix" in text:
        return ""
    klass = status[:1]
    candidates = _REPLY_ORDER.get(klass, _REPLY_ANY)
    present: set[str] = set()
    size = len(text)
    for match in _REPLY.finditer(text):
        start, end = match.span()
        if start and (text[start - 1].isdigit() or text[start - 1] in ".-"):
            continue
        if end < size and (text[end].isdigit() or text[end] == "."):
            continue
        present.add(match.group())
    if not present:
        return ""
    for code in candidates:
        if code in present:
            return code
    return ""


def is_permanent(text: str) -> bool:
    """Whether ``text`` (codes and message) says the failure is permanent."""
    if not text:
        return False
    code = find_status(text) or find_reply(text)
    return code.startswith("5") or " permanent " in text.lower()


def is_temporary(text: str) -> bool:
    """Whether ``text`` (codes and message) says the failure is temporary."""
    if not text:
        return False
    code = find_status(text) or find_reply(text)
    if code.startswith("4"):
        return True
    lowered = text.lower()
    return " temporar" in lowered or " persistent" in lowered


def pseudo_status(reason: str, temporary: bool) -> str:
    """A status for a failure whose message carries no code.

    Returns the class and ``.0.0`` ("other or undefined", RFC 3463 §3.1), the
    honest statement that only the class is known. The class is 4 when the
    text says the failure is temporary, except for reasons that cannot be.
    """
    if reason in ("", "delivered", "feedback", "vacation"):
        return ""
    if temporary and reason not in _NEVER_TEMPORARY:
        return "4.0.0"
    return "5.0.0"


def sisimai_pseudo(reason: str, temporary: bool) -> str:
    """Sisimai's own pseudo code for ``reason`` (``X.0.9NN``), for comparisons."""
    detail = _PSEUDO_DETAIL.get(reason)
    if detail is None:
        return ""
    klass = "4" if temporary and reason not in _NEVER_TEMPORARY else "5"
    return f"{klass}.0.{detail}"
