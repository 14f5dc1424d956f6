"""docs/api.md is what `chatwizard apidocs` generates from the running code."""

from pathlib import Path

from chatwizard.apidocs import render
from chatwizard.main import create_app

API_MD = Path(__file__).parents[2] / "docs" / "api.md"


def test_committed_api_reference_is_current():
    assert API_MD.read_text() == render(create_app().openapi()), "run `chatwizard apidocs` and commit"


def test_every_route_is_in_the_reference():
    text = API_MD.read_text()
    for route in create_app().routes:
        if getattr(route, "include_in_schema", False):
            for method in route.methods - {"HEAD"}:
                assert f"`{method} {route.path}`" in text
