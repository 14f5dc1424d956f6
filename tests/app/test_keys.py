"""API key lifecycle: rotation keeps the old key only for the overlap window; revoked and expired keys
are refused; keys are stored only as hashes; other users' keys cannot be touched."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx
import pytest
import redis
from fastapi.routing import APIRoute
from pydantic import BaseModel
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from chatwizard.accounts import service as accounts
from chatwizard.core.cache import INVALIDATIONS
from chatwizard.core.security import generate_key, well_formed
from chatwizard.main import create_app
from chatwizard.policy import ROUTE_POLICY, route_scope
from tests.conftest import AppServer, Databases


def test_a_key_with_a_typo_or_the_wrong_shape_is_refused_by_its_checksum_and_format():
    key = generate_key()
    assert well_formed(key)
    typo = key[:10] + ("A" if key[10] != "A" else "B") + key[11:]
    for bad in (typo, key[:-1], key + "x", "cwx_" + key[4:], key[:8] + "-" + key[9:], key.upper(),
                key[:8] + "\u0661" + key[9:], ""):
        assert not well_formed(bad), bad


async def test_rotation_overlap_then_expiry(app_server: AppServer, databases: Databases, redis_node, make_user):
    user = await make_user()
    async with app_server.client(user.key) as client:
        [old] = (await client.get("/v1/keys")).json()
        rotated = await client.post(f"/v1/keys/{old['id']}/rotate")
        assert rotated.status_code == 201
        new_key = rotated.json()["key"]
        assert new_key.startswith("cwk_") and new_key != user.key
        assert (await client.get("/v1/me")).status_code == 200, "the old key stopped inside the overlap"
        keys = {k["id"]: k for k in (await client.get("/v1/keys")).json()}
    assert keys[old["id"]]["expires_at"] is not None and len(keys) == 2
    async with app_server.client(new_key) as client:
        assert (await client.get("/v1/me")).status_code == 200
    # A day passes: move the window's end into the past, in the database and in the lookup cache
    # (which holds the same expiry time and checks it on every use), as the app drops an entry: delete
    # it and publish the deletion to every process's near cache.
    databases.primary.psql(f"UPDATE api_keys SET expires_at = now() - interval '1 second' WHERE id = '{old['id']}'")
    lookup = f"cw:key:{hashlib.sha256(user.key.encode()).hexdigest()}"
    store = redis.Redis.from_url(redis_node.url)
    store.delete(lookup)
    store.publish(INVALIDATIONS, json.dumps([lookup]))
    async with app_server.client(user.key) as client:
        expired = await client.get("/v1/me")
    assert expired.status_code == 401 and expired.json()["detail"] == "API key expired"
    async with app_server.client(new_key) as client:
        assert (await client.post(f"/v1/keys/{old['id']}/rotate")).status_code == 404  # expired: nothing to rotate
    stored = databases.primary.psql("SELECT string_agg(encode(key_hash, 'hex'), ' ') FROM api_keys")
    assert user.key not in stored and new_key not in stored


async def test_others_keys_cannot_be_rotated_or_revoked(app_server: AppServer, make_user):
    owner, other = await make_user(), await make_user()
    async with app_server.client(owner.key) as client:
        [key] = (await client.get("/v1/keys")).json()
    async with app_server.client(other.key) as client:
        assert (await client.post(f"/v1/keys/{key['id']}/rotate")).status_code == 404
        assert (await client.delete(f"/v1/keys/{key['id']}")).status_code == 404
    async with app_server.client(owner.key) as client:
        assert (await client.get("/v1/me")).status_code == 200


# --- No key obtains a wider key, by any route ------------------------------------------------------

@dataclass
class Caller:
    user_id: UUID
    db: asyncpg.Connection


Attempt = Callable[[httpx.AsyncClient, Caller, list[str], datetime | None], Awaitable[httpx.Response]]


def minting_routes() -> set[tuple[str, str]]:
    """Every route that hands out an API key: its success response has a `key` field. Read from the
    app itself, so a new route that mints keys fails the test below until it is covered."""
    return {(method, route.path) for route in create_app().routes if isinstance(route, APIRoute)
            and isinstance(route.response_model, type) and issubclass(route.response_model, BaseModel)
            and "key" in route.response_model.model_fields for method in route.methods}


def key_body(scopes: list[str], expires_at: datetime | None) -> dict[str, Any]:
    return {"name": "wider?", "scopes": scopes, "expires_at": expires_at.isoformat() if expires_at else None}


async def create_mine(client: httpx.AsyncClient, caller: Caller, scopes: list[str],
                      expires_at: datetime | None) -> httpx.Response:
    return await client.post("/v1/keys", json=key_body(scopes, expires_at))


async def rotate_mine(client: httpx.AsyncClient, caller: Caller, scopes: list[str],
                      expires_at: datetime | None) -> httpx.Response:
    """Rotate another key of the same account that has these powers: the replacement goes to the caller."""
    _, target = await accounts.create_key(caller.db, caller.user_id, "target", scopes=scopes,
                                          expires_at=expires_at)
    return await client.post(f"/v1/keys/{target['id']}/rotate")


async def admin_create(client: httpx.AsyncClient, caller: Caller, scopes: list[str],
                       expires_at: datetime | None) -> httpx.Response:
    return await client.post(f"/v1/admin/users/{caller.user_id}/keys", json=key_body(scopes, expires_at))


MINTERS: dict[tuple[str, str], Attempt] = {
    ("POST", "/v1/keys"): create_mine,
    ("POST", "/v1/keys/{key_id}/rotate"): rotate_mine,
    ("POST", "/v1/admin/users/{user_id}/keys"): admin_create,
}


def test_every_key_minting_route_is_covered_by_the_monotonicity_test():
    assert minting_routes() == set(MINTERS)


@pytest.mark.parametrize("route", sorted(MINTERS))
async def test_no_route_gives_a_key_more_scopes_a_later_expiry_or_a_higher_tier(
        route, app_server: AppServer, db: asyncpg.Connection, make_user):
    """A scoped, expiring key asks each route for keys wider in each way; only a narrower one is given."""
    scope = route_scope(route[1])
    tier = "admin" if ROUTE_POLICY[route] == "admin" else "free"
    soon = datetime.now(UTC).replace(microsecond=0) + timedelta(days=1)
    earlier = soon - timedelta(hours=1)
    other = "chat" if scope != "chat" else "videos"
    wider = [([], earlier), ([scope, other], earlier), ([scope], None), ([scope], soon + timedelta(days=30))]
    for scopes, expires_at in [*wider, ([scope], earlier)]:
        user = await make_user(tier)  # a fresh account each time: the bound on active keys stays out of it
        key, _ = await accounts.create_key(db, user.id, "caller", scopes=[scope], expires_at=soon)
        async with app_server.client(key) as client:
            got = await MINTERS[route](client, Caller(user.id, db), scopes, expires_at)
        if (scopes, expires_at) in wider:
            assert got.status_code == 403, (route, scopes, expires_at, got.status_code, got.text)
            continue
        assert got.status_code == 201, got.text
        minted = await db.fetchrow(
            "SELECT k.scopes, k.expires_at, u.tier FROM api_keys k JOIN users u ON u.id = k.user_id "
            "WHERE k.key_hash = $1", hashlib.sha256(got.json()["key"].encode()).digest())
        assert (minted["scopes"], minted["expires_at"], minted["tier"]) == ([scope], earlier, tier)


async def test_a_free_account_holds_at_most_five_active_keys_and_a_rotation_may_go_one_over(
        app_server: AppServer, make_user):
    user = await make_user("free")  # one key already
    async with app_server.client(user.key) as client:
        made = [await client.post("/v1/keys", json={"name": f"client {i}"}) for i in range(5)]
        assert [r.status_code for r in made] == [201] * 4 + [409]
        assert made[-1].json()["detail"] == ("this account holds 5 active API keys and a free account may hold 5; "
                                             "revoke one (DELETE /v1/keys/{id}) first")
        first, second = made[0].json()["id"], made[1].json()["id"]
        assert (await client.post(f"/v1/keys/{first}/rotate")).status_code == 201  # 6 for the overlap
        assert (await client.post(f"/v1/keys/{second}/rotate")).status_code == 409
        assert (await client.delete(f"/v1/keys/{first}")).status_code == 204  # the rotated-out key
        assert (await client.post(f"/v1/keys/{second}/rotate")).status_code == 201


async def test_concurrent_mints_cannot_pass_the_bound_together(app_server: AppServer, make_user):
    user = await make_user("free")  # one key already
    async with app_server.client(user.key) as client:
        made = await asyncio.gather(*(client.post("/v1/keys", json={"name": f"racer {i}"}) for i in range(12)))
        held = len([k for k in (await client.get("/v1/keys")).json() if k["revoked_at"] is None])
    assert sorted(r.status_code for r in made) == [201] * 4 + [409] * 8
    assert held == 5


async def ask(ws: Any, question: str) -> list[dict[str, Any]]:
    await ws.send(json.dumps({"question": question}))
    frames = [json.loads(await ws.recv())]
    while frames[-1]["type"] not in ("done", "error"):
        frames.append(json.loads(await ws.recv()))
    return frames


# Each ends the socket's key and returns when, by the clock of this machine, the key stopped working.
async def revoke_in_another_process(app_server: AppServer, db: asyncpg.Connection, user: Any,
                                    key_id: UUID) -> datetime:
    """`chatwizard keys revoke`: a process of its own, so the news must cross processes to reach the socket."""
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    done = await asyncio.create_subprocess_exec(chatwizard, "keys", "revoke", str(key_id), env=app_server.env,
                                                stdout=asyncio.subprocess.DEVNULL)
    assert await done.wait() == 0
    return await db.fetchval("SELECT revoked_at FROM api_keys WHERE id = $1", key_id)


async def erase_account(app_server: AppServer, db: asyncpg.Connection, user: Any, key_id: UUID) -> datetime:
    async with app_server.client(user.key) as client:  # the account's other key
        assert (await client.delete("/v1/me")).status_code == 204
    return datetime.now(UTC)  # at the latest


async def let_it_expire(app_server: AppServer, db: asyncpg.Connection, user: Any, key_id: UUID) -> datetime:
    return await db.fetchval("SELECT expires_at FROM api_keys WHERE id = $1", key_id)


@pytest.mark.parametrize("end", [revoke_in_another_process, erase_account, let_it_expire],
                         ids=["revoked", "erased", "expired"])
async def test_an_open_websocket_closes_within_seconds_when_its_key_stops_working(
        end, app_server: AppServer, db: asyncpg.Connection, make_user):
    user = await make_user("pro")
    expires_at = datetime.now(UTC) + timedelta(seconds=3) if end is let_it_expire else None
    key, row = await accounts.create_key(db, user.id, "socket", expires_at=expires_at)
    url = app_server.base_url.replace("http", "ws") + "/v1/chat/ws"
    async with connect(url, additional_headers={"Authorization": f"Bearer {key}"}) as ws:
        assert (await ask(ws, "Which video shows a pressure plate door in Minecraft?"))[-1]["type"] == "done"
        closing = asyncio.create_task(closed_at(ws))  # listening from now on, so the close is timed as it comes
        stopped = await end(app_server, db, user, row["id"])
        when, code = await asyncio.wait_for(closing, timeout=15)
    took = when - stopped.timestamp()
    print(f"{end.__name__}: the socket closed {took:.2f} s after its key stopped working")
    assert code == 1008
    assert took < 3, f"the socket stayed open {took:.1f} s"


async def closed_at(ws: Any) -> tuple[float, int | None]:
    """When the server closed the socket (this machine's clock), and with which code."""
    try:
        frame = await ws.recv()
    except ConnectionClosed as closed:
        return time.time(), closed.rcvd.code if closed.rcvd else None
    raise AssertionError(f"a frame arrived instead of the close: {frame}")
