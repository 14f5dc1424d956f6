"""The OpenAPI contract's shared parts, in one place: the API-key security scheme, the error responses
(as problem details, core/problems.py) and the response headers.

What applies to a route follows from the route policy (``chatwizard.policy``) and its signature, so no
route repeats it: a route with a key gets the security requirement, 401 and 403; every route but the
probes gets 429 and 503 (rate-limited, and its key or feed is looked up in the database); a route with
input gets 422, with a body 413. A route declares only what is its own: ``responses=errors(404, 409)``
and its ``X-Cache`` values (``cache_header``).
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from chatwizard.core.problems import MEDIA_TYPE, Problem, problem
from chatwizard.policy import ROUTE_POLICY, UNTHROTTLED

SCHEME = "APIKey"
REF = "#/components/schemas/{model}"
COMPONENTS: dict[str, dict[str, Any]] = {}  # schemas the generated ones do not hold (problems, events)
SECURITY_SCHEME = {
    "type": "http", "scheme": "bearer", "bearerFormat": "cwk_ + 36 characters",
    "description": "An API key, sent as `Authorization: Bearer <key>`: in /docs, paste it under Authorize.",
}
# Per status: what it means on any route, and an example detail (with the extension members it carries).
ERRORS: dict[int, tuple[str, str, dict[str, Any]]] = {
    400: ("the request cannot be used as it is (the detail says why)",
          "this link is not valid: check that it was copied whole, or ask for a new one", {}),
    401: ("no API key or session cookie, or one that is invalid, revoked or expired (the detail says which)",
          "API key revoked", {}),
    403: ("the key's role or scopes do not allow this route, the key asked for is wider than it, or a "
          "session's request lacks its X-CSRF-Token",
          "this API key's scopes do not include 'paths'", {}),
    404: ("no such object, or not yours", "no such learning path", {}),
    409: ("conflicts with the current state", "a user with this email already exists", {}),
    410: ("gone: used already or expired (the detail says which)",
          "this link has been used already: ask for a new sign-in link", {}),
    413: ("the request body is too large", "request body too large: at most 65536 bytes", {}),
    422: ("invalid input: `errors` lists each problem and where",
          "the request is invalid (1 problem; see errors)",
          {"errors": [{"loc": ["body", "question"], "msg": "String should have at least 1 character",
                       "type": "string_too_short"}]}),
    429: ("rate limited: retry after `Retry-After` seconds",
          "rate limit exceeded: 100 per 1 hour; retry in 30 s", {"retry_after": 30}),
    503: ("a dependency (the database) is unavailable: retry after `Retry-After` seconds",
          "the database is unavailable; try again shortly", {"retry_after": 5}),
}
EXAMPLE_REQUEST_ID = "4f1c2b0e9d8a4c7b8e6f5a4b3c2d1e0f"


def header(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "schema": schema}


HEADERS: dict[str, dict[str, Any]] = {
    "X-Request-ID": header("this request's id (the one sent, if well-formed); quote it to support",
                           {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$"}),
    "RateLimit-Limit": header("requests allowed in the window (per user; per address without a key)",
                              {"type": "integer", "minimum": 1}),
    "RateLimit-Remaining": header("requests left in the window", {"type": "integer", "minimum": 0}),
    "RateLimit-Reset": header("seconds until the window frees a request", {"type": "integer", "minimum": 1}),
    "Retry-After": header("seconds to wait before trying again", {"type": "integer", "minimum": 0}),
    "WWW-Authenticate": header("how to authenticate", {"type": "string", "enum": ["Bearer"]}),
}
RATE_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")
ERROR_HEADERS: dict[int, tuple[str, ...]] = {401: ("WWW-Authenticate",), 429: ("Retry-After", *RATE_HEADERS),
                                             503: ("Retry-After",)}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """A route's own error responses, e.g. ``responses=errors(404)``; describe() gives them their shape."""
    return {code: {"description": ERRORS[code][0]} for code in codes}


def cache_header(*values: str) -> dict[int | str, dict[str, Any]]:
    """A 200 that says in ``X-Cache`` which cache served it."""
    described = header("which cache answered: " + ", ".join(values), {"type": "string", "enum": list(values)})
    return {200: {"headers": {"X-Cache": described}}}


def component(kind: Any) -> dict[str, Any]:
    """The schema of a type; a model (and any model within) becomes a component, referred to by name."""
    schema = TypeAdapter(kind).json_schema(ref_template=REF, mode="serialization")
    COMPONENTS.update(schema.pop("$defs", {}))
    if isinstance(kind, type) and issubclass(kind, BaseModel):
        COMPONENTS[kind.__name__] = schema
        return {"$ref": REF.format(model=kind.__name__)}
    return schema


def event_stream(description: str, example: str, **events: Any) -> dict[int | str, dict[str, Any]]:
    """A 200 of server-sent events; per event name, the type its ``data`` holds as JSON. Before OpenAPI
    3.2's ``itemSchema``, a stream's ``schema`` describes one event (as schemathesis checks it)."""
    variants = [{"type": "object", "required": ["event", "data"], "properties": {
        "event": {"const": name},
        "data": {"type": "string", "contentMediaType": "application/json", "contentSchema": component(kind)},
    }} for name, kind in events.items()]
    return {200: {"description": description, "content": {"text/event-stream": {
        "schema": {"oneOf": variants}, "example": example}}}}


def describe(app: FastAPI) -> None:
    """Complete the app's generated OpenAPI schema with the shared parts, once."""
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def complete(schema: dict[str, Any]) -> dict[str, Any]:
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for replaced in ("HTTPValidationError", "ValidationError"):
        schemas.pop(replaced, None)
    component(Problem)
    schemas.update(COMPONENTS)
    components["securitySchemes"] = {SCHEME: SECURITY_SCHEME}
    components["headers"] = HEADERS
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            complete_operation((method.upper(), path), operation)
    return schema


def complete_operation(route: tuple[str, str], operation: dict[str, Any]) -> None:
    responses: dict[str, dict[str, Any]] = operation["responses"]
    codes: set[int] = set()
    if ROUTE_POLICY.get(route) != "public":
        operation["security"] = [{SCHEME: []}]
        codes |= {401, 403}
    if route not in UNTHROTTLED:
        codes |= {429, 503}
    if "requestBody" in operation:
        codes.add(413)
    if operation.get("parameters") or "requestBody" in operation:
        codes.add(422)
    for code in codes:
        responses.setdefault(str(code), {"description": ERRORS[code][0]})
    for status, response in responses.items():
        complete_response(int(status), response, throttled=route not in UNTHROTTLED)
    operation["responses"] = dict(sorted(responses.items()))


def fastapi_validation_error(response: dict[str, Any]) -> bool:
    schema = response["content"].get("application/json", {}).get("schema", {})
    return bool(schema.get("$ref", "").endswith("/HTTPValidationError"))


def complete_response(status: int, response: dict[str, Any], throttled: bool) -> None:
    names = ["X-Request-ID"]
    if status < 400:
        names += RATE_HEADERS if throttled else []
    elif "content" not in response or fastapi_validation_error(response):  # not a route's own body
        names += ERROR_HEADERS.get(status, ())
        meaning, detail, extensions = ERRORS[status]
        response["description"] = meaning
        example = problem(status, detail, EXAMPLE_REQUEST_ID, **extensions)
        response["content"] = {MEDIA_TYPE: {"schema": {"$ref": REF.format(model="Problem")},
                                            "example": example}}
    headers = response.setdefault("headers", {})
    for name in names:
        headers[name] = {"$ref": f"#/components/headers/{name}"}
