"""Call recording to crash-safe WAV files, with pause intervals and talk/silence statistics.

The file format is the canonical 44-byte RIFF/WAVE header (Microsoft/IBM "Multimedia
Programming Interface and Data Specifications 1.0", 1991, chapter 3 "RIFF" and the ``WAVE``
form: ``fmt `` chunk with ``WAVE_FORMAT_PCM`` = 1, then the ``data`` chunk) holding 16-bit
little-endian linear PCM at 8 kHz, either stereo (caller left, other party right; samples
interleaved left first, as the WAVE spec orders channels) or a mono mix of both parties.

The module has three parts:

* a pure part, with no file or clock access: ``WavFormat`` (header bytes and size fields),
  ``RecordingCore`` (per 20 ms tick: block buffering, pause state, silence while paused,
  optional voice activity statistics through webrtcvad) and the values it hands out
  (``PauseInterval``, ``TalkStats``, ``RecordingStats``);
* ``WavFile``, the only code that touches the disk;
* two shells: ``WavRecorder`` (synchronous: each flush writes inline; used by tools, tests and
  executor threads) and ``AsyncRecorder`` (for the event loop: ``write()`` only buffers, the
  file writes run one at a time per recording in an executor via ``loop.run_in_executor``).
  The blocks of all recordings that fall due in the same event loop iteration (calls that
  started together fill their blocks on the same tick) go to the executor together, in a few
  tasks of several files each, rather than one task per file: the loop then pays for a few
  thread hand-offs instead of hundreds, while the disk syncs of the tasks still overlap.

Crash safety.  The header is written when the file is opened, with the sizes of an empty
recording (RIFF size 36, data size 0), so the file is a valid WAV from its first byte.  Audio is
buffered in memory and appended in blocks (``flush_seconds``, default 1 s); after each block the
RIFF and ``data`` chunk sizes are rewritten in place (seek to offsets 4 and 40, write 4 bytes
each, seek back to the end) and the file is flushed to the operating system.  A kill -9 of the
process therefore leaves a playable file holding everything up to the last block, because
written data lives in the kernel's page cache, not in the process.  With ``fsync=True`` (the
default) each block is also ``os.fsync``-ed, which additionally survives a crash of the host or
a power loss, at the cost of one disk sync per recording per block; deployments recording many
calls on slow disks may choose ``fsync=False`` and keep kill -9 safety.  A clean ``close()``
writes the remaining audio and the final sizes.

Pauses.  While paused (``pause(reason)``, ``resume()``) the recording receives silence, so the
file keeps the call's timing.  The intervals, in seconds from the start of the recording, are
kept beside the recording in ``<file>.pauses.json`` (created at the first pause, rewritten
atomically at each change, so it survives a crash too; an interval still open has
``"end": null``).  Voice activity is not measured while paused.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Final

import numpy as np
import numpy.typing as npt

from media.vad import VoiceActivity

__all__ = [
    "FRAME_SAMPLES",
    "HEADER_SIZE",
    "MAX_DATA_BYTES",
    "SAMPLE_RATE",
    "AsyncRecorder",
    "ChannelLayout",
    "PauseInterval",
    "RecorderUsageError",
    "RecordingCore",
    "RecordingOptions",
    "RecordingStats",
    "TalkStats",
    "WavFile",
    "WavFormat",
    "WavRecorder",
    "pauses_path",
]

Samples = npt.NDArray[np.int16]

SAMPLE_RATE: Final = 8000
FRAME_SAMPLES: Final = 160
"""One 20 ms tick at 8 kHz (RFC 3551 §4.5 default packet time)."""
BITS_PER_SAMPLE: Final = 16
HEADER_SIZE: Final = 44
"""Canonical PCM WAVE header: RIFF header (12) + ``fmt `` chunk (8 + 16) + ``data`` header (8)."""
RIFF_SIZE_OFFSET: Final = 4
DATA_SIZE_OFFSET: Final = 40
MAX_DATA_BYTES: Final = 0xFFFFFFFF - (HEADER_SIZE - 8)
"""RIFF sizes are 32-bit; the RIFF size counts the data plus 36 header bytes."""
WAVE_FORMAT_PCM: Final = 1
MAX_PAUSES: Final = 1000
"""Bound on pause intervals per recording."""
MAX_PENDING_SECONDS: Final = 60.0
"""``AsyncRecorder``: audio kept in memory while the disk lags before frames are dropped."""

_FMT_CHUNK = struct.Struct("<4sI4s4sIHHIIHH4sI")
_SIZE = struct.Struct("<I")


class RecorderUsageError(ValueError):
    """The caller misused the recorder API (bad frame, write after close, too many pauses)."""


class ChannelLayout(enum.Enum):
    """How the two parties are laid out in the file."""

    STEREO = "stereo"
    """Caller in the left channel, the other party in the right one."""
    MONO_MIX = "mono"
    """Both parties summed (saturating) into one channel."""

    @property
    def channels(self) -> int:
        return 2 if self is ChannelLayout.STEREO else 1


# --------------------------------------------------------------------------- pure part


@dataclass(frozen=True, slots=True)
class WavFormat:
    """16-bit PCM WAVE format of a recording (RIFF ``fmt `` chunk, WAVE_FORMAT_PCM)."""

    channels: int = 2
    sample_rate: int = SAMPLE_RATE

    def __post_init__(self) -> None:
        if self.channels not in (1, 2):
            raise RecorderUsageError(f"channels must be 1 or 2, not {self.channels}")
        if self.sample_rate <= 0:
            raise RecorderUsageError(f"sample rate must be positive, not {self.sample_rate}")

    @property
    def block_align(self) -> int:
        """Bytes per sample frame (all channels)."""
        return self.channels * BITS_PER_SAMPLE // 8

    @property
    def byte_rate(self) -> int:
        return self.sample_rate * self.block_align

    def header(self, data_bytes: int = 0) -> bytes:
        """The 44-byte header for a ``data`` chunk of ``data_bytes`` bytes."""
        self._check_size(data_bytes)
        return _FMT_CHUNK.pack(
            b"RIFF",
            data_bytes + HEADER_SIZE - 8,
            b"WAVE",
            b"fmt ",
            16,
            WAVE_FORMAT_PCM,
            self.channels,
            self.sample_rate,
            self.byte_rate,
            self.block_align,
            BITS_PER_SAMPLE,
            b"data",
            data_bytes,
        )

    def size_fields(self, data_bytes: int) -> tuple[tuple[int, bytes], tuple[int, bytes]]:
        """``(offset, bytes)`` for the RIFF and ``data`` size fields after ``data_bytes``."""
        self._check_size(data_bytes)
        return (
            (RIFF_SIZE_OFFSET, _SIZE.pack(data_bytes + HEADER_SIZE - 8)),
            (DATA_SIZE_OFFSET, _SIZE.pack(data_bytes)),
        )

    def _check_size(self, data_bytes: int) -> None:
        if not 0 <= data_bytes <= MAX_DATA_BYTES or data_bytes % self.block_align:
            raise RecorderUsageError(f"invalid data size {data_bytes} for {self}")


@dataclass(frozen=True, slots=True)
class RecordingOptions:
    """How a call is recorded (shared by ``WavRecorder`` and ``AsyncRecorder``)."""

    layout: ChannelLayout = ChannelLayout.STEREO
    flush_seconds: float = 1.0
    """Audio buffered in memory between two writes to the file (rounded to 20 ms ticks)."""
    fsync: bool = True
    """``os.fsync`` after every block (host-crash safety); ``False`` flushes to the OS only."""
    vad_mode: int | None = None
    """webrtcvad aggressiveness 0-3 for talk statistics, or ``None`` to skip them."""

    def __post_init__(self) -> None:
        if not 0.02 <= self.flush_seconds <= 60.0:
            raise RecorderUsageError(
                f"flush_seconds must be in [0.02, 60], not {self.flush_seconds}"
            )
        if self.vad_mode is not None and self.vad_mode not in (0, 1, 2, 3):
            raise RecorderUsageError(f"vad_mode must be 0-3 or None, not {self.vad_mode}")

    @property
    def block_frames(self) -> int:
        """20 ms ticks per block written to the file."""
        return max(1, round(self.flush_seconds * SAMPLE_RATE / FRAME_SAMPLES))


@dataclass(frozen=True, slots=True)
class PauseInterval:
    """One pause, in seconds from the start of the recording; ``end`` is None while open."""

    start: float
    end: float | None
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "end": self.end, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class TalkStats:
    """Voice activity over the unpaused part of a recording (20 ms resolution)."""

    left_talk_seconds: float
    """Speech time of the caller (left channel)."""
    right_talk_seconds: float
    """Speech time of the other party (right channel)."""
    overlap_seconds: float
    """Time both parties spoke at once."""
    silence_seconds: float
    """Time neither party spoke."""


@dataclass(frozen=True, slots=True)
class RecordingStats:
    """What a closed recording holds."""

    duration_seconds: float
    """Audio in the file, pauses (silence) included."""
    paused_seconds: float
    pauses: tuple[PauseInterval, ...]
    talk: TalkStats | None
    """``None`` when voice activity detection was off."""
    dropped_seconds: float = 0.0
    """Audio lost because the file reached the RIFF size limit or the disk lagged too long."""


class _TalkMeter:
    """Per-channel voice activity (media.vad, raw decisions: no hangover) in 20 ms ticks."""

    __slots__ = ("_both", "_left", "_right", "_ticks", "_vad_left", "_vad_right")

    def __init__(self, mode: int) -> None:
        self._vad_left = VoiceActivity(mode, SAMPLE_RATE, hangover_frames=0)
        self._vad_right = VoiceActivity(mode, SAMPLE_RATE, hangover_frames=0)
        self._left = self._right = self._both = self._ticks = 0

    def feed(self, left: Samples, right: Samples) -> None:
        lt = self._vad_left.update(left)
        rt = self._vad_right.update(right)
        self._ticks += 1
        self._left += lt
        self._right += rt
        self._both += lt and rt

    def stats(self) -> TalkStats:
        tick = FRAME_SAMPLES / SAMPLE_RATE
        silent = self._ticks - self._left - self._right + self._both
        return TalkStats(
            left_talk_seconds=self._left * tick,
            right_talk_seconds=self._right * tick,
            overlap_seconds=self._both * tick,
            silence_seconds=silent * tick,
        )


_SILENCE: Final[Samples] = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.setflags(write=False)


def _frame(samples: Samples | None, side: str) -> Samples:
    if samples is None:
        return _SILENCE
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise RecorderUsageError(f"{side} frame must be 1-D int16, not {samples.dtype}")
    n = samples.shape[0]
    if n == FRAME_SAMPLES:
        return samples
    if n > FRAME_SAMPLES:
        raise RecorderUsageError(f"{side} frame has {n} samples, at most {FRAME_SAMPLES}")
    padded = np.zeros(FRAME_SAMPLES, dtype=np.int16)
    padded[:n] = samples
    return padded


class RecordingCore:
    """Sans-I/O state of one recording: block buffer, pauses, voice activity.

    Feed one tick at a time with ``append(left, right)`` (int16 arrays of up to 160 samples,
    ``None`` for a missing frame, which is recorded as silence; short frames are padded with
    silence).  When ``block_ready`` is true, ``take_block()`` returns the PCM bytes to append
    to the file; it must be taken before the next ``append``, which keeps the buffer bounded.
    Time is the recording's own: the number of samples appended.
    """

    __slots__ = (
        "_block",
        "_block_align",
        "_block_samples",
        "_closed",
        "_data_bytes",
        "_dropped_samples",
        "_fill",
        "_limit",
        "_lost_samples",
        "_pause_reason",
        "_pause_start",
        "_paused_samples",
        "_pauses",
        "_samples",
        "_talk",
        "format",
        "options",
    )

    def __init__(self, options: RecordingOptions) -> None:
        self.options = options
        self.format = WavFormat(channels=options.layout.channels)
        self._block: Samples = np.zeros(
            (options.block_frames * FRAME_SAMPLES, self.format.channels), dtype="<i2"
        )
        self._block_samples = int(self._block.shape[0])
        self._block_align = self.format.block_align
        self._fill = 0
        self._samples = 0
        self._data_bytes = 0
        self._dropped_samples = 0
        self._lost_samples = 0
        frame_bytes = FRAME_SAMPLES * self.format.block_align
        self._limit = MAX_DATA_BYTES - MAX_DATA_BYTES % frame_bytes
        self._paused_samples = 0
        self._pauses: list[PauseInterval] = []
        self._pause_start: int | None = None
        self._pause_reason = ""
        self._talk = _TalkMeter(options.vad_mode) if options.vad_mode is not None else None
        self._closed = False

    # ---- audio

    def append(self, left: Samples | None, right: Samples | None) -> None:
        """Record one 20 ms tick: caller frame ``left``, other party frame ``right``."""
        if self._closed:
            raise RecorderUsageError("recording is closed")
        fill = self._fill
        if fill >= self._block_samples:
            raise RecorderUsageError("the full block must be taken before the next tick")
        lf = _frame(left, "left")
        rf = _frame(right, "right")
        end = fill + FRAME_SAMPLES
        if self._data_bytes + end * self._block_align > self._limit:
            self._dropped_samples += FRAME_SAMPLES
            return
        rows = self._block[fill:end]
        if self._pause_start is not None:
            rows[:] = 0
            self._paused_samples += FRAME_SAMPLES
        else:
            if self._talk is not None:
                self._talk.feed(lf, rf)
            if self._block_align == 4:  # stereo
                rows[:, 0] = lf
                rows[:, 1] = rf
            else:
                mixed = lf.astype(np.int32) + rf
                np.clip(mixed, -32768, 32767, out=mixed)
                rows[:, 0] = mixed
        self._fill = end
        self._samples += FRAME_SAMPLES

    @property
    def block_ready(self) -> bool:
        """The block buffer is full and should be written to the file."""
        return self._fill >= self._block_samples

    @property
    def pending_bytes(self) -> int:
        return self._fill * self._block_align

    def take_block(self) -> bytes:
        """The buffered PCM (possibly a partial block), removed from the buffer."""
        data = self._block[: self._fill].tobytes()
        self._data_bytes += len(data)
        self._fill = 0
        return data

    @property
    def data_bytes(self) -> int:
        """Bytes handed out by ``take_block`` so far (the file's ``data`` chunk size)."""
        return self._data_bytes

    @property
    def position_seconds(self) -> float:
        """Length of the recording so far, in seconds."""
        return self._samples / SAMPLE_RATE

    # ---- pauses

    @property
    def paused(self) -> bool:
        return self._pause_start is not None

    def pause(self, reason: str) -> bool:
        """Start recording silence from the next tick; False if already paused."""
        if self._closed:
            raise RecorderUsageError("recording is closed")
        if self._pause_start is not None:
            return False
        if len(self._pauses) >= MAX_PAUSES:
            raise RecorderUsageError(f"more than {MAX_PAUSES} pauses in one recording")
        self._pause_start = self._samples
        self._pause_reason = reason
        return True

    def resume(self) -> bool:
        """Record audio again from the next tick; False if not paused."""
        if self._pause_start is None:
            return False
        self._pauses.append(
            PauseInterval(
                self._pause_start / SAMPLE_RATE, self._samples / SAMPLE_RATE, self._pause_reason
            )
        )
        self._pause_start = None
        return True

    @property
    def pauses(self) -> tuple[PauseInterval, ...]:
        """Closed intervals, then the open one (``end=None``) if paused."""
        if self._pause_start is None:
            return tuple(self._pauses)
        return (
            *self._pauses,
            PauseInterval(self._pause_start / SAMPLE_RATE, None, self._pause_reason),
        )

    def pauses_json(self, recording_name: str) -> bytes:
        """The ``<file>.pauses.json`` document."""
        doc = {
            "recording": recording_name,
            "sample_rate": SAMPLE_RATE,
            "pauses": [p.to_json() for p in self.pauses],
        }
        return json.dumps(doc, indent=1).encode() + b"\n"

    # ---- end

    def finish(self) -> RecordingStats:
        """Close an open pause and stop accepting audio; the buffer still holds the tail."""
        self.resume()
        self._closed = True
        return self.stats()

    def stats(self) -> RecordingStats:
        return RecordingStats(
            duration_seconds=(self._samples - self._lost_samples) / SAMPLE_RATE,
            paused_seconds=self._paused_samples / SAMPLE_RATE,
            pauses=self.pauses,
            talk=self._talk.stats() if self._talk is not None else None,
            dropped_seconds=(self._dropped_samples + self._lost_samples) / SAMPLE_RATE,
        )

    def count_dropped(self, data_bytes: int) -> None:
        """Account audio taken from the buffer that a shell had to discard (disk too slow)."""
        self._lost_samples += data_bytes // self.format.block_align


def pauses_path(path: str | os.PathLike[str]) -> Path:
    """Where the pause intervals of recording ``path`` are kept: ``<file>.pauses.json``."""
    p = Path(path)
    return p.with_name(p.name + ".pauses.json")


# --------------------------------------------------------------------------- file I/O


def _write_at(fd: int, data: bytes, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of file ``fd`` (``pwrite`` may write less)."""
    view = memoryview(data)
    for _ in range(len(data)):  # bounded: each round writes at least one byte or raises
        if not view:
            break
        written = os.pwrite(fd, view, offset)
        if written <= 0:
            raise OSError(f"no progress writing at offset {offset}")
        view = view[written:]
        offset += written


class WavFile:
    """The disk side of a recording: header at open, blocks appended, sizes patched in place.

    Not thread-safe; ``AsyncRecorder`` calls it from one executor job at a time.
    """

    __slots__ = ("_data_bytes", "_f", "format", "fsync", "path")

    def __init__(self, path: str | os.PathLike[str], fmt: WavFormat, *, fsync: bool) -> None:
        """Create ``path`` (which must not exist) and write the header of an empty recording."""
        self.path = Path(path)
        self.format = fmt
        self.fsync = fsync
        self._data_bytes = 0
        # Unbuffered: every write below is one positioned system call, no seek in between.
        self._f: BinaryIO = open(self.path, "xb", buffering=0)  # noqa: SIM115 - see close()
        try:
            _write_at(self._f.fileno(), fmt.header(0), 0)
            self._sync()
        except BaseException:
            self._f.close()
            raise

    @property
    def data_bytes(self) -> int:
        return self._data_bytes

    @property
    def closed(self) -> bool:
        return self._f.closed

    def append(self, pcm: bytes) -> None:
        """Append PCM at the end, then rewrite the two size fields and sync."""
        if not pcm:
            return
        fd = self._f.fileno()
        _write_at(fd, pcm, HEADER_SIZE + self._data_bytes)
        self._data_bytes += len(pcm)
        # Both size fields (offsets 4 and 40) in one write, with the unchanged header bytes
        # between them.
        header = self.format.header(self._data_bytes)
        _write_at(fd, header[RIFF_SIZE_OFFSET:HEADER_SIZE], RIFF_SIZE_OFFSET)
        self._sync()

    def close(self) -> None:
        if self._f.closed:
            return
        try:
            self._sync()
        finally:
            self._f.close()

    def write_pauses(self, document: bytes) -> None:
        """Replace ``<file>.pauses.json`` atomically (temporary file + ``os.replace``)."""
        target = pauses_path(self.path)
        tmp = target.with_name(target.name + ".tmp")
        with open(tmp, "wb") as f:
            f.write(document)
            f.flush()
            if self.fsync:
                os.fsync(f.fileno())
        os.replace(tmp, target)

    def _sync(self) -> None:
        self._f.flush()
        if self.fsync:
            os.fsync(self._f.fileno())


# --------------------------------------------------------------------------- shells


class WavRecorder:
    """Synchronous recorder: ``write()`` buffers and, once per block, writes to the file inline.

    Use it where blocking on the disk is acceptable (tools, tests, worker threads); on the event
    loop use ``AsyncRecorder``.
    """

    __slots__ = ("_core", "_file", "_name")

    def __init__(
        self, path: str | os.PathLike[str], options: RecordingOptions | None = None
    ) -> None:
        self._core = RecordingCore(options or RecordingOptions())
        self._file = WavFile(path, self._core.format, fsync=self._core.options.fsync)
        self._name = self._file.path.name

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def core(self) -> RecordingCore:
        return self._core

    @property
    def paused(self) -> bool:
        return self._core.paused

    def write(self, left: Samples | None, right: Samples | None) -> None:
        """Record one 20 ms tick (see ``RecordingCore.append``)."""
        self._core.append(left, right)
        if self._core.block_ready:
            self._file.append(self._core.take_block())

    def flush(self) -> None:
        """Write the buffered audio now, even a partial block."""
        self._file.append(self._core.take_block())

    def pause(self, reason: str = "") -> None:
        if self._core.pause(reason):
            self._file.write_pauses(self._core.pauses_json(self._name))

    def resume(self) -> None:
        if self._core.resume():
            self._file.write_pauses(self._core.pauses_json(self._name))

    def close(self) -> RecordingStats:
        """Write the tail, the final sizes and a closed pause interval; idempotent."""
        if self._file.closed:
            return self._core.stats()
        was_paused = self._core.paused
        stats = self._core.finish()
        try:
            self._file.append(self._core.take_block())
            if was_paused:
                self._file.write_pauses(self._core.pauses_json(self._name))
        finally:
            self._file.close()
        return stats

    def __enter__(self) -> WavRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


#: One file job: the file, PCM to append, a pauses document to write (or None), and the future
#: its recorder waits on.
_Job = tuple[WavFile, bytes, bytes | None, asyncio.Future[None]]
_BatchKey = tuple[asyncio.AbstractEventLoop, concurrent.futures.Executor | None]
#: Jobs that fell due during the current iteration of an event loop, per loop and executor.
#: An entry lives until the end of that iteration.
_batches: dict[_BatchKey, list[_Job]] = {}
_BATCH_TASKS: Final = 8
"""The jobs of one loop iteration are split into at most this many executor tasks ..."""
_BATCH_MIN_JOBS: Final = 16
"""... of at least this many jobs each (fewer only when there are fewer)."""


def _submit_job(
    loop: asyncio.AbstractEventLoop,
    executor: concurrent.futures.Executor | None,
    file: WavFile,
    pcm: bytes,
    pauses_doc: bytes | None,
) -> asyncio.Future[None]:
    """Queue one file job for the executor; it starts at the end of this loop iteration."""
    fut: asyncio.Future[None] = loop.create_future()
    key = (loop, executor)
    jobs = _batches.get(key)
    if jobs is None:
        loop.call_soon(_start_batch, key)  # first: raises if the loop is closed
        jobs = _batches[key] = []
    jobs.append((file, pcm, pauses_doc, fut))
    return fut


def _start_batch(key: _BatchKey) -> None:
    loop, executor = key
    jobs = _batches.pop(key, [])
    size = max(_BATCH_MIN_JOBS, -(-len(jobs) // _BATCH_TASKS))
    for start in range(0, len(jobs), size):
        chunk = jobs[start : start + size]
        work = [(file, pcm, doc) for file, pcm, doc, _ in chunk]
        try:
            task = loop.run_in_executor(executor, _run_jobs, work)
        except Exception as exc:  # the executor is shut down
            _finish_jobs(chunk, exc)
            continue
        task.add_done_callback(functools.partial(_jobs_done, chunk))


def _run_jobs(work: list[tuple[WavFile, bytes, bytes | None]]) -> list[Exception | None]:
    """In the executor: each file's job, in order; what each one raised."""
    errors: list[Exception | None] = []
    for file, pcm, pauses_doc in work:
        try:
            file.append(pcm)
            if pauses_doc is not None:
                file.write_pauses(pauses_doc)
        except Exception as exc:
            errors.append(exc)
        else:
            errors.append(None)
    return errors


def _jobs_done(chunk: list[_Job], task: asyncio.Future[list[Exception | None]]) -> None:
    if task.cancelled():
        for *_, fut in chunk:
            fut.cancel()
        return
    failed = task.exception()
    _finish_jobs(chunk, failed if failed is not None else task.result())


def _finish_jobs(chunk: list[_Job], outcome: BaseException | list[Exception | None]) -> None:
    for i, (*_, fut) in enumerate(chunk):
        error = outcome if isinstance(outcome, BaseException) else outcome[i]
        if fut.done():
            continue
        if error is None:
            fut.set_result(None)
        else:
            fut.set_exception(error)


class AsyncRecorder:
    """Recorder for the event loop: ``write()`` never blocks; file work runs in an executor.

    At most one executor job runs per recording, so writes stay in order; blocks produced while
    a job runs are coalesced into the next one.  Jobs of several recordings that fall due in the
    same loop iteration share executor tasks (see the module docstring).  If the disk lags by
    more than ``MAX_PENDING_SECONDS`` of audio, further blocks are dropped and counted in
    ``RecordingStats.dropped_seconds``.  A failed write is raised by ``close()``.
    """

    __slots__ = (
        "_closing",
        "_core",
        "_error",
        "_executor",
        "_file",
        "_inflight",
        "_loop",
        "_name",
        "_pending",
        "_pending_bytes",
        "_pending_pauses",
    )

    def __init__(
        self,
        core: RecordingCore,
        file: WavFile,
        loop: asyncio.AbstractEventLoop,
        executor: concurrent.futures.Executor | None,
    ) -> None:
        self._core = core
        self._file = file
        self._name = file.path.name
        self._loop = loop
        self._executor = executor
        self._pending: list[bytes] = []  # blocks not yet handed to the executor
        self._pending_bytes = 0
        self._pending_pauses: bytes | None = None
        self._inflight: asyncio.Future[None] | None = None
        self._error: BaseException | None = None
        self._closing = False

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        options: RecordingOptions | None = None,
        *,
        executor: concurrent.futures.Executor | None = None,
    ) -> AsyncRecorder:
        """Create the file (header written in the executor) and return the recorder."""
        core = RecordingCore(options or RecordingOptions())
        loop = asyncio.get_running_loop()
        file = await loop.run_in_executor(
            executor, lambda: WavFile(path, core.format, fsync=core.options.fsync)
        )
        return cls(core, file, loop, executor)

    @property
    def path(self) -> Path:
        return self._file.path

    @property
    def core(self) -> RecordingCore:
        return self._core

    @property
    def paused(self) -> bool:
        return self._core.paused

    def write(self, left: Samples | None, right: Samples | None) -> None:
        """Record one 20 ms tick; a full block is handed to the executor."""
        if self._closing:
            raise RecorderUsageError("recording is closing")
        self._core.append(left, right)
        if self._core.block_ready:
            self._queue_audio(self._core.take_block())

    def pause(self, reason: str = "") -> bool:
        """Record silence from the next tick on; False if already paused."""
        if not self._core.pause(reason):
            return False
        self._pending_pauses = self._core.pauses_json(self._name)
        self._kick()
        return True

    def resume(self) -> bool:
        """Record audio again from the next tick on; False if not paused."""
        if not self._core.resume():
            return False
        self._pending_pauses = self._core.pauses_json(self._name)
        self._kick()
        return True

    async def flush(self) -> None:
        """Hand the buffered audio to the executor and wait until it is on file."""
        if not self._closing:
            self._queue_audio(self._core.take_block())
        await self._drain()
        self._raise_error()

    async def close(self) -> RecordingStats:
        """Write the tail, the pause intervals and the final sizes; close the file."""
        if self._closing:
            await self._drain()
            self._raise_error()
            return self._core.stats()
        self._closing = True
        was_paused = self._core.paused
        stats = self._core.finish()
        self._queue_audio(self._core.take_block())
        if was_paused:
            self._pending_pauses = self._core.pauses_json(self._name)
            self._kick()
        try:
            await self._drain()
        finally:
            await self._loop.run_in_executor(self._executor, self._file.close)
        self._raise_error()
        return stats

    async def __aenter__(self) -> AsyncRecorder:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---- executor plumbing

    def _queue_audio(self, pcm: bytes) -> None:
        if not pcm:
            return
        limit = int(MAX_PENDING_SECONDS * self._core.format.byte_rate)
        if self._pending_bytes + len(pcm) > limit:
            self._core.count_dropped(len(pcm))
            return
        self._pending.append(pcm)
        self._pending_bytes += len(pcm)
        self._kick()

    def _kick(self) -> None:
        if self._inflight is not None or self._error is not None:
            return
        if not self._pending and self._pending_pauses is None:
            return
        pcm = b"".join(self._pending)  # one block: that block itself, not a copy
        self._pending.clear()
        self._pending_bytes = 0
        doc, self._pending_pauses = self._pending_pauses, None
        self._inflight = _submit_job(self._loop, self._executor, self._file, pcm, doc)
        self._inflight.add_done_callback(self._job_done)

    def _job_done(self, fut: asyncio.Future[None]) -> None:
        self._inflight = None
        if fut.cancelled():
            self._error = asyncio.CancelledError()
        elif (exc := fut.exception()) is not None:
            self._error = exc
        self._kick()

    async def _drain(self) -> None:
        # Each round waits for one job; a new job only starts if something was queued before
        # it, so the rounds are bounded by the (at most two) batches queued at this point.
        for _ in range(4):
            fut = self._inflight
            if fut is None:
                self._kick()
                fut = self._inflight
                if fut is None:
                    return
            await asyncio.wait([fut])
            # Let the done callback run (it is scheduled with call_soon) before looking again.
            await asyncio.sleep(0)

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error
