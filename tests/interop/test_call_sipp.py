"""Calls between two SIPp peers through the switch (RFC 3261 sections 13, 15, 22.3).

A SIPp UAS registers as 1002 (its contact is its own port); a SIPp UAC as 1001
places 20 authenticated calls to 1002: INVITE, 407, ACK, INVITE with credentials,
180, 200, ACK, BYE, 200. Every call must succeed on both sides, and the switch must
hold no call or dialog afterwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.servers import ServerProcess, free_port, sipp_overrides
from tests.interop.sipp import SippProcess, register_contact, run_sipp, write_injection

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("sipp_available")]
SWITCH_OVERRIDES = sipp_overrides()

CALLS = 20


def test_twenty_calls_through_the_switch(switch: ServerProcess, tmp_path: Path) -> None:
    users, domain = switch.users, switch.domain
    callee = write_injection(tmp_path / "callee.csv", [["1002", users["1002"], domain]])
    caller = write_injection(tmp_path / "caller.csv", [["1001", users["1001"], domain]])
    uas_port = free_port()

    registered = register_contact(switch.address, callee, switch.domain, uas_port)
    server_log = "\n--- server ---\n" + switch.stderr_text()[-3000:]
    assert registered.ok, registered.describe() + server_log

    # No -m on the UAS: a keep-alive OPTIONS would count as one of its "calls".
    with SippProcess("uas_answer.xml", "-p", str(uas_port), "-timeout", "120s") as uas:
        uac = run_sipp(
            "uac_call_auth.xml",
            switch.address,
            "-inf",
            str(caller),
            "-s",
            "1002",
            "-auth_uri",
            f"1002@{switch.domain}",
            "-m",
            str(CALLS),
            "-r",
            "10",
            "-d",
            "100",
            "-recv_timeout",
            "10000",
            timeout=90,
        )
        uas_result = uas.stop(grace=10)

    server_log = "\n--- server ---\n" + switch.stderr_text()[-3000:]
    assert uac.ok, uac.describe() + "\n--- uas ---\n" + uas_result.describe() + server_log
    assert uac.stats is not None and uac.stats.successful == CALLS and uac.stats.failed == 0
    assert uas_result.ok, uas_result.describe() + server_log
    assert uas_result.stats is not None and uas_result.stats.failed == 0
    assert uas_result.stats.successful >= CALLS, uas_result.describe()

    held, doc = switch.wait_idle()
    assert held, f"calls/dialogs left after {CALLS} finished calls: {doc}"
