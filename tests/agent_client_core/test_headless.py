"""The headless mode: in process against the real agent API, and the command line."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyotp

from agent_client.headless import HeadlessOptions, run_headless
from agent_client.phone import CallState, PhoneCall
from tests.acd_callers import binding
from tests.agent_client_core.conftest import (
    CALLER,
    CALLER_NAME,
    MEMBER,
    RecordingPhone,
    SwitchFactory,
)
from tests.agent_client_core.test_controller import unused_port

ROOT = Path(__file__).resolve().parents[2]
CALL = "call-h@switch.test"


def lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


async def until_event(out: io.StringIO, kind: str, timeout: float = 5.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            for line in lines(out):
                if line["event"] == kind:
                    return line
            await asyncio.sleep(0.02)


async def test_headless_takes_a_queue_call_by_itself(local_switch: SwitchFactory) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        out, err = io.StringIO(), io.StringIO()
        commands = asyncio.StreamReader()
        options = HeadlessOptions(
            agent="ann",
            password="home-secret-1",
            totp=sw.code(),
            auto_answer=True,
            answer_delay=0.2,
            ready=True,
            wrap_up_code="sale",
            control_stdin=True,
        )
        run = asyncio.get_running_loop().create_task(
            run_headless(
                sw.config(),
                phone,
                options,
                out=out,
                err=err,
                commands=commands,
                handle_signals=False,
            )
        )
        try:
            signed_in = await until_event(out, "signed_in")
            assert signed_in["agent"] == "ann" and signed_in["sip"] is True
            assert sw.state() == ("not_ready", "login")  # ready waits for the registration
            assert phone.listener is not None
            phone.listener.registration_changed(True, "registered")
            await until_event(out, "registered")
            async with asyncio.timeout(5):
                while sw.state() != ("ready", None):
                    await asyncio.sleep(0.02)

            caller, _ = sw.join(CALL)
            offer = await until_event(out, "offer")
            assert offer == {
                "event": "offer",
                "call_id": CALL,
                "queue": "support",
                "fields": ["member", "tier"],
            }
            phone.listener.call_changed(PhoneCall(9, CallState.RINGING, "sip:q@test", True))
            async with asyncio.timeout(5):
                while not phone.did("answer"):
                    await asyncio.sleep(0.02)
            assert phone.did("answer") == [("answer", 9)]
            phone.listener.call_changed(PhoneCall(9, CallState.CONFIRMED, "sip:q@test", True))
            caller.result(200, binding("1001").contact)
            assert (await until_event(out, "answered"))["call_id"] == CALL

            phone.listener.call_changed(PhoneCall(9, CallState.ENDED, "sip:q@test", True))
            sw.queues.call_ended(CALL, "caller")
            assert (await until_event(out, "ended"))["call_id"] == CALL
            assert (await until_event(out, "wrap_up"))["call_id"] == CALL
            async with asyncio.timeout(5):
                while sw.queues.acd.agent_view("ann", 0)["last_code"] != "sale":
                    await asyncio.sleep(0.02)
            assert sw.state() == ("ready", None)

            commands.feed_data(b'{"cmd": "dance"}\nnot json\n')
            await until_event(out, "error")
            commands.feed_data(b'{"cmd": "quit"}\n')
            async with asyncio.timeout(10):
                assert await run == 0
        finally:
            if not run.done():
                run.cancel()
        events = [line["event"] for line in lines(out)]
        assert events[-1] == "signed_out" and sw.state() == ("logged_out", None)
        assert events.count("error") == 2 and err.getvalue() == ""
        text = out.getvalue()
        assert CALLER not in text and CALLER_NAME not in text and MEMBER not in text
        assert "gold" not in text


async def test_headless_exits_1_when_signing_in_fails(local_switch: SwitchFactory) -> None:
    async with local_switch() as sw:
        out, err = io.StringIO(), io.StringIO()
        options = HeadlessOptions(agent="ann", password="wrong", totp=sw.code())
        code = await run_headless(
            sw.config(), RecordingPhone(), options, out=out, err=err, handle_signals=False
        )
        assert code == 1
        assert err.getvalue() == "agent-client: unknown agent or wrong password\n"
        assert [line["event"] for line in lines(out)] == ["error"]


async def test_commands_typed_before_the_sign_in_wait_for_it(local_switch: SwitchFactory) -> None:
    """A script writes its commands at once: "ready" waits for the session instead of
    failing it, then "quit" signs out."""
    async with local_switch() as sw:
        out, err = io.StringIO(), io.StringIO()
        commands = asyncio.StreamReader()
        commands.feed_data(b'{"cmd": "ready"}\n')
        options = HeadlessOptions(
            agent="ann", password="home-secret-1", totp=sw.code(), control_stdin=True
        )
        run = asyncio.get_running_loop().create_task(
            run_headless(
                sw.config(),
                RecordingPhone(),
                options,
                out=out,
                err=err,
                commands=commands,
                handle_signals=False,
            )
        )
        async with asyncio.timeout(5):
            while sw.state() != ("ready", None):
                await asyncio.sleep(0.02)
        commands.feed_data(b'{"cmd": "quit"}\n')
        assert await asyncio.wait_for(run, 10) == 0
        kinds = [line["event"] for line in lines(out)]
        assert kinds[0] == "signed_in" and kinds[-1] == "signed_out" and "error" not in kinds
        assert err.getvalue() == ""


def agent_client(*args: str, timeout: float = 20) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "agent_client", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        cwd=ROOT,
        stdin=subprocess.DEVNULL,
    )


def test_help_explains_the_configuration_file() -> None:
    done = agent_client("--help")
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert text.startswith("usage: agent-client")
    assert "[switch]" in text and 'address = "10.66.0.1"' in text and "vpn_required" in text
    assert "VPN-side address" in text and "--headless" in text and "--totp-secret-file" in text
    assert "exit codes: 0 done, 1 the sign-in failed, 2 usage" in text


def test_bad_usage_and_bad_configuration_exit_2(tmp_path: Path) -> None:
    assert agent_client("--no-such-option").returncode == 2
    bad = tmp_path / "agent-client.toml"
    bad.write_text('[switch]\naddress = "10.66.0.1"\napi_port = 99999\n')
    done = agent_client("--config", str(bad), "--headless")
    assert done.returncode == 2
    assert done.stderr == (
        f"agent-client: {bad}: [switch] api_port must be a port number 1..65535, not 99999\n"
    )
    good = tmp_path / "good.toml"
    good.write_text('[switch]\naddress = "127.0.0.1"\n')
    done = agent_client("--config", str(good), "--headless", "--agent", "ann")
    assert done.returncode == 2 and "--password-file is needed" in done.stderr
    short = tmp_path / "short"
    short.write_text("JBSWY3DP\n")
    password = tmp_path / "password"
    password.write_text("x\n")
    done = agent_client(
        "--config",
        str(good),
        "--headless",
        "--agent",
        "ann",
        "--password-file",
        str(password),
        "--totp-secret-file",
        str(short),
    )
    assert done.returncode == 2 and "not a usable base32 TOTP secret" in done.stderr
    assert "JBSWY3DP" not in done.stderr


def test_headless_refuses_to_sign_in_without_the_vpn(tmp_path: Path) -> None:
    config = tmp_path / "agent-client.toml"
    config.write_text(f'[switch]\naddress = "127.0.0.1"\napi_port = {unused_port()}\n')
    password = tmp_path / "password"
    password.write_text("home-secret-1\n")
    secret = tmp_path / "totp"
    secret.write_text(pyotp.random_base32() + "\n")
    done = agent_client(
        "--config",
        str(config),
        "--headless",
        "--no-audio",
        "--agent",
        "ann",
        "--password-file",
        str(password),
        "--totp-secret-file",
        str(secret),
    )
    assert done.returncode == 1, done.stderr
    assert (
        "agent-client: the switch does not answer on its VPN address 127.0.0.1: " "is the VPN up?\n"
    ) in done.stderr
    assert [json.loads(line)["event"] for line in done.stdout.splitlines()] == ["error"]
