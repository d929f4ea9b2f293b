"""Broken dialplans: one mistake per file, each with the exact error text it must produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from softswitch import yaml_loader
from softswitch.routing.loader import check_plan, load_plan
from softswitch.yaml_loader import ConfigErrors

REPO = Path(__file__).resolve().parents[3]
DATA = REPO / "tests" / "data" / "dialplans"
BROKEN = DATA / "broken"
BROKEN_PLANS = sorted(BROKEN.glob("*.yaml"))
UNSET_VARIABLE = "SOFTSWITCH_TEST_UNSET_CRM_URL"

# The kinds of mistake the set must keep covering, one file each.
REQUIRED_KINDS = {
    "wrong_type",
    "bad_seconds",
    "unknown_action",
    "unknown_key",
    "missing_prompt",
    "goto_unknown_context",
    "include_unknown_context",
    "include_cycle",
    "goto_loop",
    "duplicate_key",
    "duplicate_rule",
    "bad_pattern",
    "bad_regex",
    "bad_time_window",
    "empty_time_window",
    "unknown_day",
    "unknown_timezone",
    "bad_date",
    "min_greater_than_max",
    "menu_without_options",
    "bad_dtmf_option",
    "unknown_service",
    "unknown_hours",
    "unknown_calendar",
    "env_unset",
    "unknown_secret",
    "include_escape",
}


def shown(path: Path) -> str:
    """A plan's name as the tests pass it: relative to the repository root."""
    return path.relative_to(REPO).as_posix()


def expected_lines(plan: Path) -> list[str]:
    return plan.with_suffix(".expected").read_text(encoding="utf-8").splitlines()


@pytest.fixture(autouse=True)
def _at_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)  # errors name the files as given: relative to the repository
    monkeypatch.delenv(UNSET_VARIABLE, raising=False)


def test_the_set_covers_the_required_mistakes() -> None:
    names = {p.stem for p in BROKEN_PLANS}
    assert names >= REQUIRED_KINDS
    assert len(BROKEN_PLANS) >= 18
    assert all(p.with_suffix(".expected").is_file() for p in BROKEN_PLANS)


@pytest.mark.parametrize("plan", BROKEN_PLANS, ids=lambda p: p.stem)
def test_broken_plan_reports_the_exact_error(plan: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_plan(shown(plan))
    lines = str(caught.value).splitlines()
    assert lines == expected_lines(plan)
    assert len(lines) == 1  # one mistake, one error
    assert lines[0].startswith(f"{shown(plan)}:")
    assert [str(e) for e in check_plan(shown(plan))] == lines


@pytest.mark.parametrize("plan", BROKEN_PLANS, ids=lambda p: p.stem)
def test_pure_parser_reports_the_same_errors(plan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_loader, "_PARSERS", [yaml_loader._PureParser])
    assert [str(e) for e in check_plan(shown(plan))] == expected_lines(plan)


def test_several_mistakes_are_all_reported_in_file_order() -> None:
    plan = DATA / "several" / "several_mistakes.yaml"
    errors = check_plan(shown(plan))
    assert [str(e) for e in errors] == expected_lines(plan)
    # model errors, loader errors (!env, duplicate key), a cross-check (an include cycle
    # between a valid context and one with a bad rule) and an error inside an included file
    assert len(errors) == 9
    main = [e for e in errors if e.file == shown(plan)]
    assert [e.line for e in main] == sorted(e.line for e in main)
    assert errors[-1].file == shown(DATA / "several" / "parts" / "features.yaml")
    assert any(e.message.startswith("include cycle:") for e in errors)


def test_absolute_file_names_are_kept(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "contexts:\n  public:\n    rules:\n      - match: '100'\n"
        "        actions: [{bridge: {to: '1002', timeout: 0}}]\n",
        encoding="utf-8",
    )
    assert [str(e) for e in check_plan(plan)] == [
        f"{plan}:5:50: contexts.public.rules[0].actions[0].bridge.timeout: "
        "expected seconds (integer > 0), got 0"
    ]
