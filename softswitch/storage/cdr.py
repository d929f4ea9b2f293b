"""Call detail records: one immutable summary per call the switch handled.

A call detail record (CDR) says who called whom, when the call arrived, whether and when it
was answered, when and why it ended, the final status the caller got, where its recording is
and what the media looked like. It is written once, when the call is over, and is the raw
material of billing, troubleshooting ("why did this customer hang up?") and call-center KPIs
(answer rate, handle time, abandoned calls), which are computed from stored records later.

Times are wall-clock Unix seconds (not the monotonic clock of the sans-I/O cores), so records
from different runs and nodes can be compared and shown to people.

:func:`records_csv` writes records as CSV (RFC 4180) for spreadsheets and reporting tools.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

__all__ = ["CDR_CSV_COLUMNS", "CallRecord", "csv_table", "records_csv", "spreadsheet_cell"]


@dataclass(frozen=True, slots=True)
class CallRecord:
    """The detail record of one call, from the INVITE to the end of the call.

    ``media`` is a JSON document (objects, arrays, strings, finite numbers, booleans, null)
    with per-leg RTP statistics, talk and silence times and the digits pressed; its top level
    is kept as a read-only mapping.

    Calls that the switch refused before routing them (a digest challenge, an unknown number)
    have no record: the record starts where the B2BUA takes the call.
    """

    call_id: str
    """The switch's id of the call, the one its logs and API name (not a leg's Call-ID)."""
    caller: str
    """User part (or number) of the caller's From URI."""
    caller_name: str | None
    """Display name of the caller's From, if any."""
    callee: str
    """The dialled number (user part of the Request-URI)."""
    started: float
    """Unix seconds when the INVITE arrived."""
    answered: float | None
    """Unix seconds when the call was answered (200 OK sent to the caller); None if never."""
    ended: float
    """Unix seconds when the call ended (BYE, CANCEL or final failure response)."""
    status: int
    """Final SIP status answered to the caller: 200 for an answered call, else 4xx-6xx."""
    cause: str
    """Why the call ended, in words: "caller hung up", "callee hung up", "cancelled",
    "no media from the callee", "486 Busy Here" ..."""
    recording: str | None = None
    """Path of the call's recording, if it was recorded."""
    media: Mapping[str, Any] = field(default_factory=dict)
    """Media statistics of the call, a JSON document (see the class docstring)."""
    queue: str | None = None
    """The ACD queue the call went through, if any."""
    agent: str | None = None
    """Id of the agent who answered the call from the queue, if any."""
    wait: float | None = None
    """Seconds the caller waited in the queue (until answered or gone); None without a queue."""
    wrap_up_code: str | None = None
    """The disposition code the agent set in wrap-up, if any."""
    wrap_up_note: str | None = None
    """The agent's note on the call, written in wrap-up (the automatic call log), if any."""

    def __post_init__(self) -> None:
        if not isinstance(self.media, MappingProxyType):
            object.__setattr__(self, "media", MappingProxyType(dict(self.media)))

    @property
    def duration(self) -> float:
        """Seconds from the INVITE to the end of the call (ringing included).

        Never negative, even if the wall clock was stepped back during the call.
        """
        return max(0.0, self.ended - self.started)

    @property
    def talk_time(self) -> float:
        """Seconds from the answer to the end of the call; 0 for a call never answered."""
        if self.answered is None:
            return 0.0
        return max(0.0, self.ended - self.answered)

    @property
    def answered_ok(self) -> bool:
        """Whether the call was answered: it has an answer time and a 2xx final status."""
        return self.answered is not None and 200 <= self.status < 300

    def to_dict(self) -> dict[str, Any]:
        """The record as a JSON-able dict: every field plus the derived times and flag."""
        return {
            "call_id": self.call_id,
            "caller": self.caller,
            "caller_name": self.caller_name,
            "callee": self.callee,
            "started": self.started,
            "answered": self.answered,
            "ended": self.ended,
            "status": self.status,
            "cause": self.cause,
            "recording": self.recording,
            "media": dict(self.media),
            "duration": self.duration,
            "talk_time": self.talk_time,
            "answered_ok": self.answered_ok,
            "queue": self.queue,
            "agent": self.agent,
            "wait": self.wait,
            "wrap_up_code": self.wrap_up_code,
            "wrap_up_note": self.wrap_up_note,
        }


# --------------------------------------------------------------------------------------------
# CSV export

#: The columns of :func:`records_csv`, in order.
CDR_CSV_COLUMNS: tuple[str, ...] = (
    "call_id", "caller", "caller_name", "callee", "started", "answered", "ended", "duration",
    "talk_time", "status", "cause", "queue", "agent", "wait", "wrap_up_code", "recording",
    "wrap_up_note",
)  # fmt: skip

# A cell that a spreadsheet would run as a formula (OWASP "CSV injection"): one starting with
# "=", "@", a tab or a carriage return, or with "+" / "-" when not a plain number (so that
# "+4930123456" stays a phone number).
_FORMULA_START = ("=", "@", "\t", "\r")
_SIGNED_NUMBER = re.compile(r"[+-][0-9]+(?:\.[0-9]+)?")


def spreadsheet_cell(value: str) -> str:
    """``value`` made safe to open in a spreadsheet: a text that would start a formula gets a
    leading apostrophe (the spreadsheets' "this is text" mark); every other text is unchanged.

    Caller names and numbers come from SIP headers, that is from anyone who can call.
    """
    if value.startswith(_FORMULA_START) or (
        value.startswith(("+", "-")) and not _SIGNED_NUMBER.fullmatch(value)
    ):
        return "'" + value
    return value


def _seconds(value: float | None) -> str:
    """Unix seconds (or a duration) with millisecond precision; empty for None."""
    return "" if value is None else f"{value:.3f}"


def _text(value: str | None) -> str:
    return "" if value is None else spreadsheet_cell(value)


def csv_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """A CSV document (RFC 4180 §2): a header line, one line per row, CRLF line ends, fields
    quoted when they hold a comma, a quote or a line break (quotes doubled)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue()


def records_csv(records: Iterable[CallRecord]) -> str:
    """The records as CSV with the columns :data:`CDR_CSV_COLUMNS`, one line per record in the
    order given.

    Times (``started``, ``answered``, ``ended``) are Unix seconds and ``duration``,
    ``talk_time`` and ``wait`` are seconds, all with three decimals; a missing value is an
    empty field. Texts that a spreadsheet would take for a formula are defused by
    :func:`spreadsheet_cell`. The media document is left out (it is in the JSON answer).
    """
    return csv_table(
        CDR_CSV_COLUMNS,
        (
            (
                _text(r.call_id),
                _text(r.caller),
                _text(r.caller_name),
                _text(r.callee),
                _seconds(r.started),
                _seconds(r.answered),
                _seconds(r.ended),
                _seconds(r.duration),
                _seconds(r.talk_time),
                str(r.status),
                _text(r.cause),
                _text(r.queue),
                _text(r.agent),
                _seconds(r.wait),
                _text(r.wrap_up_code),
                _text(r.recording),
                _text(r.wrap_up_note),
            )
            for r in records
        ),
    )
