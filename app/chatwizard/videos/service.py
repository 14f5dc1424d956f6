"""Catalogue search with a Redis cache, and the catalogue version every cache key carries."""

from __future__ import annotations

import hashlib
import re
import time
from typing import Any

from chatwizard.core import metrics
from chatwizard.core.llm import LLMUnavailable
from chatwizard.core.services import Services
from chatwizard.core.settings import Settings
from chatwizard.videos import queries

_WORD = re.compile(r"[\w']+")


def normalise(text: str) -> str:
    """Case, spacing and punctuation do not make a different question."""
    return " ".join(_WORD.findall(text.lower()))


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:32]


class CatalogueVersion:
    """The catalogue version, re-read at most every ``catalogue_version_ttl_s`` per process."""

    def __init__(self) -> None:
        self.value = 0
        self.read_at = float("-inf")

    async def get(self, services: Services) -> int:
        if time.monotonic() - self.read_at > services.settings.catalogue_version_ttl_s:
            self.value = await services.db.read(queries.catalogue_version)
            self.read_at = time.monotonic()
        return self.value


catalogue_version = CatalogueVersion()


def embedding_key(settings: Settings, text: str) -> str:
    return f"cw:emb:{settings.embedding_model}:{settings.embedding_dimensions}:{digest(text)}"


async def embed_question(services: Services, text: str) -> list[float] | None:
    """Embedding of a (normalised) question, cached; None if the embedding provider is down."""
    s = services.settings
    key = embedding_key(s, text)
    cached = await services.cache.get_json(key)
    if cached is not None:
        return cached
    try:
        [vector] = await services.llm.embed([text])
    except LLMUnavailable:
        return None
    await services.cache.set_json(key, vector, s.cache_answer_ttl_s)
    return vector


def reason(row: dict[str, Any]) -> str:
    parts = []
    if row.get("semantic_rank") is not None and row.get("distance") is not None:
        parts.append(f"close in meaning to your question (similarity {1 - row['distance']:.2f})")
    if row.get("keyword_rank") is not None:
        parts.append("matches your keywords")
    return " and ".join(parts).capitalize() or "Popular in the catalogue"


def present(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "title": row["title"], "channel": row["channel_title"],
        "url": f"https://www.youtube.com/watch?v={row['id']}", "thumbnail_url": row["thumbnail_url"],
        "duration_s": row["duration_s"], "reason": reason(row),
    }


async def search(services: Services, text: str, limit: int,
                 embedding: list[float] | None = None) -> tuple[list[dict[str, Any]], bool]:
    """Hybrid search through the search cache; returns (videos, served_from_cache)."""
    norm = normalise(text)
    version = await catalogue_version.get(services)
    key = f"cw:search:{version}:{limit}:{digest(norm)}"
    cached = await services.cache.get_json(key)
    if cached is not None:
        metrics.CACHE_REQUESTS.labels("search", "hit").inc()
        return cached, True
    metrics.CACHE_REQUESTS.labels("search", "miss").inc()
    if embedding is None:
        embedding = await embed_question(services, norm)
    if embedding is None:  # embeddings down: keywords still find videos
        rows = await services.db.read(lambda c: queries.keyword_search(c, text, limit))
    else:
        ef = services.settings.hnsw_ef_search
        rows = await services.db.read(lambda c: queries.hybrid_search(c, embedding, text, limit, ef))
    videos = [present(r) for r in rows]
    await services.cache.set_json(key, videos, services.settings.cache_search_ttl_s)
    return videos, False
