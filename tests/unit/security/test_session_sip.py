"""Per-session SIP digest credentials: distinct usernames, HA1 as the digest check computes
it, expiry, revocation and the bounds of the table."""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable

import pytest

from softswitch.security.session_sip import CredentialsFull, SessionCredentials
from softswitch.sip.auth import ha1

REALM = "example.test"


def counter_bytes() -> Callable[[int], bytes]:
    """A deterministic random source: each call gives the next counter value's bytes."""
    numbers = itertools.count(1)

    def draw(n: int) -> bytes:
        return next(numbers).to_bytes(n, "big")

    return draw


def test_issue_gives_a_distinct_username_per_session_and_ha1_of_the_password() -> None:
    creds = SessionCredentials(REALM)
    first, password = creds.issue("1001", 100.0, 60.0)
    second, other = creds.issue("1001", 100.0, 60.0)
    assert first != second and password != other
    assert re.fullmatch(r"1001\.[a-z2-7]{8}", first)
    assert len(password) == 32
    found = creds.lookup(first, 120.0)
    assert found is not None
    user, hashes = found
    assert user == "1001"
    assert hashes == {
        "MD5": ha1(first, REALM, password, "MD5"),
        "SHA-256": ha1(first, REALM, password, "SHA-256"),
    }
    assert creds.lookup("1001", 120.0) is None  # the bare SIP user is no session


def test_the_injected_source_makes_the_ids() -> None:
    creds = SessionCredentials(REALM, random_bytes=counter_bytes())
    name, password = creds.issue("7", 0.0, 10.0)
    assert name == "7.aaaaaaab"  # base32 of 0x0000000001
    assert password == "a" * 31 + "c"  # 20 bytes holding 2: base32 ...AAAC


def test_a_repeated_tag_is_drawn_again() -> None:
    draws = iter([b"\x00" * 5, b"\x01" * 20, b"\x00" * 5, b"\x00" * 5, b"\x02" * 5, b"\x03" * 20])
    creds = SessionCredentials(REALM, random_bytes=lambda n: next(draws))
    a, _ = creds.issue("1", 0.0, 10.0)
    b, _ = creds.issue("1", 0.0, 10.0)
    assert a != b and len(creds) == 2


def test_credentials_expire() -> None:
    creds = SessionCredentials(REALM)
    name, _ = creds.issue("1001", 100.0, 60.0)
    assert creds.lookup(name, 159.9) is not None
    assert creds.lookup(name, 160.0) is None
    assert len(creds) == 0


def test_revoke_and_revoke_user() -> None:
    creds = SessionCredentials(REALM)
    a, _ = creds.issue("1001", 0.0, 60.0)
    b, _ = creds.issue("1001", 0.0, 60.0)
    c, _ = creds.issue("1002", 0.0, 60.0)
    assert creds.revoke(a) and not creds.revoke(a)
    assert creds.lookup(a, 1.0) is None and creds.lookup(b, 1.0) is not None
    assert creds.revoke_user("1001") == 1
    assert creds.lookup(b, 1.0) is None and creds.lookup(c, 1.0) is not None
    assert creds.revoke_user("1001") == 0


def test_per_user_bound_revokes_the_oldest() -> None:
    creds = SessionCredentials(REALM, per_user=2)
    names = [creds.issue("1001", float(i), 60.0)[0] for i in range(3)]
    assert creds.lookup(names[0], 3.0) is None
    assert all(creds.lookup(n, 3.0) is not None for n in names[1:])


def test_a_full_table_purges_expired_ones_then_refuses() -> None:
    creds = SessionCredentials(REALM, max_sessions=3)
    for user in ("1", "2", "3"):
        creds.issue(user, 0.0, 10.0)
    with pytest.raises(CredentialsFull):
        creds.issue("4", 5.0, 10.0)
    name, _ = creds.issue("4", 10.0, 10.0)  # the three expired at 10
    assert len(creds) == 1 and creds.lookup(name, 11.0) is not None


def test_bad_arguments() -> None:
    with pytest.raises(ValueError):
        SessionCredentials(REALM, max_sessions=0)
    with pytest.raises(ValueError):
        SessionCredentials(REALM).issue("1", 0.0, 0.0)
