"""Loading plan files: the example plan, positions for traces, prompts, !include, !env, !secret."""

from __future__ import annotations

import wave
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from softswitch import yaml_loader
from softswitch.routing.loader import check_plan, load_plan
from softswitch.routing.schema import (
    ACTION_KEYS,
    Answer,
    Bridge,
    Gather,
    Goto,
    Hangup,
    Lookup,
    Menu,
    Plan,
    Play,
    Queue,
    Record,
    Rule,
    SetVars,
    Transfer,
    Voicemail,
)
from softswitch.yaml_loader import ConfigErrors, load_yaml

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "configs" / "dialplan" / "example.yaml"
KEYS = {
    Answer: "answer",
    Play: "play",
    Menu: "menu",
    Gather: "gather",
    SetVars: "set",
    Lookup: "lookup",
    Bridge: "bridge",
    Queue: "queue",
    Voicemail: "voicemail",
    Record: "record",
    Goto: "goto",
    Transfer: "transfer",
    Hangup: "hangup",
}
ALL_ACTIONS = set(KEYS)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def write_wav(path: Path, hz: float = 440.0, seconds: float = 0.1) -> Path:
    """A tiny prompt: a tone, 8 kHz 16-bit mono (the format of the shipped prompts)."""
    rate = 8000
    t = np.arange(int(rate * seconds)) / rate
    samples = np.round(np.sin(2 * np.pi * hz * t) * 8000).astype("<i2")
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return path


def walk(actions: Sequence[Any]) -> Iterator[Any]:
    """Every action, including those nested in menus and failure branches."""
    for action in actions:
        yield action
        if isinstance(action, Menu):
            for option in action.options.values():
                yield from walk(option)
        if isinstance(action, Menu | Gather | Lookup):
            yield from walk(action.on_failure)


def all_rules(plan: Plan) -> Iterator[Rule]:
    for context in plan.contexts.values():
        yield from context.rules


def line_at(where: str) -> str:
    """The text of the plan from the position ``file:line:col`` on, to the end of that line."""
    file, line, col = where.rsplit(":", 2)
    text = (REPO / file).read_text(encoding="utf-8").splitlines()[int(line) - 1]
    return text[int(col) - 1 :]


# --------------------------------------------------------------------------------------------
# The example plan


def test_example_plan_is_valid_and_uses_every_action(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    assert check_plan("configs/dialplan/example.yaml") == []
    plan = load_plan("configs/dialplan/example.yaml")
    actions = [a for rule in all_rules(plan) for a in walk(rule.actions)]
    assert {type(a) for a in actions} == ALL_ACTIONS
    assert set(ACTION_KEYS) == set(KEYS.values())
    assert plan.source == EXAMPLE
    assert plan.folder == EXAMPLE.parent
    assert plan.zone.key == "Asia/Tokyo"
    # the conditions are all used too
    whens = [rule.when for rule in all_rules(plan) if rule.when is not None]
    used = {key for when in whens for key, value in when if value}
    assert used == {"hours", "outside_hours", "holiday", "not_holiday", "vars"}
    assert any(rule.caller for rule in all_rules(plan))
    assert any(rule.caller_name for rule in all_rules(plan))
    # every prompt it names is a file
    for action in actions:
        names = getattr(action, "prompt", None) or ()
        for name in (names,) if isinstance(names, str) else names:
            assert plan.prompt_path(name).is_file()
    # the secret is read from the secrets file next to it
    secrets = (EXAMPLE.parent / "secrets.yaml").read_text(encoding="utf-8")
    token = plan.services["crm"].headers["Authorization"]
    assert token.startswith("Bearer ") and token in secrets


def test_rules_and_actions_know_where_they_were_written(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    plan = load_plan("configs/dialplan/example.yaml")
    seen = 0
    for rule in all_rules(plan):
        assert rule.where.startswith("configs/dialplan/")
        assert line_at(rule.where).startswith("- match:") or line_at(rule.where).startswith(
            "match:"
        )
        for action in walk(rule.actions):
            key = KEYS[type(action)]
            assert line_at(action.where).startswith((key, "{" + key)), action.where
            seen += 1
    assert seen > 30
    features = plan.contexts["features"].rules[0]
    assert features.where == "configs/dialplan/parts/features.yaml:3:5"  # from the !include
    public = plan.contexts["public"].rules[0]
    assert public.actions[0].where == f"{public.where.rsplit(':', 2)[0]}:46:13"
    assert line_at(public.actions[0].where) == "answer"  # a bare action


# --------------------------------------------------------------------------------------------
# Prompts


PLAYS = """
contexts:
  public:
    rules:
      - match: "100"
        actions:
          - answer
          - play: {prompt: [welcome, menu.wav, ivr/closed]}
"""


def test_prompts_are_files_in_the_prompts_folder(tmp_path: Path) -> None:
    for name in ("welcome.wav", "menu.wav", "ivr/closed.wav"):
        write_wav(tmp_path / "prompts" / name)
    plan = load_plan(write(tmp_path / "plan.yaml", PLAYS))
    (play,) = [a for a in plan.contexts["public"].rules[0].actions if isinstance(a, Play)]
    assert play.prompt == ("welcome", "menu.wav", "ivr/closed")
    assert [plan.prompt_path(p) for p in play.prompt] == [
        tmp_path / "prompts" / "welcome.wav",
        tmp_path / "prompts" / "menu.wav",
        tmp_path / "prompts" / "ivr" / "closed.wav",
    ]


def test_a_missing_prompt_is_named_with_a_guess(tmp_path: Path) -> None:
    write_wav(tmp_path / "voice" / "welcome.wav")
    write_wav(tmp_path / "voice" / "menu.wav")
    plan = write(tmp_path / "plan.yaml", "prompts: voice\n" + PLAYS.replace("welcome", "welcom"))
    assert [str(e) for e in check_plan(plan)] == [
        f"{plan}:9:29: contexts.public.rules[0].actions[1].play.prompt[0]: "
        'prompt file "voice/welcom.wav" does not exist (did you mean "welcome"?)',
        f"{plan}:9:47: contexts.public.rules[0].actions[1].play.prompt[2]: "
        'prompt file "voice/ivr/closed.wav" does not exist',
    ]


def test_a_missing_prompts_folder_is_reported_once(tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", "prompts: voice\n" + PLAYS)
    assert [str(e) for e in check_plan(plan)] == [
        f'{plan}:1:10: prompts: folder "voice" does not exist'
    ]


# --------------------------------------------------------------------------------------------
# !include and !env


def test_include_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTSWITCH_TEST_CRM_URL", "http://127.0.0.1:8080/crm")
    write(
        tmp_path / "contexts" / "internal.yaml",
        "rules:\n  - match: _1XXX\n    actions:\n      - bridge: {to: '1001'}\n",
    )
    plan = load_plan(
        write(
            tmp_path / "plan.yaml",
            "services:\n  crm: {url: !env SOFTSWITCH_TEST_CRM_URL}\n"
            "contexts:\n  internal: !include contexts/internal.yaml\n",
        )
    )
    assert plan.services["crm"].url == "http://127.0.0.1:8080/crm"
    rule = plan.contexts["internal"].rules[0]
    assert rule.where == f"{tmp_path / 'contexts' / 'internal.yaml'}:2:5"
    assert rule.actions[0].where == f"{tmp_path / 'contexts' / 'internal.yaml'}:4:9"


def test_list_items_from_an_include_are_placed_in_that_file(tmp_path: Path) -> None:
    write(tmp_path / "common.yaml", "- match: '*97'\n  actions: [hangup]\n")
    path = write(
        tmp_path / "plan.yaml",
        "contexts:\n  a:\n    rules:\n      - !include common.yaml\n",
    )
    with pytest.raises(ConfigErrors):
        load_plan(path)  # a rule must be a mapping, not a list
    doc = load_yaml(path)
    rules = doc.data["contexts"]["a"]["rules"]
    assert doc.item_positions(rules) == ((str(tmp_path / "common.yaml"), 1, 1),)
    assert doc.item_positions(list(rules)) is None  # not a list of this document


# --------------------------------------------------------------------------------------------
# !secret

SECRET_PLAN = """secrets: private/secrets.yaml
services:
  crm:
    url: "http://127.0.0.1:8080/crm"
    headers: {Authorization: !secret crm_token, X-Pin: !secret pin}
contexts:
  public:
    rules:
      - match: "100"
        actions: [{transfer: {to: !secret operator}}]
"""


def test_secrets_come_from_the_secrets_file(tmp_path: Path) -> None:
    write(
        tmp_path / "private" / "secrets.yaml",
        "crm_token: Bearer abc123\npin: 0042\noperator: 1004\n",
    )
    plan = load_plan(write(tmp_path / "plan.yaml", SECRET_PLAN))
    assert plan.services["crm"].headers == {"Authorization": "Bearer abc123", "X-Pin": "0042"}
    assert plan.contexts["public"].rules[0].actions[0] == Transfer(to="1004")


def test_an_anchored_secret_is_resolved_everywhere(tmp_path: Path) -> None:
    write(tmp_path / "secrets.yaml", "number: '1004'\n")
    plan = load_plan(
        write(
            tmp_path / "plan.yaml",
            "secrets: secrets.yaml\ncontexts:\n  public:\n    rules:\n"
            "      - match: '1'\n        actions: [{transfer: {to: &op !secret number}}]\n"
            "      - match: '2'\n        actions: [{transfer: {to: *op}}]\n",
        )
    )
    assert [r.actions[0] for r in plan.contexts["public"].rules] == [Transfer(to="1004")] * 2


@pytest.mark.parametrize(
    ("secrets", "expected"),
    [
        (
            "crm_token: x\npin: '1'\noperators: '1004'\n",
            [
                "{plan}:10:35: contexts.public.rules[0].actions[0].transfer.to: unknown secret "
                '"operator" (did you mean "operators"?)'
            ],
        ),
        (
            "crm_token: x\npin: {a: 1}\noperator: '1004'\n",
            ["{secrets}:2:6: pin: expected a single value (text or a number), got a mapping"],
        ),
        (
            "crm_token: x\npin: !secret crm_token\noperator: '1004'\n",
            ["{secrets}:2:6: pin: !secret cannot be used in the secrets file"],
        ),
        (
            "- crm_token\n",
            ["{secrets}:1:1: expected a mapping of NAME: value, got a list"],
        ),
        (
            "crm_token: x\n  pin: [\n",
            ["{secrets}:2:6: YAML syntax error: mapping values are not allowed"],
        ),
        (None, ['{plan}:1:10: secrets: secrets file "private/secrets.yaml" does not exist']),
    ],
    ids=["unknown", "not_a_value", "nested", "not_a_mapping", "syntax", "missing"],
)
def test_secret_mistakes(tmp_path: Path, secrets: str | None, expected: list[str]) -> None:
    plan = write(tmp_path / "plan.yaml", SECRET_PLAN)
    secrets_file = tmp_path / "private" / "secrets.yaml"
    if secrets is not None:
        write(secrets_file, secrets)
    names = {"plan": str(plan), "secrets": str(secrets_file)}
    found = [str(e) for e in check_plan(plan)]
    assert len(found) == len(expected)
    for line, wanted in zip(found, expected, strict=True):
        assert line.startswith(wanted.format(**names))  # (the YAML parsers word syntax errors
        # differently after this)
    assert not any("Bearer" in line or "1004" in line for line in found)


def test_secret_without_a_secrets_file(tmp_path: Path) -> None:
    plan = write(tmp_path / "plan.yaml", SECRET_PLAN.split("\n", 1)[1])
    found = [str(e) for e in check_plan(plan)]
    message = '!secret needs a secrets file ("secrets: FILE")'
    assert found == [
        f"{plan}:4:30: services.crm.headers.Authorization: {message}",
        f"{plan}:4:56: services.crm.headers.X-Pin: {message}",
        f"{plan}:9:35: contexts.public.rules[0].actions[0].transfer.to: {message}",
    ]


def test_secrets_given_to_the_yaml_loader(tmp_path: Path) -> None:
    path = write(tmp_path / "s.yaml", "a: !secret one\nb: [!secret two]\n")
    assert load_yaml(path, secrets={"one": "1", "two": 2}).data == {"a": "1", "b": [2]}
    write(tmp_path / "vault.yaml", "one: uno\ntwo: dos\n")
    assert load_yaml(path, secrets=tmp_path / "vault.yaml").data == {"a": "uno", "b": ["dos"]}
    doc = load_yaml(path, secrets={"one": "1"})
    assert [str(e) for e in doc.errors] == [f'{path}:2:5: b[0]: unknown secret "two"']
    # without a source of secrets, !secret is an unknown tag (as in the settings file)
    assert [str(e) for e in load_yaml(path).errors] == [
        f'{path}:1:4: a: unknown tag "!secret"',
        f'{path}:2:5: b[0]: unknown tag "!secret"',
    ]


def test_the_pure_parser_gives_the_same_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    fast = load_plan("configs/dialplan/example.yaml")
    monkeypatch.setattr(yaml_loader, "_PARSERS", [yaml_loader._PureParser])
    pure = load_plan("configs/dialplan/example.yaml")
    assert pure == fast
    assert [r.where for r in all_rules(pure)] == [r.where for r in all_rules(fast)]
