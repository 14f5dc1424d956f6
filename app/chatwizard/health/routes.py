"""/healthz: the process is alive. /readyz: can it serve? Says which dependency is degraded."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from chatwizard.core.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive (liveness probe)."""
    return {"status": "ok"}


@router.get("/readyz")
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
