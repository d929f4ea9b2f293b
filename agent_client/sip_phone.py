"""The agent's softphone: a pjsua2 user agent registered to the switch, with the headset
bridged in (:mod:`agent_client.headset`).

Threading. pjsua2 runs on one thread of its own (:class:`SipPhone` starts it): the library
is created there with no worker threads (``threadCnt = 0``, ``mainThreadOnly = True``) and
that thread polls ``libHandleEvents``, so every pjsua2 callback, and every call of the
:class:`~agent_client.phone.PhoneListener`, happens on it. The :class:`~agent_client.phone.Phone`
methods may be called from any thread: they post a command to that thread and return at
once. The only other threads that touch pjsua2 objects are pjmedia's clock (the null sound
device's, which drives the conference bridge and so the headset port) and PortAudio's, which
touch only the headset's rings.

Registration (RFC 3261 §10.2). REGISTER to ``sip:server:port;transport=...`` as
``sip:extension@domain`` with the session's digest credentials, refreshed before it expires;
after a failure it is retried (first after ``first_retry``, then every ``retry`` seconds),
also when pjsua2 itself would not retry (a 403, a 401), so a network that comes back brings
the phone back. UDP keep-alives (CRLF, RFC 5626 §4.4.1 style) keep a NAT or VPN path open;
the switch's OPTIONS probes are answered by pjsua2. The state is told to the agent in plain
words: "registered", "registering…", "offline: 408 Request Timeout — retrying in 10 s".

Calls. An incoming call is answered 180 and reported ringing; hold is a re-INVITE offering
sendonly (RFC 3264 §8.4), taking it off hold one offering sendrecv; DTMF goes as RFC 4733
telephone-events; a blind transfer is a REFER (RFC 3515), an attended one a REFER with
Replaces (RFC 3891, RFC 5589 §7). The call's quality is estimated every second from the
stream's RTCP statistics (:mod:`agent_client.quality`).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pjsua2 as pj

from agent_client.headset import Headset, HeadsetError, HeadsetPort, device_names
from agent_client.phone import CallState, PhoneCall, PhoneListener, SipAccount
from agent_client.quality import assess
from agent_client.view import CallQuality

__all__ = ["SipPhone"]

log = logging.getLogger(__name__)
pjsip_log = logging.getLogger(__name__ + ".pjsip")

#: the longest the phone's thread waits for SIP events before it looks at its commands (an
#: event ends the wait at once); 20 ms wakes it half as often as 10 ms, for the CPU
POLL_MS = 20
LEVELS_EVERY = 0.2  # seconds between two level reports
QUALITY_EVERY = 1.0  # seconds between two samples of the stream statistics
QUALITY_WINDOW = 5  # samples the loss is computed over (about 5 s)
UNREGISTER_WAIT = 2.0  # seconds stop() waits for the answer to the un-REGISTER
STOP_WAIT = 5.0  # seconds stop() waits for the phone's thread in all
SETTLE_WAIT = 0.3  # seconds the library runs after the account shut down, before it goes
#: a retry not started by pjsua2 this long after it was due is started by the phone
RETRY_GRACE = 0.5

TRANSPORTS = {
    "udp": pj.PJSIP_TRANSPORT_UDP,
    "tcp": pj.PJSIP_TRANSPORT_TCP,
    "tls": pj.PJSIP_TRANSPORT_TLS,
}
#: G.711 only: what the switch relays, and what agent_client.quality estimates
CODECS = ("PCMU/8000", "PCMA/8000")


def _route_address(host: str, port: int) -> str:
    """The local IPv4 address this host would use to reach ``host`` (no packet is sent):
    what the phone binds to and writes into Contact and SDP."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.connect((host, port))
        return str(probe.getsockname()[0])


def _number(uri: str) -> str:
    """The user part of a SIP URI (``"Ann" <sip:1001@d>`` -> ``1001``), else the URI."""
    text = uri.strip()
    if "<" in text and ">" in text:
        text = text[text.index("<") + 1 : text.index(">")]
    for scheme in ("sip:", "sips:", "tel:"):
        if text.startswith(scheme):
            rest = text[len(scheme) :]
            user = rest.split("@", 1)[0] if "@" in rest else rest
            return user.split(";", 1)[0] or text
    return text


def offline_text(code: int, reason: str, retry_in: int | None) -> str:
    """The agent's words for a failed registration."""
    why = f"{code} {reason}".strip() if code else (reason or "no answer")
    return f"offline: {why}" + (f" — retrying in {retry_in} s" if retry_in else "")


class _PjsipLog(pj.LogWriter):  # type: ignore[misc]
    """pjsip's log into Python's logging (called on any pjlib thread)."""

    def write(self, entry: Any) -> None:
        with contextlib.suppress(Exception):
            pjsip_log.debug("%s", str(entry.msg).rstrip())


@dataclass
class _CallRecord:
    """What the phone knows of one of its calls."""

    handle: int
    call: _Call
    incoming: bool
    remote: str
    state: CallState
    held: bool = False
    status: int | None = None
    reason: str = ""
    #: (packets received, packets lost) samples of the audio stream
    samples: collections.deque[tuple[int, int]] = field(
        default_factory=lambda: collections.deque(maxlen=QUALITY_WINDOW + 1)
    )
    #: a transfer whose final NOTIFY said 2xx ends this call
    transferring: bool = False

    def snapshot(self) -> PhoneCall:
        return PhoneCall(
            id=self.handle,
            state=self.state,
            remote=self.remote,
            incoming=self.incoming,
            held=self.held,
            status=self.status,
            reason=self.reason,
        )


class _Call(pj.Call):  # type: ignore[misc]
    """A pjsua2 call that reports to the phone (callbacks on the phone's thread)."""

    def __init__(self, phone: SipPhone, account: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.phone = phone
        self.handle = 0

    def onCallState(self, prm: Any) -> None:
        self.phone._guard(self.phone._on_call_state, self)

    def onCallMediaState(self, prm: Any) -> None:
        self.phone._guard(self.phone._on_media_state, self)

    def onCallTransferStatus(self, prm: Any) -> None:
        self.phone._guard(
            self.phone._on_transfer_status,
            self,
            int(prm.statusCode),
            str(prm.reason),
            bool(prm.finalNotify),
        )
        prm.cont = not prm.finalNotify


class _Account(pj.Account):  # type: ignore[misc]
    """The phone's one account: registration and incoming calls."""

    def __init__(self, phone: SipPhone) -> None:
        super().__init__()
        self.phone = phone

    def onRegStarted(self, prm: Any) -> None:
        self.phone._guard(self.phone._on_reg_started, bool(prm.renew))

    def onRegState(self, prm: Any) -> None:
        self.phone._guard(
            self.phone._on_reg_state, int(prm.code), str(prm.reason), int(prm.expiration)
        )

    def onIncomingCall(self, prm: Any) -> None:
        self.phone._guard(self.phone._on_incoming, self, int(prm.callId))


class SipPhone:
    """The :class:`~agent_client.phone.Phone` of the agent client, on pjsua2.

    One per process at a time (pjsua2 has one library instance per process). ``rate``: the
    headset's and the conference bridge's sampling rate (8000 or 16000). ``input_device``,
    ``output_device``: PortAudio device names (None: the system's default); ``audio=False``
    runs with no sound device at all (the headset port still sends silence).
    """

    def __init__(
        self,
        *,
        rate: int = 8000,
        input_device: str | None = None,
        output_device: str | None = None,
        audio: bool = True,
        retry: int = 15,
        first_retry: int = 5,
        keepalive: int = 15,
        log_level: int = 2,
        user_agent: str = "softswitch-agent-client",
    ) -> None:
        self.headset = Headset(rate)
        self.audio = audio
        self.input_device = input_device
        self.output_device = output_device
        self.retry = max(int(retry), 1)
        self.first_retry = max(int(first_retry), 1)
        self.keepalive = int(keepalive)
        self.log_level = int(log_level)
        self.user_agent = user_agent
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._started = threading.Event()
        self._account_cfg: SipAccount | None = None
        self._listener: PhoneListener | None = None
        # --- the phone thread's own state ---
        self._ep: Any = None
        self._log_writer: _PjsipLog | None = None
        self._account: _Account | None = None
        self._port: Any = None
        self._calls: dict[int, _CallRecord] = {}
        self._next_handle = 1
        self.registered = False
        self.registration = "offline"
        self._failures = 0
        self._retry_at: float | None = None
        self._next_levels = 0.0
        self._next_quality = 0.0
        self._unregistered = threading.Event()
        # --- read from any thread ---
        self._quality: dict[int, CallQuality] = {}
        self._devices: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    # --- the Phone protocol (any thread) ------------------------------------------------

    def start(self, account: SipAccount, listener: PhoneListener) -> None:
        if self._thread is not None:
            raise RuntimeError("the phone is already started")
        self._account_cfg = account
        self._listener = listener
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="sip-phone", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread = self._thread
        if thread is None:
            return
        self._stopping.set()
        thread.join(STOP_WAIT)
        if thread.is_alive():
            log.warning("the phone's thread did not end within %.0f s", STOP_WAIT)
        self._thread = None

    def call(self, target: str) -> None:
        self._post(lambda: self._do_call(target))

    def answer(self, call: int) -> None:
        self._post(lambda: self._do_answer(call))

    def hang_up(self, call: int) -> None:
        self._post(lambda: self._do_hang_up(call))

    def hold(self, call: int, on: bool) -> None:
        self._post(lambda: self._do_hold(call, on))

    def mute(self, on: bool) -> None:
        self.headset.muted = bool(on)  # read by pjmedia's clock thread at the next frame

    def send_dtmf(self, call: int, digits: str) -> None:
        self._post(lambda: self._do_dtmf(call, digits))

    def transfer_blind(self, call: int, target: str) -> None:
        self._post(lambda: self._do_transfer_blind(call, target))

    def transfer_attended(self, call: int, consultation: int) -> None:
        self._post(lambda: self._do_transfer_attended(call, consultation))

    def quality(self, call: int) -> CallQuality | None:
        return self._quality.get(call)

    def devices(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        if self._devices is None:
            return device_names() if self._thread is None else ((), ())
        return self._devices

    def use_devices(self, input: str | None, output: str | None) -> None:
        self._post(lambda: self._do_use_devices(input, output))

    def register_again(self) -> None:
        def renew() -> None:
            if self._account is not None:
                log.info("registering again (the network came back)")
                self._account.setRegistration(True)

        self._post(renew)

    # --- plumbing ----------------------------------------------------------------------

    def _post(self, command: Callable[[], None]) -> None:
        if self._thread is None or self._stopping.is_set():
            log.info("the phone is not running: command ignored")
            return
        self._commands.put(command)

    def _guard(self, function: Callable[..., None], *args: Any) -> None:
        """Run a callback's work; nothing may escape back into pjsua2's C code."""
        try:
            function(*args)
        except pj.Error as exc:
            log.warning("pjsua2: %s", exc.info())
        except Exception:
            log.exception("error in a phone callback")

    def _tell(self, what: str, *args: Any) -> None:
        """Call the listener (on this thread); its errors are logged, never raised."""
        listener = self._listener
        if listener is None:
            return
        try:
            getattr(listener, what)(*args)
        except Exception:
            log.exception("the phone listener failed in %s", what)

    def _set_registration(self, registered: bool, status: str) -> None:
        if (registered, status) == (self.registered, self.registration):
            return
        self.registered, self.registration = registered, status
        log.info("registration: %s", status)
        self._tell("registration_changed", registered, status)

    # --- the phone's thread ------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._boot()
        except Exception as exc:
            text = exc.info() if isinstance(exc, pj.Error) else str(exc)
            log.error("the phone cannot start: %s", text)
            self._set_registration(False, f"offline: the phone cannot start: {text}")
            self._destroy()
            return
        self._started.set()
        try:
            while not self._stopping.is_set():
                self._ep.libHandleEvents(POLL_MS)
                self._drain()
                self._tick(time.monotonic())
        except Exception:
            log.exception("the phone's loop failed")
        finally:
            self._shutdown()

    def _drain(self) -> None:
        for _ in range(100):  # bounded: the events get their turn
            try:
                command = self._commands.get_nowait()
            except queue.Empty:
                return
            self._guard(command)

    def _tick(self, now: float) -> None:
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            if self._account is not None and not self.registered:
                log.info("registering again")
                self._guard(self._account.setRegistration, True)
        if now >= self._next_levels:
            self._next_levels = now + LEVELS_EVERY
            if self.headset.is_open:
                mic, speaker = self.headset.levels()
                self._tell("levels", mic, speaker)
        if now >= self._next_quality:
            self._next_quality = now + QUALITY_EVERY
            for record in list(self._calls.values()):
                if record.state is CallState.CONFIRMED:
                    self._guard(self._sample_quality, record)

    def _boot(self) -> None:
        account = self._account_cfg
        assert account is not None
        transport = account.transport.lower()
        if transport not in TRANSPORTS:
            raise ValueError(f"unknown transport {account.transport!r}")
        local = _route_address(account.server, account.port)
        ep = pj.Endpoint()
        ep.libCreate()
        self._ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = self.user_agent
        cfg.uaConfig.maxCalls = 4
        self._log_writer = _PjsipLog()
        cfg.logConfig.writer = self._log_writer
        cfg.logConfig.level = self.log_level
        cfg.logConfig.consoleLevel = self.log_level
        cfg.logConfig.decor = cfg.logConfig.decor & ~pj.PJ_LOG_HAS_NEWLINE
        cfg.medConfig.clockRate = self.headset.rate
        cfg.medConfig.sndClockRate = self.headset.rate
        cfg.medConfig.audioFramePtime = 20
        cfg.medConfig.ptime = 20
        cfg.medConfig.channelCount = 1
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0  # a headset has no echo path worth cancelling
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.boundAddress = local
        tcfg.publicAddress = local
        tcfg.port = 0
        transport_id = ep.transportCreate(TRANSPORTS[transport], tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        for info in ep.codecEnum2():
            name = str(info.codecId)
            wanted = any(name.lower().startswith(c.lower()) for c in CODECS)
            ep.codecSetPriority(name, 200 if wanted else 0)
        self._port = HeadsetPort(self.headset)
        self._devices = device_names() if self.audio else ((), ())
        self._open_headset()

        target = f"{account.server}:{account.port};transport={transport}"
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{account.extension}@{account.domain}"
        acfg.regConfig.registrarUri = f"sip:{target}"
        acfg.regConfig.timeoutSec = int(account.expires)
        acfg.regConfig.retryIntervalSec = self.retry
        acfg.regConfig.firstRetryIntervalSec = self.first_retry
        acfg.regConfig.randomRetryIntervalSec = 0
        acfg.regConfig.dropCallsOnFail = False
        acfg.regConfig.unregWaitMsec = int(UNREGISTER_WAIT * 1000)
        acfg.sipConfig.proxies.append(f"sip:{target};lr")
        acfg.sipConfig.transportId = transport_id
        acfg.sipConfig.authCreds.append(
            pj.AuthCredInfo("digest", "*", account.username, 0, account.password)
        )
        acfg.natConfig.udpKaIntervalSec = self.keepalive
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = local
        acfg.mediaConfig.transportConfig.publicAddress = local
        acfg.mediaConfig.transportConfig.port = 0
        self._set_registration(False, "registering…")
        self._account = _Account(self)
        self._account.create(acfg)

    def _open_headset(self) -> None:
        if not self.audio:
            return
        try:
            self.headset.open(self.input_device, self.output_device)
        except HeadsetError as exc:
            log.warning("%s", exc)

    def _shutdown(self) -> None:
        """Hang up, unregister (waiting at most UNREGISTER_WAIT) and destroy the library."""
        try:
            if self._ep is not None:
                with contextlib.suppress(pj.Error):
                    self._ep.hangupAllCalls()
                self._pump(0.2)
                if self._account is not None and self.registered:
                    self._unregistered.clear()
                    with contextlib.suppress(pj.Error):
                        self._account.setRegistration(False)
                    end = time.monotonic() + UNREGISTER_WAIT
                    while not self._unregistered.is_set() and time.monotonic() < end:
                        self._ep.libHandleEvents(POLL_MS)
        except Exception:
            log.exception("the phone did not shut down cleanly")
        finally:
            self._destroy()
            self._set_registration(False, "offline: signed out")

    def _forget_calls(self) -> None:
        """Disconnect and drop every call (their locals die with this frame)."""
        records = list(self._calls.values())
        self._calls.clear()
        for record in records:
            self._unbridge(record.call)

    def _pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self._ep.libHandleEvents(POLL_MS)

    def _destroy(self) -> None:
        self.headset.close()
        while True:  # queued commands may hold calls: they go before the library does
            try:
                self._commands.get_nowait()
            except queue.Empty:
                break
        self._forget_calls()
        # a Call that outlives the library asserts in its destructor: none may be left,
        # not even in a reference cycle
        gc.collect()
        self._quality.clear()
        if self._account is not None:
            with contextlib.suppress(pj.Error):
                self._account.shutdown()
        self._port = None
        if self._ep is not None:
            # what the account's shutdown started (its last registration transaction and
            # timers) ends before the library goes: destroyed in the middle, it crashed
            with contextlib.suppress(pj.Error):
                self._pump(SETTLE_WAIT)
            with contextlib.suppress(pj.Error):
                self._ep.libDestroy()
        self._ep = None
        # the account object lives until the library is gone: a registration the library
        # still ends while it is destroyed reports to it (freed before, that was a crash)
        self._account = None

    # --- registration ------------------------------------------------------------------

    def _on_reg_started(self, renew: bool) -> None:
        self._retry_at = None
        if renew and not self.registered:
            self._set_registration(False, "registering…")

    def _on_reg_state(self, code: int, reason: str, expiration: int) -> None:
        if 200 <= code < 300:
            if expiration > 0:
                self._failures = 0
                self._set_registration(True, "registered")
            else:
                self._unregistered.set()
                self._set_registration(False, "offline: signed out")
            return
        if self._stopping.is_set():
            self._unregistered.set()
            return
        self._failures += 1
        wait = self.first_retry if self._failures == 1 else self.retry
        # pjsua2 retries timeouts, 5xx and 6xx by itself; anything else is retried here
        self._retry_at = time.monotonic() + wait + RETRY_GRACE
        self._set_registration(False, offline_text(code, reason, wait))

    # --- calls: events -------------------------------------------------------------------

    def _keep(self, call: _Call, incoming: bool, remote: str, state: CallState) -> _CallRecord:
        handle = self._next_handle
        self._next_handle += 1
        call.handle = handle
        record = _CallRecord(handle, call, incoming, remote, state)
        self._calls[handle] = record
        return record

    def _drop(self, handle: int) -> None:
        """Forget an ended call (never from its own callback: its object must outlive it)."""
        self._calls.pop(handle, None)

    def _on_incoming(self, account: Any, call_id: int) -> None:
        call = _Call(self, account, call_id)
        info = call.getInfo()
        record = self._keep(call, True, _number(str(info.remoteUri)), CallState.RINGING)
        prm = pj.CallOpParam()
        prm.statusCode = 180
        call.answer(prm)
        self._tell("call_changed", record.snapshot())

    def _on_call_state(self, call: _Call) -> None:
        record = self._calls.get(call.handle)
        if record is None:
            return
        info = call.getInfo()
        state = info.state
        if state == pj.PJSIP_INV_STATE_CONFIRMED:
            new = CallState.CONFIRMED
        elif state == pj.PJSIP_INV_STATE_DISCONNECTED:
            new = CallState.ENDED
        elif record.incoming:
            new = CallState.RINGING
        else:
            new = CallState.CALLING
        status = int(info.lastStatusCode) or None
        reason = str(info.lastReason)
        progress = new is CallState.CALLING and status != record.status  # 180, 183
        if new is record.state and not progress:
            return
        record.state, record.status, record.reason = new, status, reason
        if new is CallState.ENDED:
            self._unbridge(call)
            self._quality.pop(record.handle, None)
            # the Call object may not go while its own callback runs: drop it later
            self._commands.put(lambda: self._drop(record.handle))
        self._tell("call_changed", record.snapshot())

    def _on_media_state(self, call: _Call) -> None:
        record = self._calls.get(call.handle)
        if record is None:
            return
        held = False
        info = call.getInfo()  # kept: its media vector dies with it (a SWIG temporary)
        for index, media in enumerate(info.media):
            if media.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            if media.status == pj.PJSUA_CALL_MEDIA_ACTIVE:
                self._bridge(call, index)
            elif media.status in (pj.PJSUA_CALL_MEDIA_LOCAL_HOLD, pj.PJSUA_CALL_MEDIA_NONE):
                held = media.status == pj.PJSUA_CALL_MEDIA_LOCAL_HOLD
                self._unbridge(call)
            elif media.status == pj.PJSUA_CALL_MEDIA_REMOTE_HOLD:
                self._bridge(call, index)  # the far end holds: it may play music to us
        if held != record.held:
            record.held = held
            self._tell("call_changed", record.snapshot())

    def _on_transfer_status(self, call: _Call, code: int, reason: str, final: bool) -> None:
        record = self._calls.get(call.handle)
        if record is None:
            return
        log.info("transfer of call %d: %d %s%s", record.handle, code, reason, " (final)" * final)
        if final and record.transferring:
            record.transferring = False
            if 200 <= code < 300:
                self._do_hang_up(record.handle)
            else:
                record.reason = f"transfer failed: {code} {reason}".strip()
                self._tell("call_changed", record.snapshot())

    # --- the headset bridge ----------------------------------------------------------

    def _bridge(self, call: _Call, index: int) -> None:
        """Connect the call's audio and the headset port both ways."""
        if self._port is None:
            return
        if self.audio and not self.headset.is_open:
            self._open_headset()
        # what the microphone gathered while no call listened is old: it is not sent
        self.headset.mic.clear()
        media = call.getAudioMedia(index)
        media.startTransmit(self._port)
        self._port.startTransmit(media)

    def _unbridge(self, call: _Call) -> None:
        if self._port is None:
            return
        with contextlib.suppress(pj.Error):
            media = call.getAudioMedia(-1)
            with contextlib.suppress(pj.Error):
                media.stopTransmit(self._port)
            with contextlib.suppress(pj.Error):
                self._port.stopTransmit(media)

    # --- calls: commands (the phone's thread) -----------------------------------------

    def _record(self, handle: int) -> _CallRecord | None:
        record = self._calls.get(handle)
        if record is None:
            log.info("no call %d", handle)
        return record

    def _uri(self, target: str) -> str:
        account = self._account_cfg
        assert account is not None
        if target.startswith(("sip:", "sips:")):
            return target
        return f"sip:{target}@{account.domain}"

    def _do_call(self, target: str) -> None:
        if self._account is None:
            return
        call = _Call(self, self._account)
        record = self._keep(call, False, target, CallState.CALLING)
        try:
            call.makeCall(self._uri(target), pj.CallOpParam(True))
        except pj.Error as exc:
            record.state, record.reason = CallState.ENDED, str(exc.reason)
            self._commands.put(lambda: self._drop(record.handle))
        self._tell("call_changed", record.snapshot())

    def _do_answer(self, handle: int) -> None:
        record = self._record(handle)
        if record is None or record.state is not CallState.RINGING:
            return
        prm = pj.CallOpParam(True)
        prm.statusCode = 200
        record.call.answer(prm)

    def _do_hang_up(self, handle: int) -> None:
        record = self._record(handle)
        if record is None or record.state is CallState.ENDED:
            return
        record.call.hangup(pj.CallOpParam(True))

    def _do_hold(self, handle: int, on: bool) -> None:
        record = self._record(handle)
        if record is None or record.state is not CallState.CONFIRMED:
            return
        prm = pj.CallOpParam(True)
        if on:
            record.call.setHold(prm)
        else:
            prm.opt.flag = pj.PJSUA_CALL_UNHOLD
            record.call.reinvite(prm)

    def _do_dtmf(self, handle: int, digits: str) -> None:
        record = self._record(handle)
        if record is None or record.state is not CallState.CONFIRMED:
            return
        record.call.dialDtmf(digits)

    def _do_transfer_blind(self, handle: int, target: str) -> None:
        record = self._record(handle)
        if record is None or record.state is not CallState.CONFIRMED:
            return
        record.transferring = True
        record.call.xfer(self._uri(target), pj.CallOpParam(True))

    def _do_transfer_attended(self, handle: int, consultation: int) -> None:
        record = self._record(handle)
        other = self._record(consultation)
        if record is None or other is None or record.state is not CallState.CONFIRMED:
            return
        record.transferring = True
        record.call.xferReplaces(other.call, pj.CallOpParam(True))

    def _do_use_devices(self, input: str | None, output: str | None) -> None:
        self.input_device, self.output_device = input, output
        if not self.audio:
            return
        self._devices = device_names()
        self._open_headset()  # reopens the streams; a call in progress keeps its port

    # --- quality -------------------------------------------------------------------------

    def _sample_quality(self, record: _CallRecord) -> None:
        call = record.call
        info = call.getInfo()  # kept: its media vector dies with it (a SWIG temporary)
        index = next(
            (
                i
                for i, media in enumerate(info.media)
                if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status != pj.PJSUA_CALL_MEDIA_NONE
            ),
            None,
        )
        if index is None:
            return
        rtcp = call.getStreamStat(index).rtcp
        received = int(rtcp.rxStat.pkt)
        lost = int(rtcp.rxStat.loss)
        if record.samples and received < record.samples[-1][0]:
            record.samples.clear()  # a new stream (a re-INVITE made it): start again
        record.samples.append((received, lost))
        first_received, first_lost = record.samples[0]
        got, missed = received - first_received, lost - first_lost
        if len(record.samples) < 2:
            got, missed = received, lost
        loss = 100.0 * missed / (got + missed) if got + missed > 0 else 0.0
        jitter_ms = float(rtcp.rxStat.jitterUsec.last) / 1000.0
        rtt = rtcp.rttUsec
        rtt_ms = float(rtt.last) / 1000.0 if int(rtt.n) > 0 else None
        self._quality[record.handle] = assess(jitter_ms, loss, rtt_ms)

    # --- for tests and diagnostics ------------------------------------------------------

    def snapshot_calls(self) -> list[PhoneCall]:
        """The calls as the phone's thread last saw them (a copy, any thread)."""
        return [r.snapshot() for r in list(self._calls.values())]
