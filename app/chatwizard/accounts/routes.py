"""/v1/me, a user's own keys, and the admin endpoints for users and their keys."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
from fastapi import APIRouter, HTTPException, Request, status
from pydantic import AwareDatetime, BaseModel, EmailStr, Field

from chatwizard.accounts import service
from chatwizard.audit.service import record
from chatwizard.contract import errors
from chatwizard.core.models import StrictModel
from chatwizard.core.security import Principal
from chatwizard.core.services import Services, ServicesDep
from chatwizard.policy import CurrentUser, Scope

router = APIRouter(tags=["accounts"])
# What a key-minting route may refuse besides bad input (accounts.service.check_mint and the key bound).
MINT_REFUSALS = errors(403, 409)
Tier = Literal["free", "pro", "admin", "service"]


class KeyCreate(StrictModel):
    name: str = Field(min_length=1, max_length=100, examples=["my phone"])
    expires_at: AwareDatetime | None = Field(
        None, description="when the key stops working; a key that expires may only create keys that "
                          "expire no later than it")
    scopes: list[Scope] = Field(
        default_factory=list, max_length=7,
        description="limit the key to these parts of the API; empty: everything the tier allows "
                    "(a scoped key may only create keys with a subset of its scopes)")


class UserCreate(StrictModel):
    email: EmailStr = Field(max_length=254, examples=["learner@example.org"])
    tier: Tier = "free"


class TierChange(StrictModel):
    tier: Tier


class User(BaseModel):
    id: UUID
    email: str = Field(examples=["learner@example.org"])
    tier: Tier = Field(description="free and pro: learners; admin and service: operators")
    created_at: datetime


class KeyInfo(BaseModel):
    id: UUID
    name: str = Field(examples=["my phone"])
    display_hint: str = Field(description="the key's first characters, to recognise it",
                              examples=["cwk_3fA9xQ…"])
    scopes: list[Scope] = Field(description="empty: everything the tier allows")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewKey(KeyInfo):
    key: str = Field(description="the API key; shown only in this response")


async def mint(services: Services, principal: Principal, user_id: UUID,
               body: KeyCreate) -> tuple[str, dict[str, Any]] | None:
    try:
        return await service.mint_key(services, principal, user_id, body.name, scopes=list(body.scopes),
                                      expires_at=body.expires_at)
    except service.KeyRefused as refused:
        raise HTTPException(refused.status, detail=refused.detail) from None


@router.get("/v1/me", response_model=User)
async def me(principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Your account."""
    query = f"SELECT {service.USER_COLUMNS} FROM users WHERE id = $1"
    row = await services.db.read(lambda c: c.fetchrow(query, principal.user_id), fresh=True)
    return services.cipher.readable(row, "users")


@router.get("/v1/keys")
async def list_my_keys(principal: CurrentUser, services: ServicesDep) -> list[KeyInfo]:
    """Your API keys (never the keys themselves)."""
    rows = await services.db.read(lambda c: service.list_keys(c, principal.user_id), fresh=True)
    return [KeyInfo(**r) for r in rows]


@router.post("/v1/keys", status_code=status.HTTP_201_CREATED, responses=MINT_REFUSALS)
async def create_my_key(body: KeyCreate, principal: CurrentUser, services: ServicesDep,
                        request: Request) -> NewKey:
    """Create another API key for a client; the key is shown only in this response. No wider than the
    calling key (scopes, expiry), and within the tier's bound on active keys (409 past it)."""
    minted = await mint(services, principal, principal.user_id, body)
    assert minted is not None  # the caller's own account exists
    key, row = minted
    await record(services, "key_created", "success", connection=request, principal=principal,
                 target=f"key:{row['id']}")
    return NewKey(key=key, **row)


@router.post("/v1/keys/{key_id}/rotate", status_code=status.HTTP_201_CREATED,
             responses={**MINT_REFUSALS, **errors(404)})
async def rotate_my_key(key_id: UUID, principal: CurrentUser, services: ServicesDep,
                        request: Request) -> NewKey:
    """Replace a key: the new one (same scopes and expiry) is shown once; the old one works for the overlap
    window, then expires. A key may only rotate keys no wider than itself."""
    overlap = timedelta(seconds=services.settings.key_rotation_overlap_s)
    try:
        rotated = await service.rotate_key(services, principal, key_id, overlap)
    except service.KeyRefused as refused:
        raise HTTPException(refused.status, detail=refused.detail) from None
    if rotated is None:
        raise HTTPException(404, detail="no such active key")
    key, row = rotated
    await record(services, "key_rotated", "success", connection=request, principal=principal,
                 target=f"key:{key_id}", detail={"replacement": str(row["id"]),
                                                    "overlap_s": int(overlap.total_seconds())})
    return NewKey(key=key, **row)


@router.delete("/v1/keys/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=errors(404))
async def revoke_my_key(key_id: UUID, principal: CurrentUser, services: ServicesDep,
                        request: Request) -> None:
    """Revoke one of your keys; it stops working at once."""
    if not await service.revoke_key(services, principal.user_id, key_id):
        raise HTTPException(404, detail="no such active key")
    await record(services, "key_revoked", "success", connection=request, principal=principal,
                 target=f"key:{key_id}")


@router.post("/v1/admin/users", status_code=status.HTTP_201_CREATED, response_model=User,
             responses=errors(409))
async def admin_create_user(body: UserCreate, services: ServicesDep, principal: CurrentUser,
                            request: Request) -> dict[str, Any]:
    """Create a user (admin)."""
    try:  # the unique blind index decides, so two concurrent requests cannot both create the user
        user = await services.db.write(
            lambda c: service.create_user(c, services.cipher, body.email, body.tier))
    except asyncpg.UniqueViolationError:
        raise HTTPException(409, detail="a user with this email already exists") from None
    await record(services, "user_created", "success", connection=request, principal=principal,
                 target=f"user:{user['id']}", subject=user["id"], detail={"tier": body.tier})
    return user


@router.patch("/v1/admin/users/{user_id}", response_model=User, responses=errors(404))
async def admin_change_tier(user_id: UUID, body: TierChange, services: ServicesDep, principal: CurrentUser,
                            request: Request) -> dict[str, Any]:
    """Change a user's tier (role) (admin); it applies to their keys at once."""
    changed = await service.change_tier(services, user_id, body.tier)
    if changed is None:
        raise HTTPException(404, detail="no such user")
    await record(services, "role_changed", "success", connection=request, principal=principal,
                 target=f"user:{user_id}", subject=user_id,
                 detail={"from": changed["previous"], "to": body.tier})
    return changed["user"]


@router.get("/v1/admin/users", response_model=list[User])
async def admin_list_users(services: ServicesDep, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """List users (admin)."""
    if not (1 <= limit <= 500 and offset >= 0):
        raise HTTPException(422, detail="limit must be 1..500 and offset >= 0")
    rows = await services.db.read(lambda c: c.fetch(
        f"SELECT {service.USER_COLUMNS} FROM users ORDER BY created_at LIMIT $1 OFFSET $2", limit, offset
    ))
    return [services.cipher.readable(r, "users") for r in rows]


@router.post("/v1/admin/users/{user_id}/keys", status_code=status.HTTP_201_CREATED,
             responses={**MINT_REFUSALS, **errors(404)})
async def admin_create_key(user_id: UUID, body: KeyCreate, services: ServicesDep, principal: CurrentUser,
                           request: Request) -> NewKey:
    """Create a key for a user (admin); shown only in this response. No wider than the calling key."""
    minted = await mint(services, principal, user_id, body)
    if minted is None:
        raise HTTPException(404, detail="no such user")
    key, row = minted
    await record(services, "key_created", "success", connection=request, principal=principal,
                 target=f"key:{row['id']}", subject=user_id)
    return NewKey(key=key, **row)
