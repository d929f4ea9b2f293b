"""The wrap-up panel: after a call, the agent picks a disposition code, writes a note and
finishes, within the queue's wrap-up time (the countdown)."""

from __future__ import annotations

from PySide6.QtWidgets import (
    QComboBox,
    QGridLayout,
    QGroupBox,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QWidget,
)

from agent_client.view import Actions, Phase, View
from agent_client.widgets.durations import format_duration
from agent_client.widgets.tone import set_tone

__all__ = ["NO_CODE", "WrapUpPanel", "countdown_text"]

NO_CODE = "— no code —"
#: from this many seconds left the countdown turns red
_HURRY = 10.0


def countdown_text(remaining: float | None) -> str:
    """ "0:25 left", "Wrap-up time is over", or "No time limit" (the queue sets none)."""
    if remaining is None:
        return "No time limit"
    if remaining <= 0:
        return "Wrap-up time is over"
    return f"{format_duration(remaining)} left"


class WrapUpPanel(QGroupBox):
    """Enabled only in wrap-up. The code and the note start empty for each wrap-up and are
    kept while views arrive (the agent is typing)."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__("Wrap-up", parent)
        self._actions = actions
        self._codes: tuple[str, ...] = ()
        self._phase: Phase | None = None

        self.code = QComboBox()
        self.code.addItem(NO_CODE)
        self.note = QPlainTextEdit()
        self.note.setPlaceholderText("Note for this call")
        self.note.setMaximumHeight(70)
        self.countdown = QLabel("")
        self.countdown.setObjectName("countdown")
        self.done = QPushButton("Done")
        self.done.setObjectName("wrapUpDone")

        grid = QGridLayout(self)
        grid.addWidget(QLabel("Disposition"), 0, 0)
        grid.addWidget(self.code, 0, 1)
        grid.addWidget(self.countdown, 0, 2)
        grid.addWidget(self.note, 1, 0, 1, 3)
        grid.addWidget(self.done, 2, 2)
        grid.setColumnStretch(1, 1)

        self.done.clicked.connect(self._finish)

    def _finish(self) -> None:
        code = self.code.currentText() if self.code.currentIndex() > 0 else None
        self._actions.wrap_up(code, self.note.toPlainText().strip())

    def show_view(self, view: View) -> None:
        entering = view.phase is Phase.WRAP_UP and self._phase is not Phase.WRAP_UP
        self._phase = view.phase
        if view.codes != self._codes:
            self.code.clear()
            self.code.addItem(NO_CODE)
            self.code.addItems(list(view.codes))
            self._codes = view.codes
        if entering:
            self.code.setCurrentIndex(0)
            self.note.clear()
        wrapping = view.phase is Phase.WRAP_UP
        self.setEnabled(wrapping)
        if wrapping:
            self.countdown.setText(countdown_text(view.wrap_up_remaining))
            late = view.wrap_up_remaining is not None and view.wrap_up_remaining <= _HURRY
            set_tone(self.countdown, "error" if late else "")
        else:
            self.countdown.clear()
