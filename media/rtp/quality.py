"""Listening quality of a call leg estimated from its RTP statistics: the E-model.

ITU-T G.107 rates a connection by a transmission rating factor R (0-100) and maps it to an
estimated mean opinion score (MOS, 1-4.5). From what RTP and RTCP measure, this module uses
the simplified form of Cole and Rosenbluth ("Voice over IP performance monitoring", ACM
SIGCOMM CCR 31(2), 2001), which keeps G.107's default values for everything not measured:

* ``R = 93.2 - Id - Ie_eff`` (93.2: G.107 with all default parameters);
* delay impairment ``Id = 0.024 d + 0.11 (d - 177.3) H(d - 177.3)``, ``d`` the one-way mouth-
  to-ear delay in ms (here: half the RTCP round trip, plus the jitter buffer and 20 ms of
  packetisation), ``H`` the step function;
* equipment impairment under random loss (G.107 §7.4, G.113 Appendix I):
  ``Ie_eff = Ie + (95 - Ie) Ppl / (Ppl + Bpl)`` with ``Ie = 0`` and ``Bpl = 25.1`` for G.711
  with packet loss concealment (4.3 without);
* ``MOS = 1 + 0.035 R + 7e-6 R (R - 60) (100 - R)`` for ``0 < R < 100`` (G.107 Annex B).

An estimate, not a measurement: it is what supervisors and the agent's softphone show to
tell a good home connection from a bad one, as hosted contact centres do.
"""

from __future__ import annotations

__all__ = ["estimate_mos", "mos_from_r", "r_factor"]

_R0 = 93.2
_BPL_G711_PLC = 25.1


def r_factor(one_way_delay_ms: float, loss: float, bpl: float = _BPL_G711_PLC) -> float:
    """The rating R for a one-way delay (ms) and a packet loss ratio (0-1)."""
    d = max(0.0, one_way_delay_ms)
    delay_impairment = 0.024 * d + (0.11 * (d - 177.3) if d > 177.3 else 0.0)
    ppl = min(max(loss, 0.0), 1.0) * 100.0
    equipment = 95.0 * ppl / (ppl + bpl) if ppl > 0 else 0.0
    return _R0 - delay_impairment - equipment


def mos_from_r(r: float) -> float:
    """G.107 Annex B: the estimated MOS of a rating R."""
    if r <= 0:
        return 1.0
    if r >= 100:
        return 4.5
    return 1.0 + 0.035 * r + 7e-6 * r * (r - 60.0) * (100.0 - r)


def estimate_mos(
    rtt_ms: float | None,
    jitter_ms: float,
    loss: float,
    *,
    packet_ms: float = 20.0,
) -> float:
    """MOS of a G.711 leg from its RTCP round trip (None: not known yet, taken as 0), its
    interarrival jitter and its loss ratio. The jitter buffer is assumed to hold twice the
    jitter (an adaptive buffer's usual target)."""
    delay = (rtt_ms or 0.0) / 2.0 + 2.0 * max(jitter_ms, 0.0) + packet_ms
    return mos_from_r(r_factor(delay, loss))
