"""Unit tests of the call recorder: WAV header bytes, channel layout, pauses, VAD statistics."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import struct
import threading
import wave
from pathlib import Path

import numpy as np
import pytest

from media.recorder import (
    FRAME_SAMPLES,
    HEADER_SIZE,
    SAMPLE_RATE,
    AsyncRecorder,
    ChannelLayout,
    PauseInterval,
    RecorderUsageError,
    RecordingCore,
    RecordingOptions,
    WavFile,
    WavFormat,
    WavRecorder,
    pauses_path,
)

TICKS_PER_SECOND = SAMPLE_RATE // FRAME_SAMPLES


def tone(freq: float, ticks: int, amp: float = 10000.0, start: int = 0) -> list[np.ndarray]:
    """``ticks`` consecutive 20 ms int16 frames of a sine with continuous phase."""
    n = np.arange(start, start + ticks * FRAME_SAMPLES)
    x = np.round(amp * np.sin(2 * np.pi * freq * n / SAMPLE_RATE)).astype(np.int16)
    return [x[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(ticks)]


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.fft.rfftfreq(len(samples), 1 / SAMPLE_RATE)[int(np.argmax(spectrum))])


def read_wav(path: Path) -> tuple[wave._wave_params, np.ndarray]:
    with wave.open(str(path), "rb") as w:
        params = w.getparams()
        data = np.frombuffer(w.readframes(params.nframes), dtype="<i2")
    return params, data.reshape(-1, params.nchannels)


# ---------------------------------------------------------------- header


MONO_EMPTY_HEADER = bytes.fromhex(
    "52494646 24000000 57415645"  # "RIFF", size 36, "WAVE"
    " 666d7420 10000000"  # "fmt ", chunk size 16
    " 0100 0100 401f0000 803e0000 0200 1000"  # PCM, 1 ch, 8000 Hz, 16000 B/s, align 2, 16 bit
    " 64617461 00000000"  # "data", size 0
)
STEREO_EMPTY_HEADER = bytes.fromhex(
    "52494646 24000000 57415645"
    " 666d7420 10000000"
    " 0100 0200 401f0000 007d0000 0400 1000"  # PCM, 2 ch, 8000 Hz, 32000 B/s, align 4, 16 bit
    " 64617461 00000000"
)


def test_mono_header_bytes_follow_the_riff_wave_layout() -> None:
    assert WavFormat(channels=1).header(0) == MONO_EMPTY_HEADER
    assert len(MONO_EMPTY_HEADER) == HEADER_SIZE


def test_stereo_header_bytes_follow_the_riff_wave_layout() -> None:
    assert WavFormat(channels=2).header(0) == STEREO_EMPTY_HEADER


def test_header_sizes_count_the_data() -> None:
    h = WavFormat(channels=2).header(3200)
    assert h[4:8] == (3200 + 36).to_bytes(4, "little")
    assert h[40:44] == (3200).to_bytes(4, "little")
    assert h[8:40] == STEREO_EMPTY_HEADER[8:40]
    fields = dict(WavFormat(channels=2).size_fields(3200))
    assert fields == {4: h[4:8], 40: h[40:44]}


def test_header_rejects_sizes_the_format_cannot_hold() -> None:
    with pytest.raises(RecorderUsageError):
        WavFormat(channels=2).header(6)  # not a whole stereo sample frame
    with pytest.raises(RecorderUsageError):
        WavFormat(channels=1).header(2**32)
    with pytest.raises(RecorderUsageError):
        WavFormat(channels=3)


def test_file_is_a_valid_empty_wav_right_after_open(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = WavRecorder(path, RecordingOptions(layout=ChannelLayout.MONO_MIX))
    try:
        assert path.read_bytes() == MONO_EMPTY_HEADER
        with wave.open(str(path), "rb") as w:
            assert (w.getnchannels(), w.getframerate(), w.getnframes()) == (1, 8000, 0)
    finally:
        rec.close()


def test_an_existing_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError):
        WavRecorder(path)
    assert path.read_bytes() == b"precious"


# ---------------------------------------------------------------- blocks and sizes


def test_blocks_are_flushed_and_sizes_patched_before_close(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = WavRecorder(path, RecordingOptions(flush_seconds=0.2))  # 10 ticks per block
    left, right = tone(440, 25), tone(1000, 25)
    for i in range(9):
        rec.write(left[i], right[i])
    assert path.stat().st_size == HEADER_SIZE  # still buffered
    rec.write(left[9], right[9])
    for i in range(10, 25):
        rec.write(left[i], right[i])
    # Two full blocks on disk, the last 5 ticks in memory: the file is what a crash would leave.
    raw = path.read_bytes()
    data_len = 20 * FRAME_SAMPLES * 4
    assert len(raw) == HEADER_SIZE + data_len
    assert struct.unpack_from("<I", raw, 4)[0] == data_len + 36
    assert struct.unpack_from("<I", raw, 40)[0] == data_len
    params, frames = read_wav(path)
    assert params.nframes == 20 * FRAME_SAMPLES
    assert np.array_equal(frames[:, 0], np.concatenate(left[:20]))
    stats = rec.close()
    params, frames = read_wav(path)
    assert params.nframes == 25 * FRAME_SAMPLES
    assert stats.duration_seconds == pytest.approx(0.5)


def test_explicit_flush_writes_a_partial_block(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = WavRecorder(path, RecordingOptions(layout=ChannelLayout.MONO_MIX))
    for frame in tone(440, 3):
        rec.write(frame, None)
    rec.flush()
    assert read_wav(path)[0].nframes == 3 * FRAME_SAMPLES
    rec.close()


# ---------------------------------------------------------------- channels


def test_stereo_puts_the_caller_left_and_the_other_party_right(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    left, right = tone(440, 50), tone(1000, 50)
    with WavRecorder(path) as rec:
        for lf, rf in zip(left, right, strict=True):
            rec.write(lf, rf)
    params, frames = read_wav(path)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 8000)
    assert params.nframes == SAMPLE_RATE
    assert dominant_hz(frames[:, 0]) == pytest.approx(440, abs=2)
    assert dominant_hz(frames[:, 1]) == pytest.approx(1000, abs=2)
    assert np.array_equal(frames[:, 0], np.concatenate(left))
    assert np.array_equal(frames[:, 1], np.concatenate(right))


def test_mono_mix_holds_both_parties(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    left, right = tone(440, 50, amp=8000), tone(1000, 50, amp=8000)
    with WavRecorder(path, RecordingOptions(layout=ChannelLayout.MONO_MIX)) as rec:
        for lf, rf in zip(left, right, strict=True):
            rec.write(lf, rf)
    params, frames = read_wav(path)
    assert params.nchannels == 1
    mono = frames[:, 0]
    expected = np.concatenate(left).astype(np.int32) + np.concatenate(right)
    assert np.array_equal(mono, expected)
    spectrum = np.abs(np.fft.rfft(mono.astype(np.float64)))
    freqs = np.fft.rfftfreq(len(mono), 1 / SAMPLE_RATE)
    top_two = sorted(float(f) for f in freqs[np.argsort(spectrum)[-2:]])
    assert top_two == pytest.approx([440, 1000], abs=2)


def test_mono_mix_saturates_instead_of_wrapping(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    loud = np.full(FRAME_SAMPLES, 30000, dtype=np.int16)
    with WavRecorder(path, RecordingOptions(layout=ChannelLayout.MONO_MIX)) as rec:
        rec.write(loud, loud)
        rec.write(-loud, -loud)
    mono = read_wav(path)[1][:, 0]
    assert np.all(mono[:FRAME_SAMPLES] == 32767)
    assert np.all(mono[FRAME_SAMPLES:] == -32768)


def test_missing_frames_are_silence_and_short_frames_are_padded(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    frame = tone(440, 1)[0]
    with WavRecorder(path) as rec:
        rec.write(frame, None)
        rec.write(None, frame[:100])
    frames = read_wav(path)[1]
    assert len(frames) == 2 * FRAME_SAMPLES
    assert np.array_equal(frames[:FRAME_SAMPLES, 0], frame)
    assert not frames[:FRAME_SAMPLES, 1].any()
    assert not frames[FRAME_SAMPLES:, 0].any()
    assert np.array_equal(frames[FRAME_SAMPLES : FRAME_SAMPLES + 100, 1], frame[:100])
    assert not frames[FRAME_SAMPLES + 100 :, 1].any()


def test_bad_frames_and_late_writes_are_the_callers_fault(tmp_path: Path) -> None:
    rec = WavRecorder(tmp_path / "call.wav")
    with pytest.raises(RecorderUsageError):
        rec.write(np.zeros(FRAME_SAMPLES, dtype=np.float32), None)
    with pytest.raises(RecorderUsageError):
        rec.write(None, np.zeros(FRAME_SAMPLES + 1, dtype=np.int16))
    rec.close()
    rec.close()  # idempotent
    with pytest.raises(RecorderUsageError):
        rec.write(None, None)


def test_options_are_validated() -> None:
    with pytest.raises(RecorderUsageError):
        RecordingOptions(flush_seconds=0)
    with pytest.raises(RecorderUsageError):
        RecordingOptions(vad_mode=4)
    assert RecordingOptions(flush_seconds=1.0).block_frames == 50


# ---------------------------------------------------------------- pauses


def test_pause_records_silence_and_keeps_the_intervals_beside_the_file(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    side = pauses_path(path)
    assert side == tmp_path / "call.wav.pauses.json"
    left, right = tone(440, 75), tone(1000, 75)
    rec = WavRecorder(path, RecordingOptions(flush_seconds=0.2))
    for i in range(25):
        rec.write(left[i], right[i])
    assert not side.exists()
    rec.pause("card number")
    assert rec.paused
    doc = json.loads(side.read_text())
    assert doc["recording"] == "call.wav"
    assert doc["pauses"] == [{"start": 0.5, "end": None, "reason": "card number"}]
    for i in range(25, 50):
        rec.write(left[i], right[i])
    rec.resume()
    doc = json.loads(side.read_text())
    assert doc["pauses"] == [{"start": 0.5, "end": 1.0, "reason": "card number"}]
    for i in range(50, 75):
        rec.write(left[i], right[i])
    stats = rec.close()

    frames = read_wav(path)[1]
    assert len(frames) == 75 * FRAME_SAMPLES
    half = SAMPLE_RATE // 2
    assert not frames[half : 2 * half].any()
    assert np.array_equal(frames[:half, 0], np.concatenate(left[:25]))
    assert np.array_equal(frames[2 * half :, 1], np.concatenate(right[50:]))
    assert stats.paused_seconds == pytest.approx(0.5)
    assert stats.pauses == (PauseInterval(0.5, 1.0, "card number"),)
    assert not side.with_name(side.name + ".tmp").exists()


def test_repeated_pause_and_resume_are_no_ops(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = WavRecorder(path)
    rec.resume()  # not paused: nothing to write
    assert not pauses_path(path).exists()
    rec.write(None, None)
    rec.pause("identity check")
    rec.pause("other reason")
    rec.write(None, None)
    rec.resume()
    rec.resume()
    stats = rec.close()
    assert stats.pauses == (PauseInterval(0.02, 0.04, "identity check"),)


def test_a_pause_still_open_at_close_is_closed_at_the_end(tmp_path: Path) -> None:
    path = tmp_path / "call.wav"
    rec = WavRecorder(path)
    for frame in tone(440, 10):
        rec.write(frame, frame)
    rec.pause("card number")
    for frame in tone(440, 15):
        rec.write(frame, frame)
    rec.close()
    doc = json.loads(pauses_path(path).read_text())
    assert doc["pauses"] == [{"start": 0.2, "end": 0.5, "reason": "card number"}]
    assert not read_wav(path)[1][int(0.2 * SAMPLE_RATE) :].any()


# ---------------------------------------------------------------- VAD statistics


def feed(core: RecordingCore, left: np.ndarray | None, right: np.ndarray | None) -> None:
    core.append(left, right)
    if core.block_ready:
        core.take_block()


def test_the_core_refuses_to_grow_past_one_block() -> None:
    core = RecordingCore(RecordingOptions(flush_seconds=0.04))
    core.append(None, None)
    core.append(None, None)
    assert core.block_ready
    with pytest.raises(RecorderUsageError):
        core.append(None, None)
    assert len(core.take_block()) == 2 * FRAME_SAMPLES * 4
    core.append(None, None)


def test_talk_stats_on_tone_versus_silence() -> None:
    core = RecordingCore(RecordingOptions(vad_mode=1))
    for frame in tone(440, 100):
        feed(core, frame, None)
    talk = core.finish().talk
    assert talk is not None
    assert talk.right_talk_seconds == 0.0
    assert talk.left_talk_seconds >= 1.8  # a strong tone reads as speech in mode 1
    assert talk.overlap_seconds == 0.0
    assert talk.silence_seconds == pytest.approx(2.0 - talk.left_talk_seconds)


def test_talk_stats_of_pure_silence_are_zero_in_every_mode() -> None:
    for mode in range(4):
        core = RecordingCore(RecordingOptions(vad_mode=mode))
        for _ in range(50):
            feed(core, None, np.zeros(FRAME_SAMPLES, dtype=np.int16))
        talk = core.finish().talk
        assert talk is not None
        assert (talk.left_talk_seconds, talk.right_talk_seconds) == (0.0, 0.0)
        assert talk.silence_seconds == pytest.approx(1.0)


def test_talk_stats_skip_paused_time_and_are_off_by_default() -> None:
    core = RecordingCore(RecordingOptions(vad_mode=1))
    frames = tone(1000, 100)
    for frame in frames[:50]:
        feed(core, frame, frame)
    core.pause("card number")
    for frame in frames[50:]:
        feed(core, frame, frame)
    stats = core.finish()
    assert stats.talk is not None
    assert stats.talk.left_talk_seconds + stats.talk.silence_seconds == pytest.approx(1.0)
    assert stats.talk.left_talk_seconds >= 0.9
    assert stats.talk.overlap_seconds == stats.talk.right_talk_seconds
    assert stats.duration_seconds == pytest.approx(2.0)

    plain = RecordingCore(RecordingOptions())
    feed(plain, frames[0], frames[0])
    assert plain.finish().talk is None


# ---------------------------------------------------------------- asyncio shell


async def test_async_recorder_writes_in_the_executor_and_keeps_channels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "call.wav"
    threads: list[str] = []
    original = WavFile.append

    def recording_append(self: WavFile, pcm: bytes) -> None:
        threads.append(threading.current_thread().name)
        original(self, pcm)

    monkeypatch.setattr(WavFile, "append", recording_append)
    left, right = tone(440, 60), tone(1000, 60)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="rec-io") as pool:
        rec = await AsyncRecorder.open(path, RecordingOptions(flush_seconds=0.2), executor=pool)
        for i in range(30):
            rec.write(left[i], right[i])
        rec.pause("card number")
        for i in range(30, 45):
            rec.write(left[i], right[i])
        rec.resume()
        await rec.flush()
        assert read_wav(path)[0].nframes == 45 * FRAME_SAMPLES
        for i in range(45, 60):
            rec.write(left[i], right[i])
        stats = await rec.close()
    assert threads and all(name.startswith("rec-io") for name in threads)
    frames = read_wav(path)[1]
    assert len(frames) == 60 * FRAME_SAMPLES
    pause = slice(30 * FRAME_SAMPLES, 45 * FRAME_SAMPLES)
    assert not frames[pause].any()
    assert dominant_hz(frames[: pause.start, 0]) == pytest.approx(440, abs=15)
    assert dominant_hz(frames[pause.stop :, 1]) == pytest.approx(1000, abs=15)
    assert stats.pauses == (PauseInterval(0.6, 0.9, "card number"),)
    doc = json.loads(pauses_path(path).read_text())
    assert doc["pauses"] == [{"start": 0.6, "end": 0.9, "reason": "card number"}]
    with pytest.raises(RecorderUsageError):
        rec.write(None, None)


async def test_async_recorder_reports_a_failed_write_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_append(self: WavFile, pcm: bytes) -> None:
        if pcm:
            raise OSError(28, "No space left on device")

    rec = await AsyncRecorder.open(tmp_path / "call.wav", RecordingOptions(flush_seconds=0.02))
    monkeypatch.setattr(WavFile, "append", failing_append)
    rec.write(None, None)
    with pytest.raises(OSError, match="No space"):
        await asyncio.wait_for(rec.close(), 5)
