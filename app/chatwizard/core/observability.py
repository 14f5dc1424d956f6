"""Request ids, RED metrics, Sentry, body-size limit and baseline security headers (logs: core/logs.py).

One pure-ASGI middleware does all per-request work (cheaper than stacked BaseHTTPMiddleware): it
assigns the request id, counts the request under its route *template* (never the raw path, which
may hold a calendar token), and writes one JSON summary line per request.
"""

from __future__ import annotations

import re
import time
import uuid
from importlib.metadata import version
from typing import Any

import structlog
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chatwizard.core import metrics
from chatwizard.core.problems import MEDIA_TYPE, problem_bytes
from chatwizard.core.settings import Settings

log = structlog.get_logger("chatwizard.access")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")

SECURITY_HEADERS = [
    (b"strict-transport-security", b"max-age=63072000; includeSubDomains"),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
# Swagger UI and ReDoc load their bundle from jsDelivr and use inline bootstrap code.
DOCS_CSP = (b"content-security-policy",
            b"default-src 'self'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; "
            b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net; img-src 'self' data: "
            b"https://fastapi.tiangolo.com https://cdn.redoc.ly; frame-ancestors 'none'")
DOCS_PATHS = ("/docs", "/redoc", "/openapi.json")
# The web app's pages and assets: its own scripts, styles and images only, plus YouTube's thumbnails.
PAGE_CSP = (b"content-security-policy",
            b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' https://i.ytimg.com; "
            b"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
STATIC_PREFIX = "/static/"


def init_sentry(settings: Settings) -> None:
    if settings.sentry_dsn is None:
        return
    import sentry_sdk

    # Events carry the request id, the exception and its stack, never headers, bodies, query strings
    # or frame variables: that is where keys and learners' questions live.
    sentry_sdk.init(
        dsn=settings.sentry_dsn.get_secret_value(), environment=settings.environment,
        release=f"chatwizard@{version('chatwizard')}", traces_sample_rate=0.0,
        auto_enabling_integrations=False,
        data_collection={"user_info": False, "http_bodies": [], "stack_frame_variables": False,
                         "database_query_data": False, "gen_ai": {"inputs": False, "outputs": False}},
    )


def report_exception(exc: BaseException, request_id: str) -> None:
    """Send an unhandled exception to Sentry (a no-op when no DSN is configured)."""
    import sentry_sdk

    with sentry_sdk.new_scope() as scope:
        scope.set_tag("request_id", request_id)
        scope.capture_exception(exc)


class RequestMiddleware:
    def __init__(self, app: ASGIApp, settings: Settings, pages: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body = settings.max_body_bytes
        self.pages = frozenset(pages)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        supplied = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = supplied if _REQUEST_ID.match(supplied) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return
        await self._http(scope, receive, send, headers, request_id)

    async def _http(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes],
                    request_id: str) -> None:
        started = time.perf_counter()
        status: int | None = None  # set once the response starts
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            await self._error(send, 413, self._too_large_body(request_id), request_id)
            self._observe(scope, 413, started)
            return
        csp = self._csp(scope["path"])
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                extra = [*SECURITY_HEADERS, csp, (b"x-request-id", request_id.encode())]
                if b"authorization" in headers:
                    extra.append((b"cache-control", b"no-store"))
                verdict = scope.get("state", {}).get("rate_limit")
                if verdict is not None and status != 429:  # a 429 carries its own headers
                    extra += [(k.lower().encode(), v.encode()) for k, v in verdict.headers().items()]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        try:
            await self.app(scope, limited_receive, send_with_headers)
        except BodyTooLarge:
            status = 413
            await self._error(send, 413, self._too_large_body(request_id), request_id)
        except Exception as exc:
            # Answered here rather than by Starlette's outermost handler, which re-raises and so
            # makes the server drop the keep-alive connection. No stack or SQL leaves the process.
            log.error("unhandled_exception", exc_info=exc)
            report_exception(exc, request_id)
            if status is None:
                status = 500
                await self._error(send, 500, problem_bytes(500, "internal error", request_id), request_id)
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            self._observe(scope, status or 500, started)

    def _csp(self, path: str) -> tuple[bytes, bytes]:
        if path.startswith(DOCS_PATHS):
            return DOCS_CSP
        return PAGE_CSP if path in self.pages or path.startswith(STATIC_PREFIX) else API_CSP

    def _too_large_body(self, request_id: str) -> bytes:
        return problem_bytes(413, f"request body too large: at most {self.max_body} bytes", request_id)

    @staticmethod
    async def _error(send: Send, status: int, body: bytes, request_id: str) -> None:
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", MEDIA_TYPE.encode()), *SECURITY_HEADERS, API_CSP,
                                (b"x-request-id", request_id.encode())]})
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _observe(scope: Scope, status: int, started: float) -> None:
        elapsed = time.perf_counter() - started
        route = scope.get("route")
        template = route.path_format if route is not None else "unmatched"
        method = scope["method"]
        metrics.HTTP_REQUESTS.labels(template, method, str(status)).inc()
        metrics.HTTP_LATENCY.labels(template, method).observe(elapsed)
        principal: Any = scope.get("state", {}).get("principal")
        log.info("request", method=method, route=template, status=status,
                 duration_ms=round(elapsed * 1000, 1),
                 user_id=str(principal.user_id) if principal else None)


class BodyTooLarge(Exception):
    pass
