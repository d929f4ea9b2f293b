"""Prompt loading, resampling, the prompt cache, playback frames, barge-in and music on hold."""

from __future__ import annotations

import logging
import os
import struct
import wave
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.codecs.g711 import alaw_encode, ulaw_encode
from media.player import (
    FRAME_SAMPLES,
    MusicOnHold,
    Playback,
    PromptCache,
    PromptError,
    load_prompt,
    resample,
)

Samples = npt.NDArray[np.int16]


def tone(freq: float, rate: int, seconds: float, amplitude: float = 10000.0) -> Samples:
    t = np.arange(round(rate * seconds)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def write_pcm16(path: Path, samples: Samples, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(samples.astype("<i2").tobytes())
    return path


def riff(
    tag: int, channels: int, rate: int, bits: int, data: bytes, extensible: bool = False
) -> bytes:
    """A RIFF/WAVE file built by hand: fmt (plain or WAVE_FORMAT_EXTENSIBLE), fact, data."""
    align = channels * bits // 8
    if extensible:
        guid_tail = b"\x00\x00\x00\x00\x10\x00\x80\x00\x00\xaa\x00\x38\x9b\x71"
        fmt = struct.pack("<HHIIHH", 0xFFFE, channels, rate, rate * align, align, bits)
        fmt += struct.pack("<HHI", 22, bits, 0) + struct.pack("<H", tag) + guid_tail
    else:
        fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits)
        if tag != 1:
            fmt += struct.pack("<H", 0)
    chunks = b"fmt " + struct.pack("<I", len(fmt)) + fmt
    if tag != 1:
        chunks += b"fact" + struct.pack("<II", 4, len(data) // channels)
    chunks += b"data" + struct.pack("<I", len(data)) + data + (b"\x00" if len(data) % 2 else b"")
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def peak_hz(samples: Samples, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * rate / len(samples))


def rms(samples: Samples) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


# ---------------------------------------------------------------------------- loading formats


def test_pcm16_8k_mono_is_read_unchanged(tmp_path: Path) -> None:
    source = tone(440, 8000, 0.5)
    loaded = load_prompt(write_pcm16(tmp_path / "a.wav", source))
    assert loaded.dtype == np.int16
    np.testing.assert_array_equal(loaded, source)


def test_pcm16_stereo_is_averaged_to_mono(tmp_path: Path) -> None:
    left = np.full(800, 1000, np.int16)
    right = np.full(800, 3000, np.int16)
    interleaved = np.stack([left, right], axis=1).reshape(-1)
    loaded = load_prompt(write_pcm16(tmp_path / "s.wav", interleaved, channels=2))
    assert len(loaded) == 800
    assert np.all(loaded == 2000)


def test_pcm8_unsigned(tmp_path: Path) -> None:
    data = bytes([128, 255, 0, 192, 64])  # 0, +127, -128, +64, -64 in 8-bit unsigned
    path = tmp_path / "p8.wav"
    path.write_bytes(riff(1, 1, 8000, 8, data))
    np.testing.assert_array_equal(load_prompt(path), [0, 127 << 8, -128 << 8, 64 << 8, -64 << 8])


def test_mulaw_wav(tmp_path: Path) -> None:
    # ITU G.711 mu-law: 0xFF and 0x7F are +0 and -0, 0x80 is the largest positive (8031 x 4).
    path = tmp_path / "u.wav"
    path.write_bytes(riff(7, 1, 8000, 8, bytes([0xFF, 0x7F, 0x80, 0x00])))
    np.testing.assert_array_equal(load_prompt(path), [0, 0, 32124, -32124])


def test_alaw_wav(tmp_path: Path) -> None:
    # ITU G.711 A-law: 0xD5 / 0x55 are the smallest steps (+-1 in 13 bits = +-8 in 16 bits).
    path = tmp_path / "a.wav"
    path.write_bytes(riff(6, 1, 8000, 8, bytes([0xD5, 0x55, 0xAA, 0x2A])))
    np.testing.assert_array_equal(load_prompt(path), [8, -8, 32256, -32256])


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_tone_stereo_extensible(tmp_path: Path, law: str) -> None:
    source = tone(500, 8000, 0.25)
    encode, tag = (ulaw_encode, 7) if law == "ulaw" else (alaw_encode, 6)
    codes = encode(np.stack([source, source], axis=1).reshape(-1)).tobytes()
    path = tmp_path / f"{law}.wav"
    path.write_bytes(riff(tag, 2, 8000, 8, codes, extensible=True))
    loaded = load_prompt(path)
    assert len(loaded) == len(source)
    # G.711 keeps the tone to within its quantisation step (3 % of the amplitude here).
    assert np.max(np.abs(loaded.astype(int) - source)) < 300
    assert peak_hz(loaded) == pytest.approx(500, abs=5)


def test_pcm16_extensible_header(tmp_path: Path) -> None:
    source = tone(700, 8000, 0.1)
    path = tmp_path / "x.wav"
    path.write_bytes(riff(1, 1, 8000, 16, source.astype("<i2").tobytes(), extensible=True))
    np.testing.assert_array_equal(load_prompt(path), source)


def test_g711_at_16k_is_resampled(tmp_path: Path) -> None:
    codes = ulaw_encode(tone(1000, 16000, 0.5)).tobytes()
    path = tmp_path / "u16.wav"
    path.write_bytes(riff(7, 1, 16000, 8, codes))
    loaded = load_prompt(path)
    assert len(loaded) == 4000
    assert peak_hz(loaded) == pytest.approx(1000, abs=5)


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "not a RIFF/WAVE file"),
        (b"hello, this is not audio at all", "not a RIFF/WAVE file"),
        (b"RIFF\x04\x00\x00\x00WAVE", "no fmt chunk"),
    ],
)
def test_corrupt_files_raise_prompt_error(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(PromptError) as caught:
        load_prompt(path)
    assert str(path) in str(caught.value)
    assert reason in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_missing_and_unsupported_files(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no such file"):
        load_prompt(tmp_path / "absent.wav")
    path = tmp_path / "float.wav"
    path.write_bytes(riff(3, 1, 8000, 32, b"\x00" * 16))  # IEEE float
    with pytest.raises(PromptError, match="format tag 0x0003"):
        load_prompt(path)
    no_data = riff(7, 1, 8000, 8, b"").split(b"data")[0]
    (tmp_path / "nodata.wav").write_bytes(no_data)
    with pytest.raises(PromptError, match="no data chunk"):
        load_prompt(tmp_path / "nodata.wav")


def test_too_long_prompt_is_refused(tmp_path: Path) -> None:
    path = write_pcm16(tmp_path / "long.wav", np.zeros(8000 * 3, np.int16))
    with pytest.raises(PromptError, match="longer than 2 s"):
        load_prompt(path, max_seconds=2)


# ---------------------------------------------------------------------------- resampling


@pytest.mark.parametrize("rate", [16000, 44100, 11025, 48000])
def test_resampled_file_keeps_a_1khz_tone(tmp_path: Path, rate: int) -> None:
    path = write_pcm16(tmp_path / f"t{rate}.wav", tone(1000, rate, 1.0), rate)
    loaded = load_prompt(path)
    assert len(loaded) == 8000
    assert peak_hz(loaded) == pytest.approx(1000, abs=2)
    # Passband: the level is kept (10000 peak -> 7071 rms), away from the edges.
    assert rms(loaded[400:-400]) == pytest.approx(10000 / np.sqrt(2), rel=0.01)


def test_6khz_tone_at_16k_is_attenuated_not_aliased(tmp_path: Path) -> None:
    reference = load_prompt(write_pcm16(tmp_path / "ref.wav", tone(1000, 16000, 1.0), 16000))
    alias = load_prompt(write_pcm16(tmp_path / "six.wav", tone(6000, 16000, 1.0), 16000))
    # Without a low-pass, 6 kHz decimated to 8 kHz would fold to 2 kHz at full level.
    attenuation_db = 20 * np.log10(rms(reference[400:-400]) / max(rms(alias[400:-400]), 1e-3))
    assert attenuation_db > 30
    naive = tone(6000, 16000, 1.0)[::2]
    assert rms(naive) > 5000  # the folding this test guards against is real


def test_resample_upsamples_and_validates() -> None:
    up = resample(tone(1000, 6000, 1.0), 6000)
    assert len(up) == 8000
    assert peak_hz(up) == pytest.approx(1000, abs=2)
    assert rms(up[400:-400]) == pytest.approx(10000 / np.sqrt(2), rel=0.01)
    with pytest.raises(ValueError):
        resample(np.zeros((2, 10), np.int16), 16000)


# ---------------------------------------------------------------------------- cache


def test_cache_hits_misses_and_read_only(tmp_path: Path) -> None:
    path = write_pcm16(tmp_path / "p.wav", tone(440, 8000, 0.1))
    cache = PromptCache()
    first = cache.get(path)
    again = [cache.get(str(path)) for _ in range(999)]
    assert all(item is first for item in again)
    stats = cache.stats
    assert (stats.hits, stats.misses, stats.evictions, stats.entries) == (999, 1, 0, 1)
    assert stats.bytes == first.nbytes == 1600
    assert not first.flags.writeable
    with pytest.raises(ValueError):
        first[0] = 1


def test_cache_reads_once_for_many_callers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_pcm16(tmp_path / "p.wav", tone(440, 8000, 0.1))
    import media.player as player

    reads: list[str] = []
    real = player.load_prompt

    def counting(where: str, **kwargs: float) -> Samples:
        reads.append(where)
        return real(where, **kwargs)

    monkeypatch.setattr(player, "load_prompt", counting)
    cache = PromptCache()
    for _ in range(1000):
        cache.get(path)
    assert reads == [os.path.abspath(path)]


def test_cache_evicts_least_recently_used_by_bytes(tmp_path: Path) -> None:
    paths = [write_pcm16(tmp_path / f"{i}.wav", np.full(1000, i, np.int16)) for i in range(3)]
    cache = PromptCache(max_bytes=4000)  # two prompts of 2000 bytes fit
    cache.get(paths[0])
    cache.get(paths[1])
    cache.get(paths[0])  # 0 is now the most recently used
    cache.get(paths[2])  # evicts 1
    stats = cache.stats
    assert (stats.misses, stats.hits, stats.evictions, stats.entries) == (3, 1, 1, 2)
    assert stats.bytes == 4000
    cache.get(paths[0])
    assert cache.stats.hits == 2
    cache.get(paths[1])  # read again
    assert cache.stats.misses == 4


def test_cache_entry_cap_and_oversized_prompt(tmp_path: Path) -> None:
    paths = [write_pcm16(tmp_path / f"{i}.wav", np.full(10, i, np.int16)) for i in range(4)]
    cache = PromptCache(max_entries=2)
    for path in paths:
        cache.get(path)
    assert cache.stats.entries == 2
    assert cache.stats.evictions == 2
    big = write_pcm16(tmp_path / "big.wav", np.ones(5000, np.int16))
    small_cache = PromptCache(max_bytes=1000)
    assert len(small_cache.get(big)) == 5000  # returned, not kept
    assert small_cache.stats.entries == 0
    assert small_cache.stats.bytes == 0


def test_modified_file_is_read_again(tmp_path: Path) -> None:
    path = write_pcm16(tmp_path / "p.wav", np.full(100, 5, np.int16))
    cache = PromptCache()
    assert cache.get(path)[0] == 5
    write_pcm16(path, np.full(100, 9, np.int16))
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2_000_000_000))
    assert cache.get(path)[0] == 9
    stats = cache.stats
    assert (stats.misses, stats.hits, stats.entries, stats.bytes) == (2, 0, 1, 200)


def test_cache_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="no such file"):
        PromptCache().get(tmp_path / "nope.wav")


# ---------------------------------------------------------------------------- playback


def test_playback_frames_exact_with_padding() -> None:
    prompt = np.arange(1, 401, dtype=np.int16)  # 2.5 frames
    playback = Playback(prompt)
    frames = list(playback)
    assert len(frames) == 3
    assert all(frame.shape == (FRAME_SAMPLES,) for frame in frames)
    np.testing.assert_array_equal(np.concatenate(frames)[:400], prompt)
    np.testing.assert_array_equal(frames[2][80:], 0)
    assert playback.done
    assert playback.position == 400
    assert playback.read_frame() is None


def test_playlist_is_seamless() -> None:
    first = np.arange(1, 101, dtype=np.int16)
    second = np.arange(101, 351, dtype=np.int16)
    playback = Playback([first, np.zeros(0, np.int16), second])
    assert playback.duration == 350
    out = np.full((3, FRAME_SAMPLES), -1, np.int16)
    assert playback.read_into(out[0])
    assert playback.position == 160
    assert playback.read_into(out[1])
    assert playback.read_into(out[2])
    assert not playback.read_into(out[2])
    np.testing.assert_array_equal(out.reshape(-1)[:350], np.arange(1, 351))
    np.testing.assert_array_equal(out.reshape(-1)[350:], 0)


def test_playback_exact_multiple_has_no_extra_frame() -> None:
    playback = Playback(np.ones(FRAME_SAMPLES * 4, np.int16))
    assert sum(1 for _ in playback) == 4


def test_stop_and_barge_in() -> None:
    prompt = np.ones(8000, np.int16)
    plain = Playback(prompt)
    plain.read_frame()
    assert plain.on_digit("5") is False
    assert not plain.done
    assert plain.read_frame() is not None

    barge = Playback(prompt, barge_in=True)
    barge.read_frame()
    assert barge.on_digit("7") is True
    assert barge.done
    assert barge.stopped_by_digit == "7"
    assert barge.read_frame() is None
    assert barge.position == FRAME_SAMPLES
    assert barge.on_digit("8") is False  # already stopped

    stopped = Playback(prompt)
    stopped.stop()
    assert stopped.done
    assert stopped.read_frame() is None


def test_playback_rejects_wrong_dtype() -> None:
    with pytest.raises(ValueError):
        Playback(np.zeros(10, np.float32))


# ---------------------------------------------------------------------------- music on hold


def test_moh_loops_sorted_files_and_skips_corrupt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    write_pcm16(tmp_path / "b.wav", np.full(200, 2, np.int16))
    write_pcm16(tmp_path / "a.wav", np.full(100, 1, np.int16))
    (tmp_path / "c.wav").write_bytes(b"RIFF junk")
    (tmp_path / "notes.txt").write_text("not music")
    cache = PromptCache()
    with caplog.at_level(logging.WARNING, logger="media.player"):
        moh = MusicOnHold(tmp_path, cache)
    assert [path.name for path in moh.tracks] == ["a.wav", "b.wav"]
    assert any("c.wav" in record.getMessage() for record in caplog.records)
    assert moh.loop_samples == 300
    stream = moh.stream(now=0.0)
    chunks = [stream.read_frame() for _ in range(6)]
    played = np.concatenate([chunk for chunk in chunks if chunk is not None])
    expected = np.tile(np.r_[np.full(100, 1), np.full(200, 2)], 4)[: 6 * FRAME_SAMPLES]
    np.testing.assert_array_equal(played, expected)
    assert stream.position == 6 * FRAME_SAMPLES
    stream.stop()
    assert stream.read_frame() is None


def test_moh_listeners_share_a_clock(tmp_path: Path) -> None:
    write_pcm16(tmp_path / "m.wav", np.arange(8000, dtype=np.int16))
    cache = PromptCache()
    moh = MusicOnHold(tmp_path, cache, epoch=100.0)
    early = moh.stream(now=100.0)
    for _ in range(10):
        early.read_frame()
    late = moh.stream(now=100.2 + 0.005)  # joins 10 frames in, rounded down to a frame
    assert late.offset == 10 * FRAME_SAMPLES
    for _ in range(60):  # wraps around the 1 s loop
        frame_early = early.read_frame()
        frame_late = late.read_frame()
        assert frame_early is not None and frame_late is not None
        np.testing.assert_array_equal(frame_early, frame_late)
    assert moh.stream(now=101.0).offset == 0  # one loop later
    second = MusicOnHold(tmp_path, cache)
    assert cache.stats.misses == 1 and cache.stats.hits == 1
    assert second.loop_samples == 8000


def test_moh_empty_folder_plays_silence(tmp_path: Path) -> None:
    moh = MusicOnHold(tmp_path / "missing", PromptCache())
    assert moh.empty
    frame = moh.stream(now=5.0).read_frame()
    assert frame is not None
    np.testing.assert_array_equal(frame, np.zeros(FRAME_SAMPLES))
