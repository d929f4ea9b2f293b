"""Time-based one-time passwords: the second factor of an agent's sign-in (RFC 6238).

An agent's authenticator app and the switch share a secret. A code is HOTP (RFC 4226 §5.3)
of the time step ``T = floor(unix_time / 30)`` (RFC 6238 §4.2): HMAC-SHA-1, 6 digits, the
defaults of every authenticator app and of the Key Uri Format that enrols them
(``otpauth://totp/...``, read from a QR code).

* Enrolment: :func:`new_secret` makes a random 160-bit secret (RFC 4226 §4 R6 recommends 160
  bits, the length of a SHA-1 output), base32 without padding; :func:`provisioning_uri` gives
  the ``otpauth://`` URI with issuer ``softswitch`` and the agent id as the account name.
* Verification: :func:`verify` accepts a code of the current step or of the step before or
  after it (RFC 6238 §5.2 allows one step either way for clock drift and the time the agent
  takes to type) and answers the step it matched. A code of a step at or before the last one
  accepted for that agent is refused: §5.2 forbids accepting an OTP a second time, and a
  code older than one already used is no use to its owner either. The caller keeps the last
  accepted step (the security store does, per agent).

Time is always passed in (Unix seconds): nothing here reads a clock.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass

import pyotp

__all__ = [
    "DIGITS",
    "ISSUER",
    "STEP",
    "WINDOW",
    "Enrolment",
    "code_at",
    "new_secret",
    "provisioning_uri",
    "step_of",
    "valid_secret",
    "verify",
]

#: seconds per time step (RFC 6238 §5.2: 30 seconds)
STEP = 30
#: digits of a code (RFC 4226 §5.3: at least 6)
DIGITS = 6
#: steps accepted either side of the current one (RFC 6238 §5.2)
WINDOW = 1
#: the issuer of the Key Uri Format: the name the authenticator app shows
ISSUER = "softswitch"
#: base32 characters of a new secret: 32 x 5 bits = 160 bits
SECRET_CHARS = 32


def new_secret() -> str:
    """A new random secret of 160 bits as base32 (32 characters, no padding), drawn from the
    operating system's cryptographic random source."""
    return pyotp.random_base32(SECRET_CHARS)


def valid_secret(secret: str) -> bool:
    """Whether ``secret`` is base32 of at least 80 bits (RFC 4226 §4 R6: 128 bits at least,
    160 recommended; 80 bits is what older authenticator apps enrol)."""
    if len(secret) < 16:
        return False
    try:
        pyotp.TOTP(secret).byte_secret()
    except (ValueError, TypeError):
        return False
    return True


def provisioning_uri(secret: str, agent: str) -> str:
    """The Key Uri Format URI that enrols ``secret`` in an authenticator app:
    ``otpauth://totp/softswitch:<agent>?secret=...&issuer=softswitch`` (SHA-1, 6 digits and
    30 seconds are the format's defaults, so they are left out)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP).provisioning_uri(
        name=agent, issuer_name=ISSUER
    )


def step_of(now: float) -> int:
    """The time step of Unix time ``now`` (RFC 6238 §4.2, T0 = 0)."""
    return math.floor(now / STEP)


def code_at(secret: str, now: float, *, digits: int = DIGITS, digest: str = "sha1") -> str:
    """The code of ``secret`` for the step holding Unix time ``now``; ``digits`` and
    ``digest`` (``"sha1"``, ``"sha256"``, ``"sha512"``) as in RFC 6238 §1.2."""
    otp = pyotp.TOTP(secret, digits=digits, digest=getattr(hashlib, digest), interval=STEP)
    return otp.at(int(now))


def verify(
    secret: str,
    code: str,
    now: float,
    *,
    last_step: int | None,
    window: int = WINDOW,
) -> int | None:
    """The step whose code ``code`` is, within ``window`` steps of the step of ``now`` and
    after ``last_step`` (the last step accepted for this secret; None: none yet), or None.

    The caller records the step returned as the new last step before it lets the agent in,
    so the same code cannot be used twice (RFC 6238 §5.2). A code that is not exactly
    :data:`DIGITS` decimal digits matches nothing; codes are compared in constant time.
    """
    if len(code) != DIGITS or not code.isascii() or not code.isdecimal():
        return None
    otp = pyotp.TOTP(secret, digits=DIGITS, interval=STEP)
    current = step_of(now)
    found: int | None = None
    for step in range(current - window, current + window + 1):
        if step < 0 or (last_step is not None and step <= last_step):
            continue
        # every candidate is computed and compared, so the time taken does not say which
        if hmac.compare_digest(otp.generate_otp(step), code) and found is None:
            found = step
    return found


@dataclass(frozen=True, slots=True)
class Enrolment:
    """An agent's enrolled secret, as the security store keeps it."""

    agent: str
    secret: str
    enrolled: float
    """When it was enrolled (Unix seconds)."""
    last_step: int | None = None
    """The last time step whose code was accepted (None: no code yet)."""
