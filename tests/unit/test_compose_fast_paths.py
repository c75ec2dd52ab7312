"""The fast paths taken for speed give exactly what the general code gives."""

from __future__ import annotations

from email.utils import parseaddr

import pytest
from hypothesis import given
from hypothesis import strategies as st

from landed.compose import parse_mailbox, xtext
from landed.compose.headers import _DOMAIN, _LOCAL, Mailbox
from landed.errors import InputError

_ATEXT = "ABCXYZabcxyz0189!#$%&'*+/=?^_`{|}~-"


def slow_parse(text: str) -> Mailbox | None:
    """parse_mailbox as it was, parseaddr() always: a Mailbox or None if refused."""
    name, addr = parseaddr(text.strip())
    if not addr or "@" not in addr:
        return None
    if "<" in text and not text.rstrip().endswith(">"):
        return None
    local, _, domain = addr.rpartition("@")
    if len(local) > 64 or not _LOCAL.match(local):
        return None
    if len(domain) > 253 or not _DOMAIN.match(domain):
        return None
    return Mailbox(local=local, domain=domain.lower(), display_name=name.strip())


def fast_parse(text: str) -> Mailbox | None:
    try:
        return parse_mailbox(text, "to")
    except InputError:
        return None


atoms = st.text(alphabet=_ATEXT, min_size=1, max_size=12)
labels = st.text(alphabet="abcXYZ019-", min_size=1, max_size=10)


@given(
    local=st.lists(atoms, min_size=1, max_size=4).map(".".join),
    domain=st.lists(labels, min_size=1, max_size=4).map(".".join),
    pad=st.sampled_from(["", " ", "  "]),
)
def test_plain_addresses_parse_as_parseaddr_does(local: str, domain: str, pad: str) -> None:
    text = f"{pad}{local}@{domain}{pad}"
    assert fast_parse(text) == slow_parse(text)


@given(st.text(alphabet=_ATEXT + ".@<> \"'()[],;:\\é", max_size=40))
def test_any_text_parses_as_parseaddr_does(text: str) -> None:
    assert fast_parse(text) == slow_parse(text)


@pytest.mark.parametrize(
    "text",
    [
        "alice@corp.test",
        "Alice.B+tag@Corp.Test",
        "Bob <bob@corp.test>",
        '"Bob, B." <bob@corp.test>',
        "a..b@corp.test",
        ".a@corp.test",
        "a@-corp.test",
        "a@corp",
        "a@corp..test",
        "x" * 65 + "@corp.test",
    ],
)
def test_examples(text: str) -> None:
    assert fast_parse(text) == slow_parse(text)


def slow_xtext(value: str) -> str:
    out = []
    for byte in value.encode("utf-8"):
        if 33 <= byte <= 126 and byte not in (ord("+"), ord("=")):
            out.append(chr(byte))
        else:
            out.append(f"+{byte:02X}")
    return "".join(out)


@given(st.text(max_size=40))
def test_xtext_fast_path(value: str) -> None:
    assert xtext(value) == slow_xtext(value)


def test_xtext_examples() -> None:
    for value in ["", "abc", "a+b", "a=b", "a b", "é", "~!*,<>", "\x7f"]:
        assert xtext(value) == slow_xtext(value)
