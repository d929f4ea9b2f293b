"""The dialplan's ``lookup`` action over HTTP: JSON services such as a CRM.

One aiohttp client session is shared by every call (connection reuse); each request has its
own total timeout. What counts as an answer is a 2xx response whose body is a JSON object;
anything else (refused connection, timeout, 4xx/5xx, HTML, a JSON list) raises
:class:`~softswitch.apps.session.LookupFailed` with a reason for the call's trace, and the
action's ``on_failure`` branch runs.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping

import aiohttp

from softswitch.apps.session import LookupFailed
from softswitch.routing.schema import Service

__all__ = ["HttpLookups"]

#: the largest answer read (a CRM record, not a data dump)
MAX_ANSWER_BYTES = 256 * 1024


class HttpLookups:
    """Lookups through one shared aiohttp session (created on first use)."""

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None

    async def fetch(
        self,
        service: Service,
        method: str,
        url: str,
        query: Mapping[str, str],
        body: Mapping[str, str],
        timeout: float,
    ) -> Mapping[str, object]:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(headers={"Accept": "application/json"})
        try:
            async with self._session.request(
                method,
                url,
                params=dict(query) or None,
                json=dict(body) if method == "POST" else None,
                headers=dict(service.headers),
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                if not 200 <= response.status < 300:
                    raise LookupFailed(f"HTTP {response.status}")
                chunks: list[bytes] = []
                size = 0
                async for chunk in response.content.iter_chunked(64 * 1024):
                    size += len(chunk)
                    if size > MAX_ANSWER_BYTES:
                        raise LookupFailed(f"answer larger than {MAX_ANSWER_BYTES} bytes")
                    chunks.append(chunk)
                raw = b"".join(chunks)
        except TimeoutError:
            raise LookupFailed(f"no answer within {timeout:g} s") from None
        except aiohttp.ClientError as exc:
            raise LookupFailed(f"{type(exc).__name__}: {exc}") from None
        except asyncio.CancelledError:
            raise
        try:
            data = json.loads(raw)
        except ValueError:
            raise LookupFailed("the answer is not JSON") from None
        if not isinstance(data, dict):
            raise LookupFailed(f"expected a JSON object, got {type(data).__name__}")
        return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
