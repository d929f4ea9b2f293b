"""RTCP between the switch and real phones: each leg of an anchored call gets the switch's own
reports (RFC 3550 §6.4), which pjmedia uses to measure its round trip to the switch."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.interop.pjua import UserAgent, call_between
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


def test_each_leg_gets_rtcp_reports_from_the_switch(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: object
) -> None:
    alice, outgoing, bob, incoming = call_between(switch, user_agents)
    alice.media_start(outgoing, 440, str(tmp_path) + "/a.wav")
    bob.media_start(incoming, 1000, str(tmp_path) + "/b.wav")
    # pjmedia and the switch each report every 5 s x [0.5, 1.5): usually within 12 s both have
    # sent and answered at least one sender report
    stats: dict[str, dict[str, object]] = {}
    live: dict[str, Any] = {}
    deadline = time.monotonic() + 25.0
    while time.monotonic() < deadline:
        time.sleep(1.0)
        stats = {
            "alice": alice.stream_stat(outgoing),
            "bob": bob.stream_stat(incoming),
        }
        (live,) = switch.api("/api/calls")["calls"]
        legs = (live["media"]["a"], live["media"]["b"])
        if all(int(str(s["rtt_count"])) > 0 for s in stats.values()) and all(
            leg["rtt_ms"] is not None for leg in legs
        ):
            break
    alice.media_stop(outgoing)
    bob.media_stop(incoming)
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    for who, stat in stats.items():
        # the switch's report blocks carry the LSR/DLSR of this phone's own sender reports
        assert int(str(stat["rtt_count"])) > 0, (who, stats)
        assert 0 <= int(str(stat["rtt_last_us"])) < 200_000, (who, stats)
        assert int(str(stat["rx_packets"])) > 200, (who, stats)
    # the switch's view of the same call, as a supervisor sees it: each leg's loss, jitter
    # and round trip, measured from the phones' own RTCP reports
    assert live["caller"] == "1001" and live["callee"] == "1002", live
    for side in ("a", "b"):
        leg = live["media"][side]
        assert leg["rtcp_received"] > 0 and leg["rtcp_sent"] > 0, live
        assert leg["rtt_ms"] is not None and 0 <= leg["rtt_ms"] < 200, str(live["media"])
        assert leg["packets_in"] > 200 and leg["packets_lost"] == 0, live
        assert leg["jitter_ms"] < 20 and leg["remote_packets_lost"] == 0, live
        assert 4.3 < leg["mos"] <= 4.5, live  # a clean loopback G.711 leg
    held, doc = switch.wait_idle()
    assert held, doc
    # and its detail record keeps them once the call is over
    record = switch.api(f"/api/calls/{live['call_id']}")
    assert record["live"] is False and record["status"] == 200, record
    assert record["cause"] == "caller hung up", record
    assert record["media"]["a"]["packets_in"] >= live["media"]["a"]["packets_in"], record
