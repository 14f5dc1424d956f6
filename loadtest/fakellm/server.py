"""The fake LLM's HTTP server: a bare ASGI app served by uvicorn with uvloop and httptools.

No web framework on purpose: on a shared 2-core load-test machine every microsecond this server
spends per request is taken from the app under test. Waiting (TTFT, token pacing, embeddings
latency, injected hangs) is ``asyncio.sleep``, so thousands of concurrent requests cost only memory.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import dataclasses
import ipaddress
import itertools
import os
import random
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson
import uvicorn

from fakellm import answers, embeddings
from fakellm.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    ENV_PREFIX,
    MAX_OUTPUT_TOKENS,
    FakeLLMConfig,
    env_name,
)
from fakellm.latency import LatencyModel

Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]
Handler = Callable[["Request"], Awaitable[None]]

MODELS = ("gpt-4o-mini", "gpt-4o", "text-embedding-3-small", "text-embedding-3-large")
DEFAULT_CHAT_MODEL = "gpt-4o-mini"
DEFAULT_EMBEDDING_MODEL = "text-embedding-3-small"
MAX_EMBEDDING_DIMENSIONS = 8192
SYSTEM_FINGERPRINT = "fp_fakellm"
STARTED_AT = int(time.time())
SSE_HEADERS = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]
BACKLOG = 16_384  # 10,000 k6 users may connect at once; the kernel caps it at net.core.somaxconn
KEEP_ALIVE_S = 75  # longer than clients' idle pools, so the client, not this server, closes idle sockets
GRACEFUL_SHUTDOWN_S = 2.0  # then streams and injected hangs still running are cancelled


class HTTPError(Exception):
    """An error response in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""

    def __init__(self, status: int, message: str, kind: str = "invalid_request_error",
                 code: str | None = None, headers: Headers = ()) -> None:
        super().__init__(message)
        self.status, self.kind, self.code, self.headers = status, kind, code, headers

    def payload(self) -> dict[str, Any]:
        return {"error": {"message": str(self), "type": self.kind, "param": None, "code": self.code}}


@dataclass
class Request:
    scope: dict[str, Any]
    receive: Receive
    send: Send
    body: bytes

    def json(self) -> dict[str, Any]:
        try:
            parsed = orjson.loads(self.body)
        except orjson.JSONDecodeError:
            raise HTTPError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(parsed, dict):
            raise HTTPError(400, "The request body must be a JSON object.")
        return parsed

    def header(self, name: bytes) -> bytes:
        return next((value for key, value in self.scope["headers"] if key == name), b"")


@dataclass
class Stats:
    requests: Counter[str] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    streamed: int = 0
    in_flight: int = 0

    def snapshot(self) -> dict[str, Any]:
        return {"requests": dict(self.requests), "errors": dict(self.errors), "tokens": dict(self.tokens),
                "streamed": self.streamed, "in_flight": self.in_flight}


async def read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def send_json(send: Send, status: int, payload: Any, headers: Headers = ()) -> None:
    body = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    await send({"type": "http.response.start", "status": status, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()), *headers,
    ]})
    await send({"type": "http.response.body", "body": body})


async def wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def is_loopback(scope: dict[str, Any]) -> bool:
    client = scope.get("client")
    if not client:
        return False
    try:
        address = ipaddress.ip_address(client[0])
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback


def positive_int(body: Mapping[str, Any], name: str, default: int, limit: int) -> int:
    value = body.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= limit:
        raise HTTPError(400, f"'{name}' must be an integer between 1 and {limit}.")
    return value


def answer_length(body: Mapping[str, Any], default: int) -> int:
    """The request's output token bound (max_completion_tokens wins, as at OpenAI), else ``default``."""
    for name in ("max_completion_tokens", "max_tokens"):
        if body.get(name) is not None:
            return positive_int(body, name, default, MAX_OUTPUT_TOKENS)
    return default


def chat_messages(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages or not all(isinstance(m, dict) for m in messages):
        raise HTTPError(400, "'messages' must be a non-empty array of message objects.")
    return messages


def embedding_inputs(body: Mapping[str, Any]) -> list[str]:
    given = body.get("input")
    inputs = [given] if isinstance(given, str) else given
    if not isinstance(inputs, list) or not inputs or not all(isinstance(t, str) and t for t in inputs):
        raise HTTPError(400, "'input' must be a non-empty string or a non-empty array of non-empty strings.")
    return inputs


def encode_vector(vector: np.ndarray, encoding_format: str) -> Any:
    """float: a JSON array; base64: little-endian float32 bytes (the openai client's default)."""
    if encoding_format == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return vector


def chat_usage(messages: list[dict[str, Any]], words: list[str]) -> dict[str, int]:
    prompt = answers.prompt_tokens(messages)
    return {"prompt_tokens": prompt, "completion_tokens": len(words), "total_tokens": prompt + len(words)}


def sse(payload: Any) -> bytes:
    return b"data: " + orjson.dumps(payload) + b"\n\n"


class FakeLLM:
    """The ASGI app. ``config`` may be replaced at run time through ``configure`` (POST /admin/config)."""

    def __init__(self, config: FakeLLMConfig | None = None) -> None:
        self.apply(config or FakeLLMConfig())
        self.rng = random.Random(self.config.seed)  # noqa: S311 - latency and fault draws, not secrets
        self.stats = Stats()
        self.ids = itertools.count(1)
        # path -> (method, stats name, guard, handler); guards: "api" needs a key, "admin" loopback.
        self.routes: dict[str, tuple[str, str, str, Handler]] = {
            "/v1/chat/completions": ("POST", "chat_completions", "api", self.chat_completions),
            "/v1/embeddings": ("POST", "embeddings", "api", self.embeddings),
            "/v1/models": ("GET", "models", "api", self.models),
            "/healthz": ("GET", "healthz", "open", self.healthz),
            "/stats": ("GET", "stats", "open", self.show_stats),
            "/admin/config": ("POST", "admin", "admin", self.admin_config),
            "/admin/reset-stats": ("POST", "admin", "admin", self.admin_reset_stats),
        }

    def apply(self, config: FakeLLMConfig) -> None:
        self.config = config
        self.latency = LatencyModel(config)

    def configure(self, changes: Mapping[str, Any]) -> FakeLLMConfig:
        """Apply run-time changes; a ValueError leaves the running config untouched."""
        self.apply(self.config.updated(changes))
        if "seed" in changes and self.config.seed is not None:
            self.rng.seed(self.config.seed)
        return self.config

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.stats.in_flight += 1
        try:
            await self.dispatch(Request(scope, receive, send, await read_body(receive)))
        except HTTPError as exc:
            await send_json(send, exc.status, exc.payload(), exc.headers)
        finally:
            self.stats.in_flight -= 1

    async def dispatch(self, request: Request) -> None:
        route = self.routes.get(request.scope["path"].rstrip("/") or "/")
        if route is None:
            raise HTTPError(404, f"Unknown path {request.scope['path']}.", code="unknown_url")
        method, name, guard, handler = route
        if request.scope["method"] != method:
            raise HTTPError(405, f"Use {method} for {request.scope['path']}.")
        self.stats.requests[name] += 1
        self.check_guard(request, guard)
        await handler(request)

    def check_guard(self, request: Request, guard: str) -> None:
        if guard == "api":
            scheme, _, key = request.header(b"authorization").partition(b" ")
            if scheme.lower() != b"bearer" or not key.strip():
                raise HTTPError(401, "You didn't provide an API key (Authorization: Bearer <any key>).",
                                code="invalid_api_key")
        elif guard == "admin" and not is_loopback(request.scope):
            raise HTTPError(403, "The admin endpoints answer loopback clients only.")

    def draw_fault(self) -> str | None:
        config = self.config
        draw = self.rng.random()
        for fault, rate in (("rate_limit", config.error_rate_429), ("server_error", config.error_rate_500),
                            ("timeout", config.timeout_rate)):
            if draw < rate:
                return fault
            draw -= rate
        return None

    async def inject_fault(self, request: Request) -> None:
        """Raise the error response of an injected fault, if this request drew one."""
        fault = self.draw_fault()
        if fault is None:
            return
        self.stats.errors[fault] += 1
        if fault == "rate_limit":
            raise HTTPError(429, "Rate limit reached (injected by fakellm).", kind="requests",
                            code="rate_limit_exceeded",
                            headers=[(b"retry-after", str(self.config.retry_after_s).encode())])
        if fault == "server_error":
            raise HTTPError(500, "The server had an error (injected by fakellm).", kind="server_error")
        with contextlib.suppress(TimeoutError):  # hang until the client gives up, or hang_s passes
            await asyncio.wait_for(wait_for_disconnect(request.receive), self.config.hang_s)
        raise HTTPError(504, "Timed out (injected by fakellm).", kind="server_error", code="timeout")

    async def chat_completions(self, request: Request) -> None:
        body = request.json()
        messages = chat_messages(body)
        words = answers.compose_answer(messages, answer_length(body, self.config.default_answer_tokens))
        await self.inject_fault(request)
        usage = chat_usage(messages, words)
        self.stats.tokens.update({"prompt": usage["prompt_tokens"], "completion": len(words)})
        head = {"id": f"chatcmpl-fake{next(self.ids):012d}", "created": int(time.time()),
                "model": str(body.get("model") or DEFAULT_CHAT_MODEL),
                "system_fingerprint": SYSTEM_FINGERPRINT}
        if body.get("stream"):
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and options.get("include_usage")
            await self.stream_chat(request, head, words, usage if include_usage else None)
            return
        ttft = self.latency.ttft(self.rng)
        await asyncio.sleep(ttft + len(words) * self.latency.seconds_per_token)
        await send_json(request.send, 200, {**head, "object": "chat.completion", "usage": usage, "choices": [{
            "index": 0, "finish_reason": "stop", "logprobs": None,
            "message": {"role": "assistant", "content": " ".join(words), "refusal": None},
        }]})

    async def stream_chat(self, request: Request, head: dict[str, Any], words: list[str],
                          usage: dict[str, int] | None) -> None:
        """OpenAI's chunk sequence: role, content..., finish_reason, [usage], [DONE].

        Events due together share one write (role with the first content; the tail): each write
        is a syscall, and syscalls are what a streaming server spends most of its time on.
        """
        self.stats.streamed += 1
        chunk = {**head, "object": "chat.completion.chunk"}
        if usage is not None:
            chunk["usage"] = None  # OpenAI sends usage: null on every chunk but the last

        def event(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            return sse({**chunk, "choices": [choice]})

        await request.send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
        await asyncio.sleep(self.latency.ttft(self.rng))
        pending = event({"role": "assistant", "content": "", "refusal": None})
        async for text in self.paced_chunks(words):
            body, pending = pending + event({"content": text}), b""
            await request.send({"type": "http.response.body", "body": body, "more_body": True})
        tail = event({}, "stop") + (sse({**chunk, "choices": [], "usage": usage}) if usage else b"")
        await request.send({"type": "http.response.body", "body": tail + b"data: [DONE]\n\n"})

    async def paced_chunks(self, words: list[str]) -> AsyncIterator[str]:
        """Texts of ``stream_chunk_tokens`` words, each released when its first token is due."""
        loop = asyncio.get_running_loop()
        started, per_token = loop.time(), self.latency.seconds_per_token
        size = self.config.stream_chunk_tokens
        for start in range(0, len(words), size):
            due = started + start * per_token
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            text = " ".join(words[start:start + size])
            yield " " + text if start else text

    async def embeddings(self, request: Request) -> None:
        body = request.json()
        inputs = embedding_inputs(body)
        dimensions = positive_int(body, "dimensions", self.config.embedding_dimensions,
                                  MAX_EMBEDDING_DIMENSIONS)
        encoding_format = body.get("encoding_format") or "float"
        if encoding_format not in ("float", "base64"):
            raise HTTPError(400, "'encoding_format' must be 'float' or 'base64'.")
        await self.inject_fault(request)
        await asyncio.sleep(self.latency.embedding_delay(self.rng))
        tokens = sum(answers.count_tokens(text) for text in inputs)
        self.stats.tokens["embedding"] += tokens
        data = [{"object": "embedding", "index": i,
                 "embedding": encode_vector(embeddings.embed(text, dimensions), encoding_format)}
                for i, text in enumerate(inputs)]
        await send_json(request.send, 200, {
            "object": "list", "data": data, "model": str(body.get("model") or DEFAULT_EMBEDDING_MODEL),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        })

    async def models(self, request: Request) -> None:
        await send_json(request.send, 200, {"object": "list", "data": [
            {"id": model, "object": "model", "created": STARTED_AT, "owned_by": "fakellm"} for model in MODELS
        ]})

    async def healthz(self, request: Request) -> None:
        await send_json(request.send, 200, {"status": "ok"})

    async def show_stats(self, request: Request) -> None:
        await send_json(request.send, 200, self.stats.snapshot())

    async def admin_config(self, request: Request) -> None:
        try:
            config = self.configure(request.json())
        except ValueError as exc:
            raise HTTPError(400, str(exc)) from None
        await send_json(request.send, 200, config.as_dict())

    async def admin_reset_stats(self, request: Request) -> None:
        in_flight = self.stats.in_flight
        self.stats = Stats(in_flight=in_flight)
        await send_json(request.send, 200, self.stats.snapshot())


def server_config(app: FakeLLM, host: str, port: int, log_level: str = "info") -> uvicorn.Config:
    """The one uvicorn configuration, shared by the CLI and ``fakellm.testing``."""
    return uvicorn.Config(
        app, host=host, port=port, loop="uvloop", http="httptools", lifespan="off", access_log=False,
        log_level=log_level, backlog=BACKLOG, timeout_keep_alive=KEEP_ALIVE_S, server_header=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        proxy_headers=False,  # the admin guard trusts the peer address, never X-Forwarded-For
    )


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fakellm", description="An OpenAI-compatible fake LLM for tests and load tests.",
        epilog=f"Every setting can also come from the environment ({ENV_PREFIX}<SETTING>); flags win.",
    )
    parser.add_argument("--host", default=environ.get(env_name("host"), DEFAULT_HOST),
                        help=f"address to listen on (default {DEFAULT_HOST}; env {env_name('host')})")
    parser.add_argument("--port", type=int, default=int(environ.get(env_name("port"), DEFAULT_PORT)),
                        help=f"port to listen on (default {DEFAULT_PORT}; env {env_name('port')})")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    modes = parser.add_mutually_exclusive_group()
    modes.add_argument("--fixed-latency", dest="latency_mode", action="store_const", const="fixed",
                       help="constant TTFT (= --ttft-median-s) and embeddings latency; tokens still paced")
    modes.add_argument("--no-latency", dest="latency_mode", action="store_const", const="none",
                       help="answer at once: no TTFT, no token pacing, no embeddings latency")
    for setting in dataclasses.fields(FakeLLMConfig):
        if setting.name != "latency_mode":
            parser.add_argument(
                "--" + setting.name.replace("_", "-"), dest=setting.name, metavar="VALUE",
                help=f"{setting.metadata['help']} (default {setting.default}; env {env_name(setting.name)})",
            )
    return parser


def config_from_args(args: argparse.Namespace, environ: Mapping[str, str]) -> FakeLLMConfig:
    """Defaults, then the environment, then flags; ValueError names the bad setting."""
    given = {s.name: getattr(args, s.name) for s in dataclasses.fields(FakeLLMConfig)}
    return FakeLLMConfig.from_env(environ).updated({k: v for k, v in given.items() if v is not None})


def raise_open_file_limit() -> None:
    """Each concurrent connection is a file descriptor; the common soft limit of 1024 is far too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def main(argv: Sequence[str] | None = None) -> None:
    environ = os.environ
    parser = build_parser(environ)
    args = parser.parse_args(argv)
    try:
        config = config_from_args(args, environ)
    except ValueError as exc:
        parser.error(str(exc))
    raise_open_file_limit()
    print(f"fakellm on http://{args.host}:{args.port}/v1 with {config}", file=sys.stderr)
    uvicorn.Server(server_config(FakeLLM(config), args.host, args.port, args.log_level)).run()


if __name__ == "__main__":
    main()
