"""A switch's agent API on loopback, and a recording phone, for the client core's tests.

The switch side is the real thing: :mod:`softswitch.admin.agent_api` over a real queue service
and ACD, with the real session SIP credentials and TOTP checks backed by a real SQLite
security store, served by aiohttp on 127.0.0.1 (as ``tests/integration/test_agent_api.py``
does). Next to ``/api/`` it serves ``GET /healthz`` the way the switch's HTTP API does, as the
switch's health route is what the client's VPN check asks for. Calls reach the agent through
:meth:`QueueService.wait` with a :class:`~tests.acd_callers.ScriptedCaller`.

The phone is :class:`RecordingPhone`: it records what the controller asks of it, and the test
plays the phone's reports (ringing, confirmed, ended) to the controller's listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyotp
import pytest
from aiohttp import web

from agent_client.config import ClientConfig, SwitchSection
from agent_client.controller import Controller
from agent_client.phone import PhoneListener, SipAccount
from agent_client.view import CallQuality, View
from softswitch.acd.events import QueueEvent
from softswitch.acd.model import AcdConfig, AgentConfig, QueueConfig
from softswitch.admin.agent_api import AgentApi, add_agent_routes
from softswitch.apps.queueing import QueueService
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.registrar.bindings import Binding
from softswitch.security.session_sip import SessionCredentials
from softswitch.storage.security_store import SqliteSecurityStore
from tests.acd_callers import ScriptedCaller, binding
from tests.integration.agent_desk import api_on_loopback

PASSWORDS = {"1001": "home-secret-1"}
WRAP_UP = 30.0
ACD = AcdConfig(
    queues={"support": QueueConfig("support", wrap_up=WRAP_UP, ring_timeout=10.0)},
    agents={
        "ann": AgentConfig("ann", "Ann at home", "1001", location="home", queues={"support": 0}),
    },
    reasons=("break", "lunch"),
    codes=("sale", "no_sale"),
)
CALLER = "+4930123456"
CALLER_NAME = "Erika Mustermann"
MEMBER = "778899"


def locate(user: str) -> list[Binding] | None:
    return [binding(user)] if user in PASSWORDS else None


def check_password(user: str, password: str) -> bool:
    return PASSWORDS.get(user) == password


@dataclass
class LocalSwitch:
    """The agent API on 127.0.0.1:``port`` and what a test needs to drive it."""

    port: int
    queues: QueueService
    api: AgentApi
    store: SqliteSecurityStore
    secret: str
    events: list[QueueEvent]
    folder: Path
    notes: list[tuple[str, str]]
    codes_given: int = 0

    def config(self, *, vpn_required: bool = True, port: int | None = None) -> ClientConfig:
        return ClientConfig(
            SwitchSection("127.0.0.1", port or self.port, "http", vpn_required, "9196"),
            path=self.folder / "agent-client.toml",
        )

    def code(self) -> str:
        """A one-time code of the enrolled secret: the current step's, then the next one's
        (the switch takes a step once only, RFC 6238 §5.2, and accepts one step of drift)."""
        self.codes_given += 1
        return pyotp.TOTP(self.secret).at(time.time() + 30 * min(self.codes_given - 1, 1))

    def state(self, agent: str = "ann") -> tuple[object, object]:
        view = self.queues.acd.agent_view(agent, time.time())
        return view["state"], view["reason"]

    def join(self, call_id: str) -> tuple[ScriptedCaller, asyncio.Task[QueueResult]]:
        """A caller waiting in ``support`` whose offer rings until the test says."""
        caller = ScriptedCaller(call_id, cancel_later=True)
        request = QueueRequest(
            call_id=call_id,
            queue="support",
            priority=0,
            skills={},
            data_class="general",
            caller=CALLER,
            caller_name=CALLER_NAME,
            path=("menu:2", "identify"),
            screen_pop={"member": MEMBER, "tier": "gold"},
        )
        task = asyncio.get_running_loop().create_task(self.queues.wait(request, caller))
        return caller, task


SwitchFactory = Callable[..., contextlib.AbstractAsyncContextManager[LocalSwitch]]


@pytest.fixture
def local_switch(tmp_path: Path) -> SwitchFactory:
    """``async with local_switch(**agent_api_options) as sw``: a switch serving the agent API."""

    @contextlib.asynccontextmanager
    async def run(**options: Any) -> AsyncIterator[LocalSwitch]:
        queues = QueueService(ACD, clock=time.time, locate=locate)
        events: list[QueueEvent] = []
        queues.sinks.append(events.extend)
        notes: list[tuple[str, str]] = []  # wrap-up notes the switch kept (call id, note)
        store = SqliteSecurityStore(tmp_path / "security.db")
        await store.open()
        secret = pyotp.random_base32()
        await store.enrol("ann", secret, time.time())

        async def agent_events(agent: str, since: float) -> list[QueueEvent]:
            return [e for e in events if e.agent == agent and e.time >= since]

        async def healthz(request: web.Request) -> web.Response:
            return web.json_response({"status": "ok"})

        root = web.Application()
        root.router.add_get("/healthz", healthz)
        api_app = web.Application()
        settings: dict[str, Any] = {
            "totp": "required",
            "store": store,
            "session_sip": SessionCredentials("test"),
            "sip_info": lambda user: {
                "domain": "test",
                "server": "127.0.0.1",
                "port": 5060,
                "transport": "udp",
            },
            "vpn_address": "127.0.0.1",
            "agent_events": agent_events,
            "save_note": lambda call_id, note: notes.append((call_id, note)),
        }
        settings.update(options)
        api = add_agent_routes(
            api_app, queues=queues, check_password=check_password, admin_token=None, **settings
        )
        try:
            async with api_on_loopback(api_app, root) as port:
                yield LocalSwitch(port, queues, api, store, secret, events, tmp_path, notes)
        finally:
            await api.close()
            queues.close()
            await store.close()

    return run


@dataclass
class RecordingPhone:
    """A stand-in for the pjsua2 phone: records every request; the test plays its reports."""

    calls: list[tuple[object, ...]] = field(default_factory=list)
    listener: PhoneListener | None = None
    account: SipAccount | None = None
    inputs: tuple[str, ...] = ("Built-in Microphone", "Headset Microphone")
    outputs: tuple[str, ...] = ("Built-in Speaker", "Headset Earphone")
    #: called when the controller stops the phone (a test looks at the switch then)
    on_stop: Callable[[], None] | None = None

    def start(self, account: SipAccount, listener: PhoneListener) -> None:
        self.account, self.listener = account, listener
        self.calls.append(("start", account.extension))

    def stop(self) -> None:
        self.calls.append(("stop",))
        if self.on_stop is not None:
            self.on_stop()

    def call(self, target: str) -> None:
        self.calls.append(("call", target))

    def register_again(self) -> None:
        self.calls.append(("register_again",))

    def answer(self, call: int) -> None:
        self.calls.append(("answer", call))

    def hang_up(self, call: int) -> None:
        self.calls.append(("hang_up", call))

    def hold(self, call: int, on: bool) -> None:
        self.calls.append(("hold", call, on))

    def mute(self, on: bool) -> None:
        self.calls.append(("mute", on))

    def send_dtmf(self, call: int, digits: str) -> None:
        self.calls.append(("dtmf", call, digits))

    def transfer_blind(self, call: int, target: str) -> None:
        self.calls.append(("transfer_blind", call, target))

    def transfer_attended(self, call: int, consultation: int) -> None:
        self.calls.append(("transfer_attended", call, consultation))

    def quality(self, call: int) -> CallQuality | None:
        self.calls.append(("quality", call))
        return CallQuality(jitter_ms=4.0, loss_percent=0.5, rtt_ms=30.0, mos=4.2, degraded=False)

    def devices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return self.inputs, self.outputs

    def use_devices(self, input: str | None, output: str | None) -> None:
        self.calls.append(("use_devices", input, output))

    def did(self, name: str) -> list[tuple[object, ...]]:
        return [c for c in self.calls if c[0] == name]


class Views:
    """The views a controller hands out, and the events it reports, as they come."""

    def __init__(self) -> None:
        self.all: list[View] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        self._changed = asyncio.Event()

    def __call__(self, view: View) -> None:
        self.all.append(view)
        self._changed.set()

    def event(self, kind: str, details: dict[str, Any]) -> None:
        self.events.append((kind, details))
        self._changed.set()

    @property
    def last(self) -> View:
        return self.all[-1]

    async def until(self, test: Callable[[View], bool], timeout: float = 5.0) -> View:
        """The first view from now on (or the last one) that passes ``test``."""
        async with asyncio.timeout(timeout):
            start = max(0, len(self.all) - 1)
            while True:
                for view in self.all[start:]:
                    if test(view):
                        return view
                start = len(self.all)
                self._changed.clear()
                await self._changed.wait()

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]


@pytest.fixture
def views() -> Views:
    return Views()


def make_controller(
    config: ClientConfig, phone: RecordingPhone, views: Views, **options: Any
) -> Controller:
    options.setdefault("tick", 0.05)
    controller = Controller(
        config,
        phone,
        views,
        loop=asyncio.get_running_loop(),
        on_event=views.event,
        **options,
    )
    controller.start()
    return controller
