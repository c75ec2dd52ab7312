from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from landed.errors import ConfigError, TokenError
from landed.tokens import (
    ALPHABET,
    ID_LENGTH,
    Keyring,
    decode_base32,
    encode_base32,
    human_ref,
    id_timestamp_ms,
    new_id,
    normalize_ref,
    topic_root_id,
)

KEY_A = b"a" * 32
KEY_B = b"b" * 32


def test_ids_are_128_bit_time_ordered_and_unique() -> None:
    ids = [new_id() for _ in range(5000)]
    assert len(set(ids)) == len(ids)
    assert ids == sorted(ids), "ids made later must sort later"
    assert all(len(i) == ID_LENGTH for i in ids)
    assert all(decode_base32(i) < 2**128 for i in ids)
    assert abs(id_timestamp_ms(ids[0]) - time.time() * 1000) < 5000


def test_ids_from_different_milliseconds_sort_by_time() -> None:
    assert new_id(1_000) < new_id(1_001) < new_id(2**47)


def test_token_verifies_and_is_a_single_lowercase_word() -> None:
    ring = Keyring("k1", {"k1": KEY_A})
    delivery_id = new_id()
    token = ring.sign(delivery_id)
    assert token.isalnum() and token == token.lower()
    assert token.startswith(delivery_id)
    assert len("bounces+" + token) <= 64
    assert ring.verify(token) == delivery_id


def test_token_survives_case_folding() -> None:
    ring = Keyring("k1", {"k1": KEY_A})
    delivery_id = new_id()
    assert ring.verify(ring.sign(delivery_id).upper()) == delivery_id


@pytest.mark.parametrize("position", [0, 10, 25, 27, 30, 42])
def test_a_changed_character_fails(position: int) -> None:
    ring = Keyring("k1", {"k1": KEY_A})
    token = ring.sign(new_id())
    changed = token[:position] + ("0" if token[position] != "0" else "1") + token[position + 1 :]
    with pytest.raises(TokenError):
        ring.verify(changed)


def test_forged_mac_and_other_key_fail() -> None:
    ours = Keyring("k1", {"k1": KEY_A})
    theirs = Keyring("k1", {"k1": KEY_B})
    with pytest.raises(TokenError):
        ours.verify(theirs.sign(new_id()))


@pytest.mark.parametrize("bad", ["", "short", "x" * 43, "!" * 43, "a" * 200])
def test_malformed_tokens_fail(bad: str) -> None:
    with pytest.raises(TokenError):
        Keyring("k1", {"k1": KEY_A}).verify(bad)


def test_rotation_old_tokens_verify_while_old_key_is_configured() -> None:
    old = Keyring("k1", {"k1": KEY_A})
    old_token = old.sign(new_id())
    rotated = Keyring("k2", {"k1": KEY_A, "k2": KEY_B})
    new_token = rotated.sign(new_id())
    assert rotated.verify(old_token)
    assert rotated.verify(new_token)
    assert new_token[ID_LENGTH : ID_LENGTH + 2] == "k2"
    retired = Keyring("k2", {"k2": KEY_B})
    with pytest.raises(TokenError):
        retired.verify(old_token)


def test_bad_keyrings_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        Keyring("k1", {})
    with pytest.raises(ConfigError):
        Keyring("k1", {"k1": b"short"})
    with pytest.raises(ConfigError):
        Keyring("K!", {"K!": KEY_A})
    with pytest.raises(ConfigError):
        Keyring("k9", {"k1": KEY_A})


def test_human_ref_is_stable_and_normalizes() -> None:
    delivery_id = new_id()
    ref = human_ref(delivery_id)
    assert ref == human_ref(delivery_id)
    assert len(ref) == 9 and ref[4] == "-"
    assert normalize_ref(ref.lower()) == ref.replace("-", "").lower()
    with pytest.raises(TokenError):
        normalize_ref("nope")


def test_topic_root_is_stable_per_topic() -> None:
    assert topic_root_id("INC-1", "corp.test") == topic_root_id("INC-1", "corp.test")
    assert topic_root_id("INC-1", "corp.test") != topic_root_id("INC-2", "corp.test")
    assert topic_root_id("INC-1", "corp.test").endswith("@corp.test")


def _reference_base32(value: int, length: int) -> str:
    """Crockford base32 the slow, obvious way: five bits a digit."""
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(length)))


_LENGTH_AND_VALUE = st.integers(min_value=0, max_value=60).flatmap(
    lambda n: st.tuples(st.just(n), st.integers(0, 2 ** (5 * n) - 1))
)


@given(_LENGTH_AND_VALUE)
def test_encode_base32_is_five_bits_a_digit(case: tuple[int, int]) -> None:
    length, value = case
    assert encode_base32(value, length) == _reference_base32(value, length)
    assert decode_base32(encode_base32(value, length)) == value


@pytest.mark.parametrize(("value", "length"), [(-1, 4), (32, 1), (2**130, 26)])
def test_encode_base32_refuses_what_does_not_fit(value: int, length: int) -> None:
    with pytest.raises(ValueError, match="does not fit"):
        encode_base32(value, length)


def test_token_format_is_unchanged() -> None:
    """Tokens already sent must keep verifying, and new ones look the same: fixed
    values, computed before the encoder and the HMAC were made faster."""
    delivery_id = "0123456789abcdefghjkmnpqrs"
    ring = Keyring("k1", {"k1": b"k" * 32})
    assert ring.sign(delivery_id) == "0123456789abcdefghjkmnpqrsk1v4hp7t1sr4554yrv"
    assert ring.verify("0123456789ABCDEFGHJKMNPQRSK1V4HP7T1SR4554YRV") == delivery_id
    assert ring.verify("O123456789abcdefghjkmnpqrsk1v4hp7tIsr4554yrv") == delivery_id
    assert human_ref(delivery_id) == "9XB9-GJ4C"
    assert topic_root_id("INC-1", "corp.test") == "topic-xf8ybks15h981sayp3051yzs@corp.test"
    assert encode_base32(2**128 - 1, 26) == "7zzzzzzzzzzzzzzzzzzzzzzzzz"
    assert encode_base32(12345, 7) == "0000c1s"
