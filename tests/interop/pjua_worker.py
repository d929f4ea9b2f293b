"""A pjsua2 user agent driven over JSON lines on stdin/stdout.

pjsua2 allows one Endpoint per process and a crash in it ends the process, so the
interop tests run each user agent in a child process running this file. The parent
(``tests/interop/pjua.py``) writes one JSON object per line::

    {"id": 1, "cmd": "init", "bind": "127.0.0.1", "port": 0}

and reads exactly one JSON line back per command::

    {"id": 1, "ok": true, "port": 40123}
    {"id": 2, "ok": false, "error": "timeout waiting for registration"}

Commands (every wait takes "timeout" in seconds, capped at MAX_WAIT):

- ``init(bind, port, transport="udp", log_level=3)``: create the Endpoint with a null
  audio device and one SIP transport; answers the bound port.
- ``register(name, user, password, domain, server, registrar=None, proxy=None,
  expires=300, timeout)``: add an account (idUri ``sip:user@domain``), send REGISTER
  (RFC 3261 section 10.2) and wait for the final answer; answers ``code``. The
  registrar URI defaults to ``sip:<domain>`` and requests are pre-loaded with
  ``Route: <sip:<server>;lr>`` (RFC 3261 section 8.1.2) unless ``proxy`` is "".
- ``unregister(name, timeout)``: REGISTER with Expires: 0, answers ``code``.
- ``call(name, uri)``: place a call from account ``name``; answers ``call`` (an int).
- ``wait_incoming(name, timeout)``: wait for an incoming call on account ``name``.
- ``answer(call, code=200)``: send a provisional or final answer.
- ``hangup(call, code=603)``: CANCEL, reject or BYE depending on the call state.
- ``wait_state(call, state, timeout)``: wait until the call has reached ``state``
  (NULL, CALLING, INCOMING, EARLY, CONNECTING, CONFIRMED, DISCONNECTED); answers the
  call's ``state``, ``states`` seen so far and ``last_status``.
- ``call_info(call)``: the same fields without waiting.
- ``quit()``: hang up, destroy the library and exit.

pjsip's own log goes to stderr; stdout carries only the JSON answers.
"""

from __future__ import annotations

import json
import os
import select
import sys
import time
from typing import Any

import pjsua2 as pj

MAX_WAIT = 60.0
DEFAULT_WAIT = 10.0
IDLE_LIMIT = 900.0  # the worker exits by itself after this long without a command
POLL_MS = 10

STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}


class CommandError(Exception):
    """A command could not be carried out; the text goes back to the parent."""


class StderrLog(pj.LogWriter):  # type: ignore[misc]
    """Sends pjsip's log to stderr so that stdout stays a clean JSON channel."""

    def write(self, entry: Any) -> None:
        sys.stderr.write(entry.msg if entry.msg.endswith("\n") else entry.msg + "\n")


class TrackedCall(pj.Call):  # type: ignore[misc]
    """A call whose state history is recorded from pjsua2's callbacks."""

    def __init__(self, account: Any, call_id: int = pj.PJSUA_INVALID_ID) -> None:
        super().__init__(account, call_id)
        self.states: list[str] = []
        self.last_status = 0
        self.last_reason = ""
        self.disconnected = False
        #: the tone generator and recorder of media_start, joined again to a new stream
        self.media_ports: tuple[Any, Any] | None = None

    def onCallState(self, prm: Any) -> None:
        info = self.getInfo()
        name = STATE_NAMES.get(info.state, str(info.state))
        self.states.append(name)
        self.last_status = int(info.lastStatusCode)
        self.last_reason = str(info.lastReason)
        if info.state == pj.PJSIP_INV_STATE_DISCONNECTED:
            self.disconnected = True

    def onCallMediaState(self, prm: Any) -> None:
        # No audio is checked here; the null device is connected so media flows.
        info = self.getInfo()
        for index, media in enumerate(info.media):
            if media.type == pj.PJMEDIA_TYPE_AUDIO and media.status in (
                pj.PJSUA_CALL_MEDIA_ACTIVE,
                pj.PJSUA_CALL_MEDIA_REMOTE_HOLD,
            ):
                audio = self.getAudioMedia(index)
                manager = pj.Endpoint.instance().audDevManager()
                audio.startTransmit(manager.getPlaybackDevMedia())
                manager.getCaptureDevMedia().startTransmit(audio)
                if self.media_ports is not None:  # a re-INVITE made a new stream
                    generator, recorder = self.media_ports
                    generator.startTransmit(audio)
                    audio.startTransmit(recorder)


class TrackedAccount(pj.Account):  # type: ignore[misc]
    """An account that records registration answers and queues incoming calls."""

    def __init__(self, worker: Worker) -> None:
        super().__init__()
        self.worker = worker
        self.reg_codes: list[int] = []
        self.incoming: list[int] = []

    def onRegState(self, prm: Any) -> None:
        self.reg_codes.append(int(prm.code))

    def onIncomingCall(self, prm: Any) -> None:
        call = TrackedCall(self, prm.callId)
        self.incoming.append(self.worker.keep(call))


class Worker:
    """Holds the Endpoint, the accounts and the calls, and runs the commands."""

    def __init__(self) -> None:
        self.ep: Any = None
        self.accounts: dict[str, TrackedAccount] = {}
        self.calls: dict[int, TrackedCall] = {}
        self.next_call = 1
        self.media: dict[int, tuple[Any, Any]] = {}
        self.log_writer: StderrLog | None = None

    def keep(self, call: TrackedCall) -> int:
        key = self.next_call
        self.next_call += 1
        self.calls[key] = call
        return key

    def pump(self, seconds: float) -> None:
        """Run pjsip's event loop for about ``seconds``."""
        end = time.monotonic() + seconds
        while True:
            self.ep.libHandleEvents(POLL_MS)
            if time.monotonic() >= end:
                return

    def wait_until(self, predicate: Any, timeout: float, what: str) -> None:
        """Run the event loop until ``predicate()`` holds or ``timeout`` passes."""
        end = time.monotonic() + min(max(timeout, 0.0), MAX_WAIT)
        while not predicate():
            if time.monotonic() >= end:
                raise CommandError(f"timeout waiting for {what}")
            self.ep.libHandleEvents(POLL_MS)

    # --- commands -----------------------------------------------------------------

    def cmd_init(
        self, bind: str = "127.0.0.1", port: int = 0, transport: str = "udp", log_level: int = 3
    ) -> dict[str, Any]:
        if self.ep is not None:
            raise CommandError("already initialised")
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.userAgent = "pjua-worker"
        self.log_writer = StderrLog()
        cfg.logConfig.writer = self.log_writer
        cfg.logConfig.level = int(log_level)
        cfg.logConfig.consoleLevel = int(log_level)
        cfg.logConfig.decor = cfg.logConfig.decor & ~pj.PJ_LOG_HAS_NEWLINE
        cfg.medConfig.noVad = True
        ep.libInit(cfg)
        tcfg = pj.TransportConfig()
        tcfg.port = int(port)
        tcfg.boundAddress = bind
        tcfg.publicAddress = bind
        kind = {"udp": pj.PJSIP_TRANSPORT_UDP, "tcp": pj.PJSIP_TRANSPORT_TCP}.get(transport)
        if kind is None:
            raise CommandError(f"unknown transport {transport!r}")
        tid = ep.transportCreate(kind, tcfg)
        ep.libStart()
        ep.audDevManager().setNullDev()
        self.ep = ep
        info = ep.transportGetInfo(tid)
        return {"port": int(info.localName.rsplit(":", 1)[1])}

    def cmd_codecs(self, only: list[str]) -> dict[str, Any]:
        """Offer and accept only the named codecs (e.g. ["PCMA/8000"]); the rest are disabled."""
        assert self.ep is not None
        kept = []
        for info in self.ep.codecEnum2():
            name = str(info.codecId)
            keep = any(name.lower().startswith(want.lower()) for want in only)
            self.ep.codecSetPriority(name, 255 if keep else 0)
            if keep:
                kept.append(name)
        return {"codecs": kept}

    def account(self, name: str) -> TrackedAccount:
        if name not in self.accounts:
            raise CommandError(f"no account {name!r}")
        return self.accounts[name]

    def call(self, key: int) -> TrackedCall:
        if key not in self.calls:
            raise CommandError(f"no call {key!r}")
        return self.calls[key]

    def cmd_register(
        self,
        name: str,
        user: str,
        password: str,
        domain: str,
        server: str,
        registrar: str | None = None,
        proxy: str | None = None,
        expires: int = 300,
        timeout: float = DEFAULT_WAIT,
    ) -> dict[str, Any]:
        if self.ep is None:
            raise CommandError("init first")
        if name in self.accounts:
            raise CommandError(f"account {name!r} exists")
        acfg = pj.AccountConfig()
        acfg.idUri = f"sip:{user}@{domain}"
        acfg.regConfig.registrarUri = registrar or f"sip:{domain}"
        acfg.regConfig.timeoutSec = int(expires)
        acfg.regConfig.retryIntervalSec = 0
        route = f"sip:{server};lr" if proxy is None else proxy
        if route:
            acfg.sipConfig.proxies.append(route)
        acfg.sipConfig.authCreds.append(pj.AuthCredInfo("digest", "*", user, 0, password))
        acfg.natConfig.sipOutboundUse = 0
        acfg.natConfig.contactRewriteUse = 0
        acfg.natConfig.viaRewriteUse = 0
        acfg.natConfig.sdpNatRewriteUse = 0
        acfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        acfg.mediaConfig.transportConfig.port = 0
        account = TrackedAccount(self)
        account.create(acfg)
        self.accounts[name] = account
        self.wait_until(lambda: bool(account.reg_codes), timeout, "registration")
        return {"code": account.reg_codes[-1]}

    def cmd_unregister(self, name: str, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        account = self.account(name)
        seen = len(account.reg_codes)
        account.setRegistration(False)
        self.wait_until(lambda: len(account.reg_codes) > seen, timeout, "unregistration")
        return {"code": account.reg_codes[-1]}

    def cmd_call(self, name: str, uri: str) -> dict[str, Any]:
        account = self.account(name)
        call = TrackedCall(account)
        prm = pj.CallOpParam(True)
        call.makeCall(uri, prm)
        return {"call": self.keep(call)}

    def cmd_wait_incoming(self, name: str, timeout: float = DEFAULT_WAIT) -> dict[str, Any]:
        account = self.account(name)
        self.wait_until(lambda: bool(account.incoming), timeout, "an incoming call")
        key = account.incoming.pop(0)
        info = self.calls[key].getInfo()
        return {"call": key, "remote_uri": str(info.remoteUri), "local_uri": str(info.localUri)}

    def cmd_answer(self, call: int, code: int = 200) -> dict[str, Any]:
        prm = pj.CallOpParam()
        prm.statusCode = int(code)
        self.call(call).answer(prm)
        return {}

    def cmd_hangup(self, call: int, code: int = 603) -> dict[str, Any]:
        tracked = self.call(call)
        if tracked.disconnected:
            raise CommandError(f"call {call} already disconnected")
        prm = pj.CallOpParam()
        prm.statusCode = int(code)
        tracked.hangup(prm)
        return {}

    def describe(self, key: int) -> dict[str, Any]:
        tracked = self.call(key)
        return {
            "state": tracked.states[-1] if tracked.states else "NULL",
            "states": list(tracked.states),
            "last_status": tracked.last_status,
            "last_reason": tracked.last_reason,
        }

    def cmd_wait_state(
        self, call: int, state: str, timeout: float = DEFAULT_WAIT
    ) -> dict[str, Any]:
        tracked = self.call(call)
        if state not in STATE_NAMES.values():
            raise CommandError(f"unknown state {state!r}")
        try:
            self.wait_until(lambda: state in tracked.states, timeout, f"call state {state}")
        except CommandError as exc:
            raise CommandError(f"{exc}; states so far {tracked.states}") from None
        return self.describe(call)

    def cmd_call_info(self, call: int) -> dict[str, Any]:
        return self.describe(call)

    def cmd_media_start(self, call: int, tone_hz: float, record: str) -> dict[str, Any]:
        """Play a continuous tone into the call and record what the call brings to a WAV."""
        tracked = self.call(call)
        audio = tracked.getAudioMedia(-1)
        generator = pj.ToneGenerator()
        generator.createToneGenerator(8000, 1)
        tone = pj.ToneDesc()
        tone.freq1 = int(tone_hz)
        tone.freq2 = 0
        tone.on_msec = 1000
        tone.off_msec = 0
        tone.volume = 0
        tones = pj.ToneDescVector()
        tones.append(tone)
        generator.play(tones, True)
        generator.startTransmit(audio)
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(record)
        audio.startTransmit(recorder)
        self.media[call] = (generator, recorder)
        tracked.media_ports = (generator, recorder)
        return {}

    def cmd_dtmf(self, call: int, digits: str, method: str = "rfc4733") -> dict[str, Any]:
        """Send digits as RFC 4733 telephone-events (pjsua's default), as SIP INFO
        (application/dtmf-relay), or as tones in the audio ("inband": 150 ms on, 150 ms off)."""
        tracked = self.call(call)
        if method == "rfc4733":
            tracked.dialDtmf(digits)
            self.pump(0.3)
        elif method == "info":
            prm = pj.CallSendDtmfParam()
            prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
            prm.digits = digits
            prm.duration = 160
            tracked.sendDtmf(prm)
            self.pump(0.3)
        elif method == "inband":
            generator = pj.ToneGenerator()
            generator.createToneGenerator(8000, 1)
            keys = pj.ToneDigitVector()
            for key in digits:
                tone = pj.ToneDigit()
                tone.digit = key
                tone.on_msec = 150
                tone.off_msec = 150
                tone.volume = 0
                keys.append(tone)
            generator.startTransmit(tracked.getAudioMedia(-1))
            generator.playDigits(keys, False)
            self.pump(0.3 * len(digits) + 0.3)
            generator.stop()
            del generator
        else:
            raise CommandError(f"unknown DTMF method {method!r}")
        return {}

    def cmd_hold(self, call: int) -> dict[str, Any]:
        """Put the call on hold: a re-INVITE offering sendonly (RFC 3264 §8.4)."""
        self.call(call).setHold(pj.CallOpParam(True))
        self.pump(0.3)
        return {}

    def cmd_unhold(self, call: int) -> dict[str, Any]:
        """Take the call off hold: a re-INVITE offering sendrecv again."""
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.call(call).reinvite(prm)
        self.pump(0.3)
        return {}

    def cmd_xfer(self, call: int, uri: str) -> dict[str, Any]:
        """Blind transfer: REFER with ``Refer-To: uri`` in the call's dialog (RFC 3515)."""
        self.call(call).xfer(uri, pj.CallOpParam(True))
        self.pump(0.3)
        return {}

    def cmd_xfer_replaces(self, call: int, other: int) -> dict[str, Any]:
        """Attended transfer: REFER in ``call`` whose Refer-To names the peer of ``other``
        with a Replaces of that dialog (RFC 3891, RFC 5589 §7)."""
        self.call(call).xferReplaces(self.call(other), pj.CallOpParam(True))
        self.pump(0.3)
        return {}

    def cmd_stream_stat(self, call: int) -> dict[str, Any]:
        """pjmedia's RTCP view of the call's audio stream: what it received and the round
        trip it measured from the switch's reports about its own stream."""
        self.pump(0.05)
        stat = self.call(call).getStreamStat(0).rtcp
        return {
            "rx_packets": int(stat.rxStat.pkt),
            "rx_loss": int(stat.rxStat.loss),
            "tx_packets": int(stat.txStat.pkt),
            "rtt_count": int(stat.rttUsec.n),
            "rtt_last_us": int(stat.rttUsec.last),
        }

    def cmd_media_stop(self, call: int) -> dict[str, Any]:
        """Stop the tone and close the recording (its WAV header is written on close)."""
        generator, recorder = self.media.pop(call)
        if call in self.calls:  # (the call may be over: the recording is closed all the same)
            self.calls[call].media_ports = None
        generator.stop()
        del generator, recorder
        self.pump(0.1)
        return {}

    def shutdown(self) -> None:
        if self.ep is None:
            return
        try:
            self.ep.hangupAllCalls()
            self.pump(0.2)
            for account in self.accounts.values():
                account.shutdown()
            self.pump(0.2)
            self.ep.libDestroy()
        except Exception as exc:  # the process ends anyway; say why on stderr
            sys.stderr.write(f"pjua worker shutdown: {exc!r}\n")
        self.ep = None


def serve(worker: Worker, out: Any) -> None:
    """Read commands from fd 0 until EOF, ``quit`` or IDLE_LIMIT seconds of silence."""
    buffer = b""
    last_command = time.monotonic()
    while True:
        if worker.ep is not None:
            worker.ep.libHandleEvents(POLL_MS)
            ready, _, _ = select.select([0], [], [], 0)
        else:
            ready, _, _ = select.select([0], [], [], 0.1)
        if not ready:
            if time.monotonic() - last_command > IDLE_LIMIT:
                return
            continue
        chunk = os.read(0, 65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            last_command = time.monotonic()
            answer: dict[str, Any]
            ident = None
            try:
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise CommandError("a command is a JSON object")
                ident = request.pop("id", None)
                name = str(request.pop("cmd"))
                if name == "quit":
                    out.write(json.dumps({"id": ident, "ok": True}) + "\n")
                    out.flush()
                    return
                handler = getattr(worker, f"cmd_{name}", None)
                if handler is None:
                    raise CommandError(f"unknown command {name!r}")
                answer = {"id": ident, "ok": True, **handler(**request)}
            except (CommandError, TypeError, ValueError, KeyError) as exc:
                answer = {"id": ident, "ok": False, "error": str(exc)}
            except pj.Error as exc:
                answer = {"id": ident, "ok": False, "error": f"pjsua2: {exc.info()}"}
            out.write(json.dumps(answer) + "\n")
            out.flush()


def main() -> int:
    # Keep the JSON channel private: anything native code prints goes to stderr.
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    worker = Worker()
    try:
        serve(worker, out)
    finally:
        worker.shutdown()
        out.flush()
    return 0


if __name__ == "__main__":
    sys.stdout.flush()
    os._exit(main())
