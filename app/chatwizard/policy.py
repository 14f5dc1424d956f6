"""Who may call what: the one table of route access, checked for every request.

``public`` routes need no key; ``user`` means any authenticated tier (free, pro, admin); ``admin``
and ``service`` are the operator roles (admins may do what the service role does). Object-level
rules (your own conversations, paths, ...) are enforced in each domain's queries by ``user_id``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Literal

from fastapi import Depends, HTTPException
from starlette.requests import HTTPConnection

from chatwizard.audit import service as audit
from chatwizard.core import metrics
from chatwizard.core.security import Principal, authenticate
from chatwizard.web.routes import PAGES, STATIC_ROUTE

Access = Literal["public", "user", "admin", "service"]

ROUTE_POLICY: dict[tuple[str, str], Access] = {
    ("GET", "/healthz"): "public",
    ("GET", "/readyz"): "public",
    ("GET", "/calendar/{token}.ics"): "public",  # unguessable, revocable token URL, read-only
    ("POST", "/v1/chat"): "user",
    ("POST", "/v1/chat/stream"): "user",
    ("WEBSOCKET", "/v1/chat/ws"): "user",
    ("GET", "/v1/conversations"): "user",
    ("GET", "/v1/conversations/{conversation_id}"): "user",
    ("GET", "/v1/videos/search"): "user",
    ("GET", "/v1/videos/{video_id}"): "user",
    ("POST", "/v1/paths"): "user",
    ("GET", "/v1/paths"): "user",
    ("GET", "/v1/paths/{path_id}"): "user",
    ("PUT", "/v1/paths/{path_id}/order"): "user",
    ("POST", "/v1/progress/events"): "user",
    ("GET", "/v1/progress"): "user",
    ("POST", "/v1/calendar/sessions"): "user",
    ("GET", "/v1/calendar/sessions"): "user",
    ("DELETE", "/v1/calendar/sessions/{session_id}"): "user",
    ("POST", "/v1/calendar/feed"): "user",
    ("DELETE", "/v1/calendar/feed"): "user",
    ("GET", "/v1/me"): "user",
    ("GET", "/v1/me/export"): "user",
    ("DELETE", "/v1/me"): "user",
    ("DELETE", "/v1/admin/users/{user_id}"): "admin",
    ("GET", "/v1/keys"): "user",
    ("POST", "/v1/keys"): "user",
    ("DELETE", "/v1/keys/{key_id}"): "user",
    ("POST", "/v1/keys/{key_id}/rotate"): "user",
    ("POST", "/v1/admin/users"): "admin",
    ("GET", "/v1/admin/users"): "admin",
    ("PATCH", "/v1/admin/users/{user_id}"): "admin",
    ("GET", "/v1/admin/audit"): "admin",
    ("POST", "/v1/admin/users/{user_id}/keys"): "admin",
    ("POST", "/v1/admin/invitations"): "admin",
    # Browser sign-in (web_sessions/): the public two are rate-limited per address (and per e-mail address).
    ("POST", "/v1/auth/sign-in-link"): "public",
    ("POST", "/v1/auth/accept"): "public",
    ("GET", "/v1/session"): "user",
    ("POST", "/v1/auth/logout"): "user",
    # The web app's shell and assets carry no data: the screens fetch it from /v1/* (web/routes.py).
    **{("GET", page): "public" for page in (*PAGES, STATIC_ROUTE)},
}

# Key scopes: a key created with scopes may call only the routes under them (within what its tier
# allows); a key without scopes may call everything its tier allows. Scopes follow the API's domains.
Scope = Literal["chat", "videos", "paths", "progress", "calendar", "account", "admin"]
SCOPE_PREFIXES: tuple[tuple[str, Scope], ...] = (
    ("/v1/chat", "chat"), ("/v1/conversations", "chat"), ("/v1/videos", "videos"), ("/v1/paths", "paths"),
    ("/v1/progress", "progress"), ("/v1/calendar", "calendar"), ("/v1/admin", "admin"),
    ("/v1/me", "account"), ("/v1/keys", "account"), ("/v1/session", "account"), ("/v1/auth", "account"),
)


def route_scope(path: str) -> Scope | None:
    return next((scope for prefix, scope in SCOPE_PREFIXES if path.startswith(prefix)), None)


# Probes call these every few seconds from the same addresses; they are cheap and must never see 429.
# The web app's shell and assets are served from memory, cheaper than counting them in Redis.
UNTHROTTLED = {("GET", "/healthz"), ("GET", "/readyz"), *(("GET", page) for page in (*PAGES, STATIC_ROUTE))}

ROLE_GRANTS: dict[Access, frozenset[str]] = {
    "user": frozenset({"free", "pro", "admin"}),
    "admin": frozenset({"admin"}),
    "service": frozenset({"service", "admin"}),
}


def route_key(connection: HTTPConnection) -> tuple[str, str] | None:
    route = connection.scope.get("route")
    if route is None:
        return None
    method = connection.scope.get("method", "WEBSOCKET") if connection.scope["type"] == "http" \
        else "WEBSOCKET"
    return method, route.path_format


async def authorize(connection: HTTPConnection) -> None:
    """App-wide dependency: rate-limit and authenticate unless public, then check the caller's role.
    Failures, denials and 429s go to the audit trail."""
    key = route_key(connection)
    access = ROUTE_POLICY.get(key) if key else None
    if access == "public" and key in UNTHROTTLED:
        return
    services = connection.app.state.services
    limiter = services.limiter
    address = connection.client.host if connection.client else "unknown"
    path = key[1] if key else "unknown"
    principal = None
    try:
        if access == "public":
            connection.state.rate_limit = await limiter.check(limiter.anonymous, "address", address)
            return
        try:
            principal = await authenticate(connection)
        except HTTPException as failure:
            await audit.record(services, "auth_failure", "failure", connection=connection, target=path,
                               detail={"reason": failure.detail})
            await limiter.check(limiter.auth_failures, "auth_failure", address)  # 429 once guessing persists
            raise
        connection.state.rate_limit = await limiter.check_user(principal.tier, principal.user_id)
    except HTTPException as refused:
        if refused.status_code == 429:
            await audit.record(services, "rate_limited", "denied", connection=connection,
                               principal=principal, target=path)
        raise
    await services.activity.seen(principal.user_id)
    await check_csrf(connection, principal, path)
    if access is None or principal.tier not in ROLE_GRANTS[access]:
        metrics.AUTHZ_DENIALS.labels(path).inc()
        await audit.record(services, "authz_denied", "denied", connection=connection, principal=principal,
                           target=path)
        raise HTTPException(403, detail="this API key's role may not call this endpoint")
    scope = route_scope(path)
    if principal.scopes and scope not in principal.scopes:
        metrics.AUTHZ_DENIALS.labels(path).inc()
        await audit.record(services, "scope_denied", "denied", connection=connection, principal=principal,
                           target=path, detail={"needs": scope})
        raise HTTPException(403, detail=f"this API key's scopes do not include '{scope}'")


UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


async def check_csrf(connection: HTTPConnection, principal: Principal, path: str) -> None:
    """A browser session's state-changing request must carry its CSRF token (another site's page can make
    the browser send the cookie, but cannot read the token); API keys are never sent by a browser alone."""
    if principal.csrf_token is None or connection.scope.get("method") not in UNSAFE_METHODS:
        return
    sent = connection.headers.get("x-csrf-token", "")
    if secrets.compare_digest(sent.encode(), principal.csrf_token.encode()):
        return
    await audit.record(connection.app.state.services, "csrf_denied", "denied", connection=connection,
                       principal=principal, target=path)
    raise HTTPException(403, detail="missing or invalid CSRF token")


async def count_question(connection: HTTPConnection, principal: Principal) -> None:
    """Count a question that arrives on an open WebSocket as one request of its user (429s audited)."""
    services = connection.app.state.services
    try:
        await services.limiter.check_user(principal.tier, principal.user_id)
    except HTTPException:
        await audit.record(services, "rate_limited", "denied", connection=connection, principal=principal,
                           target=connection.scope["path"])
        raise


async def current_principal(connection: HTTPConnection) -> Principal:
    # async: FastAPI runs plain `def` dependencies in a thread pool, a hand-off per request for nothing.
    return connection.state.principal  # set by authorize(), which runs before every route


CurrentUser = Annotated[Principal, Depends(current_principal)]
