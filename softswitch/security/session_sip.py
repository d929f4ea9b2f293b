"""SIP digest credentials issued for one agent session (so no agent types or keeps a SIP
password).

When an agent signs in to the agent API, the switch issues a digest username and password
(RFC 7616 §3.4) valid for that session only; the agent's softphone registers and calls with
them, and they stop working when the session ends (sign-out, token expiry) or the switch
restarts. The username is the agent's SIP user and a random tag, ``1001.k3vq7m2a``, distinct
per session, so the SIP layer finds the session from the ``username`` parameter of the
``Authorization`` header and acts for the SIP user ``1001``.

Only the HA1 values (``H(username:realm:password)``, RFC 7616 §3.4.2, for MD5 and SHA-256)
are kept: the password is answered once, at issue, and never stored.

Bounded (ARCHITECTURE.md, principle 6): at most ``per_user`` sessions per SIP user (a new one
beyond that revokes the user's oldest) and ``max_sessions`` in all (expired ones are purged
first; a table still full refuses with :class:`CredentialsFull`). Pure: time is passed in,
random bytes come from the injected source.
"""

from __future__ import annotations

import base64
import secrets
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from softswitch.sip.auth import ha1

__all__ = ["CredentialsFull", "SessionCredentials"]

#: random bytes of the username's tag (5 bytes: 8 base32 characters)
TAG_BYTES = 5
#: random bytes of a password (20 bytes: 160 bits, 32 base32 characters)
PASSWORD_BYTES = 20
#: digest algorithms an HA1 is kept for (RFC 7616 §3.5 / RFC 8760)
ALGORITHMS = ("MD5", "SHA-256")
#: names of ended sessions remembered (see :meth:`SessionCredentials.ended`)
ENDED_KEPT = 10_000


class CredentialsFull(Exception):
    """The table holds ``max_sessions`` unexpired credentials: none can be issued."""


@dataclass(frozen=True, slots=True)
class _Entry:
    user: str
    expires: float
    ha1: dict[str, str]


def _base32(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


class SessionCredentials:
    """Digest credentials by username; ``realm`` is the SIP domain the HA1s are made for."""

    def __init__(
        self,
        realm: str,
        *,
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
        max_sessions: int = 10_000,
        per_user: int = 8,
    ) -> None:
        if max_sessions < 1 or per_user < 1:
            raise ValueError("max_sessions and per_user must be positive")
        self.realm = realm
        self.max_sessions = max_sessions
        self.per_user = per_user
        self._random = random_bytes
        self._entries: dict[str, _Entry] = {}  # username -> entry, in issue order
        self._by_user: dict[str, list[str]] = {}
        self._ended: OrderedDict[str, None] = OrderedDict()  # the newest ENDED_KEPT

    def __len__(self) -> int:
        return len(self._entries)

    def issue(self, user: str, now: float, ttl: float) -> tuple[str, str]:
        """New credentials for SIP user ``user``, valid for ``ttl`` seconds from ``now``:
        ``(auth_username, password)``. The user's oldest credentials beyond ``per_user`` are
        revoked; raises :class:`CredentialsFull` when the table is full of unexpired ones."""
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.purge(now)
        held = self._by_user.get(user, [])
        while len(held) >= self.per_user:
            self.revoke(held[0])
            held = self._by_user.get(user, [])
        if len(self._entries) >= self.max_sessions:
            raise CredentialsFull(f"{len(self._entries)} session credentials are in force")
        username = f"{user}.{_base32(self._random(TAG_BYTES))}"
        while username in self._entries:  # a repeated tag: draw again
            username = f"{user}.{_base32(self._random(TAG_BYTES))}"
        password = _base32(self._random(PASSWORD_BYTES))
        hashes = {alg: ha1(username, self.realm, password, alg) for alg in ALGORITHMS}
        self._entries[username] = _Entry(user, now + ttl, hashes)
        self._by_user.setdefault(user, []).append(username)
        return username, password

    def lookup(self, auth_username: str, now: float) -> tuple[str, dict[str, str]] | None:
        """The SIP user and the HA1 per algorithm of ``auth_username``, or None if unknown,
        revoked or expired (an expired one is removed)."""
        entry = self._entries.get(auth_username)
        if entry is None:
            return None
        if now >= entry.expires:
            self.revoke(auth_username)
            return None
        return entry.user, dict(entry.ha1)

    def revoke(self, auth_username: str) -> bool:
        """Revoke one session's credentials; False if unknown."""
        entry = self._entries.pop(auth_username, None)
        if entry is None:
            return False
        self._ended[auth_username] = None
        while len(self._ended) > ENDED_KEPT:
            self._ended.popitem(last=False)
        names = self._by_user.get(entry.user)
        if names is not None:
            if auth_username in names:
                names.remove(auth_username)
            if not names:
                del self._by_user[entry.user]
        return True

    def ended(self, auth_username: str) -> bool:
        """Whether ``auth_username`` named credentials of a session that has ended (revoked
        or expired; the newest :data:`ENDED_KEPT` are remembered). A phone still using them
        (one left running after its session ended) is refused, but the switch need not take
        it for someone guessing passwords: no password is right for them any more."""
        return auth_username in self._ended

    def revoke_user(self, user: str) -> int:
        """Revoke every session credential of SIP user ``user``; how many."""
        names = list(self._by_user.get(user, ()))
        for name in names:
            self.revoke(name)
        return len(names)

    def purge(self, now: float) -> int:
        """Remove the expired credentials; how many."""
        expired = [name for name, entry in self._entries.items() if entry.expires <= now]
        for name in expired:
            self.revoke(name)
        return len(expired)
