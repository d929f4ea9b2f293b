"""CallSession over plans loaded from YAML: menus, gathers, variables, lookups, bridges, jumps.

The plans are real plan files (with real prompt WAVs, which the loader requires) compiled
with :class:`CompiledPlan`; the call is a scripted channel that implements the session's
``Channel`` protocol and writes down everything the session asks of it. The caller's keys
come from a script: each ``next_digit`` with a positive timeout takes the next entry (None:
nothing pressed within the timeout); a key that barges into a prompt stays typed ahead, as on
a real channel, until ``next_digit`` takes it.
"""

from __future__ import annotations

import asyncio
import textwrap
import wave
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from softswitch.apps.screen_pop import ScreenPop
from softswitch.apps.session import (
    CallSession,
    LookupFailed,
    QueueRequest,
    QueueResult,
    SessionOutcome,
)
from softswitch.routing.decide import CallFacts, CompiledPlan
from softswitch.routing.loader import load_plan
from softswitch.routing.schema import Service

AT = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
CRM_URL = "http://127.0.0.1:9/api/"
PROMPTS = "welcome menu menu-a menu-b invalid no-input enter one two goodbye".split()
HEADER = f"""\
timezone: UTC
prompts: prompts
services:
  crm:
    url: "{CRM_URL}"
    timeout: 2
    headers: {{X-Api-Key: k}}
contexts:
"""

# -- the scripted call ---------------------------------------------------------------------------


class ScriptedChannel:
    """A call whose caller follows a script; every request of the session is written down."""

    def __init__(
        self,
        keys: Iterable[str | None] = (),
        *,
        barge: Mapping[str, str] | None = None,
        bridge: Iterable[int] = (),
        default_key: str | None = None,
        can_answer: bool = True,
        recording: bool = True,
    ) -> None:
        self.script: deque[str | None] = deque(keys)
        self.barge = dict(barge or {})
        self.bridge_results: deque[int] = deque(bridge)
        self.default_key = default_key
        self.can_answer = can_answer
        self.recording = recording
        self.typed: deque[str] = deque()
        self.events: list[tuple[object, ...]] = []
        self.masking = False
        self.masked_keys: list[str] = []
        self.clear_keys: list[str] = []
        self.requests: list[QueueRequest] = []
        self.queue_results: deque[QueueResult] = deque()
        self.hung_up: tuple[int, str, str] | None = None
        self.after_hangup: list[str] = []
        self.played_unanswered: list[tuple[str, ...]] = []
        self._answered = False

    def _log(self, *event: object) -> None:
        if self.hung_up is not None:
            self.after_hangup.append(str(event[0]))
        self.events.append(event)

    @property
    def answered(self) -> bool:
        return self._answered

    async def answer(self) -> bool:
        self._log("answer")
        self._answered = self.can_answer
        return self.can_answer

    async def play(self, prompts: Sequence[str], *, barge_in: bool) -> str | None:
        self._log("play", tuple(prompts), barge_in)
        if not self._answered:
            self.played_unanswered.append(tuple(prompts))
        if not barge_in:
            return None
        if self.typed:  # a key typed ahead stops the prompt at once
            return self.typed[0]
        for name in prompts:
            key = self.barge.pop(name, None)
            if key is not None:
                self.typed.append(key)
                return key
        return None

    def start_input(self) -> None:
        self._log("start_input")

    async def next_digit(self, timeout: float) -> str | None:
        self._log("next_digit", timeout)
        key: str | None
        if self.typed:
            key = self.typed.popleft()
        elif timeout <= 0:
            return None
        elif self.script:
            key = self.script.popleft()
        else:
            key = self.default_key
        if key is not None:
            (self.masked_keys if self.masking else self.clear_keys).append(key)
        return key

    def sensitive(self, on: bool) -> None:
        self._log("sensitive", on)
        self.masking = on

    async def bridge(self, targets: Sequence[str], timeout: float | None) -> int:
        self._log("bridge", tuple(targets), timeout)
        return self.bridge_results.popleft() if self.bridge_results else 480

    async def queue(self, request: QueueRequest) -> QueueResult:
        self._log("queue", request.queue)
        self.requests.append(request)
        return self.queue_results.popleft() if self.queue_results else QueueResult("abandoned")

    async def voicemail(
        self, mailbox: str, max_length: float, beep: bool, greeting: str | None
    ) -> str | None:
        self._log("voicemail", mailbox, max_length, beep, greeting)
        return "msg-1"

    def record(self, action: str, reason: str) -> bool:
        self._log("record", action, reason)
        return self.recording

    async def hangup(self, status: int, reason: str, cause: str) -> None:
        self._log("hangup", status, reason, cause)
        self.hung_up = (status, reason, cause)

    # what the tests read

    def kinds(self, kind: str) -> list[tuple[object, ...]]:
        return [e[1:] for e in self.events if e[0] == kind]

    @property
    def plays(self) -> list[object]:
        """The prompts of each play, in order."""
        return [e[1] for e in self.events if e[0] == "play"]

    @property
    def waits(self) -> list[object]:
        return [e[1] for e in self.events if e[0] == "next_digit"]


@dataclass(frozen=True, slots=True)
class Fetch:
    service: Service
    method: str
    url: str
    query: dict[str, str]
    body: dict[str, str]
    timeout: float


class ScriptedLookups:
    """Answers in order: a JSON object, or a LookupFailed to raise."""

    def __init__(self, answers: Iterable[Mapping[str, object] | LookupFailed] = ()) -> None:
        self.answers: deque[Mapping[str, object] | LookupFailed] = deque(answers)
        self.calls: list[Fetch] = []

    async def fetch(
        self,
        service: Service,
        method: str,
        url: str,
        query: Mapping[str, str],
        body: Mapping[str, str],
        timeout: float,
    ) -> Mapping[str, object]:
        self.calls.append(Fetch(service, method, url, dict(query), dict(body), timeout))
        answer = self.answers.popleft()
        if isinstance(answer, LookupFailed):
            raise answer
        return answer


# -- plans and runs ------------------------------------------------------------------------------


def write_wav(path: Path) -> None:
    """A 10 ms silent prompt, 8 kHz 16-bit mono."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(np.zeros(80, dtype="<i2").tobytes())


def compile_plan(folder: Path, contexts: str) -> CompiledPlan:
    """A plan file in ``folder`` with the given ``contexts:`` body (YAML, any indentation)."""
    for name in PROMPTS:
        write_wav(folder / "prompts" / f"{name}.wav")
    path = folder / "plan.yaml"
    body = textwrap.indent(textwrap.dedent(contexts).strip("\n"), "  ")
    path.write_text(HEADER + body + "\n", encoding="utf-8")
    return CompiledPlan(load_plan(path, environ={}))


@dataclass(slots=True)
class Ran:
    outcome: SessionOutcome
    session: CallSession
    trace: list[str]
    channel: ScriptedChannel


async def run(
    plan: CompiledPlan,
    channel: ScriptedChannel,
    lookups: ScriptedLookups | None = None,
    *,
    number: str = "100",
    context: str = "main",
    max_steps: int = 500,
) -> Ran:
    trace: list[str] = []
    facts = CallFacts(number=number, caller="1001", context=context, at=AT, caller_name="Alice")
    session = CallSession(
        plan,
        facts,
        channel,
        lookups if lookups is not None else ScriptedLookups(),
        call_id="call-1",
        trace=trace.append,
        max_steps=max_steps,
    )
    outcome = await asyncio.wait_for(session.run(), 10)
    assert channel.after_hangup == [], "the session used the call after hanging it up"
    assert channel.played_unanswered == [], "a prompt was played before the call was answered"
    return Ran(outcome, session, trace, channel)


def context(name: str, *rules: tuple[str, str]) -> str:
    """A context of rules, each (match, actions as a YAML list in any indentation)."""
    text = f"{name}:\n  rules:\n"
    for match, actions in rules:
        listed = textwrap.indent(textwrap.dedent(actions).strip("\n"), " " * 8)
        text += f'    - match: "{match}"\n      actions:\n{listed}\n'
    return text


def rule(actions: str, *, context_name: str = "main", match: str = "100") -> str:
    """A context with one rule whose actions are ``actions`` (a YAML list, any indentation)."""
    return context(context_name, (match, actions))


# -- menus -------------------------------------------------------------------------------------

MENU = """\
- menu:
    prompt: menu
    timeout: 4
    retries: 2
    invalid_prompt: invalid
    timeout_prompt: no-input
    options:
      "1": [{play: one}, {bridge: "1003"}]
      "2": [{play: two}, {hangup: {cause: busy}}]
    on_failure:
      - play: goodbye
      - hangup: {cause: rejected}
- play: welcome
"""


async def test_menu_valid_key_runs_its_option(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule(MENU))
    ran = await run(plan, ScriptedChannel(["1"], bridge=[200]))
    assert ran.outcome.how == "bridged" and ran.outcome.status is None
    assert ran.channel.plays == [("menu",), ("one",)]
    assert ran.channel.waits == [4]
    assert ran.channel.kinds("bridge") == [(("1003",), None)]
    assert ran.outcome.path == ["menu menu: 1", "bridge 1003"]
    assert any(line.strip() == "key 1" for line in ran.trace)


async def test_invalid_key_plays_invalid_prompt_and_offers_the_menu_again(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule(MENU))
    ran = await run(plan, ScriptedChannel(["9", "2"]))
    assert ran.channel.plays == [("menu",), ("invalid",), ("menu",), ("two",)]
    assert ran.channel.waits == [4, 4]
    assert ran.outcome.how == "hangup" and ran.outcome.status is None  # answered: BYE
    assert ran.channel.hung_up == (486, "Busy Here", "dialplan: busy")
    assert ran.outcome.path == ["menu menu: 2", "hangup busy"]
    assert any("key 9: not an option (try 1 of 3)" in line for line in ran.trace)


async def test_no_key_plays_timeout_prompt_retries_then_on_failure(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule(MENU))
    ran = await run(plan, ScriptedChannel())
    # three tries; the timeout prompt only between them; then on_failure, not the next action
    assert ran.channel.plays == [
        ("menu",),
        ("no-input",),
        ("menu",),
        ("no-input",),
        ("menu",),
        ("goodbye",),
    ]
    assert ran.channel.waits == [4, 4, 4]
    assert ran.channel.kinds("start_input") == [(), (), ()]
    assert ran.channel.hung_up == (603, "Decline", "dialplan: rejected")
    assert ran.outcome.path == ["menu menu: no choice", "hangup rejected"]
    assert sum("no key in 4 s" in line for line in ran.trace) == 3


async def test_menu_without_on_failure_goes_on_with_the_next_action(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - menu: {prompt: menu, timeout: 2, retries: 0, options: {"1": [{play: one}]}}
            - play: goodbye
        """),
    )
    ran = await run(plan, ScriptedChannel(["5"]))
    assert ran.channel.plays == [("menu",), ("goodbye",)]
    assert ran.outcome.path == ["menu menu: no choice"]
    assert ran.outcome.how == "ended"
    assert ran.channel.hung_up == (200, "", "end of the dialplan")


async def test_a_key_that_barged_into_the_menu_prompt_counts(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule(MENU))
    ran = await run(plan, ScriptedChannel(barge={"menu": "2"}))
    assert ran.channel.plays == [("menu",), ("two",)]
    assert ran.channel.waits == [0]  # the typed-ahead key is taken; no wait for another
    assert ran.channel.typed == deque()
    assert ran.outcome.path == ["menu menu: 2", "hangup busy"]


async def test_a_key_that_stopped_a_barge_in_play_is_typed_ahead_for_the_menu(
    tmp_path: Path,
) -> None:
    plan = compile_plan(tmp_path, rule("- play: {prompt: welcome, barge_in: true}\n" + MENU))
    ran = await run(plan, ScriptedChannel(barge={"welcome": "1"}, bridge=[200]))
    assert ran.channel.plays == [("welcome",), ("menu",), ("one",)]
    assert ran.channel.kinds("play")[0] == (("welcome",), True)
    assert any("stopped by key 1" in line for line in ran.trace)
    assert ran.outcome.path == ["menu menu: 1", "bridge 1003"]


# -- gather ------------------------------------------------------------------------------------


def gather_plan(folder: Path, arguments: str, after: str = "- play: goodbye") -> CompiledPlan:
    return compile_plan(folder, rule(f"- gather: {{{arguments}}}\n{after}"))


GATHER = "prompt: enter, into: num, max_digits: 4, timeout: 6, inter_digit_timeout: 2"


async def test_gather_stops_at_max_digits(tmp_path: Path) -> None:
    plan = gather_plan(tmp_path, GATHER)
    ran = await run(plan, ScriptedChannel(list("123456")))
    assert ran.session.variables["num"] == "1234"
    assert ran.channel.waits == [6, 2, 2, 2]  # timeout for the first key, then inter-digit
    assert list(ran.channel.script) == ["5", "6"]  # not taken
    assert any("num = '1234' (max_digits)" in line for line in ran.trace)
    assert ran.outcome.path == ["gather num"]
    assert ran.channel.plays == [("enter",), ("goodbye",)]


async def test_gather_stops_at_the_terminator_which_is_not_stored(tmp_path: Path) -> None:
    plan = gather_plan(tmp_path, GATHER)
    ran = await run(plan, ScriptedChannel(list("12#3")))
    assert ran.session.variables["num"] == "12"
    assert list(ran.channel.script) == ["3"]
    assert any("num = '12' (terminator)" in line for line in ran.trace)


async def test_gather_with_another_terminator_keeps_hash_as_a_digit(tmp_path: Path) -> None:
    plan = gather_plan(tmp_path, GATHER + ', terminator: "*"')
    ran = await run(plan, ScriptedChannel(list("1#*9")))
    assert ran.session.variables["num"] == "1#"


async def test_gather_stops_on_inter_digit_timeout(tmp_path: Path) -> None:
    plan = gather_plan(tmp_path, GATHER)
    ran = await run(plan, ScriptedChannel(["1", "2", None, "3"]))
    assert ran.session.variables["num"] == "12"
    assert ran.channel.waits == [6, 2, 2]
    assert list(ran.channel.script) == ["3"]
    assert any("num = '12' (timeout)" in line for line in ran.trace)


async def test_gather_fewer_than_min_digits_runs_on_failure_with_the_variable_empty(
    tmp_path: Path,
) -> None:
    plan = gather_plan(
        tmp_path,
        GATHER
        + ", min_digits: 3, on_failure: [{set: {seen: '[${num}]'}}, {hangup: {cause: rejected}}]",
    )
    ran = await run(plan, ScriptedChannel(["1", "2", None]))
    assert ran.session.variables["num"] == ""
    assert ran.session.variables["seen"] == "[]"  # on_failure already sees it empty
    assert ran.channel.plays == [("enter",)]  # the action after the gather did not run
    assert ran.channel.hung_up == (603, "Decline", "dialplan: rejected")
    assert ran.outcome.path == ["gather num: failed", "hangup rejected"]
    assert any("fewer than 3 (timeout)" in line for line in ran.trace)


async def test_gather_failure_without_on_failure_goes_on(tmp_path: Path) -> None:
    plan = gather_plan(tmp_path, GATHER + ", min_digits: 2", "- set: {after: 'x${num}x'}")
    ran = await run(plan, ScriptedChannel([None]))
    assert ran.session.variables["after"] == "xx"
    assert ran.outcome.path == ["gather num: failed"]


SECRET = "86420975"


async def test_sensitive_gather_is_masked_everywhere(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - gather: {prompt: enter, into: card, max_digits: 8, sensitive: true}
            - set: {masked: "card ${card}", plain: "caller ${caller}"}
            - set: {copy: "${masked}!"}
            - lookup: {service: crm, path: "/cards/${card}", into: crm,
                       screen_pop: [crm_name, card, masked]}
            - queue: {name: billing}
        """),
    )
    lookups = ScriptedLookups([{"name": "Alice"}])
    ran = await run(plan, ScriptedChannel(list(SECRET)), lookups)
    channel = ran.channel
    # the channel masks exactly the keys of the gather
    toggles = [i for i, e in enumerate(channel.events) if e[0] == "sensitive"]
    digits = [i for i, e in enumerate(channel.events) if e[0] == "next_digit"]
    assert [channel.events[i][1] for i in toggles] == [True, False]
    assert toggles[0] < digits[0] and digits[-1] < toggles[1]
    assert channel.masked_keys == list(SECRET) and channel.clear_keys == []
    # the value is used...
    assert ran.session.variables["card"] == SECRET
    assert ran.session.variables["copy"] == f"card {SECRET}!"
    assert lookups.calls[0].url == f"{CRM_URL.rstrip('/')}/cards/{SECRET}"
    # ...but never shown
    assert ran.trace and not [line for line in ran.trace if SECRET in line]
    assert not [step for step in ran.outcome.path if SECRET in step]
    assert any(line.strip() == "card = 8 digit(s), sensitive (max_digits)" for line in ran.trace)
    assert any(line.strip() == "masked = '****'" for line in ran.trace)
    assert any(line.strip() == "copy = '****'" for line in ran.trace)  # masked in turn
    assert any(line.strip() == "plain = 'caller 1001'" for line in ran.trace)
    assert any("/cards/****" in line for line in ran.trace)
    assert {"card", "masked", "copy"} <= ran.session.sensitive
    assert "plain" not in ran.session.sensitive
    # the agent's screen keeps the sensitive variables, flagged: read as a mapping, or in the
    # request's repr, they are masked
    request = channel.requests[0]
    assert isinstance(request.screen_pop, ScreenPop)
    assert [(f.name, f.value, f.sensitive) for f in request.screen_pop.fields] == [
        ("crm_name", "Alice", False),
        ("card", SECRET, True),
        ("masked", f"card {SECRET}", True),
    ]
    assert request.screen_pop == {"crm_name": "Alice", "card": "****", "masked": "****"}
    assert SECRET not in repr(request)
    assert not [step for step in request.path if SECRET in step]


BIRTH = "1985-06-14"


async def test_sensitive_lookup_fields_are_masked_in_traces_and_flagged_in_the_screen_pop(
    tmp_path: Path,
) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - lookup: {service: crm, into: crm, screen_pop: [crm_tier, crm_birth],
                       sensitive: [crm_birth, crm_mail]}
            - set: {greeting: "born ${crm_birth}", tier: "tier ${crm_tier}"}
            - lookup: {service: crm, path: "/by-birth/${greeting}", into: more,
                       screen_pop: [more_note, greeting, crm_tier]}
            - queue: {name: support}
        """),
    )
    lookups = ScriptedLookups(
        [{"tier": "gold", "birth": BIRTH, "mail": "a@example.com"}, {"note": "called twice"}]
    )
    ran = await run(plan, ScriptedChannel(), lookups)
    v = ran.session.variables
    assert (v["crm_birth"], v["crm_mail"], v["greeting"]) == (
        BIRTH,
        "a@example.com",
        f"born {BIRTH}",
    )
    assert lookups.calls[1].url.endswith(f"/by-birth/born%20{BIRTH}")  # used as it is
    assert not [line for line in ran.trace if BIRTH in line or "a@example.com" in line]
    assert any(
        line.strip() == "answered: crm_tier='gold', crm_birth='****', crm_mail='****'"
        for line in ran.trace
    )
    assert any(line.strip() == "greeting = '****'" for line in ran.trace)  # made from it
    assert any(line.strip() == "tier = 'tier gold'" for line in ran.trace)
    # the screen pop: the lookups' variables in order, a repeated one in its first place
    pop = ran.channel.requests[0].screen_pop
    assert isinstance(pop, ScreenPop)
    assert [(f.name, f.value, f.sensitive) for f in pop.fields] == [
        ("crm_tier", "gold", False),
        ("crm_birth", BIRTH, True),
        ("more_note", "called twice", False),
        ("greeting", f"born {BIRTH}", True),
    ]
    assert dict(pop) == {
        "crm_tier": "gold",
        "crm_birth": "****",
        "more_note": "called twice",
        "greeting": "****",
    }
    assert BIRTH not in repr(ran.channel.requests[0])


async def test_sensitive_masking_ends_when_the_gather_fails(tmp_path: Path) -> None:
    plan = gather_plan(
        tmp_path, "into: pin, min_digits: 4, sensitive: true, on_failure: [{play: goodbye}]"
    )
    ran = await run(plan, ScriptedChannel(["1", None]))
    assert ran.channel.kinds("sensitive") == [(True,), (False,)]
    assert ran.channel.masking is False
    assert not [line for line in ran.trace if "'1'" in line]


# -- set -----------------------------------------------------------------------------------------


async def test_set_interpolates_variables_and_unknown_ones_are_empty(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - set: {greeting: "Hello ${caller_name}${nobody}!", price: "$5 for ${number}"}
            - set: {a: "x", b: "${a}y", c: "${b}${b}"}
        """),
    )
    ran = await run(plan, ScriptedChannel())
    v = ran.session.variables
    assert v["greeting"] == "Hello Alice!"
    assert v["price"] == "$5 for 100"
    assert (v["a"], v["b"], v["c"]) == ("x", "xy", "xyxy")
    assert any(line.strip() == "greeting = 'Hello Alice!'" for line in ran.trace)
    assert ran.channel.hung_up == (480, "Temporarily Unavailable", "end of the dialplan")


# -- lookup --------------------------------------------------------------------------------------


async def test_lookup_sets_prefixed_fields_and_screen_pop_reaches_the_queue(
    tmp_path: Path,
) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - lookup:
                service: crm
                path: "/members/${caller}"
                query: {from: "${caller}", fixed: "yes"}
                into: crm
                screen_pop: [crm_name, crm_tier, crm_missing]
                on_failure: [{play: goodbye}]
            - queue: {name: support, priority: 5, skills: {english: 50}, data_class: personal}
        """),
    )
    answer: dict[str, object] = {
        "name": "Alice",
        "tier": "gold",
        "vip": True,
        "late": False,
        "score": 5,
        "nothing": None,
        "address": {"city": "Tokyo"},
        "tags": ["a", "b"],
        "bad-key": "x",
    }
    lookups = ScriptedLookups([answer])
    ran = await run(plan, ScriptedChannel(), lookups)
    v = ran.session.variables
    assert (v["crm_name"], v["crm_tier"], v["crm_score"]) == ("Alice", "gold", "5")
    assert (v["crm_vip"], v["crm_late"], v["crm_nothing"]) == ("1", "0", "")
    assert v["crm_ok"] == "1"
    assert not {"crm_address", "crm_tags", "crm_bad-key"} & set(v)
    call = lookups.calls[0]
    assert call.method == "GET"
    assert call.url == "http://127.0.0.1:9/api/members/1001"
    assert call.query == {"from": "1001", "fixed": "yes"} and call.body == {}
    assert call.timeout == 2.0  # the service's
    assert call.service.headers == {"X-Api-Key": "k"}
    assert ran.channel.plays == []  # on_failure did not run
    assert ran.outcome.how == "queued"
    request = ran.channel.requests[0]
    assert request.screen_pop == {"crm_name": "Alice", "crm_tier": "gold", "crm_missing": ""}
    assert (request.queue, request.priority, dict(request.skills)) == (
        "support",
        5,
        {"english": 50},
    )
    assert (request.data_class, request.caller, request.caller_name) == (
        "personal",
        "1001",
        "Alice",
    )
    assert request.call_id == "call-1"
    assert request.path == ("lookup crm: ok",)
    assert ran.outcome.path == ["lookup crm: ok", "queue support"]
    assert ran.channel.events[0] == ("answer",)  # the queue answered first


async def test_lookup_failure_runs_on_failure_and_sets_ok_to_0(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - lookup: {service: crm, path: "/x", into: crm, on_failure: [{set: {why: failed}}]}
            - set: {after: "ok=${crm_ok}"}
        """),
    )
    lookups = ScriptedLookups([LookupFailed("HTTP 503")])
    ran = await run(plan, ScriptedChannel(), lookups)
    assert ran.session.variables["crm_ok"] == "0"
    assert ran.session.variables["why"] == "failed"
    assert ran.session.variables["after"] == "ok=0"
    assert any(line.strip() == "failed: HTTP 503" for line in ran.trace)
    assert ran.outcome.path == ["lookup crm: failed"]


async def test_lookup_path_percent_encodes_values_and_post_sends_the_body(
    tmp_path: Path,
) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - set: {who: "a/b c?d%"}
            - lookup: {service: crm, path: "/members/${who}/card", query: {q: "${who}"}}
            - lookup: {service: crm, method: POST, body: {who: "${who}", n: "${number}"},
                       timeout: 0.5}
        """),
    )
    lookups = ScriptedLookups([{}, {}])
    ran = await run(plan, ScriptedChannel(), lookups)
    first, second = lookups.calls
    assert first.url == "http://127.0.0.1:9/api/members/a%2Fb%20c%3Fd%25/card"
    assert first.query == {"q": "a/b c?d%"}  # the HTTP client encodes the query itself
    assert (second.method, second.url) == ("POST", "http://127.0.0.1:9/api")
    assert second.body == {"who": "a/b c?d%", "n": "100"}
    assert second.timeout == 0.5
    assert ran.session.variables["lookup_ok"] == "1"  # the default prefix
    assert any("answered: no fields" in line for line in ran.trace)


# -- bridge and the end of the actions ------------------------------------------------------------


async def test_bridge_200_ends_the_session_and_later_actions_do_not_run(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - bridge: {to: ["1003", "${caller}"], timeout: 15}
            - play: goodbye
            - hangup: {cause: busy}
        """),
    )
    ran = await run(plan, ScriptedChannel(bridge=[200]))
    assert ran.outcome.how == "bridged" and ran.outcome.status is None
    assert [e[0] for e in ran.channel.events] == ["bridge"]
    assert ran.channel.kinds("bridge") == [(("1003", "1001"), 15)]
    assert ran.channel.hung_up is None
    assert ran.session.variables["bridge_status"] == "200"


async def test_bridge_failure_sets_bridge_status_and_goes_on(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - bridge: "1003"
            - set: {first: "${bridge_status}"}
            - bridge: "1004"
            - set: {second: "${bridge_status}"}
        """),
    )
    ran = await run(plan, ScriptedChannel(bridge=[486, 408]))
    assert (ran.session.variables["first"], ran.session.variables["second"]) == ("486", "408")
    # unanswered at the end: the caller gets the last bridge's failure
    assert ran.outcome.how == "ended" and ran.outcome.status == 408
    assert ran.channel.hung_up == (408, "", "end of the dialplan")


async def test_end_of_actions_unanswered_after_a_failed_bridge(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule('- bridge: "1003"'))
    ran = await run(plan, ScriptedChannel(bridge=[486]))
    assert ran.outcome == SessionOutcome("ended", 486, [])
    assert ran.channel.hung_up == (486, "", "end of the dialplan")
    assert ran.channel.kinds("answer") == []


async def test_end_of_actions_answered_is_a_bye(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule('- bridge: "1003"\n- play: goodbye'))
    ran = await run(plan, ScriptedChannel(bridge=[486]))
    assert ran.outcome.how == "ended" and ran.outcome.status is None
    assert ran.channel.hung_up == (200, "", "end of the dialplan")


@pytest.mark.parametrize(
    ("cause", "status", "reason"),
    [
        ("busy", 486, "Busy Here"),
        ("rejected", 603, "Decline"),
        ("no_answer", 408, "Request Timeout"),
        ("unavailable", 480, "Temporarily Unavailable"),
        ("normal", 480, "Temporarily Unavailable"),
    ],
)
async def test_hangup_cause_maps_to_status_when_unanswered(
    tmp_path: Path, cause: str, status: int, reason: str
) -> None:
    plan = compile_plan(tmp_path, rule(f"- hangup: {{cause: {cause}}}\n- play: goodbye"))
    ran = await run(plan, ScriptedChannel())
    assert ran.outcome == SessionOutcome("hangup", status, [f"hangup {cause}"])
    assert ran.channel.hung_up == (status, reason, f"dialplan: {cause}")
    assert ran.channel.plays == []


async def test_hangup_when_answered_has_no_status_for_the_caller(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule("- answer\n- hangup: {cause: busy}"))
    ran = await run(plan, ScriptedChannel())
    assert ran.outcome.how == "hangup" and ran.outcome.status is None


# -- goto and transfer ---------------------------------------------------------------------------


async def test_goto_runs_the_other_context_and_not_the_rest_of_the_rule(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - set: {before: "yes"}
            - goto: {context: other, number: "200"}
            - bridge: "9999"
            - set: {after: "yes"}
        """)
        + rule(
            '- set: {seen: "${number} in ${context} from ${before}"}',
            context_name="other",
            match="200",
        ),
    )
    ran = await run(plan, ScriptedChannel())
    v = ran.session.variables
    assert v["seen"] == "200 in other from yes"
    assert "after" not in v
    assert ran.channel.kinds("bridge") == []
    assert ran.outcome.path == ["goto other"]
    assert ran.outcome.how == "ended" and ran.outcome.status == 480


async def test_goto_from_a_menu_option_ends_the_option_and_the_rule(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - menu: {prompt: menu, options: {"1": [{goto: other}, {play: two}]}}
            - play: goodbye
        """)
        + rule("- play: one", context_name="other"),
    )
    ran = await run(plan, ScriptedChannel(["1"]))
    assert ran.channel.plays == [("menu",), ("one",)]
    assert ran.outcome.path == ["menu menu: 1", "goto other"]
    assert ran.channel.hung_up == (200, "", "end of the dialplan")


async def test_transfer_routes_the_new_number_in_the_callers_context(tmp_path: Path) -> None:
    # the caller's context is "main"; the transfer happens in "ivr", which has no rule for 2000
    plan = compile_plan(
        tmp_path,
        context("main", ("100", "- goto: ivr"), ("2000", '- bridge: "${number}"'))
        + context(
            "ivr",
            ("100", '- transfer: "2000"\n- play: goodbye'),
            ("_X.", "- hangup: {cause: rejected}"),
        ),
    )
    ran = await run(plan, ScriptedChannel(bridge=[200]))
    assert ran.outcome.how == "bridged"
    assert ran.channel.kinds("bridge") == [(("2000",), None)]
    assert ran.outcome.path == ["goto ivr", "transfer 2000", "bridge 2000"]
    assert ran.session.variables["number"] == "2000"


PING_PONG = rule('- menu: {prompt: menu-a, options: {"1": [{goto: b}]}}', context_name="a") + rule(
    '- menu: {prompt: menu-b, options: {"1": [{goto: a}]}}', context_name="b"
)


async def test_goto_ping_pong_between_menus_ends_at_max_steps(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, PING_PONG)
    ran = await run(plan, ScriptedChannel(default_key="1"), context="a", max_steps=50)
    assert ran.outcome.how == "too many steps" and ran.outcome.status == 500
    assert ran.channel.hung_up == (500, "Dialplan Loop", "too many steps")
    # each hop is two steps (the menu, its goto): 25 menus ran, alternating
    assert ran.channel.plays == [("menu-a",), ("menu-b",)] * 12 + [("menu-a",)]
    assert any("more than 50 actions" in line for line in ran.trace)


async def test_goto_ping_pong_ends_at_the_default_max_steps(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, PING_PONG)
    ran = await run(plan, ScriptedChannel(default_key="1"), context="a")
    assert ran.outcome.how == "too many steps" and ran.outcome.status == 500
    assert len(ran.channel.plays) == 250


# -- routing failures and answering ---------------------------------------------------------------


@pytest.mark.parametrize(("number", "context"), [("999", "main"), ("100", "nowhere")])
async def test_no_matching_rule_is_404(tmp_path: Path, number: str, context: str) -> None:
    plan = compile_plan(tmp_path, rule("- play: welcome"))
    ran = await run(plan, ScriptedChannel(), number=number, context=context)
    assert ran.outcome == SessionOutcome("no route", 404, [])
    assert ran.channel.hung_up == (404, "Not Found", "no route")
    assert [e[0] for e in ran.channel.events] == ["hangup"]


@pytest.mark.parametrize(
    "action",
    [
        "- play: welcome",
        '- menu: {prompt: menu, retries: 0, options: {"1": [{play: one}]}}',
        "- gather: {prompt: enter, into: x, on_failure: [{play: goodbye}]}",
        "- gather: {into: x}",
        "- queue: support",
        "- voicemail: {mailbox: '1003'}",
    ],
)
async def test_actions_that_need_the_caller_answer_first(tmp_path: Path, action: str) -> None:
    plan = compile_plan(tmp_path, rule(action))
    ran = await run(plan, ScriptedChannel())
    assert ran.channel.events[0] == ("answer",)
    assert len(ran.channel.kinds("answer")) == 1


async def test_a_call_that_cannot_be_answered_ends_without_prompts(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule("- play: welcome\n- play: goodbye"))
    channel = ScriptedChannel(can_answer=False)
    ran = await run(plan, channel)
    assert ran.outcome.how == "hangup"
    assert channel.plays == [] and channel.hung_up is None


async def test_answer_is_sent_once(tmp_path: Path) -> None:
    plan = compile_plan(tmp_path, rule("- answer\n- answer\n- play: welcome"))
    ran = await run(plan, ScriptedChannel())
    assert ran.channel.kinds("answer") == [()]


# -- voicemail and recording ----------------------------------------------------------------------


async def test_voicemail_ends_the_session(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        rule("""
            - voicemail: {mailbox: "1003", max_length: 30, beep: false, prompt: welcome}
            - play: goodbye
        """),
    )
    ran = await run(plan, ScriptedChannel())
    assert ran.channel.kinds("voicemail") == [("1003", 30, False, "welcome")]
    assert ran.outcome.how == "voicemail"
    assert ran.channel.hung_up == (200, "", "voicemail")
    assert ran.outcome.path == ["voicemail 1003"]
    assert any("message msg-1 left" in line for line in ran.trace)


async def test_record_actions_reach_the_channel(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path, rule("- record: {action: pause, reason: card number}\n- record: resume")
    )
    ran = await run(plan, ScriptedChannel(recording=False))
    assert ran.channel.kinds("record") == [("pause", "card number"), ("resume", "")]
    assert sum("not being recorded" in line for line in ran.trace) == 2


async def test_a_sensitive_value_used_as_a_target_stays_out_of_the_path(tmp_path: Path) -> None:
    plan = compile_plan(
        tmp_path,
        context(
            "main",
            (
                "100",
                '- gather: {into: card, max_digits: 8, sensitive: true}\n- transfer: "${card}"',
            ),
            ("_X.", '- bridge: "${number}"'),
        ),
    )
    ran = await run(plan, ScriptedChannel(list(SECRET), bridge=[200]))
    assert ran.outcome.how == "bridged"
    assert ran.channel.kinds("bridge") == [((SECRET,), None)]  # the call itself works
    assert not [line for line in ran.trace if SECRET in line]
    assert not [step for step in ran.outcome.path if SECRET in step]


# -- leaving a queue ------------------------------------------------------------------------------


def queue_then(tmp_path: Path) -> CompiledPlan:
    return compile_plan(
        tmp_path,
        context(
            "main",
            ("100", "- queue: {name: support}\n- play: goodbye"),
            ("200", "- play: two"),
        ),
    )


async def test_a_caller_connected_to_an_agent_ends_the_session_with_the_agent_in_the_path(
    tmp_path: Path,
) -> None:
    channel = ScriptedChannel()
    channel.queue_results.append(QueueResult("connected", agent="alice"))
    ran = await run(queue_then(tmp_path), channel)
    assert ran.outcome.how == "queued"
    assert ran.outcome.path == ["queue support", "agent alice"]
    assert channel.plays == [] and channel.hung_up is None  # the rule's next action not run


async def test_a_queue_exit_to_an_ivr_branch_routes_the_extension(tmp_path: Path) -> None:
    channel = ScriptedChannel()
    channel.queue_results.append(QueueResult("exit key", action="goto", target="200"))
    ran = await run(queue_then(tmp_path), channel)
    assert channel.plays == [("two",)]  # extension 200's rule, not the rest of rule 100
    assert "exit key: goto" in ran.outcome.path


async def test_a_queue_exit_to_voicemail_plays_the_prompt_then_records(tmp_path: Path) -> None:
    channel = ScriptedChannel()
    channel.queue_results.append(
        QueueResult("exit timeout", action="voicemail", target="main", prompt="one")
    )
    ran = await run(queue_then(tmp_path), channel)
    assert channel.plays == [("one",)]
    assert channel.kinds("voicemail") == [("main", 120.0, True, None)]
    assert ran.outcome.how == "voicemail"


async def test_a_queue_exit_to_hang_up_says_its_message_and_ends_the_call(tmp_path: Path) -> None:
    channel = ScriptedChannel()
    channel.queue_results.append(QueueResult("exit full", action="hangup", prompt="goodbye"))
    ran = await run(queue_then(tmp_path), channel)
    assert channel.plays == [("goodbye",)]
    assert channel.hung_up is not None and channel.hung_up[2] == "queue exit full"
    assert ran.outcome.how == "queued"
