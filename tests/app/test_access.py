"""Every route is in the access table, and the table holds: 401 without a key or session, 403 for the wrong
role (by key or by browser session).

The route list comes from the app itself, so a new route without a declared policy fails here.
(Object-level checks, 404 for other users' objects, are tested per domain: chat, paths, keys...)"""

from __future__ import annotations

import uuid

import httpx
import pytest
from websockets.asyncio.client import connect

from chatwizard.core.security import SESSION_COOKIE
from chatwizard.main import create_app
from chatwizard.policy import ROLE_GRANTS, ROUTE_POLICY
from tests.app.test_web_sessions import browser_session
from tests.conftest import AppServer

DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def app_routes() -> set[tuple[str, str]]:
    routes = set()
    for route in create_app().routes:
        if route.path in DOCS:
            continue
        for method in getattr(route, "methods", None) or {"WEBSOCKET"}:
            if method != "HEAD":
                routes.add((method, route.path))
    return routes


ROUTES = sorted(app_routes())


def concrete(path: str) -> str:
    return (path.replace("{token}", "A" * 43).replace("{video_id}", "abc")
            .replace("{", "").replace("}", "").replace("conversation_id", str(uuid.uuid4()))
            .replace("path_id", str(uuid.uuid4())).replace("session_id", str(uuid.uuid4()))
            .replace("key_id", str(uuid.uuid4())).replace("user_id", str(uuid.uuid4())))


def test_every_route_has_a_declared_policy_and_no_policy_is_stale():
    assert set(ROUTES) - set(ROUTE_POLICY) == set(), "routes without an access policy"
    assert set(ROUTE_POLICY) - set(ROUTES) == set(), "policies for routes that do not exist"


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if ROUTE_POLICY[r] != "public"],
                         ids=lambda v: v)
async def test_protected_routes_refuse_requests_without_a_valid_key(app_server: AppServer, method, path):
    if method == "WEBSOCKET":
        with pytest.raises(Exception, match="HTTP 401"):
            async with connect(app_server.base_url.replace("http", "ws") + path):
                pass
        return
    async with httpx.AsyncClient(base_url=app_server.base_url) as client:
        missing = await client.request(method, concrete(path), json={})
        forged = await client.request(method, concrete(path), json={},
                                      headers={"Authorization": "Bearer cwk_" + "B" * 36})
        forged_session = await client.request(method, concrete(path), json={},
                                              headers={"Cookie": f"{SESSION_COOKIE}={'C' * 43}"})
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
    assert forged.status_code == 401 and forged_session.status_code == 401


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if ROUTE_POLICY[r] in ("admin", "service")],
                         ids=lambda v: v)
async def test_operator_routes_refuse_other_roles(app_server: AppServer, make_user, db, method, path):
    for tier in ("free", "pro"):
        assert tier not in ROLE_GRANTS[ROUTE_POLICY[(method, path)]]
        user = await make_user(tier)
        async with app_server.client(user.key) as client:
            response = await client.request(method, concrete(path), json={})
        assert response.status_code == 403, f"{tier} reached {method} {path}"
        async with await browser_session(app_server, db, user.id) as browser:
            by_session = await browser.request(method, concrete(path), json={})
        assert by_session.status_code == 403, f"a {tier} session reached {method} {path}"


async def test_admin_reaches_admin_routes(app_server: AppServer, make_user):
    admin = await make_user("admin")
    async with app_server.client(admin.key) as client:
        assert (await client.get("/v1/admin/users")).status_code == 200


async def test_responses_do_not_name_the_server_software(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        responses = [await client.get("/v1/me"), await client.get("/healthz"), await client.get("/nowhere")]
    assert [r.headers.get("server") for r in responses] == [None] * 3
