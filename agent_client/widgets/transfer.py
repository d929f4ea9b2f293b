"""Transfers: blind (the customer goes straight to the target) and consultative (the agent
talks to the target first, the customer on hold, then completes or cancels), as REFER does it
without and with Replaces (RFC 3515, RFC 3891)."""

from __future__ import annotations

from PySide6.QtWidgets import QGridLayout, QGroupBox, QLineEdit, QPushButton, QWidget

from agent_client.view import Actions, Phase, View

__all__ = ["TransferPanel"]


class TransferPanel(QGroupBox):
    """A target and four buttons; only those that apply are enabled."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__("Transfer", parent)
        self._actions = actions
        self._on_call = False
        self._consulting = False

        self.target = QLineEdit()
        self.target.setPlaceholderText("Number or extension")
        self.blind = QPushButton("Blind transfer")
        self.consult = QPushButton("Consult")
        self.complete = QPushButton("Complete transfer")
        self.cancel = QPushButton("Cancel consult")

        grid = QGridLayout(self)
        grid.addWidget(self.target, 0, 0, 1, 2)
        grid.addWidget(self.blind, 1, 0)
        grid.addWidget(self.consult, 1, 1)
        grid.addWidget(self.complete, 2, 0)
        grid.addWidget(self.cancel, 2, 1)

        self.target.textChanged.connect(self._refresh)
        self.blind.clicked.connect(lambda: self._actions.transfer_blind(self._target()))
        self.consult.clicked.connect(lambda: self._actions.consult(self._target()))
        self.complete.clicked.connect(self._actions.complete_transfer)
        self.cancel.clicked.connect(self._actions.cancel_consult)
        self._refresh()

    def _target(self) -> str:
        return self.target.text().strip()

    def _refresh(self) -> None:
        can_start = self._on_call and not self._consulting
        self.target.setEnabled(can_start)
        self.blind.setEnabled(can_start and bool(self._target()))
        self.consult.setEnabled(can_start and bool(self._target()))
        self.complete.setEnabled(self._on_call and self._consulting)
        self.cancel.setEnabled(self._on_call and self._consulting)

    def show_view(self, view: View) -> None:
        was_on_call = self._on_call
        self._on_call = view.phase is Phase.ON_CALL
        self._consulting = view.consulting is not None
        if was_on_call and not self._on_call:
            self.target.clear()  # a target belongs to the call it was typed for
        self._refresh()
