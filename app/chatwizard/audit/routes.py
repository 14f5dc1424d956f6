"""GET /v1/admin/audit: the security audit trail, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from chatwizard.audit import service
from chatwizard.core.services import ServicesDep

router = APIRouter(tags=["audit"])


class SecurityEvent(BaseModel):
    at: datetime
    last_at: datetime | None = Field(description="the last of the events a tallied row stands for")
    occurrences: int = Field(ge=1, description="how many events the row stands for (failures are tallied)")
    action: str = Field(examples=["auth_failure", "key_created", "rate_limited", "user_erased"])
    outcome: Literal["success", "failure", "denied"]
    source: str | None = Field(description="the client's address")
    target: str | None = Field(description="the route or object acted on", examples=["key:0193…"])
    detail: dict[str, Any] = Field(examples=[{"reason": "API key revoked"}])


class AuditEvent(SecurityEvent):
    id: int
    actor_user: UUID | None = Field(description="null: anonymous, an operator at the CLI, or since erased")
    actor_key: UUID | None
    subject_user: UUID | None = Field(description="the user acted on, if any")


@router.get("/v1/admin/audit", response_model=list[AuditEvent])
async def audit_events(
    services: ServicesDep,
    action: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Security events (auth failures, denials, 429s, key and role changes, exports, erasures)."""
    return await services.db.read(lambda c: service.events(c, action, since, limit), fresh=True)
