"""The estate in its performance configuration, on free loopback ports, kept in a state folder so the
100,000-video catalogue is generated and ingested once and reused by later runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx

from chatwizard.accounts.service import EMAIL
from chatwizard.core.crypto import FieldCipher
from chatwizard.core.security import display_hint, generate_key, hash_secret
from chatwizard.core.settings import APP_DB_LOGIN
from chatwizard.estate.ports import free_port
from chatwizard.estate.postgres import start_pair
from chatwizard.estate.processes import stop_process, wait_ready
from chatwizard.estate.redis import RedisNode
from chatwizard.estate.up import field_keys, start_app

BIN = Path(sys.executable).parent
FAKE_OPENAI_KEY = "sk-loadtest-fake-llm"  # accepted by the fake LLM only
# 2 cores shared with k6: one worker per core; pools large enough that requests rarely wait.
PERF_SETTINGS = {
    "CHATWIZARD_ENVIRONMENT": "development",
    "CHATWIZARD_WORKERS": "2",
    "CHATWIZARD_DB_POOL_MIN": "5",
    "CHATWIZARD_DB_POOL_MAX": "20",
    "CHATWIZARD_LOG_LEVEL": "INFO",
}


def configure_llm(llm_url: str, **changes: object) -> dict:
    response = httpx.post(f"{llm_url}/admin/config", json=changes, trust_env=False)
    response.raise_for_status()
    return response.json()


@dataclass
class PerfEstate:
    base_url: str
    metrics_url: str
    llm_url: str
    primary_dsn: str
    env: dict[str, str]
    app: subprocess.Popen[bytes]

    def configure_llm(self, **changes: object) -> dict:
        return configure_llm(self.llm_url, **changes)

    def llm_stats(self) -> dict:
        return httpx.get(f"{self.llm_url}/stats", trust_env=False).json()


def chatwizard(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(BIN / "chatwizard"), *args], env=env, check=True)


def catalogue_size(env: dict[str, str]) -> int:
    async def count() -> int:
        conn = await asyncpg.connect(env["CHATWIZARD_DATABASE_URL"])
        try:
            return await conn.fetchval("SELECT count(*) FROM videos")
        finally:
            await conn.close()

    return asyncio.run(count())


def ensure_catalogue(env: dict[str, str], state_dir: Path, videos: int) -> None:
    """Generate and ingest `videos` sample videos unless the database already holds them."""
    if catalogue_size(env) >= videos:
        return
    pages = state_dir / f"catalogue-{videos}"
    if not pages.exists():
        chatwizard(env, "catalogue", "generate", "--out", str(pages), "--count", str(videos))
    print(f"ingesting {videos} videos (once; kept in {state_dir}) ...", flush=True)
    chatwizard(env, "ingest", str(pages))


def create_learners(dsn: str, count: int, run: str, cipher: FieldCipher) -> list[str]:
    """One pro-tier user and API key per virtual user, written straight to the database."""
    keys = [generate_key() for _ in range(count)]
    emails = [f"k6-{run}-{i}@example.com" for i in range(count)]

    async def insert() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            async with conn.transaction():
                ids = await conn.fetch(
                    "INSERT INTO users (email, email_index, tier) "
                    "SELECT e, i, 'pro' FROM unnest($1::text[], $2::bytea[]) AS u(e, i) RETURNING id",
                    [cipher.encrypt(e, EMAIL) for e in emails],
                    [cipher.blind_index(e, EMAIL) for e in emails],
                )
                await conn.executemany(
                    "INSERT INTO api_keys (user_id, name, display_hint, key_hash) VALUES ($1, 'k6', $2, $3)",
                    [
                        (row["id"], display_hint(key), hash_secret(key))
                        for row, key in zip(ids, keys, strict=True)
                    ],
                )
        finally:
            await conn.close()

    asyncio.run(insert())
    return keys


@contextlib.contextmanager
def perf_estate(state_dir: Path, videos: int) -> Iterator[PerfEstate]:
    state_dir.mkdir(parents=True, exist_ok=True)
    stops: list = []
    try:
        primary, replica = start_pair(state_dir, free_port(), free_port())
        stops += [replica.stop, primary.stop]
        redis = RedisNode(state_dir / "redis", free_port(), persist=False)
        redis.start()
        stops.insert(0, redis.stop)
        llm_port = free_port()
        llm = subprocess.Popen(
            [str(BIN / "fakellm"), "--port", str(llm_port), "--log-level", "warning"], start_new_session=True
        )
        stops.insert(0, lambda: stop_process(llm))
        llm_url = f"http://127.0.0.1:{llm_port}"
        wait_ready(f"{llm_url}/healthz", llm)
        port, metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            **PERF_SETTINGS,
            "CHATWIZARD_PORT": str(port),
            "CHATWIZARD_METRICS_PORT": str(metrics_port),
            "CHATWIZARD_DATABASE_URL": primary.dsn,
            "CHATWIZARD_REPLICA_URL": replica.dsn,
            "CHATWIZARD_REDIS_URL": redis.url,
            "CHATWIZARD_METRICS_MULTIPROC_DIR": str(state_dir / "metrics"),
            "OPENAI_API_KEY": FAKE_OPENAI_KEY,
            "OPENAI_BASE_URL": f"{llm_url}/v1",
            "CHATWIZARD_FIELD_KEYS": field_keys(state_dir),
        }
        # Migrations run as the owner and set the app's login; the app runs as that login (as in production).
        password = secrets.token_urlsafe(24)
        chatwizard(env | {"CHATWIZARD_APP_DB_PASSWORD": password}, "migrate")
        env |= {"CHATWIZARD_DATABASE_URL": primary.dsn_as(APP_DB_LOGIN, password),
                "CHATWIZARD_REPLICA_URL": replica.dsn_as(APP_DB_LOGIN, password)}
        configure_llm(llm_url, latency_mode="none")  # ingest embeds 100,000 videos: no simulated wait
        ensure_catalogue(env, state_dir, videos)
        configure_llm(llm_url, latency_mode="lognormal")
        app = start_app(env, state_dir / "app.log")
        stops.insert(0, lambda: stop_process(app))
        base = f"http://127.0.0.1:{port}"
        wait_ready(f"{base}/readyz", app)
        yield PerfEstate(base, f"http://127.0.0.1:{metrics_port}/metrics", llm_url, primary.dsn, env, app)
    finally:
        for stop in stops:
            stop()
