"""Calls the switch places itself (``B2bua.originate``) in tests: who the switch calls as, a
recorder of what ``on_result`` is told, and a session's channel on the answered call, as the
dialplan runtime makes one."""

from __future__ import annotations

import time

import numpy as np

from softswitch.app import Switch
from softswitch.apps.channel import SwitchChannel
from softswitch.b2bua.call import Monitor

CALLER, CALLER_NAME = "8000", "Support callback"
#: ``B2bua.table_sizes`` once the switch forgot every call
EMPTY = {"calls": 0, "dialogs": 0, "pending": 0, "invites": 0}


class Results:
    """What ``on_result`` was told, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[int, str | None]] = []

    def __call__(self, status: int, call_id: str | None) -> None:
        self.seen.append((status, call_id))


def originate(
    sw: Switch,
    user: str,
    results: Results,
    *,
    timeout: float = 10.0,
    monitor: Monitor | None = None,
) -> str | None:
    """Have the switch call ``user``'s registered phones as CALLER; the outcome goes to
    ``results``. Returns the new call's Call-ID, or None if refused at once."""
    call_id = sw.b2bua.originate(
        user,
        sw.registrar.lookup(user, time.time()),
        caller=CALLER,
        caller_name=CALLER_NAME,
        timeout=timeout,
        now=sw.loop.time(),
        on_result=results,
        monitor=monitor,
    )
    sw._flush()  # what the switch's shell does after every input
    return call_id


def channel(sw: Switch, call_id: str, prompt: np.ndarray) -> SwitchChannel:
    """A session's channel on the call, as the dialplan runtime makes one; every prompt it
    plays is ``prompt``."""
    assert sw.media is not None
    return SwitchChannel(
        call_id,
        sw.b2bua,
        sw.media,
        clock=sw.loop.time,
        after=sw._flush,
        prompt=lambda name: prompt,
        locate=sw._locate,
        queues=sw.queues,
        mailboxes=None,
        caller=CALLER,
        caller_name=CALLER_NAME,
    )
