"""A supervisor on a live call with real phones: whisper checked by frequency, the feature
codes' refusals, and the supervisor's call ended with the call it monitored."""

from __future__ import annotations

import time
import wave
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.interop.pjua import PjuaError, UserAgent, call_between
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]


def shares(path: Path, *hz: float) -> list[float]:
    """The share of the recording's power (after its first second) near each frequency."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(float)
    samples = samples[rate:]
    assert len(samples) > rate, f"{path.name}: {len(samples)} samples"
    spectrum = np.abs(np.fft.rfft(samples * np.hanning(len(samples)))) ** 2
    freqs = np.fft.rfftfreq(len(samples), 1 / rate)
    total = max(float(spectrum.sum()), 1e-9)
    return [float(spectrum[np.abs(freqs - f) < 15].sum()) / total for f in hz]


def test_supervisor_whispers_to_the_agent_only(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    alice, outgoing, bob, incoming = call_between(switch, user_agents)
    dave = user_agents("1004")
    assert dave.register("1004", switch.users["1004"], switch.address, switch.domain) == 200
    alice.media_start(outgoing, 440, str(tmp_path / "alice.wav"))
    bob.media_start(incoming, 1000, str(tmp_path / "bob.wav"))
    whisper = dave.call("1004", f"sip:*521002@{switch.domain}")
    dave.wait_state(whisper, "CONFIRMED", timeout=10)
    dave.media_start(whisper, 1700, str(tmp_path / "dave.wav"))
    dave.wait_state(whisper, "CONFIRMED", timeout=3)
    time.sleep(3.0)
    for agent, call in ((alice, outgoing), (bob, incoming), (dave, whisper)):
        agent.media_stop(call)
    alice.hangup(outgoing)
    alice.wait_state(outgoing, "DISCONNECTED", timeout=10)
    # the switch ends the supervisor's call with the call it monitored
    dave.wait_state(whisper, "DISCONNECTED", timeout=10)

    to_alice, leak_to_alice = shares(tmp_path / "alice.wav", 1000, 1700)
    bob_hears_alice, bob_hears_dave = shares(tmp_path / "bob.wav", 440, 1700)
    dave_hears_alice, dave_hears_bob = shares(tmp_path / "dave.wav", 440, 1000)
    assert to_alice > 0.8 and leak_to_alice < 0.01, (to_alice, leak_to_alice)
    assert bob_hears_alice > 0.2 and bob_hears_dave > 0.2, (bob_hears_alice, bob_hears_dave)
    assert dave_hears_alice > 0.2 and dave_hears_bob > 0.2, (dave_hears_alice, dave_hears_bob)
    held, doc = switch.wait_idle()
    assert held, doc


def test_feature_codes_refuse_non_supervisors_and_idle_extensions(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent]
) -> None:
    carol, dave = user_agents("1003"), user_agents("1004")
    for agent, user in ((carol, "1003"), (dave, "1004")):
        assert agent.register(user, switch.users[user], switch.address, switch.domain) == 200
    for agent, user, status in ((carol, "1003", 403), (dave, "1004", 404)):
        call = agent.call(user, f"sip:*511002@{switch.domain}")
        with pytest.raises(PjuaError):
            agent.wait_state(call, "CONFIRMED", timeout=5)
        info = agent.call_info(call)
        assert info["last_status"] == status, info
