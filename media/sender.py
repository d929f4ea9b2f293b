"""Audio the switch itself sends to one leg: a prompt, music on hold, a mix.

One 20 ms frame per media clock tick, encoded in the leg's G.711 law and numbered by the
rewriter that also numbers what is relayed to that leg, so the phone sees one continuous
stream from the switch's SSRC whatever its origin (RFC 3550 §8.2; the first generated packet
after relayed ones carries the marker bit, §5.1).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from media.codecs.registry import PCMU, by_payload_type
from media.rtp.packet import RtpPacket
from media.rtp.rewrite import StreamRewriter
from media.transport import RtpEndpoint

__all__ = ["FRAME", "FrameQueue", "LegSender"]

FRAME = 160  # samples of one 20 ms frame at 8 kHz

Samples = npt.NDArray[np.int16]


class LegSender:
    """Frames from ``source`` (None: nothing to send this tick) to ``endpoint``."""

    __slots__ = ("encode", "endpoint", "payload_type", "rewriter", "source")

    def __init__(
        self,
        endpoint: RtpEndpoint,
        rewriter: StreamRewriter,
        payload_type: int,
        source: Callable[[], Samples | None],
    ) -> None:
        self.endpoint = endpoint
        self.rewriter = rewriter
        self.payload_type = PCMU.payload_type
        self.encode = PCMU.encode
        self.set_payload_type(payload_type)
        self.source = source

    def set_payload_type(self, payload_type: int) -> None:
        """Send in this G.711 law from now on (PCMU for anything else)."""
        codec = by_payload_type(payload_type) or PCMU
        self.payload_type = codec.payload_type
        self.encode = codec.encode

    def send(self, frame: Samples) -> None:
        """Encode one frame and send it as the switch's next packet toward the leg."""
        seq, ts, marker = self.rewriter.next_generated()
        packet = RtpPacket(
            self.payload_type,
            seq,
            ts,
            self.rewriter.ssrc,
            marker=marker,
            payload=self.encode(frame).tobytes(),
        )
        self.endpoint.send_rtp(bytes(packet))

    def tick(self, tick: int, deadline: float) -> None:
        frame = self.source()
        if frame is not None:
            self.send(frame)


class FrameQueue:
    """Audio waiting to be sent, cut into 20 ms frames (the last one padded with silence)."""

    __slots__ = ("frames",)

    def __init__(self) -> None:
        self.frames: deque[Samples] = deque()

    def __len__(self) -> int:
        return len(self.frames)

    def put(self, samples: Samples) -> None:
        for start in range(0, len(samples), FRAME):
            frame = samples[start : start + FRAME]
            if len(frame) < FRAME:
                frame = np.concatenate([frame, np.zeros(FRAME - len(frame), dtype=np.int16)])
            self.frames.append(frame.astype(np.int16, copy=False))

    def next(self) -> Samples | None:
        return self.frames.popleft() if self.frames else None
