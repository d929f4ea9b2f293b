"""The client's configuration file and remembered preferences."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent_client.config import ConfigError, default_path, load_config
from agent_client.prefs import Prefs, load_prefs, save_prefs

EXAMPLE = Path(__file__).resolve().parents[2] / "configs" / "agent-client.example.toml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent-client.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_example_file_loads() -> None:
    config = load_config(EXAMPLE)
    assert config.switch.address == "10.66.0.1" and config.switch.api_port == 8080
    assert config.switch.vpn_required and config.switch.echo_test == "9196"
    assert config.switch.base_url == "http://10.66.0.1:8080"
    assert config.agent.id == "alice" and config.path == EXAMPLE


def test_defaults_and_every_key(tmp_path: Path) -> None:
    minimal = load_config(write(tmp_path, '[switch]\naddress = "10.66.0.1"\n'))
    assert (minimal.switch.api_port, minimal.switch.api_scheme) == (8080, "http")
    assert minimal.switch.vpn_required and minimal.agent.id is None
    assert minimal.agent.idle_signout is None and minimal.audio.input is None
    assert minimal.folder == tmp_path
    full = load_config(
        write(
            tmp_path,
            '[switch]\naddress = "fd00::1"\napi_port = 8443\napi_scheme = "https"\n'
            'vpn_required = false\necho_test = "*43"\n'
            '[agent]\nid = "bob"\nidle_signout = 300\n'
            '[audio]\ninput = "Headset Microphone"\noutput = "Headset Earphone"\n',
        )
    )
    assert full.switch.base_url == "https://[fd00::1]:8443"
    assert not full.switch.vpn_required and full.switch.echo_test == "*43"
    assert (full.agent.id, full.agent.idle_signout) == ("bob", 300.0)
    assert (full.audio.input, full.audio.output) == ("Headset Microphone", "Headset Earphone")


@pytest.mark.parametrize(
    ("text", "fault"),
    [
        ("", "the [switch] table is missing"),
        ("[switch]\napi_port = 8080\n", "[switch] address is required"),
        ('[switch]\naddress = "10.66.0.1/24"\n', "is not an IP address or host name"),
        ('[switch]\naddress = "10.66.0.1"\napi_port = 0\n', "api_port must be a port number"),
        ('[switch]\naddress = "10.66.0.1"\napi_port = "80"\n', "api_port must be a port number"),
        ('[switch]\naddress = "10.66.0.1"\napi_scheme = "ftp"\n', "api_scheme must be"),
        ('[switch]\naddress = "10.66.0.1"\nvpn_required = "yes"\n', "vpn_required must be"),
        ('[switch]\naddress = "10.66.0.1"\nadress = "x"\n', "[switch] unknown key 'adress'"),
        ('[switch]\naddress = "10.66.0.1"\necho_test = "echo"\n', "echo_test must be a number"),
        ('[switch]\naddress = "10.66.0.1"\n[agent]\nid = 7\n', "[agent] id must be a text"),
        ('[switch]\naddress = "10.66.0.1"\n[agent]\nidle_signout = -1\n', "idle_signout"),
        ('[switch]\naddress = "10.66.0.1"\n[audio]\ninput = ""\n', "[audio] input must be"),
        ('[switch]\naddress = "10.66.0.1"\n[sip]\npassword = "x"\n', "unknown key 'sip'"),
        ('switch = "10.66.0.1"\n', "switch must be a table"),
        ("[switch\n", "not valid TOML"),
    ],
)
def test_a_bad_file_names_the_file_and_the_fault(tmp_path: Path, text: str, fault: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value).startswith(f"{path}: ")
    assert fault in str(caught.value)


def test_a_missing_file_says_what_to_write(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no such file; create it with at least \[switch\]"):
        load_config(tmp_path / "nothing.toml")


def test_the_default_location_follows_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    assert default_path() == tmp_path / "softswitch-agent" / "agent-client.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    expected = tmp_path / "home" / ".config" / "softswitch-agent" / "agent-client.toml"
    assert default_path() == expected


def test_prefs_are_written_atomically_and_hold_device_names_only(tmp_path: Path) -> None:
    folder = tmp_path / "conf"
    assert load_prefs(folder) == Prefs()
    save_prefs(folder, Prefs("Headset Microphone", None))
    assert load_prefs(folder) == Prefs("Headset Microphone", None)
    assert json.loads((folder / "prefs.json").read_text()) == {
        "input": "Headset Microphone",
        "output": None,
    }
    save_prefs(folder, Prefs("A", "B"))
    assert load_prefs(folder) == Prefs("A", "B")
    assert sorted(p.name for p in folder.iterdir()) == ["prefs.json"]  # no temporary left
    (folder / "prefs.json").write_text("{not json")
    assert load_prefs(folder) == Prefs()
    (folder / "prefs.json").write_text('{"input": 5, "output": "B"}')
    assert load_prefs(folder) == Prefs(None, "B")
