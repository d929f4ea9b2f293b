"""The E-model estimate of a leg's listening quality (ITU-T G.107, simplified)."""

from __future__ import annotations

import pytest

from media.rtp.quality import estimate_mos, mos_from_r, r_factor


def test_a_clean_short_g711_connection_rates_about_4_4() -> None:
    # G.711, no loss, 20 ms one way: R = 93.2 - 0.48, MOS about 4.4 (the G.711 ceiling)
    assert r_factor(20.0, 0.0) == pytest.approx(92.72)
    assert estimate_mos(0.0, 0.0, 0.0) == pytest.approx(mos_from_r(92.72))
    assert 4.35 < estimate_mos(0.0, 0.0, 0.0) < 4.45


def test_annex_b_mapping_end_points_and_known_values() -> None:
    assert mos_from_r(-5) == 1.0 and mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5 and mos_from_r(120) == 4.5
    # R = 50 is "many users dissatisfied" (G.107 Table B.1): MOS about 2.6
    assert mos_from_r(50.0) == pytest.approx(2.575, abs=0.01)


def test_delay_past_177_ms_costs_more_per_ms() -> None:
    below = r_factor(170.0, 0.0) - r_factor(160.0, 0.0)
    above = r_factor(310.0, 0.0) - r_factor(300.0, 0.0)
    assert below == pytest.approx(-0.24)
    assert above == pytest.approx(-0.24 - 1.1)


def test_loss_and_jitter_lower_the_estimate_in_order() -> None:
    clean = estimate_mos(40.0, 2.0, 0.0)
    lossy = estimate_mos(40.0, 2.0, 0.05)
    jittery_lossy = estimate_mos(40.0, 60.0, 0.05)
    assert clean > lossy > jittery_lossy
    # 5 % random loss with concealment: Ie_eff = 95 * 5 / 30.1
    assert r_factor(0.0, 0.05) == pytest.approx(93.2 - 95 * 5 / 30.1)
    assert estimate_mos(None, 0.0, 1.0) < 1.6  # everything lost
