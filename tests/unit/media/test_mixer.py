"""Mixer: minus-one, conferences, supervisor listen/whisper/barge, saturation, gains, batching."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from media.mixer import (
    SOFT_KNEE,
    Limiter,
    Mixer,
    MixerUsageError,
    SupervisorMode,
    db_to_linear,
    mix_frames,
    mix_many,
    stack_weights,
)

F = 160
Samples = npt.NDArray[np.int16]


def const(value: int) -> Samples:
    return np.full(F, value, dtype=np.int16)


def sine(freq: float, amplitude: float, phase: float = 0.0) -> Samples:
    n = np.arange(F)
    return np.round(amplitude * np.sin(2 * np.pi * freq * n / 8000 + phase)).astype(np.int16)


def mixer_of(*pids: str, limiter: Limiter = Limiter.CLIP) -> Mixer[str]:
    m: Mixer[str] = Mixer(limiter=limiter)
    for pid in pids:
        m.add(pid)
    return m


def call_with_supervisor(mode: SupervisorMode) -> Mixer[str]:
    m = mixer_of("C", "A", "S")
    m.set_mode("S", mode, "A")
    return m


CAS = {"C": const(100), "A": const(1000), "S": const(10000)}


def levels(out: dict[str, Samples]) -> dict[str, int]:
    """The constant each output holds (asserting it is constant)."""
    result = {}
    for pid, frame in out.items():
        assert frame.dtype == np.int16 and frame.shape == (F,)
        assert np.all(frame == frame[0]), pid
        result[pid] = int(frame[0])
    return result


def test_two_party_minus_one() -> None:
    m = mixer_of("C", "A")
    a, c = sine(440, 8000), sine(1000, 6000)
    out = m.mix({"C": c, "A": a})
    np.testing.assert_array_equal(out["C"], a)
    np.testing.assert_array_equal(out["A"], c)
    assert m.hears("C", "A") and m.hears("A", "C")
    assert not m.hears("C", "C")


def test_three_party_conference_each_hears_the_other_two() -> None:
    m = mixer_of("x", "y", "z")
    frames = {"x": sine(440, 5000), "y": sine(697, 5000, 1.0), "z": sine(1209, 5000, 2.0)}
    out = m.mix(frames)
    for listener in frames:
        expected = sum(
            (frames[s].astype(np.int32) for s in frames if s != listener), np.zeros(F, np.int32)
        )
        np.testing.assert_array_equal(out[listener], expected.astype(np.int16))
    np.testing.assert_array_equal(m.hear_matrix(), np.ones((3, 3)) - np.eye(3))


def test_constants_conference() -> None:
    assert levels(mixer_of("C", "A", "S").mix(CAS)) == {"C": 11000, "A": 10100, "S": 1100}


def test_listen() -> None:
    m = call_with_supervisor(SupervisorMode.LISTEN)
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 100, "S": 1100}
    np.testing.assert_array_equal(
        m.hear_matrix(), np.array([[0, 1, 0], [1, 0, 0], [1, 1, 0]], np.float32)
    )


def test_whisper() -> None:
    m = call_with_supervisor(SupervisorMode.WHISPER)
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 10100, "S": 1100}
    np.testing.assert_array_equal(
        m.hear_matrix(), np.array([[0, 1, 0], [1, 0, 1], [1, 1, 0]], np.float32)
    )


def test_whisper_at_minus_6_db() -> None:
    m = mixer_of("C", "A", "S")
    m.set_mode("S", SupervisorMode.WHISPER, "A", whisper_gain_db=-6.0)
    out = levels(m.mix(CAS))
    assert out == {"C": 1000, "A": 100 + round(10000 * 10 ** (-6 / 20)), "S": 1100}


def test_barge() -> None:
    m = call_with_supervisor(SupervisorMode.BARGE)
    assert levels(m.mix(CAS)) == {"C": 11000, "A": 10100, "S": 1100}
    np.testing.assert_array_equal(m.hear_matrix(), np.ones((3, 3)) - np.eye(3))


def test_mode_changes_during_a_call() -> None:
    m = call_with_supervisor(SupervisorMode.LISTEN)
    m.set_mode("S", SupervisorMode.BARGE, "A")
    m.set_mode("S", SupervisorMode.WHISPER, "A")
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 10100, "S": 1100}
    m.set_mode("S", SupervisorMode.LISTEN, "A")
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 100, "S": 1100}


def test_supervisor_with_sinusoids() -> None:
    m = call_with_supervisor(SupervisorMode.WHISPER)
    c, a, s = sine(440, 7000), sine(1000, 7000, 0.5), sine(1633, 7000, 1.5)
    out = m.mix({"C": c, "A": a, "S": s})
    np.testing.assert_array_equal(out["C"], a)
    np.testing.assert_array_equal(out["A"], (c.astype(np.int32) + s).astype(np.int16))
    np.testing.assert_array_equal(out["S"], (c.astype(np.int32) + a).astype(np.int16))


def test_set_hears_general_matrix() -> None:
    m = mixer_of("C", "A", "S")
    m.set_hears("C", "S", False)
    m.set_hears("A", "C", False)
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 10000, "S": 1100}
    assert not m.hears("C", "S") and m.hears("S", "C")
    m.set_hears("C", "S", True)
    assert levels(m.mix(CAS))["C"] == 11000


def test_cannot_hear_oneself() -> None:
    m = mixer_of("C", "A")
    with pytest.raises(MixerUsageError):
        m.set_hears("C", "C", True)
    m.set_hears("C", "C", False)
    assert levels(m.mix({"C": const(5), "A": const(7)})) == {"C": 7, "A": 5}


def test_saturation_clips_at_int16_bounds() -> None:
    m = mixer_of("a", "b", "c")
    out = m.mix({"a": const(30000), "b": const(30000), "c": const(-32768)})
    assert levels(out) == {"a": -2768, "b": -2768, "c": 32767}
    out = m.mix({"a": const(-30000), "b": const(-30000), "c": const(1)})
    assert levels(out) == {"a": -29999, "b": -29999, "c": -32768}


def test_saturation_of_many_full_scale_speakers() -> None:
    m = Mixer[int]()
    for i in range(16):
        m.add(i)
    out = m.mix({i: const(-32768) for i in range(16)})
    assert all(int(frame.min()) == -32768 == int(frame.max()) for frame in out.values())


def test_soft_limiter_leaves_quiet_mixes_and_shapes_loud_ones() -> None:
    soft = mixer_of("a", "b", "c", limiter=Limiter.SOFT)
    hard = mixer_of("a", "b", "c")
    quiet = {"a": sine(440, 6000), "b": sine(1000, 6000, 1.0), "c": sine(300, 6000, 2.0)}
    for pid, frame in soft.mix(quiet).items():
        np.testing.assert_array_equal(frame, hard.mix(quiet)[pid])
    loud = {"a": const(20000), "b": const(20000), "c": const(0)}
    shaped = levels(soft.mix(loud))["c"]
    assert SOFT_KNEE < shaped < 32767
    span = 32767 - SOFT_KNEE
    assert shaped == math.floor(SOFT_KNEE + span * math.tanh((40000 - SOFT_KNEE) / span))
    ramp = {"a": np.linspace(-32768, 32767, F).astype(np.int16), "b": const(0), "c": const(0)}
    out = soft.mix(ramp)["b"].astype(np.int32)
    assert np.all(np.diff(out) >= 0)  # monotonic: no fold-over
    assert np.all(np.abs(out) <= np.abs(ramp["a"].astype(np.int32)))
    assert levels(soft.mix({"a": const(-30000), "b": const(-30000)}))["c"] == -shaped_at(60000)


def shaped_at(magnitude: int) -> int:
    span = 32767 - SOFT_KNEE
    return math.floor(SOFT_KNEE + span * math.tanh((magnitude - SOFT_KNEE) / span))


def test_missing_frames_are_silence() -> None:
    m = mixer_of("C", "A", "S")
    out = levels(m.mix({"A": const(1000)}))
    assert out == {"C": 1000, "A": 0, "S": 1000}
    out = levels(m.mix({"C": None, "A": const(1000), "S": const(3)}))
    assert out == {"C": 1003, "A": 3, "S": 1000}
    assert levels(m.mix({})) == {"C": 0, "A": 0, "S": 0}


def test_add_and_remove_while_running() -> None:
    m = mixer_of("C", "A")
    with pytest.raises(MixerUsageError):
        m.mix(CAS)
    assert levels(m.mix({"C": const(100), "A": const(1000)})) == {"C": 1000, "A": 100}
    m.add("S", heard_by_all=False)
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 100, "S": 1100}
    m.set_mode("S", SupervisorMode.BARGE, "A")
    m.remove("C")
    assert m.participants == ("A", "S")
    assert levels(m.mix({"A": const(1000), "S": const(10000)})) == {"A": 10000, "S": 1000}
    m.add("C")
    assert levels(m.mix(CAS)) == {"C": 11000, "A": 10100, "S": 1100}
    m.remove("A")
    m.remove("S")
    m.remove("C")
    assert len(m) == 0 and m.mix({}) == {}


def test_remove_keeps_the_others_relations() -> None:
    m = call_with_supervisor(SupervisorMode.WHISPER)
    m.add("D")  # a fourth party, e.g. a second supervisor
    m.remove("C")
    out = levels(m.mix({"A": const(1000), "S": const(10000), "D": const(7)}))
    assert out == {"A": 10007, "S": 1007, "D": 11000}


def test_participant_gain() -> None:
    m = mixer_of("C", "A", "S")
    m.set_gain("S", -6.0)
    half = round(10000 * db_to_linear(-6.0))
    assert levels(m.mix(CAS)) == {"C": 1000 + half, "A": 100 + half, "S": 1100}
    m.set_gain("S", -math.inf)
    assert levels(m.mix(CAS)) == {"C": 1000, "A": 100, "S": 1100}
    assert not m.hears("C", "S")
    m.set_gain("S", 6.0)
    assert levels(m.mix(CAS))["C"] == 1000 + round(10000 * 10 ** (6 / 20))


def test_link_gain() -> None:
    m = mixer_of("C", "A", "S")
    m.set_hears("A", "S", True, gain_db=-20.0)
    assert levels(m.mix(CAS)) == {"C": 11000, "A": 1100, "S": 1100}


def test_bad_gains_rejected() -> None:
    m = mixer_of("C", "A")
    for bad in (math.nan, 30.0, math.inf):
        with pytest.raises(MixerUsageError):
            m.set_gain("C", bad)


def test_capacity_and_duplicates() -> None:
    m = Mixer[int](max_participants=4)
    for i in range(4):
        m.add(i)
    with pytest.raises(MixerUsageError):
        m.add(99)
    with pytest.raises(MixerUsageError):
        m.add(0)
    m.remove(0)
    m.add(99)
    assert m.participants == (1, 2, 3, 99)
    with pytest.raises(MixerUsageError):
        Mixer[int](max_participants=0)
    with pytest.raises(MixerUsageError):
        m.remove(12345)
    with pytest.raises(MixerUsageError):
        m.set_mode(1, SupervisorMode.LISTEN, 1)


def test_bad_frames_rejected() -> None:
    m = mixer_of("C", "A")
    with pytest.raises(MixerUsageError):
        m.mix({"C": np.zeros(F, np.int32)})
    with pytest.raises(MixerUsageError):
        m.mix({"C": np.zeros(80, np.int16)})
    with pytest.raises(MixerUsageError):
        m.mix_array(np.zeros((3, F), np.int16))


def test_mix_array_matches_mix() -> None:
    m = call_with_supervisor(SupervisorMode.WHISPER)
    rng = np.random.default_rng(7)
    stacked = rng.integers(-20000, 20000, (3, F)).astype(np.int16)
    by_pid = m.mix(dict(zip(m.participants, stacked, strict=True)))
    out = m.mix_array(stacked)
    for i, pid in enumerate(m.participants):
        np.testing.assert_array_equal(out[i], by_pid[pid])


def test_hear_matrix_is_read_only() -> None:
    m = mixer_of("C", "A")
    with pytest.raises(ValueError):
        m.hear_matrix()[0, 0] = 1.0


def test_mix_many_equals_one_by_one() -> None:
    rng = np.random.default_rng(3)
    modes = list(SupervisorMode)
    mixers = [call_with_supervisor(modes[k % 3]) for k in range(30)]
    mixers[4].set_gain("C", -6.0)
    frames = rng.integers(-32768, 32767, (30, 3, F)).astype(np.int16)
    out = mix_many(mixers, frames)
    assert out.shape == frames.shape and out.dtype == np.int16
    for k, m in enumerate(mixers):
        np.testing.assert_array_equal(out[k], m.mix_array(frames[k]))
    np.testing.assert_array_equal(mix_frames(stack_weights(mixers), frames), out)


def test_mix_many_rejects_mixed_sizes() -> None:
    with pytest.raises(MixerUsageError):
        mix_many([mixer_of("a", "b"), mixer_of("a", "b", "c")], np.zeros((2, 3, F), np.int16))
    with pytest.raises(MixerUsageError):
        mix_many([mixer_of("a", "b")], np.zeros((1, 3, F), np.int16))
