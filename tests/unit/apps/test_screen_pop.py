"""The screen pop an agent is shown: sensitive fields masked unless the agent's location is
allowed, with the demo dialplan run end to end against the demo CRM served on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from aiohttp import web

from softswitch.admin.dialplan_api import DemoCrm
from softswitch.apps.dryrun import DryChannel
from softswitch.apps.lookup import HttpLookups
from softswitch.apps.screen_pop import MASK, ScreenField, ScreenPop, screen_pop_fields
from softswitch.apps.session import CallSession, QueueRequest, QueueResult
from softswitch.routing.decide import CallFacts, CompiledPlan
from softswitch.routing.loader import load_plan

REPO = Path(__file__).resolve().parents[3]
DEMO = REPO / "configs" / "dialplan" / "demo.yaml"
DEMO_CRM = REPO / "configs" / "demo-crm.json"
ONSITE = frozenset({"onsite"})


def request(pop: ScreenPop | dict[str, str]) -> QueueRequest:
    return QueueRequest(
        call_id="c1",
        queue="account",
        priority=0,
        skills={},
        data_class="personal",
        caller="0312345678",
        caller_name=None,
        path=("menu main: 2",),
        screen_pop=pop,
    )


POP = ScreenPop(
    [
        ScreenField("crm_name", "Hanako Yamada"),
        ScreenField("crm_birth", "1985-06-14", sensitive=True),
        ScreenField("member", "12", sensitive=True),
        ScreenField("crm_tier", "gold"),
    ]
)


def test_a_home_agent_gets_the_sensitive_fields_masked_in_display_order() -> None:
    assert screen_pop_fields(request(POP), location="home", allowed=ONSITE) == [
        {"name": "crm_name", "value": "Hanako Yamada", "masked": False},
        {"name": "crm_birth", "value": MASK, "masked": True},
        {"name": "member", "value": MASK, "masked": True},  # the same mask, whatever the length
        {"name": "crm_tier", "value": "gold", "masked": False},
    ]


def test_an_agent_at_an_allowed_location_sees_every_value() -> None:
    shown = screen_pop_fields(request(POP), location="onsite", allowed=ONSITE)
    assert [(f["name"], f["value"], f["masked"]) for f in shown] == [
        (f.name, f.value, False) for f in POP.fields
    ]
    assert screen_pop_fields(request(POP), location="branch", allowed=["branch", "onsite"])[1] == {
        "name": "crm_birth",
        "value": "1985-06-14",
        "masked": False,
    }
    # no location is allowed: every agent gets the mask
    assert screen_pop_fields(request(POP), location="onsite", allowed=())[2]["masked"] is True


def test_a_plain_mapping_has_no_sensitive_fields_and_an_empty_pop_shows_nothing() -> None:
    plain = screen_pop_fields(request({"a": "1", "b": "2"}), location="home", allowed=ONSITE)
    assert plain == [
        {"name": "a", "value": "1", "masked": False},
        {"name": "b", "value": "2", "masked": False},
    ]
    assert screen_pop_fields(request(ScreenPop()), location="home", allowed=ONSITE) == []


def test_read_as_a_mapping_or_printed_the_screen_pop_masks_sensitive_values() -> None:
    assert dict(POP) == {
        "crm_name": "Hanako Yamada",
        "crm_birth": MASK,
        "member": MASK,
        "crm_tier": "gold",
    }
    assert list(POP) == ["crm_name", "crm_birth", "member", "crm_tier"] and len(POP) == 4
    for shown in (repr(POP), repr(request(POP)), repr(POP.fields), str(POP)):
        assert "1985-06-14" not in shown and "'12'" not in shown
        assert "Hanako Yamada" in shown
    # a name given twice keeps its first place and value
    twice = ScreenPop([ScreenField("x", "1"), ScreenField("y", "2"), ScreenField("x", "3", True)])
    assert twice.fields == (ScreenField("x", "1"), ScreenField("y", "2"))


# -- the demo dialplan, its CRM lookup over HTTP ---------------------------------------------


@pytest.fixture
async def crm_url() -> AsyncIterator[str]:
    """The demo CRM (configs/demo-crm.json) served as the switch serves it, on 127.0.0.1."""
    api = web.Application()
    api.router.add_get("/demo/crm/members/{number}", DemoCrm(DEMO_CRM).member)
    runner = web.AppRunner(api)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/demo/crm"
    finally:
        await runner.cleanup()


class QueueingChannel(DryChannel):
    """The dry run's channel, keeping the queue request the session hands over."""

    def __init__(self, digits: list[str], note: list[str]) -> None:
        super().__init__(digits, note.append)
        self.requests: list[QueueRequest] = []

    async def queue(self, request: QueueRequest) -> QueueResult:
        self.requests.append(request)
        return await super().queue(request)


async def test_the_demo_account_call_masks_the_member_number_for_a_home_agent(
    crm_url: str,
) -> None:
    member = "12345678"
    record = json.loads(DEMO_CRM.read_text(encoding="utf-8"))[member]
    plan = CompiledPlan(load_plan(DEMO, environ={"SOFTSWITCH_DEMO_CRM": crm_url}))
    trace: list[str] = []
    channel = QueueingChannel(["2", f"{member}#"], trace)
    facts = CallFacts(
        number="100",
        caller="1001",
        context="internal",
        at=datetime.fromisoformat("2026-11-24T10:00+09:00"),  # a Tuesday, open
    )
    lookups = HttpLookups()
    try:
        session = CallSession(plan, facts, channel, lookups, call_id="c1", trace=trace.append)
        await asyncio.wait_for(session.run(), 10)
    finally:
        await lookups.close()
    (req,) = channel.requests
    assert (req.queue, req.data_class) == ("account", "personal")
    home = screen_pop_fields(req, location="home", allowed=ONSITE)
    assert home == [
        {"name": "crm_name", "value": record["name"], "masked": False},
        {"name": "crm_tier", "value": record["tier"], "masked": False},
        {"name": "crm_member", "value": MASK, "masked": True},
    ]
    onsite = screen_pop_fields(req, location="onsite", allowed=ONSITE)
    assert onsite[2] == {"name": "crm_member", "value": member, "masked": False}
    # the number went to the CRM, but no trace line shows it
    assert any(f"crm_name='{record['name']}'" in line for line in trace)
    assert not [line for line in trace if member in line]
