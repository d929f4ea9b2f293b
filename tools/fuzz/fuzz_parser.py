"""Coverage-guided fuzz target for the SIP message parser (``softswitch.sip.message``).

The property under test is ARCHITECTURE.md principle 4: a message from a peer either parses or
raises ``MalformedMessage`` (which the receive path turns into a 400 or a silent drop); nothing
else may escape. For every input that parses, the serialized form must parse again and be a
fixed point of parse-then-serialize (strict out), and the accessors that ``parse_message``
validated must not raise.

Run (see tools/fuzz/README.md)::

    .venv/bin/python tools/fuzz/fuzz_parser.py -atheris_runs=1000000

Without a corpus directory on the command line, a fresh working corpus is made in a temporary
directory and seeded from ``tests/data/rfc4475``. ``check`` is importable so that the unit
suite runs the same property over the seeds and random mutations of them.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SEED_DIR = REPO / "tests" / "data" / "rfc4475"

#: Tokens the mutator may splice into inputs (libFuzzer dictionary format).
DICTIONARY = [
    "SIP/2.0",
    "SIP/",
    "\r\n",
    "\r\n\r\n",
    "\n\n",
    "\r\n ",
    "\r\n\t",
    "INVITE",
    "REGISTER",
    "ACK",
    "sip:",
    "sips:",
    "tel:",
    "Via:",
    "v:",
    "SIP/2.0/UDP ",
    ";branch=z9hG4bK",
    ";rport",
    ";received=",
    ";tag=",
    ";transport=tcp",
    ";lr",
    ";maddr=",
    "From:",
    "f:",
    "To:",
    "t:",
    "Call-ID:",
    "i:",
    "CSeq:",
    "Contact:",
    "m:",
    "Content-Length:",
    "l:",
    "Max-Forwards:",
    "Expires:",
    "Route:",
    "Record-Route:",
    "<sip:",
    ">",
    '"',
    "\\",
    "%",
    "%00",
    "%25",
    "@",
    ":",
    ";",
    ",",
    "?",
    "&",
    "=",
    "[",
    "]",
    "[::1]",
    "[2001:db8::1]",
    ":65535",
    ":65536",
    "4294967295",
    "4294967296",
    "\u00b2",
    "\u0663",
    "\xa0",
    "\x1c",
]


def check(data: bytes) -> None:
    """Parse ``data``; raise anything but ``MalformedMessage`` when a property is broken."""
    from softswitch.sip.message import MalformedMessage, parse_message

    try:
        message = parse_message(data)
    except MalformedMessage as exc:
        response = exc.error_response()
        if response is not None:
            bytes(response)
        return
    wire = bytes(message)
    # Our own output must parse: a MalformedMessage here is a bug, not a peer's fault.
    try:
        again = parse_message(wire)
    except MalformedMessage as exc:
        raise AssertionError(f"serialized message does not parse again: {exc!r}") from exc
    if bytes(again) != wire:
        raise AssertionError("parse(serialize(m)) is not a fixed point")
    if type(again) is not type(message):
        raise AssertionError("request/response kind changed across a round trip")
    # What parse_message validated, the accessors must be able to read.
    message.call_id  # noqa: B018
    message.cseq  # noqa: B018
    message.from_  # noqa: B018
    message.to  # noqa: B018
    message.top_via  # noqa: B018
    message.vias  # noqa: B018


def _write_dictionary() -> str:
    """Write DICTIONARY in libFuzzer's format to a temporary file and return its path."""
    fd, path = tempfile.mkstemp(prefix="sip-", suffix=".dict")
    with os.fdopen(fd, "w", encoding="ascii") as out:
        for i, token in enumerate(DICTIONARY):
            escaped = "".join(
                chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}"
                for b in token.encode("utf-8")
            )
            out.write(f'tok{i}="{escaped}"\n')
    return path


def main() -> None:
    import atheris

    with atheris.instrument_imports(include=["softswitch.sip"]):
        import softswitch.sip.headers
        import softswitch.sip.message
        import softswitch.sip.uri  # noqa: F401

    args = list(sys.argv)
    if not any(a.startswith("-dict=") for a in args[1:]):
        args.append(f"-dict={_write_dictionary()}")
    if not any(not a.startswith("-") for a in args[1:]):
        # libFuzzer writes new inputs into the first corpus directory: never the seed dir.
        args.append(tempfile.mkdtemp(prefix="sip-corpus-"))
        args.append(str(SEED_DIR))
    atheris.Setup(args, check)
    atheris.Fuzz()


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    main()
