"""``agent-client``: the home agent's softphone, with its window or headless.

Exit codes: 0 after a normal end, 1 when signing in failed (the reason on standard error), 2 for
a usage error (bad options, a bad configuration file).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import sys
from pathlib import Path
from typing import TextIO

from agent_client.config import ClientConfig, ConfigError, default_path, load_config
from agent_client.phone import Phone
from agent_client.redact import Redactor, install

__all__ = ["main"]

DESCRIPTION = """\
The home agent's desktop softphone for the softswitch. It signs the agent in to the
switch's agent API (agent id, password and a one-time code), gets this session's SIP
credentials from the switch, registers its softphone with them, and shows queue calls
with their screen pop; the agent answers, holds, transfers and ends each call with a
wrap-up code. The client talks to the switch only on the switch's VPN-side address and
refuses to start a session unless the switch answers there. Signing out (or the idle
sign-out the switch sets) unregisters the phone and forgets the credentials and every
screen pop: customer data is never written to disk."""

EPILOG = f"""\
configuration file (TOML; default {default_path()}):

  [switch]
  address = "10.66.0.1"     # the switch's VPN-side address (required)
  api_port = 8080           # its agent API port
  api_scheme = "http"       # or "https"
  vpn_required = true       # refuse a session unless the switch answers on that address
  echo_test = "9196"        # the number the test call dials

  [agent]
  id = "alice"              # fills in the sign-in form (optional)
  idle_signout = 600        # sign out sooner than the switch asks (optional, seconds)

  [audio]
  input = "Headset Microphone"   # preferred devices (optional; the last choice is
  output = "Headset Earphone"    # remembered in prefs.json beside the file)

headless mode prints one JSON line per event (signed_in, registered, offer, answered,
ended, wrap_up, signed_out, error); with --control-stdin it reads JSON commands such as
{{"cmd": "ready"}}, {{"cmd": "answer"}}, {{"cmd": "hangup"}},
{{"cmd": "wrap_up", "code": "sale"}}, {{"cmd": "quit"}}.

exit codes: 0 done, 1 the sign-in failed, 2 usage or configuration error."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-client",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, metavar="FILE", help="the configuration file")
    parser.add_argument("--headless", action="store_true", help="no window: JSON lines on stdout")
    parser.add_argument("--agent", metavar="ID", help="the agent id (default: [agent] id)")
    parser.add_argument(
        "--password-file", type=Path, metavar="F", help="read the password from this file"
    )
    totp = parser.add_mutually_exclusive_group()
    totp.add_argument(
        "--totp-secret-file",
        type=Path,
        metavar="F",
        help="compute the one-time code from the base32 secret in this file (tests)",
    )
    totp.add_argument("--totp", metavar="CODE", help="the one-time code")
    parser.add_argument("--auto-answer", action="store_true", help="headless: answer offered calls")
    parser.add_argument("--ready", action="store_true", help="headless: go ready once signed in")
    parser.add_argument(
        "--wrap-up-code", metavar="C", help="headless: end each wrap-up with this code"
    )
    parser.add_argument(
        "--control-stdin", action="store_true", help="headless: read JSON commands on stdin"
    )
    parser.add_argument(
        "--no-audio",
        action="store_true",
        help="headless: no sound devices (the calls' audio is not bridged to a headset)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log more (to stderr)")
    return parser


def _setup_logging(verbose: bool) -> Redactor:
    redactor = Redactor()
    handler = logging.StreamHandler(sys.stderr)
    install(redactor, handler, "%(asctime)s %(levelname)s %(name)s: %(message)s")
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("aiohttp").setLevel(logging.WARNING)
    return redactor


def _read_secret(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{path}: the {what} cannot be read: {exc.strerror or exc}") from None
    if not text:
        raise ValueError(f"{path}: the {what} file is empty")
    return text


def _totp_code(path: Path) -> str:
    import pyotp  # only the tests' and unattended checks' path needs it

    secret = _read_secret(path, "TOTP secret").replace(" ", "")
    try:
        return str(pyotp.TOTP(secret).now())
    except Exception as exc:  # pyotp's reason names no part of the secret
        raise ValueError(f"{path}: not a usable base32 TOTP secret ({exc})") from None


def _make_phone(config: ClientConfig, *, audio: bool = True) -> Phone:
    from agent_client.sip_phone import SipPhone

    phone: Phone = SipPhone(
        input_device=config.audio.input, output_device=config.audio.output, audio=audio
    )
    return phone


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        print(f"agent-client: {exc}", file=sys.stderr)
        return 2
    redactor = _setup_logging(args.verbose)
    if args.headless:
        return _headless(parser, args, config, redactor)
    return _windowed(config, redactor)


def _headless(
    parser: argparse.ArgumentParser,
    args: argparse.Namespace,
    config: ClientConfig,
    redactor: Redactor,
) -> int:
    from agent_client.headless import HeadlessOptions, run_headless

    agent = args.agent or config.agent.id
    if not agent:
        parser.print_usage(sys.stderr)
        print(
            "agent-client: --agent (or [agent] id in the configuration) is needed", file=sys.stderr
        )
        return 2
    try:
        if args.password_file is not None:
            password = _read_secret(args.password_file, "password")
        elif sys.stdin.isatty() and not args.control_stdin:
            password = getpass.getpass(f"password of agent {agent}: ")
        else:
            raise ValueError("--password-file is needed without a terminal")
        code = args.totp or ""
        if args.totp_secret_file is not None:
            code = _totp_code(args.totp_secret_file)
    except ValueError as exc:
        print(f"agent-client: {exc}", file=sys.stderr)
        return 2
    options = HeadlessOptions(
        agent=agent,
        password=password,
        totp=code,
        auto_answer=args.auto_answer,
        ready=args.ready,
        wrap_up_code=args.wrap_up_code,
        control_stdin=args.control_stdin,
    )
    events = _own_stdout()
    phone = _make_phone(config, audio=not args.no_audio)
    return asyncio.run(run_headless(config, phone, options, redactor=redactor, out=events))


def _own_stdout() -> TextIO:
    """Headless output is JSON lines only: the events get the real standard output, and file
    descriptor 1 becomes standard error, so that what native libraries print there (pjlib's
    start-up lines) cannot mix with them."""
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _windowed(config: ClientConfig, redactor: Redactor) -> int:
    from PySide6.QtWidgets import QApplication

    from agent_client.controller import Controller
    from agent_client.view import View
    from agent_client.window import AgentWindow

    app = QApplication.instance() or QApplication(sys.argv)
    window: list[AgentWindow] = []

    def show(view: View) -> None:
        if window:
            window[0].post_view(view)

    controller = Controller(config, _make_phone(config), show, redactor=redactor)
    window.append(AgentWindow(controller))
    window[0].show()
    controller.start()
    try:
        return int(app.exec())
    finally:
        controller.close()


if __name__ == "__main__":
    sys.exit(main())
