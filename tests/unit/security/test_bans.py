"""Flood and brute-force bans: thresholds, windows, trust, expiry, caps, events."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from softswitch.security.acl import NetworkAcl
from softswitch.security.bans import BanList, BanReason, SourceBanned, SourceUnbanned

ATTACKER = "198.51.100.7"
OTHER = "198.51.100.8"


def make(**kwargs: object) -> BanList:
    defaults: dict[str, object] = {
        "auth_failure_threshold": 3,
        "auth_failure_window": 60.0,
        "flood_threshold": 5,
        "flood_window": 1.0,
        "ban_time": 300.0,
    }
    defaults.update(kwargs)
    return BanList(**defaults)  # type: ignore[arg-type]


# ---------------------------------------------------------------- authentication failures


def test_auth_failures_reaching_threshold_ban() -> None:
    bans = make()
    assert bans.record_auth_failure(ATTACKER, 100.0) is None
    assert bans.record_auth_failure(ATTACKER, 101.0) is None
    assert not bans.is_banned(ATTACKER, 101.0)
    event = bans.record_auth_failure(ATTACKER, 102.0)
    assert event == SourceBanned(ATTACKER, BanReason.AUTH_FAILURES, 402.0)
    assert bans.is_banned(ATTACKER, 102.0)
    assert bans.is_banned(ATTACKER, 401.9)
    assert not bans.is_banned(ATTACKER, 402.0)
    assert not bans.is_banned(OTHER, 102.0)
    assert bans.banned_until(ATTACKER, 200.0) == 402.0


def test_auth_failures_outside_sliding_window_do_not_count() -> None:
    bans = make()
    assert bans.record_auth_failure(ATTACKER, 0.0) is None
    assert bans.record_auth_failure(ATTACKER, 30.0) is None
    # The failure at t=0 slid out of the 60 s window.
    assert bans.record_auth_failure(ATTACKER, 61.0) is None
    assert not bans.is_banned(ATTACKER, 61.0)
    # t=30, 61, 80 are within 60 s of each other.
    event = bans.record_auth_failure(ATTACKER, 80.0)
    assert event is not None and event.reason is BanReason.AUTH_FAILURES


def test_auth_failures_counted_per_source() -> None:
    bans = make()
    for i in range(2):
        assert bans.record_auth_failure(f"192.0.2.{i}", 1.0) is None
        assert bans.record_auth_failure(f"192.0.2.{i}", 2.0) is None
    assert bans.ban_count == 0


def test_failures_while_banned_do_not_extend_ban() -> None:
    bans = make()
    for t in (0.0, 1.0, 2.0):
        bans.record_auth_failure(ATTACKER, t)
    assert bans.record_auth_failure(ATTACKER, 10.0) is None
    assert bans.banned_until(ATTACKER, 10.0) == 302.0


# ---------------------------------------------------------------- floods


def test_flood_more_than_threshold_in_window_bans() -> None:
    bans = make(flood_threshold=5)
    for i in range(5):
        assert bans.record_request(ATTACKER, 10.0 + i * 0.1) is None
    event = bans.record_request(ATTACKER, 10.5)
    assert event == SourceBanned(ATTACKER, BanReason.FLOOD, 310.5)
    assert bans.is_banned(ATTACKER, 10.6)


def test_steady_rate_at_threshold_is_not_a_flood() -> None:
    bans = make(flood_threshold=5)
    for i in range(500):  # 5 requests per second for 100 s
        assert bans.record_request(ATTACKER, i / 5) is None
    assert bans.ban_count == 0


def test_flood_window_restarts() -> None:
    bans = make(flood_threshold=3)
    for t in (0.0, 0.1, 0.2):
        assert bans.record_request(ATTACKER, t) is None
    for t in (1.0, 1.1, 1.2):
        assert bans.record_request(ATTACKER, t) is None
    assert bans.record_request(ATTACKER, 1.3) is not None


def test_banned_source_requests_do_not_extend_ban() -> None:
    bans = make(flood_threshold=1)
    bans.record_request(ATTACKER, 0.0)
    first = bans.record_request(ATTACKER, 0.0)
    assert first is not None
    for t in range(1, 100):
        assert bans.record_request(ATTACKER, float(t)) is None
    assert bans.banned_until(ATTACKER, 100.0) == first.until


# ---------------------------------------------------------------- trust


def test_trusted_networks_are_never_banned() -> None:
    bans = make(flood_threshold=2, trusted=["10.0.0.0/8", "2001:db8::/32"])
    for ip in ("10.1.2.3", "::ffff:10.1.2.3", "2001:db8::1"):
        for i in range(50):
            assert bans.record_request(ip, i * 0.001) is None
            assert bans.record_auth_failure(ip, i * 0.001) is None
        assert bans.ban(ip, 1.0) is None
        assert not bans.is_banned(ip, 1.0)
        assert bans.is_trusted(ip)
    assert not bans.is_trusted(ATTACKER)
    # An untrusted source with the same behaviour is banned.
    results = [bans.record_request(ATTACKER, 0.0) for _ in range(3)]
    assert results[-1] is not None


def test_trusted_accepts_prebuilt_acl() -> None:
    bans = make(auth_failure_threshold=1, trusted=NetworkAcl(["192.0.2.0/24"]))
    assert bans.record_auth_failure("192.0.2.9", 0.0) is None
    assert bans.record_auth_failure(ATTACKER, 0.0) is not None


# ---------------------------------------------------------------- expiry and timers


def test_handle_timer_lifts_bans_and_reports_them() -> None:
    bans = make(auth_failure_threshold=1, ban_time=100.0)
    bans.record_auth_failure(ATTACKER, 0.0)
    bans.record_auth_failure(OTHER, 50.0)
    assert bans.next_deadline() == 100.0
    assert bans.handle_timer(99.0) == []
    assert bans.handle_timer(100.0) == [SourceUnbanned(ATTACKER)]
    assert bans.next_deadline() == 150.0
    assert bans.handle_timer(150.0) == [SourceUnbanned(OTHER)]
    assert bans.next_deadline() is None
    assert bans.ban_count == 0


def test_state_is_pruned_until_empty() -> None:
    bans = make(flood_threshold=100, auth_failure_window=30.0)
    for i in range(20):
        bans.record_request(f"192.0.2.{i}", 5.0 + i * 0.01)
    bans.record_auth_failure(ATTACKER, 5.0)
    assert bans.tracked_count == 21
    assert bans.next_deadline() == pytest.approx(6.0)
    bans.handle_timer(6.1)
    # Counters whose window started at or before 5.1 are gone (11 of 20); the auth history stays.
    assert bans.tracked_count == 9 + 1
    bans.handle_timer(7.0)
    assert bans.tracked_count == 1
    assert bans.next_deadline() == 35.0
    bans.handle_timer(35.0)
    assert bans.tracked_count == 0
    assert bans.next_deadline() is None


def test_bounded_loop_with_fake_clock_ends_empty() -> None:
    bans = make(flood_threshold=20, auth_failure_threshold=4, ban_time=30.0)
    now = 0.0
    unbanned: list[SourceUnbanned] = []
    banned: list[SourceBanned] = []
    for step in range(20_000):
        ip = f"203.0.113.{step % 37}"
        if (event := bans.record_request(ip, now)) is not None:
            banned.append(event)
        if step % 11 == 0 and (event := bans.record_auth_failure(ip, now)) is not None:
            banned.append(event)
        deadline = bans.next_deadline()
        if deadline is not None and deadline <= now:
            unbanned.extend(bans.handle_timer(now))
        now += 0.001
    for _ in range(1000):  # bounded drain
        deadline = bans.next_deadline()
        if deadline is None:
            break
        unbanned.extend(bans.handle_timer(deadline))
    assert bans.next_deadline() is None
    assert bans.ban_count == 0 and bans.tracked_count == 0
    assert banned, "the scenario is meant to cause bans"
    assert sorted(e.ip for e in unbanned) == sorted(e.ip for e in banned)


# ---------------------------------------------------------------- caps


def test_flood_table_is_bounded_and_evicts_oldest() -> None:
    bans = make(flood_threshold=2, max_tracked=10)
    for i in range(25):
        bans.record_request(f"192.0.2.{i}", 0.0)
    assert bans.tracked_count == 10
    assert bans.evictions == 15
    # The oldest source was forgotten: it needs a full window's worth again to be banned.
    assert bans.record_request("192.0.2.0", 0.0) is None
    assert bans.record_request("192.0.2.0", 0.0) is None
    assert bans.record_request("192.0.2.0", 0.0) is not None
    # The newest one was still tracked.
    bans.record_request("192.0.2.24", 0.0)
    assert bans.record_request("192.0.2.24", 0.0) is not None


def test_auth_table_is_bounded() -> None:
    bans = make(auth_failure_threshold=2, max_tracked=5)
    for i in range(12):
        bans.record_auth_failure(f"192.0.2.{i}", float(i))
    assert bans.tracked_count == 5
    assert bans.record_auth_failure("192.0.2.0", 20.0) is None  # evicted, starts over
    assert bans.record_auth_failure("192.0.2.11", 20.0) is not None


def test_ban_table_is_bounded() -> None:
    bans = make(auth_failure_threshold=1, max_bans=4)
    for i in range(10):
        assert bans.record_auth_failure(f"192.0.2.{i}", float(i)) is not None
    assert bans.ban_count == 4
    assert [ip for ip, _ in bans.bans()] == [f"192.0.2.{i}" for i in range(6, 10)]
    assert not bans.is_banned("192.0.2.0", 10.0)
    assert bans.is_banned("192.0.2.9", 10.0)
    # Heap entries of evicted bans do not produce events.
    assert [e.ip for e in bans.handle_timer(10_000.0)] == [f"192.0.2.{i}" for i in range(6, 10)]


# ---------------------------------------------------------------- manual bans


def test_manual_ban_and_unban() -> None:
    bans = make()
    event = bans.ban(ATTACKER, 5.0, duration=10.0)
    assert event == SourceBanned(ATTACKER, BanReason.MANUAL, 15.0)
    assert bans.is_banned(ATTACKER, 14.0)
    assert bans.unban(ATTACKER) == SourceUnbanned(ATTACKER)
    assert bans.unban(ATTACKER) is None
    assert not bans.is_banned(ATTACKER, 6.0)
    assert bans.handle_timer(100.0) == []  # the lifted ban is not reported twice


def test_reban_moves_deadline() -> None:
    bans = make()
    bans.ban(ATTACKER, 0.0, duration=10.0)
    bans.ban(ATTACKER, 0.0, duration=50.0)
    assert bans.next_deadline() == 50.0
    assert bans.handle_timer(10.0) == []
    assert bans.is_banned(ATTACKER, 49.0)
    assert bans.handle_timer(50.0) == [SourceUnbanned(ATTACKER)]


def test_heap_stays_bounded_under_repeated_rebans() -> None:
    bans = make()
    for i in range(10_000):
        bans.ban(ATTACKER, float(i), duration=5.0)
    assert len(bans._ban_heap) <= 2 * bans.ban_count + 65


@pytest.mark.parametrize(
    "kwargs",
    [
        {"auth_failure_threshold": 0},
        {"flood_threshold": 0},
        {"ban_time": 0.0},
        {"flood_window": -1.0},
        {"max_tracked": 0},
        {"max_bans": 0},
    ],
)
def test_invalid_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        make(**kwargs)


def test_events_are_frozen_values() -> None:
    event = SourceBanned(ATTACKER, BanReason.FLOOD, 1.0)
    with pytest.raises(AttributeError):
        event.until = 2.0  # type: ignore[misc]
    assert str(BanReason.AUTH_FAILURES) == "auth-failures"


# ---------------------------------------------------------------- property


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["req", "auth", "timer"]),
            st.integers(0, 7),
            st.floats(0.0, 3.0, allow_nan=False),
        ),
        max_size=200,
    )
)
def test_tables_never_exceed_caps_and_bans_match_model(
    ops: list[tuple[str, int, float]],
) -> None:
    bans = make(flood_threshold=3, auth_failure_threshold=2, max_tracked=4, max_bans=3)
    now = 0.0
    active: dict[str, float] = {}
    for kind, n, dt in ops:
        now += dt
        ip = f"192.0.2.{n}"
        event: SourceBanned | None = None
        if kind == "req":
            event = bans.record_request(ip, now)
        elif kind == "auth":
            event = bans.record_auth_failure(ip, now)
        else:
            for lifted in bans.handle_timer(now):
                assert active.pop(lifted.ip) <= now
        if event is not None:
            assert event.until == now + 300.0
            active[event.ip] = event.until
        assert len(bans._flood) <= 4 and len(bans._auth) <= 4 and bans.ban_count <= 3
        for ip_banned, until in bans.bans():
            assert active[ip_banned] == until


def test_handle_timer_at_next_deadline_always_makes_progress() -> None:
    """Deadlines and expiry use the same arithmetic: firing at next_deadline() clears it."""
    bans = BanList(flood_window=1.0, auth_failure_window=60.0)
    start = 255.9  # (start + 1.0) - start < 1.0, and likewise for 60.0, in binary floating point
    bans.record_request("192.0.2.1", start)
    bans.record_auth_failure("192.0.2.2", start)
    fired = 0
    while (deadline := bans.next_deadline()) is not None and fired < 5:
        bans.handle_timer(deadline)
        fired += 1
    assert bans.next_deadline() is None
    assert fired == 2  # one firing for the flood window, one for the failure history


def test_flood_bans_last_their_own_time() -> None:
    bans = BanList(flood_threshold=2, ban_time=300, flood_ban_time=60)
    events = [bans.record_request("192.0.2.7", 10.0) for _ in range(3)]
    banned = events[-1]
    assert isinstance(banned, SourceBanned) and banned.reason == BanReason.FLOOD
    assert banned.until == 70.0
