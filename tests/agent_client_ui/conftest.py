"""Qt on the offscreen platform (no display needed), one QApplication for the session, and a
recording stand-in for the controller: the window's collaborator, not the thing under test."""

from __future__ import annotations

import os

os.environ["QT_QPA_PLATFORM"] = "offscreen"  # before PySide6 is imported anywhere

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication

from agent_client.window import AgentWindow

# the switch's real agent API on loopback, for the window wired to the real controller
from tests.agent_client_core.conftest import local_switch  # noqa: F401

_REPORTS = frozenset({"touched", "screen_pop_viewed"})


class RecordingActions:
    """Records every call the window makes, as (method, args) in order."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def _record(self, name: str, *args: Any) -> None:
        self.calls.append((name, args))

    def named(self, name: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of ``name``."""
        return [args for called, args in self.calls if called == name]

    def requests(self) -> list[tuple[str, tuple[Any, ...]]]:
        """The calls that ask for something: all but the reports ``touched`` (every click
        makes one) and ``screen_pop_viewed`` (every new offer makes one)."""
        return [call for call in self.calls if call[0] not in _REPORTS]

    def sign_in(self, agent: str, password: str, code: str) -> None:
        self._record("sign_in", agent, password, code)

    def sign_out(self) -> None:
        self._record("sign_out")

    def set_ready(self) -> None:
        self._record("set_ready")

    def set_not_ready(self, reason: str) -> None:
        self._record("set_not_ready", reason)

    def answer(self) -> None:
        self._record("answer")

    def hang_up(self) -> None:
        self._record("hang_up")

    def hold(self, on: bool) -> None:
        self._record("hold", on)

    def mute(self, on: bool) -> None:
        self._record("mute", on)

    def send_dtmf(self, key: str) -> None:
        self._record("send_dtmf", key)

    def transfer_blind(self, target: str) -> None:
        self._record("transfer_blind", target)

    def consult(self, target: str) -> None:
        self._record("consult", target)

    def complete_transfer(self) -> None:
        self._record("complete_transfer")

    def cancel_consult(self) -> None:
        self._record("cancel_consult")

    def raise_help(self, conference: bool) -> None:
        self._record("raise_help", conference)

    def wrap_up(self, code: str | None, note: str) -> None:
        self._record("wrap_up", code, note)

    def test_call(self) -> None:
        self._record("test_call")

    def choose_devices(self, input: str | None, output: str | None) -> None:
        self._record("choose_devices", input, output)

    def screen_pop_viewed(self, call_id: str) -> None:
        self._record("screen_pop_viewed", call_id)

    def touched(self) -> None:
        self._record("touched")


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Run the event loop until ``condition`` holds or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        QTest.qWait(10)
    return True


@pytest.fixture(scope="session")
def qapp() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(["agent-client-ui-tests"])
    assert isinstance(app, QApplication)
    return app


@pytest.fixture
def actions() -> RecordingActions:
    return RecordingActions()


@pytest.fixture
def window(qapp: QApplication, actions: RecordingActions) -> Iterator[AgentWindow]:
    win = AgentWindow(actions)
    win.show()
    win.activateWindow()
    QTest.qWaitForWindowExposed(win)
    yield win
    win.close()
    win.deleteLater()
    QTest.qWait(1)  # let the deferred delete run before the next window
