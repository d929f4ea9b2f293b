"""The tone of a piece of text in the window (fine, warning, error, muted), set as a dynamic
property the window's style sheet colours (``QLabel[tone="error"]``)."""

from __future__ import annotations

from typing import Literal

from PySide6.QtWidgets import QWidget

__all__ = ["Tone", "set_tone"]

Tone = Literal["", "ok", "warn", "error", "muted"]


def set_tone(widget: QWidget, tone: Tone) -> None:
    """Give ``widget`` the style of ``tone`` (re-polished only when the tone changes: Qt does
    not re-evaluate property selectors by itself)."""
    if widget.property("tone") == tone:
        return
    widget.setProperty("tone", tone)
    style = widget.style()
    style.unpolish(widget)
    style.polish(widget)
