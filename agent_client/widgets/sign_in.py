"""The sign-in form: agent id, password and the 6-digit code of the agent's authenticator
(TOTP, RFC 6238), shown while the agent is signed out or signing in."""

from __future__ import annotations

from PySide6.QtCore import QRegularExpression, Qt
from PySide6.QtGui import QRegularExpressionValidator
from PySide6.QtWidgets import QFormLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from agent_client.view import Actions, Phase, View

__all__ = ["SignInForm"]


class SignInForm(QWidget):
    """Asks for the credentials and calls :meth:`Actions.sign_in`. The password and the code
    are cleared once they have been used (the form never keeps a secret longer than needed);
    the agent id stays for the next sign-in."""

    def __init__(self, actions: Actions, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._actions = actions
        self._phase: Phase | None = None

        title = QLabel("Sign in")
        title.setObjectName("formTitle")
        self.agent = QLineEdit()
        self.agent.setPlaceholderText("e.g. 1001")
        self.password = QLineEdit()
        self.password.setEchoMode(QLineEdit.EchoMode.Password)
        self.code = QLineEdit()
        self.code.setPlaceholderText("6 digits from your authenticator app")
        self.code.setMaxLength(6)
        self.code.setValidator(QRegularExpressionValidator(QRegularExpression(r"\d{0,6}")))
        self.submit = QPushButton("Sign in")
        self.submit.setObjectName("signIn")
        self.submit.setDefault(True)
        self.progress = QLabel("")

        form = QFormLayout()
        form.addRow("Agent id", self.agent)
        form.addRow("Password", self.password)
        form.addRow("Code", self.code)

        box = QVBoxLayout(self)
        box.addStretch(1)
        box.addWidget(title, 0, Qt.AlignmentFlag.AlignHCenter)
        box.addLayout(form)
        box.addWidget(self.submit)
        box.addWidget(self.progress, 0, Qt.AlignmentFlag.AlignHCenter)
        box.addStretch(2)
        self.setMaximumWidth(420)

        for edit in (self.agent, self.password, self.code):
            edit.textChanged.connect(self._refresh)
            edit.returnPressed.connect(self._sign_in)
        self.submit.clicked.connect(self._sign_in)
        self._refresh()

    def _complete(self) -> bool:
        return (
            bool(self.agent.text().strip())
            and bool(self.password.text())
            and len(self.code.text()) == 6
        )

    def _busy(self) -> bool:
        return self._phase is Phase.SIGNING_IN

    def _refresh(self) -> None:
        busy = self._busy()
        for edit in (self.agent, self.password, self.code):
            edit.setEnabled(not busy)
        self.submit.setEnabled(not busy and self._complete())
        self.progress.setText("Signing in…" if busy else "")

    def _sign_in(self) -> None:
        if self._busy() or not self._complete():
            return
        self._actions.sign_in(self.agent.text().strip(), self.password.text(), self.code.text())

    def show_view(self, view: View) -> None:
        previous, self._phase = self._phase, view.phase
        if previous is Phase.SIGNING_IN and view.phase is Phase.SIGNED_OUT:
            self.code.clear()  # refused: a code is good once, the agent types the next one
        elif view.phase not in (Phase.SIGNED_OUT, Phase.SIGNING_IN):
            self.password.clear()
            self.code.clear()
        if view.agent and not self.agent.text():
            self.agent.setText(view.agent)
        self._refresh()
