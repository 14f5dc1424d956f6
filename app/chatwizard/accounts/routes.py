"""/v1/me, a user's own keys, and the admin endpoints for users and their keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, HTTPException, status
from pydantic import EmailStr, Field

from chatwizard.accounts import service
from chatwizard.core.models import StrictModel
from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser

router = APIRouter(tags=["accounts"])
Tier = Literal["free", "pro", "admin", "service"]


class KeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100)
    expires_at: datetime | None = None


class UserCreate(StrictModel):
    email: EmailStr = Field(max_length=254)
    tier: Tier = "free"


class KeyInfo(StrictModel):
    id: UUID
    name: str
    display_hint: str
    scopes: list[str]
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKey(KeyInfo):
    key: str = Field(description="the API key; shown only in this response")


@router.get("/v1/me")
async def me(principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Your account."""
    query = "SELECT id, email, tier, created_at FROM users WHERE id = $1"
    row = await services.db.read(lambda c: c.fetchrow(query, principal.user_id), fresh=True)
    return dict(row)


@router.get("/v1/keys")
async def list_my_keys(principal: CurrentUser, services: ServicesDep) -> list[KeyInfo]:
    """Your API keys (never the keys themselves)."""
    rows = await services.db.read(lambda c: service.list_keys(c, principal.user_id), fresh=True)
    return [KeyInfo(**r) for r in rows]


@router.post("/v1/keys", status_code=status.HTTP_201_CREATED)
async def create_my_key(body: KeyCreate, principal: CurrentUser, services: ServicesDep) -> NewKey:
    """Create another API key for a client; the key is shown only in this response."""
    key, row = await services.db.write(
        lambda c: service.create_key(c, principal.user_id, body.name, expires_at=body.expires_at)
    )
    return NewKey(key=key, **row)


@router.post("/v1/keys/{key_id}/rotate", status_code=status.HTTP_201_CREATED)
async def rotate_my_key(key_id: UUID, principal: CurrentUser, services: ServicesDep) -> NewKey:
    """Replace a key: the new one is shown once; the old one works for the overlap window, then expires."""
    overlap = timedelta(seconds=services.settings.key_rotation_overlap_s)
    rotated = await service.rotate_key(services, principal.user_id, key_id, overlap)
    if rotated is None:
        raise HTTPException(404, detail="no such active key")
    key, row = rotated
    return NewKey(key=key, **row)


@router.delete("/v1/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_my_key(key_id: UUID, principal: CurrentUser, services: ServicesDep) -> None:
    """Revoke one of your keys; it stops working at once."""
    if not await service.revoke_key(services, principal.user_id, key_id):
        raise HTTPException(404, detail="no such active key")


@router.post("/v1/admin/users", status_code=status.HTTP_201_CREATED)
async def admin_create_user(body: UserCreate, services: ServicesDep) -> dict[str, Any]:
    """Create a user (admin)."""
    exists = await services.db.write(lambda c: c.fetchval("SELECT 1 FROM users WHERE email = $1", body.email))
    if exists:
        raise HTTPException(409, detail="a user with this email already exists")
    return await services.db.write(lambda c: service.create_user(c, body.email, body.tier))


@router.get("/v1/admin/users")
async def admin_list_users(services: ServicesDep, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """List users (admin)."""
    if not (1 <= limit <= 500 and offset >= 0):
        raise HTTPException(422, detail="limit must be 1..500 and offset >= 0")
    rows = await services.db.read(lambda c: c.fetch(
        "SELECT id, email, tier, created_at FROM users ORDER BY created_at LIMIT $1 OFFSET $2", limit, offset
    ))
    return [dict(r) for r in rows]


@router.post("/v1/admin/users/{user_id}/keys", status_code=status.HTTP_201_CREATED)
async def admin_create_key(user_id: UUID, body: KeyCreate, services: ServicesDep) -> NewKey:
    """Create a key for a user (admin); shown only in this response."""
    found = await services.db.write(lambda c: c.fetchval("SELECT 1 FROM users WHERE id = $1", user_id))
    if not found:
        raise HTTPException(404, detail="no such user")
    key, row = await services.db.write(
        lambda c: service.create_key(c, user_id, body.name, expires_at=body.expires_at)
    )
    return NewKey(key=key, **row)
