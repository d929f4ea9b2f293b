"""Account lockout after consecutive failed sign-ins (OWASP ASVS 4.0 §2.2.1).

An agent account is locked after :attr:`Lockout.failures` failed sign-ins in a row (a wrong
password or a wrong second-factor code), for :attr:`Lockout.lock_time` seconds, or, with a
lock time of 0, until an administrator unlocks it (``softswitch agent unlock ID``). A
successful sign-in resets the count; so does the end of a timed lock. While locked, every
sign-in is refused, even one with the right password and code, and it counts no further.

This complements the per-agent and per-address rate limit of the sign-in route (429 for a
minute): the rate limit slows guessing from anywhere, the lock stops it for the account and
tells the agent and the administrator.

Pure: states are values (:class:`LockState`, stored by the caller so a lock survives a restart
of the switch) and time is passed in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = ["LockState", "Lockout"]


@dataclass(frozen=True, slots=True)
class LockState:
    """One account's failures in a row and its lock."""

    failures: int = 0
    """Consecutive failed sign-ins (since the last success, unlock or end of a lock)."""
    locked_at: float | None = None
    """When the account was locked (Unix seconds); None: not locked."""
    locked_until: float | None = None
    """When a timed lock ends (Unix seconds); None while locked: until an administrator
    unlocks the account."""

    @property
    def clear(self) -> bool:
        """No failure and no lock: the state of an account nobody tried."""
        return self.failures == 0 and self.locked_at is None


class Lockout:
    """The lockout rule: ``failures`` failed sign-ins in a row lock the account for
    ``lock_time`` seconds (0: until an administrator unlocks it); ``failures`` 0 turns the
    lock off (only the rate limit remains)."""

    def __init__(self, failures: int, lock_time: float) -> None:
        if failures < 0 or lock_time < 0:
            raise ValueError("failures and lock_time must not be negative")
        self.failures = failures
        self.lock_time = lock_time

    @property
    def enabled(self) -> bool:
        return self.failures > 0

    def locked(self, state: LockState, now: float) -> bool:
        """Whether ``state`` refuses a sign-in at ``now``."""
        if state.locked_at is None:
            return False
        return state.locked_until is None or now < state.locked_until

    def failed(self, state: LockState, now: float) -> LockState:
        """The state after a failed sign-in at ``now`` (a lock that ended starts a new count;
        a failure while locked changes nothing)."""
        if self.locked(state, now):
            return state
        count = 1 if state.locked_at is not None else state.failures + 1
        if self.enabled and count >= self.failures:
            until = now + self.lock_time if self.lock_time > 0 else None
            return LockState(count, now, until)
        return LockState(count)

    @staticmethod
    def succeeded(state: LockState) -> LockState:
        """The state after a successful sign-in: no failures, no lock."""
        return LockState()

    @staticmethod
    def unlocked(state: LockState) -> LockState:
        """The state after an administrator's unlock: no failures, no lock."""
        return LockState()

    @staticmethod
    def message(state: LockState, agent: str) -> str:
        """Why a locked account's sign-in is refused, for the agent (the 403's ``error``)."""
        if state.locked_until is None:
            when = "locked until an administrator unlocks it"
        else:
            moment = datetime.fromtimestamp(state.locked_until, UTC)
            when = f"locked until {moment.isoformat(timespec='seconds')}"
        return (
            f"account {when} after {state.failures} failed sign-ins; "
            f"an administrator can unlock it (softswitch agent unlock {agent})"
        )
