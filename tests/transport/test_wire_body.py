"""The DATA payload: CRLF everywhere, dot-stuffed, terminated; fast path and slow path agree."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from landed.transport.smtp import _wire_body


def reference(message: bytes) -> bytes:
    data = re.sub(rb"\r\n|\r|\n", b"\r\n", message)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return re.sub(rb"(?m)^\.", b"..", data) + b".\r\n"


def test_composed_mail_passes_unchanged_but_terminated() -> None:
    message = b"Subject: x\r\n\r\nline one\r\nline two\r\n"
    assert _wire_body(message) == message + b".\r\n"


def test_bare_line_ends_and_leading_dots() -> None:
    assert _wire_body(b".a\nb\r.c\r\n..d") == b"..a\r\nb\r\n..c\r\n...d\r\n.\r\n"


def test_a_bare_lf_before_a_dot_cannot_end_the_data_early() -> None:
    # The raw material of SMTP smuggling: "\n.\n" must not reach the wire as is.
    wire = _wire_body(b"a\n.\nMAIL FROM:<x@evil.test>\r\n")
    assert b"\r\n.\r\n" not in wire[:-3] and b"\n.\n" not in wire


@given(st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"x.y", b" "]), max_size=30))
def test_fast_path_agrees_with_the_regexes(parts: list[bytes]) -> None:
    message = b"".join(parts)
    assert _wire_body(message) == reference(message)
