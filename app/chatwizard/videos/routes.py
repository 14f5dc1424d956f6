"""/v1/videos: hybrid search and video detail."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Response

from chatwizard.core.services import ServicesDep
from chatwizard.videos import queries, service

router = APIRouter(tags=["videos"])


@router.get("/v1/videos/search")
async def search_videos(
    services: ServicesDep, response: Response,
    q: Annotated[str, Query(min_length=1, max_length=500, description="what to look for")],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> dict[str, Any]:
    """Hybrid semantic + keyword search over the catalogue."""
    videos, cached = await service.search(services, q, limit)
    response.headers["X-Cache"] = "search" if cached else "miss"
    return {"query": q, "videos": videos}


@router.get("/v1/videos/{video_id}")
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
