"""What one leg of a call says, kept as audio: a voicemail message, a recorded greeting.

Packets are decoded by their payload type (G.711, RFC 3551 §4.5.14) and placed by their RTP
timestamp (RFC 3550 §5.1): a lost packet leaves 20 ms of silence where it was, a late one
lands where it belongs, a duplicate overwrites itself. A new SSRC (the phone restarted its
stream) continues where the old one ended. Other payload types (telephone-event, comfort
noise) are not audio and are skipped. The buffer is allocated once, for the longest message.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from media.codecs.registry import by_payload_type
from media.rtp.packet import payload_bounds

__all__ = ["LegCapture"]

_HALF = 1 << 31


class LegCapture:
    """Audio of one leg, 8 kHz int16, at most ``max_samples`` of it."""

    def __init__(self, max_samples: int) -> None:
        if max_samples <= 0:
            raise ValueError("a capture needs room for at least one sample")
        self._buffer: npt.NDArray[np.int16] = np.zeros(max_samples, dtype=np.int16)
        self._ssrc: bytes | None = None
        self._first_ts = 0
        self._base = 0  # where the current SSRC's first sample goes
        self._end = 0  # one past the last sample written
        self.packets = 0
        self.full = False  # the longest message was reached
        self.stopped = False

    def feed(self, packet: bytes | bytearray) -> None:
        """One RTP packet from the leg."""
        if self.stopped or len(packet) < 12 or packet[0] >> 6 != 2:
            return
        codec = by_payload_type(packet[1] & 0x7F)
        if codec is None or codec.clock_rate != 8000 or codec.channels != 1:
            return
        ssrc = bytes(packet[8:12])
        ts = int.from_bytes(packet[4:8], "big")
        if ssrc != self._ssrc:
            self._ssrc = ssrc
            self._first_ts = ts
            self._base = self._end
        delta = (ts - self._first_ts) & 0xFFFFFFFF
        if delta >= _HALF:
            return  # from before the capture started
        start, end = payload_bounds(packet)
        samples = codec.decode(packet[start:end])
        position = self._base + delta
        room = len(self._buffer) - position
        if room <= 0:
            self.full = True
            return
        if len(samples) >= room:
            samples = samples[:room]
            self.full = True
        self._buffer[position : position + len(samples)] = samples
        self._end = max(self._end, position + len(samples))
        self.packets += 1

    def stop(self) -> None:
        """Take no more packets."""
        self.stopped = True

    @property
    def seconds(self) -> float:
        return self._end / 8000

    def samples(self) -> npt.NDArray[np.int16]:
        """The audio so far (a copy)."""
        return self._buffer[: self._end].copy()
