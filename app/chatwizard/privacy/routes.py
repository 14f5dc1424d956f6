"""/v1/me/export and DELETE /v1/me: a user's right of access and right to erasure (GDPR)."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status
from pydantic import BaseModel, Field

from chatwizard.accounts.routes import KeyInfo, User
from chatwizard.audit.routes import SecurityEvent
from chatwizard.audit.service import record
from chatwizard.calendar.routes import Session
from chatwizard.chat.routes import AnswerSource, ConversationSummary, Role
from chatwizard.contract import errors
from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser
from chatwizard.privacy import service
from chatwizard.progress.routes import ProgressKind, VideoState
from chatwizard.videos.routes import Video

router = APIRouter(tags=["privacy"])


class ExportedMessage(BaseModel):
    id: UUID
    conversation_id: UUID
    role: Role
    content: str
    videos: list[Video]
    answer_source: AnswerSource | None
    created_at: datetime


class ExportedPath(BaseModel):
    id: UUID
    title: str
    created_at: datetime
    video_ids: list[str] = Field(description="in the path's order")


class ExportedEvent(BaseModel):
    event_id: UUID
    video_id: str
    kind: ProgressKind
    position_s: int | None
    created_at: datetime


class ExportedProgress(VideoState):
    updated_at: datetime


class Export(BaseModel):
    """Everything held about you, by kind."""

    account: User
    api_keys: list[KeyInfo]
    conversations: list[ConversationSummary]
    messages: list[ExportedMessage]
    learning_paths: list[ExportedPath]
    progress_events: list[ExportedEvent]
    video_progress: list[ExportedProgress]
    calendar_sessions: list[Session]
    security_events: list[SecurityEvent] = Field(description="the audit trail's events you caused")
    calendar_feed: bool = Field(description="whether a calendar feed URL exists (its token is not kept)")


@router.get("/v1/me/export", response_model=Export)
async def export_my_data(principal: CurrentUser, services: ServicesDep, request: Request) -> dict[str, Any]:
    """Everything Chat Wizard holds about you, machine-readable (JSON)."""
    data = await services.db.read(lambda c: service.export(c, services.cipher, principal.user_id), fresh=True)
    await record(services, "data_exported", "success", connection=request, principal=principal)
    return data


@router.delete("/v1/me", status_code=status.HTTP_204_NO_CONTENT)
async def erase_me(principal: CurrentUser, services: ServicesDep) -> None:
    """Erase your account and everything derived from it (conversations, paths, progress, cache)."""
    await service.erase(services, principal.user_id)
    await record(services, "user_erased", "success", detail={"by": "self"})  # no personal data kept


@router.delete("/v1/admin/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def admin_erase_user(user_id: UUID, services: ServicesDep, principal: CurrentUser,
                           request: Request) -> None:
    """Erase a user on their request (admin)."""
    if not await service.erase(services, user_id):
        raise HTTPException(404, detail="no such user")
    await record(services, "user_erased", "success", connection=request, principal=principal,
                 detail={"by": "admin"})
