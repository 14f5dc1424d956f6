"""The audit trail: security events are recorded with who, what, when and from where, can be read by
admins only, and cannot be changed or deleted outside retention and erasure."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from chatwizard.audit.service import FLUSH_S, MAX_KINDS, Kind, Tallies
from chatwizard.core.migrate import ensure_app_login, migration_files
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import PostgresNode
from chatwizard.estate.processes import stop_process
from tests.conftest import AppServer, Databases, app_dsn, app_env, start_server


async def audit(app_server: AppServer, admin_key: str, **params: str) -> list[dict]:
    async with app_server.client(admin_key) as client:
        response = await client.get("/v1/admin/audit", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    return response.json()


async def audit_once(app_server: AppServer, admin_key: str, ready: Callable[[list[dict]], bool],
                     **params: str) -> list[dict]:
    """The trail as soon as ``ready`` holds: failures and denials reach it within FLUSH_S."""
    deadline = time.monotonic() + 4 * FLUSH_S
    while not ready(events := await audit(app_server, admin_key, **params)) and time.monotonic() < deadline:
        await asyncio.sleep(0.2)
    return events


async def test_security_events_name_who_what_when_and_where(app_server: AppServer, make_user):
    started = datetime.now(UTC)
    admin, user = await make_user("admin"), await make_user("free")
    async with app_server.client("cwk_not-a-real-key") as client:
        assert (await client.get("/v1/me")).status_code == 401
    async with app_server.client(user.key) as client:
        assert (await client.get("/v1/admin/users")).status_code == 403
        assert (await client.get("/v1/admin/audit")).status_code == 403
        created = (await client.post("/v1/keys", json={"name": "laptop"})).json()
        rotated = (await client.post(f"/v1/keys/{created['id']}/rotate")).json()
        assert (await client.delete(f"/v1/keys/{rotated['id']}")).status_code == 204
    async with app_server.client(admin.key) as client:
        assert (await client.patch(f"/v1/admin/users/{user.id}", json={"tier": "pro"})).json()["tier"] == "pro"
    events = await audit_once(app_server, admin.key, lambda found: any(
        e["action"] == "authz_denied" and e["actor_user"] == str(user.id) for e in found), since=started.isoformat())
    mine = {e["action"]: e for e in events if e["actor_user"] == str(user.id)}
    assert mine["authz_denied"]["target"] == "/v1/admin/users" and mine["authz_denied"]["outcome"] == "denied"
    assert mine["key_created"]["target"] == f"key:{created['id']}"
    assert mine["key_rotated"]["detail"] == {"replacement": rotated["id"], "overlap_s": 86400}  # a day, not 0
    assert mine["key_revoked"]["target"] == f"key:{rotated['id']}"
    assert all(e["source"] == "127.0.0.1" and datetime.fromisoformat(e["at"]) >= started for e in mine.values())
    [role] = [e for e in events if e["action"] == "role_changed" and e["target"] == f"user:{user.id}"]
    assert role["actor_user"] == str(admin.id) and role["detail"] == {"from": "free", "to": "pro"}
    assert role["subject_user"] == str(user.id) and role["occurrences"] == 1
    [failure, *_] = await audit_once(app_server, admin.key, bool, action="auth_failure")
    assert failure["actor_user"] is None and failure["source"] == "127.0.0.1"
    assert "API key" in failure["detail"]["reason"]  # why it failed, never the key itself


async def test_a_client_cannot_name_its_own_address(app_server: AppServer, make_user):
    """X-Forwarded-For is believed only from configured proxies (none here): the trail has the peer."""
    admin, user = await make_user("admin"), await make_user("free")
    async with app_server.client(user.key) as client:
        assert (await client.get("/v1/admin/users", headers={"X-Forwarded-For": "203.0.113.66"})).status_code == 403
    [denial] = [e for e in await audit_once(app_server, admin.key, lambda found: any(
        e["actor_user"] == str(user.id) for e in found), action="authz_denied") if e["actor_user"] == str(user.id)]
    assert denial["source"] == "127.0.0.1"


async def test_rate_limit_hits_are_audited(app_server: AppServer, make_user):
    admin, user = await make_user("admin"), await make_user("free")
    async with app_server.client(user.key) as client:
        statuses = [(await client.get("/v1/me")).status_code for _ in range(101)]
    assert statuses[-1] == 429
    [hit] = [e for e in await audit_once(app_server, admin.key, lambda found: any(
        e["actor_user"] == str(user.id) for e in found), action="rate_limited") if e["actor_user"] == str(user.id)]
    assert hit["target"] == "/v1/me" and hit["outcome"] == "denied" and hit["occurrences"] == 1


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'nothing_happened'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
async def test_the_trail_is_append_only(databases: Databases, statement: str):
    conn = await asyncpg.connect(databases.primary.dsn)
    try:
        await conn.execute("INSERT INTO audit_events (action, outcome) VALUES ('test_marker', 'success')")
        with pytest.raises(asyncpg.RaiseError, match="append-only"):
            await conn.execute(statement)
    finally:
        await conn.close()


@pytest.mark.parametrize("statement", [
    "UPDATE audit_events SET action = 'nothing_happened'",
    "DELETE FROM audit_events",
    "TRUNCATE audit_events",
])
async def test_the_apps_own_role_cannot_change_the_trail_even_with_the_maintenance_flag(
        databases: Databases, statement: str):
    """What a compromised app process could try: it may add and read events, never rewrite them."""
    conn = await asyncpg.connect(app_dsn(databases.primary))
    try:
        await conn.execute("INSERT INTO audit_events (action, outcome) VALUES ('test_marker', 'success')")
        assert await conn.fetchval("SELECT count(*) FROM audit_events WHERE action = 'test_marker'") >= 1
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            async with conn.transaction():
                await conn.execute("SET LOCAL chatwizard.audit_maintenance = 'on'")
                await conn.execute(statement)
    finally:
        await conn.close()


async def test_migrate_creates_the_app_login_and_can_change_its_password(databases: Databases):
    login = "cw_login_probe"
    await ensure_app_login(databases.primary.dsn, login, "first 'quoted' password")
    first = databases.primary.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{login}'")
    await ensure_app_login(databases.primary.dsn, login, "second password")
    second = databases.primary.psql(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{login}'")
    assert first.startswith("SCRAM-SHA-256$") and second.startswith("SCRAM-SHA-256$") and first != second
    assert databases.primary.psql(f"SELECT pg_has_role('{login}', 'chatwizard_app', 'MEMBER')") == "t"
    assert databases.primary.psql(f"SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = '{login}'") == "f"


@pytest.fixture
def proxied_server(databases, redis_node, fake_llm, catalogue, tmp_path: Path) -> Iterator[AppServer]:
    """One worker behind a reverse proxy on loopback, which it is configured to believe."""
    env = app_env(databases, redis_node, fake_llm, tmp_path, CHATWIZARD_WORKERS="1",
                  CHATWIZARD_FORWARDED_ALLOW_IPS="127.0.0.1")
    server = start_server(env, tmp_path)
    yield server
    stop_process(server.process)


async def test_every_failure_and_denial_is_counted_per_route_and_source_in_few_rows(
        proxied_server: AppServer, databases: Databases, make_user):
    """A flood is stored as a row per (event, route, source, actor) a minute that says how many there were,
    not dropped: bad keys from two addresses the proxy names, and a key probing two admin routes."""
    started = datetime.now(UTC)
    user = await make_user("pro")
    sent: Counter[tuple[str, str, str]] = Counter()
    bad = "cwk_" + "B" * 36
    floods = [(bad, "/v1/me", "198.51.100.1", 120), (bad, "/v1/paths", "198.51.100.1", 30),
              (bad, "/v1/me", "198.51.100.2", 50), (user.key, "/v1/admin/users", "198.51.100.3", 70),
              (user.key, "/v1/admin/audit", "198.51.100.3", 20)]
    for key, path, source, times in floods:
        async with proxied_server.client(key) as client:
            statuses = {(await client.get(path, headers={"X-Forwarded-For": source})).status_code
                        for _ in range(times)}
        action = "auth_failure" if key == bad else "authz_denied"
        assert statuses == {401 if key == bad else 403}
        sent[(action, path, source)] += times
    stop_process(proxied_server.process)  # a stopping process writes what it has tallied
    conn = await asyncpg.connect(databases.primary.dsn)
    try:
        rows = await conn.fetch(
            "SELECT action, target, host(source) AS source, occurrences FROM audit_events "
            "WHERE at >= $1 AND host(source) LIKE '198.51.100.%'", started)
    finally:
        await conn.close()
    stored: Counter[tuple[str, str, str]] = Counter()
    for row in rows:
        stored[(row["action"], row["target"], row["source"])] += row["occurrences"]
    assert stored == sent, "every event is in the trail, on its own route and source"
    per_kind = Counter((r["action"], r["target"], r["source"]) for r in rows)
    assert max(per_kind.values()) <= 2, f"a flood became a write storm: {per_kind}"


def test_a_spray_from_many_sources_is_folded_but_every_event_is_counted():
    tallies, at = Tallies(), datetime.now(UTC)

    def failure(source: str) -> Kind:
        return Kind("auth_failure", "failure", None, None, source, "/v1/me", None, "{}")

    for i in range(MAX_KINDS + 500):
        tallies.add(failure(f"10.1.{i // 250}.{i % 250}"), at, now=0.0)
    rows = tallies.take(now=0.0)
    assert len(rows) == MAX_KINDS + 1 and sum(r.count for r in rows) == MAX_KINDS + 500
    [folded] = [r for r in rows if r.kind.source is None]
    assert folded.count == 500 and folded.kind.target == "/v1/me"
    # A kind's repeats wait for its window and then take one row with their count; a quiet kind is forgotten.
    for now in (1.0, 2.0):
        tallies.add(failure("10.1.0.0"), at, now=now)
    assert tallies.take(now=3.0) == []
    [repeats] = tallies.take(now=61.0)
    assert repeats.count == 2 and repeats.kind == failure("10.1.0.0")
    assert tallies.take(now=200.0) == [] and tallies.due == {}


async def test_erasure_reaches_every_row_that_names_the_user(app_server: AppServer, databases: Databases,
                                                          make_user):
    admin = await make_user("admin")
    async with app_server.client(admin.key) as client:
        user = (await client.post("/v1/admin/users", json={"email": f"erased-{time.time_ns()}@example.com"})).json()
        key = (await client.post(f"/v1/admin/users/{user['id']}/keys", json={"name": "phone"})).json()
        assert (await client.patch(f"/v1/admin/users/{user['id']}", json={"tier": "pro"})).status_code == 200
    async with app_server.client(key["key"]) as client:
        assert (await client.post("/v1/keys", json={"name": "laptop"})).status_code == 201
        assert (await client.get("/v1/admin/users")).status_code == 403  # tallied: written after the erasure
    async with app_server.client(admin.key) as client:
        assert (await client.delete(f"/v1/admin/users/{user['id']}")).status_code == 204
    await asyncio.sleep(2 * FLUSH_S)
    assert databases.primary.psql(
        f"SELECT count(*) FROM audit_events a WHERE a::text LIKE '%{user['id']}%'") == "0"
    kept = await audit(app_server, admin.key, since=datetime.fromtimestamp(time.time() - 60, UTC).isoformat())
    [made] = [e for e in kept if e["target"] == f"key:{key['id']}" and e["action"] == "key_created"]
    assert made["actor_user"] == str(admin.id) and made["subject_user"] is None  # the admin's act stays


async def test_the_apps_role_cannot_shorten_retention_or_forget_a_live_user(databases: Databases, make_user):
    """What a compromised app process could try with the two functions erasure and retention use."""
    user = await make_user()
    conn = await asyncpg.connect(app_dsn(databases.primary))
    try:
        for days in (0, 29):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="at least 30 days"):
                await conn.fetchval("SELECT audit_purge($1, 1000)", days)
        assert await conn.fetchval("SELECT audit_purge(30, 0)") == 0  # what retention does, it still may
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="still exists"):
            await conn.fetchval("SELECT audit_forget($1)", user.id)
    finally:
        await conn.close()


async def test_migration_0006_takes_erased_users_out_of_older_rows(tmp_path: Path):
    """Rows written before 0006 named the user acted on in `target` or in `detail` ({"for": "user:<id>"})."""
    node = PostgresNode(tmp_path / "pg", free_port())
    node.init_primary()
    node.start()
    try:
        node.create_database()
        conn = await asyncpg.connect(node.dsn)
        await conn.execute("CREATE TABLE schema_migrations (name text PRIMARY KEY)")
        migrations = dict(migration_files())
        for older in (sql for name, sql in migrations.items() if name < "0006"):
            await conn.execute(older)
        live = str(await conn.fetchval("INSERT INTO users (email, tier) VALUES ('x', 'free') RETURNING id"))
        erased = str(uuid.uuid4())
        await conn.execute(
            "INSERT INTO audit_events (action, outcome, target, detail) VALUES "
            "('role_changed', 'success', 'user:' || $1, '{\"to\": \"pro\"}'), "
            "('key_created', 'success', 'key:k1', jsonb_build_object('for', 'user:' || $1)), "
            "('key_created', 'success', 'key:k2', jsonb_build_object('for', 'user:' || $2))", live, erased)
        async with conn.transaction():
            await conn.execute(migrations["0006_audit_truth"])
        rows = [(r["target"], r["subject_user"] and str(r["subject_user"]), r["detail"]) for r in
                await conn.fetch("SELECT target, subject_user, detail FROM audit_events ORDER BY id")]
        await conn.close()
    finally:
        node.stop("immediate")
    assert rows == [(f"user:{live}", live, '{"to": "pro"}'), ("key:k1", live, "{}"), ("key:k2", None, "{}")]
