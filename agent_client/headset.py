"""The agent's headset bridged into pjsua2's conference bridge.

pjsua2 runs on its null sound device (its conference bridge is clocked by that device's
thread), so the headset joins the call as an ordinary conference port: :class:`HeadsetPort`,
a pjsua2 ``AudioMediaPort`` that hands every frame the call brings to the speaker and asks
for the microphone's next frame once per tick (20 ms frames of 16-bit mono PCM at 8 or
16 kHz). The sound card runs on its own clock through PortAudio (``sounddevice``), in the
small blocks PortAudio picks for a low-latency stream (8 ms through ALSA's pulse plugin), so
between the two clocks sit two :class:`FrameRing` buffers that hold samples, not frames:
what one side writes in its own block size the other reads in its own.

- an underrun (the reader finds fewer samples than it needs) plays or sends silence, and
  the ring then waits until it holds its ``prefill`` again before it gives any out;
- an overrun (the ring is full) drops the oldest samples;
- the least a ring holds just after a read, over a window of reads, is what its reader did
  not need: anything above a small ``slack`` (kept against the two clocks' jitter) is
  dropped. The start-up phase between the two clocks and any drift between them so never
  add up to delay: the target is under 60 ms added by the client, mouth to ear, and the
  rings are most of what the client itself adds (``tools/bench/agent_client.py`` measures
  it end to end).

Mute sends silence to the call; the microphone's level meter still moves, so the agent sees
that the headset works. Levels are the peaks (0 .. 1) since they were last read.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
import pjsua2 as pj

__all__ = [
    "FRAME_MS",
    "STREAM_SETTINGS",
    "FrameRing",
    "Headset",
    "HeadsetError",
    "HeadsetPort",
    "HeadsetStats",
    "device_names",
]

log = logging.getLogger(__name__)

FRAME_MS = 20
#: what a ring holds at most, in frames (80 ms): a bound on the delay if the trim lags
RING_FRAMES = 4
#: frames a ring gathers before it gives any out, at the start and after an underrun
PREFILL_FRAMES = 2
#: reads over which a ring looks for samples its reader did not need
TRIM_AFTER = 50
#: PortAudio's streams: blocks of the size PortAudio finds best for a low latency
#: (``blocksize=0``), at the device's low-latency setting. Through ALSA's pulse plugin that
#: is 8 ms blocks and about 13 ms each way in PortAudio and PulseAudio, against 30 ms for
#: 20 ms blocks (``tools/bench/agent_client.py`` measures the loop).
STREAM_SETTINGS: dict[str, Any] = {"blocksize": 0, "latency": "low"}
#: the speaker's ring: gathers 1.5 frames, keeps 4 ms spare after a read of the sound card
SPEAKER_PREFILL = 1.5
SPEAKER_SLACK_MS = 4.0
#: the microphone's ring: gathers 1.5 frames, keeps 5 ms spare after the bridge's read (the
#: least left over a window already covers the sound card's block size; the slack is for
#: the jitter of its callbacks: 5 ms instead of 10 ms took 5 ms off each call's delay with
#: no underrun seen in the bench)
MIC_PREFILL = 1.5
MIC_SLACK_MS = 5.0
#: windows of reads for the trim: about half a second on each side
SPEAKER_TRIM_AFTER = 60
MIC_TRIM_AFTER = 25
SAMPLE_BYTES = 2
FULL_SCALE = 32768.0


class HeadsetError(RuntimeError):
    """A sound device could not be found or opened; the text is for the agent."""


class FrameRing:
    """A bounded FIFO of 16-bit samples between two clocks (thread-safe).

    Sizes are in frames of ``frame_bytes`` (fractions allowed, rounded to whole samples);
    each side writes and reads in its own block size. ``push`` never blocks: a full ring
    drops its oldest samples (an overrun). ``pop`` never blocks: a ring holding fewer bytes
    than asked answers None (an underrun), and so does a ring that has not yet gathered
    ``prefill`` since it started or last ran dry. A block larger than the ring's capacity
    less a frame (a sound card with long periods) widens the ring to hold it and a frame
    more. Over every ``trim_after`` reads the ring
    notes the least it held just after a read; what lies above ``slack`` then was never
    needed by the reader (the two clocks' phase at the start, or one running a little
    faster than the other) and is dropped, oldest first.
    """

    def __init__(
        self,
        capacity: float = RING_FRAMES,
        trim_after: int = TRIM_AFTER,
        prefill: float = PREFILL_FRAMES,
        slack: float | None = None,
        frame_bytes: int = 320,
    ) -> None:
        """``slack`` (frames): what a read should leave for the reader's jitter; by default
        the prefill less one frame."""
        if not 0 < prefill <= capacity:
            raise ValueError("a ring gathers more than nothing and at most its capacity")
        self.frame_bytes = frame_bytes
        self.capacity = self._bytes(capacity)
        self.trim_after = trim_after
        self.prefill = self._bytes(prefill)
        self.slack = self._bytes(max(prefill - 1, 0) if slack is None else slack)
        self._filling = True
        self._data = bytearray()
        self._lock = threading.Lock()
        self._reads = 0
        self._least = self.capacity
        self.overruns = 0
        self.underruns = 0
        self.trimmed = 0
        #: bytes dropped by the trim and by overruns
        self.dropped = 0

    def _bytes(self, frames: float) -> int:
        return int(round(frames * self.frame_bytes / SAMPLE_BYTES)) * SAMPLE_BYTES

    def _widen(self, block: int) -> None:
        if block + self.frame_bytes > self.capacity:
            self.capacity = block + self.frame_bytes

    def push(self, chunk: bytes) -> None:
        with self._lock:
            self._widen(len(chunk))
            data = self._data
            data += chunk
            excess = len(data) - self.capacity
            if excess > 0:
                del data[:excess]
                self.overruns += 1
                self.dropped += excess

    def pop(self, size: int | None = None) -> bytes | None:
        """The next ``size`` bytes (a frame by default), or None."""
        size = self.frame_bytes if size is None else size
        with self._lock:
            self._widen(size)
            data = self._data
            if self._filling:
                if len(data) < max(self.prefill, size):
                    return None
                self._filling = False
            if len(data) < size:
                self.underruns += 1
                self._filling = True
                self._reads = 0
                self._least = self.capacity
                return None
            out = bytes(data[:size])
            del data[:size]
            self._least = min(self._least, len(data))
            self._reads += 1
            if self._reads >= self.trim_after:
                surplus = self._least - self.slack
                if surplus >= SAMPLE_BYTES:
                    surplus -= surplus % SAMPLE_BYTES
                    del data[:surplus]
                    self.trimmed += 1
                    self.dropped += surplus
                self._reads = 0
                self._least = self.capacity
            return out

    def __len__(self) -> int:
        """Whole frames held."""
        return len(self._data) // self.frame_bytes

    @property
    def held(self) -> int:
        """Bytes held."""
        return len(self._data)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()
            self._reads = 0
            self._least = self.capacity
            self._filling = True


@dataclass(frozen=True, slots=True)
class HeadsetStats:
    """How the bridge has fared since the streams were opened."""

    mic_overruns: int
    mic_underruns: int
    speaker_overruns: int
    speaker_underruns: int
    trimmed: int
    #: blocks through PortAudio's side, frames through the call's, since the streams opened
    captured: int
    played: int
    to_call: int
    from_call: int
    input_latency: float  # seconds, as PortAudio reports the open streams
    output_latency: float
    #: seconds of audio each ring holds now, and dropped by both (trim and overruns)
    mic_held: float
    speaker_held: float
    dropped: float
    #: the delay the client adds to the agent's voice (seconds), as it estimates it: the
    #: input device's latency, what the ring holds now and half the bridge's tick
    mic_delay: float
    #: the delay it adds to what the agent hears: half a tick, the ring, the output
    speaker_delay: float


def _peak(frame: bytes) -> float:
    if not frame:
        return 0.0
    samples = np.frombuffer(frame, dtype="<i2")
    return float(np.abs(samples.astype(np.int32)).max()) / FULL_SCALE


def _bytes_one_by_one(vector: Any) -> bytes:
    """A pjsua2 ``ByteVector``'s bytes through SWIG's iterator: about 150 µs a frame."""
    return bytes(vector)


def _bytes_in_one_piece(vector: Any) -> bytes:
    """A pjsua2 ``ByteVector``'s bytes copied in one piece (about 5 µs a frame): the proxy's
    ``this`` is the address of the ``std::vector<unsigned char>``, whose first two words are
    its begin and end pointers in the C++ libraries pjsua2 is built with (libstdc++,
    libc++, MSVC). The length is checked against ``size()`` on every call; a layout that
    does not match raises ValueError."""
    begin, end = (ctypes.c_void_p * 2).from_address(int(vector.this))
    size = int(vector.size())
    if size == 0:
        return b""
    if begin is None or end is None or end - begin != size:
        raise ValueError("not the std::vector layout expected")
    return ctypes.string_at(begin, size)


def _pick_vector_bytes() -> Any:
    """The one-piece copy when it reads a known vector right, else the iterator."""
    sample = bytes(range(256)) + bytes(64)
    try:
        if _bytes_in_one_piece(pj.ByteVector(sample)) == sample:
            return _bytes_in_one_piece
    except Exception as exc:
        log.info("pjsua2's byte vectors are read through the iterator: %s", exc)
    return _bytes_one_by_one


#: a frame's bytes out of pjsua2 (the call's audio, 50 times a second)
vector_bytes = _pick_vector_bytes()


def _sounddevice() -> Any:
    """``sounddevice`` imported when first needed: it loads PortAudio, which may be absent
    (a clear HeadsetError then, rather than an ImportError at start)."""
    try:
        import sounddevice
    except OSError as exc:  # no libportaudio2
        raise HeadsetError(f"no sound system: {exc}") from None
    return sounddevice


def device_names() -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The names of PortAudio's input devices and of its output devices, in its order."""
    try:
        sd = _sounddevice()
        devices = list(sd.query_devices())
    except (HeadsetError, Exception) as exc:  # PortAudio errors have no common base
        log.warning("sound devices cannot be listed: %s", exc)
        return (), ()
    inputs = tuple(dict.fromkeys(d["name"] for d in devices if d["max_input_channels"] > 0))
    outputs = tuple(dict.fromkeys(d["name"] for d in devices if d["max_output_channels"] > 0))
    return inputs, outputs


def _device_index(sd: Any, name: str | None, kind: str) -> int | None:
    """PortAudio's index of the ``kind`` ("input"/"output") device called ``name``; None
    for the system's default."""
    if name is None:
        return None
    channels = "max_input_channels" if kind == "input" else "max_output_channels"
    for index, device in enumerate(sd.query_devices()):
        if device["name"] == name and device[channels] > 0:
            return index
    raise HeadsetError(f"no {kind} device named {name!r}")


class Headset:
    """The microphone and the speaker of the agent's headset, as two PortAudio streams
    running at the call's rate (:data:`STREAM_SETTINGS`), joined to the call's 20 ms frames
    through two rings."""

    def __init__(self, rate: int = 8000, ring_frames: int = RING_FRAMES) -> None:
        if rate not in (8000, 16000):
            raise ValueError("the headset runs at 8000 or 16000 Hz")
        self.rate = rate
        self.frame_samples = rate * FRAME_MS // 1000
        self.frame_bytes = self.frame_samples * SAMPLE_BYTES
        self.silence = bytes(self.frame_bytes)
        frame_ms = float(FRAME_MS)
        self.mic = FrameRing(
            ring_frames, MIC_TRIM_AFTER, MIC_PREFILL, MIC_SLACK_MS / frame_ms, self.frame_bytes
        )
        self.speaker = FrameRing(
            ring_frames,
            SPEAKER_TRIM_AFTER,
            SPEAKER_PREFILL,
            SPEAKER_SLACK_MS / frame_ms,
            self.frame_bytes,
        )
        self.muted = False
        self.input_name: str | None = None
        self.output_name: str | None = None
        self._input: Any = None
        self._output: Any = None
        self._levels_lock = threading.Lock()
        self._mic_peak = 0.0
        self._speaker_peak = 0.0
        self._errors = 0
        #: blocks captured and played (PortAudio's), frames sent to the call and received
        self._counts = [0, 0, 0, 0]

    # --- the sound card's side (PortAudio's threads) -----------------------------------

    def _on_input(self, data: Any, frames: int, time: Any, status: Any) -> None:
        try:
            block = bytes(data)
            self.mic.push(block)
            self._counts[0] += 1
            peak = _peak(block)
            if peak > self._mic_peak:
                with self._levels_lock:
                    self._mic_peak = max(self._mic_peak, peak)
        except Exception:  # never into PortAudio's C thread
            self._errors += 1

    def _on_output(self, data: Any, frames: int, time: Any, status: Any) -> None:
        try:
            size = len(data)
            block = self.speaker.pop(size)
            self._counts[1] += 1
            if block is None:
                data[:] = bytes(size)
                return
            data[:] = block
            peak = _peak(block)
            if peak > self._speaker_peak:
                with self._levels_lock:
                    self._speaker_peak = max(self._speaker_peak, peak)
        except Exception:
            self._errors += 1

    # --- the call's side (pjmedia's clock thread) -------------------------------------

    def frame_for_call(self) -> bytes:
        """The microphone's next frame for the call: silence when muted or when the
        microphone has none ready."""
        frame = self.mic.pop()
        self._counts[2] += 1
        if frame is None or self.muted:
            return self.silence
        return frame

    def frame_from_call(self, frame: bytes) -> None:
        """A frame of the call's audio for the speaker."""
        self._counts[3] += 1
        if len(frame) == self.frame_bytes:
            self.speaker.push(frame)
        elif frame:
            self.speaker.push(frame[: self.frame_bytes].ljust(self.frame_bytes, b"\0"))

    # --- control (the phone's thread) -------------------------------------------------

    def open(self, input_name: str | None, output_name: str | None) -> None:
        """Open (or reopen, on other devices) both streams. ``None``: the default device.
        Raises :class:`HeadsetError`; the streams are closed then."""
        self.close()
        self.input_name, self.output_name = input_name, output_name
        sd = _sounddevice()
        try:
            self._input = sd.RawInputStream(
                samplerate=self.rate,
                device=_device_index(sd, input_name, "input"),
                channels=1,
                dtype="int16",
                callback=self._on_input,
                **STREAM_SETTINGS,
            )
            self._output = sd.RawOutputStream(
                samplerate=self.rate,
                device=_device_index(sd, output_name, "output"),
                channels=1,
                dtype="int16",
                callback=self._on_output,
                **STREAM_SETTINGS,
            )
            self._input.start()
            self._output.start()
        except HeadsetError:
            self.close()
            raise
        except Exception as exc:  # sounddevice.PortAudioError, ValueError
            self.close()
            raise HeadsetError(f"the headset cannot be opened: {exc}") from None
        log.info(
            "headset open: in %r, out %r, %d Hz, latency in %.0f ms, out %.0f ms",
            input_name or "default",
            output_name or "default",
            self.rate,
            self._input.latency * 1000,
            self._output.latency * 1000,
        )

    @property
    def is_open(self) -> bool:
        return self._input is not None and self._output is not None

    def close(self) -> None:
        """Stop and close both streams (nothing happens if they are not open)."""
        for stream in (self._input, self._output):
            if stream is not None:
                with contextlib.suppress(Exception):
                    stream.abort()
                with contextlib.suppress(Exception):
                    stream.close()
        self._input = self._output = None
        self.mic.clear()
        self.speaker.clear()

    def levels(self) -> tuple[float, float]:
        """The microphone's and the speaker's peaks (0 .. 1) since the last call."""
        with self._levels_lock:
            levels = (self._mic_peak, self._speaker_peak)
            self._mic_peak = self._speaker_peak = 0.0
        return levels

    def stats(self) -> HeadsetStats:
        input_latency = float(self._input.latency) if self._input is not None else 0.0
        output_latency = float(self._output.latency) if self._output is not None else 0.0
        per_byte = 1.0 / (self.rate * SAMPLE_BYTES)
        tick = FRAME_MS / 1000 / 2  # the bridge reads or writes once a tick: half on average
        return HeadsetStats(
            mic_overruns=self.mic.overruns,
            mic_underruns=self.mic.underruns,
            speaker_overruns=self.speaker.overruns,
            speaker_underruns=self.speaker.underruns,
            trimmed=self.mic.trimmed + self.speaker.trimmed,
            captured=self._counts[0],
            played=self._counts[1],
            to_call=self._counts[2],
            from_call=self._counts[3],
            input_latency=input_latency,
            output_latency=output_latency,
            mic_held=self.mic.held * per_byte,
            speaker_held=self.speaker.held * per_byte,
            dropped=(self.mic.dropped + self.speaker.dropped) * per_byte,
            mic_delay=input_latency + self.mic.held * per_byte + tick,
            speaker_delay=output_latency + self.speaker.held * per_byte + tick,
        )


class HeadsetPort(pj.AudioMediaPort):  # type: ignore[misc]
    """A conference port of pjsua2 whose frames come from and go to a :class:`Headset`.

    Create it on the thread that runs pjsua2, after the library is started. Its callbacks
    run on pjmedia's clock thread (a thread of pjlib's own: nothing to register), with the
    GIL taken by SWIG's director; no exception may leave them into C.
    """

    def __init__(self, headset: Headset) -> None:
        super().__init__()
        self.headset = headset
        self.errors = 0
        fmt = pj.MediaFormatAudio()
        fmt.init(pj.PJMEDIA_FORMAT_PCM, headset.rate, 1, FRAME_MS * 1000, 16)
        self.createPort("headset", fmt)

    def onFrameRequested(self, frame: Any) -> None:
        try:
            frame.type = pj.PJMEDIA_FRAME_TYPE_AUDIO
            frame.buf = pj.ByteVector(self.headset.frame_for_call())
            frame.size = self.headset.frame_bytes
        except Exception:
            self.errors += 1

    def onFrameReceived(self, frame: Any) -> None:
        try:
            if frame.type == pj.PJMEDIA_FRAME_TYPE_AUDIO:
                self.headset.frame_from_call(vector_bytes(frame.buf))
        except Exception:
            self.errors += 1
