"""Bearer tokens of signed-in agents (RFC 6750): issued at login, looked up on every request.

Tokens live in memory only, so a restart of the switch signs everyone out. A token is 32
random bytes (``secrets.token_urlsafe(32)``, 256 bits); the table keeps only its SHA-256
digest, so the lookup is a dictionary access on a value the client cannot steer byte by byte
(no comparison that stops at the first differing character), and a memory dump holds no token
that could be replayed.

Bounded (ARCHITECTURE.md, principle 6): at most ``per_agent`` tokens per agent (a new login
beyond that revokes the agent's oldest one) and ``max_tokens`` in all (expired tokens are
purged first; when the table is still full, the login is refused with :class:`TokensFull`).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

__all__ = ["Session", "TokenRejected", "TokenStore", "TokensFull", "digest"]


def digest(token: str) -> bytes:
    """The table key of ``token``: its SHA-256 digest."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


@dataclass(frozen=True, slots=True)
class Session:
    """What a valid token stands for: an agent signed in until ``expires`` (Unix seconds)."""

    agent: str
    issued: float
    expires: float
    key: bytes
    """The token's digest (the table key), which identifies the session without the token."""


class TokenRejected(Exception):
    """The token is unknown, revoked or expired; ``reason`` says which, for the 401 answer."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TokensFull(Exception):
    """The table holds ``max_tokens`` unexpired tokens: no new login until some expire."""


class TokenStore:
    """Issued tokens by digest; ``ttl`` seconds of validity from the login."""

    def __init__(self, ttl: float, *, max_tokens: int = 10_000, per_agent: int = 8) -> None:
        if ttl <= 0 or max_tokens < 1 or per_agent < 1:
            raise ValueError("ttl, max_tokens and per_agent must be positive")
        self.ttl = ttl
        self.max_tokens = max_tokens
        self.per_agent = per_agent
        self._sessions: dict[bytes, Session] = {}  # in issue order, which is expiry order
        self._by_agent: dict[str, list[bytes]] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def issue(self, agent: str, now: float) -> tuple[str, Session, list[Session]]:
        """A new token for ``agent``: the token (shown once, never stored), its session, and
        the sessions revoked to make room (the agent's oldest beyond ``per_agent``)."""
        self.purge(now)
        dropped: list[Session] = []
        held = self._by_agent.get(agent, [])
        while len(held) >= self.per_agent:
            old = self._sessions.get(held[0])
            self._forget(held[0])
            if old is not None:
                dropped.append(old)
            held = self._by_agent.get(agent, [])
        if len(self._sessions) >= self.max_tokens:
            self.purge(now, whole=True)  # the clock may have stepped back: look at every one
        if len(self._sessions) >= self.max_tokens:
            raise TokensFull(f"{len(self._sessions)} agents are signed in, the most allowed")
        token = secrets.token_urlsafe(32)
        key = digest(token)
        session = Session(agent, now, now + self.ttl, key)
        self._sessions[key] = session
        self._by_agent.setdefault(agent, []).append(key)
        return token, session, dropped

    def lookup(self, token: str, now: float) -> Session:
        """The session of ``token``; raises :class:`TokenRejected` if there is none (never
        issued, revoked, or forgotten by a restart) or it expired (then it is removed)."""
        key = digest(token)
        session = self._sessions.get(key)
        if session is None:
            raise TokenRejected("unknown or revoked token (sign in again)")
        if now >= session.expires:
            self._forget(key)
            raise TokenRejected("the token expired (sign in again)")
        return session

    def valid(self, key: bytes, now: float) -> bool:
        """Whether the session with this digest is still in force."""
        session = self._sessions.get(key)
        return session is not None and now < session.expires

    def revoke(self, key: bytes) -> Session | None:
        """Revoke the session with this digest (sign-out); the session, or None if unknown."""
        session = self._sessions.get(key)
        self._forget(key)
        return session

    def revoke_agent(self, agent: str) -> list[Session]:
        """Revoke every session of ``agent`` (the agent was removed from the configuration)."""
        out = []
        for key in list(self._by_agent.get(agent, ())):
            session = self.revoke(key)
            if session is not None:
                out.append(session)
        return out

    def purge(self, now: float, *, whole: bool = False) -> list[Session]:
        """Remove the expired sessions; the ones removed. Issue order is expiry order (one
        ttl for all), so the walk stops at the first one in force unless ``whole``."""
        if whole:
            keys = [key for key, session in self._sessions.items() if session.expires <= now]
        else:
            keys = []
            for key, session in self._sessions.items():
                if session.expires > now:
                    break
                keys.append(key)
        out = [self._sessions[key] for key in keys]
        for key in keys:
            self._forget(key)
        return out

    def _forget(self, key: bytes) -> None:
        session = self._sessions.pop(key, None)
        if session is None:
            return
        keys = self._by_agent.get(session.agent)
        if keys is not None:
            if key in keys:
                keys.remove(key)
            if not keys:
                del self._by_agent[session.agent]
