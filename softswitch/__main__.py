"""Entry point of the ``softswitch`` command."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from softswitch.admin.cli import cmd_check, cmd_route, load_for_run, parse


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    if args.command == "check":
        return cmd_check(args)
    if args.command == "route":
        return cmd_route(args)
    if args.command == "agent":
        from softswitch.admin.agent_cli import cmd_agent
        from softswitch.storage.security_store import SecurityDb

        return cmd_agent(args, SecurityDb)
    if args.command == "vpn":
        from softswitch.admin.vpn_cli import cmd_vpn

        return cmd_vpn(args)
    loaded = load_for_run(args)
    if loaded is None:
        return 1
    settings, plan = loaded
    from softswitch.app import configure_logging, run

    configure_logging(settings.logging.level, settings.logging.format)
    try:
        run(settings, plan)
    except OSError as exc:
        print(f"softswitch: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
