"""Durations as a call-center agent reads them: ``3:25`` (minutes and seconds), ``1:02:03``
past an hour."""

from __future__ import annotations

import math

__all__ = ["format_duration"]


def format_duration(seconds: float) -> str:
    """``m:ss`` below an hour, ``h:mm:ss`` from an hour on; negative values read as zero and
    fractions are dropped (a timer shows whole seconds elapsed)."""
    whole = max(0, math.floor(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}:{minutes:02d}:{secs:02d}"
    return f"{minutes}:{secs:02d}"
