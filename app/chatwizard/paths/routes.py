"""/v1/paths: ordered learning paths of catalogue videos, with the owner's progress in percent."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, status
from pydantic import BaseModel, Field, field_validator

from chatwizard.contract import errors
from chatwizard.core.models import StrictModel, Title
from chatwizard.core.services import ServicesDep
from chatwizard.paths import queries
from chatwizard.policy import CurrentUser

router = APIRouter(tags=["learning paths"])
VideoIds = list[str]


def distinct_ids(ids: VideoIds) -> VideoIds:
    if len(set(ids)) != len(ids):
        raise ValueError("video_ids must not repeat a video")
    for video_id in ids:
        if not 1 <= len(video_id) <= 64:
            raise ValueError("each video id must be 1..64 characters")
    return ids


class PathCreate(StrictModel):
    title: Title = Field(min_length=1, max_length=200, examples=["Unity UI from scratch"])
    video_ids: VideoIds = Field(min_length=1, max_length=100)
    _distinct = field_validator("video_ids")(distinct_ids)


class PathOrder(StrictModel):
    video_ids: VideoIds = Field(min_length=1, max_length=100, description="the path's videos, in new order")
    _distinct = field_validator("video_ids")(distinct_ids)


class LearningPathSummary(BaseModel):
    id: UUID
    title: str = Field(examples=["Unity UI from scratch"])
    created_at: datetime
    updated_at: datetime
    videos: int = Field(ge=0, description="how many videos the path holds")
    completed: int = Field(ge=0, description="how many of them you completed")
    progress_percent: float = Field(ge=0, le=100, examples=[25.0])


class LearningPathItem(BaseModel):
    position: int = Field(ge=0)
    id: str = Field(description="the YouTube video id")
    title: str
    channel: str
    duration_s: int = Field(ge=0)
    thumbnail_url: str | None
    watched_s: int = Field(ge=0, description="how far you watched")
    completed: bool


class LearningPath(LearningPathSummary):
    items: list[LearningPathItem] = Field(description="the path's videos, in order, with your progress")


def path_not_found() -> HTTPException:
    return HTTPException(404, detail="no such learning path")


@router.post("/v1/paths", status_code=status.HTTP_201_CREATED, response_model=LearningPath)
async def create_path(body: PathCreate, principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Create a learning path from catalogue videos, in order."""
    try:
        path_id = await services.db.write(
            lambda c: queries.create(c, services.cipher, principal.user_id, body.title, body.video_ids)
        )
    except queries.UnknownVideos as exc:
        raise HTTPException(422, detail=f"unknown video ids: {', '.join(exc.ids)}") from None
    return await services.db.write(lambda c: queries.get(c, services.cipher, principal.user_id, path_id))


@router.get("/v1/paths", response_model=list[LearningPathSummary])
async def list_paths(principal: CurrentUser, services: ServicesDep) -> list[dict[str, Any]]:
    """Your learning paths with progress in percent."""
    return await services.db.read(lambda c: queries.list_for(c, services.cipher, principal.user_id),
                                  fresh=True)


@router.get("/v1/paths/{path_id}", response_model=LearningPath, responses=errors(404))
async def get_path(path_id: UUID, principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """One of your learning paths with its videos and your progress."""
    found = await services.db.read(lambda c: queries.get(c, services.cipher, principal.user_id, path_id),
                                   fresh=True)
    if found is None:
        raise path_not_found()
    return found


@router.put("/v1/paths/{path_id}/order", response_model=LearningPath, responses=errors(404))
async def reorder_path(path_id: UUID, body: PathOrder, principal: CurrentUser,
                       services: ServicesDep) -> dict[str, Any]:
    """Put a path's videos in a new order (the same videos, reordered)."""
    async def reorder(conn: asyncpg.Connection) -> dict[str, Any] | None:
        current = await queries.video_ids(conn, principal.user_id, path_id)
        if current is None:
            return None
        if sorted(current) != sorted(body.video_ids):
            raise HTTPException(422, detail="video_ids must list exactly the path's current videos")
        await queries.set_order(conn, path_id, body.video_ids)
        return await queries.get(conn, services.cipher, principal.user_id, path_id)

    found = await services.db.write(reorder)
    if found is None:
        raise path_not_found()
    return found
