"""A call between two pjsua2 user agents through the switch.

1001 and 1002 register with digest credentials; 1001 calls sip:1002@domain, 1002
rings and answers, both reach CONFIRMED; 1001 hangs up and both reach
DISCONNECTED. Afterwards /healthz must show no call and no dialog (polled while
transaction timers drain).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


def test_call_answer_and_hang_up(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent]
) -> None:
    alice = user_agents("1001")
    bob = user_agents("1002")
    for agent, user in ((alice, "1001"), (bob, "1002")):
        code = agent.register(user, switch.users[user], switch.address, switch.domain)
        assert code == 200, f"{user} REGISTER answered {code}\n{switch.stderr_text()[-3000:]}"

    outgoing = alice.call("1001", f"sip:1002@{switch.domain}")
    incoming = bob.wait_incoming("1002", timeout=10)
    assert "1001" in incoming["remote_uri"], incoming
    bob.answer(incoming["call"], 180)
    early = alice.wait_state(outgoing, "EARLY", timeout=10)
    assert early["last_status"] == 180, early
    bob.answer(incoming["call"], 200)

    caller_up = alice.wait_state(outgoing, "CONFIRMED", timeout=10)
    callee_up = bob.wait_state(incoming["call"], "CONFIRMED", timeout=10)
    assert caller_up["last_status"] == 200, caller_up
    assert callee_up["state"] in ("CONFIRMED", "DISCONNECTED"), callee_up

    during = switch.health()
    assert during["calls"] >= 1, f"/healthz during the call: {during}"

    alice.hangup(outgoing)
    caller_down = alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    callee_down = bob.wait_state(incoming["call"], "DISCONNECTED", timeout=10)
    assert "CONFIRMED" in caller_down["states"] and "CONFIRMED" in callee_down["states"]
    # The callee saw a BYE, not a failure: its last status is the BYE's 200 (normal clearing).
    assert callee_down["last_status"] == 200, callee_down

    held, doc = switch.wait_idle()
    assert held, f"calls/dialogs left after the call ended: {doc}\n{switch.stderr_text()[-3000:]}"
