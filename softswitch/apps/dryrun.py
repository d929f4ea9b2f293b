"""A dry run of the dialplan: the channel and lookups of ``softswitch route``.

Nothing is sent and nobody is called; the session runs exactly as for a real call and each
step it takes is written down. The caller's keys come from a script (``--digits 2,1234#``):
one entry per prompt that waits for keys (a menu try or a gather), in order; an empty entry
presses nothing there (the timeout branch); when the script is used up, the caller presses
nothing. Prompts take no time. A bridge ends with the status given (answered by default), and
a lookup answers what was stubbed for its service (a JSON object, or "fail"); without a stub
it is not made and counts as failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

from softswitch.apps.session import LookupFailed, QueueRequest, QueueResult
from softswitch.routing.schema import Plan, Service

__all__ = ["DryChannel", "DryLookups", "parse_stub"]


class DryChannel:
    """Writes down what a real channel would do."""

    def __init__(
        self,
        digits: Sequence[str],
        note: Callable[[str], None],
        *,
        bridge_status: int = 200,
    ) -> None:
        self._inputs = list(digits)
        self._current: list[str] = []
        self._started = False
        self.note = note
        self.bridge_status = bridge_status
        self._answered = False

    @property
    def answered(self) -> bool:
        return self._answered

    async def answer(self) -> bool:
        self._answered = True
        return True

    async def play(self, prompts: Sequence[str], *, barge_in: bool) -> str | None:
        return None

    def start_input(self) -> None:
        self._current = list(self._inputs.pop(0)) if self._inputs else []

    async def next_digit(self, timeout: float) -> str | None:
        return self._current.pop(0) if self._current else None

    def sensitive(self, on: bool) -> None:
        pass

    async def bridge(self, targets: Sequence[str], timeout: float | None) -> int:
        after = f" for {timeout} s" if timeout is not None else ""
        self.note(f"would ring {', '.join(targets)}{after}: {self.bridge_status} (--bridge)")
        return self.bridge_status

    async def queue(self, request: QueueRequest) -> QueueResult:
        shown = ", ".join(f"{k}={v!r}" for k, v in request.screen_pop.items())
        self.note(
            f"would wait in queue {request.queue} (priority {request.priority}, "
            f"data_class {request.data_class}); screen pop: {shown or 'nothing'}"
        )
        return QueueResult("dry run")

    async def voicemail(
        self, mailbox: str, max_length: float, beep: bool, greeting: str | None
    ) -> str | None:
        self.note(f"would record a message of up to {max_length:g} s into mailbox {mailbox}")
        return None

    def record(self, action: str, reason: str) -> bool:
        self.note(f"would {action} the recording" + (f" ({reason})" if reason else ""))
        return True

    async def hangup(self, status: int, reason: str, cause: str) -> None:
        if self._answered:
            self.note(f"would hang up (BYE): {cause}")
        else:
            self.note(f"would answer {status}{' ' + reason if reason else ''}: {cause}")


def parse_stub(text: str) -> tuple[str, Mapping[str, object] | None]:
    """``SERVICE=JSON`` or ``SERVICE=fail`` (raises ValueError with a reason)."""
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"expected SERVICE=JSON or SERVICE=fail, got {text!r}")
    if value == "fail":
        return name, None
    try:
        answer = json.loads(value)
    except ValueError:
        raise ValueError(f"{name}: not JSON: {value!r}") from None
    if not isinstance(answer, dict):
        raise ValueError(f"{name}: expected a JSON object, got {value!r}")
    return name, answer


class DryLookups:
    """Answers stubbed per service name (None: the stub fails)."""

    def __init__(self, plan: Plan, stubs: Mapping[str, Mapping[str, object] | None]) -> None:
        self.plan = plan
        self.stubs = stubs

    async def fetch(
        self,
        service: Service,
        method: str,
        url: str,
        query: Mapping[str, str],
        body: Mapping[str, str],
        timeout: float,
    ) -> Mapping[str, object]:
        name = next((n for n, s in self.plan.services.items() if s is service), "?")
        if name not in self.stubs:
            raise LookupFailed(f"not made in a dry run (stub it: --stub {name}='{{...}}')")
        answer = self.stubs[name]
        if answer is None:
            raise LookupFailed("stubbed to fail")
        return answer
