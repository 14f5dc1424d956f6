"""Ingest YouTube Data API ``videos.list`` responses: validate, embed, upsert, bump the version.

Re-ingesting the same data changes nothing (rows are upserted by video id and only rewritten when a
field changed); the catalogue version moves only when something did change, which is what
invalidates cached answers and searches.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
import structlog
from pydantic import BaseModel, Field, ValidationError

from chatwizard.core.llm import Provider
from chatwizard.core.services import Services
from chatwizard.videos import queries

log = structlog.get_logger(__name__)
BATCH = 64
_DURATION = re.compile(r"^P(?:(\d+)D)?T?(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?$")


class IngestError(ValueError):
    """Input that is not a videos.list response; the message names the file and item."""


class Thumbnail(BaseModel):
    url: str


class Snippet(BaseModel):
    title: str = Field(min_length=1, max_length=500)
    description: str = ""
    channelId: str
    channelTitle: str
    publishedAt: datetime | None = None
    tags: list[str] = []
    thumbnails: dict[str, Thumbnail] = {}


class ContentDetails(BaseModel):
    duration: str


class Statistics(BaseModel):
    viewCount: int = 0


class Item(BaseModel):
    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    snippet: Snippet
    contentDetails: ContentDetails
    statistics: Statistics = Statistics()


def iso_duration_seconds(value: str) -> int:
    match = _DURATION.match(value)
    if not match or value in ("P", "PT"):
        raise ValueError(f"not an ISO 8601 duration: {value!r}")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def best_thumbnail(thumbnails: dict[str, Thumbnail]) -> str | None:
    for size in ("maxres", "standard", "high", "medium", "default"):
        if size in thumbnails:
            return thumbnails[size].url
    return None


def embedding_text(item: Item) -> str:
    s = item.snippet
    return f"{s.title}. {' '.join(s.tags)}. {s.description[:500]}"


def read_items(path: Path) -> Iterator[Item]:
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    if not files:
        raise IngestError(f"{path}: no .json files to ingest")
    for file in files:
        try:
            document = orjson.loads(file.read_bytes())
        except orjson.JSONDecodeError as exc:
            raise IngestError(f"{file}: not valid JSON ({exc})") from exc
        if not isinstance(document, dict) or not isinstance(document.get("items"), list):
            raise IngestError(f"{file}: expected a videos.list response with an 'items' list")
        for index, raw in enumerate(document["items"]):
            try:
                item = Item.model_validate(raw)
                iso_duration_seconds(item.contentDetails.duration)
            except (ValidationError, ValueError) as exc:
                raise IngestError(f"{file}: items[{index}]: {exc}") from exc
            yield item


def row(item: Item, embedding: list[float]) -> tuple[Any, ...]:
    s = item.snippet
    return (item.id, s.title, s.description, s.channelId, s.channelTitle, s.publishedAt,
            iso_duration_seconds(item.contentDetails.duration), best_thumbnail(s.thumbnails), s.tags,
            item.statistics.viewCount, queries.vector_literal(embedding))


async def ingest(services: Services, path: Path, provider: Provider | None = None) -> dict[str, int]:
    """Validate every item first (nothing is written if any is bad), then embed and upsert."""
    items = list(read_items(path))
    provider = provider or services.llm
    changed = 0
    for start in range(0, len(items), BATCH):
        batch = items[start:start + BATCH]
        vectors = await provider.embed([embedding_text(i) for i in batch])
        rows = [row(i, v) for i, v in zip(batch, vectors, strict=True)]
        changed += await services.db.write(lambda c, rows=rows: _upsert(c, rows))
    if changed:
        await services.db.write(
            lambda c: c.execute("UPDATE catalogue_state SET version = version + 1")
        )
    log.info("catalogue_ingested", items=len(items), changed=changed)
    return {"items": len(items), "changed": changed}


async def _upsert(conn: Any, rows: list[tuple[Any, ...]]) -> int:
    changed = 0
    for values in rows:
        status = await conn.execute(queries.UPSERT_VIDEO, *values)
        changed += int(status.split()[-1])
    return changed
