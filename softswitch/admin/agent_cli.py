"""Command line of agents' sign-in security: ``softswitch agent totp|unlock|audit``.

* ``softswitch agent totp ID [-c CONFIG]``: enrols (or enrols again, replacing the old one) a
  second-factor secret for agent ``ID`` (RFC 6238), and prints the ``otpauth://`` URI and a QR
  code of it for the agent's authenticator app. The agent must be one of the settings'
  ``acd.agents``. The secret is shown this once: the store keeps it, nothing prints it again.
* ``softswitch agent unlock ID``: lifts the lock of an account locked after failed sign-ins
  and forgets its failures.
* ``softswitch agent audit [--since T] [--actor A] [--action X] [--subject S] [--limit N]``:
  prints the newest audit entries (default: the last 24 hours), newest first.

These run beside the switch: they write the security store (``security.signin.store`` of
the settings, or ``--store``) directly, and the running switch reads it afresh at each
sign-in, so an enrolment or an unlock holds at once. Each is written to the audit trail with
the actor ``admin``.

The store is opened through the ``open_store`` callable the entry point hands in (the admin
layer does not import the storage layer): ``SecurityDb`` of
``softswitch.storage.security_store``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TextIO

import segno

from softswitch.config import Settings, load_settings
from softswitch.security import totp
from softswitch.security.lockout import LockState
from softswitch.security.totp import Enrolment
from softswitch.yaml_loader import ConfigErrors

__all__ = ["AgentSecurityStore", "add_agent_commands", "cmd_agent", "store_path"]

DEFAULT_CONFIG = Path("configs/default.yaml")
DEFAULT_STORE = "var/security.db"
#: seconds back that ``agent audit`` looks without ``--since``
DEFAULT_AUDIT_SPAN = 86400.0


class AuditRow(Protocol):
    @property
    def time(self) -> float: ...
    @property
    def actor(self) -> str: ...
    @property
    def action(self) -> str: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def address(self) -> str | None: ...
    @property
    def details(self) -> Mapping[str, object]: ...


class AgentSecurityStore(Protocol):
    """What the command line needs of the security store (``SecurityDb`` is one)."""

    def enrol(self, agent: str, secret: str, now: float) -> None: ...

    def secret(self, agent: str) -> Enrolment | None: ...

    def unlock(self, agent: str) -> LockState: ...

    def add_audit(
        self,
        *,
        time: float,
        actor: str,
        action: str,
        subject: str | None = None,
        address: str | None = None,
        details: Mapping[str, object] | None = None,
    ) -> None: ...

    def audit(
        self,
        *,
        since: float | None = None,
        until: float | None = None,
        actor: str | None = None,
        action: str | None = None,
        subject: str | None = None,
        limit: int = 1000,
    ) -> Sequence[AuditRow]: ...

    def close(self) -> None: ...


def add_agent_commands(subparsers: Any) -> None:
    """Add ``agent totp|unlock|audit`` to the ``softswitch`` command's subparsers."""
    agent = subparsers.add_parser("agent", help="agents' sign-in: second factor, unlock, audit")
    sub = agent.add_subparsers(dest="agent_command", required=True)

    def common(parser: argparse.ArgumentParser) -> None:
        parser.add_argument(
            "-c",
            "--config",
            type=Path,
            default=DEFAULT_CONFIG,
            help="settings file (default: %(default)s)",
        )
        parser.add_argument(
            "--store",
            help="the security store file (default: security.signin.store of the settings, "
            f"else {DEFAULT_STORE})",
        )

    enrol = sub.add_parser("totp", help="enrol a second-factor secret and show its QR code")
    enrol.add_argument("agent", metavar="ID", help="the agent's id (acd.agents)")
    common(enrol)
    unlock = sub.add_parser("unlock", help="unlock an account locked after failed sign-ins")
    unlock.add_argument("agent", metavar="ID")
    common(unlock)
    audit = sub.add_parser("audit", help="print recent audit trail entries")
    audit.add_argument(
        "--since",
        help="Unix seconds or an ISO 8601 date-time (default: 24 hours ago)",
    )
    audit.add_argument("--actor", help="an agent id or admin")
    audit.add_argument("--action", help="signin, signin_failed, screen_pop_viewed, ...")
    audit.add_argument("--subject", help="a call id or an agent id")
    audit.add_argument("--limit", type=int, default=100, help="at most (default: %(default)s)")
    common(audit)


def store_path(settings: Settings | None, given: str | None) -> str:
    """The store file: ``--store``, else ``security.signin.store`` of the settings, else
    :data:`DEFAULT_STORE`."""
    if given:
        return given
    signin = getattr(getattr(settings, "security", None), "signin", None)
    path = getattr(signin, "store", None)
    return path if isinstance(path, str) and path else DEFAULT_STORE


def _settings(path: Path, err: TextIO) -> Settings | None:
    try:
        return load_settings(path)
    except FileNotFoundError:
        print(f"softswitch: {path}: no such settings file", file=err)
    except ConfigErrors as exc:
        print(f"softswitch: {path}:\n{exc}", file=err)
    except OSError as exc:
        print(f"softswitch: {path}: {exc.strerror}", file=err)
    return None


def _instant(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.astimezone()  # the local time zone
    return moment.timestamp()


def cmd_agent(
    args: argparse.Namespace,
    open_store: Callable[[str], AgentSecurityStore],
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    clock: Callable[[], float] = time.time,
) -> int:
    """Run ``softswitch agent ...``; the exit status (0 done, 1 refused or failed)."""
    out = out or sys.stdout
    err = err or sys.stderr
    settings = _settings(args.config, err)
    if settings is None and (args.agent_command == "totp" or not args.store):
        return 1
    path = store_path(settings, args.store)
    try:
        store = open_store(path)
    except Exception as exc:
        print(f"softswitch: cannot open the security store {path}: {exc}", file=err)
        return 1
    try:
        if args.agent_command == "totp":
            assert settings is not None
            return _enrol(args.agent, settings, store, out, err, clock())
        if args.agent_command == "unlock":
            return _unlock(args.agent, store, out, clock())
        return _audit(args, store, out, err, clock())
    finally:
        store.close()


def _enrol(
    agent: str,
    settings: Settings,
    store: AgentSecurityStore,
    out: TextIO,
    err: TextIO,
    now: float,
) -> int:
    known = [a.id for a in settings.acd.agents]
    if agent not in known:
        shown = ", ".join(known) if known else "none"
        print(f"softswitch: no agent {agent!r} in acd.agents (known: {shown})", file=err)
        return 1
    again = store.secret(agent) is not None
    secret = totp.new_secret()
    store.enrol(agent, secret, now)
    store.add_audit(
        time=now, actor="admin", action="totp_enrolled", subject=agent, details={"again": again}
    )
    uri = totp.provisioning_uri(secret, agent)
    word = "enrolled again (the old secret no longer works)" if again else "enrolled"
    print(f"agent {agent}: second factor {word}.", file=out)
    print("Scan this QR code with the agent's authenticator app, or enter the URI:", file=out)
    segno.make(uri, error="m").terminal(out=out, compact=True)
    print(uri, file=out)
    return 0


def _unlock(agent: str, store: AgentSecurityStore, out: TextIO, now: float) -> int:
    old = store.unlock(agent)
    details: dict[str, object] = {
        "failures": old.failures,
        "was_locked": old.locked_at is not None,
    }
    store.add_audit(
        time=now, actor="admin", action="account_unlocked", subject=agent, details=details
    )
    if old.locked_at is not None:
        print(
            f"agent {agent}: unlocked (was locked after {old.failures} failed sign-ins)", file=out
        )
    elif old.failures:
        print(f"agent {agent}: not locked; {old.failures} failed sign-in(s) forgotten", file=out)
    else:
        print(f"agent {agent}: not locked", file=out)
    return 0


def _audit(
    args: argparse.Namespace, store: AgentSecurityStore, out: TextIO, err: TextIO, now: float
) -> int:
    try:
        since = _instant(args.since) if args.since else now - DEFAULT_AUDIT_SPAN
    except ValueError:
        print(f"softswitch: --since {args.since!r}: Unix seconds or ISO 8601", file=err)
        return 1
    if not 1 <= args.limit <= 10_000:
        print("softswitch: --limit must be from 1 to 10000", file=err)
        return 1
    rows = store.audit(
        since=since,
        actor=args.actor,
        action=args.action,
        subject=args.subject,
        limit=args.limit,
    )
    for row in rows:
        when = datetime.fromtimestamp(row.time, UTC).isoformat(timespec="seconds")
        details = json.dumps(dict(row.details), ensure_ascii=False, sort_keys=True)
        print(
            f"{when}  {row.actor:<12} {row.action:<18} {row.subject or '-':<24} "
            f"{row.address or '-':<15} {details}",
            file=out,
        )
    if not rows:
        print("no audit entries", file=out)
    return 0
