"""The fake LLM as its users see it: through the official openai client, its CLI and its admin API."""

from __future__ import annotations

import dataclasses
import math
import random
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

import fakellm
from fakellm.config import FakeLLMConfig, env_name
from fakellm.embeddings import embed
from fakellm.latency import LatencyModel, LogNormal
from fakellm.server import FakeLLM, build_parser, config_from_args
from fakellm.testing import RunningFakeLLM, running_fake_llm

FAST = FakeLLMConfig(latency_mode="none", seed=7)
TITLES = ["Make a donut in Blender", "Unity in 100 seconds", "Godot movement basics", "Fourth video"]
MESSAGES = [
    {"role": "system", "content": "You are Chat Wizard, a friendly tutor."},
    {"role": "user", "content": "<videos>\n"
     + "\n".join(f"- {t} (channel: Someone, 12 min)" for t in TITLES)
     + "\n</videos>\n<question>How do I make my first 3D game?</question>"},
]
PROMPT_WORDS = sum(len(m["content"].split()) for m in MESSAGES)

PARAPHRASES = [
    ("How do I make a game in Unity?", "How can I create a Unity game?"),
    ("python for beginners", "getting started with python"),
    ("how to fix a null reference error in unity", "debugging null reference exceptions in Unity"),
    ("how to make a character move in godot", "godot player movement tutorial"),
    ("learn javascript from scratch", "javascript basics for beginners"),
    ("How can I write a script to rename files in Python?", "python code to rename files"),
    ("how to build a website with html and css", "create a website using HTML and CSS"),
    ("unreal engine 5 beginner tutorial", "getting started with UE5"),
    ("how do I make a 2d platformer in godot", "2D platformer game development in Godot"),
    ("how to animate a walk cycle in blender", "blender walk cycle animation"),
    ("what is the best way to learn c#", "C sharp course for beginners"),
    ("best way to learn blender", "blender tutorial"),
]
UNRELATED = [
    ("How do I make a game in Unity?", "python list comprehension"),
    ("python for beginners", "blender donut tutorial"),
    ("how to fix a null reference error in unity", "css flexbox layout"),
    ("how to make a character move in godot", "excel pivot tables"),
    ("learn javascript from scratch", "rig a character in blender"),
    ("How can I write a script to rename files in Python?", "unreal engine lighting"),
    ("best way to learn blender", "sql joins explained"),
    ("how to build a website with html and css", "godot shaders"),
    ("unreal engine 5 beginner tutorial", "react hooks explained"),
    ("2d platformer in godot", "machine learning with pytorch"),
]


@pytest.fixture(scope="module")
def server() -> Iterator[RunningFakeLLM]:
    with running_fake_llm(FAST) as running:
        yield running


@pytest.fixture
def llm(server: RunningFakeLLM) -> Iterator[RunningFakeLLM]:
    """The module's server, with its config and counters back to FAST after each test."""
    server.reset_stats()
    yield server
    server.configure(**FAST.as_dict())


def client(llm: RunningFakeLLM, **options: float) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm.base_url, api_key=llm.api_key, max_retries=0, **options)


def async_client(llm: RunningFakeLLM) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=llm.base_url, api_key=llm.api_key, max_retries=0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- chat completions -------------------------------------------------------------------------------


def test_answer_names_the_prompts_first_videos_and_usage_counts_its_words(llm: RunningFakeLLM) -> None:
    response = client(llm).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=60)
    text = response.choices[0].message.content
    assert text is not None
    assert all(f'"{title}"' in text for title in TITLES[:3]) and TITLES[3] not in text
    assert "How do I make my first 3D game?" in text
    assert response.usage is not None
    assert response.usage.completion_tokens == len(text.split()) == 60
    assert response.usage.prompt_tokens == PROMPT_WORDS
    assert response.usage.total_tokens == PROMPT_WORDS + 60
    assert response.choices[0].finish_reason == "stop" and response.model == "gpt-4o-mini"


def test_answers_are_deterministic_and_sized_by_the_request(llm: RunningFakeLLM) -> None:
    chat = client(llm).chat.completions
    first = chat.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    again = chat.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    bounded = chat.create(model="gpt-4o-mini", messages=MESSAGES, max_completion_tokens=9)
    assert first == again and first is not None
    assert len(first.split()) == FakeLLMConfig().default_answer_tokens
    assert bounded.choices[0].message.content == " ".join(first.split()[:9])


async def test_stream_sends_role_then_several_chunks_then_usage(llm: RunningFakeLLM) -> None:
    stream = await async_client(llm).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=40, stream=True,
        stream_options={"include_usage": True},
    )
    chunks = [chunk async for chunk in stream]
    contents = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[0].choices[0].delta.role == "assistant"
    assert len(contents) == 40 // FakeLLMConfig().stream_chunk_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens == len("".join(contents).split()) == 40
    complete = client(llm).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=40)
    assert "".join(contents) == complete.choices[0].message.content
    assert llm.stats()["streamed"] == 1


def test_stream_wire_format_ends_with_done_and_omits_usage_unless_asked(llm: RunningFakeLLM) -> None:
    response = httpx.post(
        llm.base_url + "/chat/completions", headers={"Authorization": "Bearer any"}, trust_env=False,
        json={"model": "gpt-4o-mini", "messages": MESSAGES, "max_tokens": 10, "stream": True},
    )
    events = [block for block in response.text.split("\n\n") if block]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    assert '"usage"' not in response.text


async def test_tokens_are_paced_after_a_fixed_first_token_delay(llm: RunningFakeLLM) -> None:
    llm.configure(latency_mode="fixed", ttft_median_s=0.2, ttft_p95_s=0.2, tokens_per_second=200)
    started = time.perf_counter()
    stream = await async_client(llm).chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, max_tokens=40, stream=True
    )
    arrivals = [time.perf_counter() - started async for c in stream if c.choices and c.choices[0].delta.content]
    assert 0.19 <= arrivals[0] < 0.4
    # 8 chunks of 5 tokens at 200 tokens/s: the last one is due 35 tokens = 175 ms after the first.
    assert 0.16 <= arrivals[-1] - arrivals[0] < 0.4


# --- embeddings -------------------------------------------------------------------------------------


def test_embeddings_honour_dimensions_and_are_unit_vectors(llm: RunningFakeLLM) -> None:
    embeddings = client(llm).embeddings
    default = embeddings.create(model="text-embedding-3-small", input="make a donut in blender")
    small = embeddings.create(model="text-embedding-3-small", input=["make a donut", "rig a character"],
                              dimensions=64, encoding_format="float")
    assert len(default.data[0].embedding) == 384
    assert [len(d.embedding) for d in small.data] == [64, 64] and [d.index for d in small.data] == [0, 1]
    assert all(math.isclose(float(np.linalg.norm(d.embedding)), 1.0, rel_tol=1e-5) for d in small.data)
    assert small.usage.prompt_tokens == small.usage.total_tokens == 6
    # The client's default wire format (base64) and JSON floats carry the same vector as embed().
    assert np.allclose(default.data[0].embedding, embed("make a donut in blender", 384), atol=1e-6)
    assert np.allclose(small.data[1].embedding, embed("rig a character", 64), atol=1e-6)


def test_paraphrases_land_near_each_other_and_unrelated_questions_far_apart() -> None:
    def cosine(a: str, b: str) -> float:
        return float(embed(a, 384) @ embed(b, 384))

    near = [cosine(a, b) for a, b in PARAPHRASES]
    far = [cosine(a, b) for a, b in UNRELATED]
    assert statistics.mean(near) > 0.8
    assert min(near) > 0.6
    assert max(far) < 0.3
    assert embed("Make a Game!", 384).tolist() == embed("make a game", 384).tolist()


# --- faults, admin, stats ---------------------------------------------------------------------------


def test_injected_429_is_a_rate_limit_error_with_retry_after(llm: RunningFakeLLM) -> None:
    llm.configure(error_rate_429=1.0, retry_after_s=3)
    with pytest.raises(openai.RateLimitError) as caught:
        client(llm).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert caught.value.response.headers["retry-after"] == "3"
    assert llm.stats()["errors"] == {"rate_limit": 1}


async def test_injected_500_is_an_internal_server_error(llm: RunningFakeLLM) -> None:
    llm.configure(error_rate_500=1.0)
    with pytest.raises(openai.InternalServerError):
        await async_client(llm).embeddings.create(model="text-embedding-3-small", input="hello")
    assert llm.stats()["errors"] == {"server_error": 1}


def test_injected_timeout_outlasts_the_client_and_ends_when_it_leaves(llm: RunningFakeLLM) -> None:
    llm.configure(timeout_rate=1.0, hang_s=30)
    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        client(llm, timeout=0.3).chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert time.perf_counter() - started < 2
    deadline = time.monotonic() + 2
    while llm.stats()["in_flight"] > 1 and time.monotonic() < deadline:  # 1: this /stats request
        time.sleep(0.02)
    assert llm.stats()["in_flight"] == 1 and llm.stats()["errors"] == {"timeout": 1}


def test_error_rates_split_requests_in_the_configured_shares() -> None:
    app = FakeLLM(FakeLLMConfig(error_rate_429=0.2, error_rate_500=0.1, timeout_rate=0.05, seed=3))
    drawn = Counter(app.draw_fault() for _ in range(20_000))
    for fault, share in (("rate_limit", 0.2), ("server_error", 0.1), ("timeout", 0.05), (None, 0.65)):
        assert abs(drawn[fault] / 20_000 - share) < 0.015


def test_admin_config_changes_behaviour_and_rejects_bad_settings(llm: RunningFakeLLM) -> None:
    chat = client(llm).chat.completions
    assert llm.configure(default_answer_tokens=12)["default_answer_tokens"] == 12
    answer = chat.create(model="gpt-4o-mini", messages=MESSAGES).choices[0].message.content
    assert answer is not None and len(answer.split()) == 12
    for bad in ({"no_such_setting": 1}, {"error_rate_429": 0.7, "error_rate_500": 0.7},
                {"ttft_median_s": "soon"}, {"stream_chunk_tokens": 2.5}):
        response = httpx.post(llm.root_url + "/admin/config", json=bad, trust_env=False)
        assert response.status_code == 400, bad
    assert httpx.get(llm.root_url + "/stats", trust_env=False).json()["requests"]["admin"] == 5


async def test_admin_endpoints_refuse_clients_off_loopback() -> None:
    transport = httpx.ASGITransport(app=FakeLLM(FAST), client=("192.0.2.10", 40000))
    async with httpx.AsyncClient(transport=transport, base_url="http://fakellm") as remote:
        assert (await remote.post("/admin/config", json={"error_rate_500": 1})).status_code == 403
        assert (await remote.post("/admin/reset-stats")).status_code == 403
        assert (await remote.get("/healthz")).status_code == 200


def test_any_non_empty_bearer_key_is_accepted(llm: RunningFakeLLM) -> None:
    url = llm.base_url + "/models"
    statuses = [httpx.get(url, headers=h, trust_env=False).status_code
                for h in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"},
                          {"Authorization": "Bearer anything"})]
    assert statuses == [401, 401, 401, 200]
    basic = openai.OpenAI(base_url=llm.base_url, api_key="k", default_headers={"Authorization": "Basic k"})
    with pytest.raises(openai.AuthenticationError):
        basic.models.list()


def test_models_healthz_and_stats_count_what_was_called(llm: RunningFakeLLM) -> None:
    openai_client = client(llm)
    assert "gpt-4o-mini" in [m.id for m in openai_client.models.list()]
    openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=5)
    openai_client.embeddings.create(model="text-embedding-3-small", input=["a b", "c"])
    assert httpx.get(llm.root_url + "/healthz", trust_env=False).json() == {"status": "ok"}
    stats = llm.stats()
    assert stats["requests"] == {"models": 1, "chat_completions": 1, "embeddings": 1, "healthz": 1,
                                 "stats": 1}
    assert stats["tokens"] == {"prompt": PROMPT_WORDS, "completion": 5, "embedding": 3}


# --- latency model, configuration, running it ----------------------------------------------------------


def test_latency_draws_follow_the_configured_median_and_p95() -> None:
    model = LatencyModel(FakeLLMConfig())
    rng = random.Random(11)
    ttft = sorted(model.ttft(rng) for _ in range(2000))
    embedding = sorted(model.embedding_delay(rng) for _ in range(2000))
    assert LogNormal.from_median_p95(0.4, 1.0).sigma == pytest.approx(math.log(2.5) / 1.645, rel=1e-3)
    assert statistics.median(ttft) == pytest.approx(0.4, rel=0.1)
    assert ttft[1900] == pytest.approx(1.0, rel=0.15)
    assert statistics.median(embedding) == pytest.approx(0.04, rel=0.1)
    assert embedding[1900] == pytest.approx(0.12, rel=0.15)
    assert {LatencyModel(FakeLLMConfig(latency_mode="fixed")).ttft(rng) for _ in range(20)} == {0.4}
    none = LatencyModel(FakeLLMConfig(latency_mode="none"))
    assert (none.ttft(rng), none.embedding_delay(rng), none.seconds_per_token) == (0.0, 0.0, 0.0)


def test_flags_override_the_environment_which_overrides_defaults() -> None:
    environ = {"FAKELLM_TTFT_MEDIAN_S": "0.2", "FAKELLM_ERROR_RATE_500": "0.3", "FAKELLM_SEED": "5"}
    args = build_parser(environ).parse_args(["--fixed-latency", "--error-rate-500", "0.1", "--port", "9"])
    config = config_from_args(args, environ)
    assert (config.latency_mode, config.ttft_median_s, config.error_rate_500, config.seed) == (
        "fixed", 0.2, 0.1, 5)
    assert args.port == 9 and FakeLLMConfig.from_env({}) == FakeLLMConfig()
    with pytest.raises(SystemExit):
        build_parser({}).parse_args(["--fixed-latency", "--no-latency"])
    with pytest.raises(ValueError, match="ttft_median_s <= ttft_p95_s"):
        FakeLLMConfig.from_env({"FAKELLM_TTFT_MEDIAN_S": "2"})


def test_helper_starts_in_under_a_second_and_frees_its_port() -> None:
    started = time.perf_counter()
    with running_fake_llm(FAST) as running:
        assert time.perf_counter() - started < 1.0
        assert httpx.get(running.root_url + "/healthz", trust_env=False).status_code == 200
    with pytest.raises(httpx.ConnectError):
        httpx.get(running.root_url + "/healthz", trust_env=False)


def test_cli_serves_until_sigterm() -> None:
    port = free_port()
    command = [str(Path(sys.executable).parent / "fakellm"), "--port", str(port), "--no-latency"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                models = httpx.get(f"http://127.0.0.1:{port}/v1/models", trust_env=False,
                                   headers={"Authorization": "Bearer k"})
                break
            except httpx.ConnectError:
                assert process.poll() is None and time.monotonic() < deadline
                time.sleep(0.05)
        assert models.status_code == 200
        process.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal it caught: -SIGTERM is the normal exit.
        assert process.wait(timeout=5) in (0, -signal.SIGTERM)
        assert b"Finished server process" in process.stderr.read()
    finally:
        process.kill()
        process.wait()


def test_documented_wrk_benchmark_scripts_get_only_200s(server: RunningFakeLLM) -> None:
    bench = Path(fakellm.__file__).parent / "bench"
    for script in ("chat.lua", "embeddings.lua", "stream.lua"):
        result = subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", str(bench / script), server.root_url],
                                capture_output=True, text=True, timeout=20)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "Requests/sec" in result.stdout and "Non-2xx" not in result.stdout


def test_readme_documents_every_setting() -> None:
    readme = (Path(fakellm.__file__).parent / "README.md").read_text()
    for setting in dataclasses.fields(FakeLLMConfig):
        assert f"`{env_name(setting.name)}`" in readme and f"`{setting.name}`" in readme, setting.name
