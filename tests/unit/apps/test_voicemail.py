"""VoicemailStore on a real folder: WAV and JSON note per message, listing, names, delete."""

from __future__ import annotations

import json
import re
import time
import wave
from pathlib import Path

import numpy as np
import pytest

from softswitch.apps.voicemail import MailboxError, VoicemailStore

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z, a whole second
ID = re.compile(r"[0-9]{8}T[0-9]{6}-[0-9a-f]{8}")


def tone(seconds: float, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(8000 * seconds)) / 8000
    return np.round(np.sin(2 * np.pi * hz * t) * 12000).astype(np.int16)


def test_save_writes_a_readable_8khz_mono_wav_with_the_samples(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path / "vm")
    samples = tone(1.5)
    samples[0], samples[1] = -32768, 32767  # the extremes survive
    message = store.save("1003", samples, caller="1001", caller_name="Alice", received=T0)
    assert ID.fullmatch(message.id)
    assert message.id.startswith(time.strftime("%Y%m%dT%H%M%S", time.gmtime(T0)))
    assert (message.mailbox, message.caller, message.caller_name) == ("1003", "1001", "Alice")
    assert (message.received, message.seconds) == (T0, 1.5)
    wav = tmp_path / "vm" / "1003" / f"{message.id}.wav"
    with wave.open(str(wav), "rb") as read:
        assert (read.getnchannels(), read.getsampwidth(), read.getframerate()) == (1, 2, 8000)
        assert read.getnframes() == len(samples)
        back = np.frombuffer(read.readframes(read.getnframes()), dtype="<i2")
    assert np.array_equal(back, samples)
    note = json.loads((wav.with_suffix(".json")).read_text(encoding="utf-8"))
    assert note == message.to_json()
    assert store.audio("1003", message.id) == wav
    # nothing else is left in the box (no temporary files)
    assert sorted(p.name for p in wav.parent.iterdir()) == [f"{message.id}.json", wav.name]


def test_listing_is_oldest_first(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    late = store.save("main", tone(0.1), caller="3", received=T0 + 3600)
    early = store.save("main", tone(0.1), caller="1", received=T0)
    middle = store.save("main", tone(0.1), caller="2", received=T0 + 60)
    listed = store.messages("main")
    assert [m["id"] for m in listed] == [early.id, middle.id, late.id]
    assert [m["caller"] for m in listed] == ["1", "2", "3"]
    assert listed[0] == early.to_json()


def test_listing_is_oldest_first_within_one_second(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    saved = [
        store.save("main", tone(0.02), caller=str(i), received=T0 + i * 0.04) for i in range(20)
    ]
    assert [m["id"] for m in store.messages("main")] == [m.id for m in saved]


def test_a_wav_without_its_note_is_not_listed(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    kept = store.save("1003", tone(0.2), caller="1001", received=T0)
    orphan = store.save("1003", tone(0.2), caller="1002", received=T0 + 5)
    (tmp_path / "1003" / f"{orphan.id}.json").unlink()  # as if the write stopped before it
    assert [m["id"] for m in store.messages("1003")] == [kept.id]
    assert store.audio("1003", orphan.id) is None
    assert store.delete("1003", orphan.id) is False
    assert store.mailboxes() == [{"mailbox": "1003", "messages": 1}]


def test_a_note_without_its_wav_or_a_broken_note_is_not_listed(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    kept = store.save("1003", tone(0.2), caller="1001", received=T0)
    lost = store.save("1003", tone(0.2), caller="1002", received=T0 + 5)
    (tmp_path / "1003" / f"{lost.id}.wav").unlink()
    (tmp_path / "1003" / "20260101T000000-deadbeef.json").write_text("{not json", "utf-8")
    assert [m["id"] for m in store.messages("1003")] == [kept.id]


def test_leftover_part_files_are_not_listed(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    kept = store.save("1003", tone(0.2), caller="1001", received=T0)
    box = tmp_path / "1003"
    stray = "20260101T000000-0badf00d"
    with wave.open(str(box / f".{stray}.wav.part"), "wb") as out:  # a crash mid-write
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(tone(0.1).tobytes())
    (box / f".{stray}.json.part").write_text(json.dumps({"id": stray}), "utf-8")
    assert [m["id"] for m in store.messages("1003")] == [kept.id]
    assert store.audio("1003", stray) is None
    # a box holding only leftovers is not a mailbox with messages
    other = tmp_path / "1004"
    other.mkdir()
    (other / f".{stray}.wav.part").write_bytes(b"RIFF")
    assert store.mailboxes() == [{"mailbox": "1003", "messages": 1}]


BAD_MAILBOXES = ["../x", "..", ".", "a/b", "a\\b", "", "x" * 65, "1003 ", "/etc", "é"]


@pytest.mark.parametrize("mailbox", BAD_MAILBOXES)
def test_bad_mailbox_names_raise(tmp_path: Path, mailbox: str) -> None:
    store = VoicemailStore(tmp_path / "vm")
    with pytest.raises(MailboxError):
        store.save(mailbox, tone(0.1), caller="1001")
    with pytest.raises(MailboxError):
        store.messages(mailbox)
    with pytest.raises(MailboxError):
        store.audio(mailbox, "20260101T000000-deadbeef")
    with pytest.raises(MailboxError):
        store.delete(mailbox, "20260101T000000-deadbeef")
    assert not (tmp_path / "x").exists() and not (tmp_path / "vm").exists()


@pytest.mark.parametrize(
    "message_id",
    [
        "../1004/20260101T000000-deadbeef",
        "20260101T000000-deadbeef/../../x",
        "20260101T000000-DEADBEEF",
        "20260101T000000-deadbee",
        "20260101-deadbeef",
        "",
        "x",
    ],
)
def test_bad_message_ids_raise(tmp_path: Path, message_id: str) -> None:
    store = VoicemailStore(tmp_path)
    store.save("1003", tone(0.1), caller="1001", received=T0)
    with pytest.raises(MailboxError):
        store.audio("1003", message_id)
    with pytest.raises(MailboxError):
        store.delete("1003", message_id)
    assert len(store.messages("1003")) == 1


def test_mailbox_error_is_a_value_error() -> None:
    assert issubclass(MailboxError, ValueError)


def test_delete(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path)
    first = store.save("1003", tone(0.1), caller="1", received=T0)
    second = store.save("1003", tone(0.1), caller="2", received=T0 + 1)
    assert store.delete("1003", first.id) is True
    assert [m["id"] for m in store.messages("1003")] == [second.id]
    assert not (tmp_path / "1003" / f"{first.id}.wav").exists()
    assert not (tmp_path / "1003" / f"{first.id}.json").exists()
    assert store.delete("1003", first.id) is False  # already gone
    assert store.delete("1004", second.id) is False  # not in that mailbox
    assert store.delete("1003", second.id) is True
    assert store.messages("1003") == [] and store.mailboxes() == []


def test_mailboxes_and_an_empty_store(tmp_path: Path) -> None:
    store = VoicemailStore(tmp_path / "vm")
    assert store.mailboxes() == [] and store.messages("1003") == []
    store.save("main", tone(0.1), caller="1", received=T0)
    store.save("1003", tone(0.1), caller="1", received=T0)
    store.save("1003", tone(0.1), caller="2", received=T0 + 1)
    (tmp_path / "vm" / "not a box").mkdir()
    assert store.mailboxes() == [
        {"mailbox": "1003", "messages": 2},
        {"mailbox": "main", "messages": 1},
    ]
