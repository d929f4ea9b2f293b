"""What the agent's window shows, and what it may ask for.

The window is a pure renderer of :class:`View` values and a caller of :class:`Actions`; it
holds no SIP, media or HTTP logic (ARCHITECTURE.md, package map). The controller owns the
state, builds a new frozen :class:`View` whenever something the agent sees changes, and hands
it to the window (on the window's thread). Tests build views directly, so every state of the
window can be shown without a switch.

Customer data (the screen pop) lives only in these in-memory values: nothing here is written
to disk, and :meth:`ScreenPopField.__repr__` keeps values out of logs and tracebacks.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "Actions",
    "CallQuality",
    "DayFigures",
    "Devices",
    "Offer",
    "Phase",
    "ScreenPopField",
    "View",
]


class Phase(enum.Enum):
    """Where the agent is, as the window shows it."""

    SIGNED_OUT = "signed_out"
    SIGNING_IN = "signing_in"
    NOT_READY = "not_ready"
    READY = "ready"
    RINGING = "ringing"  # a queue call is offered and the phone rings
    ON_CALL = "on_call"
    WRAP_UP = "wrap_up"


@dataclass(frozen=True, slots=True)
class ScreenPopField:
    """One variable of the screen pop. ``masked``: the switch withheld the value (a field
    marked sensitive, shown only at locations allowed to see personal data); ``value`` then
    holds the mask the switch sent."""

    name: str
    value: str
    masked: bool = False

    def __repr__(self) -> str:  # never a customer's value in a log line or a traceback
        return f"ScreenPopField({self.name!r}, masked={self.masked})"


@dataclass(frozen=True, slots=True)
class Offer:
    """A queue call offered to the agent: the screen pop the switch sent with it."""

    call_id: str
    queue: str | None
    caller: str | None
    caller_name: str | None
    path: tuple[str, ...] = ()
    fields: tuple[ScreenPopField, ...] = ()
    data_class: str | None = None

    def __repr__(self) -> str:  # the caller's number is customer data too
        return f"Offer(call_id={self.call_id!r}, queue={self.queue!r})"


@dataclass(frozen=True, slots=True)
class CallQuality:
    """The live quality of the call's audio, from the RTP/RTCP stream statistics."""

    jitter_ms: float
    loss_percent: float
    rtt_ms: float | None
    mos: float  # estimated, 1.0 .. 4.5
    degraded: bool  # worth a warning in the window


@dataclass(frozen=True, slots=True)
class DayFigures:
    """The agent's own figures since midnight (the switch's queue log)."""

    calls: int = 0
    average_handle: float = 0.0  # seconds: talk + wrap-up
    ready_time: float = 0.0  # seconds
    break_time: float = 0.0  # seconds not ready


@dataclass(frozen=True, slots=True)
class Devices:
    """The headset's sound devices: what PortAudio offers and what is chosen."""

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    input: str | None = None
    output: str | None = None


@dataclass(frozen=True, slots=True)
class View:
    """Everything the window shows at one moment."""

    phase: Phase = Phase.SIGNED_OUT
    agent: str | None = None
    agent_name: str | None = None
    #: the not-ready reason in force (``login`` just after signing in), or None
    reason: str | None = None
    reasons: tuple[str, ...] = ()
    codes: tuple[str, ...] = ()
    #: "registered", "registering", "offline: <why>" ...: shown plainly in the window
    registration: str = "offline"
    registered: bool = False
    vpn: str = "not checked"
    vpn_ok: bool = False
    offer: Offer | None = None
    call_seconds: float | None = None
    on_hold: bool = False
    muted: bool = False
    #: a consultation call is up (the customer is on hold): complete or cancel the transfer
    consulting: str | None = None
    wrap_up_remaining: float | None = None
    quality: CallQuality | None = None
    figures: DayFigures = field(default_factory=DayFigures)
    mic_level: float = 0.0  # 0 .. 1 (peak of the last frames)
    speaker_level: float = 0.0
    devices: Devices = field(default_factory=Devices)
    help_raised: bool = False
    #: seconds left before the automatic sign-out, when it is near (else None)
    idle_remaining: float | None = None
    #: the last thing worth telling the agent (an error, a refused request); None: nothing
    message: str | None = None
    message_is_error: bool = False


class Actions(Protocol):
    """What the window may ask of the controller. Every call returns at once; the outcome
    arrives as a new :class:`View` (an error as ``message``)."""

    def sign_in(self, agent: str, password: str, code: str) -> None: ...
    def sign_out(self) -> None: ...
    def set_ready(self) -> None: ...
    def set_not_ready(self, reason: str) -> None: ...
    def answer(self) -> None: ...
    def hang_up(self) -> None: ...
    def hold(self, on: bool) -> None: ...
    def mute(self, on: bool) -> None: ...
    def send_dtmf(self, key: str) -> None: ...
    def transfer_blind(self, target: str) -> None: ...
    def consult(self, target: str) -> None: ...
    def complete_transfer(self) -> None: ...
    def cancel_consult(self) -> None: ...
    def raise_help(self, conference: bool) -> None: ...
    def wrap_up(self, code: str | None, note: str) -> None: ...
    def test_call(self) -> None: ...
    def choose_devices(self, input: str | None, output: str | None) -> None: ...
    def screen_pop_viewed(self, call_id: str) -> None: ...
    def touched(self) -> None:
        """The agent used the window (keyboard or mouse): the idle sign-out starts again."""
        ...
