"""Registration with digest authentication, driven by SIPp (RFC 3261 sections 10, 22)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.interop.servers import ServerProcess, sipp_overrides
from tests.interop.sipp import SippResult, run_sipp, write_injection

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("sipp_available")]
SWITCH_OVERRIDES = sipp_overrides()


def _register(
    switch: ServerProcess, tmp_path: Path, scenario: str, password: str, transport: str = "u1"
) -> SippResult:
    users = write_injection(tmp_path / "users.csv", [["1001", password, switch.domain]])
    return run_sipp(
        scenario,
        switch.address,
        "-t",
        transport,
        "-inf",
        str(users),
        "-auth_uri",
        switch.domain,
        "-m",
        "1",
        "-recv_timeout",
        "10000",
        timeout=30,
    )


@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_register_with_right_password_succeeds(
    switch: ServerProcess, tmp_path: Path, transport: str
) -> None:
    result = _register(switch, tmp_path, "register_auth.xml", switch.users["1001"], transport)
    assert result.ok, result.describe() + "\n--- server ---\n" + switch.stderr_text()[-3000:]
    assert result.stats is not None and result.stats.successful == 1
    held, doc = switch.wait_health(lambda d: d.get("registrations", 0) >= 1, timeout=5)
    assert held, f"/healthz shows no registration after a 200: {doc}"


def test_register_with_wrong_password_is_refused(switch: ServerProcess, tmp_path: Path) -> None:
    result = _register(switch, tmp_path, "register_bad_password.xml", "not-the-password")
    # The scenario succeeds only if the second REGISTER got 401 or 403; a 200 fails it.
    assert result.ok, result.describe() + "\n--- server ---\n" + switch.stderr_text()[-3000:]
    assert result.stats is not None and result.stats.successful == 1


def test_wrong_password_scenario_fails_on_acceptance(switch: ServerProcess, tmp_path: Path) -> None:
    """The refusal check is real: with the right password the same scenario fails."""
    result = _register(switch, tmp_path, "register_bad_password.xml", switch.users["1001"])
    assert result.returncode == 1, result.describe()
    assert result.stats is not None and result.stats.failed == 1


def test_register_scenario_fails_with_wrong_password(switch: ServerProcess, tmp_path: Path) -> None:
    result = _register(switch, tmp_path, "register_auth.xml", "not-the-password")
    assert not result.ok, result.describe()
    assert result.stats is not None and result.stats.successful == 0
