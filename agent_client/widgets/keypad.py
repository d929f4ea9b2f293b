"""The DTMF keypad: the twelve keys of a phone (RFC 4733 events 0-9, * and #)."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QGroupBox, QPushButton, QWidget

from agent_client.view import Actions, Phase, View

__all__ = ["KEYS", "Keypad"]

KEYS = ("1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "0", "#")


class Keypad(QGroupBox):
    """Twelve keys sending DTMF on the call; enabled only on a call."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__("Keypad", parent)
        self._actions = actions
        self.keys: dict[str, QPushButton] = {}
        grid = QGridLayout(self)
        for index, key in enumerate(KEYS):
            button = QPushButton(key)
            button.setObjectName("key")
            button.clicked.connect(lambda _=False, k=key: self._actions.send_dtmf(k))
            grid.addWidget(button, index // 3, index % 3)
            self.keys[key] = button

    def show_view(self, view: View) -> None:
        self.setEnabled(view.phase is Phase.ON_CALL)
