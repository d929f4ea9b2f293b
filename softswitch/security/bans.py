"""Brute-force and flood bans for the request pipeline ("flood and ban check" step).

A sans-I/O abuse tracker (ARCHITECTURE.md, principles 1 and 6): every input carries ``now``
(monotonic seconds), nothing here reads a clock, and every table has an expiry and a size cap.

Two kinds of abuse lead to a ban of the source address: authentication failures (for
``ban_time`` seconds) and floods (for ``flood_ban_time``, by default the same):

* **Authentication failures** (digest credentials rejected, RFC 3261 §22): when a source
  collects ``auth_failure_threshold`` failures within a sliding window of
  ``auth_failure_window`` seconds.
* **Request floods**: when a source sends more than ``flood_threshold`` requests within one
  window of ``flood_window`` seconds (a fixed window, restarted by the first request after the
  previous window ended; a burst that straddles two windows may therefore reach twice the
  threshold before it is caught by the next window).

Sources inside the ``trusted`` networks (trunks, the switch's own nodes, monitoring) are never
banned. Bans, failure histories and flood counters are evicted oldest-first when their table is
full. The calls that cause a ban return a :class:`SourceBanned`; :meth:`BanList.handle_timer`
returns a :class:`SourceUnbanned` for each ban that ran out, so the adapter can log both.

The tracker keys sources by the address string exactly as given; the transport should hand the
same canonical spelling every time (``ipaddress.ip_address(x).compressed``, IPv4-mapped IPv6
unwrapped). Only the trust check understands alternative spellings.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum

from softswitch.security.acl import NetworkAcl

__all__ = ["BanList", "BanReason", "SourceBanned", "SourceUnbanned"]


class BanReason(StrEnum):
    """Why a source was banned (the value is what logs and the admin API show)."""

    AUTH_FAILURES = "auth-failures"
    FLOOD = "flood"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class SourceBanned:
    """A source address was banned until ``until`` (monotonic seconds)."""

    ip: str
    reason: BanReason
    until: float


@dataclass(frozen=True, slots=True)
class SourceUnbanned:
    """The ban of a source address ended (expired or lifted)."""

    ip: str


class _Flood:
    """Request counter of one source in its current window."""

    __slots__ = ("count", "start")

    def __init__(self, start: float) -> None:
        self.start = start
        self.count = 1


class BanList:
    """Tracks authentication failures and request rates per source address and bans abusers.

    Call :meth:`record_request` for every datagram or message (after :meth:`is_banned` said the
    source may pass), :meth:`record_auth_failure` whenever a request's credentials are rejected,
    and :meth:`handle_timer` when :meth:`next_deadline` is reached.
    """

    __slots__ = (
        "_auth",
        "_auth_threshold",
        "_auth_window",
        "_ban_heap",
        "_ban_time",
        "_bans",
        "_flood",
        "_flood_ban_time",
        "_flood_threshold",
        "_flood_window",
        "_max_bans",
        "_max_tracked",
        "_trusted",
        "evictions",
    )

    def __init__(
        self,
        *,
        auth_failure_threshold: int = 5,
        auth_failure_window: float = 60.0,
        flood_threshold: int = 200,
        flood_window: float = 1.0,
        ban_time: float = 600.0,
        flood_ban_time: float | None = None,
        max_tracked: int = 10_000,
        max_bans: int = 10_000,
        trusted: NetworkAcl | Iterable[str] = (),
    ) -> None:
        if auth_failure_threshold < 1 or flood_threshold < 1:
            raise ValueError("thresholds must be >= 1")
        if auth_failure_window <= 0 or flood_window <= 0 or ban_time <= 0:
            raise ValueError("windows and ban_time must be > 0")
        if max_tracked < 1 or max_bans < 1:
            raise ValueError("table caps must be >= 1")
        self._auth_threshold = auth_failure_threshold
        self._auth_window = float(auth_failure_window)
        self._flood_threshold = flood_threshold
        self._flood_window = float(flood_window)
        self._ban_time = float(ban_time)
        self._flood_ban_time = float(ban_time if flood_ban_time is None else flood_ban_time)
        self._max_tracked = max_tracked
        self._max_bans = max_bans
        self._trusted = trusted if isinstance(trusted, NetworkAcl) else NetworkAcl(trusted)
        # Source -> flood counter; insertion order is window-start order (a source that starts
        # a new window is moved to the end), so the stalest entry is always first.
        self._flood: dict[str, _Flood] = {}
        # Source -> failure times within the window; insertion order is last-failure order.
        self._auth: dict[str, deque[float]] = {}
        # Source -> ban end; plus a heap of (until, ip) for expiry, with lazy deletion.
        self._bans: dict[str, float] = {}
        self._ban_heap: list[tuple[float, str]] = []
        #: Entries dropped because a table was full (flood, auth and ban tables together).
        self.evictions = 0

    # ------------------------------------------------------------------ queries

    def is_banned(self, ip: str, now: float) -> bool:
        """Whether requests from ``ip`` are to be dropped at ``now``."""
        until = self._bans.get(ip)
        return until is not None and now < until

    def banned_until(self, ip: str, now: float) -> float | None:
        """The end of the ban of ``ip`` if it is banned at ``now``, else ``None``."""
        until = self._bans.get(ip)
        if until is None or now >= until:
            return None
        return until

    def bans(self) -> Iterator[tuple[str, float]]:
        """``(ip, until)`` of every ban held (including ones that ran out but await the timer)."""
        return iter(list(self._bans.items()))

    def is_trusted(self, ip: str) -> bool:
        """Whether ``ip`` lies in the trusted networks."""
        return self._trusted.contains(ip)

    @property
    def ban_count(self) -> int:
        return len(self._bans)

    @property
    def tracked_count(self) -> int:
        """Sources with a flood counter or a failure history (one source may count twice)."""
        return len(self._flood) + len(self._auth)

    # ------------------------------------------------------------------ inputs

    def record_request(self, ip: str, now: float) -> SourceBanned | None:
        """Count one request from ``ip``; ban it if it exceeded the flood threshold."""
        entry = self._flood.get(ip)
        if entry is not None:
            if now - entry.start < self._flood_window:
                entry.count += 1
                if entry.count > self._flood_threshold:
                    return self._flooded(ip, now)
                return None
            # New window: move the source to the end so the table stays in window-start order.
            del self._flood[ip]
            entry.start = now
            entry.count = 1
            self._flood[ip] = entry
            return None
        until = self._bans.get(ip)
        if until is not None and now < until:
            return None  # already banned: the ban is not extended by the traffic it drops
        flood = self._flood
        if len(flood) >= self._max_tracked:
            del flood[next(iter(flood))]
            self.evictions += 1
        flood[ip] = _Flood(now)
        return None

    def record_auth_failure(self, ip: str, now: float) -> SourceBanned | None:
        """Record a rejected authentication from ``ip``; ban it at the threshold (§22)."""
        if self.is_banned(ip, now) or self._trusted.contains(ip):
            return None
        history = self._auth.pop(ip, None)
        if history is None:
            history = deque(maxlen=self._auth_threshold)
        horizon = now - self._auth_window
        while history and history[0] <= horizon:
            history.popleft()
        history.append(now)
        if len(history) >= self._auth_threshold:
            return self._ban(ip, now, BanReason.AUTH_FAILURES, self._ban_time)
        auth = self._auth
        if len(auth) >= self._max_tracked:
            del auth[next(iter(auth))]
            self.evictions += 1
        auth[ip] = history  # re-inserted at the end: the table stays in last-failure order
        return None

    def ban(
        self,
        ip: str,
        now: float,
        *,
        duration: float | None = None,
        reason: BanReason = BanReason.MANUAL,
    ) -> SourceBanned | None:
        """Ban ``ip`` for ``duration`` seconds (default ``ban_time``); ``None`` if trusted.

        Banning a source that is already banned extends (or shortens) its ban to the new end.
        """
        if self._trusted.contains(ip):
            return None
        length = self._ban_time if duration is None else float(duration)
        if length <= 0:
            raise ValueError("duration must be > 0")
        return self._ban(ip, now, reason, length)

    def unban(self, ip: str) -> SourceUnbanned | None:
        """Lift the ban of ``ip``; ``None`` if it was not banned."""
        if self._bans.pop(ip, None) is None:
            return None
        self._compact_heap()
        return SourceUnbanned(ip)

    def handle_timer(self, now: float) -> list[SourceUnbanned]:
        """Lift bans that ran out and forget counters and histories that went stale."""
        flood = self._flood
        window = self._flood_window
        # Compare exactly as next_deadline computes (start + window), or float rounding could
        # leave an entry whose deadline has passed and make the caller spin on it.
        while flood:
            ip = next(iter(flood))
            if flood[ip].start + window > now:
                break
            del flood[ip]
        auth = self._auth
        while auth:
            ip = next(iter(auth))
            if auth[ip][-1] + self._auth_window > now:
                break
            del auth[ip]
        lifted: list[SourceUnbanned] = []
        heap = self._ban_heap
        bans = self._bans
        while heap and heap[0][0] <= now:
            until, ip = heapq.heappop(heap)
            if bans.get(ip) == until:
                del bans[ip]
                lifted.append(SourceUnbanned(ip))
        return lifted

    def next_deadline(self) -> float | None:
        """When :meth:`handle_timer` next has something to do, or ``None`` when all is empty."""
        deadlines: list[float] = []
        if self._flood:
            deadlines.append(next(iter(self._flood.values())).start + self._flood_window)
        if self._auth:
            deadlines.append(next(iter(self._auth.values()))[-1] + self._auth_window)
        heap = self._ban_heap
        while heap and self._bans.get(heap[0][1]) != heap[0][0]:
            heapq.heappop(heap)
        if heap:
            deadlines.append(heap[0][0])
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ internals

    def _flooded(self, ip: str, now: float) -> SourceBanned | None:
        del self._flood[ip]
        if self._trusted.contains(ip):
            # Trusted sources restart their window instead of being banned.
            self._flood[ip] = _Flood(now)
            return None
        return self._ban(ip, now, BanReason.FLOOD, self._flood_ban_time)

    def _ban(self, ip: str, now: float, reason: BanReason, length: float) -> SourceBanned:
        until = now + length
        bans = self._bans
        if ip in bans:
            del bans[ip]
        elif len(bans) >= self._max_bans:
            del bans[next(iter(bans))]
            self.evictions += 1
        bans[ip] = until
        heapq.heappush(self._ban_heap, (until, ip))
        self._compact_heap()
        self._flood.pop(ip, None)
        self._auth.pop(ip, None)
        return SourceBanned(ip, reason, until)

    def _compact_heap(self) -> None:
        """Drop stale heap entries once they outnumber the live bans (keeps the heap bounded)."""
        heap = self._ban_heap
        if len(heap) > 2 * len(self._bans) + 64:
            self._ban_heap = [(until, ip) for ip, until in self._bans.items()]
            heapq.heapify(self._ban_heap)
