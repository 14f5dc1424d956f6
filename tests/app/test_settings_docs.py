"""The README's configuration table documents every setting, with the default the code uses."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import AliasChoices

from chatwizard.core.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()
ROWS = dict(re.findall(r"^\| `([A-Z0-9_]+)` \| ([^|]+) \|", README, re.M))


def env_name(name: str, field) -> str:
    if isinstance(field.validation_alias, AliasChoices):
        return field.validation_alias.choices[0]
    return f"CHATWIZARD_{name.upper()}"


def test_every_setting_is_documented_with_its_default():
    for name, field in Settings.model_fields.items():
        variable = env_name(name, field)
        assert variable in ROWS, f"{variable} is missing from the README configuration table"
        default = field.default
        if isinstance(default, bool):
            assert f"`{str(default).lower()}`" in ROWS[variable], variable
        elif isinstance(default, int | float | str) and "URL" not in variable:
            assert f"`{default}`" in ROWS[variable], f"{variable}: README says {ROWS[variable]}, code {default}"


def test_readme_documents_no_setting_that_does_not_exist():
    known = {env_name(n, f) for n, f in Settings.model_fields.items()}
    assert set(ROWS) - known == set()
