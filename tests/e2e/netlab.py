"""Two test hosts on this machine, joined by a veth pair and a WireGuard tunnel.

:class:`VpnLab` creates two network namespaces (the switch's host and a home agent's host),
a veth pair between them (the "internet": 198.18.0.1 and 198.18.0.2, from the benchmarking
range of RFC 2544, inside the namespaces only), and in each namespace a userspace WireGuard
interface run by ``wireguard-go``, configured from the files ``softswitch vpn add-agent``
wrote: the server's config in the switch's namespace and the agent's config in the agent's.
``wg-quick strip`` turns each file into what ``wg setconf`` takes, and its ``Address`` lines
become the interfaces' addresses.

Everything is removed by :meth:`VpnLab.close` (namespaces, the veth pair with them, the
WireGuard daemons and every process started with :meth:`VpnLab.spawn`), also when the test
fails; namespace and interface names carry the process id, so a run never touches another's.
No traffic leaves the two namespaces.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

__all__ = ["LabError", "VpnLab", "lab_missing"]

SWITCH_UNDERLAY = "198.18.0.1"
AGENT_UNDERLAY = "198.18.0.2"
_TOOLS = ("ip", "wireguard-go", "wg", "wg-quick")


class LabError(RuntimeError):
    """A step of building the lab failed (the command and its output are in the message)."""


def lab_missing() -> str | None:
    """Why the lab cannot be built here, or None when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root"
    for tool in _TOOLS:
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian: iproute2, wireguard-go, wireguard-tools)"
    if not Path("/dev/net/tun").exists():
        return "/dev/net/tun is missing (wireguard-go needs a TUN device)"
    return None


def _run(argv: Sequence[str], *, input: str | None = None, timeout: float = 10.0) -> str:
    try:
        done = subprocess.run(
            list(argv), input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise LabError(f"{' '.join(argv)}: no end within {timeout} s") from exc
    if done.returncode != 0:
        raise LabError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def _entries(config: str, name: str) -> list[str]:
    """The comma-separated values of every ``name =`` line of a WireGuard config (CIDRs)."""
    out: list[str] = []
    for line in config.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == name:
            out.extend(v.strip() for v in value.split(",") if v.strip())
    for item in out:
        ipaddress.ip_interface(item)  # a malformed address fails here, not in `ip`
    return out


class VpnLab:
    """The switch's host and an agent's host, with a WireGuard tunnel between them."""

    def __init__(self) -> None:
        tag = f"{os.getpid() % 100000}"
        self.switch_ns = f"ssw-sw-{tag}"
        self.agent_ns = f"ssw-ag-{tag}"
        self.switch_wg = f"wgs{tag}"
        self.agent_wg = f"wga{tag}"
        self._veth = (f"vs{tag}", f"va{tag}")
        self._procs: list[subprocess.Popen[bytes]] = []
        self._made: list[str] = []
        self._logs: list[Path] = []

    # -- building --------------------------------------------------------------------------

    def build(self, server_config: Path, agent_config: Path, log_dir: Path) -> None:
        """Namespaces, the veth "internet" and both ends of the tunnel."""
        for ns in (self.switch_ns, self.agent_ns):
            _run(["ip", "netns", "add", ns])
            self._made.append(ns)
            _run(["ip", "-n", ns, "link", "set", "lo", "up"])
        vs, va = self._veth
        _run(["ip", "link", "add", vs, "type", "veth", "peer", "name", va])
        _run(["ip", "link", "set", vs, "netns", self.switch_ns])
        _run(["ip", "link", "set", va, "netns", self.agent_ns])
        for ns, dev, address in (
            (self.switch_ns, vs, SWITCH_UNDERLAY),
            (self.agent_ns, va, AGENT_UNDERLAY),
        ):
            _run(["ip", "-n", ns, "addr", "add", f"{address}/30", "dev", dev])
            _run(["ip", "-n", ns, "link", "set", dev, "up"])
        self._wireguard(self.switch_ns, self.switch_wg, server_config, log_dir)
        self._wireguard(self.agent_ns, self.agent_wg, agent_config, log_dir)

    def _wireguard(self, ns: str, dev: str, config: Path, log_dir: Path) -> None:
        log = log_dir / f"{dev}.log"
        self._logs.append(log)
        with log.open("wb") as out:
            self._procs.append(
                subprocess.Popen(
                    ["ip", "netns", "exec", ns, "wireguard-go", "-f", dev],
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        sock = Path("/var/run/wireguard") / f"{dev}.sock"
        deadline = time.monotonic() + 10
        while not sock.exists():
            if time.monotonic() > deadline or self._procs[-1].poll() is not None:
                raise LabError(f"wireguard-go did not create {dev}: {log.read_text()[-2000:]}")
            time.sleep(0.05)
        # wg-quick strip wants a file named after an interface
        named = log_dir / f"{dev}.conf"
        named.write_text(config.read_text())
        named.chmod(0o600)
        stripped = _run(["wg-quick", "strip", str(named)])
        _run(["ip", "netns", "exec", ns, "wg", "setconf", dev, "/dev/stdin"], input=stripped)
        for address in _entries(config.read_text(), "address"):
            _run(["ip", "-n", ns, "addr", "add", address, "dev", dev])
        _run(["ip", "-n", ns, "link", "set", dev, "up"])
        for allowed in _entries(stripped, "allowedips"):  # the routes wg-quick would add
            _run(["ip", "-n", ns, "route", "replace", allowed, "dev", dev])

    # -- using -----------------------------------------------------------------------------

    def spawn(
        self,
        ns: str,
        argv: Sequence[str],
        *,
        log: Path,
        stdin: int | None = None,
        stdout: int | None = None,
        env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start ``argv`` inside namespace ``ns`` (stopped by :meth:`close`)."""
        self._logs.append(log)
        with log.open("ab") as err:
            proc = subprocess.Popen(
                ["ip", "netns", "exec", ns, *argv],
                stdin=stdin,
                stdout=stdout if stdout is not None else err,
                stderr=err,
                env=env,
                start_new_session=True,
            )
        self._procs.append(proc)
        return proc

    def run(self, ns: str, argv: Sequence[str], timeout: float = 10.0) -> str:
        """Run ``argv`` inside ``ns`` to its end; its standard output."""
        return _run(["ip", "netns", "exec", ns, *argv], timeout=timeout)

    def handshake_age(self) -> float | None:
        """Seconds since the agent's end last completed a handshake (None: never)."""
        out = self.run(self.agent_ns, ["wg", "show", self.agent_wg, "latest-handshakes"])
        stamps = [int(line.split()[1]) for line in out.splitlines() if line.split()[1:]]
        if not stamps or max(stamps) == 0:
            return None
        return time.time() - max(stamps)

    # -- removing --------------------------------------------------------------------------

    def close(self) -> None:
        """Stop every process and remove the namespaces (with their interfaces)."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in self._procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self._procs.clear()
        for ns in reversed(self._made):
            with contextlib.suppress(LabError):
                _run(["ip", "netns", "del", ns])
        self._made.clear()
        for dev in (self.switch_wg, self.agent_wg):
            with contextlib.suppress(FileNotFoundError):
                (Path("/var/run/wireguard") / f"{dev}.sock").unlink()

    def __enter__(self) -> VpnLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def namespaces_left(self) -> list[str]:
        """This lab's namespaces still present (for the test's clean-up check)."""
        listed = _run(["ip", "netns", "list"])
        names = {line.split()[0] for line in listed.splitlines() if line.strip()}
        return [ns for ns in (self.switch_ns, self.agent_ns) if ns in names]
