"""Masking customer data in the client's log lines."""

from __future__ import annotations

import io
import logging
import re

from agent_client.redact import MASK, RedactingFilter, Redactor, install


def record(message: str, *args: object, exc: BaseException | None = None) -> logging.LogRecord:
    info = None if exc is None else (type(exc), exc, exc.__traceback__)
    return logging.LogRecord("agent_client.test", logging.INFO, __file__, 1, message, args, info)


def test_phone_numbers_are_masked_but_call_ids_keep_their_digits() -> None:
    r = Redactor()
    assert r.mask("call from +49 30 1234567 to 0301234567") == f"call from {MASK} to {MASK}"
    assert r.mask("dialled (030) 123-4567.") == f"dialled {MASK}."
    assert r.mask("sip:+4930123456@10.66.0.1") == f"sip:{MASK}@10.66.0.1"
    kept = "call call-20240101@switch.test id c0ffee-1234567 extension 1001 port 5060"
    assert r.mask(kept) == kept
    assert r.mask("10.66.0.1:8080 192.168.100.200") == "10.66.0.1:8080 192.168.100.200"


def test_remembered_screen_pop_values_are_masked_until_forgotten() -> None:
    r = Redactor()
    r.remember(["Erika Mustermann", "gold", None, "ab"])
    line = "offer for Erika Mustermann (tier gold, ab)"
    assert r.mask(line) == f"offer for {MASK} (tier {MASK}, ab)"
    r.forget_all()
    assert r.mask(line) == line


def test_the_filter_masks_a_records_message_and_arguments() -> None:
    r = Redactor()
    r.remember(["778899"])
    rec = record("screen pop member=%s caller %s", "Erika", "+4930123456")
    r.remember(["Erika"])
    assert RedactingFilter(r).filter(rec)
    assert rec.getMessage() == f"screen pop member={MASK} caller {MASK}"


def test_the_handler_masks_tracebacks_too() -> None:
    r = Redactor()
    r.remember(["Erika Mustermann"])
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    install(r, handler, "%(levelname)s %(message)s")
    log = logging.getLogger("agent_client.test_redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        try:
            raise ValueError("bad value Erika Mustermann +4930123456")
        except ValueError:
            log.exception("showing caller %s failed", "Erika Mustermann")
    finally:
        log.removeHandler(handler)
    text = out.getvalue()
    assert "Erika" not in text and "4930123456" not in text
    assert "INFO" not in text and "ERROR showing caller ***" in text and "ValueError" in text


def test_the_lines_own_time_is_not_taken_for_a_phone_number() -> None:
    r = Redactor()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    install(r, handler, "%(asctime)s %(levelname)s %(message)s")
    log = logging.getLogger("agent_client.test_redact.time")
    log.addHandler(handler)
    log.propagate = False
    log.setLevel(logging.INFO)
    try:
        log.info("call from %s", "+49 30 1234567")
    finally:
        log.removeHandler(handler)
    line = out.getvalue().strip()
    stamp = line.split(" INFO ")[0]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}", stamp), line
    assert line.endswith("INFO call from ***")
