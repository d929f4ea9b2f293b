"""LegCapture: G.711 RTP packets placed by timestamp (RFC 3550 §5.1) into one leg's audio.

Packets are built with :class:`RtpPacket` and encoded with the codec registry (PCMU payload
type 0, PCMA 8, RFC 3551 §6). G.711 is lossy, so the expected audio is what the codec decodes
from what it encoded.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.capture import LegCapture
from media.codecs.registry import Codec, by_payload_type
from media.rtp.packet import HeaderExtension, RtpPacket

FRAME = 160  # 20 ms at 8 kHz
SSRC = 0x1234ABCD
TS0 = 90_000

Samples = npt.NDArray[np.int16]


def frames(count: int, seed: int = 1) -> list[Samples]:
    """``count`` 20 ms frames of distinct, never-silent audio."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        frame = rng.integers(2000, 20000, FRAME) * rng.choice([-1, 1], FRAME)
        out.append(frame.astype(np.int16))
    return out


def packet(
    codec: Codec,
    samples: Samples,
    index: int,
    *,
    ssrc: int = SSRC,
    ts0: int = TS0,
    payload_type: int | None = None,
    **extra: object,
) -> bytes:
    """Frame ``index`` of a stream that starts at timestamp ``ts0``."""
    return bytes(
        RtpPacket(
            payload_type=codec.payload_type if payload_type is None else payload_type,
            sequence_number=(100 + index) & 0xFFFF,
            timestamp=(ts0 + index * FRAME) & 0xFFFFFFFF,
            ssrc=ssrc,
            payload=codec.encode_payload(samples),
            **extra,  # type: ignore[arg-type]
        )
    )


def heard(codec: Codec, samples: Samples) -> Samples:
    """What a listener gets back from ``samples`` sent with ``codec``."""
    return codec.decode(codec.encode(samples))


@pytest.fixture(params=[0, 8], ids=["PCMU", "PCMA"])
def codec(request: pytest.FixtureRequest) -> Codec:
    found = by_payload_type(request.param)
    assert found is not None
    return found


def test_samples_are_placed_by_timestamp(codec: Codec) -> None:
    audio = frames(3)
    capture = LegCapture(8000)
    for i, frame in enumerate(audio):
        capture.feed(packet(codec, frame, i))
    got = capture.samples()
    assert got.dtype == np.int16
    assert np.array_equal(got, np.concatenate([heard(codec, f) for f in audio]))
    assert capture.packets == 3
    assert capture.seconds == pytest.approx(0.06)
    assert not capture.full and not capture.stopped


def test_a_lost_packet_leaves_silence(codec: Codec) -> None:
    audio = frames(4)
    capture = LegCapture(8000)
    for i in (0, 1, 3):
        capture.feed(packet(codec, audio[i], i))
    got = capture.samples()
    assert len(got) == 4 * FRAME
    assert np.array_equal(got[FRAME : 2 * FRAME], heard(codec, audio[1]))
    assert not got[2 * FRAME : 3 * FRAME].any()
    assert np.array_equal(got[3 * FRAME :], heard(codec, audio[3]))


def test_a_reordered_packet_lands_in_place(codec: Codec) -> None:
    audio = frames(4)
    capture = LegCapture(8000)
    for i in (0, 2, 3, 1):
        capture.feed(packet(codec, audio[i], i))
    assert np.array_equal(capture.samples(), np.concatenate([heard(codec, f) for f in audio]))


def test_a_duplicate_is_harmless(codec: Codec) -> None:
    audio = frames(3)
    capture = LegCapture(8000)
    for i in (0, 1, 1, 2, 0):
        capture.feed(packet(codec, audio[i], i))
    assert np.array_equal(capture.samples(), np.concatenate([heard(codec, f) for f in audio]))
    assert capture.seconds == pytest.approx(0.06)


def test_an_ssrc_change_continues_at_the_end(codec: Codec) -> None:
    first, second = frames(2, seed=1), frames(2, seed=2)
    capture = LegCapture(8000)
    for i, frame in enumerate(first):
        capture.feed(packet(codec, frame, i))
    # the phone restarted its stream: new SSRC, a timestamp from nowhere near the old one
    for i, frame in enumerate(second):
        capture.feed(packet(codec, frame, i, ssrc=0x0BADCAFE, ts0=7))
    expected = [heard(codec, f) for f in (*first, *second)]
    assert np.array_equal(capture.samples(), np.concatenate(expected))


def test_telephone_events_and_unknown_payload_types_are_not_audio(codec: Codec) -> None:
    audio = frames(2)
    capture = LegCapture(8000)
    # a DTMF event (RFC 4733, dynamic payload type 101) before the audio, with an earlier
    # timestamp: it must not become the start of the capture
    event = bytes(RtpPacket(101, 99, TS0 - 800, SSRC, marker=True, payload=b"\x05\x0a\x00\xa0"))
    capture.feed(event)
    capture.feed(packet(codec, audio[0], 0))
    capture.feed(bytes(RtpPacket(101, 101, TS0 + FRAME, SSRC, payload=b"\x05\x0a\x01\x40")))
    capture.feed(packet(codec, audio[1], 1, payload_type=13))  # comfort noise: skipped
    capture.feed(packet(codec, audio[1], 1, payload_type=18))  # G.729: not captured
    assert np.array_equal(capture.samples(), heard(codec, audio[0]))
    assert capture.packets == 1


def test_garbage_is_ignored(codec: Codec) -> None:
    capture = LegCapture(8000)
    capture.feed(b"")
    capture.feed(b"\x80\x00\x00")  # shorter than the fixed header
    capture.feed(b"\x40" + packet(codec, frames(1)[0], 0)[1:])  # RTP version 1
    assert capture.packets == 0 and len(capture.samples()) == 0


def test_full_at_max_samples(codec: Codec) -> None:
    audio = frames(4)
    capture = LegCapture(400)  # two and a half frames
    for i in range(2):
        capture.feed(packet(codec, audio[i], i))
    assert not capture.full
    capture.feed(packet(codec, audio[2], 2))
    assert capture.full
    expected = np.concatenate([heard(codec, f) for f in audio[:3]])[:400]
    assert np.array_equal(capture.samples(), expected)
    capture.feed(packet(codec, audio[3], 3))  # past the end: nothing changes
    assert np.array_equal(capture.samples(), expected)
    assert capture.seconds == pytest.approx(0.05)


def test_a_packet_beyond_the_end_marks_full(codec: Codec) -> None:
    audio = frames(1)
    capture = LegCapture(FRAME * 3)
    capture.feed(packet(codec, audio[0], 0))
    capture.feed(packet(codec, audio[0], 5))  # far ahead of the buffer
    assert capture.full
    assert len(capture.samples()) == FRAME


def test_stop_ignores_further_packets(codec: Codec) -> None:
    audio = frames(3)
    capture = LegCapture(8000)
    capture.feed(packet(codec, audio[0], 0))
    capture.stop()
    assert capture.stopped
    capture.feed(packet(codec, audio[1], 1))
    capture.feed(packet(codec, audio[2], 2, ssrc=99))
    assert np.array_equal(capture.samples(), heard(codec, audio[0]))
    assert capture.packets == 1


def test_packets_from_before_the_first_are_ignored(codec: Codec) -> None:
    audio = frames(3)
    capture = LegCapture(8000)
    capture.feed(packet(codec, audio[1], 1))
    capture.feed(packet(codec, audio[0], 0))  # late, and earlier than the capture's start
    capture.feed(packet(codec, audio[2], 2))
    expected = np.concatenate([heard(codec, audio[1]), heard(codec, audio[2])])
    assert np.array_equal(capture.samples(), expected)
    assert capture.packets == 2


def test_timestamps_wrap_around(codec: Codec) -> None:
    audio = frames(3)
    capture = LegCapture(8000)
    start = 0xFFFFFFFF - FRAME + 1  # the second packet's timestamp wraps to 0
    for i, frame in enumerate(audio):
        capture.feed(packet(codec, frame, i, ts0=start))
    assert np.array_equal(capture.samples(), np.concatenate([heard(codec, f) for f in audio]))


def test_csrc_extension_and_padding_are_not_audio(codec: Codec) -> None:
    audio = frames(2)
    capture = LegCapture(8000)
    capture.feed(packet(codec, audio[0], 0, csrc=(1, 2)))
    capture.feed(packet(codec, audio[1], 1, extension=HeaderExtension(0xBEDE, b"\x10\xff\x00\x00")))
    capture.feed(packet(codec, audio[0], 2, padding_size=4))
    expected = [heard(codec, audio[0]), heard(codec, audio[1]), heard(codec, audio[0])]
    assert np.array_equal(capture.samples(), np.concatenate(expected))


def test_samples_is_a_copy(codec: Codec) -> None:
    capture = LegCapture(8000)
    capture.feed(packet(codec, frames(1)[0], 0))
    got = capture.samples()
    got[:] = 0
    assert capture.samples().any()


def test_a_capture_needs_room() -> None:
    with pytest.raises(ValueError):
        LegCapture(0)
