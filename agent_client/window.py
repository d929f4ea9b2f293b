"""The home agent's window (Qt, PySide6): a pure renderer of :class:`View` values that turns
the agent's input into :class:`Actions` calls. It holds no SIP, media or HTTP logic
(ARCHITECTURE.md, package map).

The controller hands views over with :meth:`AgentWindow.show_view` on the GUI thread, or with
:meth:`AgentWindow.post_view` from any thread (a queued Qt signal carries the view over). Any
key press, click, wheel turn or mouse movement in the window calls :meth:`Actions.touched` so
the idle sign-out starts again (pointer movements at most once a second).
"""

from __future__ import annotations

import math
import time
from collections import deque

from PySide6.QtCore import QEvent, QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from agent_client.view import Actions, Phase, View
from agent_client.widgets.banner import CallBanner
from agent_client.widgets.call_controls import CallControls
from agent_client.widgets.devices import DevicesPanel
from agent_client.widgets.figures import FiguresPanel
from agent_client.widgets.keypad import Keypad
from agent_client.widgets.quality import QualityPanel
from agent_client.widgets.sign_in import SignInForm
from agent_client.widgets.state import StatePanel
from agent_client.widgets.tone import Tone, set_tone
from agent_client.widgets.transfer import TransferPanel
from agent_client.widgets.wrap_up import WrapUpPanel

__all__ = ["AgentWindow", "idle_text", "phone_text", "vpn_text"]

#: pointer movements restart the idle timer at most this often (seconds)
_MOVE_INTERVAL = 1.0
#: call ids whose screen pop was reported viewed, remembered to report each once
_POPS_REMEMBERED = 64

_SIGNED_OUT = frozenset({Phase.SIGNED_OUT, Phase.SIGNING_IN})
_BUSY = frozenset({Phase.RINGING, Phase.ON_CALL})

_INPUT_EVENTS = frozenset(
    {
        QEvent.Type.KeyPress,
        QEvent.Type.MouseButtonPress,
        QEvent.Type.MouseButtonDblClick,
        QEvent.Type.Wheel,
        QEvent.Type.Shortcut,  # a key taken by a shortcut (F5 ...) never arrives as a press
    }
)
_MOVE_EVENTS = frozenset({QEvent.Type.MouseMove, QEvent.Type.HoverMove})

_STYLE = """
QLabel[tone="ok"] { color: #2e7d32; }
QLabel[tone="warn"] { color: #b26a00; }
QLabel[tone="error"] { color: #c62828; }
QLabel[tone="muted"] { color: #757575; font-style: italic; }
QLabel#stateLine { font-size: 20px; font-weight: bold; padding: 6px 10px;
                   border-radius: 4px; background: #eceff1; }
QLabel#stateLine[phase="ready"] { background: #c8e6c9; color: #1b5e20; }
QLabel#stateLine[phase="not_ready"] { background: #ffe0b2; color: #8a4b00; }
QLabel#stateLine[phase="ringing"] { background: #fff59d; color: #5d4000; }
QLabel#stateLine[phase="on_call"] { background: #bbdefb; color: #0d47a1; }
QLabel#stateLine[phase="wrap_up"] { background: #e1bee7; color: #4a148c; }
QLabel#idleWarning { background: #fff3cd; color: #8a4b00; font-weight: bold;
                     padding: 6px; border: 1px solid #e0b252; border-radius: 4px; }
QLabel#bannerHeadline { font-size: 16px; font-weight: bold; }
QLabel#caller { font-size: 18px; }
QLabel#formTitle { font-size: 20px; font-weight: bold; }
QPushButton { min-height: 28px; padding: 2px 10px; }
QPushButton#ready, QPushButton#notReady, QPushButton#answer, QPushButton#hangUp {
    min-height: 44px; font-size: 16px; font-weight: bold; border-radius: 4px; color: white; }
QPushButton#ready { background: #2e7d32; }
QPushButton#notReady { background: #ef6c00; }
QPushButton#answer { background: #2e7d32; }
QPushButton#hangUp { background: #c62828; }
QPushButton#ready:disabled, QPushButton#notReady:disabled, QPushButton#answer:disabled,
QPushButton#hangUp:disabled { background: #cfd8dc; color: #90a4ae; }
QPushButton#key { min-width: 44px; min-height: 34px; font-size: 15px; }
QLabel#figure { font-size: 14px; }
QLabel#countdown { font-size: 15px; font-weight: bold; }
QPushButton#wrapUpDone { min-width: 120px; min-height: 36px; font-weight: bold; }
QPushButton#signIn { min-height: 36px; font-weight: bold; }
QLabel#mos { font-weight: bold; }
QLabel#message[tone="error"] { color: #c62828; font-weight: bold; }
"""


def phone_text(view: View) -> tuple[str, Tone]:
    """ "Phone: registered", "Phone: offline: 408 — retrying" and its tone."""
    if view.registered:
        tone: Tone = "ok"
    elif view.registration.startswith("registering"):
        tone = "muted"
    else:
        tone = "error"
    return f"Phone: {view.registration}", tone


def vpn_text(view: View) -> tuple[str, Tone]:
    """ "VPN: switch answers on 10.66.0.1" and its tone (red when the check failed)."""
    if view.vpn_ok:
        tone: Tone = "ok"
    elif view.vpn == "not checked":
        tone = "muted"
    else:
        tone = "error"
    return f"VPN: {view.vpn}", tone


def idle_text(remaining: float) -> str:
    """The warning before the automatic sign-out, in whole seconds rounded up."""
    return f"Signing out in {max(0, math.ceil(remaining))} s — move the mouse to stay"


class _ActivityFilter(QObject):
    """Sees the application's input events and reports those meant for ``window``: its
    widgets, its shortcuts and the popups they open (a combo box's list)."""

    def __init__(self, window: AgentWindow, actions: Actions) -> None:
        super().__init__(window)
        self._window = window
        self._actions = actions
        self._last_move = -math.inf

    def _belongs(self, target: QObject) -> bool:
        node: QObject | None = target
        while node is not None:
            if node is self._window:
                return True
            node = node.parent()
        return False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        kind = event.type()
        if kind in _INPUT_EVENTS:
            if self._belongs(watched):
                self._actions.touched()
        elif kind in _MOVE_EVENTS:
            now = time.monotonic()
            if now - self._last_move >= _MOVE_INTERVAL and self._belongs(watched):
                self._last_move = now
                self._actions.touched()
        return False


class AgentWindow(QMainWindow):
    """The agent's softphone window. ``show_view`` renders a view; every control calls the
    matching :class:`Actions` method and changes nothing itself: the outcome comes back as
    the next view."""

    _view_posted = Signal(object)

    def __init__(self, actions: Actions) -> None:
        super().__init__()
        self._actions = actions
        self._view = View()
        self._popped: deque[str] = deque(maxlen=_POPS_REMEMBERED)
        self.setWindowTitle("Agent phone")
        self.setStyleSheet(_STYLE)
        self.resize(1040, 740)

        # top: the phone's and the VPN's status, who is signed in, sign out
        self.phone_status = QLabel()
        self.phone_status.setObjectName("phoneStatus")
        self.vpn_status = QLabel()
        self.vpn_status.setObjectName("vpnStatus")
        for label in (self.phone_status, self.vpn_status):
            label.setTextFormat(Qt.TextFormat.PlainText)
        self.agent_label = QLabel()
        self.agent_label.setTextFormat(Qt.TextFormat.PlainText)
        self.sign_out = QPushButton("Sign out")
        top = QHBoxLayout()
        top.addWidget(self.phone_status)
        top.addWidget(QLabel("·"))
        top.addWidget(self.vpn_status)
        top.addStretch(1)
        top.addWidget(self.agent_label)
        top.addWidget(self.sign_out)

        self.idle_warning = QLabel()
        self.idle_warning.setObjectName("idleWarning")
        self.idle_warning.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.idle_warning.setVisible(False)

        # the sign-in page
        self.sign_in = SignInForm(actions)
        sign_in_page = QWidget()
        centred = QHBoxLayout(sign_in_page)
        centred.addStretch(1)
        centred.addWidget(self.sign_in, 2)
        centred.addStretch(1)

        # the desk: the call on the left, the tools on the right
        self.state = StatePanel(actions)
        self.banner = CallBanner()
        self.calls = CallControls(actions)
        self.transfer = TransferPanel(actions)
        self.wrap_up = WrapUpPanel(actions)
        self.keypad = Keypad(actions)
        self.quality = QualityPanel()
        self.figures = FiguresPanel()
        self.devices = DevicesPanel(actions)
        desk = QWidget()
        left = QVBoxLayout()
        left.addWidget(self.state)
        left.addWidget(self.banner, 1)
        left.addWidget(self.calls)
        left.addWidget(self.transfer)
        left.addWidget(self.wrap_up)
        right = QVBoxLayout()
        right.addWidget(self.keypad)
        right.addWidget(self.quality)
        right.addWidget(self.figures)
        right.addWidget(self.devices)
        right.addStretch(1)
        columns = QHBoxLayout(desk)
        columns.setContentsMargins(0, 0, 0, 0)
        columns.addLayout(left, 3)
        columns.addLayout(right, 2)

        self.pages = QStackedWidget()
        self.pages.addWidget(sign_in_page)
        self.pages.addWidget(desk)
        self._sign_in_page = sign_in_page
        self._desk = desk

        central = QWidget()
        body = QVBoxLayout(central)
        body.addLayout(top)
        body.addWidget(self.idle_warning)
        body.addWidget(self.pages, 1)
        self.setCentralWidget(central)

        self.message = QLabel()
        self.message.setObjectName("message")
        self.message.setTextFormat(Qt.TextFormat.PlainText)
        self.statusBar().addWidget(self.message, 1)

        self.sign_out.clicked.connect(self._actions.sign_out)
        self.calls.install_shortcuts(self)
        self._view_posted.connect(self.show_view, Qt.ConnectionType.QueuedConnection)
        self._activity = _ActivityFilter(self, actions)
        app = QApplication.instance()
        if app is not None:
            app.installEventFilter(self._activity)
        self.show_view(self._view)

    @property
    def view(self) -> View:
        """The view shown now."""
        return self._view

    def post_view(self, view: View) -> None:
        """Hand ``view`` to the window from any thread; it is shown on the GUI thread."""
        self._view_posted.emit(view)

    @Slot(object)
    def show_view(self, view: View) -> None:
        """Render ``view`` (on the GUI thread)."""
        self._view = view
        signed_out = view.phase in _SIGNED_OUT
        self.pages.setCurrentWidget(self._sign_in_page if signed_out else self._desk)

        text, tone = phone_text(view)
        self.phone_status.setText(text)
        set_tone(self.phone_status, tone)
        text, tone = vpn_text(view)
        self.vpn_status.setText(text)
        set_tone(self.vpn_status, tone)
        who = " — ".join(part for part in (view.agent, view.agent_name) if part)
        self.agent_label.setText(who if not signed_out else "")
        self.setWindowTitle(f"Agent phone — {who}" if who and not signed_out else "Agent phone")
        self.sign_out.setVisible(not signed_out)
        self.sign_out.setEnabled(view.phase not in _BUSY)

        if view.idle_remaining is not None:
            self.idle_warning.setText(idle_text(view.idle_remaining))
        self.idle_warning.setVisible(view.idle_remaining is not None)

        self.message.setText(view.message or "")
        set_tone(self.message, "error" if view.message and view.message_is_error else "")

        self.sign_in.show_view(view)
        for part in (
            self.state,
            self.banner,
            self.calls,
            self.transfer,
            self.wrap_up,
            self.keypad,
            self.quality,
            self.figures,
            self.devices,
        ):
            part.show_view(view)

        offer = view.offer
        if offer is not None and offer.call_id not in self._popped:
            self._popped.append(offer.call_id)
            self._actions.screen_pop_viewed(offer.call_id)
