"""The OpenAPI contract: every operation says what it returns, which errors it can answer (as problem
details), its headers and whether it needs a key; and every source of errors answers in that one shape."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx
import jsonschema
import pytest

from chatwizard import policy
from chatwizard.core.settings import Settings
from chatwizard.main import create_app
from tests.conftest import AppServer

OPENAPI = create_app().openapi()
OPERATIONS = [(method.upper(), path, op) for path, methods in OPENAPI["paths"].items()
              for method, op in methods.items()]
IDS = [f"{m} {p}" for m, p, _ in OPERATIONS]
PROBLEM_REF = {"$ref": "#/components/schemas/Problem"}


def error_codes(op: dict[str, Any]) -> set[int]:
    return {int(c) for c in op["responses"] if int(c) >= 400}


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_operation_documents_its_success_body(method: str, path: str, op: dict[str, Any]):
    successes = {int(c): r for c, r in op["responses"].items() if 200 <= int(c) < 300}
    assert successes, "no 2xx response"
    for code, response in successes.items():
        if code == 204:
            assert "content" not in response
            continue
        schemas = [c.get("schema") for c in response.get("content", {}).values()]
        assert schemas and all(s and s.keys() & {"$ref", "type", "oneOf"} for s in schemas), f"{code}: no schema"


@pytest.mark.parametrize(("method", "path", "op"), OPERATIONS, ids=IDS)
def test_every_operation_documents_its_errors_headers_and_security(method: str, path: str, op: dict[str, Any]):
    access = policy.ROUTE_POLICY[(method, path)]
    expected = set()
    if access != "public":
        assert op["security"] == [{"APIKey": []}]
        expected |= {401, 403}
    else:
        assert "security" not in op
    if (method, path) not in policy.UNTHROTTLED:
        expected |= {429, 503}
        assert "Retry-After" in op["responses"]["429"]["headers"]
    if "requestBody" in op:
        expected |= {413, 422}
    if op.get("parameters"):
        expected.add(422)
    assert expected <= error_codes(op)
    for code, response in op["responses"].items():
        assert "X-Request-ID" in response["headers"], code
        if int(code) >= 400 and path != "/readyz":
            assert response["content"] == {"application/problem+json": {
                "schema": PROBLEM_REF, "example": response["content"]["application/problem+json"]["example"]}}
            jsonschema.validate(response["content"]["application/problem+json"]["example"], problem_schema())


def test_routes_answering_404_document_it():
    """Every route with an id in its path looks something up that may not exist (or not be yours)."""
    for method, path, op in OPERATIONS:
        if "{" in path:
            assert 404 in error_codes(op), f"{method} {path}"


async def test_the_docs_page_can_authorize_with_an_api_key(in_process: httpx.AsyncClient):
    """Swagger UI shows Authorize for a declared scheme and sends `Authorization: Bearer <key>` to the
    operations that require it."""
    page = await in_process.get("/docs")
    assert page.status_code == 200 and "SwaggerUIBundle" in page.text and "'/openapi.json'" in page.text
    assert OPENAPI["components"]["securitySchemes"] == {"APIKey": {
        "type": "http", "scheme": "bearer", "bearerFormat": "cwk_ + 36 characters",
        "description": OPENAPI["components"]["securitySchemes"]["APIKey"]["description"]}}
    secured = {(m, p) for m, p, op in OPERATIONS if "security" in op}
    assert secured == {k for k, access in policy.ROUTE_POLICY.items() if access != "public" and k[0] != "WEBSOCKET"}


def test_enums_and_examples_are_declared():
    schemas = OPENAPI["components"]["schemas"]
    assert schemas["User"]["properties"]["tier"]["enum"] == ["free", "pro", "admin", "service"]
    assert set(schemas["KeyInfo"]["properties"]["scopes"]["items"]["enum"]) >= {"chat", "admin"}
    assert {"exact", "semantic"} <= {v for s in schemas["ChatAnswer"]["properties"]["cache"]["anyOf"]
                                     for v in s.get("enum", [])}
    x_cache = OPENAPI["paths"]["/v1/chat"]["post"]["responses"]["200"]["headers"]["X-Cache"]
    assert x_cache["schema"]["enum"] == ["exact", "semantic", "miss"]
    assert schemas["Video"]["examples"] and schemas["Problem"]["properties"]["detail"]["examples"]


def problem_schema() -> dict[str, Any]:
    return {**PROBLEM_REF, "components": OPENAPI["components"]}


def assert_problem(response: httpx.Response, status: int, detail_has: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    jsonschema.validate(body, problem_schema())
    assert body["status"] == status and body["type"] == "about:blank" and detail_has in body["detail"]
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["instance"] == f"urn:chatwizard:request:{body['request_id']}"
    return body


async def test_errors_from_every_source_share_the_problem_shape(app_server: AppServer, make_user):
    user = await make_user("free")
    async with app_server.client() as anonymous:
        assert_problem(await anonymous.get("/v1/me"), 401, "missing API key")
    async with app_server.client(user.key) as client:
        assert_problem(await client.get("/v1/admin/users"), 403, "role may not call")
        assert_problem(await client.get("/v1/videos/NoSuchVideo1"), 404, "no such video")  # a route's own
        assert_problem(await client.get("/v1/nothing-here"), 404, "Not Found")  # routing's
        assert_problem(await client.put("/v1/me"), 405, "Method Not Allowed")
        invalid = assert_problem(await client.post("/v1/chat", json={"question": ""}), 422, "invalid")
        assert invalid["errors"][0]["loc"] == ["body", "question"]
        too_large = await client.post("/v1/chat", json={"question": "x" * 70_000})
        assert_problem(too_large, 413, "too large")  # from the middleware, below the app
        for _ in range(100):
            await client.get("/v1/me")
        limited = assert_problem(await client.get("/v1/me"), 429, "rate limit exceeded")
    assert 0 < limited["retry_after"] <= 3600


@pytest.fixture
async def in_process(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    """The app in process (no lifespan), with public routes that fail as a broken catalogue and a lost
    database would."""
    app = create_app(Settings(environment="test"))

    async def explode() -> None:
        raise RuntimeError("the catalogue index is corrupt")

    async def lose_database() -> None:
        raise asyncpg.PostgresConnectionError("connection refused")

    routes = {("GET", "/v1/explode"): explode, ("GET", "/v1/lost"): lose_database}
    for (method, path), endpoint in routes.items():
        app.add_api_route(path, endpoint, methods=[method])
        monkeypatch.setitem(policy.ROUTE_POLICY, (method, path), "public")
    monkeypatch.setattr(policy, "UNTHROTTLED", {*policy.UNTHROTTLED, *routes})
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://app") as client:
        yield client


async def test_server_errors_are_problems_without_internals(in_process: httpx.AsyncClient):
    request_id = f"req-{uuid.uuid4().hex[:8]}"
    crashed = await in_process.get("/v1/explode", headers={"X-Request-ID": request_id})
    assert assert_problem(crashed, 500, "internal error")["request_id"] == request_id
    assert "catalogue index" not in crashed.text and "RuntimeError" not in crashed.text
    unavailable = assert_problem(await in_process.get("/v1/lost"), 503, "database is unavailable")
    assert unavailable["retry_after"] == 5
    assert "refused" not in str(unavailable)
