"""How a reason's phrase table is matched against a diagnostic text.

:class:`Phrases` holds one reason's wording (see :mod:`landed.parse.reasons`);
matching is on the lowercased, whitespace-squeezed text, with an index of
"anchor" words so that most phrases are never searched for: a text lacking a
phrase's anchor word cannot contain the phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["PhraseIndex", "Phrases", "aligned", "words_of"]


def aligned(text: str, pieces: tuple[str, ...]) -> bool:
    """Whether ``pieces`` all occur in ``text``, each after the end of the previous one."""
    pos = 0
    for piece in pieces:
        found = text.find(piece, pos)
        if found < 0:
            return False
        pos = found + len(piece)
    return True


_WORD = re.compile(r"[a-z0-9]+")


def words_of(text: str) -> frozenset[str]:
    """The alphanumeric runs of a lowercased text (see :meth:`Phrases.match`)."""
    return frozenset(_WORD.findall(text))


def _anchor(phrase: str) -> str:
    """The longest word of ``phrase`` bounded by non-alphanumerics inside the phrase.

    Such a word is a whole alphanumeric run of any text containing the phrase,
    so a text whose runs lack it cannot contain the phrase: the phrase need not
    be searched. Phrases without one (a single word, CJK) are always searched.
    """
    best = ""
    for match in _WORD.finditer(phrase):
        start, end = match.span()
        if start == 0 or end == len(phrase):
            continue
        if len(match.group(0)) > len(best):
            best = match.group(0)
    return best


@dataclass(frozen=True, slots=True)
class Phrases:
    """How one reason is worded: plain substrings, ordered pieces, and vetoes."""

    substrings: tuple[str, ...] = ()
    ordered: tuple[tuple[str, ...], ...] = ()
    #: Substrings that mean the text is *not* this reason even if it matches.
    unless: tuple[str, ...] = ()
    _always: tuple[str, ...] = field(init=False, repr=False, compare=False)
    _anchored: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)
    _anchors: frozenset[str] = field(init=False, repr=False, compare=False)
    _ordered: tuple[tuple[str, ...], ...] = field(init=False, repr=False, compare=False)
    _ordered_anchored: dict[str, tuple[tuple[str, ...], ...]] = field(
        init=False, repr=False, compare=False
    )
    _ordered_anchors: frozenset[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        always: list[str] = []
        anchored: dict[str, list[str]] = {}
        for phrase in self.substrings:
            anchor = _anchor(phrase)
            if anchor:
                anchored.setdefault(anchor, []).append(phrase)
            else:
                always.append(phrase)
        object.__setattr__(self, "_always", tuple(always))
        object.__setattr__(self, "_anchored", {k: tuple(v) for k, v in anchored.items()})
        object.__setattr__(self, "_anchors", frozenset(anchored))
        loose: list[tuple[str, ...]] = []
        by_anchor: dict[str, list[tuple[str, ...]]] = {}
        for pieces in self.ordered:
            anchor = max((_anchor(p) for p in pieces), key=len)
            if anchor:
                by_anchor.setdefault(anchor, []).append(pieces)
            else:
                loose.append(pieces)
        object.__setattr__(self, "_ordered", tuple(loose))
        object.__setattr__(self, "_ordered_anchored", {k: tuple(v) for k, v in by_anchor.items()})
        object.__setattr__(self, "_ordered_anchors", frozenset(by_anchor))

    def match(self, text: str, words: frozenset[str] | None = None) -> bool:
        """Whether the lowercased ``text`` words this reason.

        ``words`` (from :func:`words_of`) lets most phrases be skipped without
        a search: only those whose anchor word occurs in the text are looked for.
        """
        if not text:
            return False
        for veto in self.unless:
            if veto in text:
                return False
        if words is None:
            for phrase in self.substrings:
                if phrase in text:
                    return True
        else:
            for phrase in self._always:
                if phrase in text:
                    return True
            for anchor in self._anchors.intersection(words):
                for phrase in self._anchored[anchor]:
                    if phrase in text:
                        return True
        if words is None:
            return any(aligned(text, pieces) for pieces in self.ordered)
        for pieces in self._ordered:
            if aligned(text, pieces):
                return True
        for anchor in self._ordered_anchors.intersection(words):
            for pieces in self._ordered_anchored[anchor]:
                if aligned(text, pieces):
                    return True
        return False


class PhraseIndex:
    """Every reason's phrases in one index: which reasons a text words, in one pass.

    The classifier asks about a dozen reasons per diagnostic; answering all of
    them at once visits each candidate phrase once instead of walking every
    reason's table in turn. The result is the same as :meth:`Phrases.match`
    per reason (a reason matches when a phrase or ordered piece list occurs
    and none of its vetoes does).
    """

    __slots__ = ("_always", "_anchored", "_anchors", "_ordered", "_ordered_anchored", "_unless")

    def __init__(self, tables: dict[str, Phrases]) -> None:
        always: list[tuple[str, str]] = []
        anchored: dict[str, list[tuple[str, str]]] = {}
        ordered: list[tuple[tuple[str, ...], str]] = []
        ordered_anchored: dict[str, list[tuple[tuple[str, ...], str]]] = {}
        self._unless = {reason: p.unless for reason, p in tables.items() if p.unless}
        for reason, phrases in tables.items():
            always.extend((phrase, reason) for phrase in phrases._always)
            for anchor, group in phrases._anchored.items():
                anchored.setdefault(anchor, []).extend((phrase, reason) for phrase in group)
            ordered.extend((pieces, reason) for pieces in phrases._ordered)
            for anchor, pieces_group in phrases._ordered_anchored.items():
                ordered_anchored.setdefault(anchor, []).extend(
                    (pieces, reason) for pieces in pieces_group
                )
        self._always = tuple(always)
        self._anchored = {k: tuple(v) for k, v in anchored.items()}
        self._ordered = tuple(ordered)
        self._ordered_anchored = {k: tuple(v) for k, v in ordered_anchored.items()}
        self._anchors = frozenset(self._anchored) | frozenset(self._ordered_anchored)

    def reasons(self, text: str, words: frozenset[str]) -> frozenset[str]:
        """The reasons the lowercased ``text`` words (``words``: :func:`words_of` of it)."""
        if not text:
            return frozenset()
        found: set[str] = set()
        for phrase, reason in self._always:
            if reason not in found and phrase in text:
                found.add(reason)
        for pieces, reason in self._ordered:
            if reason not in found and aligned(text, pieces):
                found.add(reason)
        for anchor in self._anchors.intersection(words):
            for phrase, reason in self._anchored.get(anchor, ()):
                if reason not in found and phrase in text:
                    found.add(reason)
            for pieces, reason in self._ordered_anchored.get(anchor, ()):
                if reason not in found and aligned(text, pieces):
                    found.add(reason)
        for reason in [r for r in found if r in self._unless]:
            if any(veto in text for veto in self._unless[reason]):
                found.discard(reason)
        return frozenset(found)
