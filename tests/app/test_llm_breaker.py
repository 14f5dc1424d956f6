"""The LLM circuit breaker, against the fake OpenAI server through the real client: once open it
refuses calls, and after the reset time it lets exactly one trial through (half-open), not everyone."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import SecretStr

from chatwizard.core.llm import LLMUnavailable, OpenAIProvider
from chatwizard.core.settings import Settings
from fakellm.config import FakeLLMConfig
from fakellm.testing import running_fake_llm

RESET_S = 0.5


async def test_after_the_reset_time_one_trial_goes_through_and_the_rest_wait():
    with running_fake_llm(FakeLLMConfig(latency_mode="none", error_rate_500=1.0)) as llm:
        provider = OpenAIProvider(Settings(
            openai_api_key=SecretStr(llm.api_key), openai_base_url=llm.base_url, llm_max_retries=0,
            breaker_failure_threshold=2, breaker_reset_s=RESET_S))
        for _ in range(2):
            with pytest.raises(LLMUnavailable):
                await provider.embed(["open the breaker"])
        llm.reset_stats()
        await asyncio.sleep(RESET_S + 0.1)

        results = await asyncio.gather(*(provider.embed([f"q{i}"]) for i in range(5)), return_exceptions=True)

        kinds = sorted(r.kind for r in results if isinstance(r, LLMUnavailable))
        assert kinds == ["circuit_open"] * 4 + ["server"], kinds
        assert llm.stats()["requests"].get("embeddings", 0) == 1, "more than one trial reached the provider"
