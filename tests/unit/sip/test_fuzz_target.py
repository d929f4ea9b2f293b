"""The parser fuzz target (tools/fuzz/fuzz_parser.py) over its seeds and seeded random mutations.

A short, deterministic stand-in for the coverage-guided run: whatever the bytes, the only
exception allowed out of ``parse_message`` is ``MalformedMessage``, and what parses round-trips.
"""

from __future__ import annotations

import importlib.util
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[3]
TARGET = REPO / "tools" / "fuzz" / "fuzz_parser.py"
SEEDS = sorted((REPO / "tests" / "data" / "rfc4475").glob("*.dat"))

MUTATIONS = 5000
TIME_BUDGET = 4.0  # seconds; the loop stops early rather than slow the suite down


def load_target() -> ModuleType:
    spec = importlib.util.spec_from_file_location("fuzz_parser", TARGET)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def target() -> ModuleType:
    return load_target()


@pytest.fixture(scope="module")
def check(target: ModuleType) -> Callable[[bytes], None]:
    fn: Callable[[bytes], None] = target.check
    return fn


def test_seed_corpus_is_the_rfc4475_archive() -> None:
    assert len(SEEDS) == 49


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.stem)
def test_target_accepts_every_seed(check: Callable[[bytes], None], seed: Path) -> None:
    check(seed.read_bytes())


def test_target_reports_a_broken_round_trip(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target is not vacuous: a serializer that drops a header is caught."""
    from softswitch.sip import message

    real = message.Message._serialize

    def lossy(self: message.Message, start_line: str) -> bytes:
        return real(self, start_line).replace(b"\r\nTo: ", b"\r\nX-Was-To: ", 1)

    monkeypatch.setattr(message.Message, "_serialize", lossy)
    with pytest.raises(AssertionError):
        target.check((REPO / "tests" / "data" / "rfc4475" / "wsinv.dat").read_bytes())


def test_target_lets_unexpected_exceptions_escape(
    target: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from softswitch.sip import headers

    def broken(text: str) -> object:
        raise ValueError("boom")

    monkeypatch.setattr(headers.CSeq, "parse", classmethod(lambda cls, text: broken(text)))
    with pytest.raises(ValueError):
        target.check((REPO / "tests" / "data" / "rfc4475" / "zeromf.dat").read_bytes())


_NUMBER_RE = re.compile(rb"(?<=[: ])[0-9]+(?=[\r\n ;>])")  # lengths, CSeq, ports, hops
AWKWARD_NUMBERS = [
    b"0",
    b"-1",
    b"4294967296",
    b"9" * 40,
    "\u00b2".encode(),  # superscript two: str.isdigit() is true, int() fails
    "\u0663".encode(),  # Arabic-Indic three: int() accepts it
    b"",
]


def mutate(rng: random.Random, data: bytes, seeds: list[bytes], tokens: list[bytes]) -> bytes:
    """One to four libFuzzer-like edits (flip, insert, erase, copy, splice, token, line dup),
    plus two SIP-aware ones: an awkward number in place of one, an emptied header value."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(9)
        pos = rng.randint(0, len(buf))
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1:
            buf[pos:pos] = bytes([rng.randrange(256)])
        elif op == 2 and buf:
            del buf[pos : pos + rng.randint(1, 16)]
        elif op == 3 and buf:
            start = rng.randrange(len(buf))
            buf[pos:pos] = buf[start : start + rng.randint(1, 32)]
        elif op == 4:
            other = rng.choice(seeds)
            cut = rng.randint(0, len(other))
            buf = buf[:pos] + bytearray(other[cut:])
        elif op == 5:
            buf[pos:pos] = rng.choice(tokens)
        elif op == 6:
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines))
                lines.insert(i, lines[rng.randrange(1, len(lines))])
                buf = bytearray(b"\r\n".join(lines))
        elif op == 7:
            # Replace one number (a length, sequence, port or hop count) by an awkward one.
            head_end = buf.find(b"\r\n\r\n")
            numbers = list(_NUMBER_RE.finditer(buf, 0, head_end if head_end >= 0 else len(buf)))
            if numbers:
                m = rng.choice(numbers)
                buf[m.start() : m.end()] = rng.choice(AWKWARD_NUMBERS)
        else:
            # Empty one header value, keeping the name and colon.
            lines = bytes(buf).split(b"\r\n")
            if len(lines) > 2:
                i = rng.randrange(1, len(lines))
                lines[i] = lines[i].partition(b":")[0] + b":"
                buf = bytearray(b"\r\n".join(lines))
    return bytes(buf)


def test_target_survives_random_mutations(target: ModuleType) -> None:
    rng = random.Random(4475)
    seeds = [p.read_bytes() for p in SEEDS]
    tokens = [t.encode("utf-8") for t in target.DICTIONARY]
    started = time.monotonic()
    ran = 0
    for _ in range(MUTATIONS):
        data = mutate(rng, rng.choice(seeds), seeds, tokens)
        try:
            target.check(data)
        except Exception as exc:  # report the input that broke the property
            raise AssertionError(f"fuzz target failed on {data!r}") from exc
        ran += 1
        if time.monotonic() - started > TIME_BUDGET:
            break
    assert ran >= 500, f"only {ran} mutations within {TIME_BUDGET} s"
