"""The softphone as the controller sees it: a SIP user agent with the headset's audio.

:class:`Phone` is implemented by :mod:`agent_client.sip_phone` (pjsua2, with the headset
bridged in through :mod:`agent_client.headset`). Every method returns at once and may be
called from any thread; what happens is reported to the :class:`PhoneListener`, on the
phone's own thread (the listener hands it on to its own loop).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from agent_client.view import CallQuality

__all__ = ["CallState", "Phone", "PhoneCall", "PhoneListener", "SipAccount"]


@dataclass(frozen=True, slots=True)
class SipAccount:
    """The SIP credentials the switch hands out at sign-in, for this session only."""

    username: str  # the digest user name (not necessarily the extension)
    password: str
    extension: str  # the user the phone registers as (sip:extension@domain)
    domain: str  # the SIP domain, also the digest realm
    server: str  # host or IP of the switch (its VPN-side address for a home agent)
    port: int = 5060
    transport: str = "udp"
    expires: int = 300  # seconds asked for in REGISTER


class CallState(enum.Enum):
    RINGING = "ringing"  # incoming, not answered
    CALLING = "calling"  # outgoing, not answered
    CONFIRMED = "confirmed"
    ENDED = "ended"


@dataclass(frozen=True, slots=True)
class PhoneCall:
    """One call of the phone as it is now."""

    id: int  # the phone's own handle
    state: CallState
    remote: str  # the far end's URI or number
    incoming: bool
    held: bool = False  # the phone has put it on hold
    status: int | None = None  # the last SIP status (486, 200 ...)
    reason: str = ""


class PhoneListener(Protocol):
    def registration_changed(self, registered: bool, status: str) -> None:
        """``status`` is for the agent: "registered", "registering", "offline: <why>"."""
        ...

    def call_changed(self, call: PhoneCall) -> None: ...

    def levels(self, mic: float, speaker: float) -> None:
        """Peak levels (0 .. 1) of the headset's microphone and speaker, a few times a
        second."""
        ...


class Phone(Protocol):
    def start(self, account: SipAccount, listener: PhoneListener) -> None: ...
    def stop(self) -> None:
        """Hang up, unregister and release the sound devices (waits at most a few seconds)."""
        ...

    def register_again(self) -> None:
        """REGISTER now rather than at the next refresh (the network came back: the switch
        may have dropped the binding meanwhile)."""
        ...

    def call(self, target: str) -> None:
        """Dial ``target`` (a number or extension at the switch)."""
        ...

    def answer(self, call: int) -> None: ...
    def hang_up(self, call: int) -> None: ...
    def hold(self, call: int, on: bool) -> None: ...
    def mute(self, on: bool) -> None: ...
    def send_dtmf(self, call: int, digits: str) -> None: ...
    def transfer_blind(self, call: int, target: str) -> None:
        """REFER the far end of ``call`` to ``target`` (RFC 3515)."""
        ...

    def transfer_attended(self, call: int, consultation: int) -> None:
        """REFER the far end of ``call`` to the far end of ``consultation`` with Replaces
        (RFC 3891, RFC 5589 §7)."""
        ...

    def quality(self, call: int) -> CallQuality | None: ...
    def devices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """The names of the input and of the output sound devices."""
        ...

    def use_devices(self, input: str | None, output: str | None) -> None: ...
