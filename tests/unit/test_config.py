"""Settings files: exact error text for broken YAML, the demo config, and the loader's rules."""

from __future__ import annotations

import dataclasses
import hashlib
import ipaddress
from pathlib import Path

import pydantic
import pytest

from softswitch import yaml_loader
from softswitch.config import ANNOUNCEMENTS, Settings, User, check, load_settings
from softswitch.yaml_loader import (
    ConfigError,
    ConfigErrors,
    format_path,
    load_yaml,
    validate,
)

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "tests" / "data" / "configs"
BROKEN = DATA / "broken"
BROKEN_CONFIGS = sorted(BROKEN.glob("*.yaml"))
UNSET_VARIABLE = "SOFTSWITCH_TEST_UNSET_PASSWORD"

# The kinds of mistake the broken set must keep covering, one file each.
REQUIRED_KINDS = {
    "wrong_type",
    "unknown_key",
    "missing_password",
    "password_and_ha1",
    "duplicate_key",
    "duplicate_username",
    "bad_cidr",
    "bad_port",
    "tls_without_certificate",
    "min_greater_than_max",
    "yaml_syntax",
    "include_escape",
    "env_unset",
}


def expected_lines(config: Path) -> list[str]:
    return config.with_suffix(".expected").read_text(encoding="utf-8").splitlines()


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture(params=["libyaml", "pure"])
def parser_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with the libyaml parser and again with the pure-Python one."""
    if request.param == "pure":
        monkeypatch.setattr(yaml_loader, "_PARSERS", [yaml_loader._PureParser])
    elif yaml_loader.CParser is None:
        pytest.skip("libyaml (ruamel.yaml.clib) is not installed")
    return str(request.param)


# --------------------------------------------------------------------------------------------
# Broken configs: one mistake each, exact text


def test_broken_set_covers_the_required_mistakes() -> None:
    names = {p.stem for p in BROKEN_CONFIGS}
    assert names >= REQUIRED_KINDS
    assert all(p.with_suffix(".expected").is_file() for p in BROKEN_CONFIGS)


@pytest.mark.parametrize("config", BROKEN_CONFIGS, ids=lambda p: p.stem)
def test_broken_config_reports_exact_errors(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(UNSET_VARIABLE, raising=False)
    monkeypatch.chdir(BROKEN)  # file names print as given: relative to the config folder
    with pytest.raises(ConfigErrors) as caught:
        load_settings(config.name)
    assert str(caught.value).splitlines() == expected_lines(config)
    assert [str(e) for e in check(config.name)] == expected_lines(config)


def test_yaml_syntax_error_has_the_same_position_with_both_parsers(
    parser_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(BROKEN)
    errors = check("yaml_syntax.yaml")
    assert len(errors) == 1
    assert (errors[0].line, errors[0].col) == (4, 1)
    assert errors[0].message.startswith("YAML syntax error: ")


# Syntax-error wording differs between the two parsers, and the pure-Python parser places an
# empty value at the next token rather than just after the colon; all else is the same.
@pytest.mark.parametrize(
    "config",
    [p for p in BROKEN_CONFIGS if p.stem not in ("yaml_syntax", "empty_value")],
    ids=lambda p: p.stem,
)
def test_pure_parser_reports_the_same_errors(config: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(yaml_loader, "_PARSERS", [yaml_loader._PureParser])
    monkeypatch.delenv(UNSET_VARIABLE, raising=False)
    monkeypatch.chdir(BROKEN)
    assert [str(e) for e in check(config.name)] == expected_lines(config)


def test_several_mistakes_are_all_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    config = DATA / "several" / "several_mistakes.yaml"
    monkeypatch.chdir(config.parent)
    errors = check(config.name)
    assert [str(e) for e in errors] == expected_lines(config)
    assert len(errors) == 6
    assert [e.line for e in errors] == sorted(e.line for e in errors)


def test_error_names_the_file_as_given(tmp_path: Path) -> None:
    config = write(tmp_path / "conf" / "switch.yaml", "http:\n  port: many\n")
    absolute = check(config)
    assert [str(e) for e in absolute] == [
        f'{config}:2:9: http.port: expected an integer, got "many"'
    ]


# --------------------------------------------------------------------------------------------
# The demo config


def test_default_config_validates() -> None:
    settings = load_settings(REPO / "configs" / "default.yaml")
    assert check(REPO / "configs" / "default.yaml") == []
    listeners = {(lst.transport, lst.address, lst.port) for lst in settings.sip.listeners}
    assert listeners == {("udp", "127.0.0.1", 5060), ("tcp", "127.0.0.1", 5060)}
    assert (settings.http.address, settings.http.port) == ("127.0.0.1", 8080)
    assert settings.sip.domain == "softswitch.local"
    assert settings.registrar.binding_store == "var/softswitch.db"
    assert sorted(settings.users_by_name) == ["1001", "1002", "1003", "1004"]
    for name, user in settings.users_by_name.items():
        assert user.password == f"demo{name}"
        assert user.display_name
    # loopback only: every address bound and every network allowed is loopback
    import ipaddress

    assert all(ipaddress.ip_address(lst.address).is_loopback for lst in settings.sip.listeners)
    assert ipaddress.ip_address(settings.http.address).is_loopback
    for user in settings.users:
        assert user.allowed_networks
        assert all(net.network_address.is_loopback for net in user.allowed_networks)


def test_default_config_warns_about_demo_passwords() -> None:
    head = (REPO / "configs" / "default.yaml").read_text(encoding="utf-8").splitlines()[:8]
    assert any("loopback" in line and line.startswith("#") for line in head)


def test_empty_file_gives_the_defaults(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "empty.yaml", "# nothing set\n"))
    assert settings.model_dump() == Settings().model_dump()  # values; not where it was read
    assert settings.sip.listeners[0].transport == "udp"
    assert settings.registrar.min_expires == 60
    assert settings.security.trusted_networks == ()
    assert settings.calls.ring_timeout == 60


# --------------------------------------------------------------------------------------------
# Settings rules


def test_username_digits_and_leading_zeros_are_kept_exactly(tmp_path: Path) -> None:
    config = write(
        tmp_path / "s.yaml",
        "users:\n"
        "  - {username: 1001, password: 1234}\n"
        "  - {username: 0100, password: 0042}\n"
        "registrar: {min_expires: 0120}\n",
    )
    settings = load_settings(config)
    assert sorted(settings.users_by_name) == ["0100", "1001"]
    assert settings.users_by_name["0100"].password == "0042"
    assert settings.users_by_name["1001"].password == "1234"
    assert settings.registrar.min_expires == 120


def test_ha1_is_accepted_and_lowercased(tmp_path: Path) -> None:
    md5 = hashlib.md5(b"1001:softswitch.local:secret").hexdigest().upper()
    sha = hashlib.sha256(b"1002:softswitch.local:secret").hexdigest()
    config = write(
        tmp_path / "s.yaml",
        f"users:\n  - {{username: 1001, ha1: {md5}}}\n  - {{username: 1002, ha1: {sha}}}\n",
    )
    users = load_settings(config).users_by_name
    assert users["1001"].ha1 == md5.lower()
    assert users["1001"].password is None
    assert users["1002"].ha1 == sha


def test_tls_listener_resolves_files_against_the_config_folder(tmp_path: Path) -> None:
    write(tmp_path / "conf" / "tls" / "cert.pem", "certificate\n")
    write(tmp_path / "conf" / "tls" / "key.pem", "key\n")
    config = write(
        tmp_path / "conf" / "s.yaml",
        "sip:\n  listeners:\n"
        "    - {transport: tls, certificate: tls/cert.pem, key: tls/key.pem}\n"
        "    - {transport: udp}\n",
    )
    tls = load_settings(config).sip.listeners[0]
    assert tls.port == 5061
    assert tls.certificate == (tmp_path / "conf" / "tls" / "cert.pem").resolve()
    assert tls.key is not None and tls.key.is_file()


def test_certificate_on_udp_listener_is_an_error(tmp_path: Path) -> None:
    write(tmp_path / "c.pem", "x\n")
    config = write(
        tmp_path / "s.yaml", "sip:\n  listeners:\n    - {transport: udp, certificate: c.pem}\n"
    )
    assert [e.message for e in check(config)] == ['only used with transport "tls"']


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(pydantic.ValidationError):
        settings.calls.max_calls = 5  # type: ignore[misc]


def test_json_schema_carries_descriptions() -> None:
    schema = Settings.model_json_schema()
    registrar = schema["$defs"]["Registrar"]["properties"]
    assert "OPTIONS" in registrar["keepalive_interval"]["description"]
    assert schema["$defs"]["Listener"]["additionalProperties"] is False
    assert schema["$defs"]["User"]["properties"]["allowed_networks"]["items"]["type"] == "string"


def test_three_equal_usernames_give_two_errors(tmp_path: Path) -> None:
    config = write(
        tmp_path / "s.yaml",
        "users:\n"
        "  - {username: a, password: x}\n"
        "  - {username: a, password: x}\n"
        "  - {username: a, password: x}\n",
    )
    assert [(e.path, e.line) for e in check(config)] == [
        ("users[1].username", 3),
        ("users[2].username", 4),
    ]


def test_programmatic_settings_check_usernames_too() -> None:
    user = User(username="7", password="x")
    with pytest.raises(pydantic.ValidationError):
        Settings(users=(user, user))


def test_default_expires_blames_the_key_that_was_written(tmp_path: Path) -> None:
    config = write(tmp_path / "s.yaml", "registrar:\n  max_expires: 1800\n")
    [error] = check(config)
    assert (error.path, error.line) == ("registrar.max_expires", 2)
    assert "default_expires (3600, the default)" in error.message


def test_unknown_key_without_a_close_match_lists_the_keys(tmp_path: Path) -> None:
    config = write(tmp_path / "s.yaml", "http:\n  zzz: 1\n")
    assert [e.message for e in check(config)] == [
        'unknown key "zzz" (allowed: address, port, api_token, demo_crm)'
    ]


def test_env_provides_a_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTSWITCH_TEST_PASSWORD", "from-env")
    monkeypatch.setenv("SOFTSWITCH_TEST_PORT", "5070")
    config = write(
        tmp_path / "s.yaml",
        "http: {port: !env SOFTSWITCH_TEST_PORT}\n"
        "users:\n  - {username: 1, password: !env SOFTSWITCH_TEST_PASSWORD}\n",
    )
    settings = load_settings(config)
    assert settings.http.port == 5070
    assert settings.users[0].password == "from-env"


def test_include_inside_the_folder_is_used(tmp_path: Path) -> None:
    write(tmp_path / "users" / "agents.yaml", "- {username: 2001, password: a}\n")
    config = write(tmp_path / "s.yaml", "users: !include users/agents.yaml\n")
    assert list(load_settings(config).users_by_name) == ["2001"]


# --------------------------------------------------------------------------------------------
# The loader


def test_config_error_text() -> None:
    assert str(ConfigError("a.yaml", 3, 7, "users[2].password", "bad")) == (
        "a.yaml:3:7: users[2].password: bad"
    )
    assert str(ConfigError("a.yaml", 1, 1, "", "bad")) == "a.yaml:1:1: bad"
    with pytest.raises(dataclasses.FrozenInstanceError):
        ConfigError("a", 1, 1, "", "m").line = 2  # type: ignore[misc]
    errors = ConfigErrors([ConfigError("a", 1, 1, "", "x"), ConfigError("a", 2, 1, "p", "y")])
    assert str(errors) == "a:1:1: x\na:2:1: p: y"
    assert len(errors.errors) == 2


def test_format_path() -> None:
    assert format_path(("users", 2, "password")) == "users[2].password"
    assert format_path(("security", "auth_failures", "threshold")) == (
        "security.auth_failures.threshold"
    )
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == ""


def test_positions_of_keys_values_and_missing_keys(tmp_path: Path, parser_backend: str) -> None:
    path = write(
        tmp_path / "p.yaml",
        "a:\n  b: [10, {c: 1}]\n  d:   text\nlist:\n  - x\n  -   y\n",
    )
    doc = load_yaml(path)
    assert doc.data == {"a": {"b": [10, {"c": 1}], "d": "text"}, "list": ["x", "y"]}
    f = str(path)
    assert doc.position(("a", "d")) == (f, 3, 8)
    assert doc.position(("a", "d"), key=True) == (f, 3, 3)
    assert doc.position(("a", "b", 1, "c")) == (f, 2, 15)
    assert doc.position(("a", "b", 1)) == (f, 2, 11)
    assert doc.position(("list", 1)) == (f, 6, 7)
    # a missing key: the enclosing mapping
    assert doc.position(("a", "b", 1, "zz")) == (f, 2, 11)
    assert doc.position(("a", "missing")) == (f, 2, 3)
    assert doc.position(()) == (f, 1, 1)


def test_integers_must_be_plain_decimal(tmp_path: Path, parser_backend: str) -> None:
    doc = load_yaml(
        write(
            tmp_path / "n.yaml",
            "a: 0123\nb: 0x1F\nc: 42\nd: -7\ne: 1.5\nf: yes\ng: ~\nh: true\ni: 2024-05-01\n"
            "j: !!int '12'\nk: .inf\nl: '5'\n",
        )
    )
    assert doc.data == {
        "a": "0123",
        "b": "0x1F",
        "c": 42,
        "d": -7,
        "e": 1.5,
        "f": "yes",
        "g": None,
        "h": True,
        "i": "2024-05-01",
        "j": 12,
        "k": float("inf"),
        "l": "5",
    }
    assert type(doc.data["c"]) is int


def test_all_duplicate_keys_are_reported(tmp_path: Path, parser_backend: str) -> None:
    doc = load_yaml(write(tmp_path / "d.yaml", "a: 1\nb: {x: 1, x: 2}\na: 3\n"))
    assert [str(e) for e in doc.errors] == [
        f'{tmp_path / "d.yaml"}:2:11: b.x: duplicate key "x" (first defined on line 2)',
        f'{tmp_path / "d.yaml"}:3:1: a: duplicate key "a" (first defined on line 1)',
    ]
    assert doc.data == {"a": 1, "b": {"x": 1}}


def test_anchors_and_merge_keys(tmp_path: Path, parser_backend: str) -> None:
    path = write(
        tmp_path / "m.yaml",
        "base: &b {x: 1, y: 2}\nitem:\n  <<: *b\n  y: 3\nsame: *b\n",
    )
    doc = load_yaml(path)
    assert doc.errors == ()
    assert doc.data["item"] == {"x": 1, "y": 3}
    assert doc.data["same"] == {"x": 1, "y": 2}
    # a merged key points at where it was written
    assert doc.position(("item", "x")) == (str(path), 1, 14)
    assert doc.position(("item", "y")) == (str(path), 4, 6)


def test_alias_bomb_is_bounded(tmp_path: Path, parser_backend: str) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    with pytest.raises(ConfigErrors) as caught:
        load_yaml(write(tmp_path / "bomb.yaml", "\n".join(lines) + "\n"))
    assert "expands to more than" in str(caught.value)


def test_deep_nesting_is_bounded(tmp_path: Path, parser_backend: str) -> None:
    n = 50_000
    with pytest.raises(ConfigErrors) as caught:
        load_yaml(write(tmp_path / "deep.yaml", "a: " + "[" * n + "]" * n + "\n"))
    [error] = caught.value.errors
    assert error.message == f"nested deeper than {yaml_loader.MAX_DEPTH} levels"


def test_recursive_and_undefined_aliases(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path / "r.yaml", "a: &r [1, *r]\nb: *nope\n"))
    assert [e.message for e in doc.errors] == [
        'alias "*r" refers to the mapping or list containing it',
        'undefined alias "*nope"',
    ]
    assert [e.path for e in doc.errors] == ["a[1]", "b"]


def test_several_documents_are_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_yaml(write(tmp_path / "two.yaml", "a: 1\n---\nb: 2\n"))
    assert [(e.line, e.message) for e in caught.value.errors] == [
        (2, "expected a single YAML document, found more")
    ]


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigErrors) as caught:
        load_yaml(tmp_path / "missing.yaml")
    assert caught.value.errors[0].message.startswith("cannot read file")
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"a: 1\nb: \xff\n")
    with pytest.raises(ConfigErrors) as caught:
        load_yaml(bad)
    assert [(e.line, e.col, e.message) for e in caught.value.errors] == [
        (2, 4, "file is not valid UTF-8 text")
    ]


def test_environ_can_be_given(tmp_path: Path) -> None:
    doc = load_yaml(write(tmp_path / "e.yaml", "a: !env X\n"), environ={"X": "1"})
    assert doc.data == {"a": "1"}
    doc = load_yaml(write(tmp_path / "e.yaml", "a: !env X\n"), environ={})
    assert [str(e) for e in doc.errors] == [
        f'{tmp_path / "e.yaml"}:1:4: a: environment variable "X" is not set'
    ]


def test_include_errors_name_the_included_file(
    tmp_path: Path, parser_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path / "parts" / "http.yaml", "address: 127.0.0.1\nprot: 80\n")
    config = write(tmp_path / "main.yaml", "http: !include parts/http.yaml\n")
    assert check(config)[0].file == str(tmp_path / "parts" / "http.yaml")
    monkeypatch.chdir(tmp_path)
    assert [str(e) for e in check("main.yaml")] == [
        'parts/http.yaml:2:1: http.prot: unknown key "prot" (did you mean "port"?)'
    ]


def test_include_problems(tmp_path: Path) -> None:
    write(tmp_path / "outside.yaml", "a: 1\n")
    write(tmp_path / "conf" / "loop.yaml", "again: !include loop.yaml\n")
    (tmp_path / "conf" / "link.yaml").symlink_to(tmp_path / "outside.yaml")
    main = write(
        tmp_path / "conf" / "main.yaml",
        "a: !include ../outside.yaml\n"
        "b: !include link.yaml\n"
        "c: !include loop.yaml\n"
        "d: !include nothing-here.yaml\n"
        f"e: !include {tmp_path / 'outside.yaml'}\n",
    )
    doc = load_yaml(main)
    messages = [(e.path, e.message) for e in doc.errors]
    assert messages == [
        ("a", '!include "../outside.yaml" is outside the configuration folder'),
        ("b", '!include "link.yaml" is outside the configuration folder'),
        ("c.again", '!include "loop.yaml" includes itself (a cycle)'),
        ("d", '!include "nothing-here.yaml": no such file'),
        ("e", f'!include "{tmp_path / "outside.yaml"}" is outside the configuration folder'),
    ]
    assert doc.errors[2].file == str(tmp_path / "conf" / "loop.yaml")


def test_syntax_error_in_included_file_does_not_hide_others(tmp_path: Path) -> None:
    write(tmp_path / "bad.yaml", "a: [1,\n")
    config = write(tmp_path / "s.yaml", "users: !include bad.yaml\nhttp: {port: x}\n")
    errors = check(config)
    assert [(Path(e.file).name, e.line) for e in errors] == [("s.yaml", 2), ("bad.yaml", 2)]
    assert errors[1].message.startswith("YAML syntax error")


def test_unresolved_value_reached_through_an_alias_is_reported_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(UNSET_VARIABLE, raising=False)
    config = write(
        tmp_path / "s.yaml",
        f"users:\n  - {{username: 1, password: &p !env {UNSET_VARIABLE}}}\n"
        "  - {username: 2, password: *p}\n",
    )
    assert [(e.path, e.message) for e in check(config)] == [
        ("users[0].password", f'environment variable "{UNSET_VARIABLE}" is not set')
    ]


def test_validate_plain_data_without_positions() -> None:
    with pytest.raises(ConfigErrors) as caught:
        validate(Settings, {"http": {"port": "x"}}, "inline")
    assert [str(e) for e in caught.value.errors] == [
        'inline:1:1: http.port: expected an integer, got "x"'
    ]
    assert validate(Settings, None, "inline") == Settings()


def test_ten_thousand_users_load_and_keep_positions(tmp_path: Path) -> None:
    lines = ["users:"]
    for i in range(10_000):
        lines.append(f"  - username: u{i}\n    password: p{i}\n    allowed_networks: [10.0.0.0/8]")
    lines[-1] = lines[-1].replace("10.0.0.0/8", "10.0.0.0/88")
    config = write(tmp_path / "big.yaml", "\n".join(lines) + "\n")
    [error] = check(config)
    assert (error.line, error.col) == (30_001, 24)
    assert error.path == "users[9999].allowed_networks[0]"


def test_queue_prompts_must_exist_in_the_dialplans_prompts(tmp_path: Path) -> None:
    plan = REPO / "configs" / "dialplan" / "demo.yaml"
    config = write(
        tmp_path / "switch.yaml",
        f"""\
dialplan:
  file: {plan}
acd:
  announcements: nowhere
  queues:
    - name: general
      periodic_prompt: demo/queue-periodic
      on_full: {{action: hangup, prompt: demo/no-such-prompt}}
    - name: quiet
""",
    )
    errors = [str(e) for e in check(config)]
    prompts = plan.parent / ".." / "prompts"
    assert errors[0] == (
        f"{config}:8:41: acd.queues[0].on_full.prompt: no prompt "
        f'"demo/no-such-prompt" ({prompts / "demo/no-such-prompt.wav"})'
    )
    # no queue announces a position or offers a callback: the composed prompts are not needed
    assert len(errors) == 1
    composing = config.read_text().replace(
        "    - name: quiet", '    - name: quiet\n      callback_key: "5"'
    )
    config.write_text(composing)
    errors = [str(e) for e in check(config)]
    assert len(errors) == 1 + len(ANNOUNCEMENTS) and all(
        ":4:18: acd.announcements: no prompt" in e for e in errors[1:]
    )
    assert any('"nowhere/queue-callback"' in e for e in errors)
    config.write_text(
        composing.replace("announcements: nowhere", "announcements: demo").replace(
            "no-such-prompt", "queue-full"
        )
    )
    assert check(config) == []


# --------------------------------------------------------------------------------------------
# VPN, sign-in and SIP credentials settings

VPN_SETTINGS = """\
users:
  - username: "1001"
    password: secret-1001
    allowed_networks: [192.0.2.0/24]
  - username: "1002"
    password: secret-1002
acd:
  agents:
    - {id: alice, name: Alice, user: "1001", location: home}
    - {id: bob, name: Bob, user: "1002", location: home}
vpn:
  endpoint: vpn.example.com:51820
"""


def vpn_peers_file(path: Path, *entries: tuple[str, str, str]) -> Path:
    from softswitch.security.vpn import Peer, generate_key_pair, render_peers

    peers = [
        Peer(agent, user, ipaddress.ip_address(address), generate_key_pair().public, "2026-01-02")
        for agent, user, address in entries
    ]
    return write(path, render_peers(peers))


def test_vpn_defaults_and_the_switch_address_follows_the_network(tmp_path: Path) -> None:
    settings = load_settings(write(tmp_path / "s.yaml", "vpn: {endpoint: '203.0.113.5:51820'}\n"))
    vpn = settings.vpn
    assert vpn is not None
    assert (vpn.interface, str(vpn.network), vpn.address) == ("wg0", "10.66.0.0/24", "10.66.0.1")
    assert (vpn.listen_port, vpn.keepalive) == (51820, 25)
    assert (vpn.server_config, vpn.peers) == ("var/vpn/wg0.conf", "var/vpn/peers.json")
    other = write(tmp_path / "o.yaml", "vpn: {endpoint: 'a.example:1', network: 172.16.8.0/22}\n")
    assert load_settings(other).vpn.address == "172.16.8.1"  # type: ignore[union-attr]
    assert Settings().vpn is None


@pytest.mark.parametrize(
    ("vpn", "expected"),
    [
        ("{}", '1:6: vpn.endpoint: missing required key "endpoint"'),
        (
            "{endpoint: vpn.example.com}",
            '1:17: vpn.endpoint: expected host:port, e.g. "vpn.example.com:51820", '
            '"203.0.113.5:51820" or "[2001:db8::1]:51820", got "vpn.example.com"',
        ),
        (
            "{endpoint: 'a:1', address: 10.66.0.0}",
            "1:33: vpn.address: 10.66.0.0 is the network's own address (the first host is "
            "10.66.0.1)",
        ),
        (
            "{endpoint: 'a:1', address: 10.66.0.255}",
            "1:33: vpn.address: 10.66.0.255 is the network's broadcast address",
        ),
        (
            "{endpoint: 'a:1', address: 10.67.0.1}",
            "1:33: vpn.address: 10.67.0.1 is not inside network 10.66.0.0/24",
        ),
        (
            "{endpoint: 'a:1', network: 10.0.0.0/31}",
            "1:33: vpn.network: 10.0.0.0/31 is too small: at most /30",
        ),
        (
            "{endpoint: 'a:1', network: 10.0.0.1/24}",
            '1:33: vpn.network: "10.0.0.1/24" has host bits set (did you mean "10.0.0.0/24"?)',
        ),
        (
            "{endpoint: 'a:1', interface: wg0-with-a-long-name}",
            "1:35: vpn.interface: expected an interface name: 1 to 15 letters, digits and "
            '_ = + . -, got "wg0-with-a-long-name"',
        ),
        (
            "{endpoint: 'a:1', listen_port: 0}",
            "1:37: vpn.listen_port: must be at least 1, got 0",
        ),
        ("{endpoint: '[10.0.0.1]:51820'}", "1:17: vpn.endpoint: expected host:port"),
    ],
)
def test_vpn_mistakes_are_reported_at_their_key(tmp_path: Path, vpn: str, expected: str) -> None:
    config = write(tmp_path / "s.yaml", f"vpn: {vpn}\n")
    [error] = check(config)
    assert str(error).startswith(f"{config}:{expected}")


@pytest.mark.parametrize(
    "endpoint", ["vpn.example.com:51820", "203.0.113.5:1", "[2001:db8::1]:65535", "host:51820"]
)
def test_vpn_endpoints_accepted(tmp_path: Path, endpoint: str) -> None:
    config = write(tmp_path / "s.yaml", f"vpn: {{endpoint: '{endpoint}'}}\n")
    assert load_settings(config).vpn.endpoint == endpoint  # type: ignore[union-attr]


def test_signin_defaults_and_limits(tmp_path: Path) -> None:
    signin = Settings().security.signin
    assert (signin.totp, signin.lockout_failures, signin.lockout_time) == ("optional", 10, 900)
    assert (signin.idle_signout, signin.store, signin.audit_retention_days) == (
        1800,
        "var/security.db",
        365,
    )
    config = write(
        tmp_path / "s.yaml",
        "security:\n  signin:\n    totp: always\n    lockout_failures: 0\n    lockout_time: 0\n",
    )
    errors = [str(e) for e in check(config)]
    assert errors == [
        f'{config}:3:11: security.signin.totp: expected one of "required", "optional", "off", '
        'got "always"',
        f"{config}:4:23: security.signin.lockout_failures: must be at least 1, got 0",
    ]


def test_sip_credentials_any_or_session(tmp_path: Path) -> None:
    config = write(
        tmp_path / "s.yaml",
        "users:\n  - {username: a, password: p}\n  - {username: b, password: p, "
        "sip_credentials: session}\n  - {username: c, password: p, sip_credentials: none}\n",
    )
    [error] = check(config)
    assert str(error) == (
        f'{config}:4:49: users[2].sip_credentials: expected one of "any", "session", got "none"'
    )
    config.write_text(config.read_text().replace("sip_credentials: none", "sip_credentials: any"))
    users = load_settings(config).users_by_name
    assert [users[n].sip_credentials for n in "abc"] == ["any", "session", "any"]


def test_vpn_peers_become_the_users_allowed_networks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS)
    # no peers file: the settings as written
    plain = load_settings(config)
    assert [str(n) for n in plain.users_by_name["1001"].allowed_networks] == ["192.0.2.0/24"]
    assert plain.users_by_name["1002"].allowed_networks == ()
    vpn_peers_file(tmp_path / "var/vpn/peers.json", ("alice", "1001", "10.66.0.2"))
    settings = load_settings(config)
    assert [str(n) for n in settings.users_by_name["1001"].allowed_networks] == ["10.66.0.2/32"]
    assert [str(n) for n in settings.users[0].allowed_networks] == ["10.66.0.2/32"]
    assert settings.users_by_name["1002"].allowed_networks == ()  # bob has no peer
    assert settings.warnings == ()
    assert settings.source == config.resolve()
    assert check(config) == []
    # the CLI reads the settings as written
    untouched = load_settings(config, vpn_peers=False)
    assert [str(n) for n in untouched.users_by_name["1001"].allowed_networks] == ["192.0.2.0/24"]


def test_vpn_peers_file_of_two_agents_sharing_a_user(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS.replace('user: "1002"', 'user: "1001"'))
    vpn_peers_file(
        tmp_path / "peers.json", ("alice", "1001", "10.66.0.2"), ("bob", "1001", "10.66.0.3")
    )
    config.write_text(config.read_text() + "  peers: peers.json\n")
    networks = load_settings(config).users_by_name["1001"].allowed_networks
    assert sorted(str(n) for n in networks) == ["10.66.0.2/32", "10.66.0.3/32"]


def test_a_peer_of_an_agent_that_is_gone_is_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS)
    vpn_peers_file(
        tmp_path / "var/vpn/peers.json",
        ("carol", "1003", "10.66.0.4"),
        ("bob", "1002", "10.66.0.3"),
    )
    settings = load_settings(config)
    [warning] = settings.warnings
    assert warning == (
        'var/vpn/peers.json: the VPN peer of agent "carol" (10.66.0.4) names no agent of '
        f"{config}; remove it with: softswitch vpn revoke carol"
    )
    assert warning in caplog.text
    assert [str(n) for n in settings.users_by_name["1002"].allowed_networks] == ["10.66.0.3/32"]
    assert check(config) == []


def test_a_malformed_peers_file_is_an_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS)
    write(tmp_path / "var/vpn/peers.json", '{"peers": [\n  {"agent": "alice",}\n]}\n')
    [error] = check(config)
    assert str(error).startswith("var/vpn/peers.json:2:21: malformed VPN peers file: not JSON: ")
    write(tmp_path / "var/vpn/peers.json", '{"peers": [{"agent": "alice"}]}')
    [error] = check(config)
    assert str(error) == (
        "var/vpn/peers.json:1:1: peers[0].user: malformed VPN peers file: "
        'missing or not text: "user"'
    )
    with pytest.raises(ConfigErrors):
        load_settings(config)
    assert load_settings(config, vpn_peers=False).vpn is not None


def test_a_peer_outside_the_network_is_an_error_at_the_network(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS + "  network: 10.77.0.0/24\n")
    vpn_peers_file(tmp_path / "var/vpn/peers.json", ("alice", "1001", "10.66.0.2"))
    [error] = check(config)
    assert str(error) == (
        f'{config}:13:12: vpn.network: the VPN address 10.66.0.2 of agent "alice" '
        "(var/vpn/peers.json) is outside 10.77.0.0/24: revoke the agent and add it again"
    )


def test_peers_file_is_not_read_without_a_vpn_section(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = write(tmp_path / "s.yaml", VPN_SETTINGS.split("vpn:")[0])
    write(tmp_path / "var/vpn/peers.json", "not json")
    settings = load_settings(config)
    assert settings.vpn is None
    assert [str(n) for n in settings.users_by_name["1001"].allowed_networks] == ["192.0.2.0/24"]
