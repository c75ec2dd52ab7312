"""Random and malformed requests never get a 5xx: bodies, headers and path values.

Every answer to bad input is a 4xx JSON error (or a success, when the random
input happens to be valid); a 500 means an input reached code that did not
expect it. Runs on both engines: PostgreSQL is stricter than SQLite about what
it stores (NUL bytes, integer ranges), which is where such bugs hide.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api, notification

#: Strings that have broken web APIs before: NUL (PostgreSQL cannot store it), lone
#: surrogates (valid in JSON escapes, not Unicode), long and non-ASCII text, huge numbers.
NASTY = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfffy", "ß" * 300, "9" * 40, "%00", ".."])
TEXT = st.text() | NASTY
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=12,
)
#: Printable Latin-1 without CR/LF: what an HTTP client lets one put in a header value.
HEADER_TEXT = st.text(
    st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=80
).map(lambda text: text.encode("latin-1"))
JSON_TYPE: dict[str, str | bytes] = {"Content-Type": "application/json"}
FIELDS = ["topic", "class", "to", "subject", "text", "html", "idempotency_key"]


@st.composite
def notification_bodies(draw: st.DrawFn) -> Any:
    """A valid body with some fields replaced, removed or added, or anything at all."""
    if draw(st.booleans()):
        return draw(JSON)
    body: dict[str, Any] = notification()
    for name in draw(st.lists(st.sampled_from(FIELDS), max_size=4)):
        choice = draw(st.integers(0, 3))
        if choice == 0:
            body.pop(name, None)
        elif choice == 1:
            body[name] = draw(JSON)
        elif choice == 2:
            body[name] = draw(TEXT)
        else:
            body[name] = draw(st.lists(TEXT, max_size=3))
    return body


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, str, dict[str, str | bytes], bytes]:
    segment = quote(draw(TEXT).encode("utf-8", "surrogatepass"), safe="")
    number = draw(st.integers(min_value=-(2**70), max_value=2**70) | st.text(max_size=12))
    method, path, body = draw(
        st.sampled_from(
            [
                ("POST", "/v1/notifications", "notification"),
                ("GET", f"/v1/deliveries/{segment}", None),
                ("GET", f"/v1/topics/{segment}", None),
                ("GET", f"/v1/recipients/{segment}", None),
                ("GET", f"/v1/alerts?state={segment}&limit={quote(str(number))}", None),
                ("POST", f"/v1/alerts/{quote(str(number), safe='')}/resolve", "note"),
                ("GET", "/metrics", None),
                ("GET", "/healthz", None),
            ]
        )
    )
    if body == "notification":
        payload = draw(notification_bodies())
    elif body == "note":
        payload = draw(st.fixed_dictionaries({"note": TEXT}) | JSON)
    else:
        payload = None
    raw = (
        draw(st.binary(max_size=200))
        if draw(st.integers(0, 9)) == 0
        else json.dumps(payload).encode()
    )
    headers: dict[str, str | bytes] = {
        "Content-Type": draw(st.sampled_from(["application/json", "text/plain", ""]))
    }
    if draw(st.booleans()):
        headers["Idempotency-Key"] = draw(HEADER_TEXT)
    if draw(st.integers(0, 4)) == 0:
        headers["Authorization"] = draw(HEADER_TEXT)
    return method, path, headers, raw


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(request=("GET", "/v1/recipients/%00", {}, b""))
@example(request=("GET", "/v1/topics/a%00b", {}, b""))
@example(request=("POST", "/v1/alerts/1/resolve", JSON_TYPE, b'{"note": "a\\u0000b"}'))
@example(
    request=(
        "POST",
        "/v1/notifications",
        JSON_TYPE,
        json.dumps(notification(topic="\ud800")).encode(),
    )
)
@example(
    request=(
        "POST",
        "/v1/notifications",
        JSON_TYPE,
        json.dumps(notification(to=["a\udfff@x.test"])).encode(),
    )
)
@given(request=requests())
def test_no_input_gets_a_server_error(
    client: Api, request: tuple[str, str, dict[str, str | bytes], bytes]
) -> None:
    method, path, headers, raw = request
    response = client.request(method, path, headers=headers, content=raw)
    assert response.status_code < 500, (method, path, headers, raw, response.text)
    if response.status_code >= 400:
        assert set(response.json()) == {"error"}, response.text
