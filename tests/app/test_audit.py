"""The audit trail: security events are recorded with who, what, when and from where, can be read by
admins only, and cannot be changed or deleted outside retention and erasure."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest

from chatwizard.core.migrate import ensure_app_login
from tests.conftest import AppServer, Databases, app_dsn, metric_value


async def audit(app_server: AppServer, admin_key: str, **params: str) -> list[dict]:
    async with app_server.client(admin_key) as client:
        response = await client.get("/v1/admin/audit", params={"limit": "1000", **params})
    assert response.status_code == 200, response.text
    return response.json()


async def test_security_events_name_who_what_when_and_where(app_server: AppServer, make_user):
    started = datetime.now(UTC)
    admin, user = await make_user("admin"), await make_user("free")
    failures_before = sum(metric_value(app_server.metrics(), "chatwizard_audit_events_total",
                                       action="auth_failure", result=r) for r in ("stored", "repeat"))
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
    events = await audit(app_server, admin.key, since=started.isoformat())
    mine = {e["action"]: e for e in events if e["actor_user"] == str(user.id)}
    assert mine["authz_denied"]["target"] == "/v1/admin/users" and mine["authz_denied"]["outcome"] == "denied"
    assert mine["key_created"]["target"] == f"key:{created['id']}"
    assert mine["key_rotated"]["detail"]["replacement"] == rotated["id"]
    assert mine["key_revoked"]["target"] == f"key:{rotated['id']}"
    assert all(e["source"] == "127.0.0.1" and datetime.fromisoformat(e["at"]) >= started for e in mine.values())
    [role] = [e for e in events if e["action"] == "role_changed" and e["target"] == f"user:{user.id}"]
    assert role["actor_user"] == str(admin.id) and role["detail"] == {"from": "free", "to": "pro"}
    # Failed logins from one address are stored once a minute per process, and every one is counted.
    failures_after = sum(metric_value(app_server.metrics(), "chatwizard_audit_events_total",
                                      action="auth_failure", result=r) for r in ("stored", "repeat"))
    assert failures_after == failures_before + 1
    [failure, *_] = await audit(app_server, admin.key, action="auth_failure")
    assert failure["actor_user"] is None and failure["source"] == "127.0.0.1"
    assert "API key" in failure["detail"]["reason"]  # why it failed, never the key itself


async def test_rate_limit_hits_are_audited(app_server: AppServer, make_user):
    admin, user = await make_user("admin"), await make_user("free")
    async with app_server.client(user.key) as client:
        statuses = [(await client.get("/v1/me")).status_code for _ in range(101)]
    assert statuses[-1] == 429
    [hit] = [e for e in await audit(app_server, admin.key, action="rate_limited")
             if e["actor_user"] == str(user.id)]
    assert hit["target"] == "/v1/me" and hit["outcome"] == "denied"


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
