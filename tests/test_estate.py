"""README command 1, end to end: `chatwizard up` brings up the estate on embedded defaults (no API key),
the printed curl returns an answer with videos, and asking again is served from the cache."""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

from chatwizard.estate.backup import BackupStore, backup_ids
from chatwizard.estate.up import DEMO_EMAIL
from tests.conftest import free_port, metric_value

CHATWIZARD = str(Path(sys.executable).with_name("chatwizard"))


def read_until(process: subprocess.Popen[str], marker: str, timeout_s: float) -> str:
    deadline, output = time.monotonic() + timeout_s, []
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        output.append(line)
        if marker in line:
            return "".join(output)
    raise AssertionError("estate did not come up:\n" + "".join(output))


def wait_for(check, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, "Prometheus does not scrape every estate target"
        time.sleep(1)


def curl_from(summary: str) -> list[str]:
    command = re.search(r"^\s*(curl .*?)\n\s*Press", summary, re.S | re.M).group(1)
    return shlex.split(command.replace("\\\n", " "))


def assert_one_query_finds_the_request(summary: str, request_id: str) -> None:
    """The printed log-store query, run as printed with the curl's request id, returns its lines."""
    command = re.search(r"one request, every worker: (.*)$", summary, re.M)[1].replace("<X-Request-Id>", request_id)
    deadline, rows = time.monotonic() + 30, ""
    while request_id not in rows:
        assert time.monotonic() < deadline, f"the log store has no line of {request_id}: {command}"
        time.sleep(0.5)
        rows = subprocess.run(shlex.split(command), capture_output=True, text=True, check=True).stdout
    assert '"event": "request"' in rows and '"route": "/v1/chat"' in rows


def assert_sign_in_mail_lands_in_the_mail_folder(app: str, folder: Path) -> None:
    """The demo learner asks for a sign-in link: the mail, with a link to this estate, is a file in the folder."""
    assert httpx.post(f"{app}/v1/auth/sign-in-link", json={"email": DEMO_EMAIL}).status_code == 202
    deadline = time.monotonic() + 10
    while not (mails := list(folder.glob("*.eml"))):
        assert time.monotonic() < deadline, f"no mail in {folder}"
        time.sleep(0.2)
    assert f"{app}/sign-in#token=" in mails[0].read_text()


def test_up_prints_a_working_curl_and_stops_cleanly(tmp_path: Path):
    ports = {name: free_port() for name in ("app", "metrics", "postgres", "replica", "redis", "prometheus",
                                            "alertmanager", "postgres-exporter", "redis-exporter",
                                            "blackbox-exporter", "log-store", "smtp", "s3", "edge")}
    args = [CHATWIZARD, "up", "--state-dir", str(tmp_path / "state")]
    args += [a for name, port in ports.items() for a in (f"--{name}-port", str(port))]
    env = {k: v for k, v in os.environ.items() if k != "OPENAI_API_KEY"}
    # Started as a shell starts a background job (`make up &`): with SIGINT ignored. Ctrl-C must still stop it.
    process = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))
    try:
        summary = read_until(process, "Press Ctrl-C", timeout_s=240)
        assert f"http://127.0.0.1:{ports['app']}/docs" in summary
        assert f"http://127.0.0.1:{ports['prometheus']}" in summary
        assert re.search(r"Demo API key\s+cwk_\w{36}", summary)
        assert f"Mail           smtp://127.0.0.1:{ports['smtp']}" in summary
        assert_sign_in_mail_lands_in_the_mail_folder(f"http://127.0.0.1:{ports['app']}", tmp_path / "state" / "mail")
        through_edge = httpx.get(re.search(r"Edge\s+(\S+)", summary)[1] + "/readyz")
        assert through_edge.status_code == 200 and through_edge.headers["x-cache-status"] == "BYPASS"
        password = tmp_path / "state" / "redis-password"
        assert password.stat().st_mode & 0o777 == 0o600 and password.read_text().strip() not in summary
        with pytest.raises(redis.AuthenticationError):  # Redis refuses a client without the password
            redis.Redis(port=ports["redis"]).get("cw:anything")
        first = subprocess.run([*curl_from(summary), "-D", "-"], capture_output=True, text=True, check=True)
        again = subprocess.run([*curl_from(summary), "-D", "-"], capture_output=True, text=True, check=True)
        assert "x-cache: miss" in first.stdout.lower()
        body = first.stdout.split("\n\n", 1)[1]  # text mode turned CRLF into LF
        assert body.count('"thumbnail_url"') >= 3, body
        assert '"answer_source":"local"' in body and "no language model was used" in body
        assert "x-cache: exact" in again.stdout.lower()
        metrics = httpx.get(f"http://127.0.0.1:{ports['metrics']}/metrics").text
        assert metric_value(metrics, "chatwizard_cache_requests_total", cache="exact", result="hit") >= 1
        assert_one_query_finds_the_request(summary, re.search(r"x-request-id: (\S+)", first.stdout, re.I)[1])
        prometheus = f"http://127.0.0.1:{ports['prometheus']}/api/v1"
        wait_for(lambda: {t["labels"]["job"] for t in httpx.get(f"{prometheus}/targets").json()["data"]["activeTargets"]
                          if t["health"] == "up"} == {"chatwizard", "postgres", "redis", "blackbox"})
        exporter = httpx.get(f"http://127.0.0.1:{ports['redis-exporter']}/metrics").text
        assert metric_value(exporter, "redis_up") == 1, "the exporter should log in to Redis"
        # The primary archives for real: a base backup and WAL in the S3 API's bucket.
        store = BackupStore.load(tmp_path / "state" / "backup.json")
        wait_for(lambda: backup_ids(store) != [])
        keys = [o["Key"] for o in store.s3().list_objects_v2(Bucket=store.bucket)["Contents"]]
        assert any("/wals/" in k for k in keys), keys
    finally:
        process.send_signal(signal.SIGINT)
        rest = process.communicate(timeout=90)[0]
    assert process.returncode == 0, rest
    assert "stopped postgres primary" in rest and "stopped mail sink" in rest
    leftovers = subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True, text=True).stdout
    assert leftovers == "", "servers outlived the estate"
