"""Small helpers shared by the dialect readers."""

from __future__ import annotations

import re

from landed.parse.fields import address_of

__all__ = ["angle_address", "cut", "lines_between", "squeeze"]

_ANGLE = re.compile(r"<([^<>\s]+@[^<>\s]+)>")


def cut(text: str, markers: tuple[str, ...]) -> tuple[str, str]:
    """Split ``text`` at the earliest of ``markers``: (before, from the marker on).

    Bounces in plain text end their explanation with a line such as "--- Below
    this line is a copy of the message." (qmail); the rest is the returned
    message. Without a marker everything is explanation.
    """
    best = -1
    for marker in markers:
        at = text.find(marker)
        if at >= 0 and (best < 0 or at < best):
            best = at
    if best < 0:
        return text, ""
    return text[:best], text[best:]


def returned_after(text: str, markers: tuple[str, ...]) -> str:
    """The returned message after the marker line (marker line dropped)."""
    _, tail = cut(text, markers)
    if not tail:
        return ""
    newline = tail.find("\n")
    return tail[newline + 1 :].lstrip("\n") if newline >= 0 else ""


def lines_between(text: str, start: tuple[str, ...], stop: tuple[str, ...] = ()) -> list[str]:
    """Lines after the first line starting with one of ``start``, up to ``stop``."""
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if line.startswith(start):
            out: list[str] = []
            for following in lines[index + 1 :]:
                if stop and following.startswith(stop):
                    break
                out.append(following)
            return out
    return []


def angle_address(text: str) -> str:
    """The first ``<local@domain>`` in ``text``, else any address in it."""
    match = _ANGLE.search(text)
    if match is not None:
        return match.group(1).strip(".")
    return address_of(text)


def squeeze(text: str) -> str:
    """Whitespace runs become one space; ends trimmed."""
    return " ".join(text.split())
