"""/v1/me/export and DELETE /v1/me: a user's right of access and right to erasure (GDPR)."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from fastapi import APIRouter, HTTPException, Request, status

from chatwizard.audit.service import record
from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser
from chatwizard.privacy import service

router = APIRouter(tags=["privacy"])


@router.get("/v1/me/export")
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


@router.delete("/v1/admin/users/{user_id}", status_code=status.HTTP_204_NO_CONTENT)
async def admin_erase_user(user_id: UUID, services: ServicesDep, principal: CurrentUser,
                           request: Request) -> None:
    """Erase a user on their request (admin)."""
    if not await service.erase(services, user_id):
        raise HTTPException(404, detail="no such user")
    await record(services, "user_erased", "success", connection=request, principal=principal,
                 detail={"by": "admin"})
