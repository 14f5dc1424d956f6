"""The operator CLI: one entry point, keys shown once and stored hashed, revocation at once."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import httpx

from chatwizard.estate.mail import MailSink
from tests.app.test_web_sessions import accept, link_in, new_email, wait_for_mail
from tests.conftest import AppServer, Databases

CHATWIZARD = str(Path(sys.executable).with_name("chatwizard"))


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHATWIZARD, *args], env=env, capture_output=True, text=True, timeout=60)


def test_help_lists_the_operator_commands():
    out = subprocess.run([CHATWIZARD, "--help"], capture_output=True, text=True).stdout
    for command in ("up", "serve", "migrate", "ingest", "seed", "keys", "catalogue", "retention", "reencrypt",
                    "invite"):
        assert command in out
    keys = subprocess.run([CHATWIZARD, "keys", "--help"], capture_output=True, text=True).stdout
    assert all(c in keys for c in ("create", "list", "revoke"))


def test_keys_create_list_revoke(app_server: AppServer, databases: Databases):
    email = "cli-user@example.com"
    created = cli(app_server.env, "keys", "create", "--email", email, "--name", "laptop")
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("cwk_") and len(key) == 40
    me = httpx.get(f"{app_server.base_url}/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert me.status_code == 200 and me.json()["email"] == email
    user = me.json()["id"]
    stored = databases.primary.psql(f"SELECT encode(key_hash, 'hex') FROM api_keys WHERE user_id = '{user}'")
    assert stored == hashlib.sha256(key.encode()).hexdigest()
    assert key not in databases.primary.psql("SELECT string_agg(display_hint, ' ') FROM api_keys")
    stored_email = databases.primary.psql(f"SELECT email FROM users WHERE id = '{user}'")
    assert stored_email.startswith("enc:") and email not in stored_email, "the address is stored encrypted"
    second = cli(app_server.env, "keys", "create", "--email", email.upper(), "--name", "phone").stdout.strip()
    assert httpx.get(f"{app_server.base_url}/v1/me", headers={"Authorization": f"Bearer {second}"}).json()["id"] \
        == user, "the same address (any case) finds the same user"
    listed = cli(app_server.env, "keys", "list", "--email", email).stdout
    assert "laptop" in listed and "active" in listed and key not in listed
    key_id = listed.split()[0]
    assert cli(app_server.env, "keys", "revoke", key_id).returncode == 0
    again = httpx.get(f"{app_server.base_url}/v1/me", headers={"Authorization": f"Bearer {key}"})
    assert again.status_code == 401 and "revoked" in again.text
    assert "revoked" in cli(app_server.env, "keys", "list", "--email", email).stdout


async def test_invite_mails_a_link_that_makes_the_first_admin(app_server: AppServer, mail_sink: MailSink):
    email = new_email()
    invited = cli(app_server.env, "invite", email, "--tier", "admin")
    assert invited.returncode == 0, invited.stderr
    assert f"invited {email} (admin)" in invited.stdout
    response = await accept(app_server, link_in(await wait_for_mail(mail_sink, email))[2])
    assert response.status_code == 200 and response.json()["tier"] == "admin"
    again = cli(app_server.env, "invite", email)
    assert again.returncode == 1 and "already has an account" in again.stderr


def test_sample_catalogue_generation_is_reproducible(tmp_path: Path):
    for out in ("a", "b"):
        assert subprocess.run([CHATWIZARD, "catalogue", "generate", "--out", str(tmp_path / out),
                               "--count", "120"], capture_output=True).returncode == 0
    files = sorted(p.name for p in (tmp_path / "a").glob("*.json"))
    assert files == ["videos-00000.json", "videos-00001.json", "videos-00002.json"]
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    assert "not a real YouTube video" in (tmp_path / "a" / files[0]).read_text()


def test_restore_says_what_is_wrong_with_its_input(tmp_path: Path):
    no_zone = subprocess.run([CHATWIZARD, "restore", "--to", str(tmp_path / "node"), "--port", "1",
                              "--time", "2026-12-02T12:00:00", "--state-dir", str(tmp_path)],
                             capture_output=True, text=True)
    assert no_zone.returncode == 2 and "--time" in no_zone.stderr
    no_backups = subprocess.run([CHATWIZARD, "restore", "--to", str(tmp_path / "node"), "--port", "1",
                                 "--state-dir", str(tmp_path)], capture_output=True, text=True)
    assert no_backups.returncode == 1 and "no backups in" in no_backups.stderr
    assert not (tmp_path / "node").exists()  # nothing half-made
