"""Number lookups in a dialplan of 10,000 rules: ``softswitch.routing.matcher.RuleIndex``.

The plan is generated from a fixed seed, so every run measures the same rules and numbers:

- 7,000 exact numbers: 2,000 four-digit extensions and 5,000 ten-digit national numbers;
- 2,990 Asterisk patterns: area codes (``_0312XXXXXX``, one to four digits after the 0, padded
  with ``X`` to ten digits), short ranges (``_81XX``, ``_723X``), digit classes (``_03NXXXXXX``,
  ``_12ZXX``, ``_NXXXXXX``), sets (``_0[5-9]0XXXXXXX``, ``_[2-4]XXX``), open tails (``_9.``,
  ``_0011.``, ``_0120!``);
- 10 regexes (``/^\\+81\\d{9,10}$/`` and the like), which every lookup tests;

in that order mixed together (definition order is shuffled so that it carries no hidden help).

Lookups are a fixed mix: a third exact hits, a third numbers drawn to match a random pattern, a
third random digit strings of 3 to 12 digits (mostly misses for the exact table, often caught
by broad patterns such as ``_9.``). Reported:

- build: compiling the 10,000 match strings (:func:`compile_match`) and building the index;
- lookups per second over the whole run (one loop, no per-call timer);
- p50 / p99 / max of single lookups, each timed with ``perf_counter_ns`` (which adds its own
  ~0.1 µs), separately for hits and misses;
- the baseline: :func:`precedence_order`, a linear scan testing every rule, on the first few
  hundred of the same numbers, whose answers are also checked against the index's; the ratio is
  baseline mean / index mean on those same numbers (the index's pass repeated 20 times), both
  measured in this run.

The issue's target is a routing decision under 50 µs at 10,000 rules; the line "target" says
whether the p99 of a lookup (only one part of a decision) stays under it.

Run from the repository root: ``.venv/bin/python -m tools.bench.routing [--quick]``.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from collections.abc import Callable, Sequence

from softswitch.routing.matcher import NumberMatch, RuleIndex, compile_match, precedence_order

TARGET_US = 50.0


def generate_rules(rng: random.Random) -> list[str]:
    """The 10,000 ``match:`` strings of the benchmark plan, deterministic for a seeded ``rng``."""
    exact: set[str] = set()
    while len(exact) < 2000:
        exact.add(str(rng.randrange(1000, 9000)))
    while len(exact) < 7000:
        exact.add("0" + "".join(rng.choices("0123456789", k=9)))
    patterns: set[str] = set()

    def add_until(count: int, make: Callable[[], str]) -> None:
        goal = len(patterns) + count
        for _ in range(count * 50):
            if len(patterns) >= goal:
                return
            patterns.add(make())
        raise RuntimeError(f"could not generate {count} distinct patterns")

    def digits(k: int) -> str:
        return "".join(rng.choices("0123456789", k=k))

    def area() -> str:
        code = str(rng.randrange(1, 10)) + digits(rng.randrange(0, 4))
        return "_0" + code + "X" * (9 - len(code))

    add_until(1500, area)
    add_until(500, lambda: "_" + str(rng.randrange(1, 10)) + digits(rng.randrange(1, 3)) + "XX")
    add_until(
        200,
        lambda: rng.choice(
            [
                "_0" + digits(2) + "N" + "X" * 6,
                "_" + digits(2) + "ZXX",
                "_N" + "X" * rng.randrange(3, 9),
                "_1" + digits(3) + "NXXXXXX",
            ]
        ),
    )

    def with_set() -> str:
        low = rng.randrange(0, 8)
        high = rng.randrange(low + 1, 10)
        rest = rng.randrange(2, 9)
        if rng.random() < 0.5:
            return f"_0[{low}-{high}]{digits(1)}" + "X" * rest
        return f"_[{low}-{high}]" + digits(rng.randrange(0, 2)) + "X" * rest

    add_until(200, with_set)
    add_until(400, lambda: "_" + rng.choice(["9", "00", "0011", "90", "8"]) + digits(2) + ".")
    add_until(190, lambda: "_" + rng.choice(["0120", "0800", "*", "#"]) + digits(2) + "!")
    regexes = [
        r"/^\+81\d{9,10}$/",
        r"/\+1[2-9]\d{9}/",
        r"/(?:00|\+)44\d{10}/",
        r"/0(?:70|80|90)\d{8}/",
        r"/\*\d{2,4}#?/",
        r"/1(?:0|1|9)\d/",
        r"/0[1-9]\d{8}/",
        r"/9{3,}/",
        r"/[2-8]\d{3}#/",
        r"/0120\d{6}/",
    ]
    rules = sorted(exact) + sorted(patterns) + regexes
    assert len(rules) == 10_000, len(rules)
    rng.shuffle(rules)
    return rules


def number_for(match: NumberMatch, rng: random.Random) -> str:
    """A number ``match`` accepts (exact and pattern matches only)."""
    if match.kind == "exact":
        return match.text
    body = "".join(rng.choice(chars) for chars in match.positions)
    if match.tail == ".":
        body += "".join(rng.choices("0123456789", k=rng.randrange(1, 8)))
    elif match.tail == "!":
        body += "".join(rng.choices("0123456789", k=rng.randrange(0, 8)))
    return body


def generate_numbers(matches: Sequence[NumberMatch], count: int, rng: random.Random) -> list[str]:
    """``count`` numbers to look up: a third exact hits, a third pattern hits, a third random."""
    exact = [m for m in matches if m.kind == "exact"]
    patterns = [m for m in matches if m.kind == "pattern"]
    numbers: list[str] = []
    for i in range(count):
        if i % 3 == 0:
            numbers.append(rng.choice(exact).text)
        elif i % 3 == 1:
            numbers.append(number_for(rng.choice(patterns), rng))
        else:
            numbers.append("".join(rng.choices("0123456789", k=rng.randrange(3, 13))))
    rng.shuffle(numbers)
    return numbers


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark and print its summary; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m tools.bench.routing", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer lookups (a few seconds)")
    parser.add_argument("--seed", type=int, default=20260401)
    parser.add_argument("--lookups", type=int, help="index lookups (default 300000, quick 30000)")
    parser.add_argument("--baseline-lookups", type=int, help="linear scans (1000, quick 200)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args(argv)
    lookups = args.lookups or (30_000 if args.quick else 300_000)
    baseline_lookups = args.baseline_lookups or (200 if args.quick else 1000)
    if lookups < 1 or baseline_lookups < 1:
        parser.error("lookup counts must be positive")

    rng = random.Random(args.seed)
    texts = generate_rules(rng)

    t0 = time.perf_counter()
    matches = [compile_match(t) for t in texts]
    t1 = time.perf_counter()
    entries = [(m, i) for i, m in enumerate(matches)]
    index = RuleIndex(entries)
    t2 = time.perf_counter()
    compile_s, build_s = t1 - t0, t2 - t1

    numbers = generate_numbers(matches, lookups, rng)
    lookup = index.lookup
    for number in numbers[: min(len(numbers), 5000)]:  # warm-up
        lookup(number)

    t0 = time.perf_counter()
    hit_count = 0
    for number in numbers:
        if lookup(number):
            hit_count += 1
    loop_s = time.perf_counter() - t0

    clock = time.perf_counter_ns
    hits_ns: list[int] = []
    misses_ns: list[int] = []
    for number in numbers:
        start = clock()
        found = lookup(number)
        elapsed = clock() - start
        (hits_ns if found else misses_ns).append(elapsed)
    timer_ns = min(-(clock() - clock()) for _ in range(1000))  # perf_counter_ns's own cost
    all_us = sorted(ns / 1000 for ns in hits_ns + misses_ns)

    subset = numbers[:baseline_lookups]
    t0 = time.perf_counter()
    expected = [precedence_order(entries, number) for number in subset]
    naive_s = time.perf_counter() - t0
    got = [lookup(number) for number in subset]
    repeats = 20
    t0 = time.perf_counter()
    for _ in range(repeats):
        for number in subset:
            lookup(number)
    subset_s = (time.perf_counter() - t0) / repeats
    mismatches = sum(1 for a, b in zip(expected, got, strict=True) if a != b)

    kinds = {k: sum(1 for m in matches if m.kind == k) for k in ("exact", "pattern", "regex")}
    mean_us = loop_s / lookups * 1e6
    naive_mean_us = naive_s / baseline_lookups * 1e6
    subset_mean_us = subset_s / baseline_lookups * 1e6
    p99 = percentile(all_us, 0.99)
    figures = {
        "python": platform.python_version(),
        "rules": kinds,
        "compile_s": compile_s,
        "build_s": build_s,
        "lookups": lookups,
        "lookups_with_a_match": hit_count,
        "lookups_per_s": lookups / loop_s,
        "mean_us": mean_us,
        "p50_us": percentile(all_us, 0.50),
        "p99_us": p99,
        "max_us": all_us[-1],
        "timer_overhead_us": timer_ns / 1000,
        "hits_p50_us": percentile(sorted(n / 1000 for n in hits_ns), 0.5) if hits_ns else None,
        "hits_p99_us": percentile(sorted(n / 1000 for n in hits_ns), 0.99) if hits_ns else None,
        "misses_p50_us": (
            percentile(sorted(n / 1000 for n in misses_ns), 0.5) if misses_ns else None
        ),
        "misses_p99_us": (
            percentile(sorted(n / 1000 for n in misses_ns), 0.99) if misses_ns else None
        ),
        "baseline_lookups": baseline_lookups,
        "baseline_mean_us": naive_mean_us,
        "index_mean_us_same_numbers": subset_mean_us,
        "ratio_baseline_over_index": naive_mean_us / subset_mean_us,
        "baseline_mismatches": mismatches,
    }

    def us(value: object) -> str:
        return "-" if value is None else f"{value:.2f} µs"

    print(f"routing lookups, Python {figures['python']}, seed {args.seed}")
    print(
        f"  rules            {sum(kinds.values())}: {kinds['exact']} exact, "
        f"{kinds['pattern']} patterns, {kinds['regex']} regexes"
    )
    print(f"  compile          {compile_s * 1000:.1f} ms (10,000 match strings)")
    print(f"  build index      {build_s * 1000:.1f} ms")
    print(
        f"  lookups          {lookups} ({hit_count} with a match): "
        f"{figures['lookups_per_s']:,.0f}/s, mean {mean_us:.2f} µs"
    )
    print(
        f"  one lookup       p50 {us(figures['p50_us'])}, p99 {us(p99)}, "
        f"max {us(figures['max_us'])} (timer adds ~{us(figures['timer_overhead_us'])})"
    )
    print(
        f"    with a match   p50 {us(figures['hits_p50_us'])}, p99 {us(figures['hits_p99_us'])} "
        f"({len(hits_ns)})"
    )
    print(
        f"    without        p50 {us(figures['misses_p50_us'])}, "
        f"p99 {us(figures['misses_p99_us'])} ({len(misses_ns)})"
    )
    print(
        f"  baseline         linear scan of all rules: mean {naive_mean_us:.1f} µs over "
        f"{baseline_lookups} lookups (index on the same numbers: {subset_mean_us:.2f} µs)"
    )
    print(f"  ratio            index is {figures['ratio_baseline_over_index']:,.0f}x faster")
    print(
        f"  agreement        {baseline_lookups - mismatches}/{baseline_lookups} identical answers"
    )
    verdict = "met" if p99 < TARGET_US else "MISSED"
    print(f"  target           p99 {p99:.2f} µs < {TARGET_US:.0f} µs: {verdict}")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(figures, out, indent=2)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
