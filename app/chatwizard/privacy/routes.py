"""/v1/me/export and DELETE /v1/me: a user's right of access and right to erasure (GDPR)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import structlog
from fastapi import APIRouter, HTTPException, status

from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser
from chatwizard.privacy import service

router = APIRouter(tags=["privacy"])
log = structlog.get_logger(__name__)


@router.get("/v1/me/export")
async def export_my_data(principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Everything Chat Wizard holds about you, machine-readable (JSON)."""
    log.info("privacy_export", user_id=str(principal.user_id))
    return await services.db.read(lambda c: service.export(c, principal.user_id), fresh=True)


@router.delete("/v1/me", status_code=status.HTTP_204_NO_CONTENT)
async def erase_me(principal: CurrentUser, services: ServicesDep) -> None:
    """Erase your account and everything derived from it (conversations, paths, progress, cache)."""
    await service.erase(services, principal.user_id)
    log.info("privacy_erasure", subject="self")  # no personal data in the record


@router.delete("/v1/admin/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def admin_erase_user(user_id: UUID, services: ServicesDep) -> None:
    """Erase a user on their request (admin)."""
    if not await service.erase(services, user_id):
        raise HTTPException(404, detail="no such user")
    log.info("privacy_erasure", subject="admin_request")
