"""/v1/progress: clicks, watch progress and completions, idempotent by the client's event id."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, Field, model_validator

from chatwizard.contract import errors
from chatwizard.core import metrics
from chatwizard.core.models import StrictModel
from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser
from chatwizard.progress import queries

router = APIRouter(tags=["progress"])
ProgressKind = Literal["click", "progress", "complete"]


class ProgressEvent(StrictModel):
    event_id: UUID = Field(description="client-chosen id; sending the same event again changes nothing")
    video_id: str = Field(min_length=1, max_length=64)
    kind: ProgressKind
    position_s: int | None = Field(None, ge=0, le=24 * 3600, description="seconds watched (progress)")

    @model_validator(mode="after")
    def _position_for_progress(self) -> ProgressEvent:
        if self.kind == "progress" and self.position_s is None:
            raise ValueError("position_s is required for kind 'progress'")
        return self


class VideoState(BaseModel):
    video_id: str
    clicks: int = Field(ge=0)
    position_s: int = Field(ge=0, description="how far you watched (only moves forward)")
    completed_at: datetime | None


class EventRecorded(VideoState):
    replayed: bool = Field(description="true: this event_id was recorded before and changed nothing (200)")


class VideoProgress(VideoState):
    title: str
    duration_s: int = Field(ge=0)


class ProgressSummary(BaseModel):
    videos: list[VideoProgress] = Field(description="the 200 videos you touched last, latest first")
    completed: int = Field(ge=0)
    watched_s: int = Field(ge=0)


@router.post("/v1/progress/events", status_code=status.HTTP_201_CREATED, response_model=EventRecorded,
             responses={200: {"model": EventRecorded, "description": "a replay: already recorded"},
                        **errors(404)})
async def record_event(event: ProgressEvent, principal: CurrentUser, services: ServicesDep,
                       response: Response) -> dict[str, Any]:
    """Record a click, watch progress or completion; replaying an event_id changes nothing (200)."""
    async def apply(conn: asyncpg.Connection) -> dict[str, Any] | None:
        duration = await conn.fetchval("SELECT duration_s FROM videos WHERE id = $1", event.video_id)
        if duration is None:
            return None
        fresh = await queries.insert_event(conn, principal.user_id, event)
        if fresh:
            metrics.WATCH_SECONDS.inc(await queries.fold(conn, principal.user_id, event, duration))
            if event.kind == "complete":
                for ratio in await queries.path_ratios(conn, principal.user_id, event.video_id):
                    metrics.PATH_PROGRESS.observe(ratio)
        state = await queries.video_state(conn, principal.user_id, event.video_id)
        return {"replayed": not fresh, **state}

    result = await services.db.write(apply)
    if result is None:
        raise HTTPException(404, detail="no such video")
    if result["replayed"]:
        response.status_code = status.HTTP_200_OK
    else:
        record_business_metrics(event)
    return result


def record_business_metrics(event: ProgressEvent) -> None:
    if event.kind == "click":
        metrics.VIDEO_CLICKS.inc()
    elif event.kind == "complete":
        metrics.VIDEO_COMPLETIONS.inc()


@router.get("/v1/progress", response_model=ProgressSummary)
async def my_progress(principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Your watch progress and completions."""
    return await services.db.read(lambda c: queries.summary(c, principal.user_id), fresh=True)
