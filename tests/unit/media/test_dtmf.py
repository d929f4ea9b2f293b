"""DTMF: RFC 4733 events, the in-band detector and SIP INFO bodies."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media.dtmf import (
    COL_FREQS,
    DBM0_PEAK,
    DIGITS,
    ROW_FREQS,
    DtmfReceived,
    GoertzelDetector,
    InbandConfig,
    MalformedEventError,
    Rfc4733Receiver,
    Rfc4733Sender,
    TelephoneEvent,
    goertzel_power,
    parse_dtmf_relay,
)

KEYPAD = ("123A", "456B", "789C", "*0#D")


# ------------------------------------------------------------------------------------------
# RFC 4733 payload
# ------------------------------------------------------------------------------------------


def test_event_payload_round_trip_and_wire_layout() -> None:
    ev = TelephoneEvent(event=11, end=True, volume=10, duration=800)
    raw = bytes(ev)
    assert raw == bytes([11, 0x80 | 10, 0x03, 0x20])
    assert TelephoneEvent.parse(raw) == ev
    # The reserved bit is ignored on receipt; trailing bytes too.
    assert TelephoneEvent.parse(bytes([5, 0x40 | 7, 0, 160, 9, 9])) == TelephoneEvent(
        5, False, 7, 160
    )


def test_event_payload_rejects_short_and_bad_values() -> None:
    with pytest.raises(MalformedEventError):
        TelephoneEvent.parse(b"\x05\x0a\x00")
    with pytest.raises(ValueError):
        TelephoneEvent(event=1, volume=64)
    with pytest.raises(ValueError):
        TelephoneEvent(event=1, duration=0x10000)


# ------------------------------------------------------------------------------------------
# RFC 4733 receiver
# ------------------------------------------------------------------------------------------


def pkt(event: int, duration: int, end: bool = False) -> bytes:
    return bytes(TelephoneEvent(event, end, 10, duration))


def feed_sequence(
    rx: Rfc4733Receiver, ts: int, event: int, total: int, now: float, ends: int = 3
) -> tuple[list[DtmfReceived], float]:
    """Start, updates every 160 samples, then `ends` end packets; 20 ms apart."""
    out: list[DtmfReceived] = []
    d = 160
    first = True
    while d < total:
        out += rx.receive(ts, first, pkt(event, d), now)
        first = False
        d += 160
        now += 0.02
    for _ in range(ends):
        out += rx.receive(ts, False, pkt(event, total, True), now)
        now += 0.02
    return out, now


def test_full_event_reports_one_digit_with_duration() -> None:
    rx = Rfc4733Receiver()
    out, _ = feed_sequence(rx, 1000, 5, 1280, 0.0)
    assert out == [DtmfReceived("5", 160, "rfc4733")]
    assert rx.next_deadline() is None


def test_end_packet_reports_at_first_end_and_retransmissions_ignored() -> None:
    rx = Rfc4733Receiver()
    assert rx.receive(2000, True, pkt(11, 160), 0.0) == []
    assert rx.receive(2000, False, pkt(11, 320), 0.02) == []
    assert rx.receive(2000, False, pkt(11, 400, True), 0.04) == [DtmfReceived("#", 50)]
    assert rx.receive(2000, False, pkt(11, 400, True), 0.06) == []
    assert rx.receive(2000, False, pkt(11, 400, True), 0.08) == []
    assert rx.handle_timer(10.0) == []


def test_same_digit_twice_with_new_timestamp_gives_two_events() -> None:
    rx = Rfc4733Receiver()
    a, now = feed_sequence(rx, 1000, 7, 800, 0.0)
    b, _ = feed_sequence(rx, 1000 + 2400, 7, 640, now + 0.1)
    assert a == [DtmfReceived("7", 100)]
    assert b == [DtmfReceived("7", 80)]


def test_lost_end_packets_reported_when_next_event_starts() -> None:
    rx = Rfc4733Receiver()
    a, now = feed_sequence(rx, 1000, 1, 960, 0.0, ends=0)
    assert a == []
    assert rx.receive(5000, True, pkt(2, 160), now + 0.05) == [DtmfReceived("1", 100)]
    b, _ = feed_sequence(rx, 5000, 2, 480, now + 0.07)
    assert b == [DtmfReceived("2", 60)]


def test_lost_end_packets_reported_on_timeout() -> None:
    rx = Rfc4733Receiver(timeout=0.3)
    out, now = feed_sequence(rx, 7, 0, 800, 1.0, ends=0)
    assert out == []
    last = now - 0.02
    deadline = rx.next_deadline()
    assert deadline is not None
    assert deadline == pytest.approx(last + 0.3)
    assert rx.handle_timer(deadline - 0.01) == []
    assert rx.handle_timer(deadline) == [DtmfReceived("0", 80)]  # the last update seen
    assert rx.next_deadline() is None
    # A straggling packet of the reported event must not start it again.
    assert rx.receive(7, False, pkt(0, 800, True), deadline + 0.1) == []
    assert rx.handle_timer(deadline + 5) == []


def test_reordered_updates_and_early_end() -> None:
    rx = Rfc4733Receiver()
    assert rx.receive(100, False, pkt(12, 320), 0.0) == []  # update before the first packet
    assert rx.receive(100, True, pkt(12, 160), 0.01) == []
    assert rx.receive(100, False, pkt(12, 640, True), 0.02) == [DtmfReceived("A", 80)]
    assert rx.receive(100, False, pkt(12, 480), 0.03) == []  # late update after the end
    assert rx.receive(100, False, pkt(12, 640, True), 0.04) == []


def test_late_end_of_previous_event_after_next_started_is_ignored() -> None:
    rx = Rfc4733Receiver()
    rx.receive(1000, True, pkt(3, 160), 0.0)
    rx.receive(1000, False, pkt(3, 320), 0.02)
    assert rx.receive(3000, True, pkt(4, 160), 0.1) == [DtmfReceived("3", 40)]
    assert rx.receive(1000, False, pkt(3, 400, True), 0.11) == []  # already reported
    assert rx.receive(900, False, pkt(3, 400, True), 0.11) == []  # stale, older event
    assert rx.receive(3000, False, pkt(4, 480, True), 0.12) == [DtmfReceived("4", 60)]


def test_non_dtmf_events_and_garbage_ignored() -> None:
    rx = Rfc4733Receiver()
    assert rx.receive(1, True, pkt(16, 160, True), 0.0) == []  # flash hook: not a digit
    assert rx.receive(2, True, b"\x01", 0.0) == []
    assert rx.malformed == 1
    assert rx.next_deadline() is None


def test_timestamp_wraparound_and_long_event_segments() -> None:
    rx = Rfc4733Receiver()
    ts = (1 << 32) - 100
    out, now = feed_sequence(rx, ts, 9, 480, 0.0)
    assert out == [DtmfReceived("9", 60)]
    out2, now = feed_sequence(rx, (ts + 3000) % (1 << 32), 9, 320, now)
    assert out2 == [DtmfReceived("9", 40)]
    # RFC 4733 §2.5.1.5: a long event restarts at timestamp + 0xFFFF and is still one digit.
    rx2 = Rfc4733Receiver()
    assert rx2.receive(500, True, pkt(6, 0xFFFF), 0.0) == []
    assert rx2.receive(500 + 0xFFFF, False, pkt(6, 800, True), 0.02) == [
        DtmfReceived("6", round((0xFFFF + 800) / 8))
    ]


def test_sender_packets_fed_back_to_receiver() -> None:
    packets = Rfc4733Sender(volume=12).packets("#", 100)
    events = [TelephoneEvent.parse(p.payload) for p in packets]
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    assert [e.end for e in events] == [False] * 4 + [True] * 3
    assert [e.duration for e in events] == [160, 320, 480, 640, 800, 800, 800]
    assert [p.send_offset for p in packets] == [160 * (i + 1) for i in range(7)]
    assert {e.event for e in events} == {11}
    assert {e.volume for e in events} == {12}
    rx = Rfc4733Receiver()
    got: list[DtmfReceived] = []
    for p in packets:
        got += rx.receive(4242, p.marker, p.payload, p.send_offset / 8000)
    assert got == [DtmfReceived("#", 100)]


def test_sender_rejects_bad_input() -> None:
    tx = Rfc4733Sender()
    with pytest.raises(ValueError):
        tx.packets("E", 100)
    with pytest.raises(ValueError):
        tx.packets("1", 9000)
    short = tx.packets("1", 10)
    assert len(short) == 3 and all(TelephoneEvent.parse(p.payload).end for p in short)


# ------------------------------------------------------------------------------------------
# In-band detector
# ------------------------------------------------------------------------------------------


def amplitude(dbm0: float) -> float:
    return float(DBM0_PEAK * 10.0 ** (dbm0 / 20.0))


def dual_tone(
    rng: np.random.Generator, digit: str, ms: int, dbm0: float, twist_db: float = 0.0
) -> npt.NDArray[np.float64]:
    """Two sines at random phase; `twist_db` > 0 makes the high (column) tone louder."""
    row = next(i for i, r in enumerate(KEYPAD) if digit in r)
    col = KEYPAD[row].index(digit)
    n = np.arange(ms * 8)
    ph = rng.uniform(0, 2 * np.pi, 2)
    low = amplitude(dbm0) * np.sin(2 * np.pi * ROW_FREQS[row] * n / 8000 + ph[0])
    high = amplitude(dbm0 + twist_db) * np.sin(2 * np.pi * COL_FREQS[col] * n / 8000 + ph[1])
    return np.asarray(low + high, np.float64)


def silence(ms: int) -> npt.NDArray[np.float64]:
    return np.zeros(ms * 8)


def to_frames(
    signal: npt.NDArray[np.float64],
    rng: np.random.Generator,
    snr_db: float | None = None,
    lead: int = 37,
) -> npt.NDArray[np.int16]:
    """Offset by `lead` samples (not frame-aligned), 200 ms tail, optional white noise."""
    x = np.concatenate([np.zeros(lead), signal, silence(200)])
    if snr_db is not None:
        p = float(np.mean(signal[signal != 0] ** 2))
        x = x + rng.normal(0.0, np.sqrt(p / 10 ** (snr_db / 10)), x.size)
    x = np.concatenate([x, np.zeros(-x.size % 160)])
    return np.asarray(np.clip(np.round(x), -32768, 32767), np.int16).reshape(-1, 160)


def detect(frames: npt.NDArray[np.int16], config: InbandConfig | None = None) -> list[DtmfReceived]:
    det = GoertzelDetector(config=config)
    out: list[DtmfReceived] = []
    for f in frames:
        out += det.process(f)
    return out


def test_block_energies_match_the_goertzel_recursion() -> None:
    """The detector's per-window tone powers equal the Goertzel recursion's over the window."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 3000, 480)
    freqs = ROW_FREQS + COL_FREQS
    ref = goertzel_power(x[160:320], freqs)
    direct = np.abs(np.exp(-2j * np.pi * np.outer(np.arange(160), freqs) / 8000).T @ x[160:320])
    np.testing.assert_allclose(ref, direct**2, rtol=1e-9)
    # A sine at a DTMF frequency shows up only in its own bin among the eight.
    n = np.arange(160)
    p = goertzel_power(1000 * np.sin(2 * np.pi * 852 * n / 8000), freqs)
    assert int(np.argmax(p)) == 2
    assert p[2] == pytest.approx((160 * 1000 / 2) ** 2, rel=0.02)


@pytest.mark.parametrize("dbm0", [-10.0, -25.0])
@pytest.mark.parametrize("ms", [40, 60, 100])
def test_all_sixteen_digits_in_noise(dbm0: float, ms: int) -> None:
    rng = np.random.default_rng(1000 + ms - int(dbm0))
    for digit in DIGITS:
        for lead in (0, 37, 80, 121):
            frames = to_frames(dual_tone(rng, digit, ms, dbm0), rng, snr_db=15.0, lead=lead)
            got = detect(frames)
            assert [e.digit for e in got] == [digit], (digit, lead, got)
            assert got[0].source == "inband"
            assert abs(got[0].duration_ms - ms) <= 20


def test_digit_sequence_and_duration_of_held_digit() -> None:
    rng = np.random.default_rng(3)
    sig = np.concatenate(
        [dual_tone(rng, "1", 300, -12.0), silence(80), dual_tone(rng, "9", 60, -12.0)]
    )
    got = detect(to_frames(sig, rng, snr_db=20.0))
    assert [e.digit for e in got] == ["1", "9"]
    assert abs(got[0].duration_ms - 300) <= 20


def test_digit_held_300_ms_reported_once() -> None:
    rng = np.random.default_rng(4)
    got = detect(to_frames(dual_tone(rng, "#", 300, -20.0), rng, snr_db=15.0))
    assert [e.digit for e in got] == ["#"]


def test_short_dropout_does_not_split_a_digit() -> None:
    rng = np.random.default_rng(5)
    sig = np.concatenate(
        [dual_tone(rng, "5", 100, -15.0), silence(10), dual_tone(rng, "5", 100, -15.0)]
    )
    got = detect(to_frames(sig, rng, snr_db=20.0))
    assert [e.digit for e in got] == ["5"]


@pytest.mark.parametrize("lead", [0, 37, 80, 150])
def test_same_digit_after_40ms_pause_reported_twice(lead: int) -> None:
    rng = np.random.default_rng(6 + lead)
    sig = np.concatenate(
        [dual_tone(rng, "8", 60, -15.0), silence(40), dual_tone(rng, "8", 60, -15.0)]
    )
    got = detect(to_frames(sig, rng, snr_db=15.0, lead=lead))
    assert [e.digit for e in got] == ["8", "8"]


def test_tone_shorter_than_25ms_rejected() -> None:
    rng = np.random.default_rng(8)
    for digit in DIGITS:
        assert detect(to_frames(dual_tone(rng, digit, 20, -10.0), rng, snr_db=20.0)) == []


@pytest.mark.parametrize(
    ("twist_db", "accepted"),
    [(-10.0, False), (10.0, False), (-7.0, True), (3.0, True), (-9.0, False), (5.0, False)],
)
def test_twist_limits(twist_db: float, accepted: bool) -> None:
    """Low tone may be up to 8 dB louder than the high one; the high up to 4 dB louder."""
    rng = np.random.default_rng(9)
    got = detect(to_frames(dual_tone(rng, "6", 100, -12.0, twist_db), rng, snr_db=25.0))
    assert [e.digit for e in got] == (["6"] if accepted else [])


def test_below_sensitivity_rejected() -> None:
    rng = np.random.default_rng(10)
    assert detect(to_frames(dual_tone(rng, "2", 100, -40.0), rng)) == []
    assert [e.digit for e in detect(to_frames(dual_tone(rng, "2", 100, -28.0), rng))] == ["2"]


def test_no_digit_from_speech_like_signals() -> None:
    rng = np.random.default_rng(11)
    n = np.arange(8000)
    a = amplitude(-10.0)
    signals = {
        "1000 Hz": a * np.sin(2 * np.pi * 1000 * n / 8000),
        "noise": rng.normal(0, a, n.size),
        "ringback": a * (np.sin(2 * np.pi * 440 * n / 8000) + np.sin(2 * np.pi * 480 * n / 8000)),
        "dial tone": a * (np.sin(2 * np.pi * 350 * n / 8000) + np.sin(2 * np.pi * 440 * n / 8000)),
        "chirp": a * np.sin(2 * np.pi * (300 * n / 8000 + 3400 / 2 * (n / 8000) ** 2)),
        "vowel": np.sum(
            [
                a / k * np.sin(2 * np.pi * k * (110 * n / 8000 + 40 / 2 * (n / 8000) ** 2))
                for k in range(1, 30)
            ],
            axis=0,
        ),
        "single row tone": a * np.sin(2 * np.pi * 770 * n / 8000),
        "three tones": a
        * (
            np.sin(2 * np.pi * 697 * n / 8000)
            + np.sin(2 * np.pi * 770 * n / 8000)
            + np.sin(2 * np.pi * 1209 * n / 8000)
        ),
    }
    for name, sig in signals.items():
        assert detect(to_frames(sig, rng, snr_db=30.0)) == [], name


def test_batch_matches_one_leg_at_a_time() -> None:
    """Legs in one batch keep separate state and give what separate detectors give."""
    rng = np.random.default_rng(12)
    legs = 6
    streams = []
    for leg in range(legs):
        parts = [silence(10 * leg)]
        for digit in DIGITS[leg : leg + 3]:
            parts += [dual_tone(rng, digit, 60 + 10 * leg, -15.0), silence(60)]
        streams.append(to_frames(np.concatenate(parts), rng, snr_db=15.0))
    length = max(s.shape[0] for s in streams)
    batch = np.zeros((length, legs, 160), np.int16)
    for leg, s in enumerate(streams):
        batch[: s.shape[0], leg] = s
    det = GoertzelDetector(legs=legs)
    got: dict[int, list[str]] = {leg: [] for leg in range(legs)}
    for t in range(length):
        for leg, ev in det.process_frames(batch[t]):
            got[leg].append(ev.digit)
    for leg in range(legs):
        single = [e.digit for e in detect(batch[:, leg])]
        assert got[leg] == single == list(DIGITS[leg : leg + 3])


def test_batch_with_slot_subset_and_reset() -> None:
    rng = np.random.default_rng(13)
    frames = to_frames(dual_tone(rng, "D", 80, -12.0), rng, snr_db=20.0)
    det = GoertzelDetector(legs=4)
    slots = np.array([3, 1], np.intp)
    got: list[tuple[int, str]] = []
    for f in frames:
        pair = np.stack([f, np.zeros(160, np.int16)])
        got += [(slot, ev.digit) for slot, ev in det.process_frames(pair, slots)]
    assert got == [(3, "D")]
    # A reset slot forgets a digit in progress.
    for f in frames[:5]:
        det.process(f, leg=2)
    det.reset(2)
    assert [ev for f in frames[5:] for ev in det.process(f, leg=2)] == []


def test_frames_of_other_lengths_and_bad_shapes() -> None:
    rng = np.random.default_rng(14)
    frames = to_frames(dual_tone(rng, "3", 100, -12.0), rng, snr_db=20.0)
    det = GoertzelDetector()
    ten_ms = frames.reshape(-1, 80)
    assert [ev.digit for f in ten_ms for ev in det.process(f)] == ["3"]
    with pytest.raises(ValueError):
        det.process_frames(np.zeros((1, 100), np.int16))
    with pytest.raises(ValueError):
        det.process_frames(np.zeros((2, 160), np.int16))


# ------------------------------------------------------------------------------------------
# SIP INFO
# ------------------------------------------------------------------------------------------


def test_dtmf_relay_body() -> None:
    assert parse_dtmf_relay("Signal=5\r\nDuration=160\r\n", "application/dtmf-relay") == (
        DtmfReceived("5", 160, "sip-info")
    )
    assert parse_dtmf_relay("signal= #\nduration = 250", "Application/DTMF-Relay; x=y") == (
        DtmfReceived("#", 250, "sip-info")
    )
    assert parse_dtmf_relay("Signal=11\r\nDuration=100", "application/dtmf-relay") == (
        DtmfReceived("#", 100, "sip-info")
    )
    assert parse_dtmf_relay("Signal=d", "application/dtmf-relay") == DtmfReceived(
        "D", 250, "sip-info"
    )


def test_dtmf_body_and_rejections() -> None:
    assert parse_dtmf_relay("7\r\n", "application/dtmf") == DtmfReceived("7", 250, "sip-info")
    assert parse_dtmf_relay("*", "application/dtmf", default_duration_ms=100) == DtmfReceived(
        "*", 100, "sip-info"
    )
    assert parse_dtmf_relay("Signal=5", "text/plain") is None
    assert parse_dtmf_relay("Signal=X\r\nDuration=160", "application/dtmf-relay") is None
    assert parse_dtmf_relay("Duration=160", "application/dtmf-relay") is None
    assert parse_dtmf_relay("", "application/dtmf") is None
    assert parse_dtmf_relay("Signal=16", "application/dtmf-relay") is None
    assert parse_dtmf_relay("Signal=1\r\nDuration=-5", "application/dtmf-relay") == (
        DtmfReceived("1", 250, "sip-info")
    )


@pytest.mark.parametrize(
    ("extra_hz", "below_db", "accepted"),
    [(770.0, 5.0, False), (1336.0, 5.0, False), (770.0, 14.0, True), (1336.0, 14.0, True)],
)
def test_competing_tone_in_a_group_rejected(
    extra_hz: float, below_db: float, accepted: bool
) -> None:
    """Digit 1 (697 + 1209 Hz) plus a third tone of the same group `below_db` weaker."""
    rng = np.random.default_rng(15)
    n = np.arange(800)
    extra = amplitude(-12.0 - below_db) * np.sin(2 * np.pi * extra_hz * n / 8000)
    got = detect(to_frames(dual_tone(rng, "1", 100, -12.0) + extra, rng, snr_db=25.0))
    assert [e.digit for e in got] == (["1"] if accepted else [])


def test_reordered_updates_keep_the_longest_duration_when_end_is_lost() -> None:
    rx = Rfc4733Receiver(timeout=0.2)
    rx.receive(300, True, pkt(8, 160), 0.0)
    rx.receive(300, False, pkt(8, 480), 0.02)
    rx.receive(300, False, pkt(8, 320), 0.03)  # arrives after a later update
    assert rx.handle_timer(1.0) == [DtmfReceived("8", 60)]
