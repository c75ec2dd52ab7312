"""validate_request: recipients are parsed once per address and remembered; errors
still name the field, however often the same address was seen before."""

from __future__ import annotations

import pytest

from landed.compose.request import validate_request
from landed.errors import HeaderInjectionError, InputError


def _to(to: list[str]) -> list[str]:
    request = validate_request(topic="T", cls="c", to=to, subject="s", text="t")
    return [f"{m.display_name}|{m.address}" for m in request.to]


def test_recipients_as_given_once_each() -> None:
    for _ in range(2):  # the second time from the cache: the same answer
        assert _to(["Bob <Bob@Corp.Test>", "alice@corp.test", "bob@corp.test"]) == [
            "Bob|Bob@corp.test",
            "|alice@corp.test",
        ]


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ("not an address", InputError),
        ("", InputError),
        ("x@corp.test\r\nBcc: all@corp.test", HeaderInjectionError),
    ],
)
def test_a_bad_recipient_is_named_by_its_position(bad: str, error: type[Exception]) -> None:
    for _ in range(2):
        with pytest.raises(error, match=r"to\[1\]|empty"):
            _to(["alice@corp.test", bad])


def test_not_a_string_is_refused() -> None:
    with pytest.raises(TypeError):
        _to(["alice@corp.test", ["bob@corp.test"]])  # type: ignore[list-item]
