"""The agent's window rendered from real views on the offscreen Qt platform: which controls
each phase enables, what each click asks of the controller, the screen pop, the wrap-up,
quality, figures, status texts, the idle warning, the activity report, views posted from
another thread, and screenshots of the main states."""

from __future__ import annotations

import dataclasses
import threading
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QColor, QImage
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QLabel, QWidget

from agent_client.view import (
    CallQuality,
    DayFigures,
    Devices,
    Offer,
    Phase,
    ScreenPopField,
    View,
)
from agent_client.widgets.banner import MASKED_NOTE
from agent_client.widgets.durations import format_duration
from agent_client.widgets.keypad import KEYS
from agent_client.widgets.quality import DEGRADED_WARNING
from agent_client.window import AgentWindow
from tests.agent_client_ui.conftest import RecordingActions, wait_until

DOCS = Path(__file__).resolve().parents[2] / "docs"

REASONS = ("break", "lunch", "training")
CODES = ("sale", "no sale", "callback")
DEVICES = Devices(
    inputs=("Jabra Evolve 40: USB Audio", "Built-in Microphone"),
    outputs=("Jabra Evolve 40: USB Audio", "Built-in Speakers"),
    input="Jabra Evolve 40: USB Audio",
    output="Jabra Evolve 40: USB Audio",
)
FIGURES = DayFigures(calls=12, average_handle=205.0, ready_time=3723.0, break_time=900.0)


def offer(call_id: str = "c-1001", masked: bool = True) -> Offer:
    return Offer(
        call_id=call_id,
        queue="billing",
        caller="+49 30 1234567",
        caller_name="Erika Mustermann",
        path=("Main menu", "Billing", "Card payments"),
        fields=(
            ScreenPopField("Customer no.", "K-448812"),
            ScreenPopField("Contract", "Mobile M"),
            ScreenPopField(
                "IBAN", "DE•• •••• •••• ••••" if masked else "DE89370400440532013000", masked=masked
            ),
        ),
        data_class="personal",
    )


def signed_in(phase: Phase, **changes: Any) -> View:
    """A view of agent 1001, signed in, registered over a working VPN."""
    base = View(
        phase=phase,
        agent="1001",
        agent_name="Alice Agent",
        reason="break" if phase is Phase.NOT_READY else None,
        reasons=REASONS,
        codes=CODES,
        registration="registered",
        registered=True,
        vpn="switch answers on 10.66.0.1",
        vpn_ok=True,
        figures=FIGURES,
        devices=DEVICES,
    )
    return dataclasses.replace(base, **changes)


def ringing(call_id: str = "c-1001") -> View:
    return signed_in(Phase.RINGING, offer=offer(call_id))


def on_call(**changes: Any) -> View:
    quality = CallQuality(jitter_ms=8.0, loss_percent=0.2, rtt_ms=42.0, mos=4.3, degraded=False)
    values: dict[str, Any] = {
        "offer": offer(),
        "call_seconds": 65.0,
        "quality": quality,
        "mic_level": 0.45,
        "speaker_level": 0.6,
    }
    values.update(changes)
    return signed_in(Phase.ON_CALL, **values)


def wrapping(remaining: float | None = 25.0) -> View:
    return signed_in(Phase.WRAP_UP, offer=offer(), wrap_up_remaining=remaining)


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


def controls(win: AgentWindow) -> dict[str, QWidget]:
    return {
        "ready": win.state.ready,
        "not_ready": win.state.not_ready,
        "answer": win.calls.answer,
        "hang_up": win.calls.hang_up,
        "hold": win.calls.hold,
        "mute": win.calls.mute,
        "help": win.calls.help,
        "conference": win.calls.conference,
        "keypad": win.keypad,
        "transfer_target": win.transfer.target,
        "wrap_up": win.wrap_up,
        "test_call": win.devices.test_call,
        "sign_out": win.sign_out,
    }


ENABLED = {
    Phase.NOT_READY: {"ready", "not_ready", "test_call", "sign_out"},
    Phase.READY: {"not_ready", "sign_out"},
    Phase.RINGING: {"answer", "hang_up"},
    Phase.ON_CALL: {
        "hang_up",
        "hold",
        "mute",
        "help",
        "conference",
        "keypad",
        "transfer_target",
    },
    Phase.WRAP_UP: {"ready", "not_ready", "wrap_up", "sign_out"},
}


@pytest.mark.parametrize("phase", list(ENABLED), ids=lambda p: p.value)
def test_each_phase_enables_only_the_controls_that_apply(window: AgentWindow, phase: Phase) -> None:
    view = signed_in(phase, offer=offer() if phase in (Phase.RINGING, Phase.ON_CALL) else None)
    window.show_view(view)
    assert window.pages.currentWidget() is not window.sign_in.parentWidget()
    enabled = {name for name, widget in controls(window).items() if widget.isEnabled()}
    assert enabled == ENABLED[phase]


@pytest.mark.parametrize("phase", [Phase.SIGNED_OUT, Phase.SIGNING_IN])
def test_signed_out_shows_the_sign_in_form(window: AgentWindow, phase: Phase) -> None:
    window.show_view(View(phase=phase))
    assert window.sign_in.isVisible()
    assert not window.state.isVisible()
    assert not window.sign_out.isVisible()
    assert window.sign_in.agent.isEnabled() is (phase is Phase.SIGNED_OUT)


def test_sign_in_sends_the_three_fields_once_the_code_has_six_digits(
    window: AgentWindow, actions: RecordingActions
) -> None:
    form = window.sign_in
    window.show_view(View(phase=Phase.SIGNED_OUT))
    QTest.keyClicks(form.agent, " 1001 ")
    QTest.keyClicks(form.password, "s3cret pass")
    QTest.keyClicks(form.code, "12ab345")
    assert form.code.text() == "12345"  # the validator keeps digits only
    assert not form.submit.isEnabled()
    click(form.submit)
    assert actions.named("sign_in") == []
    QTest.keyClicks(form.code, "67")
    assert form.code.text() == "123456"  # at most six
    assert form.submit.isEnabled()
    click(form.submit)
    assert actions.named("sign_in") == [("1001", "s3cret pass", "123456")]

    window.show_view(View(phase=Phase.SIGNING_IN, agent="1001"))
    assert not form.submit.isEnabled() and not form.code.isEnabled()
    assert form.progress.text() == "Signing in…"
    window.show_view(View(phase=Phase.SIGNED_OUT, message="Wrong code", message_is_error=True))
    assert form.code.text() == ""  # a refused code is not offered again
    assert form.password.text() == "s3cret pass"
    QTest.keyClicks(form.code, "654321")
    QTest.keyClick(form.code, Qt.Key.Key_Return)
    assert actions.named("sign_in")[-1] == ("1001", "s3cret pass", "654321")
    window.show_view(signed_in(Phase.NOT_READY, reason="login"))
    assert form.password.text() == "" and form.code.text() == ""
    assert form.agent.text().strip() == "1001"  # kept for the next sign-in


def test_ready_and_not_ready_with_the_chosen_reason(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(signed_in(Phase.NOT_READY, reason="lunch"))
    combo = window.state.reason
    assert [combo.itemText(i) for i in range(combo.count())] == list(REASONS)
    assert combo.currentText() == "lunch"  # the reason in force
    click(window.state.ready)
    assert actions.requests() == [("set_ready", ())]

    window.show_view(signed_in(Phase.READY))
    assert window.state.state.text() == "Ready — waiting for calls"
    combo.setFocus()
    QTest.keyClick(combo, Qt.Key.Key_Down)
    assert combo.currentText() == "training"
    window.show_view(signed_in(Phase.READY, call_seconds=None))  # a new view keeps the choice
    assert combo.currentText() == "training"
    click(window.state.not_ready)
    assert actions.requests()[-1] == ("set_not_ready", ("training",))


def test_answer_and_hang_up_by_button_and_by_keyboard(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(ringing())
    click(window.calls.answer)
    QTest.keyClick(window, Qt.Key.Key_F5)
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert actions.requests() == [("answer", ())] * 3

    window.show_view(on_call())
    assert window.calls.hang_up.text() == "Hang up (F6)"
    QTest.keyClick(window, Qt.Key.Key_F5)  # answering does not apply on a call
    click(window.calls.hang_up)
    QTest.keyClick(window, Qt.Key.Key_F6)
    QTest.keyClick(window, Qt.Key.Key_Return, Qt.KeyboardModifier.ControlModifier)
    assert actions.requests()[3:] == [("hang_up", ())] * 2

    window.show_view(signed_in(Phase.READY))
    QTest.keyClick(window, Qt.Key.Key_F6)  # no call: the keys do nothing
    QTest.keyClick(window, Qt.Key.Key_F5)
    assert len(actions.requests()) == 5


def test_a_ringing_call_can_be_declined(window: AgentWindow, actions: RecordingActions) -> None:
    window.show_view(ringing())
    assert window.calls.hang_up.text() == "Decline (F6)"
    QTest.keyClick(window, Qt.Key.Key_F6)
    assert actions.requests() == [("hang_up", ())]


def test_hold_and_mute_ask_for_the_opposite_of_what_the_view_shows(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(on_call())
    click(window.calls.hold)
    click(window.calls.mute)
    window.show_view(on_call(on_hold=True, muted=True))
    assert window.calls.hold.text() == "Resume" and window.calls.mute.text() == "Unmute"
    assert "Customer on hold" in window.banner.status.text()
    assert "Microphone muted" in window.banner.status.text()
    click(window.calls.hold)
    click(window.calls.mute)
    assert actions.requests() == [
        ("hold", (True,)),
        ("mute", (True,)),
        ("hold", (False,)),
        ("mute", (False,)),
    ]


def test_keypad_sends_each_digit(window: AgentWindow, actions: RecordingActions) -> None:
    window.show_view(signed_in(Phase.READY))
    click(window.keypad.keys["5"])  # disabled off a call
    window.show_view(on_call())
    for key in KEYS:
        click(window.keypad.keys[key])
    assert actions.requests() == [("send_dtmf", (key,)) for key in KEYS]


def test_blind_transfer_to_the_typed_target(window: AgentWindow, actions: RecordingActions) -> None:
    panel = window.transfer
    window.show_view(on_call())
    assert not panel.blind.isEnabled() and not panel.consult.isEnabled()  # no target yet
    QTest.keyClicks(panel.target, " 2001 ")
    assert panel.blind.isEnabled() and panel.consult.isEnabled()
    assert not panel.complete.isEnabled() and not panel.cancel.isEnabled()
    click(panel.blind)
    assert actions.requests() == [("transfer_blind", ("2001",))]
    window.show_view(wrapping())
    assert panel.target.text() == ""  # the target belonged to the call that ended


def test_consult_then_complete_or_cancel(window: AgentWindow, actions: RecordingActions) -> None:
    panel = window.transfer
    window.show_view(on_call())
    QTest.keyClicks(panel.target, "2002")
    click(panel.consult)
    window.show_view(on_call(consulting="2002", on_hold=True))
    assert not panel.blind.isEnabled() and not panel.consult.isEnabled()
    assert panel.complete.isEnabled() and panel.cancel.isEnabled()
    assert not window.calls.hold.isEnabled()  # the customer waits for the transfer
    assert "Consulting 2002 — customer on hold" in window.banner.status.text()
    click(panel.cancel)
    click(panel.complete)
    assert actions.requests() == [
        ("consult", ("2002",)),
        ("cancel_consult", ()),
        ("complete_transfer", ()),
    ]


def test_help_raises_the_hand_or_brings_a_supervisor_in(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(on_call())
    click(window.calls.help)
    window.show_view(on_call(help_raised=True))
    assert window.calls.help.text() == "Hand raised"
    assert not window.calls.help.isEnabled()
    click(window.calls.help)  # once is enough
    click(window.calls.conference)
    assert actions.requests() == [("raise_help", (False,)), ("raise_help", (True,))]


def test_wrap_up_sends_the_code_and_the_note(
    window: AgentWindow, actions: RecordingActions
) -> None:
    panel = window.wrap_up
    window.show_view(on_call())
    assert not panel.isEnabled()
    window.show_view(wrapping(25.0))
    assert panel.countdown.text() == "0:25 left"
    codes = [panel.code.itemText(i) for i in range(panel.code.count())]
    assert codes[1:] == list(CODES)
    panel.code.setFocus()
    QTest.keyClick(panel.code, Qt.Key.Key_Down)
    QTest.keyClicks(panel.note, "Wants a callback on Monday ")
    window.show_view(wrapping(24.0))  # the countdown ticks; the agent's input stays
    assert panel.countdown.text() == "0:24 left"
    click(panel.done)
    assert actions.requests() == [("wrap_up", ("sale", "Wants a callback on Monday"))]

    window.show_view(signed_in(Phase.READY))
    window.show_view(wrapping(None))  # the next wrap-up starts empty
    assert panel.note.toPlainText() == ""
    assert panel.countdown.text() == "No time limit"
    click(panel.done)
    assert actions.requests()[-1] == ("wrap_up", (None, ""))


def test_wrap_up_countdown_texts(window: AgentWindow) -> None:
    panel = window.wrap_up
    window.show_view(wrapping(75.4))
    assert panel.countdown.text() == "1:15 left"
    assert panel.countdown.property("tone") == ""
    window.show_view(wrapping(7.0))
    assert panel.countdown.text() == "0:07 left"
    assert panel.countdown.property("tone") == "error"
    window.show_view(wrapping(0.0))
    assert panel.countdown.text() == "Wrap-up time is over"


def _shown_texts(widget: QWidget) -> list[str]:
    return [label.text() for label in widget.findChildren(QLabel) if label.isVisible()]


def test_screen_pop_shows_caller_path_and_fields_with_masked_ones_masked(
    window: AgentWindow,
) -> None:
    window.show_view(ringing())
    banner = window.banner
    assert banner.headline.text() == "Incoming call"
    assert banner.caller.text() == "+49 30 1234567 — Erika Mustermann"
    assert banner.queue.text() == "Queue: billing · Data class: personal"
    assert banner.path.text() == "IVR path: Main menu → Billing → Card payments"
    rows = [(name.text(), value.text()) for name, value in banner.field_labels]
    assert rows == [
        ("Customer no.:", "K-448812"),
        ("Contract:", "Mobile M"),
        ("IBAN:", f"DE•• •••• •••• •••• {MASKED_NOTE}"),
    ]
    assert banner.field_labels[2][1].property("tone") == "muted"
    assert banner.field_labels[0][1].property("tone") is None
    texts = " ".join(_shown_texts(window))
    assert "DE89" not in texts


def test_screen_pop_unmasked_at_an_allowed_location(window: AgentWindow) -> None:
    window.show_view(signed_in(Phase.RINGING, offer=offer(masked=False)))
    rows = [(name.text(), value.text()) for name, value in window.banner.field_labels]
    assert rows[2] == ("IBAN:", "DE89370400440532013000")
    assert MASKED_NOTE not in " ".join(_shown_texts(window))


def test_screen_pop_text_is_plain_not_markup(window: AgentWindow) -> None:
    hostile = Offer(call_id="c-9", queue="q", caller="<i>1</i>", caller_name="<b>Bob</b>")
    window.show_view(signed_in(Phase.RINGING, offer=hostile))
    assert window.banner.caller.text() == "<i>1</i> — <b>Bob</b>"
    assert window.banner.caller.textFormat() == Qt.TextFormat.PlainText


def test_screen_pop_viewed_reported_once_per_call(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(signed_in(Phase.READY))
    assert actions.named("screen_pop_viewed") == []
    for view in (
        ringing("c-1"),
        ringing("c-1"),
        on_call(offer=offer("c-1")),
        on_call(offer=offer("c-1"), call_seconds=66.0),
    ):
        window.show_view(view)
    assert actions.named("screen_pop_viewed") == [("c-1",)]
    window.show_view(signed_in(Phase.WRAP_UP, offer=offer("c-1")))
    window.show_view(signed_in(Phase.READY))
    window.show_view(ringing("c-2"))
    window.show_view(ringing("c-2"))
    assert actions.named("screen_pop_viewed") == [("c-1",), ("c-2",)]


def test_quality_figures_and_warning_when_degraded(window: AgentWindow) -> None:
    panel = window.quality
    window.show_view(on_call())
    assert (panel.jitter.text(), panel.loss.text(), panel.rtt.text(), panel.mos.text()) == (
        "8 ms",
        "0.2 %",
        "42 ms",
        "4.3",
    )
    assert not panel.warning.isVisible()
    bad = CallQuality(jitter_ms=61.5, loss_percent=7.25, rtt_ms=None, mos=2.4, degraded=True)
    window.show_view(on_call(quality=bad))
    assert (panel.jitter.text(), panel.loss.text(), panel.rtt.text(), panel.mos.text()) == (
        "62 ms",
        "7.2 %",
        "—",
        "2.4",
    )
    assert panel.warning.isVisible()
    assert panel.warning.text() == DEGRADED_WARNING
    assert panel.mos.property("tone") == "error"
    window.show_view(wrapping())
    assert not panel.warning.isVisible() and panel.mos.text() == "—"


def test_day_figures_formatted(window: AgentWindow) -> None:
    window.show_view(signed_in(Phase.READY))
    panel = window.figures
    assert [panel.calls.text(), panel.aht.text(), panel.ready.text(), panel.on_break.text()] == [
        "Calls 12",
        "AHT 3:25",
        "Ready 1:02:03",
        "Break 15:00",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0, "0:00"),
        (9.9, "0:09"),
        (205, "3:25"),
        (3599, "59:59"),
        (3600, "1:00:00"),
        (36_061, "10:01:01"),
        (-3, "0:00"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_idle_warning_shown_only_when_sign_out_is_near(window: AgentWindow) -> None:
    window.show_view(signed_in(Phase.NOT_READY, idle_remaining=44.2))
    assert window.idle_warning.isVisible()
    assert window.idle_warning.text() == "Signing out in 45 s — move the mouse to stay"
    window.show_view(signed_in(Phase.NOT_READY))
    assert not window.idle_warning.isVisible()


def test_registration_and_vpn_status_lines(window: AgentWindow) -> None:
    window.show_view(signed_in(Phase.NOT_READY))
    assert window.phone_status.text() == "Phone: registered"
    assert window.vpn_status.text() == "VPN: switch answers on 10.66.0.1"
    assert window.phone_status.property("tone") == "ok"
    assert window.vpn_status.property("tone") == "ok"
    window.show_view(
        signed_in(
            Phase.NOT_READY,
            registration="offline: 408 — retrying",
            registered=False,
            vpn="no answer from 10.66.0.1",
            vpn_ok=False,
        )
    )
    assert window.phone_status.text() == "Phone: offline: 408 — retrying"
    assert window.phone_status.property("tone") == "error"
    assert window.vpn_status.property("tone") == "error"
    assert not window.devices.test_call.isEnabled()  # no test call without registration
    window.show_view(View(phase=Phase.SIGNED_OUT))
    assert window.phone_status.text() == "Phone: offline"
    assert window.vpn_status.text() == "VPN: not checked"
    assert window.vpn_status.property("tone") == "muted"


def test_agent_shown_and_sign_out(window: AgentWindow, actions: RecordingActions) -> None:
    window.show_view(signed_in(Phase.NOT_READY))
    assert window.agent_label.text() == "1001 — Alice Agent"
    assert window.windowTitle() == "Agent phone — 1001 — Alice Agent"
    click(window.sign_out)
    assert actions.requests() == [("sign_out", ())]


def test_message_in_the_status_bar(window: AgentWindow) -> None:
    window.show_view(
        signed_in(Phase.NOT_READY, message="Transfer refused: 2001 is busy", message_is_error=True)
    )
    assert window.message.text() == "Transfer refused: 2001 is busy"
    assert window.message.property("tone") == "error"
    window.show_view(signed_in(Phase.NOT_READY, message="Test call finished"))
    assert window.message.text() == "Test call finished"
    assert window.message.property("tone") == ""
    window.show_view(signed_in(Phase.NOT_READY))
    assert window.message.text() == ""


def test_devices_meters_and_test_call(window: AgentWindow, actions: RecordingActions) -> None:
    panel = window.devices
    window.show_view(on_call(mic_level=0.45, speaker_level=1.7))
    assert panel.mic.value() == 45 and panel.speaker.value() == 100
    assert panel.input.currentText() == "Jabra Evolve 40: USB Audio"
    assert [panel.output.itemText(i) for i in range(panel.output.count())] == [
        "System default",
        *DEVICES.outputs,
    ]
    panel.output.setFocus()
    QTest.keyClick(panel.output, Qt.Key.Key_Down)
    assert actions.requests() == [
        ("choose_devices", ("Jabra Evolve 40: USB Audio", "Built-in Speakers"))
    ]
    panel.input.setFocus()
    QTest.keyClick(panel.input, Qt.Key.Key_Home)
    assert actions.requests()[-1] == ("choose_devices", (None, "Built-in Speakers"))
    window.show_view(on_call())  # the same devices: nothing refilled, no call made
    assert len(actions.requests()) == 2

    window.show_view(signed_in(Phase.NOT_READY, devices=Devices(inputs=("USB mic",))))
    assert panel.input.currentText() == "System default"
    assert panel.output.count() == 1
    click(panel.test_call)
    assert actions.requests()[-1] == ("test_call", ())


def test_key_press_click_and_mouse_move_report_activity(
    window: AgentWindow, actions: RecordingActions
) -> None:
    window.show_view(on_call())
    actions.calls.clear()
    QTest.keyClick(window.transfer.target, Qt.Key.Key_7)
    assert actions.named("touched")
    actions.calls.clear()
    click(window.banner)  # a click anywhere, not only on a button
    assert actions.named("touched")
    actions.calls.clear()
    QTest.keyClick(window, Qt.Key.Key_F6)  # a shortcut takes the key: still activity
    assert actions.named("touched")
    assert actions.requests() == [("hang_up", ())]
    actions.calls.clear()
    QTest.mouseMove(window.keypad, QPoint(20, 20))
    QTest.mouseMove(window.keypad, QPoint(30, 30))
    assert len(actions.named("touched")) == 1  # movements: at most one report a second
    assert actions.requests() == []


def test_input_to_another_window_is_not_reported(
    window: AgentWindow, actions: RecordingActions
) -> None:
    other = QWidget()
    other.show()
    try:
        actions.calls.clear()
        QTest.mouseClick(other, Qt.MouseButton.LeftButton)
        QTest.keyClick(other, Qt.Key.Key_A)
        assert actions.calls == []
    finally:
        other.close()


def test_view_posted_from_another_thread_is_shown(window: AgentWindow) -> None:
    view = signed_in(Phase.READY, message="posted from the controller thread")
    posted = threading.Thread(target=window.post_view, args=(view,))
    posted.start()
    posted.join(timeout=5)
    assert wait_until(lambda: window.view is view)
    assert window.message.text() == "posted from the controller thread"
    assert window.state.state.text() == "Ready — waiting for calls"


def _colours(image: QImage) -> set[int]:
    step_x, step_y = max(1, image.width() // 120), max(1, image.height() // 90)
    return {
        image.pixel(x, y)
        for x in range(0, image.width(), step_x)
        for y in range(0, image.height(), step_y)
    }


SCREENSHOTS = {
    "sign-in": View(
        phase=Phase.SIGNED_OUT,
        message="Sign-in refused: wrong code, try the next one",
        message_is_error=True,
    ),
    "idle": signed_in(
        Phase.NOT_READY, reason="break", message="Welcome back, Alice", idle_remaining=45.0
    ),
    "ringing": ringing(),
    "on-call": on_call(
        quality=CallQuality(jitter_ms=48.0, loss_percent=4.8, rtt_ms=180.0, mos=3.1, degraded=True),
        muted=True,
    ),
    "wrap-up": wrapping(18.0),
}


@pytest.mark.parametrize("name", list(SCREENSHOTS))
def test_screenshot_of_each_main_state(window: AgentWindow, qapp: QApplication, name: str) -> None:
    window.show_view(SCREENSHOTS[name])
    qapp.processEvents()
    DOCS.mkdir(exist_ok=True)
    path = DOCS / f"agent-client-{name}.png"
    path.unlink(missing_ok=True)
    assert window.grab().save(str(path))
    assert path.stat().st_size > 20_000
    image = QImage(str(path))
    assert image.width() >= 900 and image.height() >= 600
    assert len(_colours(image)) > 40  # text, buttons and colours, not a blank window
    darkest = min(QColor(pixel).lightness() for pixel in _colours(image))
    assert darkest < 80  # dark text was drawn
