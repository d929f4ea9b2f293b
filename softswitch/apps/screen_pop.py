"""The screen pop of a queued call: the variables the dialplan marked for the agent's screen,
each flagged sensitive or not, and what a given agent may see of them.

The dialplan names the variables with a lookup's ``screen_pop``; a variable is sensitive when
it holds personal data: a ``gather`` with ``sensitive: true``, a lookup's ``sensitive``
fields, or a value made from either (:mod:`softswitch.apps.session`). The values live in
memory only, in the call's :class:`~softswitch.apps.session.QueueRequest`; logs, traces and
any view that is not an offer see a sensitive value as :data:`MASK`.

The rule (:func:`screen_pop_fields`): a sensitive field's value is replaced by the fixed mask
unless the agent's location is among the allowed ones (for a queue, its
``personal_locations``), so that neither the value nor its length leaves the switch. It is
applied by the switch at the moment of the offer, for the agent being offered the call: the
value of a masked field is never sent, so it never reaches a home agent's machine, whatever
that machine runs.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from softswitch.apps.session import QueueRequest

__all__ = ["MASK", "ScreenField", "ScreenPop", "screen_pop_fields"]

MASK = "****"
"""What is shown instead of a sensitive value: always the same, whatever the value."""


@dataclass(frozen=True, slots=True)
class ScreenField:
    """One variable of the screen pop."""

    name: str
    value: str
    sensitive: bool = False
    """Personal data: shown only to agents at allowed locations, masked everywhere else."""

    def __repr__(self) -> str:  # a sensitive value never reaches a log line or a traceback
        shown = MASK if self.sensitive else self.value
        return f"ScreenField({self.name!r}, {shown!r}, sensitive={self.sensitive})"


class ScreenPop(Mapping[str, str]):
    """A call's screen pop: :attr:`fields` in display order. Read as a mapping (name ->
    value) it is the screen pop as any view may show it: sensitive values are :data:`MASK`.
    Only :func:`screen_pop_fields` hands out a sensitive value."""

    __slots__ = ("_by_name", "fields")

    def __init__(self, fields: Iterable[ScreenField] = ()) -> None:
        by_name: dict[str, ScreenField] = {}
        for item in fields:
            by_name.setdefault(item.name, item)  # a name shown twice: its first place
        self._by_name = by_name
        self.fields: tuple[ScreenField, ...] = tuple(by_name.values())

    def __getitem__(self, name: str) -> str:
        item = self._by_name[name]
        return MASK if item.sensitive else item.value

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def __repr__(self) -> str:
        return f"ScreenPop({dict(self)!r})"


def screen_pop_fields(
    request: QueueRequest, *, location: str, allowed: Collection[str]
) -> list[dict[str, object]]:
    """The screen pop as the agent at ``location`` is shown it: ``{"name", "value",
    "masked"}`` per field, in display order. A sensitive field's value is :data:`MASK`
    (``masked`` true) unless ``location`` is in ``allowed``; other fields pass as they are. A
    screen pop given as a plain mapping has no sensitive fields."""
    pop = request.screen_pop
    if isinstance(pop, ScreenPop):
        fields = pop.fields
    else:
        fields = tuple(ScreenField(name, value) for name, value in pop.items())
    may_see = location in allowed
    shown: list[dict[str, object]] = []
    for item in fields:
        masked = item.sensitive and not may_see
        shown.append({"name": item.name, "value": MASK if masked else item.value, "masked": masked})
    return shown
