"""schemathesis fuzzes every operation of the live OpenAPI schema: no 5xx, responses match the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import AppServer

ST = str(Path(sys.executable).with_name("st"))


async def test_fuzzing_finds_no_server_error_or_schema_violation(app_server: AppServer, make_user):
    user = await make_user("pro")
    result = subprocess.run(
        [ST, "run", f"{app_server.base_url}/openapi.json", "-H", f"Authorization: Bearer {user.key}",
         "--checks", "not_a_server_error,response_schema_conformance", "--max-examples", "15",
         "--phases", "examples,fuzzing", "--seed", "7"],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-4000:]
    assert "Tested: " in result.stdout
