"""Command line: ``softswitch run`` and ``softswitch check``."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from softswitch.config import Settings, check, load_settings
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
    chk.add_argument("file", nargs="?", type=Path, help="settings file (same as -c)")
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


def load_for_run(args: argparse.Namespace) -> Settings | None:
    try:
        settings = load_settings(args.config)
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
    return apply_overrides(settings, args)


def cmd_check(args: argparse.Namespace) -> int:
    path = args.file or args.config
    try:
        errors = check(path)
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


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)
