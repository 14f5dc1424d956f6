"""/healthz: the process is alive. /readyz: can it serve? Says which dependency is degraded."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field

from chatwizard.core.services import ServicesDep

router = APIRouter(tags=["health"])


class Alive(BaseModel):
    status: Literal["ok"]


class Check(BaseModel):
    """One dependency's state; the other members say more (an error's kind, a replica's lag)."""

    model_config = ConfigDict(extra="allow")
    status: Literal["ok", "down", "lagging", "not_configured"]


class LanguageModel(BaseModel):
    mode: Literal["openai", "local"] = Field(description="the language model the app uses")


class Checks(BaseModel):
    primary: Check
    replica: Check
    redis: Check
    llm: LanguageModel


class Readiness(BaseModel):
    status: Literal["ok", "degraded", "unavailable"] = Field(
        description="degraded: serving, with a dependency down (Redis, the replica); unavailable: no primary")
    checks: Checks


@router.get("/healthz", response_model=Alive)
async def healthz() -> dict[str, str]:
    """The process is alive (liveness probe)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness,
            responses={503: {"model": Readiness, "description": "unavailable: the primary does not answer"}})
async def readyz(services: ServicesDep, response: Response) -> dict[str, Any]:
    """200 while the primary answers (degraded if the replica or Redis is not); 503 without the primary."""
    checks = await services.db.health()
    checks["redis"] = await services.cache.health()
    checks["llm"] = {"mode": services.llm.name}
    if checks["primary"]["status"] != "ok":
        state = "unavailable"
        response.status_code = 503
    elif checks["redis"]["status"] != "ok" or checks["replica"]["status"] not in ("ok", "not_configured"):
        state = "degraded"
    else:
        state = "ok"
    return {"status": state, "checks": checks}
