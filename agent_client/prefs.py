"""What the client remembers between runs: the chosen headset devices, nothing else.

A small JSON file beside the configuration file (``prefs.json``). It never holds customer data,
credentials or anything from a call: only the names of the input and output sound devices. It
is written atomically (a temporary file in the same folder, flushed, then renamed over the old
one), so a crash leaves the old or the new file, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Prefs", "load_prefs", "save_prefs"]

log = logging.getLogger("agent_client.prefs")

FILE_NAME = "prefs.json"
MAX_NAME = 512


@dataclass(frozen=True, slots=True)
class Prefs:
    """The remembered headset devices (None: the system's default)."""

    input: str | None = None
    output: str | None = None


def _name(value: object) -> str | None:
    return value if isinstance(value, str) and 0 < len(value) <= MAX_NAME else None


def load_prefs(folder: Path) -> Prefs:
    """The remembered choice; defaults when there is none or the file is unreadable."""
    path = folder / FILE_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Prefs()
    except (OSError, ValueError) as exc:
        log.warning("%s is ignored: %s", path, exc)
        return Prefs()
    if not isinstance(data, dict):
        log.warning("%s is ignored: not a JSON object", path)
        return Prefs()
    return Prefs(_name(data.get("input")), _name(data.get("output")))


def save_prefs(folder: Path, prefs: Prefs) -> None:
    """Write ``prefs`` atomically (creating the folder when needed)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / FILE_NAME
    text = json.dumps({"input": prefs.input, "output": prefs.output}, indent=2) + "\n"
    fd, temporary = tempfile.mkstemp(prefix=".prefs-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
