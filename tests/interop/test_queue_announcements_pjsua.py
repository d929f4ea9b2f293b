"""What a caller waiting in a queue hears, with a real phone: music on hold, the position
announcement at its first time and period, and the periodic message between them.

The demo's ``general`` queue, with its timings shortened for the test (position first at 2 s,
every 6 s; a periodic message every 4 s), and no agent signed in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from media.player import load_prompt
from tests.interop.audio import find_prompt, heard_samples
from tests.interop.pjua import UserAgent
from tests.interop.servers import ServerProcess

pytestmark = [pytest.mark.interop, pytest.mark.usefixtures("pjsua2_ready")]

PROMPTS = Path(__file__).resolve().parents[2] / "configs" / "prompts" / "demo"
SWITCH_OVERRIDES = {
    "dialplan.at": "2026-11-24T10:00+09:00",
    "acd.queues": [
        {
            "name": "general",
            "announce_first": 2,
            "announce_position": 6,
            "periodic_prompt": "demo/queue-callback",
            "periodic_every": 4,
        },
        {"name": "account"},
    ],
}


def piece(name: str, start: float, seconds: float) -> np.ndarray:
    samples = load_prompt(PROMPTS / f"{name}.wav").astype(float)
    return samples[int(start * 8000) : int((start + seconds) * 8000)]


def test_position_and_periodic_announcements_over_the_music(
    switch: ServerProcess, user_agents: Callable[[str], UserAgent], tmp_path: Path
) -> None:
    carol = user_agents("1003")
    assert carol.register("1003", switch.users["1003"], switch.address, switch.domain) == 200
    call = carol.call("1003", f"sip:100@{switch.domain}")
    carol.wait_state(call, "CONFIRMED", timeout=10)
    time.sleep(1.0)
    carol.dtmf(call, "1")  # "please hold", then the queue
    deadline = time.monotonic() + 10
    while switch.api("/api/queues/general")["waiting"] != 1:
        assert time.monotonic() < deadline, "the caller never reached the queue"
        time.sleep(0.1)
    recording = tmp_path / "waiting.wav"
    carol.media_start(call, 300, str(recording))
    time.sleep(11.0)
    carol.media_stop(call)
    carol.hangup(call)
    carol.wait_state(call, "DISCONNECTED", timeout=10)

    heard = heard_samples(recording)
    position = piece("queue-position", 0.2, 0.9)
    first_score, first = find_prompt(heard[: 5 * 8000], position)
    again_score, again = find_prompt(heard[6 * 8000 :], position)
    again += 6 * 8000
    periodic_score, periodic = find_prompt(heard, piece("queue-callback", 0.5, 2.0))
    number_score, number = find_prompt(heard[first : first + 4 * 8000], piece("number-1", 0, 0.5))
    assert min(first_score, again_score, periodic_score, number_score) > 0.8, (
        first_score,
        again_score,
        periodic_score,
        number_score,
    )
    # position at 2 s, the periodic message at 4 s, the position again at 8 s (after joining)
    assert abs((again - first) / 8000 - 6.0) < 0.3, (first, again)
    started = first - 0.2 * 8000  # the position piece is from 0.2 s into its prompt
    assert abs((periodic - 0.5 * 8000 - started) / 8000 - 2.0) < 0.3, (first, periodic)
    assert 0.9 < number / 8000 < 1.6  # "one" right after "you are caller number"
    # music on hold before the first announcement
    quiet_start = heard[: max(0, first - 8000)]
    assert len(quiet_start) == 0 or np.sqrt(np.mean(quiet_start**2)) > 300
    held, doc = switch.wait_idle()
    assert held, doc
