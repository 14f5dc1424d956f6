"""What the fake LLM does: its latency model, injected errors and embedding size.

One frozen dataclass is the single source of every setting: the CLI flags (``--ttft-median-s``),
the environment (``FAKELLM_TTFT_MEDIAN_S``) and the admin endpoint (``{"ttft_median_s": 2}``) are
all derived from its fields, so a new setting needs only a new field here.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8100
ENV_PREFIX = "FAKELLM_"
LATENCY_MODES = ("lognormal", "fixed", "none")
MAX_OUTPUT_TOKENS = 16_384  # what gpt-4o-mini accepts as max_tokens; larger requests get a 400


def setting(default: Any, help: str) -> Any:
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class FakeLLMConfig:
    latency_mode: str = setting(
        "lognormal", "lognormal: random TTFT; fixed: TTFT always the median; none: no waiting at all"
    )
    ttft_median_s: float = setting(0.4, "median time to first token, seconds")
    ttft_p95_s: float = setting(1.0, "95th percentile of time to first token, seconds")
    tokens_per_second: float = setting(100.0, "output tokens streamed per second after the first")
    stream_chunk_tokens: int = setting(5, "tokens per streamed chunk (OpenAI sends 1; more is cheaper)")
    default_answer_tokens: int = setting(150, "answer length when the request sets no max_tokens")
    embedding_median_s: float = setting(0.04, "median embeddings latency, seconds")
    embedding_p95_s: float = setting(0.12, "95th percentile of embeddings latency, seconds")
    embedding_dimensions: int = setting(384, "embedding size when the request sets no dimensions")
    error_rate_429: float = setting(0.0, "share of chat/embedding requests answered 429 (with Retry-After)")
    error_rate_500: float = setting(0.0, "share of chat/embedding requests answered 500")
    timeout_rate: float = setting(0.0, "share of chat/embedding requests that hang for hang_s, then 504")
    retry_after_s: int = setting(1, "Retry-After header of injected 429s, seconds")
    hang_s: float = setting(120.0, "how long an injected timeout hangs (longer than the client timeout)")
    seed: int | None = setting(None, "seed for latency and error draws (reproducible runs)")

    def __post_init__(self) -> None:
        problems = [message for ok, message in self._checks() if not ok]
        if problems:
            raise ValueError("; ".join(problems))

    def _checks(self) -> list[tuple[bool, str]]:
        rates = (self.error_rate_429, self.error_rate_500, self.timeout_rate)
        return [
            (self.latency_mode in LATENCY_MODES, f"latency_mode must be one of {', '.join(LATENCY_MODES)}"),
            (0 <= self.ttft_median_s <= self.ttft_p95_s, "need 0 <= ttft_median_s <= ttft_p95_s"),
            (0 <= self.embedding_median_s <= self.embedding_p95_s,
             "need 0 <= embedding_median_s <= embedding_p95_s"),
            (self.tokens_per_second > 0, "tokens_per_second must be positive"),
            (self.stream_chunk_tokens >= 1, "stream_chunk_tokens must be at least 1"),
            (1 <= self.default_answer_tokens <= MAX_OUTPUT_TOKENS, "default_answer_tokens out of range"),
            (self.embedding_dimensions >= 1, "embedding_dimensions must be at least 1"),
            (all(0 <= r <= 1 for r in rates) and sum(rates) <= 1, "error rates must be in [0, 1], sum <= 1"),
            (self.retry_after_s >= 0 and self.hang_s >= 0, "retry_after_s and hang_s must be >= 0"),
        ]

    def updated(self, changes: Mapping[str, Any]) -> FakeLLMConfig:
        """A copy with ``changes`` (strings or JSON values) applied; ValueError on any bad one."""
        unknown = sorted(set(changes) - set(FIELD_TYPES))
        if unknown:
            raise ValueError(f"unknown settings: {', '.join(unknown)}")
        return dataclasses.replace(self, **{name: coerce(name, value) for name, value in changes.items()})

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> FakeLLMConfig:
        found = {name: environ[env_name(name)] for name in FIELD_TYPES if env_name(name) in environ}
        return cls().updated(found)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def _field_types() -> dict[str, tuple[type, bool]]:
    """Each field's base type and whether it may be None."""
    types = {}
    for name, hint in typing.get_type_hints(FakeLLMConfig).items():
        args = typing.get_args(hint)
        types[name] = (args[0], True) if type(None) in args else (hint, False)
    return types


FIELD_TYPES = _field_types()


def coerce(name: str, value: Any) -> Any:
    """``value`` (from an env var, a flag or JSON) as the field's type; ValueError if it is not one."""
    base, optional = FIELD_TYPES[name]
    if optional and (value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))):
        return None
    if isinstance(value, bool) or not isinstance(value, str | int | float) or (
        base is str and not isinstance(value, str)
    ):
        raise ValueError(f"{name}: expected {base.__name__}, got {value!r}")
    try:
        converted = base(value)
    except ValueError:
        raise ValueError(f"{name}: expected {base.__name__}, got {value!r}") from None
    if base is int and isinstance(value, float) and converted != value:
        raise ValueError(f"{name}: expected a whole number, got {value!r}")
    return converted
