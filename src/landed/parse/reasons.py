"""The reason vocabulary and the phrases by which mail systems word each reason.

A reason is one word from the vocabulary in the bounce corpus README (the
names Sisimai uses, so results can be compared with it). Each reason has a
:class:`~landed.parse.matching.Phrases` table: substrings (matched against the
lowercased, whitespace-squeezed diagnostic text) and *ordered* pieces that
must appear in that order (``("mailbox ", "full")`` matches "mailbox for
kijitora is full"). The tables are in :mod:`~landed.parse.phrases_party`
(recipient, sender, sending host) and :mod:`~landed.parse.phrases_message`
(content, systems, network).

The phrases were collected from real bounces: most of them from the MTAs'
source or documentation and from the public Sisimai rule set (BSD-2, whose
reason names and many of whose phrases this table shares), the rest from the
bounce corpus. Where a phrase belongs to one system, the comment names it.

Matching only answers "does this text word reason X?"; which reason wins when
several match, and how the status code weighs in, is decided in
:mod:`landed.parse.classify`.
"""

from __future__ import annotations

from landed.parse.matching import Phrases, aligned, words_of
from landed.parse.phrases_message import MESSAGE_PHRASES
from landed.parse.phrases_party import PARTY_PHRASES

__all__ = ["PHRASES", "REASONS", "Phrases", "aligned", "includes", "words_of"]

#: Every reason the parser can report.
REASONS = (
    "authfailure",
    "badreputation",
    "blocked",
    "contenterror",
    "delivered",
    "exceedlimit",
    "expired",
    "failedstarttls",
    "feedback",
    "filtered",
    "hasmoved",
    "hostunknown",
    "mailboxfull",
    "mailererror",
    "mesgtoobig",
    "networkerror",
    "norelaying",
    "notaccept",
    "notcompliantrfc",
    "onhold",
    "policyviolation",
    "rejected",
    "requireptr",
    "securityerror",
    "spamdetected",
    "speeding",
    "suspend",
    "syntaxerror",
    "systemerror",
    "systemfull",
    "toomanyconn",
    "undefined",
    "userunknown",
    "vacation",
    "virusdetected",
)

#: The phrase table of every reason that has one.
PHRASES: dict[str, Phrases] = {**PARTY_PHRASES, **MESSAGE_PHRASES}


def includes(reason: str, text: str, words: frozenset[str] | None = None) -> bool:
    """Whether the lowercased ``text`` words ``reason`` (``words``: see :func:`words_of`)."""
    phrases = PHRASES.get(reason)
    return phrases is not None and phrases.match(text, words)
