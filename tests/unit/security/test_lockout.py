"""Account lockout after consecutive failed sign-ins: counting, timed and indefinite locks,
reset on success, and the message shown to the agent."""

from __future__ import annotations

import pytest

from softswitch.security.lockout import Lockout, LockState


def fail(rule: Lockout, times: int, now: float, state: LockState | None = None) -> LockState:
    state = state or LockState()
    for _ in range(times):
        state = rule.failed(state, now)
    return state


def test_the_nth_failure_in_a_row_locks_for_the_lock_time() -> None:
    rule = Lockout(3, 600)
    state = fail(rule, 2, 100.0)
    assert state == LockState(2) and not rule.locked(state, 100.0)
    state = rule.failed(state, 110.0)
    assert state == LockState(3, 110.0, 710.0)
    assert rule.locked(state, 110.0) and rule.locked(state, 709.9)
    assert not rule.locked(state, 710.0)


def test_failures_while_locked_change_nothing_and_a_lock_that_ended_counts_anew() -> None:
    rule = Lockout(2, 60)
    locked = fail(rule, 2, 0.0)
    assert rule.failed(locked, 30.0) == locked
    after = rule.failed(locked, 61.0)
    assert after == LockState(1) and not rule.locked(after, 61.0)
    assert rule.locked(rule.failed(after, 62.0), 62.0)


def test_a_success_resets_the_count() -> None:
    rule = Lockout(3, 60)
    state = fail(rule, 2, 0.0)
    state = rule.succeeded(state)
    assert state.clear
    assert not rule.locked(fail(rule, 2, 1.0, state), 1.0)


def test_lock_time_zero_locks_until_an_administrator_unlocks() -> None:
    rule = Lockout(2, 0)
    state = fail(rule, 2, 50.0)
    assert state == LockState(2, 50.0, None)
    assert rule.locked(state, 50.0) and rule.locked(state, 10.0**12)
    assert rule.unlocked(state).clear


def test_failures_zero_never_locks() -> None:
    rule = Lockout(0, 60)
    state = fail(rule, 100, 0.0)
    assert state.failures == 100 and not rule.locked(state, 0.0)


def test_the_message_names_the_time_the_count_and_the_unlock_command() -> None:
    timed = Lockout.message(LockState(5, 1_700_000_000.0, 1_700_000_900.0), "ann")
    assert timed == (
        "account locked until 2023-11-14T22:28:20+00:00 after 5 failed sign-ins; "
        "an administrator can unlock it (softswitch agent unlock ann)"
    )
    forever = Lockout.message(LockState(3, 1_700_000_000.0, None), "bob")
    assert "locked until an administrator unlocks it after 3 failed sign-ins" in forever
    assert forever.endswith("(softswitch agent unlock bob)")


def test_negative_settings_are_refused() -> None:
    with pytest.raises(ValueError):
        Lockout(-1, 60)
    with pytest.raises(ValueError):
        Lockout(3, -1)
