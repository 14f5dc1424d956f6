"""Memory: one worker serving thousands of requests after warm-up stays within a small bound.

The bound, 10 MB over 3,000 requests, fails a leak of about 3.5 KB per request (a retained response,
an ever-growing cache or label set), yet leaves room for allocator noise. gunicorn's max_requests is
off here: recycling workers would only hide a leak (README, CHATWIZARD_MAX_REQUESTS).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from pathlib import Path

import httpx

from chatwizard.estate.processes import stop_process
from tests.conftest import app_env, start_server

WARM_UP = 600
MEASURED = 3000
BOUND_MB = 10
QUESTIONS = [
    "How do I make a leaderboard in Roblox?",
    "How do I use signals in Godot?",
    "How do I rig a character in Blender?",
    "How do I use tables in Lua?",
]


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS"))) / 1024


def worker_pid(master: int) -> int:
    (child,) = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(child)


async def traffic(client: httpx.AsyncClient, count: int, video_id: str) -> None:
    """A learner's mix: cached chats, searches, progress writes and path listings, 20 at a time."""
    steps = itertools.cycle(
        [
            lambda i: client.post("/v1/chat", json={"question": QUESTIONS[i % len(QUESTIONS)]}),
            lambda i: client.get("/v1/videos/search", params={"q": ["roblox", "unity", "godot"][i % 3]}),
            lambda i: client.post(
                "/v1/progress/events",
                json={
                    "event_id": str(uuid.uuid4()),
                    "video_id": video_id,
                    "kind": "progress",
                    "position_s": i % 600,
                },
            ),
            lambda i: client.get("/v1/paths"),
        ]
    )
    pending = iter(enumerate(itertools.islice(steps, count)))

    async def lane() -> None:
        for i, step in pending:
            response = await step(i)
            assert response.status_code < 300, response.text

    await asyncio.gather(*(lane() for _ in range(20)))


async def test_one_worker_does_not_grow_under_thousands_of_requests(
    databases, redis_node, fake_llm, catalogue, make_user, tmp_path
):
    server = start_server(
        app_env(databases, redis_node, fake_llm, tmp_path, CHATWIZARD_WORKERS="1"), tmp_path
    )
    try:
        user = await make_user("pro")
        async with httpx.AsyncClient(
            base_url=server.base_url, timeout=30, headers={"Authorization": f"Bearer {user.key}"}
        ) as client:
            video_id = (await client.get("/v1/videos/search", params={"q": "roblox"})).json()["videos"][0][
                "id"
            ]
            await traffic(client, WARM_UP, video_id)
            worker = worker_pid(server.process.pid)
            before = rss_mb(worker)
            await traffic(client, MEASURED, video_id)
            growth = rss_mb(worker) - before
        assert worker_pid(server.process.pid) == worker, "the worker was replaced during the test"
        assert growth < BOUND_MB, f"worker RSS grew {growth:.1f} MB over {MEASURED} requests"
    finally:
        stop_process(server.process)
