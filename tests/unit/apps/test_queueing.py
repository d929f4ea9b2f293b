"""QueueBoard: queue order, positions, leaving (abandoned or taken) and the API snapshot.

The board creates each entry's outcome future on the running loop, so the tests are async;
the clock is a settable number (Unix seconds).
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from softswitch.apps.queueing import QueueBoard
from softswitch.apps.session import QueueRequest

T0 = 1_700_000_000.0


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def request(
    call_id: str,
    *,
    queue: str = "support",
    priority: int = 0,
    skills: Mapping[str, int] | None = None,
    screen_pop: Mapping[str, str] | None = None,
) -> QueueRequest:
    return QueueRequest(
        call_id=call_id,
        queue=queue,
        priority=priority,
        skills=dict(skills or {}),
        data_class="general",
        caller=f"caller-{call_id}",
        caller_name=None,
        path=("menu main: 1",),
        screen_pop=dict(screen_pop or {}),
    )


def order(board: QueueBoard, queue: str = "support") -> list[str]:
    return [e.request.call_id for e in board.queues[queue]]


async def test_order_is_priority_then_arrival() -> None:
    clock = Clock()
    board = QueueBoard(clock)
    for call_id, priority in [("a", 0), ("b", 5), ("c", 0), ("d", 5), ("e", 9), ("f", 0)]:
        board.join(request(call_id, priority=priority))
        clock.now += 1
    assert order(board) == ["e", "b", "d", "a", "c", "f"]
    assert [board.position(c) for c in "abcdef"] == [4, 2, 5, 3, 1, 6]
    assert board.position("nobody") is None


async def test_queues_are_separate() -> None:
    board = QueueBoard(Clock())
    board.join(request("a", queue="sales"))
    board.join(request("b", queue="support"))
    board.join(request("c", queue="sales"))
    assert order(board, "sales") == ["a", "c"] and order(board, "support") == ["b"]
    assert (board.position("a"), board.position("b"), board.position("c")) == (1, 1, 2)


async def test_leave_as_abandoned_counts_and_keeps_the_longest_wait() -> None:
    clock = Clock()
    board = QueueBoard(clock)
    for call_id in "abcd":
        board.join(request(call_id))
    clock.now += 12.5
    board.leave("b", "abandoned")
    clock.now += 30
    board.leave("c", "abandoned")  # waited 42.5 s
    clock.now += 100
    board.leave("a", "answered")  # taken by an agent: not abandoned, however long it waited
    counters = board.counters["support"]
    assert (counters.entered, counters.abandoned, counters.left) == (4, 2, 1)
    assert counters.longest_abandoned_wait == pytest.approx(42.5)
    assert order(board) == ["d"] and board.position("d") == 1
    assert board.position("b") is None


async def test_leave_completes_the_outcome_future() -> None:
    board = QueueBoard(Clock())
    entry = board.join(request("a"))
    assert entry.outcome is not None and not entry.outcome.done()
    left = board.leave("a", "answered")
    assert left is entry
    assert entry.outcome.done() and entry.outcome.result() == "answered"
    # a second leave (the agent and the caller's hangup racing) changes nothing
    assert board.leave("a", "abandoned") is None
    assert entry.outcome.result() == "answered"
    assert board.counters["support"].abandoned == 0


async def test_leave_keeps_an_outcome_already_set() -> None:
    board = QueueBoard(Clock())
    entry = board.join(request("a"))
    assert entry.outcome is not None
    entry.outcome.set_result("timeout")
    board.leave("a", "abandoned")
    assert entry.outcome.result() == "timeout"


async def test_joining_again_moves_the_caller() -> None:
    clock = Clock()
    board = QueueBoard(clock)
    first = board.join(request("a", queue="sales"))
    board.join(request("b", queue="sales"))
    clock.now += 5
    second = board.join(request("a", queue="support", priority=3))
    assert first.outcome is not None and first.outcome.result() == "moved"
    assert order(board, "sales") == ["b"] and order(board, "support") == ["a"]
    assert board.counters["sales"].left == 1 and board.counters["sales"].abandoned == 0
    assert second.joined == T0 + 5


async def test_snapshot_contents() -> None:
    clock = Clock()
    board = QueueBoard(clock)
    board.join(request("a", skills={"english": 50}, screen_pop={"crm_name": "Alice"}))
    clock.now += 10
    board.join(request("b", priority=2))
    board.join(request("x", queue="billing"))
    clock.now += 3.26
    board.leave("x", "abandoned")
    snap = board.snapshot()
    assert [q["name"] for q in snap] == ["billing", "support"]  # sorted by name
    billing, support = snap
    assert billing == {
        "name": "billing",
        "waiting": 0,
        "longest_wait": 0.0,
        "entered": 1,
        "abandoned": 1,
        "callers": [],
    }
    assert support["waiting"] == 2 and support["entered"] == 2 and support["abandoned"] == 0
    assert support["longest_wait"] == 13.3  # a, rounded to 0.1 s
    callers = support["callers"]
    assert isinstance(callers, list)
    assert callers[0] == {
        "call_id": "b",
        "position": 1,
        "caller": "caller-b",
        "caller_name": None,
        "priority": 2,
        "skills": {},
        "data_class": "general",
        "waiting": 3.3,
        "joined": T0 + 10,
        "path": ["menu main: 1"],
        "screen_pop": {},
    }
    assert callers[1]["call_id"] == "a" and callers[1]["position"] == 2
    assert callers[1]["skills"] == {"english": 50}
    assert callers[1]["screen_pop"] == {"crm_name": "Alice"}
    assert callers[1]["waiting"] == 13.3


async def test_snapshot_of_one_queue_and_of_an_unknown_one() -> None:
    board = QueueBoard(Clock())
    board.join(request("a", queue="sales"))
    board.join(request("b", queue="support"))
    (sales,) = board.snapshot("sales")
    assert sales["name"] == "sales" and sales["waiting"] == 1
    assert board.snapshot("nowhere") == [
        {
            "name": "nowhere",
            "waiting": 0,
            "longest_wait": 0.0,
            "entered": 0,
            "abandoned": 0,
            "callers": [],
        }
    ]
    assert QueueBoard(Clock()).snapshot() == []
