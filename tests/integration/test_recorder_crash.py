"""A recording survives a kill -9 of the recording process as a playable WAV file.

A child Python process records a stereo tone (440 Hz left, 1000 Hz right) in real time,
flushing every second (to the OS only, or with ``os.fsync``), once through the synchronous
``WavRecorder`` and once through the ``AsyncRecorder`` (file writes in an executor).  The test
kills it with SIGKILL in the middle of a block and opens what is left with the stdlib ``wave``
module.
"""

from __future__ import annotations

import os
import signal
import struct
import subprocess
import sys
import textwrap
import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="needs SIGKILL")

SAMPLE_RATE = 8000
HEADER_SIZE = 44
STEREO_FRAME_BYTES = 4
CHILD_MAX_SECONDS = 10.0  # the child stops on its own if the test never kills it

CHILD = textwrap.dedent(
    """
    import asyncio, sys, time
    import numpy as np
    from media.recorder import AsyncRecorder, RecordingOptions, WavRecorder

    path, mode, max_seconds, sync = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
    options = RecordingOptions(flush_seconds=1.0, fsync=sync == "fsync")

    def frames(freq, index):
        n = np.arange(index * 160, (index + 1) * 160)
        return np.round(10000 * np.sin(2 * np.pi * freq * n / 8000)).astype(np.int16)

    def run_sync():
        rec = WavRecorder(path, options)
        print("recording", flush=True)
        start = time.monotonic()
        for i in range(int(max_seconds * 50)):
            rec.write(frames(440, i), frames(1000, i))
            delay = start + (i + 1) * 0.02 - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        rec.close()

    async def run_async():
        loop = asyncio.get_running_loop()
        rec = await AsyncRecorder.open(path, options)
        print("recording", flush=True)
        start = loop.time()
        for i in range(int(max_seconds * 50)):
            rec.write(frames(440, i), frames(1000, i))
            await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))
        await rec.close()

    if mode == "sync":
        run_sync()
    else:
        asyncio.run(run_async())
    """
)


def data_chunk_size(path: Path) -> int:
    """The ``data`` size field of the header, 0 if the header is not there yet."""
    with open(path, "rb") as f:
        head = f.read(HEADER_SIZE)
    return struct.unpack_from("<I", head, 40)[0] if len(head) == HEADER_SIZE else 0


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


def wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, child: subprocess.Popen[str]
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if child.poll() is not None:
            raise AssertionError(f"child exited ({child.returncode}) before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


@pytest.mark.parametrize(("mode", "durability"), [("sync", "flush"), ("async", "fsync")])
def test_kill_9_leaves_a_playable_recording(tmp_path: Path, mode: str, durability: str) -> None:
    path = tmp_path / "call.wav"
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    repo = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(repo)}
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), mode, str(CHILD_MAX_SECONDS), durability],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=repo,
    )
    try:
        wait_for(path.exists, 20.0, "the recording file", child)
        # Two 1 s blocks on disk, then half a block more in the child's memory only.
        two_seconds = 2 * SAMPLE_RATE * STEREO_FRAME_BYTES
        wait_for(lambda: data_chunk_size(path) >= two_seconds, 8.0, "two flushed blocks", child)
        time.sleep(0.5)
        assert child.poll() is None, "the child must still be recording when it is killed"
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        assert child.stdout is not None and child.stderr is not None
        child.stdout.close()
        err = child.stderr.read()
        child.stderr.close()
    assert child.returncode == -signal.SIGKILL, err

    raw = path.read_bytes()
    data_size = struct.unpack_from("<I", raw, 40)[0]
    assert struct.unpack_from("<I", raw, 4)[0] == data_size + 36
    assert len(raw) == HEADER_SIZE + data_size, "header sizes match what reached the file"
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (2, 2, SAMPLE_RATE)
        nframes = w.getnframes()
        pcm = w.readframes(nframes)
    assert nframes >= 1.5 * SAMPLE_RATE
    assert nframes % SAMPLE_RATE == 0, "whole 1 s blocks only: the tail died with the process"
    frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, 2)
    assert len(frames) == nframes
    assert dominant_hz(frames[:, 0]) == pytest.approx(440, abs=2)
    assert dominant_hz(frames[:, 1]) == pytest.approx(1000, abs=2)
    assert np.abs(frames[-SAMPLE_RATE:, 0].astype(np.int32)).max() > 9000, "audio to the end"
