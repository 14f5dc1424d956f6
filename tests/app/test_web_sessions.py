"""Browser sign-in against the real app, Postgres, Redis and SMTP sink: invitations and sign-in links
arrive as mail and work once; the session cookie is HttpOnly, Secure, SameSite=Lax and __Host-; it
calls /v1/* like a key, with the same limits, needs its CSRF token on state changes, and ends on logout,
expiry, erasure and a tier change. A foreign page cannot open the WebSocket with it."""

from __future__ import annotations

import asyncio
import re
import time
from email.message import EmailMessage
from typing import Any

import asyncpg
import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from chatwizard.core.crypto import FieldCipher
from chatwizard.core.security import SESSION_COOKIE, csrf_token
from chatwizard.estate.mail import MailSink
from chatwizard.web_sessions.service import start_session
from tests.app.test_audit import audit_once
from tests.app.test_keys import ask, closed_at
from tests.app.test_learning import video_ids
from tests.conftest import FIELD_KEYS, AppServer

LINK = re.compile(r"(http://\S+)/(invite|sign-in)#token=([A-Za-z0-9_-]+)")
TITLE = "Roblox basics"


def new_email() -> str:
    return f"learner{time.time_ns()}@example.com"


def mail_to(sink: MailSink, address: str) -> list[EmailMessage]:
    return [m for m in sink.messages() if m["To"] == address]


async def wait_for_mail(sink: MailSink, address: str, timeout_s: float = 10) -> EmailMessage:
    deadline = time.monotonic() + timeout_s
    while not (mails := mail_to(sink, address)):
        assert time.monotonic() < deadline, f"no mail reached {address}"
        await asyncio.sleep(0.1)
    return mails[-1]


def link_in(mail: EmailMessage) -> tuple[str, str, str]:
    """(base URL, page, token) of the one link in a mail's plain text."""
    found = LINK.search(mail.get_content())
    assert found, mail.get_content()
    return found[1], found[2], found[3]


def session_client(server: AppServer, cookie: str, csrf: str | None = None) -> httpx.AsyncClient:
    """A browser's requests: the cookie (httpx keeps Secure cookies for https only, a browser on loopback
    sends them on http too) and, once the page has it, the CSRF token."""
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"} | ({"X-CSRF-Token": csrf} if csrf else {})
    return httpx.AsyncClient(base_url=server.base_url, headers=headers, timeout=30)


async def browser_session(server: AppServer, db: asyncpg.Connection, user_id: Any) -> httpx.AsyncClient:
    """A signed-in browser of an existing user (a session started as accepting a link starts it)."""
    session, _ = await start_session(db, user_id, 3600)
    return session_client(server, session, csrf_token(session))


def cookie_of(response: httpx.Response) -> str:
    return response.cookies[SESSION_COOKIE]


async def invite(server: AppServer, admin_key: str, email: str, tier: str = "free") -> httpx.Response:
    async with server.client(admin_key) as client:
        return await client.post("/v1/admin/invitations", json={"email": email, "tier": tier})


async def accept(server: AppServer, token: str) -> httpx.Response:
    async with server.client() as client:
        return await client.post("/v1/auth/accept", json={"token": token})


async def signed_in(server: AppServer, sink: MailSink, make_user: Any) -> tuple[dict[str, Any], str]:
    """A learner invited by an admin and signed in: (the accept answer, the cookie)."""
    admin, email = await make_user("admin"), new_email()
    assert (await invite(server, admin.key, email)).status_code == 201
    _, _, token = link_in(await wait_for_mail(sink, email))
    response = await accept(server, token)
    assert response.status_code == 200, response.text
    return response.json(), cookie_of(response)


async def test_an_invitation_mail_signs_the_learner_in_once(app_server: AppServer, mail_sink: MailSink,
                                                            make_user):
    admin, email = await make_user("admin"), new_email()
    created = await invite(app_server, admin.key, email, "pro")
    assert created.status_code == 201
    assert created.json()["email"] == email and created.json()["tier"] == "pro"
    mail = await wait_for_mail(mail_sink, email)
    assert mail["Subject"] == "You are invited to Chat Wizard"
    base, page, token = link_in(mail)
    assert (base, page) == (app_server.base_url, "invite")  # the token is in the fragment, not the path

    first = await accept(app_server, token)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["email"] == email and body["tier"] == "pro" and len(body["csrf_token"]) >= 32
    again = await accept(app_server, token)
    assert again.status_code == 410 and "used already" in again.json()["detail"]
    assert again.headers["content-type"] == "application/problem+json"

    async with session_client(app_server, cookie_of(first)) as browser:
        session = await browser.get("/v1/session")
        me = await browser.get("/v1/me")
    assert session.status_code == 200 and session.json() == body
    assert me.json()["id"] == body["user_id"] and me.json()["email"] == email


async def test_the_session_cookie_is_httponly_secure_lax_and_host_prefixed(app_server: AppServer,
                                                                          mail_sink: MailSink, make_user):
    admin, email = await make_user("admin"), new_email()
    await invite(app_server, admin.key, email)
    response = await accept(app_server, link_in(await wait_for_mail(mail_sink, email))[2])
    set_cookie = response.headers["set-cookie"]
    attributes = {a.strip().split("=")[0].lower(): a for a in set_cookie.split(";")[1:]}
    assert set_cookie.startswith(f"{SESSION_COOKIE}=")
    assert {"httponly", "secure", "path", "samesite", "max-age"} <= attributes.keys()
    assert attributes["samesite"].strip().lower() == "samesite=lax"
    assert attributes["path"].strip() == "Path=/" and "domain" not in attributes


async def test_expired_and_unknown_links_are_refused(app_server: AppServer, mail_sink: MailSink,
                                                     make_user, db: asyncpg.Connection):
    admin, email = await make_user("admin"), new_email()
    await invite(app_server, admin.key, email)
    token = link_in(await wait_for_mail(mail_sink, email))[2]
    await db.execute("UPDATE sign_in_links SET expires_at = now() - interval '1 second' "
                     "WHERE email_index = $1", FieldCipher(FIELD_KEYS).blind_index(email, "users.email"))
    expired = await accept(app_server, token)
    assert expired.status_code == 410 and "expired" in expired.json()["detail"]
    unknown = await accept(app_server, token[:-4] + "AAAA")
    assert unknown.status_code == 400 and "not valid" in unknown.json()["detail"]
    async with app_server.client() as client:  # no account was made by either
        assert (await client.post("/v1/auth/sign-in-link", json={"email": email})).status_code == 202
    await asyncio.sleep(1)
    assert len(mail_to(mail_sink, email)) == 1, "a sign-in link went to an address without an account"


async def test_a_sign_in_link_goes_only_to_an_existing_account(app_server: AppServer, mail_sink: MailSink,
                                                               make_user):
    user, stranger = await make_user("free"), new_email()
    async with app_server.client() as client:
        known = await client.post("/v1/auth/sign-in-link", json={"email": user.email})
        unknown = await client.post("/v1/auth/sign-in-link", json={"email": stranger})
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()  # the answer tells nobody which addresses have accounts
    mail = await wait_for_mail(mail_sink, user.email)
    _, page, token = link_in(mail)
    assert page == "sign-in" and "15 minutes" in mail.get_content()
    response = await accept(app_server, token)
    assert response.status_code == 200 and response.json()["user_id"] == str(user.id)
    assert (await accept(app_server, token)).status_code == 410
    await asyncio.sleep(1)
    assert mail_to(mail_sink, stranger) == []


async def test_a_session_calls_the_api_and_changes_state_only_with_its_csrf_token(
        app_server: AppServer, mail_sink: MailSink, make_user):
    body, cookie = await signed_in(app_server, mail_sink, make_user)
    async with session_client(app_server, cookie) as browser:
        path = {"title": TITLE, "video_ids": await video_ids(browser, "roblox", 2)}  # reads need no token
        missing = await browser.post("/v1/paths", json=path)
        wrong = await browser.post("/v1/paths", json=path, headers={"X-CSRF-Token": "0" * 64})
        right = await browser.post("/v1/paths", json=path, headers={"X-CSRF-Token": body["csrf_token"]})
        listed = await browser.get("/v1/paths")
    for refused in (missing, wrong):
        assert refused.status_code == 403
        assert refused.json()["detail"] == "missing or invalid CSRF token"
    assert right.status_code == 201
    assert [p["title"] for p in listed.json()] == [TITLE]  # the refused two made nothing
    admin = await make_user("admin")

    def theirs(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [e for e in events if e["actor_user"] == body["user_id"]]

    def both(events: list[dict[str, Any]]) -> bool:
        return sum(e["occurrences"] for e in theirs(events)) >= 2

    denied = theirs(await audit_once(app_server, admin.key, both, action="csrf_denied"))
    assert sum(e["occurrences"] for e in denied) == 2 and {e["target"] for e in denied} == {"/v1/paths"}


async def test_bearer_requests_need_no_csrf_token_and_win_over_a_cookie(app_server: AppServer,
                                                                        mail_sink: MailSink, make_user):
    _, cookie = await signed_in(app_server, mail_sink, make_user)
    other = await make_user("free")
    async with session_client(app_server, cookie) as client:
        client.headers["Authorization"] = f"Bearer {other.key}"
        created = await client.post("/v1/paths", json={"title": TITLE,
                                                       "video_ids": await video_ids(client, "roblox", 1)})
        me = await client.get("/v1/me")
    assert created.status_code == 201
    assert me.json()["id"] == str(other.id)


async def test_logout_ends_the_session_and_clears_the_cookie(app_server: AppServer, mail_sink: MailSink,
                                                             make_user):
    body, cookie = await signed_in(app_server, mail_sink, make_user)
    async with session_client(app_server, cookie) as browser:
        assert (await browser.post("/v1/auth/logout")).status_code == 403  # logout too needs the token
        out = await browser.post("/v1/auth/logout", headers={"X-CSRF-Token": body["csrf_token"]})
        after = await browser.get("/v1/me")
    assert out.status_code == 204
    assert re.search(rf'{SESSION_COOKIE}=""?; .*Max-Age=0', out.headers["set-cookie"])
    assert after.status_code == 401 and "sign in again" in after.json()["detail"]


@pytest.mark.parametrize(("column", "interval"), [("last_seen_at", "25 hours"), ("expires_at", "1 second")])
async def test_an_idle_or_expired_session_is_refused(app_server: AppServer, mail_sink: MailSink, make_user,
                                                     db: asyncpg.Connection, column: str, interval: str):
    """Idle past CHATWIZARD_SESSION_IDLE_S (24 h) or past its absolute end: 401, sign in again."""
    body, cookie = await signed_in(app_server, mail_sink, make_user)
    async with session_client(app_server, cookie) as browser:
        assert (await browser.get("/v1/me")).status_code == 200
        await db.execute(f"UPDATE web_sessions SET {column} = now() - interval '{interval}' "
                         "WHERE user_id = $1", body["user_id"])
        refused = await browser.get("/v1/me")
    assert refused.status_code == 401
    assert refused.json()["detail"] == "your session has expired: sign in again"


async def test_erasure_and_a_tier_change_end_sessions(app_server: AppServer, mail_sink: MailSink, make_user):
    admin = await make_user("admin")
    changed, changed_cookie = await signed_in(app_server, mail_sink, make_user)
    erased, erased_cookie = await signed_in(app_server, mail_sink, make_user)
    async with app_server.client(admin.key) as client:
        tier = await client.patch(f"/v1/admin/users/{changed['user_id']}", json={"tier": "pro"})
    assert tier.status_code == 200
    async with session_client(app_server, erased_cookie, erased["csrf_token"]) as browser:
        assert (await browser.delete("/v1/me")).status_code == 204
        assert (await browser.get("/v1/me")).status_code == 401
    async with session_client(app_server, changed_cookie) as browser:
        assert (await browser.get("/v1/me")).status_code == 401


async def test_a_session_user_shares_the_rate_limit_of_their_keys(app_server: AppServer, mail_sink: MailSink,
                                                                  make_user):
    """Free: 100 requests an hour per user, whether by key or by cookie."""
    user = await make_user("free")
    async with app_server.client() as client:
        await client.post("/v1/auth/sign-in-link", json={"email": user.email})
    response = await accept(app_server, link_in(await wait_for_mail(mail_sink, user.email))[2])
    async with app_server.client(user.key) as client:
        by_key = [(await client.get("/v1/me")).status_code for _ in range(50)]
    async with session_client(app_server, cookie_of(response)) as browser:
        by_cookie = [(await browser.get("/v1/me")).status_code for _ in range(50)]
        refused = await browser.get("/v1/me")
    assert by_key == by_cookie == [200] * 50
    assert refused.status_code == 429 and "100 per 1 hour" in refused.json()["detail"]
    assert refused.headers["RateLimit-Limit"] == "100" and refused.headers["RateLimit-Remaining"] == "0"
    assert 0 < int(refused.headers["Retry-After"]) <= 3600


async def test_the_websocket_takes_a_cookie_only_from_the_apps_own_page(app_server: AppServer,
                                                                        mail_sink: MailSink, make_user):
    _, cookie = await signed_in(app_server, mail_sink, make_user)
    url = app_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    with pytest.raises(InvalidStatus) as refused:
        async with connect(url, additional_headers=headers, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403
    async with connect(url, additional_headers=headers, origin=app_server.base_url) as ws:  # type: ignore[arg-type]
        frames = await ask(ws, "How do I script a door in Roblox?")
    assert frames[-1]["type"] == "done"


async def test_with_the_mail_server_down_an_invitation_is_refused_and_not_kept(
        app_server: AppServer, mail_sink: MailSink, make_user, db: asyncpg.Connection):
    admin, email = await make_user("admin"), new_email()
    mail_sink.stop()
    try:
        refused = await invite(app_server, admin.key, email)
    finally:
        mail_sink.start()
    assert refused.status_code == 503 and "mail server is unavailable" in refused.json()["detail"]
    assert int(refused.headers["Retry-After"]) > 0
    index = FieldCipher(FIELD_KEYS).blind_index(email, "users.email")
    assert await db.fetchval("SELECT count(*) FROM sign_in_links WHERE email_index = $1", index) == 0
    assert (await invite(app_server, admin.key, email)).status_code == 201  # asked again, it works
    await wait_for_mail(mail_sink, email)


async def log_out(server: AppServer, admin_key: str, user: dict[str, Any], cookie: str) -> None:
    async with session_client(server, cookie, user["csrf_token"]) as browser:
        assert (await browser.post("/v1/auth/logout")).status_code == 204


async def change_tier(server: AppServer, admin_key: str, user: dict[str, Any], cookie: str) -> None:
    async with server.client(admin_key) as client:
        assert (await client.patch(f"/v1/admin/users/{user['user_id']}", json={"tier": "pro"})).status_code == 200


async def erase(server: AppServer, admin_key: str, user: dict[str, Any], cookie: str) -> None:
    async with server.client(admin_key) as client:
        assert (await client.delete(f"/v1/admin/users/{user['user_id']}")).status_code == 204


@pytest.mark.parametrize("end", [log_out, change_tier, erase], ids=["logout", "tier", "erased"])
async def test_an_open_websocket_closes_within_seconds_when_its_session_ends(
        end, app_server: AppServer, mail_sink: MailSink, make_user):
    admin = await make_user("admin")
    user, cookie = await signed_in(app_server, mail_sink, make_user)
    url = app_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
    async with connect(url, additional_headers=headers, origin=app_server.base_url) as ws:  # type: ignore[arg-type]
        assert (await ask(ws, "How do I script a door in Roblox?"))[-1]["type"] == "done"
        closing = asyncio.create_task(closed_at(ws))
        await end(app_server, admin.key, user, cookie)
        stopped = time.time()
        when, code = await asyncio.wait_for(closing, timeout=15)
    assert code == 1008
    assert when - stopped < 3, f"the socket stayed open {when - stopped:.1f} s"
