"""The agent's own figures for the day (from the switch's queue log): calls taken, average
handle time (talk plus wrap-up), time ready and time on break."""

from __future__ import annotations

from PySide6.QtWidgets import QGroupBox, QHBoxLayout, QLabel, QWidget

from agent_client.view import DayFigures, View
from agent_client.widgets.durations import format_duration

__all__ = ["FiguresPanel", "figure_texts"]


def figure_texts(figures: DayFigures) -> tuple[str, str, str, str]:
    """ "Calls 12", "AHT 3:25", "Ready 1:02:03", "Break 0:15"."""
    return (
        f"Calls {figures.calls}",
        f"AHT {format_duration(figures.average_handle)}",
        f"Ready {format_duration(figures.ready_time)}",
        f"Break {format_duration(figures.break_time)}",
    )


class FiguresPanel(QGroupBox):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("Today", parent)
        self.calls = QLabel()
        self.aht = QLabel()
        self.aht.setToolTip("Average handle time: talk plus wrap-up")
        self.ready = QLabel()
        self.on_break = QLabel()
        row = QHBoxLayout(self)
        for label in (self.calls, self.aht, self.ready, self.on_break):
            label.setObjectName("figure")
            row.addWidget(label)
        self.show_view(View())

    def show_view(self, view: View) -> None:
        texts = figure_texts(view.figures)
        for label, text in zip(
            (self.calls, self.aht, self.ready, self.on_break), texts, strict=True
        ):
            label.setText(text)
