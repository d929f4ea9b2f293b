"""Command line: ``softswitch run``, ``softswitch check`` and ``softswitch route``."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from softswitch.admin.agent_cli import add_agent_commands
from softswitch.admin.vpn_cli import add_vpn_commands
from softswitch.apps.dryrun import DryChannel, DryLookups, parse_stub
from softswitch.apps.session import CallSession
from softswitch.config import Settings, check, load_with_plan
from softswitch.routing.decide import CallFacts, CompiledPlan
from softswitch.routing.loader import check_plan, load_plan
from softswitch.routing.schema import DTMF_KEYS, Plan
from softswitch.yaml_loader import ConfigErrors

DEFAULT_CONFIG = Path("configs/default.yaml")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="softswitch",
        description="SIP registrar and B2BUA for call centers with home agents.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="start the switch")
    run.add_argument(
        "-c",
        "--config",
        type=Path,
        default=DEFAULT_CONFIG,
        help="settings file (default: %(default)s)",
    )
    run.add_argument("--sip-port", type=int, help="port of every SIP listener (overrides the file)")
    run.add_argument("--http-port", type=int, help="HTTP port (overrides the file)")
    run.add_argument("--bind", help="address of every listener (overrides the file)")
    chk = sub.add_parser("check", help="validate a settings file and exit")
    chk.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG)
    chk.add_argument("file", nargs="?", type=Path, help="settings or dialplan file (same as -c)")
    route = sub.add_parser(
        "route",
        help="trace the path a call would take through a dialplan, without placing it",
    )
    route.add_argument("--plan", type=Path, required=True, help="dialplan file")
    route.add_argument("--from", dest="caller", required=True, help="caller's number")
    route.add_argument("--to", dest="number", required=True, help="number dialled")
    route.add_argument("--name", dest="caller_name", help="caller's display name")
    route.add_argument(
        "--at",
        help="time of the call, ISO 8601 (2026-11-23T22:00+09:00; default now, in UTC "
        "if no offset is given)",
    )
    route.add_argument(
        "--context", default="public", help="context of the caller (default: %(default)s)"
    )
    route.add_argument(
        "--var", action="append", default=[], metavar="NAME=VALUE", help="a call variable"
    )
    route.add_argument(
        "--digits",
        metavar="KEYS,KEYS,...",
        help="what the caller presses at each prompt that waits for keys, in order "
        "(e.g. 2,1234#); an empty entry presses nothing there",
    )
    route.add_argument(
        "--stub",
        action="append",
        default=[],
        metavar="SERVICE=JSON",
        help="the answer of a lookup service (a JSON object, or 'fail'); lookups without "
        "one are not made and count as failed",
    )
    route.add_argument(
        "--bridge",
        type=int,
        default=200,
        metavar="STATUS",
        help="how bridges end: 200 answered (default), or a failure such as 486 or 408",
    )
    add_agent_commands(sub)
    add_vpn_commands(sub)
    return parser


def apply_overrides(settings: Settings, args: argparse.Namespace) -> Settings:
    """The command-line flags win over the file (``--sip-port``, ``--http-port``, ``--bind``)."""
    sip = settings.sip
    http = settings.http
    if args.sip_port is not None or args.bind is not None:
        listeners = tuple(
            listener.model_copy(
                update={
                    k: v
                    for k, v in (("port", args.sip_port), ("address", args.bind))
                    if v is not None
                }
            )
            for listener in sip.listeners
        )
        sip = sip.model_copy(update={"listeners": listeners})
    if args.http_port is not None or args.bind is not None:
        http = http.model_copy(
            update={
                k: v for k, v in (("port", args.http_port), ("address", args.bind)) if v is not None
            }
        )
    return settings.model_copy(update={"sip": sip, "http": http})


def load_for_run(args: argparse.Namespace) -> tuple[Settings, Plan | None] | None:
    """The settings (with the command line's overrides) and their dialplan, both checked;
    None, every error printed, if either is wrong."""
    try:
        settings, plan = load_with_plan(args.config)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(
            f"{args.config}: {len(exc.errors)} error(s); the switch was not started",
            file=sys.stderr,
        )
        return None
    except OSError as exc:
        print(f"{args.config}: {exc.strerror}", file=sys.stderr)
        return None
    return apply_overrides(settings, args), plan


def _is_dialplan(path: Path) -> bool:
    """A dialplan file has a top-level ``contexts:`` key (a settings file never has)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return re.search(r"^contexts\s*:", text, re.MULTILINE) is not None


def cmd_check(args: argparse.Namespace) -> int:
    path = args.file or args.config
    try:
        errors = check_plan(path) if _is_dialplan(path) else check(path)
    except OSError as exc:
        print(f"{path}: {exc.strerror}", file=sys.stderr)
        return 2
    for error in errors:
        print(error)
    if errors:
        print(f"{path}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{path}: OK")
    return 0


def cmd_route(args: argparse.Namespace) -> int:
    try:
        plan = load_plan(args.plan)
    except ConfigErrors as exc:
        for error in exc.errors:
            print(error, file=sys.stderr)
        print(f"{args.plan}: {len(exc.errors)} error(s)", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{args.plan}: {exc.strerror}", file=sys.stderr)
        return 2
    try:
        at = datetime.fromisoformat(args.at) if args.at else datetime.now(UTC)
    except ValueError:
        print(f"--at {args.at!r}: expected ISO 8601, e.g. 2026-11-23T22:00+09:00", file=sys.stderr)
        return 2
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    variables = {}
    for item in args.var:
        name, sep, value = item.partition("=")
        if not sep:
            print(f"--var {item!r}: expected NAME=VALUE", file=sys.stderr)
            return 2
        variables[name] = value
    stubs: dict[str, Mapping[str, object] | None] = {}
    for item in args.stub:
        try:
            name, answer = parse_stub(item)
        except ValueError as exc:
            print(f"--stub: {exc}", file=sys.stderr)
            return 2
        if name not in plan.services:
            print(f"--stub: the plan has no service {name!r}", file=sys.stderr)
            return 2
        stubs[name] = answer
    digits = args.digits.split(",") if args.digits is not None else []
    bad = next((d for d in digits if any(c not in DTMF_KEYS for c in d)), None)
    if bad is not None:
        print(f"--digits: {bad!r} holds a key that is not 0-9, *, # or A-D", file=sys.stderr)
        return 2
    facts = CallFacts(
        number=args.number,
        caller=args.caller,
        context=args.context,
        at=at,
        caller_name=args.caller_name,
        variables=variables,
    )
    print(f"call from {args.caller} to {args.number} at {at.isoformat()}")
    channel = DryChannel(digits, print, bridge_status=args.bridge)
    session = CallSession(
        CompiledPlan(plan), facts, channel, DryLookups(plan, stubs), call_id="dry-run", trace=print
    )
    channel.note = session.note  # the channel's lines indented under the action
    outcome = asyncio.run(session.run())
    if outcome.path:
        print(f"path: {' > '.join(outcome.path)}")
    return 3 if outcome.how == "no route" else 0


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)
