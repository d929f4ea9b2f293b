"""Load a dialplan file into a checked :class:`~softswitch.routing.schema.Plan`.

The file is read by :func:`softswitch.yaml_loader.load_yaml` (``!include`` of files inside the
plan's folder, ``!env NAME``, and ``!secret NAME`` from the file named by the plan's top-level
``secrets`` key) and validated into the models of :mod:`softswitch.routing.schema`. Every
mistake is reported as a :class:`~softswitch.yaml_loader.ConfigError` (``file:line:col:
path: message``), all of them together, exactly as for the settings file. The whole tree
validates or nothing is returned, so a reload can keep the old plan on any error.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from softswitch.routing.schema import Plan
from softswitch.yaml_loader import ConfigError, ConfigErrors, load_yaml, validate

__all__ = ["check_plan", "load_plan"]


def load_plan(path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None) -> Plan:
    """Load and check a dialplan file; raises :class:`ConfigErrors` listing every mistake.

    Errors and :attr:`Rule.where <softswitch.routing.schema.Rule.where>` name the file as
    given. ``environ`` (default ``os.environ``) resolves ``!env``.
    """
    source = Path(path).resolve()
    doc = load_yaml(path, environ=environ, secrets_key="secrets")
    plan = validate(Plan, doc, context={"doc": doc, "folder": source.parent})
    plan._source = source
    plan._folder = source.parent
    return plan


def check_plan(
    path: str | os.PathLike[str], *, environ: Mapping[str, str] | None = None
) -> list[ConfigError]:
    """Every mistake in a dialplan file, in file order (an empty list when it is valid)."""
    try:
        load_plan(path, environ=environ)
    except ConfigErrors as exc:
        return exc.errors
    return []
