"""Voicemail boxes: messages kept as WAV files with a JSON note beside each.

Layout: ``<folder>/<mailbox>/<id>.wav`` (8 kHz, 16-bit mono PCM) and ``<id>.json`` (caller,
time, length). A message is written whole to a temporary name and then renamed (POSIX
``rename`` is atomic), so a listing never shows half a message, and the note is written last:
a WAV without its note is not listed. Mailbox names and message ids are checked against a
strict pattern before they touch a path.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

__all__ = ["MailboxError", "VoicemailStore"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{8}")


class MailboxError(ValueError):
    """A mailbox or message name that is not one."""


@dataclass(frozen=True, slots=True)
class Message:
    mailbox: str
    id: str
    caller: str
    caller_name: str | None
    received: float
    seconds: float

    def to_json(self) -> dict[str, object]:
        return {
            "id": self.id,
            "mailbox": self.mailbox,
            "caller": self.caller,
            "caller_name": self.caller_name,
            "received": self.received,
            "seconds": self.seconds,
        }


class VoicemailStore:
    """The messages of every mailbox under one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _box(self, mailbox: str) -> Path:
        if not _NAME.fullmatch(mailbox):
            raise MailboxError(f"not a mailbox name: {mailbox!r}")
        return self.folder / mailbox

    def save(
        self,
        mailbox: str,
        samples: npt.NDArray[np.int16],
        *,
        caller: str,
        caller_name: str | None = None,
        received: float | None = None,
    ) -> Message:
        """Write a message; returns it."""
        box = self._box(mailbox)
        box.mkdir(parents=True, exist_ok=True)
        when = time.time() if received is None else received
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(when))
        message = Message(
            mailbox,
            f"{stamp}-{secrets.token_hex(4)}",
            caller,
            caller_name,
            round(when, 3),
            round(len(samples) / 8000, 2),
        )
        wav = box / f"{message.id}.wav"
        partial = box / f".{message.id}.wav.part"
        with wave.open(str(partial), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(8000)
            out.writeframes(samples.astype("<i2").tobytes())
        os.replace(partial, wav)
        note = box / f".{message.id}.json.part"
        note.write_text(json.dumps(message.to_json()), encoding="utf-8")
        os.replace(note, box / f"{message.id}.json")
        return message

    def messages(self, mailbox: str) -> list[dict[str, object]]:
        """A mailbox's messages, oldest first."""
        box = self._box(mailbox)
        out: list[dict[str, object]] = []
        if not box.is_dir():
            return out
        for note in box.glob("*.json"):
            try:
                data = json.loads(note.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(data, dict) and (box / f"{note.stem}.wav").is_file():
                out.append(data)
        out.sort(key=_order)
        return out

    def mailboxes(self) -> list[dict[str, object]]:
        """Every mailbox that holds messages, with their count."""
        if not self.folder.is_dir():
            return []
        out: list[dict[str, object]] = []
        for box in sorted(p for p in self.folder.iterdir() if p.is_dir()):
            if _NAME.fullmatch(box.name):
                count = len(self.messages(box.name))
                if count:
                    out.append({"mailbox": box.name, "messages": count})
        return out

    def audio(self, mailbox: str, message_id: str) -> Path | None:
        """The WAV file of a message, or None."""
        if not _ID.fullmatch(message_id):
            raise MailboxError(f"not a message id: {message_id!r}")
        path = self._box(mailbox) / f"{message_id}.wav"
        return path if path.is_file() and (path.with_suffix(".json")).is_file() else None

    def delete(self, mailbox: str, message_id: str) -> bool:
        path = self.audio(mailbox, message_id)
        if path is None:
            return False
        path.with_suffix(".json").unlink(missing_ok=True)
        path.unlink(missing_ok=True)
        return True


def _order(message: dict[str, object]) -> tuple[float, str]:
    """Oldest first; the id breaks ties within one millisecond."""
    received = message.get("received")
    when = float(received) if isinstance(received, int | float) else 0.0
    return when, str(message.get("id"))
