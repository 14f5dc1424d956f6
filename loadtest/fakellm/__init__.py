"""An OpenAI-compatible fake LLM: realistic latency, injectable faults, paraphrase-aware embeddings."""

from fakellm.config import FakeLLMConfig

__all__ = ["FakeLLMConfig"]
