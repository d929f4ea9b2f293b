"""Queue strategies: which of the ready agents who may take a call is offered it.

Each strategy gets only the candidates (already filtered by the engine for state, location,
outbound-only, skills and the lowest penalty present) and returns those to ring, in order.
They are pure: ``random`` draws from the generator handed in, round-robin's memory is the
queue's, passed in and returned. Each is O(candidates), never O(queues x members).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from softswitch.acd.model import Strategy

__all__ = ["Candidate", "pick"]


@dataclass(frozen=True, slots=True)
class Candidate:
    agent: str
    order: int
    """The agent's place in the queue's member order (configuration order)."""
    idle_since: float
    """When the agent's last call (or the login) ended."""
    calls: int
    """Calls of this queue the agent answered since login."""
    skill: int
    """How well the agent's skills cover the call's (sum of the levels of required skills)."""


def pick(
    strategy: Strategy,
    candidates: Sequence[Candidate],
    *,
    last: int | None,
    members: int,
    draw: Callable[[int], int],
) -> list[Candidate]:
    """The candidates to offer the call to (one, or all for ring-all); empty if none.

    ``last`` is the member order of the agent the queue offered a call to last (round-robin
    memory), ``members`` the number of members, ``draw(n)`` a uniform integer in [0, n).
    """
    if not candidates:
        return []
    if strategy is Strategy.RING_ALL:
        return sorted(candidates, key=lambda c: c.order)
    if strategy is Strategy.LONGEST_IDLE:
        return [min(candidates, key=lambda c: (c.idle_since, c.order))]
    if strategy is Strategy.ROUND_ROBIN:
        start = -1 if last is None else last
        span = max(members, 1 + max(c.order for c in candidates))
        return [min(candidates, key=lambda c: (c.order - start - 1) % span)]
    if strategy is Strategy.FEWEST_CALLS:
        return [min(candidates, key=lambda c: (c.calls, c.idle_since, c.order))]
    if strategy is Strategy.LINEAR:
        return [min(candidates, key=lambda c: c.order)]
    if strategy is Strategy.RANDOM:
        ordered = sorted(candidates, key=lambda c: c.order)
        return [ordered[draw(len(ordered))]]
    # SKILLS: best coverage of the required skills, then longest idle
    return [min(candidates, key=lambda c: (-c.skill, c.idle_since, c.order))]
