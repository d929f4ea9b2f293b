"""A home agent's day, end to end, over a real WireGuard VPN.

Two test hosts (network namespaces, :mod:`tests.e2e.netlab`): the switch's, and a home
agent's joined to it by a veth pair (the "internet") and a WireGuard tunnel. The admin's
steps are the real commands: ``softswitch vpn add-agent alice`` writes the server's and
alice's WireGuard configs (the lab brings both ends up from them) and narrows alice's SIP user
to her VPN address; ``softswitch agent totp alice`` enrols her second factor. Then:

- the switch runs in its namespace, listening on all its addresses;
- the agent client runs headless in the agent's namespace, its "headset" a PulseAudio null
  sink (a real PortAudio device): it checks the switch answers on its VPN address, signs in
  with password and TOTP code, registers with this session's SIP credentials through the
  tunnel and goes ready;
- a pjsua2 caller in the switch's namespace calls the demo IVR and presses 1 (queue
  ``general``); the client is offered the call, answers, and two-way audio is checked by
  frequency: the caller's 1000 Hz tone comes out of the agent's headset, and a 600 Hz tone fed
  to the agent's microphone reaches the caller;
- the caller hangs up, the agent sets the wrap-up code ``sale``, and the switch's queue log
  shows entered, connected, completed and wrap-up with the code;
- the same SIP user registering from the agent's host but outside the VPN (its veth address)
  is refused with 403.

Everything is torn down even when the test fails, and the test checks no namespace is left.
"""

from __future__ import annotations

import json
import os
import re
import selectors
import subprocess
import sys
import time
import wave
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from tests.agent_client.pulse import PrivatePulse, write_tone
from tests.agent_client.pulse import missing as pulse_missing
from tests.e2e.netlab import AGENT_UNDERLAY, SWITCH_UNDERLAY, VpnLab, lab_missing
from tests.interop.audio import dominant_hz
from tests.interop.pjua import UserAgent, pjsua2_available
from tests.interop.servers import write_softswitch_config

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
SWITCH_VPN = "10.66.0.1"
AGENT_VPN = "10.66.0.2"
HTTP_PORT = 8080
API_TOKEN = "end-to-end-admin-token"
SIP_PORT = 5060

pytestmark = [pytest.mark.interop, pytest.mark.timeout(240)]


def _missing() -> str | None:
    why = lab_missing()
    if why is not None:
        return why
    if not pjsua2_available():
        return "pjsua2 is not installed"
    return pulse_missing()


class Lines:
    """The JSON lines a child process prints, read with a deadline."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.seen: list[dict[str, Any]] = []
        #: lines that were not JSON (the headless client's output must be JSON only)
        self.stray: list[str] = []
        self._sel = selectors.DefaultSelector()
        self._sel.register(proc.stdout, selectors.EVENT_READ)
        self._buf = b""

    def _pump(self, timeout: float) -> None:
        assert self.proc.stdout is not None
        if self._sel.select(timeout=timeout):
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                return
            self._buf += chunk
            while b"\n" in self._buf:
                line, self._buf = self._buf.split(b"\n", 1)
                if not line.strip():
                    continue
                try:
                    self.seen.append(json.loads(line))
                except ValueError:
                    self.stray.append(line.decode("utf-8", "replace"))

    def wait(self, event: str, timeout: float, **match: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        checked = 0
        while True:
            for item in self.seen[checked:]:
                if item.get("event") == event and all(item.get(k) == v for k, v in match.items()):
                    return item
            checked = len(self.seen)
            left = deadline - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and not self._sel.select(0)):
                raise AssertionError(f"no {event!r} within {timeout} s; seen: {self.seen}")
            self._pump(min(left, 0.2))


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[VpnLab]:
    why = _missing()
    if why is not None:
        pytest.skip(why)
    lab = VpnLab()
    try:
        yield lab
    finally:
        lab.close()
        assert lab.namespaces_left() == [], "the lab's namespaces were not removed"


def softswitch(workdir: Path, *args: str) -> str:
    """Run the ``softswitch`` command as an admin would, in the switch's working folder."""
    done = subprocess.run(
        [str(VENV_BIN / "softswitch"), *args],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, f"softswitch {' '.join(args)}: {done.stderr}{done.stdout}"
    return done.stdout


def write_wav(path: Path, samples: Any, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())


def api(lab: VpnLab, path: str) -> Any:
    """GET the switch's HTTP API from inside the switch's host."""
    script = (
        "import sys, urllib.request;"
        f"r = urllib.request.Request('http://127.0.0.1:{HTTP_PORT}{path}',"
        f" headers={{'Authorization': 'Bearer {API_TOKEN}'}});"
        "sys.stdout.write(urllib.request.urlopen(r, timeout=5).read().decode())"
    )
    return json.loads(lab.run(lab.switch_ns, [sys.executable, "-c", script], timeout=15))


def wait_api(lab: VpnLab, path: str, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return api(lab, path)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.3)


def test_home_agent_takes_a_queue_call_over_the_vpn(lab: VpnLab, tmp_path: Path) -> None:
    work = tmp_path / "switch"
    work.mkdir()
    config = write_softswitch_config(
        work,
        overrides={
            "sip.listeners": [{"transport": "udp", "address": "0.0.0.0", "port": SIP_PORT}],
            "sip.advertised_address": SWITCH_VPN,
            "http.address": "0.0.0.0",
            "http.port": HTTP_PORT,
            "http.api_token": API_TOKEN,
            "dialplan.at": "2026-11-24T10:00+09:00",  # a Tuesday morning: the IVR is open
            "registrar.keepalive_interval": 0,
            "security.signin.totp": "required",
            "security.signin.store": str(work / "security.db"),
            "vpn": {
                "network": "10.66.0.0/24",
                "address": SWITCH_VPN,
                "endpoint": f"{SWITCH_UNDERLAY}:51820",
                "server_config": str(work / "vpn" / "wg0.conf"),
                "peers": str(work / "vpn" / "peers.json"),
            },
        },
    )

    # -- the admin's steps ---------------------------------------------------------------------
    agent_conf = tmp_path / "alice-wg.conf"
    out = softswitch(work, "vpn", "add-agent", "alice", "-c", str(config), "--no-qr",
                     "--out", str(agent_conf))  # fmt: skip
    assert agent_conf.stat().st_mode & 0o777 == 0o600
    assert f"Address = {AGENT_VPN}/32" in agent_conf.read_text(), out
    enrolled = softswitch(work, "agent", "totp", "alice", "-c", str(config))
    uri = re.search(r"otpauth://totp/\S+", enrolled)
    assert uri is not None, enrolled
    secret = parse_qs(urlparse(uri.group(0)).query)["secret"][0]
    lab.build(work / "vpn" / "wg0.conf", agent_conf, tmp_path)

    # -- the switch, in its host ---------------------------------------------------------------
    crm = f"http://127.0.0.1:{HTTP_PORT}/api/demo/crm"
    env = dict(os.environ, PYTHONUNBUFFERED="1", SOFTSWITCH_DEMO_CRM=crm)
    switch_log = tmp_path / "switch.log"
    switch = lab.spawn(
        lab.switch_ns,
        [str(VENV_BIN / "softswitch"), "run", "-c", str(config)],
        log=switch_log,
        env=env,
    )
    wait_api(lab, "/healthz", timeout=20)

    # -- the agent's headset and the client, in the agent's host ---------------------------
    with PrivatePulse() as pulse:
        client_conf = tmp_path / "agent-client.toml"
        client_conf.write_text(
            f'[switch]\naddress = "{SWITCH_VPN}"\napi_port = {HTTP_PORT}\n'
            f'vpn_required = true\n\n[agent]\nid = "alice"\n'
        )
        (tmp_path / "password").write_text("demo1001\n")
        (tmp_path / "totp").write_text(secret + "\n")
        client = lab.spawn(
            lab.agent_ns,
            [
                str(VENV_BIN / "agent-client"),
                "--headless",
                "--config",
                str(client_conf),
                "--password-file",
                str(tmp_path / "password"),
                "--totp-secret-file",
                str(tmp_path / "totp"),
                "--ready",
                "--control-stdin",
            ],  # fmt: skip
            log=tmp_path / "client.log",
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=pulse.client_env(PULSE_SINK="headset", PULSE_SOURCE="mic.monitor"),
        )
        lines = Lines(client)

        def command(**cmd: Any) -> None:
            assert client.stdin is not None
            client.stdin.write((json.dumps(cmd) + "\n").encode())
            client.stdin.flush()

        lines.wait("signed_in", timeout=20)
        lines.wait("registered", timeout=20)
        assert lab.handshake_age() is not None, "no WireGuard handshake"
        deadline = time.monotonic() + 15
        while api(lab, "/api/supervisor/agents")["agents"]:
            agents = {a["id"]: a for a in api(lab, "/api/supervisor/agents")["agents"]}
            if agents["alice"]["state"] == "ready" or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert agents["alice"]["state"] == "ready", agents["alice"]

        # -- a customer calls the IVR and presses 1 ------------------------------------------
        caller = UserAgent("carol", netns=lab.switch_ns)
        try:
            caller.request("init", bind="127.0.0.1", port=0)
            assert (
                caller.register("1003", "demo1003", f"127.0.0.1:{SIP_PORT}", "softswitch.local")
                == 200
            )
            call = caller.call("1003", "sip:100@softswitch.local")
            caller.wait_state(call, "CONFIRMED", timeout=10)
            time.sleep(1.0)
            caller.dtmf(call, "1")
            offer = lines.wait("offer", timeout=20)
            assert offer["queue"] == "general"
            lines.wait("ringing", timeout=10)
            command(cmd="answer")
            lines.wait("answered", timeout=10)

            heard_by_caller = tmp_path / "caller.wav"
            caller.media_start(call, tone_hz=1000.0, record=str(heard_by_caller))
            player = pulse.play("mic", write_tone(tmp_path / "agent.wav", 600.0, 8.0))
            try:
                time.sleep(0.5)
                at_the_ear = pulse.record("headset.monitor", 3.0)
                caller.media_stop(call)
            finally:
                player.terminate()
                player.wait(timeout=5)
            heard_by_agent = tmp_path / "headset.wav"
            write_wav(heard_by_agent, at_the_ear)
            caller.hangup(call)
            lines.wait("ended", timeout=10)
        finally:
            caller.close()

        hz, above = dominant_hz(heard_by_agent, own_hz=600.0)
        assert abs(hz - 1000.0) < 30 and above > 10, (hz, above)
        hz, above = dominant_hz(heard_by_caller, own_hz=1000.0)
        assert abs(hz - 600.0) < 30 and above > 10, (hz, above)

        lines.wait("wrap_up", timeout=10)
        command(cmd="wrap_up", code="sale")
        deadline = time.monotonic() + 10
        while True:
            events = api(lab, f"/api/queue-events?call_id={offer['call_id']}")["events"]
            kinds = [e["event"] for e in events]
            if "wrap_up" in kinds or time.monotonic() > deadline:
                break
            time.sleep(0.3)
        assert kinds[:1] == ["entered"] and "connected" in kinds, kinds
        assert {"completed_caller", "completed_agent"} & set(kinds), kinds
        (wrap,) = [e for e in events if e["event"] == "wrap_up"]
        assert wrap["agent"] == "alice" and wrap["details"]["code"] == "sale"

        # -- alice's SIP user from her host, outside the VPN: refused ----------------------
        outsider = UserAgent("outside", netns=lab.agent_ns)
        try:
            outsider.request("init", bind=AGENT_UNDERLAY, port=0)
            code = outsider.register(
                "1001", "demo1001", f"{SWITCH_UNDERLAY}:{SIP_PORT}", "softswitch.local"
            )
            assert code == 403
        finally:
            outsider.close()

        command(cmd="quit")
        lines.wait("signed_out", timeout=10)
        assert client.wait(timeout=10) == 0
        assert lines.stray == [], "the headless client printed other things than JSON lines"
    switch.terminate()
    switch.wait(timeout=30)
    log = switch_log.read_text()
    assert "Traceback" not in log
    # signing out unregistered the phone before the switch revoked its credentials: no
    # refused REGISTER, and so no ban of the agent's address
    assert "authentication failed" not in log and "banned" not in log, log[-3000:]
