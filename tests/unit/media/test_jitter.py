"""Tests of the adaptive jitter buffer (media.jitter), driven by a fake clock.

Times are kept in whole milliseconds and converted to seconds in one place, so that arrivals and
pulls compare exactly. The media clock pulls every 20 ms at 0, 20, 40 ... ms.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Iterable
from dataclasses import dataclass

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from media.jitter import Frame, FrameKind, JitterBuffer, JitterConfig, JitterStats

PTIME_MS = 20
SPF = 160  # samples per 20 ms at 8000 Hz
SEQ0 = 100
TS0 = 1000


@dataclass(frozen=True)
class Pkt:
    at_ms: int
    seq: int
    ts: int
    marker: bool = False


def payload(seq: int) -> bytes:
    return seq.to_bytes(2, "big") + b"\x7f" * 158


def regular(
    count: int, *, seq0: int = SEQ0, ts0: int = TS0, start_ms: int = 0, skip: Iterable[int] = ()
) -> list[Pkt]:
    """Packet i sent every 20 ms, arriving with no jitter at start_ms + 20 i."""
    skipped = set(skip)
    return [
        Pkt(start_ms + PTIME_MS * i, (seq0 + i) % 65536, (ts0 + SPF * i) % 2**32)
        for i in range(count)
        if i not in skipped
    ]


def delayed(pkts: list[Pkt], index: int, by_ms: int) -> list[Pkt]:
    """The same stream with packet ``index`` arriving ``by_ms`` later (arrival order re-sorted)."""
    out = list(pkts)
    out[index] = dataclasses.replace(out[index], at_ms=out[index].at_ms + by_ms)
    return sorted(out, key=lambda p: p.at_ms)


def run(
    buf: JitterBuffer,
    pkts: list[Pkt],
    pulls: int,
    first_pull_ms: int = 0,
    targets: list[float] | None = None,
) -> list[Frame]:
    """Deliver packets in list order; before each pull, put everything that has arrived.

    With ``targets``, the target delay after each pull is appended to it.
    """
    frames: list[Frame] = []
    i = 0
    for k in range(pulls):
        now_ms = first_pull_ms + PTIME_MS * k
        while i < len(pkts) and pkts[i].at_ms <= now_ms:
            p = pkts[i]
            buf.put(p.seq, p.ts, payload(p.seq), p.at_ms / 1000, marker=p.marker)
            i += 1
        frames.append(buf.pull(now_ms / 1000))
        if targets is not None:
            targets.append(buf.target_delay_ms)
    assert i == len(pkts), "the run ended before every packet was delivered"
    return frames


def kinds(frames: list[Frame]) -> str:
    letter = {
        FrameKind.AUDIO: "A",
        FrameKind.CONCEALED: "C",
        FrameKind.STRETCHED: "S",
        FrameKind.SILENCE: "-",
    }
    return "".join(letter[f.kind] for f in frames)


def played_seqs(frames: list[Frame]) -> list[int]:
    return [f.seq for f in frames if f.kind is FrameKind.AUDIO and f.seq is not None]


FIXED_60 = JitterConfig(min_delay_ms=60, start_delay_ms=60, max_delay_ms=60)


def test_in_order_stream_plays_every_packet_in_order_at_the_target_delay() -> None:
    buf = JitterBuffer()
    assert buf.target_delay_ms == pytest.approx(60.0)
    pkts = regular(100)
    frames = run(buf, pkts, 103)
    # 60 ms of buffering, then one packet per pull, each exactly 60 ms after its arrival.
    assert kinds(frames) == "---" + "A" * 100
    for k, frame in enumerate(frames[3:]):
        assert frame.seq == SEQ0 + k
        assert frame.timestamp == TS0 + SPF * k
        assert frame.payload == payload(SEQ0 + k)
        assert not frame.concealed
        assert (k + 3) * PTIME_MS - pkts[k].at_ms == 60
    stats = buf.stats()
    assert isinstance(stats, JitterStats)
    assert (stats.received, stats.played, stats.concealed, stats.late) == (100, 100, 0, 0)
    assert (stats.duplicate, stats.overflow, stats.stretched, stats.compressed) == (0, 0, 0, 0)
    assert stats.depth == 0
    assert stats.max_jitter_ms == pytest.approx(0.0, abs=1e-6)
    assert stats.current_delay_ms == pytest.approx(60.0)


def test_start_delay_sets_when_playout_begins() -> None:
    buf = JitterBuffer(JitterConfig(start_delay_ms=40))
    frames = run(buf, regular(10), 12)
    assert kinds(frames) == "--" + "A" * 10


def test_a_single_loss_conceals_exactly_one_frame() -> None:
    buf = JitterBuffer()
    frames = run(buf, regular(20, skip=[7]), 23)
    assert kinds(frames) == "---" + "A" * 7 + "C" + "A" * 12
    lost = frames[10]
    assert lost.concealed
    assert lost.timestamp == TS0 + 7 * SPF
    # The suggested concealment repeats the last frame once.
    assert lost.payload == payload(SEQ0 + 6)
    assert played_seqs(frames) == [SEQ0 + i for i in range(20) if i != 7]
    assert buf.stats().concealed == 1
    assert buf.stats().late == 0


def test_a_burst_loss_repeats_the_last_frame_once_then_suggests_silence() -> None:
    buf = JitterBuffer()
    frames = run(buf, regular(20, skip=[5, 6, 7]), 23)
    assert kinds(frames) == "---" + "A" * 5 + "CCC" + "A" * 12
    assert [f.payload for f in frames[8:11]] == [payload(SEQ0 + 4), None, None]
    assert [f.timestamp for f in frames[8:11]] == [TS0 + SPF * i for i in (5, 6, 7)]
    assert buf.stats().concealed == 3


def test_reordering_within_the_target_delay_plays_in_order_without_concealment() -> None:
    buf = JitterBuffer()
    # Packet 5 arrives 30 ms late, after packet 6; playout at 60 ms still has room for it.
    pkts = delayed(regular(20), 5, 30)
    assert [p.seq for p in pkts[4:8]] == [SEQ0 + 4, SEQ0 + 6, SEQ0 + 5, SEQ0 + 7]
    frames = run(buf, pkts, 23)
    assert kinds(frames) == "---" + "A" * 20
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    stats = buf.stats()
    assert (stats.concealed, stats.late, stats.stretched) == (0, 0, 0)


def test_reordering_beyond_the_target_delay_drops_the_late_packet_and_conceals_once() -> None:
    buf = JitterBuffer(FIXED_60)
    # Packet 5 is due at 160 ms but arrives at 200 ms.
    frames = run(buf, delayed(regular(20), 5, 100), 23)
    assert kinds(frames) == "---" + "A" * 5 + "C" + "A" * 14
    assert played_seqs(frames) == [SEQ0 + i for i in range(20) if i != 5]
    stats = buf.stats()
    assert (stats.late, stats.concealed, stats.received, stats.played) == (1, 1, 20, 19)


def test_a_late_packet_in_an_adaptive_buffer_grows_the_delay_at_once() -> None:
    buf = JitterBuffer()
    pkts = delayed(regular(20), 5, 100)
    # Up to the pull at 200 ms, when packet 5 has just come.
    frames = run(buf, [p for p in pkts if p.at_ms <= 200], 11)
    assert buf.target_delay_ms == pytest.approx(120.0, abs=1.0)
    frames += run(buf, [p for p in pkts if p.at_ms > 200], 15, first_pull_ms=220)
    # Slot 5 is concealed at 160 ms and slot 6 plays at 180 ms; packet 5 arrives at 200 ms: late,
    # and its 100 ms excess raises the target to 120 ms at once, so playout holds for three frames
    # (60 -> 120 ms) before going on in order.
    assert kinds(frames) == "---" + "A" * 5 + "C" + "A" + "SSS" + "A" * 13
    assert played_seqs(frames) == [SEQ0 + i for i in range(20) if i != 5]
    assert frames[10].payload == payload(SEQ0 + 6)  # repeat once ...
    assert frames[11].payload is None and frames[12].payload is None  # ... then silence
    stats = buf.stats()
    assert (stats.late, stats.concealed, stats.stretched) == (1, 1, 3)
    assert stats.current_delay_ms == pytest.approx(120.0)


def test_duplicates_are_dropped_and_counted() -> None:
    buf = JitterBuffer()
    pkts = regular(20)
    # Packet 3 again while it is buffered, and packet 1 again long after it was played.
    pkts.insert(4, Pkt(70, SEQ0 + 3, TS0 + 3 * SPF))
    pkts.insert(15, Pkt(290, SEQ0 + 1, TS0 + SPF))
    frames = run(buf, pkts, 23)
    assert kinds(frames) == "---" + "A" * 20
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    stats = buf.stats()
    assert (stats.duplicate, stats.late, stats.received) == (2, 0, 22)


def test_sequence_and_timestamp_wrap_around_is_seamless() -> None:
    buf = JitterBuffer()
    ts0 = 2**32 - 3 * SPF
    pkts = regular(12, seq0=65530, ts0=ts0)
    # A reordered pair straddling the wrap: 0 arrives before 65535.
    pkts = delayed(pkts, 5, 25)
    frames = run(buf, pkts, 15)
    assert kinds(frames) == "---" + "A" * 12
    assert played_seqs(frames) == [65530, 65531, 65532, 65533, 65534, 65535, 0, 1, 2, 3, 4, 5]
    assert [f.timestamp for f in frames[3:]] == [(ts0 + SPF * i) % 2**32 for i in range(12)]
    stats = buf.stats()
    assert (stats.concealed, stats.late, stats.duplicate) == (0, 0, 0)


def test_a_jitter_spike_grows_the_target_and_a_calm_period_shrinks_it_within_bounds() -> None:
    cfg = JitterConfig()
    buf = JitterBuffer(cfg)
    pkts = regular(1600)
    # Packets 50..54 are held up and arrive together 150 ms after packet 50 was due.
    spike_end = pkts[50].at_ms + 150
    pkts = sorted(
        [
            dataclasses.replace(p, at_ms=spike_end) if 50 <= i <= 54 else p
            for i, p in enumerate(pkts)
        ],
        key=lambda p: p.at_ms,
    )
    targets: list[float] = []
    frames = run(buf, pkts, 1603, targets=targets)
    # Packets 50..54 were due from 1060 ms on but came at 1150 ms: late; the first one's excess
    # (150 ms) raised the target at once to 170 ms, the next four (130 .. 70 ms) let it decay a bit.
    assert kinds(frames[:53]) == "---" + "A" * 50
    assert kinds(frames[53:58]) == "CCCCC"
    spike_pull = -(-1150 // PTIME_MS)  # the first pull after the burst came
    assert targets[spike_pull - 1] < 60.0  # calm so far: decaying from the start delay
    assert targets[spike_pull] == pytest.approx(170.0, abs=3.0)
    assert max(targets) == targets[spike_pull]
    # Then a calm call: the target decays slowly, never below the minimum.
    after = targets[spike_pull:]
    assert all(a >= b for a, b in itertools.pairwise(after))
    assert after[50] > 100.0  # still high one second after the spike: shrinking is slow
    assert after[-1] == pytest.approx(cfg.min_delay_ms, abs=1.0)
    assert all(cfg.min_delay_ms <= t <= cfg.max_delay_ms for t in targets)
    stats = buf.stats()
    # Playout followed: frames were removed one at a time and the delay is back near the target.
    assert stats.compressed >= 5
    assert stats.current_delay_ms <= stats.target_delay_ms + PTIME_MS + PTIME_MS / 4
    assert stats.current_delay_ms >= stats.target_delay_ms - PTIME_MS / 4
    # Removals were spread out: never two in neighbouring pulls.
    played = [seq for seq in played_seqs(frames) if seq > SEQ0 + 54]
    jumps = [i for i, (a, b) in enumerate(itertools.pairwise(played)) if (b - a) % 65536 != 1]
    assert len(jumps) == stats.compressed
    assert all(b - a >= cfg.shrink_interval_frames for a, b in itertools.pairwise(jumps))


def test_the_target_stays_within_the_configured_bounds() -> None:
    cfg = JitterConfig(min_delay_ms=40, start_delay_ms=50, max_delay_ms=100)
    buf = JitterBuffer(cfg)
    run(buf, delayed(regular(30), 10, 400), 30 + 25)
    assert buf.target_delay_ms == pytest.approx(100.0)
    calm = JitterBuffer(cfg)
    run(calm, regular(1000), 1005)
    assert calm.target_delay_ms == pytest.approx(40.0)


def test_overflow_drops_the_oldest_packets_and_counts_them() -> None:
    buf = JitterBuffer(JitterConfig(max_packets=4))
    # Six packets arrive in one burst before the clock starts pulling.
    for i in range(6):
        buf.put(SEQ0 + i, TS0 + SPF * i, payload(SEQ0 + i), 0.0)
    stats = buf.stats()
    assert (stats.overflow, stats.depth, stats.received) == (2, 4, 6)
    frames = [buf.pull(k * PTIME_MS / 1000) for k in range(6)]
    assert played_seqs(frames) == [SEQ0 + 2, SEQ0 + 3, SEQ0 + 4, SEQ0 + 5]
    # The two oldest were dropped; a second copy of one of them is still a duplicate.
    buf.put(SEQ0, TS0, payload(SEQ0), 0.13)
    assert buf.stats().duplicate == 1


def test_overflow_bounds_the_buffer_when_nothing_pulls() -> None:
    cfg = JitterConfig(max_packets=10)
    buf = JitterBuffer(cfg)
    for i in range(200):
        buf.put((SEQ0 + i) % 65536, TS0 + SPF * i, payload(i), i * PTIME_MS / 1000)
        assert buf.depth <= cfg.max_packets
    assert buf.stats().overflow == 190


def test_a_new_talkspurt_with_the_marker_bit_resyncs() -> None:
    buf = JitterBuffer(FIXED_60)
    first = regular(10)
    # 400 ms of silence (not sent), then a talkspurt whose timestamps skip the silence and whose
    # first packet carries the marker bit; the network delay has meanwhile grown by 7 ms.
    second = regular(10, seq0=SEQ0 + 10, ts0=TS0 + SPF * 30, start_ms=600 + 7)
    second[0] = dataclasses.replace(second[0], marker=True)
    frames = run(buf, first + second, 50)
    # The first talkspurt plays out, the empty buffer is concealed for three frames (the end of a
    # talkspurt looks like loss until the buffer gives up), then silence until the new talkspurt
    # starts 60 ms after its first packet's arrival (at the next pull).
    assert kinds(frames[:13]) == "---" + "A" * 10
    start = frames.index(next(f for f in frames if f.seq == SEQ0 + 10))
    assert start * PTIME_MS == 680  # 607 + 60 = 667 ms -> the pull at 680 ms
    assert kinds(frames[13:start]) == "CCC" + "-" * (start - 16)
    assert kinds(frames[start : start + 10]) == "A" * 10
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    assert frames[start].timestamp == TS0 + SPF * 30
    stats = buf.stats()
    assert stats.resyncs == 1
    assert stats.concealed == 6  # three after each talkspurt
    assert stats.late == 0


@pytest.mark.parametrize("marker", [True, False])
def test_the_gap_before_a_marked_talkspurt_is_silence_not_loss(marker: bool) -> None:
    buf = JitterBuffer(JitterConfig(min_delay_ms=100, start_delay_ms=100, max_delay_ms=100))
    first = regular(10)
    # Three frames of silence are not sent; the next talkspurt arrives at 260 ms while slots 8
    # and 9 of the old one are still buffered (they play at 260 and 280 ms).
    second = regular(10, seq0=SEQ0 + 10, ts0=TS0 + SPF * 13, start_ms=260)
    second[0] = dataclasses.replace(second[0], marker=marker)
    frames = run(buf, first + second, 28)
    gap = "---" if marker else "CCC"
    assert kinds(frames) == "-----" + "A" * 10 + gap + "A" * 10
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    assert buf.stats().concealed == (0 if marker else 3)
    assert buf.stats().resyncs == (1 if marker else 0)


def test_a_timestamp_jump_without_marker_resyncs() -> None:
    buf = JitterBuffer(FIXED_60)
    first = regular(10)
    # The sender's timestamps jump forward by an hour in the middle of continuous audio.
    second = regular(10, seq0=SEQ0 + 10, ts0=(TS0 + 8000 * 3600) % 2**32, start_ms=200)
    frames = run(buf, first + second, 26)
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    assert kinds(frames) == "---" + "A" * 20 + "CCC"
    # Still 60 ms after arrival: the discontinuity did not shift playout.
    assert frames.index(next(f for f in frames if f.seq == SEQ0 + 10)) * PTIME_MS == 260
    assert frames[13].timestamp == (TS0 + 8000 * 3600) % 2**32
    assert buf.stats().resyncs == 1


def test_a_timestamp_jump_backwards_is_not_mistaken_for_late_packets() -> None:
    buf = JitterBuffer(FIXED_60)
    first = regular(10, ts0=8000 * 60)
    second = regular(10, seq0=SEQ0 + 10, ts0=TS0, start_ms=200)
    frames = run(buf, first + second, 23)
    assert played_seqs(frames) == [SEQ0 + i for i in range(20)]
    assert buf.stats().late == 0


def test_a_long_silence_resyncs_to_the_current_target() -> None:
    buf = JitterBuffer(FIXED_60)
    first = regular(10)
    # A second of silence without marker; network delay is now 35 ms longer.
    second = regular(10, seq0=SEQ0 + 10, ts0=TS0 + SPF * 60, start_ms=1200 + 35)
    frames = run(buf, first + second, 80)
    start = frames.index(next(f for f in frames if f.seq == SEQ0 + 10))
    assert start * PTIME_MS == 1300  # 1235 + 60 = 1295 ms -> the pull at 1300 ms
    assert kinds(frames[start : start + 10]) == "A" * 10
    stats = buf.stats()
    assert stats.resyncs == 1
    assert stats.late == 0


def test_a_sender_restart_with_a_new_sequence_space_keeps_playing() -> None:
    buf = JitterBuffer(FIXED_60)
    first = regular(10)
    second = regular(10, seq0=40000, ts0=77, start_ms=200)
    frames = run(buf, first + second, 26)
    assert played_seqs(frames) == [SEQ0 + i for i in range(10)] + [40000 + i for i in range(10)]
    assert buf.stats().late == 0
    assert buf.stats().duplicate == 0


def test_the_first_packets_reordered_before_playout_starts() -> None:
    buf = JitterBuffer()
    pkts = delayed(regular(10), 0, 15)
    frames = run(buf, pkts, 13)
    # Packet 1 came first, but packet 0 is still played first, on time.
    assert kinds(frames) == "---" + "A" * 10
    assert played_seqs(frames) == [SEQ0 + i for i in range(10)]


def test_rfc3550_jitter_is_reported() -> None:
    buf = JitterBuffer()
    pkts = [
        dataclasses.replace(p, at_ms=p.at_ms + (5 if i % 2 else 0))
        for i, p in enumerate(regular(200))
    ]
    run(buf, pkts, 202)
    stats = buf.stats()
    # |D| is 5 ms for every pair, so J converges to 5 ms.
    assert stats.jitter_ms == pytest.approx(5.0, abs=0.01)
    assert stats.max_jitter_ms == pytest.approx(stats.jitter_ms, abs=0.01)
    assert stats.late == 0
    assert stats.played + stats.compressed == 200


def test_stats_is_a_frozen_snapshot() -> None:
    buf = JitterBuffer()
    before = buf.stats()
    buf.put(1, 0, b"x", 0.0)
    assert before.received == 0
    assert buf.stats().received == 1
    with pytest.raises(dataclasses.FrozenInstanceError):
        before.received = 5  # type: ignore[misc]


def test_reset_forgets_the_stream() -> None:
    buf = JitterBuffer()
    run(buf, regular(5), 8)
    buf.reset()
    assert buf.stats() == JitterBuffer().stats()
    assert buf.pull(1.0).kind is FrameKind.SILENCE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_delay_ms": 0},
        {"start_delay_ms": 10},
        {"start_delay_ms": 300},
        {"ptime_ms": 0},
        {"ptime_ms": 1, "clock_rate": 500},
        {"max_packets": 0},
        {"jitter_factor": 0},
    ],
)
def test_invalid_configuration_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        JitterConfig(**kwargs)  # type: ignore[arg-type]


def test_out_of_range_fields_are_refused() -> None:
    buf = JitterBuffer()
    with pytest.raises(ValueError):
        buf.put(65536, 0, b"", 0.0)
    with pytest.raises(ValueError):
        buf.put(0, 2**32, b"", 0.0)


def test_other_clock_rates_and_ptimes() -> None:
    cfg = JitterConfig(clock_rate=16000, ptime_ms=30, min_delay_ms=30, start_delay_ms=60)
    buf = JitterBuffer(cfg)
    pkts = [Pkt(30 * i, SEQ0 + i, 480 * i) for i in range(10)]
    frames: list[Frame] = []
    i = 0
    for k in range(12):
        while i < len(pkts) and pkts[i].at_ms <= 30 * k:
            buf.put(pkts[i].seq, pkts[i].ts, payload(pkts[i].seq), pkts[i].at_ms / 1000)
            i += 1
        frames.append(buf.pull(30 * k / 1000))
    assert kinds(frames) == "--" + "A" * 10


@settings(max_examples=150, deadline=None)
@given(
    delays=st.lists(st.integers(min_value=0, max_value=250), min_size=1, max_size=120),
    dup_every=st.integers(min_value=2, max_value=50),
    lost=st.sets(st.integers(min_value=0, max_value=119), max_size=20),
    seq0=st.integers(min_value=0, max_value=65535),
)
def test_playout_invariants_under_random_delay_loss_and_duplication(
    delays: list[int], dup_every: int, lost: set[int], seq0: int
) -> None:
    buf = JitterBuffer(JitterConfig(max_packets=8))
    sent = [
        dataclasses.replace(p, at_ms=p.at_ms + delays[i])
        for i, p in enumerate(regular(len(delays), seq0=seq0))
        if i == 0 or i not in lost
    ]
    pkts = list(sent)
    pkts += [dataclasses.replace(p, at_ms=p.at_ms + 7) for p in pkts[::dup_every]]
    copies = len(pkts) - len(sent)
    pkts.sort(key=lambda p: p.at_ms)
    frames = run(buf, pkts, (max(p.at_ms for p in pkts) + 400) // PTIME_MS)
    # Every packet is played at most once, in sending order, with its own payload.
    order = [(seq - seq0) % 65536 for seq in played_seqs(frames)]
    assert order == sorted(set(order))
    audio = [f for f in frames if f.kind is FrameKind.AUDIO]
    assert all(f.seq is not None and f.payload == payload(f.seq) for f in audio)
    stats = buf.stats()
    accounted = stats.played + stats.late + stats.duplicate + stats.overflow + stats.depth
    assert accounted <= stats.received <= accounted + stats.compressed
    assert stats.received == len(pkts)
    assert stats.duplicate <= copies
    assert 20.0 <= stats.target_delay_ms <= 200.0
    assert stats.depth <= 8
