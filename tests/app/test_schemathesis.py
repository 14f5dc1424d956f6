"""schemathesis fuzzes every operation of the live OpenAPI schema: no 5xx, responses match the schema
(bodies, server-sent events, problem details and their media types)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from chatwizard.core.security import SESSION_COOKIE
from chatwizard.main import create_app
from chatwizard.web_sessions.service import start_session
from tests.conftest import AppServer

OPERATIONS = sum(len(methods) for methods in create_app().openapi()["paths"].values())
ST = str(Path(sys.executable).with_name("st"))
# What can take the caller's own key or role away (schemathesis reuses the ids responses give it, the
# caller's among them): fuzzed among the rest, it would leave every later operation a 401 or 403.
DESTRUCTIVE = ["DELETE /v1/me", "DELETE /v1/keys/{key_id}", "PATCH /v1/admin/users/{user_id}",
               "DELETE /v1/admin/users/{user_id}"]
# A browser session's own route: it answers a key with 401 (fuzzed with a session cookie instead).
COOKIE_ONLY = ["GET /v1/session"]


def fuzz(app_server: AppServer, credential: str, selection: str, chosen: list[str]) -> str:
    names = [arg for name in chosen for arg in (f"--{selection}-name", name)]
    result = subprocess.run(
        [ST, "run", f"{app_server.base_url}/openapi.json", "-H", credential,
         "--checks", "not_a_server_error,response_schema_conformance,content_type_conformance",
         "--max-examples", "15", "--phases", "examples,fuzzing", "--seed", "7", *names],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    return result.stdout


async def test_fuzzing_finds_no_server_error_or_schema_violation(app_server: AppServer, make_user, db):
    """As an admin, who may call every route; what takes a key away, last and with a key of its own; the
    session's own route with a session."""
    def bearer(key: str) -> str:
        return f"Authorization: Bearer {key}"

    report = fuzz(app_server, bearer((await make_user("admin")).key), "exclude", DESTRUCTIVE + COOKIE_ONLY)
    assert f"Tested: {OPERATIONS - len(DESTRUCTIVE) - len(COOKIE_ONLY)}" in report
    assert "Authentication failed" not in report
    assert f"Tested: {len(DESTRUCTIVE)}" in fuzz(app_server, bearer((await make_user("admin")).key), "include",
                                                  DESTRUCTIVE)
    session, _ = await start_session(db, (await make_user("free")).id, 3600)
    report = fuzz(app_server, f"Cookie: {SESSION_COOKIE}={session}", "include", COOKIE_ONLY)
    assert f"Tested: {len(COOKIE_ONLY)}" in report and "Authentication failed" not in report
