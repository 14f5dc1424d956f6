"""Bad input on every endpoint: a 4xx that says what is wrong, never a 500, nothing lost."""

from __future__ import annotations

import uuid

import pytest

from chatwizard.web.routes import PAGES
from tests.conftest import AppServer

UNKNOWN = str(uuid.uuid4())
MALFORMED = b'{"question": "unterminated'

# (method, path, body) -> expected status and a fragment the message must contain.
CASES = [
    # an asset no release has (a stale or made-up name)
    ("GET", "/static/app.000000000000.js", None, 404, "no such asset"),
    ("GET", "/static/..%2Fsettings.py", None, 404, "Not Found"),  # no way out of the assets
    # malformed JSON
    ("POST", "/v1/chat", MALFORMED, 422, "JSON"),
    ("POST", "/v1/chat/stream", MALFORMED, 422, "JSON"),
    ("POST", "/v1/paths", MALFORMED, 422, "JSON"),
    ("POST", "/v1/progress/events", MALFORMED, 422, "JSON"),
    ("POST", "/v1/calendar/sessions", MALFORMED, 422, "JSON"),
    ("POST", "/v1/keys", MALFORMED, 422, "JSON"),
    # wrong types
    ("POST", "/v1/chat", {"question": 42}, 422, "string"),
    ("POST", "/v1/chat", {"question": "hi", "conversation_id": "nope"}, 422, "UUID"),
    ("POST", "/v1/paths", {"title": "t", "video_ids": "abc"}, 422, "list"),
    ("POST", "/v1/progress/events", {"event_id": "x", "video_id": "v", "kind": "click"}, 422, "UUID"),
    ("POST", "/v1/progress/events", {"event_id": UNKNOWN, "video_id": "v", "kind": "watch"}, 422, "click"),
    ("POST", "/v1/progress/events", {"event_id": UNKNOWN, "video_id": "v", "kind": "progress"}, 422,
     "position_s is required"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "tomorrow", "duration_min": 30}, 422,
     "datetime"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "2026-12-01T10:00:00",
                                       "duration_min": 30}, 422, "time zone"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "path_id": UNKNOWN,
                                       "starts_at": "2026-12-01T10:00:00Z", "duration_min": 30}, 422,
     "exactly one"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "2026-12-01T10:00:00Z",
                                       "duration_min": 1000}, 422, "480"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "9999-12-31T20:00:00Z",
                                       "duration_min": 480}, 422, "within ten years"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "0001-01-01T00:00:00+01:00",
                                       "duration_min": 30}, 422, "within ten years"),
    ("POST", "/v1/calendar/sessions", {"video_id": "v", "starts_at": "2026-12-01T10:00:00Z", "duration_min": 30,
                                       "title": "Lesson\r\nATTENDEE:mailto:x@example.org"}, 422, "control characters"),
    ("POST", "/v1/paths", {"title": "Path \u001b[31mred", "video_ids": ["a"]}, 422, "control characters"),
    ("GET", "/v1/videos/search?limit=500&q=x", None, 422, "50"),
    ("GET", "/v1/videos/search", None, 422, "q"),
    ("GET", "/v1/conversations?limit=abc", None, 422, "integer"),
    ("PUT", f"/v1/paths/{UNKNOWN}/order", {"video_ids": []}, 422, "at least 1"),
    # text Postgres cannot hold (found by schemathesis)
    ("POST", "/v1/chat", {"question": "door\u0000script"}, 422, "NUL"),
    ("GET", "/v1/videos/search?q=door%00script", None, 422, "NUL"),
    # unknown fields
    ("POST", "/v1/chat", {"question": "hi", "model": "gpt-5"}, 422, "Extra inputs"),
    ("POST", "/v1/paths", {"title": "t", "video_ids": ["a"], "owner": "x"}, 422, "Extra inputs"),
    ("POST", "/v1/progress/events", {"event_id": UNKNOWN, "video_id": "v", "kind": "click", "x": 1}, 422,
     "Extra inputs"),
    ("POST", "/v1/keys", {"name": "k", "tier": "admin"}, 422, "Extra inputs"),
    # oversized bodies
    ("POST", "/v1/chat", {"question": "x" * 70_000}, 413, "too large"),
    ("POST", "/v1/paths", {"title": "t", "video_ids": ["a" * 60] * 2000}, 413, "too large"),
    # unknown ids
    ("GET", f"/v1/conversations/{UNKNOWN}", None, 404, "no such conversation"),
    ("GET", "/v1/conversations/not-a-uuid", None, 422, "UUID"),
    ("POST", "/v1/chat", {"question": "hi", "conversation_id": UNKNOWN}, 404, "no such conversation"),
    ("POST", "/v1/chat/stream", {"question": "hi", "conversation_id": UNKNOWN}, 404, "no such conversation"),
    ("GET", "/v1/videos/NoSuchVideo1", None, 404, "no such video"),
    ("GET", f"/v1/paths/{UNKNOWN}", None, 404, "no such learning path"),
    ("PUT", f"/v1/paths/{UNKNOWN}/order", {"video_ids": ["a"]}, 404, "no such learning path"),
    ("POST", "/v1/paths", {"title": "t", "video_ids": ["NoSuchVideo1"]}, 422, "unknown video ids: NoSuchVideo1"),
    ("POST", "/v1/progress/events", {"event_id": UNKNOWN, "video_id": "NoSuchVideo1", "kind": "click"}, 404,
     "no such video"),
    ("POST", "/v1/calendar/sessions", {"path_id": UNKNOWN, "starts_at": "2026-12-01T10:00:00Z",
                                       "duration_min": 30}, 404, "no such video or learning path"),
    ("DELETE", f"/v1/calendar/sessions/{UNKNOWN}", None, 404, "no such session"),
    ("DELETE", f"/v1/keys/{UNKNOWN}", None, 404, "no such active key"),
    ("POST", f"/v1/keys/{UNKNOWN}/rotate", None, 404, "no such active key"),
    ("GET", "/calendar/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.ics", None, 404, "no such calendar feed"),
    ("GET", "/calendar/short.ics", None, 422, "at least 20"),
    ("GET", "/v1/nothing-here", None, 404, "Not Found"),
    # browser sign-in
    ("POST", "/v1/auth/sign-in-link", {"email": "not-an-email"}, 422, "email"),
    ("POST", "/v1/auth/sign-in-link", {"email": "a@example.com", "tier": "admin"}, 422, "Extra inputs"),
    ("POST", "/v1/auth/accept", MALFORMED, 422, "JSON"),
    ("POST", "/v1/auth/accept", {"token": ""}, 422, "at least 1"),
    ("POST", "/v1/auth/accept", {"token": "A" * 43}, 400, "not valid"),
]
ADMIN_CASES = [
    ("POST", "/v1/admin/users", MALFORMED, 422, "JSON"),
    ("POST", "/v1/admin/users", {"email": "not-an-email", "tier": "pro"}, 422, "email"),
    ("POST", "/v1/admin/users", {"email": "a@example.com", "tier": "root"}, 422, "free"),
    ("POST", "/v1/admin/users", {"email": "a@example.com", "role": "admin"}, 422, "Extra inputs"),
    ("GET", "/v1/admin/users?limit=0", None, 422, "limit"),
    ("POST", f"/v1/admin/users/{UNKNOWN}/keys", {"name": "k"}, 404, "no such user"),
    ("POST", "/v1/admin/users/not-a-uuid/keys", {"name": "k"}, 422, "UUID"),
    ("POST", f"/v1/admin/users/{UNKNOWN}/keys", {"name": ""}, 422, "at least 1"),
    ("DELETE", f"/v1/admin/users/{UNKNOWN}", None, 404, "no such user"),
    ("DELETE", "/v1/admin/users/not-a-uuid", None, 422, "UUID"),
    ("PATCH", f"/v1/admin/users/{UNKNOWN}", {"tier": "pro"}, 404, "no such user"),
    ("PATCH", f"/v1/admin/users/{UNKNOWN}", {"tier": "root"}, 422, "free"),
    ("PATCH", f"/v1/admin/users/{UNKNOWN}", {"tier": "pro", "email": "x@example.com"}, 422, "Extra inputs"),
    ("GET", "/v1/admin/audit?limit=5000", None, 422, "limit"),
    ("GET", "/v1/admin/audit?action=DROP%20TABLE", None, 422, "action"),
    ("GET", "/v1/admin/audit?since=yesterday", None, 422, "since"),
    ("POST", "/v1/admin/invitations", {"email": "not-an-email"}, 422, "email"),
    ("POST", "/v1/admin/invitations", {"email": "a@example.com", "tier": "admin"}, 422, "free"),
    ("POST", "/v1/admin/invitations", {"email": "a@example.com", "user_id": UNKNOWN}, 422, "Extra inputs"),
]
# Routes that take no input beyond the caller's key, so there is nothing to get wrong.
NO_INPUT = {("GET", "/healthz"), ("GET", "/readyz"), ("GET", "/v1/paths"), ("GET", "/v1/progress"),
            ("GET", "/v1/calendar/sessions"), ("POST", "/v1/calendar/feed"), ("DELETE", "/v1/calendar/feed"),
            ("GET", "/v1/me"), ("GET", "/v1/keys"), ("GET", "/v1/me/export"), ("DELETE", "/v1/me"),
            ("GET", "/v1/session"), ("POST", "/v1/auth/logout"),
            *(("GET", page) for page in PAGES)}  # the one HTML shell: it reads nothing of the request


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), CASES,
                         ids=[f"{c[0]} {c[1][:40]} {c[3]}" for c in CASES])
async def test_bad_input_gets_a_clear_4xx(app_server: AppServer, make_user, method, path, body, status,
                                          message):
    await check(app_server, await make_user(), method, path, body, status, message)


@pytest.mark.parametrize(("method", "path", "body", "status", "message"), ADMIN_CASES,
                         ids=[f"{c[0]} {c[1][:40]} {c[3]}" for c in ADMIN_CASES])
async def test_bad_admin_input_gets_a_clear_4xx(app_server: AppServer, make_user, method, path, body, status,
                                                message):
    await check(app_server, await make_user("admin"), method, path, body, status, message)


def test_every_route_with_input_has_bad_input_cases():
    from chatwizard.main import create_app

    templates = {(m, p.split("?")[0]) for m, p, *_ in CASES + ADMIN_CASES}
    missing = []
    for route in create_app().routes:
        for method in getattr(route, "methods", None) or {"WEBSOCKET"}:
            if method == "HEAD" or route.path in ("/docs", "/redoc", "/openapi.json", "/docs/oauth2-redirect"):
                continue
            key = (method, route.path)
            concrete = any(m == method and route.path_regex.match(p) for m, p in templates)
            if key not in NO_INPUT and key != ("WEBSOCKET", "/v1/chat/ws") and not concrete:
                missing.append(key)
    assert missing == [], f"routes without bad-input cases: {missing}"


async def check(app_server: AppServer, user, method, path, body, status, message):
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) \
        else {"json": body} if body is not None else {}
    async with app_server.client(user.key) as client:
        response = await client.request(method, path, **kwargs)
    assert response.status_code == status, response.text
    assert message in response.text
    assert "Traceback" not in response.text and "asyncpg" not in response.text


async def test_validation_errors_do_not_echo_the_input(app_server: AppServer, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        response = await client.post("/v1/chat", json={"question": "<script>alert(1)</script>", "x": "<b>"})
    assert response.status_code == 422
    assert "<script>" not in response.text and "<b>" not in response.text


async def test_a_second_user_with_the_same_address_is_a_conflict(app_server: AppServer, make_user):
    admin = await make_user("admin")
    email = f"twice-{uuid.uuid4().hex[:8]}@example.com"
    async with app_server.client(admin.key) as client:
        assert (await client.post("/v1/admin/users", json={"email": email})).status_code == 201
        again = await client.post("/v1/admin/users", json={"email": email.upper()})
    assert again.status_code == 409 and "already exists" in again.json()["detail"]
