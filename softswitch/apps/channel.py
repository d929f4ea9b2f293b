"""A dialplan session's hold on a real call: the B2BUA for signalling, the media engine for
what the caller hears and presses.

The B2BUA is synchronous and knows nothing of coroutines; each request the channel makes of
it is followed by ``after()`` (the switch sends what the B2BUA queued and re-arms its timers),
and its answers (a bridge's outcome) come back through callbacks that complete futures.
The B2BUA and the engine are reached through the Protocols below (``apps`` and ``b2bua``
sit side by side in the layers and do not import each other).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from typing import Protocol

import numpy as np
import numpy.typing as npt

from media.capture import LegCapture
from media.dtmf import DtmfReceived
from media.tones import BEEP, render
from softswitch.apps.queueing import QueueService
from softswitch.apps.session import QueueRequest, QueueResult
from softswitch.apps.voicemail import VoicemailStore
from softswitch.registrar.bindings import Binding

__all__ = ["CallControl", "MediaPort", "SwitchChannel"]

log = logging.getLogger("softswitch.apps.channel")

Samples = npt.NDArray[np.int16]


class CallControl(Protocol):
    """What the B2BUA does for a session (see ``B2bua.answer``, ``reject``, ``bridge``)."""

    def answer(self, call_id: str, now: float, by: str = ...) -> int | None: ...

    def reject(self, call_id: str, status: int, reason: str | None, now: float) -> None: ...

    def bridge(
        self,
        call_id: str,
        bindings: Sequence[Binding],
        timeout: float | None,
        now: float,
        on_result: Callable[[int], None],
    ) -> None: ...

    def cancel_bridge(self, call_id: str, now: float) -> None: ...

    def answered_contact(self, call_id: str) -> str | None: ...


class MediaPort(Protocol):
    """What the media engine does for a session's leg A."""

    def attach_local(
        self,
        call_id: str,
        payload_type: int,
        listener: Callable[[str, DtmfReceived], None] | None = ...,
    ) -> None: ...

    def play(
        self,
        call_id: str,
        prompts: Sequence[Samples],
        *,
        barge_in: bool = ...,
        on_done: Callable[[str | None], None] | None = ...,
    ) -> bool: ...

    def play_stream(self, call_id: str, what: str) -> bool: ...

    def stop_playback(self, call_id: str) -> None: ...

    def capture(self, call_id: str, max_seconds: float) -> LegCapture | None: ...

    def control_recording(self, call_id: str, action: str, reason: str = ...) -> bool | None: ...


#: a message shorter than this is not kept (a caller who hung up at the beep)
MIN_MESSAGE_SECONDS = 1.0
_BEEP: Samples = render(BEEP, 0, 3200)  # 400 ms
_GAP: Samples = np.zeros(1600, dtype=np.int16)  # 200 ms


class SwitchChannel:
    """One call's channel; ``prompt`` turns a prompt name into samples (raises on a
    missing file), ``locate`` a bridge target into its registered contacts (None: no such
    user)."""

    def __init__(
        self,
        call_id: str,
        calls: CallControl,
        media: MediaPort,
        *,
        clock: Callable[[], float],
        after: Callable[[], None],
        prompt: Callable[[str], Samples],
        locate: Callable[[str], Sequence[Binding] | None],
        queues: QueueService,
        mailboxes: VoicemailStore | None,
        caller: str,
        caller_name: str | None,
    ) -> None:
        self.call_id = call_id
        self.calls = calls
        self.media = media
        self.clock = clock
        self.after = after
        self.prompt = prompt
        self.locate = locate
        self.queues = queues
        self.mailboxes = mailboxes
        self.caller = caller
        self.caller_name = caller_name
        self._answered = False
        self._digits: asyncio.Queue[str] = asyncio.Queue()
        #: keys pressed now are personal data (a sensitive gather): logged masked
        self.masking = False

    @property
    def answered(self) -> bool:
        return self._answered

    async def answer(self) -> bool:
        if self._answered:
            return True
        pt = self.calls.answer(self.call_id, self.clock())
        self.after()
        if pt is None:
            return False
        self.media.attach_local(self.call_id, pt, self._digit)
        self._answered = True
        return True

    def _digit(self, side: str, digit: DtmfReceived) -> None:
        if side == "a":
            self._digits.put_nowait(digit.digit)

    async def _play(
        self,
        clips: Sequence[Samples],
        barge_in: bool,
        then: Callable[[], None] | None = None,
    ) -> str | None:
        """Play ``clips``; the key that stopped them (barge-in) or None. ``then`` runs in the
        media tick the playback ends in (not when it is cancelled)."""
        done: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()

        def finished(key: str | None) -> None:
            if then is not None and not done.done():  # (a cancelled wait is done)
                then()
            if not done.done():
                done.set_result(key)

        if not self.media.play(self.call_id, clips, barge_in=barge_in, on_done=finished):
            return None
        try:
            return await done
        finally:
            # cancelled (the call ended, the session stopped, an agent answered): the task's
            # cancellation cancels ``done`` too, so that is what to look for
            if done.cancelled() or not done.done():
                self.media.stop_playback(self.call_id)

    async def play(self, prompts: Sequence[str], *, barge_in: bool) -> str | None:
        return await self._play([self.prompt(name) for name in prompts], barge_in)

    def start_input(self) -> None:
        """Keys typed ahead stay: a caller who knows the menu need not wait for it."""

    async def next_digit(self, timeout: float) -> str | None:
        if timeout <= 0 or not self._digits.empty():
            try:
                return self._digits.get_nowait()
            except asyncio.QueueEmpty:
                return None
        try:
            return await asyncio.wait_for(self._digits.get(), timeout)
        except TimeoutError:
            return None

    def sensitive(self, on: bool) -> None:
        self.masking = on

    async def bridge(self, targets: Sequence[str], timeout: float | None) -> int:
        found = [self.locate(target) for target in targets]
        if all(f is None for f in found):
            return 404  # none of them is a user of the switch
        bindings = [b for f in found if f is not None for b in f]
        result: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        def done(status: int) -> None:
            if not result.done():
                result.set_result(status)

        if self._answered:
            self.media.play_stream(self.call_id, "ringback")
        self.calls.bridge(self.call_id, bindings, timeout, self.clock(), done)
        self.after()
        status = await result
        if status != 200 and self._answered:
            self.media.stop_playback(self.call_id)
        return status

    async def queue(self, request: QueueRequest) -> QueueResult:
        return await self.queues.wait(request, self)

    # -- what the queue service does with a waiting caller (QueueCaller) ---------------------

    def hold_music(self) -> None:
        self.media.play_stream(self.call_id, "music")

    async def announce(self, prompts: Sequence[str]) -> None:
        """Play prompts over the hold music; the music comes back in the same media tick as
        the prompt's end (no silent packet between them)."""
        await self._play([self.prompt(name) for name in prompts], False, then=self.hold_music)

    def offer(
        self,
        bindings: Sequence[Binding],
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        def done(status: int) -> None:
            contact = self.calls.answered_contact(self.call_id) if status == 200 else None
            on_result(status, contact)

        self.calls.bridge(self.call_id, bindings, timeout, self.clock(), done)
        self.after()

    def cancel_offer(self) -> None:
        self.calls.cancel_bridge(self.call_id, self.clock())
        self.after()

    async def voicemail(
        self, mailbox: str, max_length: float, beep: bool, greeting: str | None
    ) -> str | None:
        if self.mailboxes is None:
            return None
        clips = [self.prompt(greeting)] if greeting else []
        if beep:
            clips += [_GAP, _BEEP]
        if clips:
            await self._play(clips, barge_in=False)
        while self._digits.qsize():  # keys pressed before the beep are not the message's end
            self._digits.get_nowait()
        capture = self.media.capture(self.call_id, max_length)
        if capture is None:
            return None
        try:
            deadline = self.clock() + max_length
            while not capture.full:
                left = deadline - self.clock()
                if left <= 0:
                    break
                key = await self.next_digit(min(left, 0.5))
                if key == "#":  # the caller is done
                    break
        finally:
            # Kept however the recording ends, the caller hanging up included (the usual end
            # of a message): the write is short and synchronous, so a cancellation of this
            # task cannot lose it.
            capture.stop()
            saved = self._keep(mailbox, capture)
        return saved

    def _keep(self, mailbox: str, capture: LegCapture) -> str | None:
        assert self.mailboxes is not None
        if capture.seconds < MIN_MESSAGE_SECONDS:
            log.info("call %s: no message for %s (%.1f s)", self.call_id, mailbox, capture.seconds)
            return None
        try:
            message = self.mailboxes.save(
                mailbox, capture.samples(), caller=self.caller, caller_name=self.caller_name
            )
        except (OSError, ValueError):
            log.exception("call %s: keeping the message for %s failed", self.call_id, mailbox)
            return None
        log.info(
            "call %s: message %s (%.1f s) for mailbox %s",
            self.call_id,
            message.id,
            message.seconds,
            mailbox,
        )
        return message.id

    def record(self, action: str, reason: str) -> bool:
        done = self.media.control_recording(self.call_id, action, reason)
        return bool(done)

    async def hangup(self, status: int, reason: str, cause: str) -> None:
        self.calls.reject(self.call_id, status, reason or None, self.clock())
        self.after()
