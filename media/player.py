"""Prompt playback: WAV loading and resampling, a shared prompt cache, playlists, music on hold.

Everything the media engine plays to a leg is 8 kHz mono int16 (the linear form of G.711,
RFC 3551 §4.5.14), cut into 20 ms frames of 160 samples (RFC 3551 §4.5, default packet time).

* ``load_prompt`` reads a WAV file (RIFF/WAVE: Microsoft "Multimedia Programming Interface and
  Data Specifications 1.0", 1991, and the WAVE_FORMAT_EXTENSIBLE header) holding
  integer PCM of 8, 16, 24 or 32 bits (through the stdlib ``wave`` module) or G.711 mu-law
  (format tag 7) or A-law (format tag 6), which ``wave`` refuses and this module parses from
  the RIFF chunks itself.  Several channels are averaged to one; other rates are resampled to
  8 kHz (``resample``).
* ``PromptCache``: one decoded copy of each prompt, shared read-only by every call that plays
  it, bounded in bytes and entries, least recently used first out.
* ``Playback``: a frame source over a playlist of prompts, with barge-in on DTMF.
* ``MusicOnHold``: a folder of WAV files looped forever on a stream clock shared by all callers.

This module does file I/O (it is an adapter, not a pure core); it keeps no clock of its own:
times are passed in as ``now`` (monotonic seconds).
"""

from __future__ import annotations

import io
import logging
import math
import os
import struct
import threading
import wave
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from media.codecs.g711 import alaw_decode, ulaw_decode

__all__ = [
    "FRAME_SAMPLES",
    "SAMPLE_RATE",
    "CacheStats",
    "MohStream",
    "MusicOnHold",
    "Playback",
    "PromptCache",
    "PromptError",
    "load_prompt",
    "resample",
]

log = logging.getLogger(__name__)

Samples = npt.NDArray[np.int16]

SAMPLE_RATE: Final = 8000
"""Rate of every prompt once loaded (G.711 clock rate, RFC 3551 §4.5.14)."""
FRAME_SAMPLES: Final = 160
"""20 ms at 8 kHz, the default RTP packet time (RFC 3551 §4.5)."""

MAX_PROMPT_SECONDS: Final = 3600.0
"""Longest prompt ``load_prompt`` accepts by default (one hour, 57.6 MB at 8 kHz)."""

WAVE_FORMAT_PCM: Final = 0x0001
WAVE_FORMAT_ALAW: Final = 0x0006
WAVE_FORMAT_MULAW: Final = 0x0007
WAVE_FORMAT_EXTENSIBLE: Final = 0xFFFE

_SILENCE: Final[Samples] = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.flags.writeable = False


class PromptError(ValueError):
    """A prompt file is missing, unreadable, corrupt or in a format this module cannot play."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = os.fspath(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


# --------------------------------------------------------------------------------------------
# Resampling
# --------------------------------------------------------------------------------------------

_STOPBAND_DB: Final = 80.0
"""Kaiser design target: stopband attenuation of the anti-alias / anti-image filter."""
_CHUNK: Final = 4096
"""Output samples computed per step (bounds the temporary tap matrix)."""


@lru_cache(maxsize=16)
def _polyphase(rate_in: int, rate_out: int) -> tuple[int, int, int, npt.NDArray[np.float64]]:
    """Windowed-sinc polyphase bank for ``rate_in -> rate_out``: (up, down, half_taps, bank).

    The prototype low-pass has its -6 dB point at 0.45 x the lower rate and its stopband edge
    at the lower Nyquist frequency (0.5 x), so the transition band is 0.1 x the lower rate
    (3.6 and 4.0 kHz for an 8 kHz side).  A Kaiser window (beta for ~80 dB) sets the length
    with Kaiser's formula N = (A - 7.95) / (2.285 * delta-omega).  Each phase is normalised
    to unit DC gain, so passband ripple stays below ~0.01 dB up to 0.4 x the lower rate.
    """
    common = math.gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    low = min(rate_in, rate_out)
    cutoff = 0.45 * low / rate_in  # cycles per input sample
    transition = 0.1 * low / rate_in
    taps = math.ceil((_STOPBAND_DB - 7.95) / (2.285 * 2 * math.pi * transition)) + 1
    half = max(2, (taps + 1) // 2)
    beta = 0.1102 * (_STOPBAND_DB - 8.7)
    # Phase p of output n sits p/up of an input sample after input floor(n*down/up); tap j
    # multiplies input k = k0 - half + 1 + j, at distance tau = frac + half - 1 - j from it.
    frac = np.arange(up, dtype=np.float64)[:, None] / up
    tau = frac + (half - 1) - np.arange(2 * half, dtype=np.float64)[None, :]
    window = np.kaiser(2 * half * up + 1, beta)
    # Evaluate the continuous Kaiser window at tau: position in [-half, half] -> index.
    position = (tau / half + 1.0) * (len(window) - 1) / 2.0
    window_at = np.interp(position, np.arange(len(window)), window, left=0.0, right=0.0)
    bank = 2 * cutoff * np.sinc(2 * cutoff * tau) * window_at
    bank /= bank.sum(axis=1, keepdims=True)
    bank.flags.writeable = False
    return up, down, half, bank


def resample(samples: npt.ArrayLike, rate_in: int, rate_out: int = SAMPLE_RATE) -> Samples:
    """Resample mono int16 audio by the rational factor ``rate_out / rate_in``.

    Band-limited (windowed-sinc polyphase) interpolation: frequencies below 0.4 x the lower of
    the two rates pass within about 0.01 dB; those above half of it are attenuated by about
    80 dB, so a 16 kHz or 44.1 kHz prompt turned to 8 kHz keeps telephone-band speech intact
    and does not alias its upper band into it.  Zero phase (no delay); output length is
    ``ceil(len * rate_out / rate_in)``.  Cost: about ``2 * 4.5 * rate_in / min`` multiply-adds
    per output sample (about 100 for 16 kHz, 280 for 44.1 kHz input).
    """
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError("resample takes mono (1-D) samples")
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"rates must be positive, not {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        return x.astype(np.int16, copy=True)
    up, down, half, bank = _polyphase(rate_in, rate_out)
    n_out = -(-len(x) * up // down)
    padded = np.concatenate(
        [np.zeros(half, np.float64), x.astype(np.float64), np.zeros(half + 1, np.float64)]
    )
    out = np.empty(n_out, dtype=np.float64)
    offsets = np.arange(2 * half)
    for start in range(0, n_out, _CHUNK):
        n = np.arange(start, min(start + _CHUNK, n_out), dtype=np.int64)
        k0, phase = np.divmod(n * down, up)
        # index into ``padded``: input k sits at k + half.
        index = (k0 + 1)[:, None] + offsets[None, :]
        out[start : start + len(n)] = np.einsum("ij,ij->i", padded[index], bank[phase])
    return np.clip(np.rint(out), -32768, 32767).astype(np.int16)


# --------------------------------------------------------------------------------------------
# WAV reading
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Riff:
    """What the RIFF/WAVE chunks of a non-PCM file say: format tag, layout and the data bytes."""

    format_tag: int
    channels: int
    rate: int
    bits: int
    data: bytes


def _parse_riff(path: Path, blob: bytes) -> _Riff:
    """Walk the chunks of a RIFF/WAVE file: ``fmt `` then ``data`` (other chunks skipped)."""
    if len(blob) < 12 or blob[:4] != b"RIFF" or blob[8:12] != b"WAVE":
        raise PromptError(path, "not a RIFF/WAVE file")
    offset = 12
    fmt: tuple[int, int, int, int] | None = None
    data: bytes | None = None
    while offset + 8 <= len(blob) and data is None:
        chunk_id = blob[offset : offset + 4]
        (size,) = struct.unpack_from("<I", blob, offset + 4)
        body = blob[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise PromptError(path, "fmt chunk too short")
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", body)
            if tag == WAVE_FORMAT_EXTENSIBLE:
                if len(body) < 40:
                    raise PromptError(path, "WAVE_FORMAT_EXTENSIBLE fmt chunk too short")
                # The sub-format GUID starts with the classic format tag.
                (tag,) = struct.unpack_from("<H", body, 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise PromptError(path, "data chunk before fmt chunk")
            data = body  # a truncated last chunk keeps what is there
        offset += 8 + size + (size & 1)
    if fmt is None:
        raise PromptError(path, "no fmt chunk")
    if data is None:
        raise PromptError(path, "no data chunk")
    tag, channels, rate, bits = fmt
    return _Riff(tag, channels, rate, bits, data)


def _pcm_to_int16(raw: bytes, width: int) -> Samples:
    """Little-endian integer PCM of ``width`` bytes per sample -> int16 (keeping the top bits)."""
    usable = len(raw) - len(raw) % width
    raw = raw[:usable]
    if width == 1:  # 8-bit WAV PCM is unsigned, offset 128
        return ((np.frombuffer(raw, np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if width == 2:
        return np.frombuffer(raw, "<i2").astype(np.int16)
    if width == 3:
        triples = np.frombuffer(raw, np.uint8).reshape(-1, 3)
        return (triples[:, 1].astype(np.uint16) | (triples[:, 2].astype(np.uint16) << 8)).view(
            np.int16
        )
    if width == 4:
        return (np.frombuffer(raw, "<i4") >> 16).astype(np.int16)
    raise ValueError(f"{width * 8}-bit PCM")


def _downmix(samples: Samples, channels: int) -> Samples:
    """Average interleaved channels to mono (rounded to nearest)."""
    if channels == 1:
        return samples
    frames = samples[: len(samples) - len(samples) % channels].reshape(-1, channels)
    return np.asarray(np.rint(frames.astype(np.float64).mean(axis=1)), dtype=np.int16)


def _check_layout(path: Path, channels: int, rate: int, frames: int, max_seconds: float) -> None:
    if channels < 1:
        raise PromptError(path, "no channels")
    if not 1000 <= rate <= 384_000:
        raise PromptError(path, f"unsupported sample rate {rate} Hz")
    if frames / rate > max_seconds:
        raise PromptError(path, f"longer than {max_seconds:g} s ({frames / rate:.1f} s)")


def load_prompt(
    path: str | os.PathLike[str], *, max_seconds: float = MAX_PROMPT_SECONDS
) -> Samples:
    """Read a WAV prompt as 8 kHz mono int16 samples.

    Accepts integer PCM (8-bit unsigned, 16/24/32-bit signed), G.711 mu-law (format tag 7) and
    A-law (format tag 6), plain or in a WAVE_FORMAT_EXTENSIBLE header, at any rate and channel
    count.  Raises ``PromptError`` naming the file and the reason for a missing, unreadable,
    corrupt, unsupported or over-long (``max_seconds``) file.
    """
    where = Path(path)
    try:
        blob = where.read_bytes()
    except FileNotFoundError:
        raise PromptError(where, "no such file") from None
    except IsADirectoryError:
        raise PromptError(where, "is a directory") from None
    except OSError as exc:
        raise PromptError(where, f"cannot read: {exc.strerror or exc}") from None
    riff = _parse_riff(where, blob)
    if riff.format_tag in (WAVE_FORMAT_MULAW, WAVE_FORMAT_ALAW):
        if riff.bits != 8:
            raise PromptError(where, f"G.711 with {riff.bits} bits per sample")
        _check_layout(where, riff.channels, riff.rate, len(riff.data) // riff.channels, max_seconds)
        decode = ulaw_decode if riff.format_tag == WAVE_FORMAT_MULAW else alaw_decode
        samples = _downmix(decode(riff.data), riff.channels)
        rate = riff.rate
    elif riff.format_tag == WAVE_FORMAT_PCM:
        samples, rate = _load_pcm(where, blob, riff, max_seconds)
    else:
        raise PromptError(where, f"unsupported WAV format tag 0x{riff.format_tag:04x}")
    if rate != SAMPLE_RATE:
        samples = resample(samples, rate, SAMPLE_RATE)
    return samples


def _load_pcm(where: Path, blob: bytes, riff: _Riff, max_seconds: float) -> tuple[Samples, int]:
    """Integer PCM through the stdlib ``wave`` reader (extensible headers via the RIFF walk)."""
    try:
        with wave.open(io.BytesIO(blob), "rb") as reader:
            channels = reader.getnchannels()
            width = reader.getsampwidth()
            rate = reader.getframerate()
            frames = reader.getnframes()
            _check_layout(where, channels, rate, frames, max_seconds)
            raw = reader.readframes(frames)
    except (wave.Error, EOFError, struct.error) as exc:
        if riff.channels < 1 or riff.bits % 8:
            raise PromptError(where, f"corrupt WAV: {exc}") from None
        # Python 3.11's ``wave`` refuses WAVE_FORMAT_EXTENSIBLE even for plain PCM.
        channels, width, rate = riff.channels, riff.bits // 8, riff.rate
        _check_layout(where, channels, rate, len(riff.data) // (channels * width), max_seconds)
        raw = riff.data
    try:
        samples = _pcm_to_int16(raw, width)
    except ValueError as exc:
        raise PromptError(where, f"unsupported {exc}") from None
    return _downmix(samples, channels), rate


# --------------------------------------------------------------------------------------------
# Cache
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CacheStats:
    """Counters of a ``PromptCache``: lookups served from memory, file reads, evictions."""

    hits: int
    misses: int
    evictions: int
    bytes: int
    entries: int


_Key = tuple[str, int, int]


class PromptCache:
    """Decoded prompts shared by every call, keyed by (absolute path, mtime_ns, size).

    Bounded by ``max_bytes`` of samples and ``max_entries`` prompts; the least recently used
    prompt is evicted first.  A prompt larger than ``max_bytes`` is returned but not kept.
    A file that changed on disk (new mtime or size) is read again and replaces the old copy.
    The arrays handed out are read-only and shared: callers must not (and cannot) modify them.
    Safe to call from several executor threads: a lock serialises lookups and loads, so
    concurrent first requests for one prompt read the file once.
    """

    def __init__(self, max_bytes: int = 64 * 1024 * 1024, max_entries: int = 1024) -> None:
        if max_bytes <= 0 or max_entries <= 0:
            raise ValueError("cache bounds must be positive")
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self._entries: OrderedDict[_Key, Samples] = OrderedDict()
        self._key_of_path: dict[str, _Key] = {}
        self._bytes = 0
        self._hits = 0
        self._misses = 0
        self._evictions = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def stats(self) -> CacheStats:
        return CacheStats(self._hits, self._misses, self._evictions, self._bytes, len(self))

    def get(self, path: str | os.PathLike[str]) -> Samples:
        """The prompt at ``path`` as read-only 8 kHz mono int16 samples (``PromptError``)."""
        absolute = os.path.abspath(os.fspath(path))
        try:
            st = os.stat(absolute)
        except FileNotFoundError:
            raise PromptError(absolute, "no such file") from None
        except OSError as exc:
            raise PromptError(absolute, f"cannot stat: {exc.strerror or exc}") from None
        key = (absolute, st.st_mtime_ns, st.st_size)
        with self._lock:
            cached = self._entries.get(key)
            if cached is not None:
                self._entries.move_to_end(key)
                self._hits += 1
                return cached
            self._misses += 1
            samples = load_prompt(absolute)
            samples.flags.writeable = False
            stale = self._key_of_path.get(absolute)
            if stale is not None:
                self._drop(stale)
            if samples.nbytes <= self.max_bytes:
                self._entries[key] = samples
                self._key_of_path[absolute] = key
                self._bytes += samples.nbytes
                while self._bytes > self.max_bytes or len(self._entries) > self.max_entries:
                    oldest = next(iter(self._entries))
                    self._drop(oldest)
                    self._evictions += 1
            return samples

    def clear(self) -> None:
        """Forget every prompt (counters are kept)."""
        with self._lock:
            self._entries.clear()
            self._key_of_path.clear()
            self._bytes = 0

    def _drop(self, key: _Key) -> None:
        samples = self._entries.pop(key)
        self._bytes -= samples.nbytes
        if self._key_of_path.get(key[0]) == key:
            del self._key_of_path[key[0]]


# --------------------------------------------------------------------------------------------
# Playback
# --------------------------------------------------------------------------------------------


class Playback:
    """Consecutive 20 ms frames of a playlist of prompts, played back to back without gaps.

    ``read_frame()`` returns the next 160 samples (the last frame padded with silence) or
    ``None`` once the playlist is exhausted or ``stop()`` was called.  Frames lying inside
    one prompt are read-only views (no copy).  ``read_into(out)`` writes a frame into a row of
    a caller's batch instead.  ``position`` counts the samples played so far.

    Barge-in: when ``barge_in`` is true, ``on_digit()`` (the engine calls it when a DTMF digit
    arrives on the leg) stops the playback and returns True; otherwise it returns False.
    """

    def __init__(self, prompts: Samples | Sequence[Samples], *, barge_in: bool = False) -> None:
        items = [prompts] if isinstance(prompts, np.ndarray) else list(prompts)
        for item in items:
            if item.ndim != 1 or item.dtype != np.int16:
                raise ValueError("a playlist holds 1-D int16 sample arrays")
        self._items: list[Samples] = [item for item in items if len(item)]
        self.duration = sum(len(item) for item in self._items)
        """Total samples in the playlist."""
        self.barge_in = barge_in
        self.stopped_by_digit: str | None = None
        self._index = 0
        self._offset = 0
        self._position = 0
        self._stopped = False

    @property
    def position(self) -> int:
        """Samples played so far (including none of the final padding)."""
        return self._position

    @property
    def done(self) -> bool:
        return self._stopped or self._position >= self.duration

    def stop(self) -> None:
        self._stopped = True

    def on_digit(self, digit: str = "") -> bool:
        """A DTMF digit arrived: stop if barge-in is enabled; return whether playback stopped."""
        if not self.barge_in or self.done:
            return False
        self.stopped_by_digit = digit
        self.stop()
        return True

    def read_frame(self) -> Samples | None:
        if self.done:
            return None
        item = self._items[self._index]
        if self._offset + FRAME_SAMPLES <= len(item):
            frame = item[self._offset : self._offset + FRAME_SAMPLES]
            self._advance(FRAME_SAMPLES)
            return frame
        frame = np.zeros(FRAME_SAMPLES, dtype=np.int16)
        self._fill(frame)
        return frame

    def read_into(self, out: npt.NDArray[np.int16]) -> bool:
        """Write the next frame into ``out`` (160 int16); False (``out`` untouched) when done."""
        if self.done:
            return False
        out[:] = 0
        self._fill(out)
        return True

    def __iter__(self) -> Iterator[Samples]:
        while (frame := self.read_frame()) is not None:
            yield frame

    def _fill(self, out: npt.NDArray[np.int16]) -> None:
        filled = 0
        while filled < FRAME_SAMPLES and self._index < len(self._items):
            item = self._items[self._index]
            take = min(FRAME_SAMPLES - filled, len(item) - self._offset)
            out[filled : filled + take] = item[self._offset : self._offset + take]
            filled += take
            self._advance(take)

    def _advance(self, count: int) -> None:
        self._offset += count
        self._position += count
        if self._offset >= len(self._items[self._index]):
            self._index += 1
            self._offset = 0


# --------------------------------------------------------------------------------------------
# Music on hold
# --------------------------------------------------------------------------------------------


class MusicOnHold:
    """A folder of WAV files (``*.wav``, sorted by name) played one after another, forever.

    The tracks are read once, through ``cache``, when the object is built (``reload()`` scans
    again); a file that cannot be played is skipped with a warning in the log.  A folder with
    nothing playable gives silence (``empty`` is then true) rather than failing calls.

    Shared clock: the loop is one stream that started at ``epoch`` (monotonic seconds).  A
    caller put on hold at ``now`` joins it where it is, rounded down to a 20 ms frame, so every
    listener hears the same music at the same time (as from a radio) and, because all streams
    stay frame-aligned, an engine may encode one frame per tick for all of them.  At most
    ``max_files`` files are used.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        cache: PromptCache,
        *,
        epoch: float = 0.0,
        max_files: int = 256,
    ) -> None:
        self.folder = Path(folder)
        self.epoch = epoch
        self.max_files = max_files
        self._cache = cache
        self.tracks: tuple[Path, ...] = ()
        self._loop: Samples = _SILENCE
        self.reload()

    @property
    def empty(self) -> bool:
        return not self.tracks

    @property
    def loop_samples(self) -> int:
        """Length of one pass through all the tracks (one frame of silence when empty)."""
        return len(self._loop)

    def reload(self) -> None:
        """Scan the folder again and rebuild the loop (streams already open keep the old one)."""
        try:
            names = sorted(
                entry for entry in self.folder.iterdir() if entry.suffix.lower() == ".wav"
            )
        except OSError as exc:
            log.warning("music on hold: cannot list %s: %s", self.folder, exc)
            names = []
        tracks: list[Path] = []
        parts: list[Samples] = []
        for name in names[: self.max_files]:
            try:
                samples = self._cache.get(name)
            except PromptError as exc:
                log.warning("music on hold: skipping %s", exc)
                continue
            if len(samples):
                tracks.append(name)
                parts.append(samples)
        if not parts:
            log.warning("music on hold: nothing playable in %s, playing silence", self.folder)
            self.tracks, self._loop = (), _SILENCE
            return
        loop = np.concatenate(parts)
        loop.flags.writeable = False
        self.tracks, self._loop = tuple(tracks), loop

    def position_at(self, now: float) -> int:
        """Where the shared stream is at ``now``: a frame boundary within the loop."""
        frames = math.floor((now - self.epoch) * SAMPLE_RATE / FRAME_SAMPLES)
        return (frames * FRAME_SAMPLES) % len(self._loop)

    def stream(self, now: float) -> MohStream:
        """A caller goes on hold at ``now``: a never-ending frame source joining the stream."""
        return MohStream(self._loop, self.position_at(now))


class MohStream:
    """Frames of a music-on-hold loop from a start position, wrapping around without gaps."""

    def __init__(self, loop: Samples, start: int = 0) -> None:
        if not len(loop):
            raise ValueError("an empty loop")
        self._loop = loop
        self._offset = start % len(loop)
        self._stopped = False
        self.position = 0
        """Samples played since the caller joined."""

    @property
    def offset(self) -> int:
        """Where in the loop the next frame starts."""
        return self._offset

    @property
    def done(self) -> bool:
        return self._stopped

    def stop(self) -> None:
        self._stopped = True

    def read_frame(self) -> Samples | None:
        if self._stopped:
            return None
        end = self._offset + FRAME_SAMPLES
        if end <= len(self._loop):
            frame = self._loop[self._offset : end]
        else:
            index = np.arange(self._offset, end) % len(self._loop)
            frame = self._loop[index]
        self._offset = end % len(self._loop)
        self.position += FRAME_SAMPLES
        return frame

    def read_into(self, out: npt.NDArray[np.int16]) -> bool:
        frame = self.read_frame()
        if frame is None:
            return False
        out[:] = frame
        return True
