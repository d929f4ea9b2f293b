"""The call's audio quality as the agent hears it, estimated from RTP/RTCP statistics.

A simplified ITU-T G.107 E-model for G.711 (PCMU/PCMA) with packet loss concealment:

- ``R = Ro - Is - Id - Ie_eff`` with the default ``Ro - Is = 93.2`` (G.107 §7.1, Table 3
  defaults; no advantage factor ``A``);
- ``Id``, the delay impairment, from the one-way mouth-to-ear delay ``Ta`` by the usual
  simplification of G.107 §7.3 (Cole and Rosenbluth): ``0.024 Ta + 0.11 (Ta - 177.3)`` above
  177.3 ms, without the second term below;
- ``Ie_eff = Ie + (95 - Ie) Ppl / (Ppl / BurstR + Bpl)`` (G.107 §7.4) with G.711's ``Ie = 0``
  and ``Bpl = 25.1`` (G.113 Appendix I, G.711 with PLC), random loss (``BurstR = 1``);
- the MOS from R by G.107 Annex B (B.4), kept within 1.0 .. 4.5.

The one-way delay is half the RTCP round trip plus what jitter costs (a jitter buffer holds
about twice the interarrival jitter) plus the packetisation and the headset's buffering. An
unknown round trip (no RTCP report yet) counts as no network delay.
"""

from __future__ import annotations

import math

from agent_client.view import CallQuality

__all__ = [
    "DEGRADED_JITTER_MS",
    "DEGRADED_LOSS_PERCENT",
    "DEGRADED_MOS",
    "assess",
    "degraded",
    "mos_from_r",
    "one_way_delay_ms",
    "r_factor",
]

#: ``Ro - Is`` with every G.107 parameter at its default value
R_DEFAULT = 93.2
#: G.711's equipment impairment (G.113 Appendix I)
IE_G711 = 0.0
#: G.711's packet-loss robustness with packet loss concealment (G.113 Appendix I)
BPL_G711_PLC = 25.1
#: one G.711 frame of 20 ms per RTP packet
PACKETISATION_MS = 20.0
#: what the headset bridge and the sound device add (agent_client.headset)
HEADSET_MS = 40.0
#: a jitter buffer holds about this many times the interarrival jitter
JITTER_BUFFER_FACTOR = 2.0

#: below this MOS (R under 70: "many users dissatisfied", G.107 Annex B) the call is degraded
DEGRADED_MOS = 3.6
#: this much loss is heard as clipped words even when the average MOS holds
DEGRADED_LOSS_PERCENT = 5.0
#: this much jitter makes the jitter buffer drop or stretch audio audibly
DEGRADED_JITTER_MS = 50.0


def one_way_delay_ms(jitter_ms: float, rtt_ms: float | None) -> float:
    """The mouth-to-ear delay ``Ta`` in milliseconds."""
    network = max(rtt_ms, 0.0) / 2.0 if rtt_ms is not None and math.isfinite(rtt_ms) else 0.0
    buffered = JITTER_BUFFER_FACTOR * max(jitter_ms, 0.0)
    return network + buffered + PACKETISATION_MS + HEADSET_MS


def r_factor(jitter_ms: float, loss_percent: float, rtt_ms: float | None) -> float:
    """The transmission rating ``R`` (0 .. 93.2) of a G.711 call."""
    delay = one_way_delay_ms(jitter_ms, rtt_ms)
    i_d = 0.024 * delay + (0.11 * (delay - 177.3) if delay > 177.3 else 0.0)
    loss = min(max(loss_percent, 0.0), 100.0)
    ie_eff = IE_G711 + (95.0 - IE_G711) * loss / (loss + BPL_G711_PLC)
    return max(R_DEFAULT - i_d - ie_eff, 0.0)


def mos_from_r(r: float) -> float:
    """The estimated conversational MOS for ``R`` (G.107 Annex B, B.4), within 1.0 .. 4.5."""
    if r <= 0.0:
        return 1.0
    if r >= 100.0:
        return 4.5
    mos = 1.0 + 0.035 * r + r * (r - 60.0) * (100.0 - r) * 7e-6
    return min(max(mos, 1.0), 4.5)


def degraded(mos: float, jitter_ms: float, loss_percent: float) -> bool:
    """Whether the window should warn the agent: a poor MOS, or loss or jitter high enough
    to be heard as gaps whatever the average says."""
    return (
        mos < DEGRADED_MOS
        or loss_percent >= DEGRADED_LOSS_PERCENT
        or jitter_ms >= DEGRADED_JITTER_MS
    )


def assess(jitter_ms: float, loss_percent: float, rtt_ms: float | None) -> CallQuality:
    """The call quality the window shows, from the stream's jitter and loss (as received,
    RFC 3550 §6.4.1) and the RTCP round trip (None when not measured yet)."""
    jitter = max(jitter_ms, 0.0)
    loss = min(max(loss_percent, 0.0), 100.0)
    mos = round(mos_from_r(r_factor(jitter, loss, rtt_ms)), 2)
    return CallQuality(
        jitter_ms=jitter,
        loss_percent=loss,
        rtt_ms=rtt_ms,
        mos=mos,
        degraded=degraded(mos, jitter, loss),
    )
