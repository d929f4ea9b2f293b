"""A private PulseAudio daemon for the headset tests: two null sinks stand for the headset.

``headset`` is where the agent's speaker plays (its ``headset.monitor`` is recorded to hear
what the agent hears); ``mic`` is where a test plays what the agent says (its ``mic.monitor``
is the agent's microphone). PortAudio reaches the daemon through ALSA's pulse plugin (Debian
libasound2-plugins): device "pulse", with ``PULSE_SINK`` and ``PULSE_SOURCE`` choosing the
sink and the source. Everything lives in a temporary folder (socket, cookie, state, a HOME
of its own, since the daemon runs here as root in user mode) and the daemon is stopped, its
process group killed, on the way out.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt

START_WAIT = 10.0


def missing() -> str | None:
    """Why the headset tests cannot run here (a missing package), or None."""
    for tool, package in (
        ("pulseaudio", "pulseaudio"),
        ("pactl", "pulseaudio-utils"),
        ("parec", "pulseaudio-utils"),
        ("paplay", "pulseaudio-utils"),
    ):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (Debian package {package})"
    plugin = Path("/usr/lib/x86_64-linux-gnu/alsa-lib/libasound_module_pcm_pulse.so")
    if not plugin.exists() and not list(Path("/usr/lib").glob("*/alsa-lib/*pcm_pulse.so")):
        return "ALSA's pulse plugin is not installed (Debian package libasound2-plugins)"
    try:
        import sounddevice  # noqa: F401 - loads libportaudio
    except OSError:
        return "PortAudio is not installed (Debian package libportaudio2)"
    return None


class PrivatePulse:
    """A PulseAudio daemon of the test's own, with the ``headset`` and ``mic`` null sinks."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="pulse-"))
        self.socket = self.root / "run" / "native"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = self.root / "pulseaudio.log"

    @property
    def env(self) -> dict[str, str]:
        """What a client (pactl, a PortAudio program) needs to find this daemon only."""
        return {
            "HOME": str(self.root),
            "PULSE_SERVER": f"unix:{self.socket}",
            "PULSE_RUNTIME_PATH": str(self.root / "run"),
            "PULSE_STATE_PATH": str(self.root / "state"),
            "PULSE_CLIENTCONFIG": str(self.root / "client.conf"),
            "PULSE_COOKIE": str(self.root / "cookie"),
        }

    def client_env(self, **extra: str) -> dict[str, str]:
        return dict(os.environ, **self.env, **extra)

    def start(self) -> None:
        for folder in ("run", "state"):
            (self.root / folder).mkdir()
        (self.root / "client.conf").write_text("autospawn = no\n")
        script = self.root / "default.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={self.socket} auth-anonymous=1\n"
            "load-module module-null-sink sink_name=headset rate=48000 channels=1\n"
            "load-module module-null-sink sink_name=mic rate=48000 channels=1\n"
        )
        log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [
                    "pulseaudio",
                    "-n",
                    "--daemonize=no",
                    "--exit-idle-time=-1",
                    "--disallow-exit",
                    "--system=false",
                    "--use-pid-file=no",
                    "--log-target=stderr",
                    "-F",
                    str(script),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                env=self.client_env(),
                start_new_session=True,
            )
        finally:
            log.close()
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            done = subprocess.run(
                ["pactl", "list", "short", "sinks"],
                env=self.client_env(),
                capture_output=True,
                timeout=5,
                check=False,
            )
            if done.returncode == 0 and b"headset" in done.stdout and b"mic" in done.stdout:
                return
            time.sleep(0.2)
        text = self.log_path.read_text(errors="replace")[-3000:]
        self.stop()
        raise RuntimeError(f"PulseAudio did not start:\n{text}")

    def play(self, sink: str, wav: Path) -> subprocess.Popen[bytes]:
        """Start playing ``wav`` into ``sink`` (the caller waits for or stops the player)."""
        return subprocess.Popen(
            ["paplay", "-d", sink, str(wav)],
            env=self.client_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )

    def record(self, source: str, seconds: float, rate: int = 8000) -> npt.NDArray[np.float64]:
        """``seconds`` of ``source`` as mono samples at ``rate``."""
        with subprocess.Popen(
            [
                "parec",
                "-d",
                source,
                f"--rate={rate}",
                "--channels=1",
                "--format=s16le",
                "--latency-msec=20",
            ],
            env=self.client_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        ) as rec:
            time.sleep(seconds)
            rec.send_signal(signal.SIGINT)
            try:
                raw, _ = rec.communicate(timeout=5)
            except subprocess.TimeoutExpired:
                rec.kill()
                raw, _ = rec.communicate(timeout=5)
        raw = raw[: len(raw) // 2 * 2]
        return np.frombuffer(raw, dtype="<i2").astype(np.float64)

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        self.proc = None
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> PrivatePulse:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def write_tone(path: Path, hz: float, seconds: float, rate: int = 8000) -> Path:
    """A mono 16-bit WAV of a sine at half of full scale."""
    t = np.arange(int(seconds * rate)) / rate
    samples = (0.5 * 32767 * np.sin(2 * np.pi * hz * t)).astype("<i2")
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path
