"""Slow fuzzing: mutated corpus mail, random MIME, huge and pathological messages.

These call the parser's inner function, which does *not* turn an internal
error into a "not-bounce" report, so that a detector that raises is caught
here instead of hidden. Time per message is bounded by pytest-timeout, not by
timed asserts.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from bench.corpus_compare import corpus_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landed.parse.pipeline import _parse

pytestmark = pytest.mark.slow
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _corpus() -> list[bytes]:
    base = corpus_dir()
    files = sorted(base.glob("**/*.eml"))
    if not files:
        if IN_CI:
            pytest.fail(f"bounce corpus missing at {base}")
        pytest.skip(f"bounce corpus not found at {base}")
    return [p.read_bytes() for p in files[:: max(1, len(files) // 120)]]


@pytest.fixture(scope="module")
def corpus() -> list[bytes]:
    return _corpus()


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_mutated_corpus_mail_never_raises(corpus: list[bytes], data: st.DataObject) -> None:
    raw = data.draw(st.sampled_from(corpus))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        at = data.draw(st.integers(min_value=0, max_value=len(raw)))
        cut = data.draw(st.integers(min_value=0, max_value=300))
        insert = data.draw(
            st.one_of(
                st.binary(max_size=80),
                st.sampled_from(
                    [
                        b"\r\n\r\n",
                        b"\n--",
                        b"Content-Type: multipart/mixed; boundary=x\n",
                        b"\x00",
                        b"=?utf-8?b?",
                        b"Status: 9.9.9\n",
                        b"Action: \n",
                    ]
                ),
            )
        )
        raw = raw[:at] + insert + raw[at + cut :]
    _parse(raw, None)


mime_part = st.recursive(
    st.tuples(
        st.sampled_from(
            ["text/plain", "message/delivery-status", "text/rfc822-headers", "message/rfc822"]
        ),
        st.text(max_size=300),
    ).map(lambda p: f"Content-Type: {p[0]}\n\n{p[1]}"),
    lambda children: st.lists(children, min_size=1, max_size=4).map(
        lambda parts: (
            'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
            + "".join(f"--b\n{part}\n" for part in parts)
            + "--b--\n"
        )
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(body=mime_part, subject=st.text(max_size=100))
def test_random_mime_never_raises(body: str, subject: str) -> None:
    raw = f"From: MAILER-DAEMON@x.test\nSubject: {subject}\nMIME-Version: 1.0\n{body}"
    _parse(raw.encode("utf-8", "surrogatepass"), None)


@pytest.mark.timeout(60)
def test_a_ten_megabyte_bounce() -> None:
    line = b"Diagnostic-Code: smtp; 550 5.1.1 user unknown " + b"x" * 60 + b"\r\n"
    body = line * (10 * 1024 * 1024 // len(line))
    raw = (
        b"From: MAILER-DAEMON@x.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\n"
        + body
        + b"\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Final-Recipient: rfc822; a@x.test\r\nAction: failed\r\nStatus: 5.1.1\r\n--b--\r\n"
    )
    assert len(raw) > 10 * 1024 * 1024
    _parse(raw, None)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "raw",
    [
        b"Subject: " + b"a" * 1_000_000 + b"\r\n\r\nbody",
        b"".join(b"Received: from x by y; " + b"(" * 1000 + b"\r\n" for _ in range(2000))
        + b"\r\nbody",
        b"Subject: " + b" =?utf-8?q?" * 50_000 + b"\r\n\r\n",
        b"From: " + b"<" * 200_000 + b"\r\n\r\n",
        b"Content-Type: multipart/mixed; boundary="
        + b"x" * 100_000
        + b"\r\n\r\n"
        + b"--x\r\n" * 10_000,
        b"Subject: Returned mail\r\n\r\n" + b"550 " * 500_000,
        b"\r\n".join(b"X-H%d: %s" % (i, b"v " * 50) for i in range(50_000)) + b"\r\n\r\n",
        (b"Final-Recipient: rfc822; " + b"a@" * 100_000 + b"\r\n") * 3,
        Path(__file__).read_bytes() * 50,
    ],
    ids=[
        "long-subject",
        "many-received",
        "encoded-words",
        "angle-brackets",
        "huge-boundary",
        "repeated-codes",
        "many-headers",
        "at-signs",
        "python-source",
    ],
)
def test_pathological_input_is_bounded(raw: bytes) -> None:
    _parse(raw, None)
