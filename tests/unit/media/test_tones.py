"""Tones: frequencies by FFT, levels against the G.711 digital milliwatt, cadences, frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pytest

from media import tones
from media.codecs import g711
from media.tones import (
    BEEP,
    BUSY_NA,
    DTMF_FREQUENCIES,
    RINGBACK_EUROPE,
    RINGBACK_NA,
    ToneGenerator,
    ToneSpec,
    dtmf,
    dtmf_sequence,
    render,
    ringback_europe,
    tone,
)

RATE = 8000


def _spectrum(samples: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    """Amplitude spectrum with 1 Hz bins (the input is one second long)."""
    assert len(samples) == RATE
    return np.abs(np.fft.rfft(samples.astype(np.float64))) * 2 / RATE


def _peaks(samples: npt.NDArray[np.int16], count: int) -> list[int]:
    spectrum = _spectrum(samples)
    return sorted(int(i) for i in np.argsort(spectrum)[-count:])


def _level_dbm0(rms: float, law: str = "ulaw") -> float:
    """Level relative to the G.711 digital milliwatt (Tables 5 and 6: 0 dBm0 at 1 kHz)."""
    if law == "ulaw":
        reference = g711.ulaw_decode(bytes([0x1E, 0x0B, 0x0B, 0x1E, 0x9E, 0x8B, 0x8B, 0x9E]))
    else:
        reference = g711.alaw_decode(bytes([0x34, 0x21, 0x21, 0x34, 0xB4, 0xA1, 0xA1, 0xB4]))
    reference_rms = float(np.sqrt(np.mean(reference.astype(np.float64) ** 2)))
    return 20 * float(np.log10(rms / reference_rms))


def _rms(samples: npt.NDArray[np.int16]) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# --- frequency and level ----------------------------------------------------------------------


@pytest.mark.parametrize("frequency", [350, 425, 440, 1000, 1020, 2600, 3999])
def test_single_tone_frequency(frequency: int) -> None:
    samples = tone(frequency, 1000)
    assert samples.dtype == np.int16 and samples.shape == (RATE,)
    assert _peaks(samples, 1) == [frequency]


@pytest.mark.parametrize(("low", "high"), [(440, 480), (480, 620), (350, 440)])
def test_dual_tone_has_both_peaks(low: int, high: int) -> None:
    samples = tone((low, high), 1000, level_dbm0=-13)
    spectrum = _spectrum(samples)
    assert _peaks(samples, 2) == [low, high]
    assert spectrum[low] == pytest.approx(spectrum[high], rel=0.01)
    others = np.delete(spectrum, [low, high])
    assert others.max() < spectrum[low] / 100


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_zero_dbm0_matches_the_digital_milliwatt(law: str) -> None:
    # G.711 §5: Tables 5/6 define a 1 kHz 0 dBm0 sine; our 0 dBm0 must match it within 0.1 dB.
    assert abs(_level_dbm0(_rms(tone(1000, 1000, level_dbm0=0.0)), law)) < 0.1


@pytest.mark.parametrize("level", [-3.0, -10.0, -19.0, -30.0])
def test_levels_in_dbm0(level: float) -> None:
    assert _level_dbm0(_rms(tone(1000, 1000, level_dbm0=level))) == pytest.approx(level, abs=0.1)


def test_call_progress_levels() -> None:
    # Precise tone plan: ringback -19 dBm0 and busy -24 dBm0 per frequency.
    on = render(RINGBACK_NA, 0, RATE)
    spectrum = _spectrum(on)
    peak_0dbm0 = tones.dbm0_to_peak(0.0)
    assert 20 * np.log10(spectrum[440] / peak_0dbm0) == pytest.approx(-19.0, abs=0.05)
    busy = render(BUSY_NA, 0, 4000)
    busy_spectrum = np.abs(np.fft.rfft(busy.astype(np.float64))) * 2 / len(busy)
    # 0.5 s gives 2 Hz bins: 480 Hz is bin 240, 620 Hz bin 310.
    assert 20 * np.log10(busy_spectrum[310] / peak_0dbm0) == pytest.approx(-24.0, abs=0.05)


# --- DTMF -------------------------------------------------------------------------------------


@pytest.mark.parametrize("digit", list("0123456789*#ABCD"))
def test_dtmf_digit_has_its_row_and_column(digit: str) -> None:
    samples = dtmf(digit, duration_ms=1000)
    low, high = DTMF_FREQUENCIES[digit]
    assert _peaks(samples, 2) == [low, high]
    assert low in tones.DTMF_ROW_HZ and high in tones.DTMF_COLUMN_HZ


def test_dtmf_keypad_layout() -> None:
    assert DTMF_FREQUENCIES["1"] == (697, 1209)
    assert DTMF_FREQUENCIES["5"] == (770, 1336)
    assert DTMF_FREQUENCIES["9"] == (852, 1477)
    assert DTMF_FREQUENCIES["0"] == (941, 1336)
    assert DTMF_FREQUENCIES["*"] == (941, 1209)
    assert DTMF_FREQUENCIES["#"] == (941, 1477)
    assert DTMF_FREQUENCIES["D"] == (941, 1633)
    assert len({pair for pair in DTMF_FREQUENCIES.values()}) == 16


def test_dtmf_level_and_twist() -> None:
    samples = dtmf("5", duration_ms=1000, level_dbm0=-10.0, twist_db=3.0)
    spectrum = _spectrum(samples)
    peak_0dbm0 = tones.dbm0_to_peak(0.0)
    assert 20 * np.log10(spectrum[770] / peak_0dbm0) == pytest.approx(-10.0, abs=0.05)
    assert 20 * np.log10(spectrum[1336] / peak_0dbm0) == pytest.approx(-7.0, abs=0.05)


def test_dtmf_duration_case_and_errors() -> None:
    assert len(dtmf("a", duration_ms=40)) == 320
    np.testing.assert_array_equal(dtmf("a", 100), dtmf("A", 100))
    for bad in ("E", "", "12", " "):
        with pytest.raises(ValueError):
            dtmf(bad)
    with pytest.raises(ValueError):
        dtmf("1", duration_ms=-20)


def test_dtmf_sequence_timing() -> None:
    samples = dtmf_sequence("12#", on_ms=50, off_ms=30)
    assert len(samples) == 3 * (400 + 240)
    for i, digit in enumerate("12#"):
        start = i * 640
        np.testing.assert_array_equal(samples[start : start + 400], dtmf(digit, 50))
        assert not samples[start + 400 : start + 640].any()
    assert len(dtmf_sequence("")) == 0


# --- cadence ----------------------------------------------------------------------------------


def _check_cadence(spec: ToneSpec, on: int, off: int, cycles: int = 2) -> None:
    signal = render(spec, 0, cycles * (on + off))
    burst = tone(spec.frequencies, on * 1000 // RATE, level_dbm0=spec.levels_dbm0[0])
    for cycle in range(cycles):
        start = cycle * (on + off)
        np.testing.assert_array_equal(signal[start : start + on], burst)
        assert not signal[start + on : start + on + off].any()
    # The burst really sounds up to its last sample (it is not silence padded to the length).
    assert np.abs(signal[on - 8 : on]).max() > 100


def test_north_american_ringback_cadence() -> None:
    assert RINGBACK_NA.cadence_samples() == (16000, 32000)
    _check_cadence(RINGBACK_NA, 16000, 32000)


def test_european_ringback_cadence_and_variants() -> None:
    assert RINGBACK_EUROPE.frequencies == (425.0,)
    _check_cadence(RINGBACK_EUROPE, 8000, 32000)
    uk_like = ringback_europe(400.0, on_ms=400, off_ms=200)
    _check_cadence(uk_like, 3200, 1600, cycles=3)


def test_busy_cadence() -> None:
    _check_cadence(BUSY_NA, 4000, 4000, cycles=3)


def test_multi_step_cadence() -> None:
    spec = ToneSpec((400.0, 450.0), (-19.0,), (400, 200, 400, 2000))
    signal = render(spec, 0, 24000)
    burst = render(ToneSpec((400.0, 450.0), (-19.0,)), 0, 3200)
    np.testing.assert_array_equal(signal[0:3200], burst)
    assert not signal[3200:4800].any()
    np.testing.assert_array_equal(signal[4800:8000], burst)
    assert not signal[8000:24000].any()


def test_beep_is_continuous() -> None:
    assert BEEP.cadence_samples() == ()
    assert _peaks(render(BEEP, 0, RATE), 1) == [1000]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"frequencies": ()},
        {"frequencies": (4000.0,)},
        {"frequencies": (-5.0,)},
        {"frequencies": (440.0, 480.0), "levels_dbm0": (-10.0, -10.0, -10.0)},
        {"frequencies": (440.0, 480.0), "levels_dbm0": (3.0,)},  # sum would clip
        {"frequencies": (440.0,), "cadence_ms": (1000,)},
        {"frequencies": (440.0,), "cadence_ms": (1000, 0)},
        {"frequencies": (440.0,), "cadence_ms": (1, 4000), "sample_rate": 11025},
    ],
)
def test_invalid_specs_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        ToneSpec(**kwargs)  # type: ignore[arg-type]


# --- frames -----------------------------------------------------------------------------------


def test_generator_frames_join_without_phase_jump() -> None:
    spec = ToneSpec((1000.0,), (-3.0,))
    generator = ToneGenerator(spec)
    frames = [next(generator) for _ in range(50)]
    assert all(frame.shape == (160,) and frame.dtype == np.int16 for frame in frames)
    joined = np.concatenate(frames).astype(np.float64)
    n = np.arange(len(joined))
    expected = tones.dbm0_to_peak(-3.0) * np.sin(2 * np.pi * 1000 * n / RATE)
    assert np.max(np.abs(joined - expected)) <= 0.5 + 1e-9
    assert generator.position == 50 * 160


def test_generator_non_dividing_frequency_is_continuous() -> None:
    # 1237 Hz does not fit a whole number of periods in 160 samples: a generator that restarted
    # the phase per frame would jump at every frame boundary.
    spec = ToneSpec((1237.0,), (-6.0,))
    generator = ToneGenerator(spec)
    joined = np.concatenate([generator.next_frame() for _ in range(25)]).astype(np.int32)
    np.testing.assert_array_equal(joined, render(spec, 0, 4000))
    steps = np.abs(np.diff(joined))
    boundaries = np.arange(159, len(joined) - 1, 160)
    assert steps[boundaries].max() <= steps.max()
    peak = tones.dbm0_to_peak(-6.0)
    assert steps.max() <= 2 * peak * np.sin(np.pi * 1237 / RATE) + 1


def test_generator_across_cadence_edges_matches_render() -> None:
    generator = ToneGenerator(RINGBACK_NA)
    joined = np.concatenate([generator.next_frame() for _ in range(2 * 300 + 10)])
    np.testing.assert_array_equal(joined, render(RINGBACK_NA, 0, len(joined)))
    assert not joined[16000:48000].any()  # frames 100 .. 299 are silent


def test_generator_frame_size_start_and_reset() -> None:
    generator = ToneGenerator(BUSY_NA, frame_samples=80, start=3960)
    frame = generator.next_frame()
    np.testing.assert_array_equal(frame, render(BUSY_NA, 3960, 80))
    assert frame[:40].any() and not frame[40:].any()  # the burst ends at sample 4000
    generator.reset()
    assert generator.position == 0
    np.testing.assert_array_equal(generator.next_frame(), render(BUSY_NA, 0, 80))
    with pytest.raises(ValueError):
        ToneGenerator(BUSY_NA, frame_samples=0)
    with pytest.raises(ValueError):
        generator.reset(-1)


def test_phase_stays_exact_after_a_long_time() -> None:
    # Ten hours in, a 440+480 Hz ringback burst is the same as the first one.
    cycle = RINGBACK_NA.cycle_samples()
    late_start = cycle * 6000  # 6000 cycles of 6 s
    np.testing.assert_array_equal(
        render(RINGBACK_NA, late_start, 16000), render(RINGBACK_NA, 0, 16000)
    )
    beep_late = render(BEEP, RATE * 36000, 800)
    np.testing.assert_array_equal(beep_late, render(BEEP, 0, 800))


def test_phase_of_a_fractional_frequency_after_ten_hours() -> None:
    # Fractional frequencies are computed sample by sample (not cached); the phase is checked
    # against exact integer arithmetic.
    spec = ToneSpec((1237.5,), (-6.0,))
    odd = ToneSpec((1000.3,), (-6.0,))
    assert spec.period_samples() is None and odd.period_samples() is None
    assert ToneSpec((440.0, 480.0)).period_samples() == 200  # gcd(8000, 440, 480) = 40
    start = RATE * 36000
    n = np.arange(start, start + 400, dtype=np.int64)
    for tone_spec, numerator, denominator in ((spec, 2475, 2), (odd, 10003, 10)):
        cycles = (numerator * n) % (denominator * RATE) / (denominator * RATE)
        expected = tones.dbm0_to_peak(-6.0) * np.sin(2 * np.pi * cycles)
        got = render(tone_spec, start, 400).astype(np.float64)
        assert np.max(np.abs(got - expected)) <= 0.5 + 1e-6


def test_render_across_the_end_of_a_cycle() -> None:
    cycle = RINGBACK_NA.cycle_samples()
    assert RINGBACK_NA.period_samples() == cycle == 48000
    straddling = render(RINGBACK_NA, cycle - 80, 160)
    np.testing.assert_array_equal(straddling[:80], render(RINGBACK_NA, cycle - 80, 80))
    np.testing.assert_array_equal(straddling[80:], render(RINGBACK_NA, 0, 80))
    long = render(BUSY_NA, 100, 3 * BUSY_NA.cycle_samples())
    np.testing.assert_array_equal(
        long[: BUSY_NA.cycle_samples()], long[BUSY_NA.cycle_samples() :][:8000]
    )


def test_rendered_frames_are_private_copies() -> None:
    frame = render(RINGBACK_NA, 0, 160)
    frame[:] = 0  # the caller may scale or mix in place
    assert render(RINGBACK_NA, 0, 160).any()
