"""The controller's state and views against a real agent API (see ``conftest.py``).

A queue call goes from the offer's banner to the wrap-up countdown and the code; the switch's
refusals reach the agent as the view's message; the VPN check refuses a session when nothing
answers on the configured address or the switch reports another VPN address; the idle sign-out
signs the agent out on the real clock; signing out forgets the session's secrets and screen
pops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable

import pytest

from agent_client.controller import Controller
from agent_client.phone import CallState, PhoneCall
from agent_client.redact import MASK
from agent_client.view import Phase, ScreenPopField, View
from tests.acd_callers import binding
from tests.agent_client_core.conftest import (
    CALLER,
    CALLER_NAME,
    MEMBER,
    WRAP_UP,
    RecordingPhone,
    SwitchFactory,
    Views,
    make_controller,
)

PASSWORD = "home-secret-1"
CALL = "call-1@switch.test"


async def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.02)


def unused_port() -> int:
    """A loopback TCP port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def ringing(call: int, state: CallState = CallState.RINGING, **kw: object) -> PhoneCall:
    return PhoneCall(call, state, "sip:queue@127.0.0.1", True, **kw)  # type: ignore[arg-type]


async def test_a_queue_call_from_sign_in_to_wrap_up_and_sign_out(
    local_switch: SwitchFactory, views: Views, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent_client")
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            view = await views.until(lambda v: v.phase is Phase.NOT_READY)
            assert Phase.SIGNING_IN in [v.phase for v in views.all]
            assert (view.agent, view.agent_name, view.reason) == ("ann", "Ann at home", "login")
            assert view.reasons == ("break", "lunch") and view.codes == ("sale", "no_sale")
            assert view.vpn_ok and "127.0.0.1" in view.vpn
            assert view.registration == "registering" and not view.registered
            assert view.devices.inputs == phone.inputs and view.devices.outputs == phone.outputs
            # The phone registers with this session's credentials, not the configured password.
            account = phone.account
            assert account is not None and phone.did("start") == [("start", "1001")]
            assert (account.extension, account.domain, account.server) == (
                "1001",
                "test",
                "127.0.0.1",
            )
            assert account.password and account.password != PASSWORD
            assert account.username != "1001"
            assert sw.state() == ("not_ready", "login")
            assert views.kinds()[:1] == ["signed_in"]

            assert phone.listener is not None
            phone.listener.registration_changed(True, "registered")
            view = await views.until(lambda v: v.registered)
            assert view.registration == "registered" and "registered" in views.kinds()

            controller.set_ready()
            await views.until(lambda v: v.phase is Phase.READY)
            assert sw.state() == ("ready", None)

            # The switch offers a call: the banner shows the screen pop.
            caller, task = sw.join(CALL)
            view = await views.until(lambda v: v.phase is Phase.RINGING)
            offer = view.offer
            assert offer is not None and offer.call_id == CALL and offer.queue == "support"
            assert (offer.caller, offer.caller_name) == (CALLER, CALLER_NAME)
            assert offer.path == ("menu:2", "identify")
            assert offer.fields == (
                ScreenPopField("member", MEMBER, False),
                ScreenPopField("tier", "gold", False),
            )
            assert [f.value for f in offer.fields] == [MEMBER, "gold"]
            assert (
                "offer",
                {"call_id": CALL, "queue": "support", "fields": ["member", "tier"]},
            ) in (views.events)

            # The phone rings: that is the offer's call; answering answers it on the phone.
            phone.listener.call_changed(ringing(7))
            await eventually(lambda: "ringing" in views.kinds())
            assert dict(views.events)["ringing"]["call_id"] == CALL
            controller.answer()
            await eventually(lambda: phone.did("answer") == [("answer", 7)])
            phone.listener.call_changed(ringing(7, CallState.CONFIRMED))
            caller.result(200, binding("1001").contact)
            view = await views.until(lambda v: v.phase is Phase.ON_CALL and v.quality is not None)
            assert sw.state() == ("on_call", None)
            assert view.call_seconds is not None and view.call_seconds >= 0
            assert view.quality is not None and view.quality.mos == 4.2
            assert view.offer is not None and view.offer.call_id == CALL
            assert dict(views.events)["answered"] == {"call_id": CALL}
            await views.until(lambda v: v.call_seconds is not None and v.call_seconds >= 1)

            # Customer data is masked in log lines while the call is up.
            masked = controller.redactor.mask(f"{CALLER_NAME} gold {MEMBER}")
            assert CALLER_NAME not in masked and "gold" not in masked and MEMBER not in masked

            # The screen pop's viewing is reported once per call.
            controller.screen_pop_viewed(CALL)
            controller.screen_pop_viewed(CALL)

            async def audited() -> int:
                rows = await sw.store.audit(action="screen_pop_viewed", subject=CALL)
                return len(rows)

            async with asyncio.timeout(5):
                while await audited() == 0:
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.2)
            assert await audited() == 1

            controller.mute(True)
            controller.hold(True)
            view = await views.until(lambda v: v.muted)
            await eventually(lambda: phone.did("hold") == [("hold", 7, True)])
            phone.listener.call_changed(ringing(7, CallState.CONFIRMED, held=True))
            await views.until(lambda v: v.on_hold)

            # The caller hangs up: wrap-up with the switch's countdown.
            phone.listener.call_changed(ringing(7, CallState.ENDED, status=200))
            sw.queues.call_ended(CALL, "caller")
            view = await views.until(lambda v: v.phase is Phase.WRAP_UP)
            first = view.wrap_up_remaining
            assert first is not None and WRAP_UP - 3 <= first <= WRAP_UP
            assert view.offer is not None and view.offer.call_id == CALL  # for the notes
            assert view.call_seconds is None and not view.muted
            later = await views.until(
                lambda v: v.wrap_up_remaining is not None and v.wrap_up_remaining < first
            )
            assert later.phase is Phase.WRAP_UP
            kinds = views.kinds()
            assert kinds.index("answered") < kinds.index("ended") < kinds.index("wrap_up")
            # The day's figures come after the call.
            await views.until(lambda v: v.figures.calls == 1)

            controller.wrap_up("sale", "call back on Monday")
            view = await views.until(lambda v: v.phase is Phase.READY)
            assert view.offer is None and view.wrap_up_remaining is None
            assert sw.state() == ("ready", None)
            assert sw.notes == [(CALL, "call back on Monday")]  # kept by the switch
            assert task.done()  # the caller's wait in the queue is over
            # The screen pop is gone from memory, and so from the masking list.
            assert controller.redactor.mask(CALLER_NAME) == CALLER_NAME

            # the phone unregisters while the session's SIP credentials still hold: a phone
            # retrying revoked credentials would get the agent's address banned
            states_at_stop: list[tuple[object, object]] = []
            phone.on_stop = lambda: states_at_stop.append(sw.state())
            controller.sign_out()
            view = await views.until(lambda v: v.phase is Phase.SIGNED_OUT)
            assert view.message == "signed out" and not view.message_is_error
            assert not view.registered and view.offer is None and view.codes == ()
            assert phone.did("stop") == [("stop",)]
            assert states_at_stop == [("ready", None)] and sw.state()[0] == "logged_out"
            assert sw.state() == ("logged_out", None)
            assert views.kinds()[-1] == "signed_out"
        finally:
            await controller.aclose()
    # No log line of the client carries the caller's number, name or screen-pop values.
    for record in caplog.records:
        if record.name.startswith("agent_client"):
            text = record.getMessage()
            assert CALLER not in text and CALLER_NAME not in text and MEMBER not in text, text


async def test_refusals_of_the_switch_are_the_views_message(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            controller.sign_in("ann", "wrong", sw.code())
            view = await views.until(lambda v: v.message is not None)
            assert view.phase is Phase.SIGNED_OUT and view.message_is_error
            assert view.message == "unknown agent or wrong password"
            # The right password without the one-time code is refused the same way.
            controller.sign_in("ann", PASSWORD, "")
            await views.until(lambda v: v.phase is Phase.SIGNING_IN)
            view = await views.until(lambda v: v.message is not None)
            assert view.message == "unknown agent or wrong password"
            assert phone.calls == [] and sw.state() == ("logged_out", None)
            assert views.kinds() == ["error", "error"]

            controller.sign_in("ann", PASSWORD, sw.code())
            await views.until(lambda v: v.phase is Phase.NOT_READY)
            controller.set_not_ready("coffee")
            view = await views.until(lambda v: v.message is not None)
            assert view.message_is_error and "reason 'coffee'" in (view.message or "")
            assert view.phase is Phase.NOT_READY
            controller.wrap_up("sale", "")
            view = await views.until(lambda v: "wrap-up" in (v.message or ""))
            assert view.message_is_error and "not in wrap-up" in (view.message or "")
            controller.answer()
            view = await views.until(lambda v: v.message == "no call is ringing on the phone")
        finally:
            await controller.aclose()


async def test_vpn_check_refuses_when_nothing_answers_on_the_address(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(port=unused_port()), phone, views)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            view = await views.until(lambda v: v.message is not None)
            assert view.message == (
                "the switch does not answer on its VPN address 127.0.0.1: is the VPN up?"
            )
            assert view.phase is Phase.SIGNED_OUT and not view.vpn_ok
            assert view.vpn.startswith("down")
            assert phone.calls == [] and sw.state() == ("logged_out", None)
        finally:
            await controller.aclose()


async def test_vpn_check_refuses_a_switch_reporting_another_vpn_address(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch(vpn_address="10.66.0.1") as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            view = await views.until(lambda v: v.message is not None)
            assert view.message is not None and view.message.startswith(
                "the switch reports its VPN address as 10.66.0.1, not 127.0.0.1"
            )
            assert view.phase is Phase.SIGNED_OUT and phone.calls == []
            # The session the switch opened was closed again.
            await eventually(lambda: sw.state() == ("logged_out", None))
        finally:
            await controller.aclose()
        # Without vpn_required the same switch is accepted.
        views2 = Views()
        controller = make_controller(sw.config(vpn_required=False), phone, views2)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            view = await views2.until(lambda v: v.phase is Phase.NOT_READY)
            assert view.vpn_ok
        finally:
            await controller.aclose()


async def test_the_vpn_is_checked_again_while_signed_in(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(), phone, views, vpn_interval=0.2)
        controller.sign_in("ann", PASSWORD, sw.code())
        await views.until(lambda v: v.phase is Phase.NOT_READY and v.vpn_ok)
        checks = len(views.all)
    try:
        # The switch stops answering on its address: the next check shows it.
        view = await views.until(lambda v: not v.vpn_ok, timeout=5)
        assert len(views.all) > checks
        assert view.vpn.startswith("down") and view.phase is Phase.NOT_READY
    finally:
        await controller.aclose()
    assert views.last.phase is Phase.SIGNED_OUT and phone.did("stop") == [("stop",)]


class Link:
    """A TCP relay on a fixed loopback port in front of the switch's API: the network
    between the agent and the switch, which a test can cut and restore."""

    def __init__(self, target: int) -> None:
        self.target = target
        self.port = unused_port()
        self.server: asyncio.Server | None = None
        self.pipes: set[asyncio.Task[None]] = set()

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", self.port)

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()
        for pipe in self.pipes:
            pipe.cancel()
        await asyncio.gather(*self.pipes, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            finally:
                dst.close()

        for task in (pipe(reader, up_writer), pipe(up_reader, writer)):
            running = asyncio.ensure_future(task)
            self.pipes.add(running)
            running.add_done_callback(self.pipes.discard)


async def test_the_phone_registers_again_when_the_vpn_comes_back(
    local_switch: SwitchFactory, views: Views
) -> None:
    """The tunnel drops and comes back: the window shows it, and the phone registers at once
    (the switch may have dropped its binding meanwhile) instead of at the next refresh."""
    phone = RecordingPhone()
    async with local_switch() as sw:
        link = Link(sw.port)
        await link.up()
        controller = make_controller(sw.config(port=link.port), phone, views, vpn_interval=0.2)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            await views.until(lambda v: v.phase is Phase.NOT_READY and v.vpn_ok)
            assert phone.did("register_again") == []
            await link.down()
            view = await views.until(lambda v: not v.vpn_ok)
            assert view.vpn.startswith("down") and view.phase is Phase.NOT_READY
            await link.up()
            view = await views.until(lambda v: v.vpn_ok)
            await eventually(lambda: phone.did("register_again") == [("register_again",)])
        finally:
            await controller.aclose()
            with contextlib.suppress(AssertionError):
                await link.down()


async def test_idle_sign_out_after_the_switchs_idle_time(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch(idle_signout=1.5) as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            loop = asyncio.get_running_loop()
            controller.sign_in("ann", PASSWORD, sw.code())
            await views.until(lambda v: v.phase is Phase.NOT_READY)
            signed_in = loop.time()
            view = await views.until(lambda v: v.idle_remaining is not None)
            assert view.idle_remaining is not None and 0 < view.idle_remaining <= 2
            # Input starts the idle time again.
            await asyncio.sleep(0.8)
            controller.touched()
            touched = loop.time()
            view = await views.until(lambda v: v.phase is Phase.SIGNED_OUT, timeout=5)
            assert loop.time() - touched >= 1.4 and loop.time() - signed_in >= 2.2
            assert view.message == "signed out after 1.5 seconds without calls or input"
            assert not view.message_is_error and view.idle_remaining is None
            assert phone.did("stop") == [("stop",)]
            assert sw.state() == ("logged_out", None)
        finally:
            await controller.aclose()


async def test_direct_call_consultation_and_transfers_go_to_the_phone(
    local_switch: SwitchFactory, views: Views
) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            await views.until(lambda v: v.phase is Phase.NOT_READY)
            listener = phone.listener
            assert listener is not None
            listener.registration_changed(True, "registered")
            # A direct call (no offer) is shown with what the phone knows.
            listener.call_changed(PhoneCall(3, CallState.RINGING, "sip:1002@test", True))
            view = await views.until(lambda v: v.phase is Phase.RINGING)
            assert view.offer is not None and view.offer.caller == "sip:1002@test"
            assert view.offer.queue is None and view.offer.fields == ()
            controller.answer()
            await eventually(lambda: ("answer", 3) in phone.calls)
            listener.call_changed(PhoneCall(3, CallState.CONFIRMED, "sip:1002@test", True))
            await views.until(lambda v: v.phase is Phase.ON_CALL)
            controller.send_dtmf("5")
            controller.send_dtmf("x")
            await views.until(lambda v: v.message == "'x' is not a telephone key")
            assert ("dtmf", 3, "5") in phone.calls

            # Consult: the customer is held, the target called; cancel: hang up and resume.
            controller.consult("1003")
            await eventually(lambda: ("call", "1003") in phone.calls)
            assert ("hold", 3, True) in phone.calls
            listener.call_changed(PhoneCall(4, CallState.CALLING, "sip:1003@test", False))
            view = await views.until(lambda v: v.consulting == "1003")
            listener.call_changed(PhoneCall(4, CallState.CONFIRMED, "sip:1003@test", False))
            controller.cancel_consult()
            await eventually(lambda: ("hang_up", 4) in phone.calls)
            assert ("hold", 3, False) in phone.calls
            listener.call_changed(PhoneCall(4, CallState.ENDED, "sip:1003@test", False))
            await views.until(lambda v: v.consulting is None and v.phase is Phase.ON_CALL)

            # Consult again and complete: an attended transfer of the first call.
            controller.consult("1004")
            await eventually(lambda: ("call", "1004") in phone.calls)
            listener.call_changed(PhoneCall(5, CallState.CALLING, "sip:1004@test", False))
            listener.call_changed(PhoneCall(5, CallState.CONFIRMED, "sip:1004@test", False))
            await views.until(lambda v: v.consulting == "1004")
            controller.complete_transfer()
            await eventually(lambda: ("transfer_attended", 3, 5) in phone.calls)
            listener.call_changed(PhoneCall(5, CallState.ENDED, "sip:1004@test", False))
            listener.call_changed(PhoneCall(3, CallState.ENDED, "sip:1002@test", True))
            view = await views.until(lambda v: v.phase is Phase.NOT_READY)
            assert view.offer is None and view.consulting is None

            # The test call dials the echo test number; a failed call is told.
            controller.test_call()
            await eventually(lambda: ("call", "9196") in phone.calls)
            listener.call_changed(PhoneCall(6, CallState.CALLING, "sip:9196@test", False))
            listener.call_changed(
                PhoneCall(
                    6, CallState.ENDED, "sip:9196@test", False, status=404, reason="Not Found"
                )
            )
            view = await views.until(lambda v: v.message == "the call failed: 404 Not Found")
            assert view.message_is_error

            # Devices: the choice goes to the phone and is remembered (names only).
            controller.choose_devices("Headset Microphone", "Headset Earphone")
            view = await views.until(lambda v: v.devices.input == "Headset Microphone")
            assert ("use_devices", "Headset Microphone", "Headset Earphone") in phone.calls
            prefs = (sw.folder / "prefs.json").read_text()
            assert "Headset Microphone" in prefs and MASK not in prefs

            # Level meters pass through at most about ten views a second.
            before = len(views.all)
            for i in range(50):
                listener.levels(i / 50, 0.5)
            await views.until(lambda v: v.mic_level == 49 / 50)
            assert len(views.all) - before <= 5
        finally:
            await controller.aclose()


async def test_the_controller_runs_on_its_own_thread(local_switch: SwitchFactory) -> None:
    """As under the window: actions from this thread, views from the controller's thread."""
    phone = RecordingPhone()
    seen: list[tuple[Phase, str]] = []

    def on_view(view: View) -> None:
        seen.append((view.phase, threading.current_thread().name))

    async with local_switch() as sw:
        controller = Controller(sw.config(), phone, on_view)
        controller.start()
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            await eventually(lambda: any(p is Phase.NOT_READY for p, _ in seen))
            controller.set_ready()
            await eventually(lambda: sw.state() == ("ready", None))
        finally:
            await asyncio.get_running_loop().run_in_executor(None, controller.close)
    assert seen[0] == (Phase.SIGNED_OUT, "agent-controller")
    assert {name for _, name in seen} == {"agent-controller"}
    assert seen[-1][0] is Phase.SIGNED_OUT and phone.did("stop") == [("stop",)]
    assert controller.loop.is_closed()


async def test_a_logout_at_the_switch_ends_the_session_and_says_why(
    local_switch: SwitchFactory, views: Views
) -> None:
    """A supervisor logs the agent out (or the agent is removed): the client signs out too,
    stops the phone and tells the agent why."""
    phone = RecordingPhone()
    async with local_switch() as sw:
        controller = make_controller(sw.config(), phone, views)
        try:
            controller.sign_in("ann", PASSWORD, sw.code())
            await views.until(lambda v: v.phase is Phase.NOT_READY)
            sw.queues.control(lambda acd, now: acd.logout("ann", now))
            view = await views.until(lambda v: v.phase is Phase.SIGNED_OUT)
            assert view.message is not None and "supervisor" in view.message
            assert view.message_is_error
            assert view.offer is None and view.agent is None
            await eventually(lambda: bool(phone.did("stop")))
        finally:
            await controller.aclose()
