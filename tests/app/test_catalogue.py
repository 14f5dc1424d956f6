"""Ingest is idempotent and strict; migrations re-run as a no-op."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from chatwizard.core.migrate import migrate
from chatwizard.videos.ingest import iso_duration_seconds
from tests.conftest import AppServer, Databases

CHATWIZARD = str(Path(sys.executable).with_name("chatwizard"))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHATWIZARD, *args], env=env, capture_output=True, text=True)


def test_reingest_creates_no_duplicates_and_keeps_the_version(app_server: AppServer, databases: Databases,
                                                              catalogue: Path):
    count, version = (databases.primary.psql(q) for q in
                      ("SELECT count(*) FROM videos", "SELECT version FROM catalogue_state"))
    result = cli(app_server.env, "ingest", str(catalogue))
    assert result.returncode == 0, result.stderr
    assert "400 videos read, 0 added or changed" in result.stdout
    assert databases.primary.psql("SELECT count(*) FROM videos") == count == "400"
    assert databases.primary.psql("SELECT version FROM catalogue_state") == version


def test_changed_video_is_updated_in_place_and_bumps_the_version(app_server: AppServer, databases: Databases,
                                                                 catalogue: Path, tmp_path: Path):
    page = json.loads(next(iter(sorted(catalogue.glob("*.json")))).read_text())
    page["items"] = page["items"][:1]
    page["items"][0]["snippet"]["title"] = "Renamed sample video"
    (tmp_path / "one.json").write_text(json.dumps(page))
    version = int(databases.primary.psql("SELECT version FROM catalogue_state"))
    result = cli(app_server.env, "ingest", str(tmp_path / "one.json"))
    assert "1 videos read, 1 added or changed" in result.stdout, result.stderr
    video_id = page["items"][0]["id"]
    assert databases.primary.psql(f"SELECT title FROM videos WHERE id = '{video_id}'") == "Renamed sample video"
    assert int(databases.primary.psql("SELECT version FROM catalogue_state")) == version + 1
    assert databases.primary.psql("SELECT count(*) FROM videos") == "400"
    cli(app_server.env, "ingest", str(catalogue))  # restore the sample title for other tests


def test_bad_catalogue_file_is_refused_with_a_clear_message_and_writes_nothing(
        app_server: AppServer, databases: Databases, catalogue: Path, tmp_path: Path):
    page = json.loads(next(iter(sorted(catalogue.glob("*.json")))).read_text())
    page["items"][0]["snippet"]["title"] = "Would be written if validation came late"
    page["items"][3]["contentDetails"]["duration"] = "ten minutes"
    (tmp_path / "bad.json").write_text(json.dumps(page))
    (tmp_path / "broken.json").write_text("{not json")
    bad = cli(app_server.env, "ingest", str(tmp_path / "bad.json"))
    broken = cli(app_server.env, "ingest", str(tmp_path / "broken.json"))
    assert bad.returncode == 2 and "items[3]" in bad.stderr and "ten minutes" in bad.stderr
    assert broken.returncode == 2 and "not valid JSON" in broken.stderr
    assert databases.primary.psql("SELECT count(*) FROM videos WHERE title LIKE 'Would be%'") == "0"


async def test_migrations_rerun_as_a_no_op(databases: Databases):
    tables = databases.primary.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
    assert await migrate(databases.primary.dsn) == []
    assert databases.primary.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == tables


def test_iso_durations():
    assert iso_duration_seconds("PT1H2M3S") == 3723
    assert iso_duration_seconds("PT45S") == 45
    assert iso_duration_seconds("P1DT1M") == 86460
