"""SIP servers under test as subprocesses: the softswitch, and Kamailio as a baseline.

Both serve SIP on UDP and TCP on 127.0.0.1 and answer ``GET /healthz`` with the same
JSON document, so the interop tests and the benchmark drive either one the same way.
A server runs in its own session (process group); stopping it sends SIGTERM to the
group, then SIGKILL after a grace period, so Kamailio's children go with it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO / "configs" / "default.yaml"
KAMAILIO_CFG = REPO / "tools" / "bench" / "kamailio" / "kamailio.cfg"

DOMAIN = "softswitch.local"
#: The demo users of configs/default.yaml (and of the Kamailio baseline).
USERS: dict[str, str] = {f"100{n}": f"demo100{n}" for n in range(1, 5)}
TRUSTED_NETWORK = "127.0.0.0/8"
CLK_TCK = os.sysconf("SC_CLK_TCK")
#: How long transaction timers may keep state after a call: Timer J/K (32 s over
#: UDP) and the 2xx retransmission window (64*T1) of RFC 3261 sections 17 and 13.3.1.4.
DRAIN_TIMEOUT = 35.0


#: SIPp 3.6 answers only the first digest challenge of a 401/407, and only with MD5
#: (it reads the first "algorithm=" it finds and gives up on SHA-256). Runs driven by
#: SIPp therefore ask the switch to challenge with MD5 alone, through this setting,
#: when the switch's configuration schema has it.
SIPP_DIGEST_SETTING = "security.digest_algorithms"


def sipp_overrides() -> dict[str, Any]:
    """Configuration overrides that SIPp-driven runs need (see SIPP_DIGEST_SETTING)."""
    try:
        from softswitch.config import Security
    except ImportError:
        return {}
    fields = getattr(Security, "model_fields", {})
    if SIPP_DIGEST_SETTING.rsplit(".", 1)[1] in fields:
        return {SIPP_DIGEST_SETTING: ["MD5"]}
    return {}


class ServerStartError(RuntimeError):
    """The server did not come up; the message carries the tail of its stderr."""


def free_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A port that is free for both UDP and TCP on ``host`` right now."""
    for _ in range(attempts):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                return port
    raise RuntimeError(f"no port free for both UDP and TCP on {host} after {attempts} tries")


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """``count`` distinct ports, each free for UDP and TCP."""
    ports: list[int] = []
    for _ in range(count * 20):
        port = free_port(host)
        if port not in ports:
            ports.append(port)
        if len(ports) == count:
            return ports
    raise RuntimeError(f"could not find {count} distinct free ports")


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its live descendants (read from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        children.setdefault(int(fields[1]), []).append(int(entry))
    tree: list[int] = []
    todo = [pid]
    while todo and len(tree) < 10000:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU time of ``pids`` (fields 14 and 15 of /proc/PID/stat)."""
    ticks = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLK_TCK


class ServerProcess:
    """One SIP server subprocess with a /healthz endpoint."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        sip_port: int,
        http_port: int,
        workdir: Path,
        env: dict[str, str] | None = None,
        cpu: int | None = None,
    ) -> None:
        self.name = name
        self.argv = (["taskset", "-c", str(cpu)] if cpu is not None else []) + list(argv)
        self.sip_port = sip_port
        self.http_port = http_port
        self.host = "127.0.0.1"
        self.domain = DOMAIN
        self.users = dict(USERS)
        self.workdir = workdir
        self.env = env
        self.stderr_path = workdir / f"{name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self._stderr_file: Any = None

    @property
    def address(self) -> str:
        """``host:port`` of the SIP listener, as SIPp and Route headers want it."""
        return f"{self.host}:{self.sip_port}"

    @property
    def pid(self) -> int:
        if self.proc is None:
            raise RuntimeError(f"{self.name} is not started")
        return self.proc.pid

    def start(self, timeout: float = 15.0) -> None:
        """Start the process and wait until /healthz answers 200."""
        self._stderr_file = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=self._stderr_file,
            stderr=self._stderr_file,
            cwd=self.workdir,
            env=self.env,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        last_error = "no answer yet"
        while time.monotonic() < deadline:
            code = self.proc.poll()
            if code is not None:
                self.stop()
                raise ServerStartError(
                    f"{self.name} exited with code {code} before /healthz answered; "
                    f"argv: {' '.join(self.argv)}\n--- stderr ---\n{self.stderr_text()[-6000:]}"
                )
            try:
                self.health(timeout=1.0)
                return
            except (OSError, ValueError) as exc:
                last_error = repr(exc)
            time.sleep(0.1)
        self.stop()
        raise ServerStartError(
            f"{self.name} did not answer /healthz within {timeout:.0f} s ({last_error}); "
            f"argv: {' '.join(self.argv)}\n--- stderr ---\n{self.stderr_text()[-6000:]}"
        )

    def health(self, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /healthz`` as a dict; raises OSError/ValueError if not 200 JSON."""
        url = f"http://{self.host}:{self.http_port}/healthz"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            if response.status != 200:
                raise ValueError(f"/healthz answered {response.status}")
            body = json.loads(response.read().decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError(f"/healthz body is not an object: {body!r}")
        return body

    def api(self, path: str, timeout: float = 2.0) -> dict[str, Any]:
        """``GET /api/...`` of the switch (from loopback: no token needed) as a dict."""
        url = f"http://{self.host}:{self.http_port}{path}"
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = json.loads(response.read().decode("utf-8"))
        if not isinstance(body, dict):
            raise ValueError(f"{path} body is not an object: {body!r}")
        return body

    def wait_health(
        self, predicate: Any, timeout: float, interval: float = 0.25
    ) -> tuple[bool, dict[str, Any]]:
        """Poll /healthz until ``predicate(doc)`` holds; answers (held, last document)."""
        deadline = time.monotonic() + timeout
        doc: dict[str, Any] = {}
        while True:
            try:
                doc = self.health()
                if predicate(doc):
                    return True, doc
            except (OSError, ValueError) as exc:
                doc = {"error": repr(exc)}
            if time.monotonic() >= deadline:
                return False, doc
            time.sleep(interval)

    def wait_idle(self, timeout: float = DRAIN_TIMEOUT) -> tuple[bool, dict[str, Any]]:
        """Poll /healthz until no call and no dialog is left (timers may hold them)."""
        return self.wait_health(
            lambda doc: doc.get("calls") == 0 and doc.get("dialogs") == 0, timeout=timeout
        )

    def stderr_text(self) -> str:
        """Everything the server wrote to stderr (and stdout) so far."""
        if self._stderr_file is not None:
            with contextlib.suppress(ValueError):
                self._stderr_file.flush()
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def pids(self) -> list[int]:
        """The server's process and its children (Kamailio forks workers)."""
        return process_tree(self.pid) if self.alive() else []

    def cpu_seconds(self) -> float:
        """CPU time (user + system) used so far by the server's processes."""
        return cpu_seconds(self.pids())

    def stop(self, grace: float = 5.0) -> int | None:
        """SIGTERM to the process group, SIGKILL after ``grace`` seconds."""
        proc = self.proc
        if proc is None:
            return None
        for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
            except subprocess.TimeoutExpired:
                continue
        # Children that outlived the leader (same process group) go too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if self._stderr_file is not None:
            self._stderr_file.close()
            self._stderr_file = None
        return proc.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- the softswitch -----------------------------------------------------------------


def softswitch_command() -> list[str]:
    """How to start the switch: ``$SOFTSWITCH_COMMAND`` if set (split like a shell
    would), else ``python -m softswitch`` with this interpreter (the venv's)."""
    override = os.environ.get("SOFTSWITCH_COMMAND", "").strip()
    if override:
        return shlex.split(override)
    return [sys.executable, "-m", "softswitch"]


def _set_path(doc: Any, keys: Sequence[str], value: Any) -> None:
    node = doc
    for key in keys[:-1]:
        if key not in node or node[key] is None:
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


def write_softswitch_config(
    workdir: Path,
    source: Path = DEFAULT_CONFIG,
    overrides: dict[str, Any] | None = None,
) -> Path:
    """A copy of ``source`` for a test or bench run, written to ``workdir``.

    The binding store (``registrar.binding_store``) and the security store
    (``security.signin.store``) go into ``workdir`` and
    127.0.0.0/8 is added to ``security.trusted_networks`` so that load and
    wrong-password tests are never banned. ``overrides`` maps dotted keys
    (``"logging.level"``) to values set on top.
    """
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    doc = yaml.load(source.read_text(encoding="utf-8")) if source.is_file() else None
    if doc is None:
        doc = {}
    _set_path(doc, ["registrar", "binding_store"], str(workdir / "bindings.db"))
    _set_path(doc, ["security", "signin", "store"], str(workdir / "security.db"))
    security = doc.get("security") or {}
    trusted = [str(net) for net in (security.get("trusted_networks") or [])]
    if TRUSTED_NETWORK not in trusted:
        trusted.append(TRUSTED_NETWORK)
    _set_path(doc, ["security", "trusted_networks"], trusted)
    for dotted, value in (overrides or {}).items():
        _set_path(doc, dotted.split("."), value)
    target = workdir / "softswitch.yaml"
    with target.open("w", encoding="utf-8") as out:
        yaml.dump(doc, out)
    return target


def softswitch_server(
    workdir: Path,
    sip_port: int | None = None,
    http_port: int | None = None,
    cpu: int | None = None,
    config: Path | None = None,
    overrides: dict[str, Any] | None = None,
) -> ServerProcess:
    """A (not yet started) softswitch with a temporary configuration in ``workdir``."""
    if sip_port is None or http_port is None:
        sip_port, http_port = free_ports(2)
    config = config or write_softswitch_config(workdir, overrides=overrides)
    argv = [
        *softswitch_command(),
        "run",
        "-c",
        str(config),
        "--sip-port",
        str(sip_port),
        "--http-port",
        str(http_port),
        "--bind",
        "127.0.0.1",
    ]
    # the demo dialplan's CRM is served by this switch, on its HTTP port
    crm = f"http://127.0.0.1:{http_port}/api/demo/crm"
    env = dict(os.environ, PYTHONUNBUFFERED="1", SOFTSWITCH_DEMO_CRM=crm)
    return ServerProcess("softswitch", argv, sip_port, http_port, workdir, env=env, cpu=cpu)


# --- Kamailio -----------------------------------------------------------------------


def kamailio_path() -> str | None:
    """The kamailio executable (Debian package kamailio), or None."""
    return shutil.which("kamailio") or (
        "/usr/sbin/kamailio" if os.access("/usr/sbin/kamailio", os.X_OK) else None
    )


def kamailio_server(
    workdir: Path,
    sip_port: int | None = None,
    http_port: int | None = None,
    cpu: int | None = None,
    children: int = 4,
    shm_mb: int = 256,
) -> ServerProcess:
    """A (not yet started) Kamailio running tools/bench/kamailio/kamailio.cfg."""
    exe = kamailio_path()
    if exe is None:
        raise FileNotFoundError("kamailio is not installed (Debian package kamailio)")
    if sip_port is None or http_port is None:
        sip_port, http_port = free_ports(2)
    argv = [
        exe,
        "-f",
        str(KAMAILIO_CFG),
        "-DD",
        "-E",
        "-l",
        f"udp:127.0.0.1:{sip_port}",
        "-l",
        f"tcp:127.0.0.1:{sip_port}",
        "-l",
        f"tcp:127.0.0.1:{http_port}",
        "-n",
        str(children),
        "-m",
        str(shm_mb),
        "-M",
        "16",
        "-Y",
        str(workdir),
        "-w",
        str(workdir),
    ]
    return ServerProcess("kamailio", argv, sip_port, http_port, workdir, cpu=cpu)


@contextlib.contextmanager
def running_server(kind: str, cpu: int | None = None, timeout: float = 15.0) -> Iterator[Any]:
    """Start a ``softswitch`` or ``kamailio`` server in a fresh temp folder; stop it after."""
    workdir = Path(tempfile.mkdtemp(prefix=f"{kind}-"))
    try:
        if kind == "softswitch":
            server = softswitch_server(workdir, cpu=cpu)
        elif kind == "kamailio":
            server = kamailio_server(workdir, cpu=cpu)
        else:
            raise ValueError(f"unknown server kind {kind!r}")
        server.start(timeout=timeout)
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
