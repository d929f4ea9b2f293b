"""The agent's state: where the agent is (a large coloured line) and the two big buttons that
change it, Ready and Not ready with the reasons the switch offers."""

from __future__ import annotations

from PySide6.QtWidgets import QComboBox, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from agent_client.view import Actions, Phase, View
from agent_client.widgets.durations import format_duration

__all__ = ["StatePanel", "describe_state"]

#: phases from which the agent may become ready (the switch ends a wrap-up early on Ready)
_READY_FROM = frozenset({Phase.NOT_READY, Phase.WRAP_UP})
#: phases from which the agent may go (or change the reason of being) not ready
_NOT_READY_FROM = frozenset({Phase.READY, Phase.NOT_READY, Phase.WRAP_UP})


def describe_state(view: View) -> str:
    """The state line: "Ready — waiting for calls", "Not ready: lunch", "On call 1:05" ..."""
    phase = view.phase
    if phase is Phase.NOT_READY:
        return f"Not ready: {view.reason}" if view.reason else "Not ready"
    if phase is Phase.READY:
        return "Ready — waiting for calls"
    if phase is Phase.RINGING:
        return "Incoming call"
    if phase is Phase.ON_CALL:
        timer = f" {format_duration(view.call_seconds)}" if view.call_seconds is not None else ""
        hold = " (on hold)" if view.on_hold else ""
        return f"On call{timer}{hold}"
    if phase is Phase.WRAP_UP:
        return "Wrap-up"
    if phase is Phase.SIGNING_IN:
        return "Signing in…"
    return "Signed out"


class StatePanel(QWidget):
    """Ready / Not ready. The reason list comes from the switch (``view.reasons``); a choice
    the agent is making is kept while new views arrive."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._actions = actions
        self._reasons: tuple[str, ...] = ()
        self._reason: str | None = None

        self.state = QLabel("Signed out")
        self.state.setObjectName("stateLine")
        self.ready = QPushButton("Ready")
        self.ready.setObjectName("ready")
        self.not_ready = QPushButton("Not ready")
        self.not_ready.setObjectName("notReady")
        self.reason = QComboBox()
        self.reason.setObjectName("reason")
        self.reason.setMinimumWidth(160)
        self.reason.setToolTip("Reason for not being ready")

        buttons = QHBoxLayout()
        buttons.addWidget(self.ready, 2)
        buttons.addWidget(self.not_ready, 2)
        buttons.addWidget(self.reason, 1)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.addWidget(self.state)
        box.addLayout(buttons)

        self.ready.clicked.connect(self._actions.set_ready)
        self.not_ready.clicked.connect(self._set_not_ready)

    def _set_not_ready(self) -> None:
        reason = self.reason.currentText()
        if reason:
            self._actions.set_not_ready(reason)

    def show_view(self, view: View) -> None:
        self.state.setText(describe_state(view))
        if self.state.property("phase") != view.phase.value:
            self.state.setProperty("phase", view.phase.value)  # the style sheet's colour
            self.state.style().unpolish(self.state)
            self.state.style().polish(self.state)
        if view.reasons != self._reasons:
            chosen = self.reason.currentText()
            self.reason.clear()
            self.reason.addItems(list(view.reasons))
            if chosen in view.reasons:
                self.reason.setCurrentText(chosen)
            self._reasons = view.reasons
        if view.reason != self._reason:
            # the switch changed the reason in force: show it as the current choice
            if view.reason in view.reasons:
                self.reason.setCurrentText(view.reason)
            self._reason = view.reason
        self.ready.setEnabled(view.phase in _READY_FROM)
        can_pause = view.phase in _NOT_READY_FROM and bool(view.reasons)
        self.not_ready.setEnabled(can_pause)
        self.reason.setEnabled(can_pause)
