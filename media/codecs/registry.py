"""Codec registry: the audio codecs the media engine speaks, by RTP payload type and SDP name.

Static payload types follow RFC 3551 §6 (Table 4): 0 is PCMU and 8 is PCMA, both 8000 Hz, one
channel, one octet per sample (§4.5.14).  SDP names them in ``a=rtpmap:<pt> <name>/<clock>``
(RFC 4566 §6), where the encoding name is case-insensitive (RFC 4855 §3); a static payload type
may appear in an ``m=`` line without an rtpmap at all (RFC 3264 §5.1).  The default packet time
is 20 ms (RFC 3551 §4.5).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

import numpy as np
import numpy.typing as npt

from media.codecs.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

__all__ = [
    "CODECS",
    "DEFAULT_PTIME_MS",
    "PCMA",
    "PCMU",
    "Codec",
    "by_name",
    "by_payload_type",
]

DEFAULT_PTIME_MS: Final = 20

Samples = npt.NDArray[np.int16]
Codes = npt.NDArray[np.uint8]
Encoder = Callable[[npt.ArrayLike], Codes]
Decoder = Callable[[bytes | bytearray | memoryview | Codes], Samples]


@dataclass(frozen=True, slots=True)
class Codec:
    """An audio codec as SDP and RTP know it (RFC 3551 §6, RFC 4566 §6 ``a=rtpmap``).

    ``encode`` and ``decode`` work on arrays of any shape: a single 20 ms frame or a
    ``(calls, samples)`` batch.  Both G.711 laws code one sample per octet.
    """

    name: str
    payload_type: int
    clock_rate: int
    channels: int
    encode: Encoder
    decode: Decoder
    bytes_per_sample: int = 1

    def samples_per_frame(self, ptime_ms: int = DEFAULT_PTIME_MS) -> int:
        """Samples (per channel) in one packet of ``ptime_ms`` milliseconds: 160 for 20 ms."""
        samples, remainder = divmod(self.clock_rate * ptime_ms, 1000)
        if ptime_ms <= 0 or remainder:
            raise ValueError(f"ptime {ptime_ms} ms is not a whole number of samples")
        return samples

    def payload_size(self, ptime_ms: int = DEFAULT_PTIME_MS) -> int:
        """Octets of RTP payload for one packet of ``ptime_ms`` milliseconds."""
        return self.samples_per_frame(ptime_ms) * self.channels * self.bytes_per_sample

    @property
    def rtpmap(self) -> str:
        """The ``a=rtpmap`` value after the payload type, e.g. ``PCMU/8000``."""
        if self.channels == 1:
            return f"{self.name}/{self.clock_rate}"
        return f"{self.name}/{self.clock_rate}/{self.channels}"

    def encode_payload(self, samples: npt.ArrayLike) -> bytes:
        """Encode one frame of int16 samples to an RTP payload."""
        return self.encode(samples).tobytes()


PCMU: Final = Codec(
    name="PCMU",
    payload_type=0,
    clock_rate=8000,
    channels=1,
    encode=ulaw_encode,
    decode=ulaw_decode,
)
PCMA: Final = Codec(
    name="PCMA",
    payload_type=8,
    clock_rate=8000,
    channels=1,
    encode=alaw_encode,
    decode=alaw_decode,
)

CODECS: Final = (PCMU, PCMA)
"""Every codec the engine supports, in the default order of preference for an SDP offer."""

_BY_PAYLOAD_TYPE: Final = MappingProxyType({codec.payload_type: codec for codec in CODECS})
_BY_NAME: Final = MappingProxyType(
    {(codec.name.upper(), codec.clock_rate, codec.channels): codec for codec in CODECS}
)


def by_payload_type(payload_type: int) -> Codec | None:
    """The codec with this static payload type (RFC 3551 §6), or None.

    Dynamic payload types (96-127) carry no meaning without an rtpmap: use ``by_name``.
    """
    return _BY_PAYLOAD_TYPE.get(payload_type)


def by_name(name: str, clock_rate: int = 8000, channels: int = 1) -> Codec | None:
    """The codec an SDP ``a=rtpmap`` names, case-insensitively (RFC 4855 §3), or None.

    ``name`` is the encoding name alone (``"pcmu"``) or the whole rtpmap encoding
    ``"PCMU/8000"`` / ``"PCMU/8000/1"``, whose clock rate and channels then override the
    keyword arguments.  A clock rate or channel count the codec does not have is no match.
    """
    parts = name.strip().split("/")
    if not 1 <= len(parts) <= 3 or not parts[0]:
        return None
    try:
        if len(parts) >= 2:
            clock_rate = int(parts[1])
        if len(parts) == 3:
            channels = int(parts[2])
    except ValueError:
        return None
    return _BY_NAME.get((parts[0].upper(), clock_rate, channels))
