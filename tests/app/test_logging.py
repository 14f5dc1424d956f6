"""Logs on-call can search: every line the real gunicorn server writes is JSON with its process id, secret
shapes never reach stdout or the log store, and one query on the local log store (syslog-ng shipping into
PostgreSQL, as `chatwizard up` runs it) returns one request's lines from every worker that handled it."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import secrets
import string
import time
from collections.abc import Iterator

import asyncpg
import httpx
import pytest
import structlog

from chatwizard.core.logs import configure_logging, scrub_secrets
from chatwizard.core.settings import Settings
from chatwizard.estate.logs import REQUEST_QUERY, LogStore, start_log_shipping
from tests.conftest import AppServer, free_port

PLANTED_KEY = "cwk_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))


def json_lines(text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    parsed = []
    for line in lines:
        try:
            parsed.append(json.loads(line))
        except json.JSONDecodeError:
            raise AssertionError(f"a log line is not JSON: {line!r}") from None
    return parsed


def test_every_line_of_the_real_server_is_json_with_its_process(app_server: AppServer):
    lines = json_lines(app_server.log())
    loggers = {line.get("logger") for line in lines}
    # gunicorn's master, uvicorn inside each worker, and the app's own lines all came out as JSON.
    assert {"gunicorn.error", "uvicorn.error"} <= loggers, loggers
    assert any(line["event"] == "app_started" for line in lines)
    assert all(isinstance(line["pid"], int) and line["level"] and line["timestamp"] for line in lines)
    assert len({line["pid"] for line in lines}) >= 3, "expected the master and two workers"


def test_standard_library_lines_carry_the_request_id_and_tracebacks_stay_on_one_line():
    out = io.StringIO()
    configure_logging(Settings(), stream=out)
    structlog.contextvars.bind_contextvars(request_id="req-42")
    try:
        logging.getLogger("asyncio").warning("Task was destroyed but it is pending!")
        try:
            {}["missing"]
        except KeyError:
            logging.getLogger("some.library").exception("lookup failed")
    finally:
        structlog.contextvars.clear_contextvars()
    first, second = json_lines(out.getvalue())
    assert first == first | {"event": "Task was destroyed but it is pending!", "logger": "asyncio",
                             "level": "warning", "request_id": "req-42"}
    assert second["request_id"] == "req-42" and "KeyError: 'missing'" in second["exception"]


@pytest.mark.parametrize(("line", "secret"), [
    ('{"event": "auth", "key": "KEY"}', PLANTED_KEY),
    ("Authorization: Bearer abc.DEF-123_xyz~", "abc.DEF-123_xyz~"),
    ("could not connect to postgresql://chatwizard_app:s3cret-Pw@db:5432/chatwizard", "s3cret-Pw"),
    ("redis://:t0ken-value@cache:6379/0 refused", "t0ken-value"),
    ("openai.AuthenticationError: Incorrect API key provided: sk-proj-AbCdEf0123456789xyz", "sk-proj-AbCd"),
])
def test_secret_shapes_are_scrubbed_and_their_context_kept(line, secret):
    line = line.replace("KEY", PLANTED_KEY)
    scrubbed = scrub_secrets(line)
    assert secret not in scrubbed and "[redacted]" in scrubbed
    assert scrubbed.split("[redacted]")[0] == line.split(secret)[0]  # what came before is intact


def test_standard_library_secrets_are_scrubbed_before_stdout():
    out = io.StringIO()
    configure_logging(Settings(), stream=out)
    logging.getLogger("asyncpg").error("connect to postgresql://u:hunter2-pw@db/x failed for %s", PLANTED_KEY)
    structlog.get_logger().info("login", header=f"Bearer {PLANTED_KEY}")
    text = out.getvalue()
    assert PLANTED_KEY not in text and "hunter2-pw" not in text
    assert len(json_lines(text)) == 2


@pytest.fixture(scope="module")
def log_store(app_server: AppServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogStore]:
    """syslog-ng shipping the session server's log into a log store, as `chatwizard up` runs them."""
    store, stops = start_log_shipping(tmp_path_factory.mktemp("logs"), app_server.log_file, free_port())
    yield store
    for _, stop in stops:
        stop()


async def request_lines(store: LogStore, request_id: str, at_least: int, timeout_s: float = 30) -> list:
    """The runbook's query, repeated until the shipper has delivered ``at_least`` lines."""
    conn = await asyncpg.connect(store.dsn)
    try:
        deadline = time.monotonic() + timeout_s
        while len(rows := await conn.fetch(REQUEST_QUERY, request_id)) < at_least:
            assert time.monotonic() < deadline, f"the log store holds {len(rows)} lines of {request_id}"
            await asyncio.sleep(0.3)
        return rows
    finally:
        await conn.close()


async def test_one_query_finds_a_request_across_workers(app_server: AppServer, log_store: LogStore):
    """A client retrying with the same X-Request-Id lands on several workers: one query finds them all."""
    request_id = f"retry-{secrets.token_hex(8)}"
    pids: set[int] = set()
    sent = 0
    retry = {"X-Request-Id": request_id}
    # A new connection per request, as retries from different clients would be: a kept-alive connection
    # stays with the worker that accepted it.
    async with app_server.client(limits=httpx.Limits(max_keepalive_connections=0)) as client:
        while len(pids) < 2 and sent < 400:  # bounded: two workers share one socket, so both answer soon
            answers = await asyncio.gather(*(client.get("/v1/me", headers=retry) for _ in range(20)))
            sent += len(answers)
            rows = await request_lines(log_store, request_id, at_least=sent)
            pids = {json.loads(row["line"])["pid"] for row in rows}
    assert len(pids) >= 2, f"{sent} requests, all on one worker"
    assert {json.loads(row["line"])["request_id"] for row in rows} == {request_id}
    assert {row["pid"] for row in rows} == pids


async def test_a_planted_key_reaches_neither_stdout_nor_the_log_store(app_server: AppServer,
                                                                       log_store: LogStore):
    async with app_server.client() as client:
        assert (await client.get("/v1/me", headers={"X-Request-Id": PLANTED_KEY})).status_code == 401
    # A line that bypassed the app's logging (a crash before it was set up) is scrubbed by the shipper.
    with app_server.log_file.open("a") as log:
        log.write("Traceback: connecting to postgresql://u:pl4nted-pw@db/x with Bearer pl4nted-token\n")
    conn = await asyncpg.connect(log_store.dsn)
    try:
        assert await request_lines(log_store, "[redacted]", at_least=1)
        deadline = time.monotonic() + 30
        while not (raw := await conn.fetchval("SELECT line FROM app_logs WHERE line LIKE 'Traceback:%'")):
            assert time.monotonic() < deadline, "the shipper did not deliver the raw line"
            await asyncio.sleep(0.3)
        stored = await conn.fetchval("SELECT string_agg(line, E'\\n') FROM app_logs")
    finally:
        await conn.close()
    assert raw == "Traceback: connecting to postgresql://u:[redacted]@db/x with Bearer [redacted]"
    assert PLANTED_KEY not in stored and "pl4nted" not in stored
    assert PLANTED_KEY not in app_server.log()
