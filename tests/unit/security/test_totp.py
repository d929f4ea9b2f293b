"""TOTP (RFC 6238): the algorithm against the RFC's test vectors, the switch's 6-digit codes,
the window of one step either way, and refusal of a code whose step was already used."""

from __future__ import annotations

import base64
import hmac
import struct
from hashlib import sha1
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

from softswitch.security import totp

#: RFC 6238 Appendix B: the SHA-1 seed is the ASCII text "12345678901234567890"
RFC_SECRET = base64.b32encode(b"12345678901234567890").decode()

#: RFC 6238 Appendix B, the SHA-1 column (8 digits)
RFC_VECTORS = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("at", "expected"), RFC_VECTORS)
def test_rfc_6238_appendix_b_sha1_vectors(at: int, expected: str) -> None:
    assert totp.code_at(RFC_SECRET, at, digits=8) == expected


def hotp(secret: bytes, counter: int, digits: int) -> str:
    """RFC 4226 §5.3 written out, to check the 6-digit default independently."""
    mac = hmac.new(secret, struct.pack(">Q", counter), sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset : offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10**digits).zfill(digits)


@pytest.mark.parametrize(("at", "_"), RFC_VECTORS)
def test_six_digit_codes_are_the_low_digits_of_hotp(at: int, _: str) -> None:
    code = totp.code_at(RFC_SECRET, at)
    assert len(code) == 6
    assert code == hotp(b"12345678901234567890", at // 30, 6)
    assert code == _[-6:]  # truncation modulo 10^6 keeps the last six digits of the 8


def test_new_secrets_are_160_random_bits_in_base32() -> None:
    secrets = {totp.new_secret() for _ in range(50)}
    assert len(secrets) == 50
    for secret in secrets:
        assert len(secret) == 32 and "=" not in secret
        assert len(base64.b32decode(secret)) == 20
        assert totp.valid_secret(secret)
    assert not totp.valid_secret("NOT*BASE32*AT*ALL*")
    assert not totp.valid_secret("ABCDEFGH")  # 40 bits


def test_provisioning_uri_follows_the_key_uri_format() -> None:
    secret = totp.new_secret()
    uri = totp.provisioning_uri(secret, "ann")
    parts = urlsplit(uri)
    assert (parts.scheme, parts.netloc) == ("otpauth", "totp")
    assert unquote(parts.path) == "/softswitch:ann"
    query = parse_qs(parts.query)
    assert query["secret"] == [secret]
    assert query["issuer"] == ["softswitch"]
    # defaults of the format: SHA-1, 6 digits, 30 s
    assert query.get("algorithm", ["SHA1"]) == ["SHA1"]
    assert query.get("digits", ["6"]) == ["6"]
    assert query.get("period", ["30"]) == ["30"]


def test_verify_accepts_one_step_either_way_and_no_further() -> None:
    secret = totp.new_secret()
    now = 1_700_000_015.0
    step = totp.step_of(now)
    for offset in (-1, 0, 1):
        code = totp.code_at(secret, now + 30 * offset)
        assert totp.verify(secret, code, now, last_step=None) == step + offset
    for offset in (-3, -2, 2, 3):
        code = totp.code_at(secret, now + 30 * offset)
        # a code of a far step may equal a near one by chance (1 in 10^6): only then it passes
        near = {totp.code_at(secret, now + 30 * o) for o in (-1, 0, 1)}
        if code not in near:
            assert totp.verify(secret, code, now, last_step=None) is None


def test_a_used_step_and_older_ones_are_refused() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    code = totp.code_at(secret, now)
    step = totp.verify(secret, code, now, last_step=None)
    assert step == totp.step_of(now)
    assert totp.verify(secret, code, now + 5, last_step=step) is None  # replay
    previous = totp.code_at(secret, now - 30)
    if previous != code:
        assert totp.verify(secret, previous, now, last_step=step) is None  # older than used
    following = totp.code_at(secret, now + 30)
    assert totp.verify(secret, following, now + 30, last_step=step) == step + 1


@pytest.mark.parametrize(
    "bad", ["", "12345", "1234567", "12345a", "\uff11\uff12\uff13\uff14\uff15\uff16", " 123456"]
)
def test_malformed_codes_match_nothing(bad: str) -> None:
    secret = totp.new_secret()
    assert totp.verify(secret, bad, 1_700_000_000.0, last_step=None) is None


def test_a_wrong_secret_does_not_verify() -> None:
    now = 1_700_000_000.0
    one, other = totp.new_secret(), totp.new_secret()
    code = totp.code_at(one, now)
    near = {totp.code_at(other, now + 30 * o) for o in (-1, 0, 1)}
    if code not in near:
        assert totp.verify(other, code, now, last_step=None) is None
