"""A call and its legs: the state the B2BUA keeps per call (ARCHITECTURE.md principle 7).

A ``Call`` has one A leg (the caller's INVITE, a UAS dialog) and one or more B legs (the forks
the B2BUA sends, each a UAC dialog of its own, RFC 3261 §12). The call's state machine is the
table ``TRANSITIONS``; ``Call.move`` refuses any other step.

A transfer (REFER, RFC 3515) keeps its state in ``Call.transfer`` while it is under way; the
legs it adds (the INVITEs to the target) and the legs it releases (the transferor's) live in
``Call.extra`` until they are over, so the call is forgotten only once they are.

A call the switch places itself (``B2bua.originate``) has no received INVITE: its A leg is the
fork, among the INVITEs the switch sent to the called user's contacts (``Call.origin``), that
answered first, a UAC dialog; until one answers, ``Call.a`` is the first of them.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

from media.mixer import SupervisorMode
from softswitch.sip.dialog import Dialog
from softswitch.sip.events import Address, TxnKey
from softswitch.sip.message import Request
from softswitch.sip.sdp import SessionDescription


class CallState(enum.Enum):
    ROUTING = "routing"  # a dialplan session has the call, unanswered, no fork ringing
    RINGING = "ringing"  # forks sent, no final answer yet
    ANSWERED = "answered"  # a fork answered; 200 sent to the caller
    CONFIRMED = "confirmed"  # the caller's ACK arrived
    ENDING = "ending"  # BYE/CANCEL under way on some leg
    ENDED = "ended"


TRANSITIONS: dict[CallState, frozenset[CallState]] = {
    CallState.ROUTING: frozenset(
        {CallState.RINGING, CallState.ANSWERED, CallState.ENDING, CallState.ENDED}
    ),
    # back to ROUTING: every fork of a session's bridge failed, and the session goes on
    CallState.RINGING: frozenset(
        {CallState.ROUTING, CallState.ANSWERED, CallState.ENDING, CallState.ENDED}
    ),
    CallState.ANSWERED: frozenset({CallState.CONFIRMED, CallState.ENDING, CallState.ENDED}),
    CallState.CONFIRMED: frozenset({CallState.ENDING, CallState.ENDED}),
    CallState.ENDING: frozenset({CallState.ENDED}),
    CallState.ENDED: frozenset(),
}


class LegState(enum.Enum):
    TRYING = "trying"
    EARLY = "early"
    UP = "up"
    FAILED = "failed"
    ENDED = "ended"


@dataclass(eq=False, slots=True)
class Leg:
    """One side of a call, with its own dialog."""

    call: Call
    side: str  # "a" or "b"
    call_id: str
    local_tag: str
    destination: Address  # the flow to the peer (symmetric signalling through NAT)
    invite: Request  # A: the INVITE received; B: the INVITE sent
    invite_key: TxnKey
    state: LegState = LegState.TRYING
    dialog: Dialog | None = None
    ack: Request | None = None  # a fork: the ACK sent for its 2xx, resent on retransmissions
    status: int = 0  # a fork: the final status it got
    reinvite_pending: bool = False
    #: a fork (B, or A of a call the switch placed): the registered contact it rings, as the
    #: binding has it, and the user part of that binding's address-of-record
    contact: str = ""
    user: str = ""
    refers: int = 0  # REFERs received in this dialog (the first one's NOTIFYs carry no id)

    @property
    def other(self) -> Leg | None:
        call = self.call
        return call.b if self.side == "a" else call.a


@dataclass(frozen=True, slots=True)
class Monitor:
    """What a supervisor's call joins: a live call, the side its agent is on ("a" or "b"),
    and the mode."""

    call_id: str
    agent_side: str
    mode: SupervisorMode


@dataclass(eq=False, slots=True)
class Transfer:
    """A REFER being carried out (RFC 3515, RFC 5589).

    ``transferor`` sent the REFER, on the side ``transferor.side`` of ``call``; the other
    side (the transferee) is to be connected to ``target``. Blind: ``forks`` ring the target's
    contacts. Attended: ``joining`` is the other party of the dialog the Replaces names
    (``replaced``, the transferor's leg of ``other_call``), re-offered the call's media.
    """

    call: Call
    transferor: Leg
    target: str
    event: str  # the Event header of the NOTIFYs ("refer" or "refer;id=N")
    notify: bool  # an implicit subscription exists (no "Refer-Sub: false")
    deadline: float
    was_held: bool  # the transferee was on hold before the REFER (music already playing)
    forks: list[Leg] = field(default_factory=list)
    replaced: Leg | None = None
    joining: Leg | None = None
    other_call: Call | None = None
    over: bool = False


@dataclass(eq=False, slots=True)
class Call:
    """One call through the B2BUA."""

    id: str
    caller: str
    callee: str
    created: float
    state: CallState = CallState.RINGING
    a: Leg = field(init=False)
    forks: list[Leg] = field(default_factory=list)
    b: Leg | None = None
    ring_deadline: float = 0.0
    answered_at: float | None = None
    end_cause: str = ""
    final_status: int = 0  # what the caller got: 200 when answered, else the error sent
    caller_name: str | None = None  # the display name of the caller's From
    answered_by: str | None = None  # the contact that answered
    pending: set[TxnKey] = field(default_factory=set)  # our client transactions of this call
    ports: tuple[int, int] | None = None  # anchored media: our RTP ports toward A and toward B
    stream: int = 0  # the anchored m-line
    offer_for_b: bytes | None = None  # the caller's offer as the forks get it
    #: the caller's one G.711 law ("pcmu"/"pcma"), when the switch offered the forks the other
    a_law: str | None = None
    #: the laws of legs A and B while the switch translates between them (None: same codec)
    laws: tuple[str, str] | None = None
    b_pt: int | None = None  # the G.711 payload type the callee's answer settled on
    supervisors: set[str] = field(default_factory=set)  # supervisor calls on this one
    monitors: str | None = None  # for a supervisor's call: the call it monitors
    #: a dialplan session runs the call: told the outcome of each bridge it asks for (200,
    #: or the best failure status of the forks, 408 when the ring time ran out)
    on_bridge: Callable[[int], None] | None = None
    local: bool = False  # the switch answered leg A itself (an IVR, a test number)
    a_pt: int | None = None  # the payload type of leg A's answered stream, when local
    #: forks of a bridge are ringing while leg A is already answered by the switch
    bridging: bool = False
    bridge_start: int = 0  # the first fork of the current bridge (earlier ones are over)
    a_offer: SessionDescription | None = None  # the caller's SDP offer, parsed
    sdp_version: int = 1  # o= version of the switch's own SDP toward leg A (RFC 4566 §5.2)
    #: a call the switch placed: its INVITEs to the called user's contacts (leg A is the one
    #: that answered), and who is told the outcome (200 and the call id, or the failure)
    origin: list[Leg] = field(default_factory=list)
    on_origin: Callable[[int, str | None], None] | None = None
    joins: Monitor | None = None  # a supervisor's call the switch placed: what it joins
    transfer: Transfer | None = None  # a REFER under way on this call
    #: legs out of the call's two sides that are not over yet: a transfer's INVITEs to its
    #: target, a transferor's leg released after the transfer (and when to BYE it)
    extra: list[Leg] = field(default_factory=list)
    release: tuple[Leg, float] | None = None
    held: set[str] = field(default_factory=set)  # sides the other side has put on hold
    #: the last SDP the switch sent toward each side (a re-offer of its own builds on it)
    sent_sdp: dict[str, SessionDescription] = field(default_factory=dict)
    transfers: list[str] = field(default_factory=list)  # who the call was transferred to

    @property
    def originated(self) -> bool:
        """The switch placed this call (no INVITE was received for it)."""
        return bool(self.origin)

    def move(self, new: CallState) -> None:
        if new is self.state:
            return
        if new not in TRANSITIONS[self.state]:
            raise RuntimeError(f"call {self.id}: {self.state.value} -> {new.value} not allowed")
        self.state = new

    def legs(self) -> list[Leg]:
        if self.origin:
            out = [self.a, *(leg for leg in self.origin if leg is not self.a), *self.forks]
        else:
            out = [self.a, *self.forks]
        if self.extra:
            out.extend(leg for leg in self.extra if leg not in out)
        return out
