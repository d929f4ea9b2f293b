"""The estimated MOS of the simplified G.107 E-model (agent_client.quality)."""

from __future__ import annotations

import pytest

from agent_client.quality import (
    DEGRADED_JITTER_MS,
    DEGRADED_LOSS_PERCENT,
    DEGRADED_MOS,
    assess,
    mos_from_r,
    r_factor,
)


def test_a_perfect_network_scores_about_4_4() -> None:
    quality = assess(jitter_ms=0.0, loss_percent=0.0, rtt_ms=0.0)
    assert 4.3 <= quality.mos <= 4.45, quality
    assert not quality.degraded
    assert quality.rtt_ms == 0.0


def test_five_percent_loss_scores_lower_and_is_degraded() -> None:
    clean = assess(0.0, 0.0, 20.0)
    lossy = assess(0.0, 5.0, 20.0)
    assert lossy.mos < clean.mos - 0.3, (clean, lossy)
    assert lossy.degraded


def test_more_jitter_scores_lower() -> None:
    steady = assess(2.0, 0.0, 40.0)
    jittery = assess(80.0, 0.0, 40.0)
    assert jittery.mos < steady.mos, (steady, jittery)
    assert jittery.degraded and not steady.degraded


def test_the_score_falls_monotonically_with_each_impairment() -> None:
    steps = {"jitter": 5.0, "loss": 0.5, "rtt": 20.0}
    for impair, step in steps.items():
        first = last = 5.0
        for n in range(60):
            args = {"jitter": 5.0, "loss": 0.5, "rtt": 50.0, impair: n * step}
            mos = assess(args["jitter"], args["loss"], args["rtt"]).mos
            assert mos <= last, (impair, n * step, mos, last)
            first, last = (mos if n == 0 else first), mos
        assert last < first - 0.5, (impair, first, last)


@pytest.mark.parametrize(
    ("jitter", "loss", "rtt"),
    [(0, 0, None), (0, 0, 0), (500, 0, 0), (0, 100, 0), (1000, 90, 5000), (-5, -1, -10)],
)
def test_the_score_stays_within_1_and_4_5(jitter: float, loss: float, rtt: float | None) -> None:
    mos = assess(jitter, loss, rtt).mos
    assert 1.0 <= mos <= 4.5


def test_mos_from_r_follows_annex_b() -> None:
    assert mos_from_r(-3) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(120) == 4.5
    assert mos_from_r(50) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)


def test_an_unknown_round_trip_counts_as_no_network_delay() -> None:
    assert r_factor(10.0, 1.0, None) == r_factor(10.0, 1.0, 0.0)
    assert r_factor(10.0, 1.0, 300.0) < r_factor(10.0, 1.0, None)


def test_long_delay_alone_degrades_the_call() -> None:
    quality = assess(0.0, 0.0, 900.0)  # 450 ms one way: past G.114's 400 ms limit
    assert quality.mos < DEGRADED_MOS and quality.degraded, quality


def test_degraded_thresholds() -> None:
    assert assess(DEGRADED_JITTER_MS, 0.0, 20.0).degraded
    assert not assess(DEGRADED_JITTER_MS - 1.0, 0.0, 20.0).degraded
    assert assess(0.0, DEGRADED_LOSS_PERCENT, 20.0).degraded
    assert not assess(0.0, DEGRADED_LOSS_PERCENT - 0.5, 20.0).degraded
