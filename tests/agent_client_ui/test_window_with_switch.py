"""The window wired to the real controller and the switch's real agent API, as
``agent-client`` wires them: what the agent types and clicks reaches the switch, and what the
switch says reaches the window. Only the SIP phone is a stand-in (its own tests use pjsua2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QWidget

from agent_client.controller import Controller
from agent_client.view import Phase, View
from agent_client.window import AgentWindow
from tests.agent_client_core.conftest import PASSWORDS, RecordingPhone, SwitchFactory

CALL = "call-w@switch.test"


def click(widget: QWidget) -> None:
    QTest.mouseClick(widget, Qt.MouseButton.LeftButton)


async def pump(app: QApplication, condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Run Qt's events and the asyncio loop (the controller's and the switch's) together."""
    async with asyncio.timeout(timeout):
        while True:
            app.processEvents()
            if condition():
                return
            await asyncio.sleep(0.02)


async def test_the_agent_signs_in_goes_ready_sees_the_call_and_signs_out(
    qapp: QApplication, local_switch: SwitchFactory
) -> None:
    phone = RecordingPhone()
    async with local_switch() as sw:
        shown: list[AgentWindow] = []

        def post(view: View) -> None:
            if shown:
                shown[0].post_view(view)  # the queued signal agent-client uses

        controller = Controller(
            sw.config(), phone, post, loop=asyncio.get_running_loop(), tick=0.05
        )
        window = AgentWindow(controller)
        shown.append(window)
        window.show()
        controller.start()
        try:
            form = window.sign_in
            QTest.keyClicks(form.agent, "ann")
            QTest.keyClicks(form.password, PASSWORDS["1001"])
            QTest.keyClicks(form.code, sw.code())
            click(form.submit)
            await pump(qapp, lambda: window.view.phase is Phase.NOT_READY)
            assert sw.state() == ("not_ready", "login")
            assert window.view.agent == "ann" and window.view.vpn_ok

            assert phone.listener is not None
            phone.listener.registration_changed(True, "registered")
            await pump(qapp, lambda: window.view.registered)
            click(window.state.ready)
            await pump(qapp, lambda: sw.state() == ("ready", None))

            _, task = sw.join(CALL)
            await pump(qapp, lambda: window.view.phase is Phase.RINGING)
            offer = window.view.offer
            assert offer is not None and offer.call_id == CALL

            async def viewed() -> int:  # the window reported the screen pop's view
                return len(await sw.store.audit(action="screen_pop_viewed", subject=CALL))

            async with asyncio.timeout(5):
                while await viewed() == 0:
                    qapp.processEvents()
                    await asyncio.sleep(0.05)
            sw.queues.call_ended(CALL, "caller")  # the caller gives up before an answer
            await pump(qapp, lambda: window.view.offer is None)

            click(window.sign_out)
            await pump(qapp, lambda: window.view.phase is Phase.SIGNED_OUT)
            assert sw.state() == ("logged_out", None)
            assert phone.did("stop")
            task.cancel()
        finally:
            await controller.aclose()
            window.close()
