"""The agent client's controller: the agent's state, and the :class:`View` values built from it.

:class:`Controller` implements :class:`agent_client.view.Actions` (what the window may ask) and
:class:`agent_client.phone.PhoneListener` (what the softphone reports). It owns the session with
the switch's agent API (:mod:`agent_client.switch_api`) and the :class:`Phone`. All its state
lives on one asyncio loop (its own thread's, or one it is given); actions and the phone's reports
arrive from other threads and are handed to that loop. Whenever something the agent sees
changes, a new frozen :class:`View` goes to ``on_view`` (the window's ``post_view``).

What it does:

* Sign-in: the switch must answer on its VPN-side address (``GET /healthz``) when
  ``vpn_required``; then ``POST /api/agent/login``; the switch's own report of its VPN address
  must be the configured one; the phone starts with the session's SIP account; the WebSocket's
  ``state`` and ``offer`` messages drive the phase. The VPN check runs again every
  ``vpn_interval`` seconds and shows in ``View.vpn``.
* Calls: an offer shows the screen pop (RINGING); the phone's incoming call while an offer is up
  is that offer's call; a direct call is shown as well. Answer, hang-up, hold, mute, DTMF and
  transfers go to the phone (a consultation holds the customer and calls the target; completing
  it is an attended transfer, RFC 5589 §7; cancelling hangs up the consultation and resumes).
  The wrap-up countdown comes from the agent view's ``wrap_up_until``; the day's figures are
  fetched at sign-in and after each call; the call quality is polled every second.
* Idle sign-out: after ``idle_signout`` seconds (the switch's, or the configuration's if lower)
  without a call and without :meth:`touched`, the agent is signed out and told why;
  ``View.idle_remaining`` counts down the last minute.
* Privacy: signing out stops the phone and forgets the token, the SIP credentials and every
  screen pop. Customer data is never written to disk; the log carries call ids and field names
  only, and the screen pop's values are handed to the :class:`~agent_client.redact.Redactor`
  so that a stray log line masks them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import replace
from typing import Any

from agent_client.config import ClientConfig
from agent_client.phone import CallState, Phone, PhoneCall
from agent_client.prefs import Prefs, load_prefs, save_prefs
from agent_client.redact import Redactor
from agent_client.switch_api import SignIn, SwitchApi, SwitchError, SwitchUnreachable
from agent_client.view import (
    CallQuality,
    DayFigures,
    Devices,
    Offer,
    Phase,
    ScreenPopField,
    View,
)

__all__ = ["Controller", "EventSink"]

log = logging.getLogger("agent_client.controller")

#: ``(kind, details)`` of notable events (the headless mode prints them)
EventSink = Callable[[str, dict[str, Any]], None]

#: seconds between two looks at the VPN address while signed in
VPN_INTERVAL = 15.0
#: seconds between ticks (call timer, countdowns, idle sign-out)
TICK = 0.25
#: seconds between two polls of the call's quality
QUALITY_INTERVAL = 1.0
#: the level meters make at most this many views a second
LEVEL_RATE = 10.0
#: the idle countdown shows in the view during the last this many seconds
IDLE_WARNING = 60.0
#: seconds the phone may take to stop
PHONE_STOP = 10.0
DTMF_KEYS = frozenset("0123456789*#ABCD")

_WITH_CALL = frozenset({"reserved", "ringing", "on_call", "wrap_up"})


class _Refused(Exception):
    """The client refuses a sign-in (the text is for the agent)."""


def _fields(value: object) -> tuple[ScreenPopField, ...]:
    """The offer's screen pop: a list of ``{"name", "value", "masked"}``, or the older
    ``{name: value}`` object."""
    out: list[ScreenPopField] = []
    if isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and isinstance(item.get("name"), str):
                raw = item.get("value")
                out.append(
                    ScreenPopField(
                        item["name"], "" if raw is None else str(raw), bool(item.get("masked"))
                    )
                )
    elif isinstance(value, dict):
        out.extend(ScreenPopField(str(k), "" if v is None else str(v)) for k, v in value.items())
    return tuple(out)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


class Controller:
    """The agent's state and its views (see the module docstring)."""

    def __init__(
        self,
        config: ClientConfig,
        phone: Phone,
        on_view: Callable[[View], None],
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        on_event: EventSink | None = None,
        redactor: Redactor | None = None,
        vpn_interval: float = VPN_INTERVAL,
        tick: float = TICK,
        request_timeout: float = 10.0,
    ) -> None:
        self.config = config
        self.phone = phone
        self.on_view = on_view
        self.on_event = on_event
        self.redactor = redactor or Redactor()
        self.vpn_interval = vpn_interval
        self.tick = tick
        self.request_timeout = request_timeout
        self._own_loop = loop is None
        self.loop = loop or asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._session_tasks: list[asyncio.Task[Any]] = []
        self._last_view: View | None = None
        self._last_publish = -math.inf
        self._publish_later: asyncio.TimerHandle | None = None
        self._reset()
        self._vpn = "not checked"
        self._vpn_ok = False
        self._message: str | None = None
        self._error = False

    def _reset(self) -> None:
        """Forget the session: token, SIP account, calls, screen pops, figures."""
        self._api: SwitchApi | None = None
        self._signin: SignIn | None = None
        self._signing_in = False
        self._signing_out = False
        self._agent: dict[str, Any] = {}
        self._agent_at = 0.0
        self._offer: Offer | None = None
        self._offer_call: int | None = None
        self._calls: dict[int, PhoneCall] = {}
        self._active: int | None = None
        self._consult: int | None = None
        self._consult_target: str | None = None
        self._talk_since: float | None = None
        self._registration = "offline"
        self._registered = False
        self._muted = False
        self._help = False
        self._figures = DayFigures()
        self._quality: CallQuality | None = None
        self._quality_at = -math.inf
        self._mic = 0.0
        self._speaker = 0.0
        self._devices = Devices()
        self._idle_limit = 0.0
        self._idle_from = time.monotonic()
        self._idle_remaining: float | None = None
        self._audited: set[str] = set()
        self.redactor.forget_all()

    # -- running -------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the controller's own loop in a thread (nothing to do with a given loop)."""
        if not self._own_loop or self._thread is not None:
            self._post(self._publish)
            return
        self._thread = threading.Thread(target=self._run_loop, name="agent-controller", daemon=True)
        self._thread.start()
        self._post(self._publish)

    def _run_loop(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def close(self, timeout: float = 15.0) -> None:
        """From another thread: sign out, stop the phone, stop the loop."""
        if self._thread is None:
            return
        future = asyncio.run_coroutine_threadsafe(self.aclose(), self.loop)
        with contextlib.suppress(Exception):
            future.result(timeout)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        self._thread = None
        if not self.loop.is_running():
            self.loop.close()

    async def aclose(self) -> None:
        """On the loop: sign out (when signed in) and end every task."""
        await self._sign_out("signed out")
        tasks = [t for t in self._tasks if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    def _post(self, fn: Callable[..., object], *args: object) -> None:
        """Run ``fn(*args)`` on the loop (from any thread)."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(fn, *args)

    def _submit(self, label: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run the coroutine ``make()`` on the loop; failures become the view's message."""
        self._post(self._spawn, label, make)

    def _spawn(self, label: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        task = self.loop.create_task(self._guard(label, make))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _guard(self, label: str, make: Callable[[], Coroutine[Any, Any, None]]) -> None:
        try:
            await make()
        except SwitchError as exc:
            if exc.status == 401 and self._signin is not None:
                await self._sign_out("the switch ended this session: sign in again", error=True)
                return
            self._tell(f"{label}: {exc.reason}", error=True)
        except SwitchUnreachable as exc:
            self._tell(f"{label}: {exc}", error=True)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed", label)
            self._tell(f"{label} failed (see the log)", error=True)

    def _emit(self, kind: str, **details: Any) -> None:
        if self.on_event is not None:
            try:
                self.on_event(kind, details)
            except Exception:
                log.exception("the event sink failed on %s", kind)

    def _tell(self, message: str | None, *, error: bool = False) -> None:
        self._message, self._error = message, error
        if error and message:
            self._emit("error", message=message)
        self._publish()

    # -- views ---------------------------------------------------------------------------------

    def _phase(self) -> Phase:
        if self._signin is None:
            return Phase.SIGNING_IN if self._signing_in else Phase.SIGNED_OUT
        state = self._agent.get("state")
        active = self._calls.get(self._active) if self._active is not None else None
        if self._consult is not None:
            return Phase.ON_CALL
        if active is not None:
            if active.state is CallState.RINGING:
                return Phase.RINGING
            return Phase.ON_CALL
        if state == "on_call":
            return Phase.ON_CALL
        if state == "wrap_up":
            return Phase.WRAP_UP
        if state in ("reserved", "ringing") and self._offer is not None:
            return Phase.RINGING
        if state == "ready":
            return Phase.READY
        return Phase.NOT_READY

    def _shown_offer(self) -> Offer | None:
        if self._offer is not None:
            return self._offer
        active = self._calls.get(self._active) if self._active is not None else None
        if active is not None and active.incoming:  # a direct call: what the phone knows
            return Offer(
                call_id=f"phone-{active.id}", queue=None, caller=active.remote, caller_name=None
            )
        return None

    def _wrap_up_remaining(self) -> float | None:
        """Seconds left of the wrap-up, measured on the switch's own clock: the time left when
        the view was sent (``wrap_up_until - since - for``) less the time since it came."""
        until, since, spent = (self._agent.get(k) for k in ("wrap_up_until", "since", "for"))
        if not all(isinstance(v, int | float) for v in (until, since, spent)):
            return None
        assert isinstance(until, int | float) and isinstance(since, int | float)
        assert isinstance(spent, int | float)
        left = until - since - spent - (time.monotonic() - self._agent_at)
        return float(max(0, math.ceil(left)))

    def view(self) -> View:
        """The view as it is now (on the loop)."""
        phase = self._phase()
        signin = self._signin
        active = self._calls.get(self._active) if self._active is not None else None
        reason = self._agent.get("reason") if signin is not None else None
        return View(
            phase=phase,
            agent=_text(self._agent.get("id")),
            agent_name=_text(self._agent.get("name")),
            reason=reason if isinstance(reason, str) else None,
            reasons=signin.reasons if signin else (),
            codes=signin.codes if signin else (),
            registration=self._registration,
            registered=self._registered,
            vpn=self._vpn,
            vpn_ok=self._vpn_ok,
            offer=self._shown_offer()
            if phase in (Phase.RINGING, Phase.ON_CALL, Phase.WRAP_UP)
            else None,
            call_seconds=(
                float(int(time.monotonic() - self._talk_since))
                if self._talk_since is not None
                else None
            ),
            on_hold=bool(active and active.held),
            muted=self._muted,
            consulting=self._consult_target if self._consult is not None else None,
            wrap_up_remaining=self._wrap_up_remaining() if phase is Phase.WRAP_UP else None,
            quality=self._quality,
            figures=self._figures,
            mic_level=self._mic,
            speaker_level=self._speaker,
            devices=self._devices,
            help_raised=self._help,
            idle_remaining=self._idle_remaining,
            message=self._message,
            message_is_error=self._error,
        )

    def _publish(self) -> None:
        if self._publish_later is not None:
            self._publish_later.cancel()
            self._publish_later = None
        view = self.view()
        if view == self._last_view:
            return
        self._last_view = view
        self._last_publish = time.monotonic()
        try:
            self.on_view(view)
        except Exception:
            log.exception("showing a view failed")

    # -- Actions (any thread) ------------------------------------------------------------------

    def sign_in(self, agent: str, password: str, code: str) -> None:
        self._submit("signing in", lambda: self._sign_in(agent, password, code))

    def sign_out(self) -> None:
        self._submit("signing out", lambda: self._sign_out("signed out"))

    def set_ready(self) -> None:
        self._submit("going ready", lambda: self._set_state("ready", None))

    def set_not_ready(self, reason: str) -> None:
        self._submit("going not ready", lambda: self._set_state("not_ready", reason))

    def answer(self) -> None:
        self._post(self._answer)

    def hang_up(self) -> None:
        self._post(self._hang_up)

    def hold(self, on: bool) -> None:
        self._post(self._on_call, "hold", lambda call: self.phone.hold(call, on))

    def mute(self, on: bool) -> None:
        self._post(self._mute, on)

    def send_dtmf(self, key: str) -> None:
        self._post(self._dtmf, key)

    def transfer_blind(self, target: str) -> None:
        self._post(self._on_call, "transfer", lambda call: self.phone.transfer_blind(call, target))

    def consult(self, target: str) -> None:
        self._post(self._start_consult, target)

    def complete_transfer(self) -> None:
        self._post(self._complete_transfer)

    def cancel_consult(self) -> None:
        self._post(self._cancel_consult)

    def raise_help(self, conference: bool) -> None:
        self._submit("asking for help", lambda: self._raise_help(conference))

    def wrap_up(self, code: str | None, note: str) -> None:
        self._submit("ending the wrap-up", lambda: self._wrap_up(code, note))

    def test_call(self) -> None:
        self._post(self._test_call)

    def choose_devices(self, input: str | None, output: str | None) -> None:
        self._post(self._choose_devices, input, output)

    def screen_pop_viewed(self, call_id: str) -> None:
        self._post(self._screen_pop_viewed, call_id)

    def touched(self) -> None:
        self._post(self._touch)

    # -- PhoneListener (the phone's thread) ----------------------------------------------------

    def registration_changed(self, registered: bool, status: str) -> None:
        self._post(self._registration_changed, registered, status)

    def call_changed(self, call: PhoneCall) -> None:
        self._post(self._call_changed, call)

    def levels(self, mic: float, speaker: float) -> None:
        self._post(self._levels, mic, speaker)

    # -- signing in and out --------------------------------------------------------------------

    async def _check_vpn(self, api: SwitchApi) -> bool:
        address = self.config.switch.address
        try:
            await api.health()
        except SwitchUnreachable:
            self._vpn, self._vpn_ok = f"down: the switch does not answer on {address}", False
            return False
        self._vpn, self._vpn_ok = f"up: the switch answers on {address}", True
        return True

    async def _sign_in(self, agent: str, password: str, code: str) -> None:
        if self._signin is not None or self._signing_in:
            return
        self._signing_in = True
        self._message, self._error = None, False
        self._publish()
        switch = self.config.switch
        api = SwitchApi(switch.base_url, timeout=self.request_timeout)
        try:
            if not await self._check_vpn(api) and switch.vpn_required:
                raise _Refused(
                    f"the switch does not answer on its VPN address {switch.address}: "
                    "is the VPN up?"
                )
            signin = await api.login(agent, password, code)
            if switch.vpn_required and signin.vpn_address != switch.address:
                with contextlib.suppress(SwitchError, SwitchUnreachable):
                    await api.logout()
                told = signin.vpn_address or "nothing"
                raise _Refused(
                    f"the switch reports its VPN address as {told}, not {switch.address}: "
                    "this client only works over the VPN"
                )
        except (_Refused, SwitchError, SwitchUnreachable) as exc:
            await api.close()
            self._signing_in = False
            text = exc.reason if isinstance(exc, SwitchError) else str(exc)
            if isinstance(exc, SwitchError) and exc.status == 429 and exc.retry_after:
                text = f"{text} (retry in {int(exc.retry_after)} s)"
            log.warning("sign-in of agent %s refused: %s", agent, text)
            self._tell(text, error=True)
            return
        except BaseException:
            await api.close()
            self._signing_in = False
            raise
        self._api, self._signin, self._signing_in = api, signin, False
        self._agent, self._agent_at = dict(signin.agent), time.monotonic()
        limits = [v for v in (signin.idle_signout, self.config.agent.idle_signout) if v]
        self._idle_limit = min(limits) if limits else 0.0
        self._idle_from = time.monotonic()
        log.info("agent %s signed in", self._agent.get("id"))
        self._emit(
            "signed_in",
            agent=self._agent.get("id"),
            state=self._agent.get("state"),
            sip=signin.sip is not None,
        )
        if signin.sip is not None:
            self._registration = "registering"
            try:
                self.phone.start(signin.sip, self)
            except Exception:
                log.exception("starting the phone failed")
                self._registration = "offline: the phone did not start (see the log)"
            else:
                self._pick_devices()
        else:
            self._registration = "offline: the switch gave no SIP account for this session"
        for work in (self._follow_events, self._watch_vpn, self._ticker, self._fetch_figures):
            task = self.loop.create_task(self._guard("the session", work))
            self._session_tasks.append(task)
        self._publish()

    async def _sign_out(self, why: str, *, error: bool = False, tell_switch: bool = True) -> None:
        if self._signin is None or self._signing_out:
            return
        self._signing_out = True
        api = self._api
        current = asyncio.current_task()
        for task in self._session_tasks:
            if task is not current:
                task.cancel()
        self._session_tasks.clear()
        # The phone unregisters first, while its session credentials are still good: after
        # the logout the switch refuses them, and a phone retrying refused credentials would
        # get the agent's address banned for repeated authentication failures.
        try:
            await asyncio.wait_for(self.loop.run_in_executor(None, self.phone.stop), PHONE_STOP)
        except Exception:
            log.exception("stopping the phone failed")
        if api is not None:
            if tell_switch and api.signed_in:
                try:
                    await api.logout()
                except (SwitchError, SwitchUnreachable) as exc:
                    log.warning("signing out at the switch failed: %s", exc)
            api.forget()
            await api.close()
        agent = self._agent.get("id")
        self._reset()
        self._vpn, self._vpn_ok = "not checked", False
        log.info("agent %s signed out: %s", agent, why)
        self._emit("signed_out", agent=agent, why=why)
        self._tell(why, error=error)

    # -- the switch's events -------------------------------------------------------------------

    async def _follow_events(self) -> None:
        api = self._api
        assert api is not None
        try:
            await api.events(self._on_message)
        except SwitchError:
            if self._signin is not None:
                self._spawn(
                    "signing out",
                    lambda: self._sign_out(
                        "the switch ended this session: sign in again",
                        error=True,
                        tell_switch=False,
                    ),
                )

    def _on_message(self, data: dict[str, Any]) -> None:
        kind = data.get("type")
        if kind == "state" and isinstance(data.get("agent"), dict):
            self._on_state(data["agent"])
        elif kind == "offer":
            self._on_offer(data)
        elif kind == "event" and isinstance(data.get("event"), dict):
            event = data["event"]
            log.debug("queue event %s for call %s", event.get("event"), event.get("call_id"))
            if event.get("event") == "missed" and event.get("agent") == self._agent.get("id"):
                self._tell("a call was offered and not answered", error=True)

    def _on_state(self, view: dict[str, Any]) -> None:
        before = self._agent.get("state")
        old_call = self._agent.get("call")
        self._agent, self._agent_at = dict(view), time.monotonic()
        state = view.get("state")
        if state != before:
            log.info("agent state %s -> %s", before, state)
            self._emit("state", state=state, reason=view.get("reason"))
            if state == "wrap_up":
                call = old_call or (self._offer.call_id if self._offer else None)
                self._emit("wrap_up", call_id=call, remaining=self._wrap_up_remaining())
            if before in ("on_call", "wrap_up") and state not in ("on_call", "wrap_up"):
                self._spawn("fetching the figures", self._fetch_figures)
            if before == "on_call":  # the switch lowers a raised hand when the call ends
                self._help = False
            if state == "logged_out" and before is not None and not self._signing_out:
                # logged out at the switch (a supervisor, or the agent removed): the session
                # ends here too, and the agent is told why
                self._spawn(
                    "signing out",
                    lambda: self._sign_out(
                        "signed out at the switch (by a supervisor)", error=True
                    ),
                )
        if state not in _WITH_CALL and view.get("call") is None:
            self._drop_offer()
        self._publish()

    def _on_offer(self, data: dict[str, Any]) -> None:
        call_id = data.get("call_id")
        if not isinstance(call_id, str):
            return
        path = data.get("path")
        offer = Offer(
            call_id=call_id,
            queue=_text(data.get("queue")),
            caller=_text(data.get("caller")),
            caller_name=_text(data.get("caller_name")),
            path=tuple(str(p) for p in path) if isinstance(path, list) else (),
            fields=_fields(data.get("screen_pop")),
            data_class=_text(data.get("data_class")),
        )
        self.redactor.remember(
            [offer.caller, offer.caller_name, *(f.value for f in offer.fields if not f.masked)]
        )
        self._offer, self._offer_call = offer, None
        active = self._calls.get(self._active) if self._active is not None else None
        if active is not None and active.incoming and active.state is CallState.RINGING:
            self._offer_call = active.id
        log.info("offer of call %s from queue %s", call_id, offer.queue)
        self._emit(
            "offer", call_id=call_id, queue=offer.queue, fields=[f.name for f in offer.fields]
        )
        self._publish()

    def _drop_offer(self) -> None:
        """The offer is over (withdrawn, or its wrap-up ended): forget its screen pop."""
        if self._offer is None or self._active is not None:
            return
        log.info("offer of call %s closed", self._offer.call_id)
        self._offer, self._offer_call = None, None
        self.redactor.forget_all()

    async def _set_state(self, state: str, reason: str | None) -> None:
        self._touch()
        api = self._require()
        if api is None:
            return
        self._message = None
        view = await api.set_state(state, reason)
        if view:
            self._on_state(view)
        self._publish()

    async def _wrap_up(self, code: str | None, note: str) -> None:
        self._touch()
        api = self._require()
        if api is None:
            return
        view = await api.wrap_up(code, note.strip())
        log.info("wrap-up ended with code %s", code)
        self._message = None
        if view:
            self._on_state(view)
        self._publish()

    async def _raise_help(self, conference: bool) -> None:
        self._touch()
        api = self._require()
        if api is None:
            return
        await api.raise_help(conference)
        self._help = True
        self._tell("a supervisor was asked to help")

    async def _fetch_figures(self) -> None:
        api = self._api
        if api is None:
            return
        try:
            figures = await api.stats()
        except SwitchError as exc:
            if exc.status == 401:
                raise
            log.info("the day's figures are not available: %s", exc.reason)
            return
        except SwitchUnreachable as exc:
            log.info("the day's figures are not available: %s", exc)
            return
        self._figures = figures
        self._publish()

    def _require(self) -> SwitchApi | None:
        if self._api is None or self._signin is None:
            self._tell("not signed in", error=True)
            return None
        return self._api

    # -- the session's loops -------------------------------------------------------------------

    async def _watch_vpn(self) -> None:
        api = self._api
        assert api is not None
        while True:
            await asyncio.sleep(self.vpn_interval)
            was = self._vpn_ok
            ok = await self._check_vpn(api)
            if ok != was:
                log.warning(
                    "the switch %s on its VPN address", "answers" if ok else "no longer answers"
                )
            if ok and not was:  # back: the switch may have dropped the phone's binding
                self.phone.register_again()
            self._publish()

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick)
            self._on_tick()

    def _on_tick(self) -> None:
        now = time.monotonic()
        talking = self._active is not None and self._talk_since is not None
        if talking and now - self._quality_at >= QUALITY_INTERVAL:
            assert self._active is not None
            self._quality_at = now
            try:
                self._quality = self.phone.quality(self._active)
            except Exception:
                log.exception("reading the call quality failed")
        busy = (
            self._active is not None
            or self._consult is not None
            or self._agent.get("state") in _WITH_CALL
        )
        if busy or not self._idle_limit:
            self._idle_from = now
            self._idle_remaining = None
        else:
            left = self._idle_limit - (now - self._idle_from)
            if left <= 0:
                minutes = self._idle_limit / 60
                span = f"{minutes:g} minutes" if minutes >= 1 else f"{self._idle_limit:g} seconds"
                self._idle_remaining = None
                self._spawn(
                    "signing out",
                    lambda: self._sign_out(f"signed out after {span} without calls or input"),
                )
                return
            self._idle_remaining = float(math.ceil(left)) if left <= IDLE_WARNING else None
        self._publish()

    # -- the phone -----------------------------------------------------------------------------

    def _registration_changed(self, registered: bool, status: str) -> None:
        if self._signin is None:
            self._registration, self._registered = "offline", False
            self._publish()
            return
        if registered and not self._registered:
            log.info("the phone is registered")
            self._emit("registered", status=status)
        self._registration, self._registered = status, registered
        self._publish()

    def _call_changed(self, call: PhoneCall) -> None:
        if self._signin is None:
            return
        known = self._calls.get(call.id)
        if call.state is CallState.ENDED:
            self._calls.pop(call.id, None)
            self._call_ended(call)
        else:
            self._calls[call.id] = call
            if known is None:
                self._new_call(call)
            answered = call.state is CallState.CONFIRMED and call.id == self._active
            if answered and self._talk_since is None:
                self._talk_since = time.monotonic()
                self._quality_at = -math.inf
                self._emit("answered", call_id=self._call_name(call.id))
        self._publish()

    def _new_call(self, call: PhoneCall) -> None:
        if call.incoming:
            if self._active is not None:
                log.info("call %d rings while another is up: not shown", call.id)
                return
            self._active = call.id
            if self._offer is not None and self._offer_call is None:
                self._offer_call = call.id
            self._emit("ringing", call_id=self._call_name(call.id), phone_call=call.id)
        elif (
            self._consult_target is not None and self._consult is None and self._active is not None
        ):
            self._consult = call.id
        elif self._active is None:
            self._active = call.id

    def _call_name(self, call: int) -> str:
        if self._offer is not None and self._offer_call == call:
            return self._offer.call_id
        return f"phone-{call}"

    def _call_ended(self, call: PhoneCall) -> None:
        if call.id == self._consult:
            self._consult, self._consult_target = None, None
            active = self._active
            if active is not None and active in self._calls:  # back to the customer
                self.phone.hold(active, False)
            return
        if call.id != self._active:
            return
        name = self._call_name(call.id)
        self._emit("ended", call_id=name, status=call.status)
        log.info("call %s ended (%s)", name, call.status)
        if not call.incoming and call.status is not None and call.status >= 300:
            self._tell(f"the call failed: {call.status} {call.reason}".rstrip(), error=True)
        self._active, self._talk_since, self._quality = None, None, None
        self._offer_call = None
        self._muted = False
        if self._consult is not None and self._consult in self._calls:
            self._active, self._consult, self._consult_target = self._consult, None, None
            self._talk_since = time.monotonic()
        if self._agent.get("state") not in _WITH_CALL:
            self._drop_offer()
        self._spawn("fetching the figures", self._fetch_figures)

    def _answer(self) -> None:
        self._touch()
        call = self._offer_call if self._offer_call is not None else self._active
        ringing = self._calls.get(call) if call is not None else None
        if ringing is None or ringing.state is not CallState.RINGING:
            self._tell("no call is ringing on the phone", error=True)
            return
        self.phone.answer(ringing.id)

    def _hang_up(self) -> None:
        self._touch()
        if self._active is None:
            self._tell("there is no call to hang up", error=True)
            return
        self.phone.hang_up(self._active)

    def _on_call(self, what: str, act: Callable[[int], None]) -> None:
        self._touch()
        call = self._calls.get(self._active) if self._active is not None else None
        if call is None or call.state is not CallState.CONFIRMED:
            self._tell(f"{what}: there is no call in progress", error=True)
            return
        act(call.id)

    def _mute(self, on: bool) -> None:
        self._touch()
        self.phone.mute(on)
        self._muted = on
        self._publish()

    def _dtmf(self, key: str) -> None:
        self._touch()
        if not key or any(k not in DTMF_KEYS for k in key.upper()):
            self._tell(f"{key!r} is not a telephone key", error=True)
            return
        call = self._consult if self._consult is not None else self._active
        if call is None:
            self._tell("keys: there is no call in progress", error=True)
            return
        self.phone.send_dtmf(call, key.upper())

    def _start_consult(self, target: str) -> None:
        self._touch()
        if self._consult is not None or self._consult_target is not None:
            self._tell("a consultation is already up", error=True)
            return
        call = self._calls.get(self._active) if self._active is not None else None
        if call is None or call.state is not CallState.CONFIRMED or not target:
            self._tell("consulting: there is no call in progress", error=True)
            return
        self._consult_target = target
        self.phone.hold(call.id, True)
        self.phone.call(target)
        self._publish()

    def _complete_transfer(self) -> None:
        self._touch()
        if self._active is None or self._consult is None:
            self._tell("transfer: there is no consultation to complete", error=True)
            return
        self.phone.transfer_attended(self._active, self._consult)

    def _cancel_consult(self) -> None:
        self._touch()
        consult, active = self._consult, self._active
        self._consult_target = None
        if consult is None:
            self._publish()
            return
        self.phone.hang_up(consult)
        if active is not None:
            self.phone.hold(active, False)
        self._publish()

    def _test_call(self) -> None:
        self._touch()
        if self._signin is None or not self._registered:
            self._tell("the test call needs a registered phone", error=True)
            return
        if self._active is not None:
            self._tell("the test call waits until the call is over", error=True)
            return
        self.phone.call(self.config.switch.echo_test)

    def _levels(self, mic: float, speaker: float) -> None:
        self._mic, self._speaker = mic, speaker
        wait = self._last_publish + 1 / LEVEL_RATE - time.monotonic()
        if wait <= 0:
            self._publish()
        elif self._publish_later is None:
            self._publish_later = self.loop.call_later(wait, self._publish)

    def _pick_devices(self) -> None:
        """The remembered headset (or the configuration's) when the system has it."""
        try:
            inputs, outputs = self.phone.devices()
        except Exception:
            log.exception("listing the sound devices failed")
            return
        prefs = load_prefs(self.config.folder)
        audio = self.config.audio
        chosen_in = next((d for d in (prefs.input, audio.input) if d and d in inputs), None)
        chosen_out = next((d for d in (prefs.output, audio.output) if d and d in outputs), None)
        if chosen_in or chosen_out:
            self.phone.use_devices(chosen_in, chosen_out)
        self._devices = Devices(tuple(inputs), tuple(outputs), chosen_in, chosen_out)

    def _choose_devices(self, input: str | None, output: str | None) -> None:
        self._touch()
        self.phone.use_devices(input, output)
        self._devices = replace(self._devices, input=input, output=output)
        try:
            save_prefs(self.config.folder, Prefs(input, output))
        except OSError as exc:
            log.warning("the device choice could not be saved: %s", exc)
        self._publish()

    def _screen_pop_viewed(self, call_id: str) -> None:
        if call_id in self._audited or self._api is None or call_id.startswith("phone-"):
            return
        self._audited.add(call_id)
        api = self._api

        async def report() -> None:
            try:
                await api.audit_screen_pop(call_id)
            except (SwitchError, SwitchUnreachable) as exc:
                log.warning("the screen pop view of call %s was not reported: %s", call_id, exc)

        self._spawn("reporting the screen pop view", report)

    def _touch(self) -> None:
        self._idle_from = time.monotonic()
        if self._idle_remaining is not None:
            self._idle_remaining = None
            self._publish()
