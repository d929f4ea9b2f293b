"""The ACD's configuration as plain values: queues, agents, reason and wrap-up codes.

The settings file (``acd:`` in the YAML, validated by :mod:`softswitch.config`) is turned into
these frozen values; the engine (:mod:`softswitch.acd.engine`) reads nothing else, so a reload
is one new :class:`AcdConfig` handed to :meth:`~softswitch.acd.engine.Acd.reload`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

__all__ = [
    "AcdConfig",
    "AgentConfig",
    "ExitAction",
    "QueueConfig",
    "Relaxation",
    "Strategy",
]


class Strategy(enum.Enum):
    """How a queue picks among the ready agents who may take a call."""

    RING_ALL = "ring_all"  # every one of them at once; the first to answer takes it
    LONGEST_IDLE = "longest_idle"  # the one whose last call ended longest ago
    ROUND_ROBIN = "round_robin"  # the next after the last one offered, in member order
    FEWEST_CALLS = "fewest_calls"  # the one who took the fewest calls of this queue
    LINEAR = "linear"  # always the first in member order
    RANDOM = "random"
    SKILLS = "skills"  # the best-skilled for the call's required skills


@dataclass(frozen=True, slots=True)
class Relaxation:
    """After a caller waited ``after`` seconds, each required skill level is lowered by
    ``by`` (a level at or below 0 is no longer required)."""

    after: float
    by: int


@dataclass(frozen=True, slots=True)
class ExitAction:
    """Where a caller goes who leaves a queue other than to an agent.

    ``kind``: ``queue`` (``target`` the queue; the call keeps its data class, priority,
    skills and arrival time), ``voicemail`` (``target`` the mailbox), ``callback`` (offer a
    callback, keeping the caller's place), ``goto`` (``target`` an extension in the
    caller's context: an IVR branch) or ``hangup`` (after ``prompt``, if any)."""

    kind: str = "hangup"
    target: str | None = None
    prompt: str | None = None


HANGUP = ExitAction()


def _frozen(mapping: Mapping[str, int]) -> Mapping[str, int]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True, slots=True)
class QueueConfig:
    """One queue's rules. The defaults hold callers with music until an agent is free."""

    name: str
    strategy: Strategy = Strategy.LONGEST_IDLE
    ring_timeout: float = 15.0
    """Seconds an offered agent rings before the offer counts as missed."""
    retry: float = 5.0
    """Seconds before a call is offered again to an agent who missed it."""
    wrap_up: float | None = None
    """Wrap-up seconds after each call of this queue (None: the agent's own)."""
    skills: Mapping[str, int] = field(default_factory=dict)
    """Skills every call of the queue requires (the dialplan may require more)."""
    relax: tuple[Relaxation, ...] = ()
    """Skill relaxation steps, by ``after`` ascending."""
    max_length: int = 0
    """Most callers waiting (0: no limit); a caller beyond it goes to ``on_full``."""
    max_wait: float = 0.0
    """Longest wait in seconds (0: no limit), then ``on_timeout``."""
    on_timeout: ExitAction = HANGUP
    on_full: ExitAction = HANGUP
    on_empty: ExitAction = HANGUP
    join_when: str = "always"
    """``always``; ``logged_in`` (some agent who may take the call is logged in);
    ``available`` (one is logged in and not on a break); ``ready`` (one is ready now).
    Otherwise the caller goes to ``on_empty`` at once."""
    stay_when: str = "always"
    """The same test applied while waiting, when agents log out or go not ready."""
    personal_locations: frozenset[str] = frozenset({"onsite"})
    """Agent locations that may take ``data_class: personal`` calls."""
    service_level: float = 20.0
    """Seconds within which an answer counts towards the service level."""
    position_first: float = 0.0
    """Seconds after joining of the first position (and estimated wait) announcement; with
    ``position_every`` 0 there is none."""
    position_every: float = 0.0
    """Seconds between position announcements (0: none)."""
    periodic_prompt: str | None = None
    periodic_every: float = 0.0
    exit_key: str | None = None
    """A key that takes the caller out of the queue to ``exit_to`` (an IVR branch)."""
    exit_to: str | None = None
    callback_key: str | None = None
    """A key that asks for a callback, keeping the caller's place."""
    callback_first: str = "caller"
    """For a callback that reaches the front: ``caller`` (call the caller, then offer the call
    to an agent) or ``agent`` (reserve an agent, then call the caller)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", _frozen(self.skills))
        object.__setattr__(self, "relax", tuple(sorted(self.relax, key=lambda r: r.after)))


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent: who they are, where they work, what they can do, which queues they serve."""

    id: str
    name: str
    user: str
    """The SIP user whose phones ring for this agent's offers."""
    location: str = "onsite"
    """``onsite`` or ``home``."""
    skills: Mapping[str, int] = field(default_factory=dict)
    roles: frozenset[str] = frozenset({"agent"})
    queues: Mapping[str, int] = field(default_factory=dict)
    """Queue name -> penalty (lower is offered first)."""
    wrap_up: float = 0.0
    outbound_only: bool = False
    """Never offered inbound calls (the agent's class is configured outbound-only)."""
    max_misses: int = 3

    def __post_init__(self) -> None:
        object.__setattr__(self, "skills", _frozen(self.skills))
        object.__setattr__(self, "queues", _frozen(self.queues))


@dataclass(frozen=True, slots=True)
class AcdConfig:
    """Everything the ACD is configured with."""

    queues: Mapping[str, QueueConfig] = field(default_factory=dict)
    agents: Mapping[str, AgentConfig] = field(default_factory=dict)
    reasons: tuple[str, ...] = ("break", "lunch", "training", "meeting")
    """Not-ready reason codes an agent may choose (``missed``, ``unreachable`` and
    ``supervisor`` are the switch's own)."""
    codes: tuple[str, ...] = ()
    """Wrap-up (disposition) codes; empty: any code is accepted."""
    announcements: str = ""
    """The folder (within the dialplan's prompts) of the switch's own queue prompts: position,
    numbers, estimated wait, the callback's goodbye (empty: the prompts folder itself)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "queues", MappingProxyType(dict(self.queues)))
        object.__setattr__(self, "agents", MappingProxyType(dict(self.agents)))

    def queue(self, name: str) -> QueueConfig:
        """The queue's rules; a queue the dialplan names but the config lacks gets defaults."""
        found = self.queues.get(name)
        return found if found is not None else QueueConfig(name)
