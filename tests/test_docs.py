"""Every setting and every CLI command is documented (after sqlite-utils' test_docs)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer

from semcache.cli import app
from semcache.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = "\n".join(path.read_text() for path in sorted((ROOT / "docs").glob("*.md")))
README = (ROOT / "README.md").read_text()


@pytest.mark.parametrize("field", sorted(Settings.model_fields))
def test_setting_is_documented(field: str) -> None:
    assert re.search(rf"\bSEMCACHE_{field.upper()}\b", DOCS)


@pytest.mark.parametrize("command", sorted(typer.main.get_command(app).commands))
def test_command_is_documented(command: str) -> None:
    assert re.search(rf"\bsemcache {re.escape(command)}\b", DOCS + README)
