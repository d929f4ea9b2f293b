"""The published JSON Schemas in configs/schema/ are what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tools.schema import make_schema


@pytest.mark.parametrize("name", sorted(make_schema.SCHEMAS))
def test_published_schema_is_current(name: str) -> None:
    path = make_schema.OUT / name
    assert path.is_file(), f"{name} is missing: run python tools/schema/make_schema.py"
    current = path.read_text(encoding="utf-8")
    assert current == make_schema.render(
        make_schema.SCHEMAS[name]()
    ), f"configs/schema/{name} is out of date: run python tools/schema/make_schema.py"


def test_generation_is_deterministic() -> None:
    assert make_schema.expected_files() == make_schema.expected_files()


def test_check_mode_reports_a_stale_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(make_schema, "OUT", tmp_path)
    monkeypatch.setattr(make_schema, "ROOT", tmp_path)
    assert make_schema.main(["--check"]) == 1  # nothing written yet
    assert make_schema.main([]) == 0
    assert make_schema.main(["--check"]) == 0
    written = json.loads((tmp_path / "dialplan.schema.json").read_text(encoding="utf-8"))
    assert written["$schema"] == make_schema.DIALECT
    assert "contexts" in written["required"]
    settings = json.loads((tmp_path / "settings.schema.json").read_text(encoding="utf-8"))
    assert "sip" in settings["properties"]
