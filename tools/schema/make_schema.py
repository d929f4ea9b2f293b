"""Write the JSON Schemas of the dialplan and the settings into configs/schema/.

Editors that understand JSON Schema (for YAML: the YAML language server, e.g. with the
modeline ``# yaml-language-server: $schema=../schema/dialplan.schema.json``) then offer
completion and show each key's description. The schemas are generated from the pydantic models
(:class:`softswitch.routing.schema.Plan`, :class:`softswitch.config.Settings`), so they are
never edited by hand; the output is deterministic, and the tests fail when the files are out of
date. Run from the repository root::

    python tools/schema/make_schema.py          # write the files
    python tools/schema/make_schema.py --check  # exit 1 if they are out of date
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from softswitch.config import Settings
from softswitch.routing.schema import Plan

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "configs" / "schema"
DIALECT = "https://json-schema.org/draft/2020-12/schema"


def dialplan_schema() -> dict[str, Any]:
    return {"$schema": DIALECT, "title": "softswitch dialplan", **_without_title(Plan)}


def settings_schema() -> dict[str, Any]:
    return {"$schema": DIALECT, "title": "softswitch settings", **_without_title(Settings)}


def _without_title(model: Any) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema(mode="validation")
    schema.pop("title", None)
    return schema


SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "dialplan.schema.json": dialplan_schema,
    "settings.schema.json": settings_schema,
}


def render(schema: dict[str, Any]) -> str:
    """The file text of a schema: sorted nowhere (pydantic's order is the models'), 2-space
    indents, UTF-8, one trailing newline."""
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def expected_files() -> dict[Path, str]:
    """Each schema file and the text it must have."""
    return {OUT / name: render(make()) for name, make in SCHEMAS.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="only check the files are current")
    args = parser.parse_args(argv)
    stale = []
    for path, text in expected_files().items():
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == text:
            continue
        stale.append(path)
        if not args.check:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            print(f"wrote {path.relative_to(ROOT)}")
    if args.check and stale:
        for path in stale:
            print(f"{path.relative_to(ROOT)} is out of date", file=sys.stderr)
        print("run: python tools/schema/make_schema.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
