"""Errors as RFC 9457 problem details (``application/problem+json``), one shape for every source.

Every error the app answers (its own HTTPExceptions, routing's 404/405, invalid input, rate limits, an
unavailable database, a body too large, an unhandled exception) is a ``Problem``: ``type`` is
``about:blank``, so ``title`` is the status's reason phrase and ``detail`` says what went wrong;
``instance`` names the occurrence by its request id, which is also the ``X-Request-ID`` header and
the key to the logs. Extension members: ``request_id``, ``retry_after`` (429, 503) and ``errors``
(each invalid input of a 422). The offending input is never echoed back.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import asyncpg
import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException

from chatwizard.core.responses import SafeJSONResponse, safe_json

log = structlog.get_logger(__name__)
MEDIA_TYPE = "application/problem+json"
RETRY_DATABASE_S = 5


class InputError(BaseModel):
    loc: list[str | int] = Field(description="where: body, query, path or header, then the field",
                                 examples=[["body", "question"]])
    msg: str = Field(examples=["String should have at least 1 character"])
    type: str = Field(description="the kind of problem (pydantic's error type)",
                      examples=["string_too_short"])


class Problem(BaseModel):
    """An error, as RFC 9457 problem details."""

    type: str = Field("about:blank", description="always about:blank: the status says what kind of error")
    title: str = Field(description="the status's reason phrase", examples=["Not Found"])
    status: int = Field(ge=400, le=599, examples=[404])
    detail: str = Field(description="what went wrong, for people", examples=["no such learning path"])
    instance: str = Field(description="this occurrence: the request id as a URN",
                          examples=["urn:chatwizard:request:4f1c2b0e9d8a4c7b8e6f5a4b3c2d1e0f"])
    request_id: str = Field(description="the X-Request-ID of the request; quote it to support",
                            examples=["4f1c2b0e9d8a4c7b8e6f5a4b3c2d1e0f"])
    retry_after: int | None = Field(None, ge=0, description="429 and 503: seconds to wait (as Retry-After)")
    errors: list[InputError] | None = Field(None, description="422 on invalid input: each problem")


def problem(status: int, detail: str, request_id: str, **extensions: Any) -> dict[str, Any]:
    return {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail,
            "instance": f"urn:chatwizard:request:{request_id}", "request_id": request_id, **extensions}


def problem_bytes(status: int, detail: str, request_id: str) -> bytes:
    """For the request middleware, which answers below the app (413, 500)."""
    return safe_json(problem(status, detail, request_id))


def respond(request: Request, status: int, detail: str, headers: dict[str, str] | None = None,
            **extensions: Any) -> SafeJSONResponse:
    if headers and "Retry-After" in headers:
        extensions["retry_after"] = int(headers["Retry-After"])
    body = problem(status, detail, getattr(request.state, "request_id", "unknown"), **extensions)
    return SafeJSONResponse(body, status_code=status, headers=headers, media_type=MEDIA_TYPE)


async def http_error(request: Request, exc: Exception) -> SafeJSONResponse:
    assert isinstance(exc, HTTPException)
    return respond(request, exc.status_code, str(exc.detail), exc.headers)


async def validation_error(request: Request, exc: Exception) -> SafeJSONResponse:
    """422 listing each problem (where and what)."""
    assert isinstance(exc, RequestValidationError)
    errors = [{"loc": list(e["loc"]), "msg": e["msg"], "type": e["type"]} for e in exc.errors()]
    noun = "problem" if len(errors) == 1 else "problems"
    return respond(request, 422, f"the request is invalid ({len(errors)} {noun}; see errors)", errors=errors)


async def invalid_value(request: Request, exc: Exception) -> SafeJSONResponse:
    """Values Postgres cannot take (e.g. NUL in a query parameter): the client's input, so a 422."""
    return respond(request, 422, "a parameter holds a value that cannot be stored or searched "
                                 "(for example a NUL character)")


async def database_unavailable(request: Request, exc: Exception) -> SafeJSONResponse:
    log.error("database_unavailable", error=type(exc).__name__)
    return respond(request, 503, "the database is unavailable; try again shortly",
                   {"Retry-After": str(RETRY_DATABASE_S)})


def install(app: FastAPI) -> None:
    """Answer every error the app raises as a problem (Starlette's HTTPException covers routing's too)."""
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(asyncpg.DataError, invalid_value)
    for unavailable in (asyncpg.PostgresConnectionError, ConnectionError, OSError):
        app.add_exception_handler(unavailable, database_unavailable)
