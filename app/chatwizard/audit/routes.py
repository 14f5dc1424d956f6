"""GET /v1/admin/audit: the security audit trail, newest first (admin)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query

from chatwizard.audit import service
from chatwizard.core.services import ServicesDep

router = APIRouter(tags=["audit"])


@router.get("/v1/admin/audit")
async def audit_events(
    services: ServicesDep,
    action: Annotated[str | None, Query(max_length=40, pattern=r"^[a-z_]+$")] = None,
    since: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Security events (auth failures, denials, 429s, key and role changes, exports, erasures)."""
    return await services.db.read(lambda c: service.events(c, action, since, limit), fresh=True)
