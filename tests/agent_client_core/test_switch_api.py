"""The agent API client against the real agent API (see ``conftest.py``)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from agent_client.switch_api import SwitchApi, SwitchError, SwitchUnreachable
from tests.agent_client_core.conftest import SwitchFactory

PASSWORD = "home-secret-1"


async def test_sign_in_answer_and_errors(local_switch: SwitchFactory) -> None:
    async with local_switch(idle_signout=900) as sw:
        api = SwitchApi(sw.config().switch.base_url, timeout=5)
        try:
            assert await api.health() == 200
            with pytest.raises(SwitchError) as caught:
                await api.login("ann", "wrong", sw.code())
            assert (caught.value.status, caught.value.reason) == (
                401,
                "unknown agent or wrong password",
            )
            with pytest.raises(SwitchError) as caught:
                await api.me()
            assert caught.value.status == 401 and not api.signed_in

            signin = await api.login("ann", PASSWORD, sw.code())
            assert api.signed_in and signin.token
            assert signin.agent["id"] == "ann" and signin.roles == ("agent",)
            assert signin.reasons == ("break", "lunch") and signin.codes == ("sale", "no_sale")
            assert signin.vpn_address == "127.0.0.1" and signin.idle_signout == 900
            assert signin.sip is not None and signin.sip.extension == "1001"
            assert "token" not in repr(signin) and signin.sip.password not in repr(signin)

            view = await api.set_state("not_ready", "break")
            assert (view["state"], view["reason"]) == ("not_ready", "break")
            with pytest.raises(SwitchError) as caught:
                await api.set_state("not_ready", "coffee")
            assert caught.value.status == 400 and "reason 'coffee'" in caught.value.reason
            with pytest.raises(SwitchError) as caught:
                await api.wrap_up("sale", "called back later")
            assert caught.value.status == 409 and "not in wrap-up" in caught.value.reason
            figures = await api.stats()
            assert figures.calls == 0 and figures.break_time >= 0

            await api.logout()
            assert not api.signed_in and sw.state() == ("logged_out", None)
        finally:
            await api.close()


async def test_nothing_answering_is_unreachable() -> None:
    api = SwitchApi("http://127.0.0.1:9", timeout=2)
    try:
        with pytest.raises(SwitchUnreachable, match="does not answer at http://127.0.0.1:9"):
            await api.login("ann", PASSWORD)
        with pytest.raises(SwitchUnreachable):
            await api.health()
    finally:
        await api.close()


async def test_the_event_stream_reconnects_and_stops_on_a_revoked_token(
    local_switch: SwitchFactory,
) -> None:
    async with local_switch() as sw:
        api = SwitchApi(sw.config().switch.base_url, timeout=5)
        other = SwitchApi(sw.config().switch.base_url, timeout=5)
        try:
            await api.login("ann", PASSWORD, sw.code())
            got: list[dict[str, Any]] = []
            links: list[bool] = []
            naps: list[float] = []

            async def nap(seconds: float) -> None:
                naps.append(seconds)
                await asyncio.sleep(0.01)

            follow = asyncio.get_running_loop().create_task(
                api.events(got.append, links.append, sleep=nap)
            )
            async with asyncio.timeout(5):
                while not got:
                    await asyncio.sleep(0.01)
            assert got[0]["type"] == "state" and got[0]["agent"]["state"] == "not_ready"
            # The switch drops every socket (as when it restarts its API): the client
            # connects again and gets the state once more.
            for client in sw.api._sockets():
                await client.ws.close()
            async with asyncio.timeout(5):
                while len([m for m in got if m["type"] == "state"]) < 2:
                    await asyncio.sleep(0.01)
            assert links[:3] == [True, False, True] and naps == [0.5]
            # Signing out with the same token elsewhere revokes it: the stream ends with 401.
            other._token = api._token
            await other.logout()
            with pytest.raises(SwitchError) as caught:
                async with asyncio.timeout(5):
                    await follow
            assert caught.value.status == 401 and not api.signed_in
        finally:
            await api.close()
            await other.close()
