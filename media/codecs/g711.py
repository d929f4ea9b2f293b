"""G.711 PCM of voice frequencies: mu-law (PCMU) and A-law (PCMA), table-driven with NumPy.

ITU-T Recommendation G.711 (11/88) defines both laws as segmented quantizers: the sign bit, a
3-bit segment number and a 4-bit step within the segment.

* mu-law (Table 2/G.711) works on 14-bit magnitudes; eight segments of 16 steps whose sizes
  double from 2 to 256, segment end points 31, 95, 223, 479, 991, 2015, 4063, 8159.  In 16-bit
  linear terms this is the classic "bias 0x84, clip 32635" formulation: adding the bias 132
  (33 in 14-bit units) to the magnitude makes every segment start on a power of two.  The
  character signal is the bitwise complement of sign|segment|step (positive zero is 0xFF).
* A-law (Table 1/G.711) works on 13-bit magnitudes; the first two segments share the step size
  2 (together one linear segment), then steps of 4 to 128, end points 32, 64, ..., 4096.  The
  character signal has its even bits inverted (XOR 0x55, §2 "even bit inversion").

For both laws a positive sample carries the sign bit 1.  Decoder outputs are the mid-points of
the decision intervals; they are scaled to 16-bit linear (x4 for mu-law, x8 for A-law).  The
magnitude of a negative sample is its one's complement (``~x``), which makes both laws
symmetric about -1/2 and the encoders bit-exact with the ITU-T G.191 reference coder
(``ulaw_compress`` / ``alaw_compress``); a sample exactly on a decision value codes to the
interval above it.

Tables, all built once at import:

* decode: 256 int16 entries per law, indexed by the code word;
* encode: 65536 uint8 entries per law, indexed by the int16 sample viewed as uint16;
* transcoding: 256-entry byte-to-byte maps mu-law -> A-law and back (decode then encode), so that
  a PCMU <-> PCMA relay never goes through linear samples.  These are not the conversion
  Tables 3 and 4 of G.711: there, A -> mu -> A is transparent; here 16 code words of each law
  move by one step on such a round trip.

Every function takes whole arrays of any shape, so one call can code the 20 ms frames of many
calls at once (a ``(calls, 160)`` batch).  RTP payload types 0 (PCMU) and 8 (PCMA) are the
static assignments of RFC 3551 §6, Table 4.
"""

from __future__ import annotations

from typing import Final, TypeVar, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_DECODE_TABLE",
    "ALAW_ENCODE_TABLE",
    "ALAW_TO_ULAW_TABLE",
    "ULAW_DECODE_TABLE",
    "ULAW_ENCODE_TABLE",
    "ULAW_TO_ALAW_TABLE",
    "alaw_decode",
    "alaw_encode",
    "alaw_to_ulaw",
    "ulaw_decode",
    "ulaw_encode",
    "ulaw_to_alaw",
]

Samples = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]
Encoded = bytes | bytearray | memoryview | Codes

ULAW_BIAS: Final = 0x84
"""132: the mu-law bias in 16-bit units (33 in the 14-bit units of Table 2/G.711)."""
ULAW_CLIP: Final = 32635
"""Largest magnitude that stays below the top of segment 8 once biased (32635 + 132 < 32768)."""
ALAW_EVEN_BITS: Final = 0x55
"""A-law character signals have the even bits inverted (G.711 §2, Table 1 note)."""


def _ulaw_decode_table() -> Samples:
    """Decoder outputs for the 256 mu-law code words (Table 2/G.711, scaled by 4)."""
    code = np.arange(256, dtype=np.int32) ^ 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + ULAW_BIAS) << exponent) - ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def _ulaw_encode_table() -> Codes:
    """Code word for every int16 sample, indexed by the sample's uint16 bit pattern."""
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm)  # the int16 value behind each index
    negative = pcm < 0
    # One's complement for negative samples, as in the G.191 reference coder: the negative
    # decision values then mirror the positive ones about -1/2 (14-bit -1 codes as -0).
    magnitude = np.minimum(np.where(negative, ~pcm, pcm), ULAW_CLIP) + ULAW_BIAS  # 132..32767
    # Segment = position of the highest set bit among bits 7..14, i.e. floor(log2(m)) - 7.
    exponent = np.zeros_like(magnitude)
    for bit in range(8, 15):
        exponent += magnitude >= (1 << bit)
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    sign = np.where(negative, 0x80, 0x00)
    return np.asarray(~(sign | (exponent << 4) | mantissa) & 0xFF, dtype=np.uint8)


def _alaw_decode_table() -> Samples:
    """Decoder outputs for the 256 A-law code words (Table 1/G.711, scaled by 8)."""
    code = np.arange(256, dtype=np.int32) ^ ALAW_EVEN_BITS
    segment = (code >> 4) & 0x07
    step = code & 0x0F
    # Segment 0: outputs 1, 3, ..., 31 (13-bit); segment s >= 1: (33 + 2*step) << (s - 1).
    linear = np.where(
        segment == 0,
        (step << 4) + 8,
        ((step << 4) + 0x108) << np.maximum(segment - 1, 0),
    )
    return np.where(code & 0x80, linear, -linear).astype(np.int16)


def _alaw_encode_table() -> Codes:
    """Code word for every int16 sample, indexed by the sample's uint16 bit pattern."""
    pcm = np.arange(65536, dtype=np.int32)
    pcm = np.where(pcm >= 32768, pcm - 65536, pcm)
    negative = pcm < 0
    # 13-bit magnitude; the one's complement for negative samples makes the law symmetric about
    # -1/2 so that every code word, including the smallest, has a non-zero decoder output.
    magnitude = np.where(negative, ~pcm, pcm) >> 3  # 0 .. 4095
    segment = np.zeros_like(magnitude)
    for bit in range(5, 12):
        segment += magnitude >= (1 << bit)
    step = (magnitude >> np.maximum(segment, 1)) & 0x0F
    sign = np.where(negative, 0x00, 0x80)
    return np.asarray((sign | (segment << 4) | step) ^ ALAW_EVEN_BITS, dtype=np.uint8)


ULAW_DECODE_TABLE: Final[Samples] = _ulaw_decode_table()
ULAW_ENCODE_TABLE: Final[Codes] = _ulaw_encode_table()
ALAW_DECODE_TABLE: Final[Samples] = _alaw_decode_table()
ALAW_ENCODE_TABLE: Final[Codes] = _alaw_encode_table()
ULAW_TO_ALAW_TABLE: Final[Codes] = ALAW_ENCODE_TABLE[ULAW_DECODE_TABLE.view(np.uint16)]
ALAW_TO_ULAW_TABLE: Final[Codes] = ULAW_ENCODE_TABLE[ALAW_DECODE_TABLE.view(np.uint16)]
for _table in (
    ULAW_DECODE_TABLE,
    ULAW_ENCODE_TABLE,
    ALAW_DECODE_TABLE,
    ALAW_ENCODE_TABLE,
    ULAW_TO_ALAW_TABLE,
    ALAW_TO_ULAW_TABLE,
):
    _table.flags.writeable = False
del _table

_ULAW_TO_ALAW_BYTES: Final = ULAW_TO_ALAW_TABLE.tobytes()
_ALAW_TO_ULAW_BYTES: Final = ALAW_TO_ULAW_TABLE.tobytes()


def _codes(data: Encoded) -> Codes:
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise TypeError(f"G.711 code words must be uint8, not {data.dtype}")
        return data
    return np.frombuffer(data, dtype=np.uint8)


_TAKE_FROM: Final = 1024
"""From this many elements on, ``np.take`` beats fancy indexing (about 2.5x on a batch)."""

_T = TypeVar("_T", bound=np.generic)


def _lookup(
    table: npt.NDArray[_T], index: npt.NDArray[np.uint8] | npt.NDArray[np.uint16]
) -> npt.NDArray[_T]:
    if index.size < _TAKE_FROM:
        return table[index]
    return np.take(table, index)


def _sample_index(samples: npt.ArrayLike) -> npt.NDArray[np.uint16]:
    if isinstance(samples, np.ndarray) and samples.dtype == np.int16 and samples.flags.c_contiguous:
        return samples.view(np.uint16)
    array = np.asarray(samples)
    if array.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 samples, not {array.dtype}")
    return np.ascontiguousarray(array).view(np.uint16)


def ulaw_decode(data: Encoded) -> Samples:
    """Decode mu-law code words (bytes, or a uint8 array of any shape) to int16 samples."""
    return _lookup(ULAW_DECODE_TABLE, _codes(data))


def alaw_decode(data: Encoded) -> Samples:
    """Decode A-law code words (bytes, or a uint8 array of any shape) to int16 samples."""
    return _lookup(ALAW_DECODE_TABLE, _codes(data))


def ulaw_encode(samples: npt.ArrayLike) -> Codes:
    """Encode int16 samples of any shape to mu-law code words of the same shape.

    ``ulaw_encode(frame).tobytes()`` is the PCMU payload of a frame.
    """
    return _lookup(ULAW_ENCODE_TABLE, _sample_index(samples))


def alaw_encode(samples: npt.ArrayLike) -> Codes:
    """Encode int16 samples of any shape to A-law code words of the same shape.

    ``alaw_encode(frame).tobytes()`` is the PCMA payload of a frame.
    """
    return _lookup(ALAW_ENCODE_TABLE, _sample_index(samples))


@overload
def ulaw_to_alaw(data: bytes | bytearray | memoryview) -> bytes: ...
@overload
def ulaw_to_alaw(data: Codes) -> Codes: ...
def ulaw_to_alaw(data: Encoded) -> bytes | Codes:
    """Transcode mu-law to A-law code by code: bytes give bytes, a uint8 array an array."""
    if isinstance(data, np.ndarray):
        return _lookup(ULAW_TO_ALAW_TABLE, _codes(data))
    return bytes(data).translate(_ULAW_TO_ALAW_BYTES)


@overload
def alaw_to_ulaw(data: bytes | bytearray | memoryview) -> bytes: ...
@overload
def alaw_to_ulaw(data: Codes) -> Codes: ...
def alaw_to_ulaw(data: Encoded) -> bytes | Codes:
    """Transcode A-law to mu-law code by code: bytes give bytes, a uint8 array an array."""
    if isinstance(data, np.ndarray):
        return _lookup(ALAW_TO_ULAW_TABLE, _codes(data))
    return bytes(data).translate(_ALAW_TO_ULAW_BYTES)
