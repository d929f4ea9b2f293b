"""N-party audio mixing with minus-one: conferences and supervisor listen, whisper and barge.

This is the sample-level half of an RTP mixer (RFC 3550 §7.1, the "mixer" of RFC 3550 §2.3 and
the "Point to Multipoint Using Mixer" topology of RFC 7667 §3.6): every 20 ms tick it takes one
decoded frame per participant and gives each participant its own mix.  Packetisation, the new
SSRC and the CSRC list of that section belong to the RTP session, not to this module.

Who hears whom is a *hear matrix* ``W`` (N x N, listener by speaker) whose entry ``W[l, s]`` is
the linear gain with which listener ``l`` hears speaker ``s`` (``0`` means "does not hear").  The
diagonal is always zero: nobody hears themself (the "minus-one" or "mix-minus" rule, which keeps
a participant's own voice from coming back to it as echo).  A per-participant input gain scales
every contribution of that speaker.  One tick is then a single matrix product::

    out = clip(W_eff @ frames)          # (N x N) @ (N x 160) in float32, saturated to int16

``float32`` holds every sum of up to 512 full-scale int16 samples exactly, so with unity gains
the mix equals the integer sum before saturation.  The cost of a tick is one ``N x N x 160``
product plus ``N x 160`` element-wise work; there is no Python loop over samples.

Supervisor modes (:class:`SupervisorMode`), on a call between a caller and an agent:

* ``LISTEN``: the supervisor hears everyone, nobody hears the supervisor;
* ``WHISPER``: the supervisor hears everyone, only the agent hears the supervisor;
* ``BARGE``: everybody hears everybody (still minus-one).

Saturation (:class:`Limiter`): ``CLIP`` saturates at the int16 bounds, like any fixed-point mixer;
``SOFT`` is a memoryless soft knee: magnitudes up to ``SOFT_KNEE`` pass unchanged and larger
ones are compressed along ``knee + (max - knee) * tanh((|x| - knee) / (max - knee))``, which is
continuous with slope 1 at the knee and never reaches full scale, so loud overlaps distort less
audibly than hard clipping.  It has no attack or release: it only shapes peaks, it is not an AGC.

Batching across calls: :func:`mix_frames` takes a stack of hear matrices ``(K, N, N)`` and of
frames ``(K, N, F)`` and mixes all ``K`` conferences in one batched product;
:func:`mix_many` does so for ``K`` :class:`Mixer` objects of the same size.

Pure computation: no I/O, no clock.  A mixer holds at most ``max_participants`` participants
(16 by default, at most :data:`MAX_PARTICIPANTS_LIMIT`).
"""

from __future__ import annotations

import enum
import math
from collections.abc import Hashable, Mapping, Sequence
from typing import Final, Generic, TypeVar

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_PARTICIPANTS",
    "FRAME_SAMPLES",
    "MAX_GAIN_DB",
    "MAX_PARTICIPANTS_LIMIT",
    "SOFT_KNEE",
    "Limiter",
    "Mixer",
    "MixerUsageError",
    "SupervisorMode",
    "db_to_linear",
    "mix_frames",
    "mix_many",
    "stack_weights",
]

Samples = npt.NDArray[np.int16]
Weights = npt.NDArray[np.float32]

FRAME_SAMPLES: Final = 160
"""20 ms at 8 kHz, the default RTP packet time (RFC 3551 §4.5)."""
DEFAULT_MAX_PARTICIPANTS: Final = 16
MAX_PARTICIPANTS_LIMIT: Final = 256
"""Hard upper bound on ``max_participants``; keeps sums of int16 inputs exact in float32."""
MAX_GAIN_DB: Final = 24.0
"""Largest gain accepted anywhere (a guard against a typo turning a call into noise)."""

_INT16_MIN: Final = -32768
_INT16_MAX: Final = 32767
_HIGH: Final = np.float32(_INT16_MAX)
_LOW: Final = np.float32(_INT16_MIN)
SOFT_KNEE: Final = 24576
"""Magnitude (3/4 of full scale) below which the soft limiter leaves samples untouched."""

P = TypeVar("P", bound=Hashable)


class MixerUsageError(ValueError):
    """The caller misused the mixer API (unknown or duplicate participant, bad frame, ...)."""


class SupervisorMode(enum.Enum):
    """How a supervisor joins an agent's call."""

    LISTEN = "listen"
    """Hears the caller and the agent; heard by nobody."""
    WHISPER = "whisper"
    """Hears the caller and the agent; heard by the agent only."""
    BARGE = "barge"
    """Hears everybody and is heard by everybody."""


class Limiter(enum.Enum):
    """What happens to a mix beyond the int16 range."""

    CLIP = "clip"
    """Hard saturation at -32768 / 32767."""
    SOFT = "soft"
    """Memoryless soft knee above :data:`SOFT_KNEE`, then saturation (see module docstring)."""


def db_to_linear(gain_db: float) -> float:
    """Amplitude factor of a gain in dB (``-6`` -> about ``0.501``); ``-inf`` -> ``0``."""
    if math.isnan(gain_db) or gain_db > MAX_GAIN_DB:
        raise MixerUsageError(f"gain {gain_db} dB is not a number <= {MAX_GAIN_DB} dB")
    if gain_db == -math.inf:
        return 0.0
    return float(10.0 ** (gain_db / 20.0))


def _limit(mixed: npt.NDArray[np.float32], limiter: Limiter) -> Samples:
    """Round ``mixed`` in place, shape its peaks per ``limiter`` and convert to int16."""
    np.rint(mixed, out=mixed)
    if limiter is Limiter.SOFT and mixed.size:
        magnitude = np.abs(mixed)
        if float(magnitude.max()) > SOFT_KNEE:
            span = np.float32(_INT16_MAX - SOFT_KNEE)
            over = magnitude > SOFT_KNEE
            shaped = SOFT_KNEE + span * np.tanh((magnitude[over] - SOFT_KNEE) / span)
            mixed[over] = np.copysign(np.floor(shaped), mixed[over])
    np.minimum(mixed, _HIGH, out=mixed)
    np.maximum(mixed, _LOW, out=mixed)
    return mixed.astype(np.int16)


def mix_frames(
    weights: npt.NDArray[np.float32],
    frames: npt.NDArray[np.int16],
    limiter: Limiter = Limiter.CLIP,
) -> Samples:
    """Mix ``frames`` through hear matrices ``weights``: the kernel of every mixer.

    Shapes: ``weights`` ``(N, N)`` with ``frames`` ``(N, F)``, or a stack of ``K`` conferences,
    ``(K, N, N)`` with ``(K, N, F)``.  Row ``l`` of the result is ``sum_s weights[l, s] *
    frames[s]``, rounded and saturated per ``limiter``.  The diagonal of ``weights`` is not
    checked here (a :class:`Mixer` keeps it zero).
    """
    if frames.dtype != np.int16:
        raise MixerUsageError(f"frames must be int16, not {frames.dtype}")
    if weights.ndim not in (2, 3) or frames.ndim != weights.ndim:
        raise MixerUsageError(f"shapes {weights.shape} and {frames.shape} do not mix")
    n = weights.shape[-1]
    if weights.shape[-2] != n or frames.shape[-2] != n or weights.shape[:-2] != frames.shape[:-2]:
        raise MixerUsageError(f"shapes {weights.shape} and {frames.shape} do not mix")
    mixed = np.matmul(weights.astype(np.float32, copy=False), frames.astype(np.float32))
    return _limit(mixed, limiter)


class Mixer(Generic[P]):
    """The mix of one conference or call: participants, who hears whom, gains.

    Participant ids are any hashable values chosen by the caller (leg ids, for instance); the
    order of :attr:`participants` (insertion order) is the row order of the array API.  A new
    participant hears and is heard by everyone by default.  Changes (``add``, ``remove``,
    ``set_hears``, ``set_gain``, ``set_mode``) may happen between any two ticks.
    """

    __slots__ = ("_eff", "_gains", "_index", "_limiter", "_links", "_max", "_pids", "frame_samples")

    def __init__(
        self,
        *,
        max_participants: int = DEFAULT_MAX_PARTICIPANTS,
        frame_samples: int = FRAME_SAMPLES,
        limiter: Limiter = Limiter.CLIP,
    ) -> None:
        if not 1 <= max_participants <= MAX_PARTICIPANTS_LIMIT:
            raise MixerUsageError(
                f"max_participants {max_participants} is outside 1..{MAX_PARTICIPANTS_LIMIT}"
            )
        if frame_samples <= 0:
            raise MixerUsageError(f"frame_samples {frame_samples} must be positive")
        self._max = max_participants
        self.frame_samples = frame_samples
        self._limiter = limiter
        self._pids: list[P] = []
        self._index: dict[P, int] = {}
        self._links: Weights = np.zeros((0, 0), dtype=np.float32)
        self._gains: Weights = np.zeros(0, dtype=np.float32)
        self._eff: Weights = np.zeros((0, 0), dtype=np.float32)

    # -- membership ---------------------------------------------------------------------------

    @property
    def participants(self) -> tuple[P, ...]:
        """Participant ids in row order."""
        return tuple(self._pids)

    @property
    def max_participants(self) -> int:
        return self._max

    @property
    def limiter(self) -> Limiter:
        return self._limiter

    def __len__(self) -> int:
        return len(self._pids)

    def __contains__(self, pid: object) -> bool:
        return pid in self._index

    def add(self, pid: P, *, hears_all: bool = True, heard_by_all: bool = True) -> None:
        """Add ``pid``; by default it hears everyone and everyone hears it (minus-one).

        Raises :class:`MixerUsageError` if ``pid`` is already present or the mixer is full.
        """
        if pid in self._index:
            raise MixerUsageError(f"participant {pid!r} is already in the mix")
        if len(self._pids) >= self._max:
            raise MixerUsageError(f"the mix is full ({self._max} participants)")
        n = len(self._pids)
        links = np.zeros((n + 1, n + 1), dtype=np.float32)
        links[:n, :n] = self._links
        if hears_all:
            links[n, :n] = 1.0
        if heard_by_all:
            links[:n, n] = 1.0
        self._links = links
        self._gains = np.append(self._gains, np.float32(1.0))
        self._index[pid] = n
        self._pids.append(pid)
        self._refresh()

    def remove(self, pid: P) -> None:
        """Remove ``pid``; the others keep their relations with each other."""
        i = self._slot(pid)
        self._links = np.delete(np.delete(self._links, i, axis=0), i, axis=1)
        self._gains = np.delete(self._gains, i)
        del self._pids[i]
        self._index = {p: k for k, p in enumerate(self._pids)}
        self._refresh()

    # -- who hears whom -----------------------------------------------------------------------

    def set_hears(self, listener: P, speaker: P, hears: bool, *, gain_db: float = 0.0) -> None:
        """Let ``listener`` hear ``speaker`` (at ``gain_db``), or not.

        A participant cannot hear itself: ``set_hears(p, p, True)`` raises
        :class:`MixerUsageError` (``False`` is accepted and changes nothing).
        """
        li, si = self._slot(listener), self._slot(speaker)
        if li == si:
            if hears:
                raise MixerUsageError(f"participant {listener!r} cannot hear itself")
            return
        self._links[li, si] = db_to_linear(gain_db) if hears else 0.0
        self._refresh()

    def hears(self, listener: P, speaker: P) -> bool:
        """Whether ``listener`` hears ``speaker`` at all (with a non-zero gain)."""
        li, si = self._slot(listener), self._slot(speaker)
        return bool(self._eff[li, si] != 0.0)

    def set_gain(self, pid: P, gain_db: float) -> None:
        """Scale everything ``pid`` says, for every listener (``-inf`` mutes it)."""
        self._gains[self._slot(pid)] = db_to_linear(gain_db)
        self._refresh()

    def set_mode(
        self,
        supervisor: P,
        mode: SupervisorMode,
        agent: P,
        *,
        whisper_gain_db: float = 0.0,
    ) -> None:
        """Put ``supervisor`` in ``mode`` on ``agent``'s call.

        The supervisor hears every other participant.  ``LISTEN``: nobody hears it;
        ``WHISPER``: only ``agent`` hears it, at ``whisper_gain_db``; ``BARGE``: everyone hears
        it.  Relations among the other participants are left as they are.
        """
        si, ai = self._slot(supervisor), self._slot(agent)
        if si == ai:
            raise MixerUsageError("the supervisor and the agent must be different participants")
        whisper = db_to_linear(whisper_gain_db)
        links = self._links
        links[si, :] = 1.0
        if mode is SupervisorMode.LISTEN:
            links[:, si] = 0.0
        elif mode is SupervisorMode.WHISPER:
            links[:, si] = 0.0
            links[ai, si] = whisper
        else:
            links[:, si] = 1.0
        self._refresh()

    def hear_matrix(self) -> Weights:
        """The effective matrix (listener x speaker, gains included), as a read-only view."""
        view = self._eff.view()
        view.flags.writeable = False
        return view

    # -- per tick -----------------------------------------------------------------------------

    def mix(self, frames: Mapping[P, Samples | None]) -> dict[P, Samples]:
        """One tick: each participant's mix, from one int16 frame per speaker.

        A participant missing from ``frames`` (or mapped to ``None``) is silent this tick.  Every
        participant gets an output, silence if it hears nobody.  The result arrays are new
        each tick (rows of one fresh array).  Raises :class:`MixerUsageError` for an unknown id
        or a frame that is not int16 of shape ``(frame_samples,)``.
        """
        n = len(self._pids)
        stacked = np.zeros((n, self.frame_samples), dtype=np.int16)
        for pid, frame in frames.items():
            i = self._index.get(pid)
            if i is None:
                raise MixerUsageError(f"frame for unknown participant {pid!r}")
            if frame is None:
                continue
            if frame.dtype != np.int16 or frame.shape != (self.frame_samples,):
                raise MixerUsageError(
                    f"frame of {pid!r} is {frame.dtype}{frame.shape}, "
                    f"expected int16({self.frame_samples},)"
                )
            stacked[i] = frame
        out = mix_frames(self._eff, stacked, self._limiter)
        return {pid: out[i] for i, pid in enumerate(self._pids)}

    def mix_array(self, frames: Samples) -> Samples:
        """One tick on an ``(N, frame_samples)`` int16 array in :attr:`participants` order."""
        if frames.shape != (len(self._pids), self.frame_samples):
            raise MixerUsageError(
                f"frames of shape {frames.shape}, expected {(len(self._pids), self.frame_samples)}"
            )
        return mix_frames(self._eff, frames, self._limiter)

    # -- internals ----------------------------------------------------------------------------

    def _slot(self, pid: P) -> int:
        try:
            return self._index[pid]
        except KeyError:
            raise MixerUsageError(f"participant {pid!r} is not in the mix") from None

    def _refresh(self) -> None:
        np.fill_diagonal(self._links, 0.0)
        self._eff = self._links * self._gains[np.newaxis, :]


def stack_weights(mixers: Sequence[Mixer[P]]) -> Weights:
    """The hear matrices of ``mixers`` (all of the same size) as one ``(K, N, N)`` array."""
    sizes = {len(m) for m in mixers}
    if len(sizes) > 1:
        raise MixerUsageError(f"mixers of different sizes {sorted(sizes)} cannot be stacked")
    n = sizes.pop() if sizes else 0
    return np.stack([m._eff for m in mixers]) if mixers else np.zeros((0, n, n), np.float32)


def mix_many(
    mixers: Sequence[Mixer[P]],
    frames: Samples,
    limiter: Limiter = Limiter.CLIP,
) -> Samples:
    """One tick for ``K`` conferences of the same size ``N`` at once.

    ``frames`` is ``(K, N, F)`` int16, conference ``k``'s rows in ``mixers[k].participants``
    order; the result has the same shape and layout.  Callers mixing the same set of
    conferences every tick can keep :func:`stack_weights` and call :func:`mix_frames` directly,
    rebuilding the stack only when a mixer changes.
    """
    weights = stack_weights(mixers)
    if frames.shape[:-1] != weights.shape[:-1]:
        raise MixerUsageError(f"frames of shape {frames.shape} for weights {weights.shape}")
    return mix_frames(weights, frames, limiter)
