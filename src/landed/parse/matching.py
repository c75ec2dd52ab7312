"""How a reason's phrase table is matched against a diagnostic text.

:class:`Phrases` holds one reason's wording (see :mod:`landed.parse.reasons`);
matching is on the lowercased, whitespace-squeezed text, with an index of
"anchor" words so that most phrases are never searched for: a text lacking a
phrase's anchor word cannot contain the phrase.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["Phrases", "aligned", "words_of"]


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
    #: Every anchor word: a text with none of them needs no indexed lookup.
    _all_anchors: frozenset[str] = field(init=False, repr=False, compare=False)

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
        object.__setattr__(self, "_all_anchors", self._anchors | self._ordered_anchors)

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
            return any(phrase in text for phrase in self.substrings) or any(
                aligned(text, pieces) for pieces in self.ordered
            )
        for phrase in self._always:
            if phrase in text:
                return True
        for pieces in self._ordered:
            # The first piece is tested here: most texts fail on it, without a call.
            if pieces[0] in text and aligned(text, pieces):
                return True
        # Most texts share no anchor with a reason: test that without a new set.
        if self._all_anchors.isdisjoint(words):
            return False
        for anchor in self._anchors.intersection(words):
            for phrase in self._anchored[anchor]:
                if phrase in text:
                    return True
        for anchor in self._ordered_anchors.intersection(words):
            for pieces in self._ordered_anchored[anchor]:
                if aligned(text, pieces):
                    return True
        return False
