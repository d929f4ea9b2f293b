"""Keeping customer data out of the client's log.

The controller logs call ids and field names only; this module is the net under that rule. A
:class:`Redactor` masks, in any text, numbers that look like phone numbers (six digits or more,
with an optional ``+`` and the usual separators, not part of a longer word such as a call id)
and every value it was told about (the screen pop's values, the caller's number and name of
the calls in progress). :class:`RedactingFilter` rewrites each record's message before any
handler sees it; :class:`RedactingFormatter` masks the finished line, tracebacks included.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterable
from typing import Any

__all__ = ["MASK", "RedactingFilter", "RedactingFormatter", "Redactor", "install"]

MASK = "***"
#: shorter remembered values are not masked (they would blot out ordinary words)
MIN_VALUE = 3

# A phone number: an optional +, then at least six digits with spaces, dashes or parentheses
# between them (not dots: an IP address keeps its digits); not glued to letters, digits or _
# on either side (a call id such as "c0ffee-1234567" or "call-20240101" keeps its digits).
_PHONE = re.compile(r"(?<![\w+\-.])\+?\(?\d(?:[\s()\-]{0,2}\d){5,}(?![\w\-]|\.\d)")


class Redactor:
    """Masks phone numbers and the values it remembers; thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: frozenset[str] = frozenset()
        self._pattern: re.Pattern[str] | None = None

    def remember(self, values: Iterable[str | None]) -> None:
        """Mask these values from now on (until :meth:`forget_all`)."""
        new = {v for v in values if v and len(v) >= MIN_VALUE}
        with self._lock:
            if new <= self._values:
                return
            self._values = self._values | new
            ordered = sorted(self._values, key=len, reverse=True)  # longest first
            self._pattern = re.compile("|".join(re.escape(v) for v in ordered))

    def forget_all(self) -> None:
        with self._lock:
            self._values = frozenset()
            self._pattern = None

    def mask(self, text: str) -> str:
        with self._lock:
            pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(MASK, text)
        return _PHONE.sub(MASK, text)


class RedactingFilter(logging.Filter):
    """Replaces a record's message by its masked text (the arguments are folded in)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the record as logging would
            return True
        record.msg = self.redactor.mask(message)
        record.args = None
        return True


class RedactingFormatter(logging.Formatter):
    """Masks the message, the exception text and the stack of each line; the line's own
    fields (its time, level and logger) are left as they are, so a timestamp is never taken
    for a phone number."""

    def __init__(self, redactor: Redactor, fmt: str | None = None) -> None:
        super().__init__(fmt)
        self.redactor = redactor

    def formatMessage(self, record: logging.LogRecord) -> str:
        saved = record.message
        record.message = self.redactor.mask(saved)
        try:
            return super().formatMessage(record)
        finally:
            record.message = saved

    def formatException(self, ei: Any) -> str:
        return self.redactor.mask(super().formatException(ei))

    def formatStack(self, stack_info: str) -> str:
        return self.redactor.mask(super().formatStack(stack_info))


def install(redactor: Redactor, handler: logging.Handler, fmt: str | None = None) -> None:
    """Put the filter and the formatter on ``handler``."""
    handler.addFilter(RedactingFilter(redactor))
    handler.setFormatter(RedactingFormatter(redactor, fmt))
