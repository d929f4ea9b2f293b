"""The media engine under an IVR session, on real loopback sockets: a local call bridged to a
second leg keeps one continuous stream toward the caller; ringback; a leg's audio captured
(voicemail); a recording started on demand and stopped before the end of the call."""

from __future__ import annotations

import asyncio
import itertools
import wave
from pathlib import Path

import numpy as np

from media.codecs.g711 import ULAW_DECODE_TABLE, ulaw_encode
from media.engine import MediaEngine
from media.rtp.packet import RtpPacket
from media.transport import PortPool
from tests.integration.test_media_relay import Phone, free_even_pair


def tone(hz: float, samples: int) -> np.ndarray:
    t = np.arange(samples) / 8000
    return np.round(8000 * np.sin(2 * np.pi * hz * t)).astype(np.int16)


async def drain(phone: Phone, quiet: float = 0.1) -> list[RtpPacket]:
    got = []
    while True:
        try:
            packet, _ = await phone.recv(timeout=quiet)
        except TimeoutError:
            return got
        got.append(packet)


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * 8000 / len(samples))


def engine_for(tmp_path: Path, **kwargs: object) -> MediaEngine:
    first = free_even_pair()
    pool = PortPool(first, first + 3)
    return MediaEngine(asyncio.get_running_loop(), "127.0.0.1", "127.0.0.1", pool, **kwargs)  # type: ignore[arg-type]


async def test_a_local_call_bridged_keeps_one_stream_toward_the_caller(tmp_path: Path) -> None:
    engine = engine_for(tmp_path)
    caller, agent = Phone(), Phone()
    try:
        a_port, b_port = engine.allocate("c1")
        await asyncio.sleep(0.05)
        engine.set_remote("c1", "a", *caller.addr)
        engine.attach_local("c1", 0)
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        assert engine.play("c1", [tone(500, 1600)], on_done=done.set_result)
        assert await asyncio.wait_for(done, 2.0) is None
        prompt = await drain(caller)
        assert len(prompt) == 10
        # ringback while the agent's phone rings: 425 Hz
        assert engine.play_stream("c1", "ringback")
        await asyncio.sleep(0.5)
        engine.stop_playback("c1")
        ringback = await drain(caller)
        assert len(ringback) >= 15
        heard = ULAW_DECODE_TABLE[np.frombuffer(b"".join(p.payload for p in ringback), np.uint8)]
        assert abs(dominant_hz(heard[:2400].astype(float)) - 425) < 10
        # the agent answers: the relay starts, on the same stream toward the caller
        engine.end_local("c1")
        engine.set_remote("c1", "b", *agent.addr)
        engine.connect("c1")
        for i in range(5):
            agent.send(("127.0.0.1", b_port), 100 + i, 1000 + 160 * i, 77, bytes([0x55]) * 160)
            caller.send(("127.0.0.1", a_port), 300 + i, 9000 + 160 * i, 88, bytes([0x66]) * 160)
            await asyncio.sleep(0.02)
        relayed = await drain(caller)
        to_agent = await drain(agent)
        assert [p.payload[:1] for p in relayed] == [b"\x55"] * 5
        assert [p.payload[:1] for p in to_agent] == [b"\x66"] * 5
        stream = prompt + ringback + relayed
        assert {p.ssrc for p in stream} == {prompt[0].ssrc}  # one source toward the caller
        seqs = [p.sequence_number for p in stream]
        assert all((b - a) % 65536 == 1 for a, b in itertools.pairwise(seqs)), seqs
        # no playback is left that could still write to the caller
        assert not engine.play("c1", [tone(500, 160)])
    finally:
        engine.close()
        caller.sock.close()
        agent.sock.close()


async def test_a_leg_captured_for_voicemail() -> None:
    first = free_even_pair()
    loop = asyncio.get_running_loop()
    engine = MediaEngine(loop, "127.0.0.1", "127.0.0.1", PortPool(first, first + 3))
    caller = Phone()
    digits: list[str] = []
    try:
        a_port, _ = engine.allocate("vm")
        await asyncio.sleep(0.05)
        engine.set_remote("vm", "a", *caller.addr, events_pt=101)
        engine.attach_local("vm", 0, lambda side, d: digits.append(d.digit))
        capture = engine.capture("vm", max_seconds=1.0)
        assert capture is not None
        voice = tone(440, 8000 * 2)
        for i in range(60):  # 1.2 s sent, 1 s kept
            payload = bytes(ulaw_encode(voice[i * 160 : (i + 1) * 160]))
            caller.send(("127.0.0.1", a_port), i, 160 * i, 5, payload)
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.1)
        assert capture.full and capture.seconds == 1.0
        kept = capture.samples()
        assert abs(dominant_hz(kept.astype(float)) - 440) < 5
        assert engine.capture("nope", 1.0) is None
    finally:
        engine.close()
        caller.sock.close()


async def test_recording_started_on_demand_and_stopped_early(tmp_path: Path) -> None:
    engine = engine_for(tmp_path, recordings=tmp_path, record_calls=False)
    caller, agent = Phone(), Phone()
    try:
        a_port, b_port = engine.allocate("rec")
        await asyncio.sleep(0.05)
        engine.set_remote("rec", "a", *caller.addr)
        engine.attach_local("rec", 0)
        assert engine.control_recording("rec", "pause") is None  # nothing recorded yet
        assert engine.control_recording("rec", "start") is True  # from the bridge on
        assert engine.control_recording("rec", "start") is False
        engine.end_local("rec")
        engine.set_remote("rec", "b", *agent.addr)
        engine.connect("rec")
        a_voice, b_voice = tone(400, 8000), tone(1000, 8000)
        for i in range(40):
            frame = slice(i * 160, (i + 1) * 160)
            caller.send(("127.0.0.1", a_port), i, 160 * i, 1, bytes(ulaw_encode(a_voice[frame])))
            agent.send(("127.0.0.1", b_port), i, 160 * i, 2, bytes(ulaw_encode(b_voice[frame])))
            await asyncio.sleep(0.02)
        assert engine.control_recording("rec", "stop") is True
        stats = await asyncio.wait_for(engine.recording_result("rec"), 5.0)
        assert stats is not None and 0.5 < stats.duration_seconds < 1.2
        with wave.open(str(tmp_path / "rec.wav")) as wav:
            assert wav.getnchannels() == 2
            data = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2)
        middle = data[len(data) // 4 : len(data) // 4 + 2048].astype(float)
        assert abs(dominant_hz(middle[:, 0]) - 400) < 10  # the caller on the left
        assert abs(dominant_hz(middle[:, 1]) - 1000) < 10  # the called party on the right
        assert engine.control_recording("rec", "stop") is None  # nothing left to stop
        # the relay goes on without the recording
        assert len(await drain(agent)) == 40
        caller.send(("127.0.0.1", a_port), 99, 99 * 160, 1, bytes([0x11]) * 160)
        (packet,) = await drain(agent)
        assert packet.payload[:1] == b"\x11"
    finally:
        engine.close()
        caller.sock.close()
        agent.sock.close()
