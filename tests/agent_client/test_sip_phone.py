"""The agent's softphone (agent_client.sip_phone) against the real switch on 127.0.0.1, with
pjsua2 user agents as the far end. Each phone runs in a child process (pjsua2 has one library
per process); its listener's calls come back as events (tests/agent_client/phone_driver.py).
These runs use no sound device (``audio=False``): test_headset_pulse.py covers the audio."""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.agent_client.conftest import account_for
from tests.agent_client.phone_driver import PhoneProcess
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess, softswitch_server

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

_DTMF = re.compile(r"call (\S+): DTMF (\S) from the (caller|callee) \((\d+) ms, ([a-z0-9-]+)\)")


def registered(phone: PhoneProcess, since: int = 0, timeout: float = 10.0) -> dict[str, Any]:
    return phone.wait_event("registration", lambda e: e["registered"], timeout, since)


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timeout waiting for {what}"
        time.sleep(0.1)


def digits_logged(switch: ServerProcess, since: int) -> list[tuple[str, str, str]]:
    """(digit, who, source) of every digit the switch reported after log offset ``since``."""
    return [(m[2], m[3], m[5]) for m in _DTMF.finditer(switch.stderr_text()[since:])]


def test_registers_and_answers_holds_sends_digits_and_hangs_up(
    switch: ServerProcess,
    phones: Callable[..., PhoneProcess],
    user_agents: Callable[[str], UserAgent],
) -> None:
    phone = phones("1002")
    phone.start(account_for(switch, "1002"), audio=False)
    registered(phone)
    statuses = [e["status"] for e in phone.of_kind("registration")]
    assert statuses == ["registering…", "registered"], statuses
    wait_for(lambda: switch.health().get("registrations") == 1, 5.0, "the binding")

    caller = user_agents("1001")
    assert caller.register("1001", switch.users["1001"], switch.address, switch.domain) == 200
    outgoing = caller.call("1001", f"sip:1002@{switch.domain}")
    ringing = phone.wait_call("ringing")
    assert ringing["incoming"] and ringing["remote"] == "1001", ringing
    caller.wait_state(outgoing, "EARLY", timeout=5)  # the phone's 180 Ringing reached it
    handle = ringing["id"]

    mark = phone.mark()
    phone.request("answer", call=handle)
    confirmed = phone.wait_call("confirmed", since=mark)
    assert confirmed["id"] == handle and not confirmed["held"], confirmed
    caller.wait_state(outgoing, "CONFIRMED", timeout=5)

    # RFC 4733 digits reach the switch, which reports them from the callee's side
    since = len(switch.stderr_text())
    phone.request("send_dtmf", call=handle, digits="12#")
    wait_for(lambda: len(digits_logged(switch, since)) >= 3, 8.0, "the digits at the switch")
    assert digits_logged(switch, since) == [
        ("1", "callee", "rfc4733"),
        ("2", "callee", "rfc4733"),
        ("#", "callee", "rfc4733"),
    ]

    # hold: a sendonly re-INVITE; the switch puts the caller on music on hold
    since = len(switch.stderr_text())
    mark = phone.mark()
    phone.request("hold", call=handle, on=True)
    held = phone.wait_event("call", lambda e: e["call"]["held"], since=mark)
    assert held["call"]["state"] == "confirmed"
    wait_for(
        lambda: "the caller is on hold" in switch.stderr_text()[since:], 5.0, "the switch's hold"
    )
    mark = phone.mark()
    phone.request("hold", call=handle, on=False)
    phone.wait_event("call", lambda e: not e["call"]["held"], since=mark)

    # the stream's statistics give a quality estimate, a good one on loopback
    quality = None
    deadline = time.monotonic() + 5.0
    while quality is None and time.monotonic() < deadline:
        quality = phone.request("quality", call=handle)["quality"]
        time.sleep(0.3)
    assert quality is not None
    assert 4.0 <= quality["mos"] <= 4.5 and not quality["degraded"], quality
    assert quality["loss_percent"] < 1.0, quality

    mark = phone.mark()
    phone.request("hang_up", call=handle)
    ended = phone.wait_call("ended", since=mark)
    assert ended["id"] == handle
    caller.wait_state(outgoing, "DISCONNECTED", timeout=5)
    # every listener call happened on the phone's own thread
    assert {e["thread"] for e in phone.of_kind("call")} == {"sip-phone"}

    assert switch.health().get("registrations") == 2  # the phone and the caller
    phone.request("stop")
    assert phone.of_kind("registration")[-1]["status"] == "offline: signed out"
    wait_for(lambda: switch.health().get("registrations") == 1, 5.0, "the un-REGISTER")


def test_calls_the_echo_test_and_the_far_end_hangs_up(
    switch: ServerProcess, phones: Callable[..., PhoneProcess]
) -> None:
    phone = phones("1003")
    phone.start(account_for(switch, "1003", transport="tcp"), audio=False)
    registered(phone)
    mark = phone.mark()
    phone.request("call", target="9196")
    calling = phone.wait_call("calling", since=mark)
    assert not calling["incoming"] and calling["remote"] == "9196", calling
    confirmed = phone.wait_call("confirmed", since=mark)
    assert confirmed["id"] == calling["id"]
    time.sleep(1.5)
    quality = phone.request("quality", call=calling["id"])["quality"]
    assert quality is not None and quality["mos"] >= 4.0, quality
    phone.request("hang_up", call=calling["id"])
    assert phone.wait_call("ended", since=mark)["id"] == calling["id"]


def test_a_busy_or_missing_target_ends_the_call_with_its_status(
    switch: ServerProcess, phones: Callable[..., PhoneProcess]
) -> None:
    phone = phones("1004")
    phone.start(account_for(switch, "1004"), audio=False)
    registered(phone)
    mark = phone.mark()
    phone.request("call", target="1001")  # not registered: the switch cannot reach it
    ended = phone.wait_call("ended", since=mark, timeout=15)
    assert ended["status"] is not None and ended["status"] >= 400, ended


def test_a_wrong_password_is_shown_and_retried(
    switch: ServerProcess, phones: Callable[..., PhoneProcess]
) -> None:
    phone = phones("1004")
    account = dict(account_for(switch, "1004"), password="not-the-password")
    phone.start(account, audio=False, first_retry=1, retry=2)
    first = phone.wait_event("registration", lambda e: e["status"].startswith("offline:"))
    assert first["status"] == "offline: 401 Unauthorized — retrying in 1 s", first
    # the phone tries again by itself (pjsua2 alone would not, after a 401)
    again = phone.wait_event("registration", lambda e: "retrying in 2 s" in e["status"], timeout=10)
    assert not again["registered"]
    statuses = [e["status"] for e in phone.of_kind("registration")]
    assert statuses.count("registering…") >= 2, statuses


def test_registers_again_after_the_switch_restarts(
    phones: Callable[..., PhoneProcess], user_agents: Callable[[str], UserAgent]
) -> None:
    """The switch goes away (the phone's TCP connection drops) and comes back on the same
    port with no bindings: the phone says it is offline and retrying, registers again by
    itself, and takes calls again."""
    with (
        tempfile.TemporaryDirectory(prefix="softswitch-") as first,
        tempfile.TemporaryDirectory(prefix="softswitch-") as second,
    ):
        server = softswitch_server(Path(first))
        server.start(timeout=15.0)
        restarted: ServerProcess | None = None
        try:
            phone = phones("1002")
            phone.start(account_for(server, "1002", transport="tcp"), audio=False, first_retry=1)
            registered(phone)
            mark = phone.mark()
            server.stop()
            offline = phone.wait_event(
                "registration", lambda e: e["status"].startswith("offline:"), since=mark
            )
            assert not offline["registered"]
            assert offline["status"].endswith("retrying in 1 s"), offline
            restarted = softswitch_server(
                Path(second), sip_port=server.sip_port, http_port=server.http_port
            )
            restarted.start(timeout=15.0)
            registered(phone, since=mark, timeout=20.0)
            wait_for(lambda: restarted.health().get("registrations") == 1, 5.0, "the binding")

            caller = user_agents("1001")
            code = caller.register("1001", restarted.users["1001"], restarted.address, DOMAIN)
            assert code == 200
            caller.call("1001", f"sip:1002@{DOMAIN}")
            assert phone.wait_call("ringing", since=mark)["remote"] == "1001"
        finally:
            server.stop()
            if restarted is not None:
                restarted.stop()


DOMAIN = "softswitch.local"
