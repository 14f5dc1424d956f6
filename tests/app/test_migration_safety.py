"""Migrations are rollback-safe by test: the release before a schema change still works on the new schema.

Pods of the previous release keep serving while a new release's migrations run (and after a rollback of
the code), so a migration may add (expand) but not drop, rename or retype anything the previous release
still uses; that waits for a later release (contract). Two checks:
- every migration's destructive statements are compared with the code that ran before it was added;
- the previous release's own code (from git) runs its k6 smoke against the current schema.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from functools import cache
from io import BytesIO
from pathlib import Path

import pytest

from chatwizard.core.migrate import migration_files
from chatwizard.estate.processes import stop_process
from tests.conftest import app_env, create_user, start_server

ROOT = Path(__file__).parents[2]
MIGRATIONS = "app/chatwizard/migrations"
K6 = str(Path(sys.executable).with_name("k6"))
# Statements that take away something code may use by name: (pattern, what happens to the name).
DESTRUCTIVE = [
    (r"\bDROP\s+(?:TABLE|VIEW|FUNCTION|TYPE|INDEX|SEQUENCE)\s+(?:IF\s+EXISTS\s+)?([\w.]+)", "dropped"),
    (r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?[\w.]+\s+DROP\s+(?:COLUMN\s+)?(?:IF\s+EXISTS\s+)?(?!CONSTRAINT\b)(\w+)",
     "dropped"),
    (r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?([\w.]+)\s+RENAME\s+TO\b", "renamed"),
    (r"\bALTER\s+TABLE\s+[\w.]+\s+RENAME\s+(?:COLUMN\s+)?(\w+)\s+TO\b", "renamed"),
    (r"\bALTER\s+TABLE\s+[\w.]+\s+ALTER\s+(?:COLUMN\s+)?(\w+)\s+(?:SET\s+DATA\s+)?TYPE\b", "retyped"),
    (r"\bALTER\s+TABLE\s+[\w.]+\s+ALTER\s+(?:COLUMN\s+)?(\w+)\s+SET\s+NOT\s+NULL\b", "made NOT NULL"),
]
CREATED = re.compile(r"\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:UNIQUE\s+)?(?:TABLE|VIEW|FUNCTION|TYPE|INDEX|SEQUENCE|ROLE)"
                     r"\s+(?:CONCURRENTLY\s+)?(?:IF\s+NOT\s+EXISTS\s+)?([\w.]+)", re.I)
# A unique or primary key constraint by Postgres's default name, <table>_<column>_key / _pkey.
DROPPED_CONSTRAINT = re.compile(r"\bALTER\s+TABLE\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?(\w+)\s+DROP\s+CONSTRAINT\s+"
                                r"(?:IF\s+EXISTS\s+)?(\w+)", re.I)
REVOKED = re.compile(r"\bREVOKE\s+.+?\s+ON\s+(?:FUNCTION\s+|TABLE\s+)?(.+?)\s+FROM\s+([\w\s,]+?);", re.I | re.S)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


@cache
def added_in(migration: str) -> str:
    commit = git("log", "-1", "--diff-filter=A", "--format=%H", "--", f"{MIGRATIONS}/{migration}.sql").strip()
    assert commit, f"{migration}: not in the git history (a shallow clone? CI needs fetch-depth 0)"
    return commit


def previous_release() -> str:
    """The code that ran before the newest migration existed: the commit before the one adding it."""
    newest = migration_files()[-1][0]
    return git("rev-parse", f"{added_in(newest)}^").strip()


def code_at(commit: str) -> str:
    """The previous code's Python and SQL, migrations excepted (they are history, not readers)."""
    files = [f for f in git("ls-tree", "-r", "--name-only", commit, "app/").split()
             if f.endswith((".py", ".sql")) and not f.startswith(MIGRATIONS)]
    return "\n".join(git("show", f"{commit}:{f}") for f in files)


@dataclass(frozen=True)
class Break:
    migration: str
    name: str
    change: str


def reads(code: str, name: str) -> bool:
    return re.search(rf"\b{re.escape(name)}\b", code) is not None


def breaks(migration: str, sql: str, older_code: str) -> list[Break]:
    """What ``sql`` takes away from code like ``older_code``: names it drops, renames or retypes; unique
    constraints its upserts rely on (ON CONFLICT (column)); grants of roles it logs in as (a REVOKE
    FROM PUBLIC is not counted: the app's roles hold their own grants)."""
    found = []
    created = {name.split(".")[-1] for name in CREATED.findall(sql)}
    for pattern, change in DESTRUCTIVE:
        for name in re.findall(pattern, sql, re.I | re.S):
            bare = name.split(".")[-1]
            if bare not in created and reads(older_code, bare):
                found.append(Break(migration, bare, change))
    for table, constraint in DROPPED_CONSTRAINT.findall(sql):
        column = re.fullmatch(rf"{table}_(\w+?)_p?key", constraint)
        upsert = column and re.search(rf"ON\s+CONFLICT\s*\(\s*{column[1]}\s*\)", older_code, re.I)
        if reads(older_code, constraint) or upsert:
            found.append(Break(migration, constraint, "dropped"))
    for objects, roles in REVOKED.findall(sql):
        if any(reads(older_code, role) for role in re.split(r"[\s,]+", roles.strip()) if role.upper() != "PUBLIC"):
            names = {re.sub(r"\(.*", "", o).strip().split(".")[-1] for o in re.split(r",\s*(?![^()]*\))", objects)}
            found += [Break(migration, name, "revoked") for name in sorted(names) if reads(older_code, name)]
    return found


def test_the_check_sees_a_drop_of_what_old_code_reads():
    """A column the older code selects, dropped: the check must name it (guards the patterns)."""
    assert breaks("9999_x", "ALTER TABLE videos DROP COLUMN title;", "SELECT title FROM videos") == [
        Break("9999_x", "title", "dropped")]
    assert breaks("9999_x", "ALTER TABLE videos RENAME COLUMN title TO name;", "SELECT title") == [
        Break("9999_x", "title", "renamed")]
    assert breaks("9999_x", "ALTER TABLE videos ADD COLUMN subtitle text;", "SELECT title") == []


def test_no_migration_takes_away_what_the_release_before_it_reads():
    found = set()
    for name, sql in migration_files():
        parents = git("rev-list", "--parents", "-n1", added_in(name)).split()[1:]
        older = code_at(parents[0]) if parents else ""  # the first migration came with the first code
        found |= {(b.migration, b.name, b.change) for b in breaks(name, sql, older)}
    assert not found, (f"{sorted(found)}: the release before still uses these; keep them now and take them "
                       "away in a later release (expand, then contract: docs/deploy.md)")


@pytest.fixture(scope="module")
def previous_code(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("previous-release")
    archive = subprocess.run(["git", "archive", previous_release(), "app", "loadtest"], cwd=ROOT,
                             capture_output=True, check=True).stdout
    with tarfile.open(fileobj=BytesIO(archive)) as tar:
        tar.extractall(root, filter="data")
    return root


async def test_the_previous_release_passes_its_smoke_on_the_current_schema(
        databases, redis_node, fake_llm, catalogue, previous_code: Path, tmp_path: Path):
    """The schema here is the current one (every migration applied); the app and its smoke are the
    previous release's, as during a deploy (old pods still serving) and after a code rollback."""
    env = app_env(databases, redis_node, fake_llm, tmp_path,
                  PYTHONPATH=f"{previous_code / 'app'}{os.pathsep}{previous_code / 'loadtest'}")
    server = start_server(env, tmp_path)
    try:
        served_by = subprocess.run([sys.executable, "-c", "import chatwizard; print(chatwizard.__file__)"],
                                   env=env, capture_output=True, text=True, check=True).stdout
        assert served_by.startswith(str(previous_code)), served_by
        admin = await create_user(databases, "admin")
        summary = tmp_path / "summary.json"
        k6_env = {**os.environ, "BASE_URL": server.base_url, "ADMIN_KEY": admin.key, "USERS": "30",
                  "THINK_SCALE": "0.1", "RAMP": "5s", "HOLD": "20s", "K6_NO_USAGE_REPORT": "true"}
        result = subprocess.run([K6, "run", "--quiet", "--summary-export", str(summary),
                                 str(previous_code / "loadtest" / "k6" / "smoke.js")],
                                env=k6_env, capture_output=True, text=True, timeout=240)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:] + server.log()[-3000:]
        metrics = json.loads(summary.read_text())["metrics"]
        assert metrics["iterations"]["count"] > 30 and metrics["checks"]["fails"] == 0
    finally:
        stop_process(server.process)
