"""G.711 mu-law / A-law tables against ITU-T G.711 (11/88) and the codec registry.

The reference quantizers below are built from the tables of the Recommendation, not from the
bit manipulations the module uses: Table 1/G.711 (A-law) and Table 2/G.711 (mu-law) give, per
segment, its end points and step size; decision values are the interval bounds, decoder outputs
the interval mid-points (mu-law interval 0 decodes to 0).  Negative samples take their one's
complement as magnitude, as the ITU-T G.191 reference coder does.
"""

from __future__ import annotations

import warnings

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs import g711
from media.codecs.registry import CODECS, PCMA, PCMU, by_name, by_payload_type

ALL_CODES = np.arange(256, dtype=np.uint8)
ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)


def _segments_to_levels(
    starts: list[int], steps: list[int], first_interval: tuple[int, int] | None = None
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(lower decision value, decoder output, step) for the 128 magnitude intervals."""
    lower: list[int] = []
    step_of: list[int] = []
    for start, step in zip(starts, steps, strict=True):
        lower += [start + step * k for k in range(16)]
        step_of += [step] * 16
    output = [low + step // 2 for low, step in zip(lower, step_of, strict=True)]
    if first_interval is not None:  # mu-law: interval 0 is [0, 1) and decodes to 0
        lower[0], output[0] = first_interval
    return np.array(lower), np.array(output), np.array(step_of)


# Table 2/G.711, 14-bit units.  Segment 1: one interval of 1 then 15 of 2, ending at 31; then
# 16 intervals each of 4, 8, ..., 256 with end points 95, 223, 479, 991, 2015, 4063, 8159.
ULAW_LOWER, ULAW_OUTPUT, ULAW_STEP = _segments_to_levels(
    starts=[-1, 31, 95, 223, 479, 991, 2015, 4063],
    steps=[2, 4, 8, 16, 32, 64, 128, 256],
    first_interval=(0, 0),
)
ULAW_TMAX = 8159
# Table 1/G.711, 13-bit units (magnitude up to 4096).  Two segments of step 2 (0-32, 32-64),
# then steps 4 .. 128 with end points 128, 256, 512, 1024, 2048, 4096.
ALAW_LOWER, ALAW_OUTPUT, ALAW_STEP = _segments_to_levels(
    starts=[0, 32, 64, 128, 256, 512, 1024, 2048],
    steps=[2, 2, 4, 8, 16, 32, 64, 128],
)


def _reference_ulaw_decode(code: int) -> int:
    index = 0x7F - (code & 0x7F)  # character signal = complement of sign|segment|step
    value = int(ULAW_OUTPUT[index]) * 4
    return value if code & 0x80 else -value


def _reference_alaw_decode(code: int) -> int:
    code ^= 0x55  # even bit inversion
    value = int(ALAW_OUTPUT[code & 0x7F]) * 8
    return value if code & 0x80 else -value


def _reference_encode(law: str, samples: npt.NDArray[np.int16]) -> npt.NDArray[np.uint8]:
    x = samples.astype(np.int64)
    negative = x < 0
    magnitude = np.where(negative, -x - 1, x)  # one's complement for negative samples
    if law == "ulaw":
        index = np.searchsorted(ULAW_LOWER[1:], magnitude >> 2, side="right")
        code = np.where(negative, 0x7F - index, 0xFF - index)
    else:
        index = np.searchsorted(ALAW_LOWER[1:], magnitude >> 3, side="right")
        code = np.where(negative, index, 0x80 | index) ^ 0x55
    return code.astype(np.uint8)


def _snr_db(law: str, signal: npt.NDArray[np.float64]) -> float:
    samples = np.rint(signal).astype(np.int16)
    if law == "ulaw":
        decoded = g711.ulaw_decode(g711.ulaw_encode(samples))
    else:
        decoded = g711.alaw_decode(g711.alaw_encode(samples))
    noise = decoded.astype(np.float64) - signal
    return float(10 * np.log10(np.sum(signal**2) / np.sum(noise**2)))


# --- reference code words ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "value"),
    [
        (0xFF, 0),
        (0x7F, 0),
        (0x80, 32124),
        (0x00, -32124),
        (0xFE, 2 * 4),
        (0xF0, 30 * 4),
        (0xEF, 33 * 4),
    ],
)
def test_ulaw_known_code_words(code: int, value: int) -> None:
    # 0x80/0x00: top of segment 8 (8031 x 4); 0xF0 last step of segment 1, 0xEF first of 2.
    assert g711.ulaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    ("code", "value"),
    [(0xD5, 8), (0x55, -8), (0xAA, 32256), (0x2A, -32256), (0xC5, 33 * 8)],
)
def test_alaw_known_code_words(code: int, value: int) -> None:
    # 0xAA/0x2A: output 4032 x 8; 0xD5/0x55: the smallest outputs +-1 x 8.
    assert g711.alaw_decode(bytes([code]))[0] == value


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xFF), (3, 0xFF), (4, 0xFE), (-1, 0x7F), (-4, 0x7F), (-5, 0x7E), (32767, 0x80)],
)
def test_ulaw_encode_known_samples(sample: int, code: int) -> None:
    assert g711.ulaw_encode(np.array([sample], dtype=np.int16))[0] == code


@pytest.mark.parametrize(
    ("sample", "code"),
    [(0, 0xD5), (15, 0xD5), (16, 0xD4), (-1, 0x55), (-16, 0x55), (-32768, 0x2A)],
)
def test_alaw_encode_known_samples(sample: int, code: int) -> None:
    assert g711.alaw_encode(np.array([sample], dtype=np.int16))[0] == code


# --- whole tables against the G.711 tables ----------------------------------------------------


def test_decode_tables_match_g711_tables() -> None:
    assert g711.ULAW_DECODE_TABLE.dtype == np.int16
    assert g711.ALAW_DECODE_TABLE.dtype == np.int16
    assert g711.ULAW_DECODE_TABLE.tolist() == [_reference_ulaw_decode(c) for c in range(256)]
    assert g711.ALAW_DECODE_TABLE.tolist() == [_reference_alaw_decode(c) for c in range(256)]
    assert ULAW_OUTPUT[-1] == 8031 and ALAW_OUTPUT[-1] == 4032  # Tables 1 and 2, last rows


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_encode_tables_match_g711_decision_values(law: str) -> None:
    table = g711.ULAW_ENCODE_TABLE if law == "ulaw" else g711.ALAW_ENCODE_TABLE
    assert table.shape == (65536,) and table.dtype == np.uint8
    expected = _reference_encode(law, ALL_SAMPLES)
    encode = g711.ulaw_encode if law == "ulaw" else g711.alaw_encode
    np.testing.assert_array_equal(encode(ALL_SAMPLES), expected)


def test_tables_are_read_only() -> None:
    with pytest.raises(ValueError):
        g711.ULAW_ENCODE_TABLE[0] = 1
    with pytest.raises(ValueError):
        g711.ALAW_DECODE_TABLE[0] = 1


def test_agrees_with_stdlib_audioop_where_available() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        audioop = pytest.importorskip("audioop")
    codes = ALL_CODES.tobytes()
    raw = ALL_SAMPLES.astype("<i2").tobytes()
    np.testing.assert_array_equal(
        np.frombuffer(audioop.ulaw2lin(codes, 2), "<i2"), g711.ulaw_decode(codes)
    )
    np.testing.assert_array_equal(
        np.frombuffer(audioop.alaw2lin(codes, 2), "<i2"), g711.alaw_decode(codes)
    )
    np.testing.assert_array_equal(
        np.frombuffer(audioop.lin2alaw(raw, 2), np.uint8), g711.alaw_encode(ALL_SAMPLES)
    )
    # audioop's mu-law coder rounds negative samples toward -inf instead of taking the one's
    # complement (G.191); for non-negative samples the two agree exactly.
    positive = ALL_SAMPLES >= 0
    np.testing.assert_array_equal(
        np.frombuffer(audioop.lin2ulaw(raw, 2), np.uint8)[positive],
        g711.ulaw_encode(ALL_SAMPLES)[positive],
    )


# --- algebraic properties ---------------------------------------------------------------------


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_decode_encode_decode_is_idempotent(law: str) -> None:
    decode = g711.ulaw_decode if law == "ulaw" else g711.alaw_decode
    encode = g711.ulaw_encode if law == "ulaw" else g711.alaw_encode
    once = decode(ALL_CODES)
    np.testing.assert_array_equal(decode(encode(once)), once)


def test_encode_of_decode_returns_the_code_word() -> None:
    np.testing.assert_array_equal(g711.alaw_encode(g711.alaw_decode(ALL_CODES)), ALL_CODES)
    back = g711.ulaw_encode(g711.ulaw_decode(ALL_CODES))
    # mu-law has two zeros; negative zero (0x7F) decodes to 0, which encodes as 0xFF.
    assert back[0x7F] == 0xFF
    others = ALL_CODES != 0x7F
    np.testing.assert_array_equal(back[others], ALL_CODES[others])


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_quantizer_is_monotonic(law: str) -> None:
    decode = g711.ulaw_decode if law == "ulaw" else g711.alaw_decode
    encode = g711.ulaw_encode if law == "ulaw" else g711.alaw_encode
    staircase = decode(encode(ALL_SAMPLES)).astype(np.int32)
    assert np.all(np.diff(staircase) >= 0)
    # 255 distinct outputs for mu-law (two zeros), 256 for A-law (no zero output).
    assert len(np.unique(staircase)) == (255 if law == "ulaw" else 256)
    # By magnitude index, the positive outputs rise strictly.
    positive = decode(np.array([_code_of_index(law, n) for n in range(128)], dtype=np.uint8))
    assert np.all(np.diff(positive.astype(np.int32)) > 0)


def _code_of_index(law: str, index: int) -> int:
    return 0xFF - index if law == "ulaw" else (0x80 | index) ^ 0x55


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_error_is_within_half_a_step(law: str) -> None:
    decode = g711.ulaw_decode if law == "ulaw" else g711.alaw_decode
    encode = g711.ulaw_encode if law == "ulaw" else g711.alaw_encode
    codes = encode(ALL_SAMPLES)
    error = np.abs(decode(codes).astype(np.int32) - ALL_SAMPLES.astype(np.int32))
    if law == "ulaw":
        index = 0x7F - (codes & 0x7F)
        half_step = ULAW_STEP[index] * 4 // 2
        in_range = np.abs(ALL_SAMPLES.astype(np.int32)) <= ULAW_TMAX * 4
    else:
        index = (codes ^ 0x55) & 0x7F
        half_step = ALAW_STEP[index] * 8 // 2
        in_range = np.ones(ALL_SAMPLES.shape, dtype=bool)  # 4096 x 8 covers all of int16
    assert np.all(error[in_range] <= half_step[in_range])
    # Beyond T_max the mu-law coder saturates at its top output.
    assert np.all(np.abs(decode(codes[~in_range]).astype(np.int32)) == 32124)


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_snr_of_a_minus_10_dbm0_tone(law: str) -> None:
    # G.711 §5: a 0 dBm0 sine lies 3.17 dB (mu) / 3.14 dB (A) below T_max.
    tmax, margin = (8159 * 4, 3.17) if law == "ulaw" else (4096 * 8, 3.14)
    peak = tmax * 10 ** ((-10 - margin) / 20)
    n = np.arange(8000)
    signal = peak * np.sin(2 * np.pi * 1020 * n / 8000 + 0.3)  # O.6 reference frequency
    assert _snr_db(law, signal) > 35.0


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_snr_of_a_full_scale_sine(law: str) -> None:
    n = np.arange(8000)
    signal = 32000 * np.sin(2 * np.pi * 1013 * n / 8000)
    assert _snr_db(law, signal) > 35.0


def test_snr_drops_for_a_coarser_quantizer() -> None:
    # Sanity check of the measurement: a 4-bit linear quantizer must fail the bound.
    n = np.arange(8000)
    signal = 20000 * np.sin(2 * np.pi * 1020 * n / 8000)
    coarse = np.round(signal / 4096) * 4096
    snr = 10 * np.log10(np.sum(signal**2) / np.sum((coarse - signal) ** 2))
    assert snr < 35.0


# --- transcoding ------------------------------------------------------------------------------


def test_transcoding_tables_agree_with_decode_then_encode() -> None:
    np.testing.assert_array_equal(
        g711.ULAW_TO_ALAW_TABLE, g711.alaw_encode(g711.ulaw_decode(ALL_CODES))
    )
    np.testing.assert_array_equal(
        g711.ALAW_TO_ULAW_TABLE, g711.ulaw_encode(g711.alaw_decode(ALL_CODES))
    )
    np.testing.assert_array_equal(g711.ulaw_to_alaw(ALL_CODES), g711.ULAW_TO_ALAW_TABLE)
    np.testing.assert_array_equal(g711.alaw_to_ulaw(ALL_CODES), g711.ALAW_TO_ULAW_TABLE)


def test_transcoding_bytes_gives_bytes() -> None:
    payload = bytes(range(256))
    to_alaw = g711.ulaw_to_alaw(payload)
    assert isinstance(to_alaw, bytes)
    assert to_alaw == g711.ULAW_TO_ALAW_TABLE.tobytes()
    assert g711.alaw_to_ulaw(bytearray(payload)) == g711.ALAW_TO_ULAW_TABLE.tobytes()
    assert g711.ulaw_to_alaw(b"\xff\x80\x00") == b"\xd5\xaa\x2a"


def test_transcoding_keeps_the_sound() -> None:
    # A tone through PCMU -> PCMA decodes to nearly the same samples as the PCMU original.
    n = np.arange(1600)
    samples = np.rint(8000 * np.sin(2 * np.pi * 440 * n / 8000)).astype(np.int16)
    ulaw = g711.ulaw_encode(samples)
    via_alaw = g711.alaw_decode(g711.ulaw_to_alaw(ulaw)).astype(np.int32)
    direct = g711.ulaw_decode(ulaw).astype(np.int32)
    assert np.max(np.abs(via_alaw - direct)) <= 128


# --- shapes and batches -----------------------------------------------------------------------


def test_batches_code_like_single_frames() -> None:
    rng = np.random.default_rng(7)
    batch = rng.integers(-32768, 32768, size=(500, 160), dtype=np.int16)
    for encode, decode in (
        (g711.ulaw_encode, g711.ulaw_decode),
        (g711.alaw_encode, g711.alaw_decode),
    ):
        codes = encode(batch)
        assert codes.shape == (500, 160) and codes.dtype == np.uint8
        decoded = decode(codes)
        assert decoded.shape == (500, 160) and decoded.dtype == np.int16
        for row in (0, 123, 499):
            np.testing.assert_array_equal(codes[row], encode(batch[row]))
            np.testing.assert_array_equal(decoded[row], decode(codes[row].tobytes()))


def test_strided_input_and_payload_bytes() -> None:
    samples = np.arange(-16000, 16000, 100, dtype=np.int16).reshape(2, -1)
    strided = samples[:, ::2]
    np.testing.assert_array_equal(g711.ulaw_encode(strided), g711.ulaw_encode(strided.copy()))
    payload = g711.ulaw_encode(samples[0]).tobytes()
    assert len(payload) == samples.shape[1]
    np.testing.assert_array_equal(g711.ulaw_decode(memoryview(payload)), g711.ulaw_decode(payload))


def test_wrong_dtypes_are_refused() -> None:
    with pytest.raises(TypeError):
        g711.ulaw_encode(np.zeros(160, dtype=np.float32))
    with pytest.raises(TypeError):
        g711.alaw_encode(np.zeros(160, dtype=np.int32))
    with pytest.raises(TypeError):
        g711.ulaw_decode(np.zeros(160, dtype=np.int16))


# --- registry ---------------------------------------------------------------------------------


def test_static_payload_types() -> None:
    assert by_payload_type(0) is PCMU
    assert by_payload_type(8) is PCMA
    assert by_payload_type(3) is None  # GSM: not supported
    assert by_payload_type(101) is None  # dynamic types need an rtpmap
    assert {codec.name for codec in CODECS} == {"PCMU", "PCMA"}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("PCMU", PCMU),
        ("pcmu", PCMU),
        ("PcMa", PCMA),
        ("PCMA/8000", PCMA),
        ("pcmu/8000/1", PCMU),
        ("PCMU/16000", None),
        ("PCMA/8000/2", None),
        ("PCMU/x", None),
        ("telephone-event/8000", None),
        ("", None),
        ("PCMU/8000/1/9", None),
    ],
)
def test_lookup_by_rtpmap_name(name: str, expected: object) -> None:
    assert by_name(name) is expected


def test_codec_framing_and_callables() -> None:
    assert PCMU.clock_rate == PCMA.clock_rate == 8000
    assert PCMU.channels == PCMA.channels == 1
    assert PCMU.samples_per_frame() == 160
    assert PCMA.samples_per_frame(30) == 240
    assert PCMU.payload_size(10) == 80
    assert PCMU.rtpmap == "PCMU/8000"
    with pytest.raises(ValueError):
        PCMU.samples_per_frame(0)
    frame = np.rint(10000 * np.sin(np.arange(160) / 5)).astype(np.int16)
    payload = PCMA.encode_payload(frame)
    assert payload == g711.alaw_encode(frame).tobytes()
    np.testing.assert_array_equal(PCMA.decode(payload), g711.alaw_decode(payload))
    np.testing.assert_array_equal(
        PCMU.decode(PCMU.encode(frame)), g711.ulaw_decode(g711.ulaw_encode(frame))
    )
    with pytest.raises(AttributeError):
        PCMU.payload_type = 8  # type: ignore[misc]
