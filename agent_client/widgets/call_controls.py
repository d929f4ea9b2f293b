"""The call buttons: answer, hang up, hold, mute, and the help button that raises the agent's
hand to the supervisors or brings one into the call (escalation)."""

from __future__ import annotations

from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import QGridLayout, QPushButton, QWidget

from agent_client.view import Actions, Phase, View

__all__ = ["ANSWER_KEYS", "HANG_UP_KEYS", "CallControls"]

ANSWER_KEYS = ("F5", "Ctrl+Return")
HANG_UP_KEYS = ("F6", "Ctrl+Shift+Return")


class CallControls(QWidget):
    """Answer (or decline) only while the phone rings; hang up, hold, mute and help only on a
    call. Hold and mute show the state the view reports (the renderer keeps no state of its
    own): a click asks for the opposite of what is shown."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._actions = actions
        self._on_hold = False
        self._muted = False

        self.answer = QPushButton(f"Answer ({ANSWER_KEYS[0]})")
        self.answer.setObjectName("answer")
        self.hang_up = QPushButton(f"Hang up ({HANG_UP_KEYS[0]})")
        self.hang_up.setObjectName("hangUp")
        self.hold = QPushButton("Hold")
        self.mute = QPushButton("Mute")
        self.help = QPushButton("Help")
        self.help.setObjectName("help")
        self.help.setToolTip("Raise your hand: the supervisors see that you need help")
        self.conference = QPushButton("Bring supervisor in")
        self.conference.setToolTip("Raise your hand and conference a supervisor into this call")

        grid = QGridLayout(self)
        grid.setContentsMargins(0, 0, 0, 0)
        grid.addWidget(self.answer, 0, 0, 1, 2)
        grid.addWidget(self.hang_up, 0, 2, 1, 2)
        grid.addWidget(self.hold, 1, 0)
        grid.addWidget(self.mute, 1, 1)
        grid.addWidget(self.help, 1, 2)
        grid.addWidget(self.conference, 1, 3)

        self.answer.clicked.connect(self._actions.answer)
        self.hang_up.clicked.connect(self._actions.hang_up)
        self.hold.clicked.connect(lambda: self._actions.hold(not self._on_hold))
        self.mute.clicked.connect(lambda: self._actions.mute(not self._muted))
        self.help.clicked.connect(lambda: self._actions.raise_help(False))
        self.conference.clicked.connect(lambda: self._actions.raise_help(True))

    def install_shortcuts(self, window: QWidget) -> None:
        """Answer and hang up from the keyboard anywhere in ``window``; a key does nothing
        while its button is disabled."""
        for keys, button in ((ANSWER_KEYS, self.answer), (HANG_UP_KEYS, self.hang_up)):
            for key in keys:
                shortcut = QShortcut(QKeySequence(key), window)
                shortcut.activated.connect(lambda b=button: b.click() if b.isEnabled() else None)

    def show_view(self, view: View) -> None:
        on_call = view.phase is Phase.ON_CALL
        self._on_hold = view.on_hold
        self._muted = view.muted
        ringing = view.phase is Phase.RINGING
        self.answer.setEnabled(ringing)
        # while it rings, the same button declines the offer (the switch offers it elsewhere)
        self.hang_up.setEnabled(on_call or ringing)
        self.hang_up.setText(f"{'Decline' if ringing else 'Hang up'} ({HANG_UP_KEYS[0]})")
        # while consulting, the customer is on hold until the transfer completes or is cancelled
        self.hold.setEnabled(on_call and not view.consulting)
        self.hold.setText("Resume" if view.on_hold else "Hold")
        self.mute.setEnabled(on_call)
        self.mute.setText("Unmute" if view.muted else "Mute")
        self.help.setEnabled(on_call and not view.help_raised)
        self.help.setText("Hand raised" if view.help_raised else "Help")
        self.conference.setEnabled(on_call)
