"""/v1/videos: hybrid search and video detail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from chatwizard.contract import cache_header, errors
from chatwizard.core.services import ServicesDep
from chatwizard.videos import queries, service

router = APIRouter(tags=["videos"])
EXAMPLE_VIDEO = {"id": "dQw4w9WgXcQ", "title": "Unity UI in 10 minutes", "channel": "Brackeys",
                 "url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
                 "thumbnail_url": "https://i.ytimg.com/vi/dQw4w9WgXcQ/mqdefault.jpg", "duration_s": 612,
                 "reason": "Close in meaning to your question (similarity 0.83) and matches your keywords"}


class Video(BaseModel):
    """A recommended catalogue video and why it was chosen."""

    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE_VIDEO]})
    id: str = Field(description="the YouTube video id")
    title: str
    channel: str = Field(description="the channel's name")
    url: str = Field(description="where to watch it on YouTube")
    thumbnail_url: str | None = Field(description="YouTube's thumbnail (its CDN)")
    duration_s: int = Field(ge=0)
    reason: str = Field(description="why it was recommended")


class VideoDetail(Video):
    description: str
    tags: list[str]
    channel_id: str
    published_at: datetime | None
    view_count: int = Field(ge=0)


class SearchResult(BaseModel):
    query: str = Field(examples=["unity ui buttons"])
    videos: list[Video]


@router.get("/v1/videos/search", response_model=SearchResult, responses=cache_header("search", "miss"))
async def search_videos(
    services: ServicesDep, response: Response,
    q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Hybrid semantic + keyword search over the catalogue."""
    videos, cached = await service.search(services, q, limit)
    response.headers["X-Cache"] = "search" if cached else "miss"
    return {"query": q, "videos": videos}


@router.get("/v1/videos/{video_id}", response_model=VideoDetail, responses=errors(404))
async def video_detail(video_id: str, services: ServicesDep) -> dict[str, Any]:
    """One catalogue video."""
    if not video_id or len(video_id) > 64:
        raise HTTPException(422, detail="video_id must be 1..64 characters")
    row = await services.db.read(lambda c: c.fetchrow(queries.VIDEO_DETAIL, video_id))
    if row is None:
        raise HTTPException(404, detail="no such video")
    video = dict(row)
    return {**service.present(video), "description": video["description"], "tags": video["tags"],
            "channel_id": video["channel_id"], "published_at": video["published_at"],
            "view_count": video["view_count"]}
