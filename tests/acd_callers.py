"""A scripted caller for tests of the queue service (``softswitch.apps.queueing``).

:class:`ScriptedCaller` stands in for a waiting caller's channel (the ``QueueCaller``
protocol): it records what the service does to it, reads the keys a test gives it, and
answers the offers the engine makes at once or when the test says. :func:`binding` is a
registered phone of a user for the service's ``locate``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from softswitch.registrar.bindings import Binding


class ScriptedCaller:
    """A waiting caller's channel: records music, announcements, offers and cancels in
    ``events``; ``keys`` are the digits the caller presses. An offer rings until the test
    calls :meth:`result`, or with ``answer_at_once`` is answered at once by its first
    binding. A cancelled offer fails with 487 at once, or with ``cancel_later`` on the loop's
    next turn, as a channel's 487 comes back from the phone."""

    def __init__(
        self, call_id: str, *, answer_at_once: bool = False, cancel_later: bool = False
    ) -> None:
        self.call_id = call_id
        self.answer_at_once = answer_at_once
        self.cancel_later = cancel_later
        self.events: list[tuple[object, ...]] = []
        self.keys: asyncio.Queue[str] = asyncio.Queue()
        self.pending: Callable[[int, str | None], None] | None = None
        self.rung: list[str] = []

    def hold_music(self) -> None:
        self.events.append(("music",))

    async def announce(self, prompts: Sequence[str]) -> None:
        self.events.append(("announce", tuple(prompts)))

    async def next_digit(self, timeout: float) -> str | None:
        try:
            return await asyncio.wait_for(self.keys.get(), timeout)
        except TimeoutError:
            return None

    def offer(
        self,
        bindings: Sequence[Binding],
        timeout: float,
        on_result: Callable[[int, str | None], None],
    ) -> None:
        self.rung = [b.contact for b in bindings]
        self.events.append(("offer", tuple(self.rung), timeout))
        if self.answer_at_once:
            on_result(200, bindings[0].contact)
        else:
            self.pending = on_result

    def cancel_offer(self) -> None:
        self.events.append(("cancel",))
        if not self.cancel_later:
            self.result(487)
            return
        pending, self.pending = self.pending, None
        if pending is not None:
            asyncio.get_running_loop().call_soon(pending, 487, None)

    def result(self, status: int, contact: str | None = None) -> None:
        """The ringing offer's outcome: 200 and the contact that answered, or a failure."""
        pending, self.pending = self.pending, None
        assert pending is not None, "no offer is ringing"
        pending(status, contact)


def binding(user: str) -> Binding:
    """``user``'s one registered phone, on 127.0.0.1:5070 (a contact nobody listens on; the
    scripted caller rings it), registered until 2033."""
    return Binding(
        aor=f"{user}@test",
        contact=f"sip:{user}@127.0.0.1:5070",
        expires_at=2e9,
        q=1.0,
        call_id=f"reg-{user}",
        cseq=1,
        source="udp:127.0.0.1:5070",
    )
