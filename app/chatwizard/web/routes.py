"""The pages (one HTML shell for every screen) and the fingerprinted static assets.

Both carry no data (the screens fetch it from /v1/* with the session cookie), so they are public,
unthrottled (cheaper to serve from memory than to count in Redis) and left out of the API schema.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request, Response

from chatwizard.core.edge import PAGE_CACHE_CONTROL, STATIC_CACHE_CONTROL, STATIC_PREFIX
from chatwizard.web.assets import Asset, bundle

router = APIRouter(include_in_schema=False)

PAGES = ("/", "/sign-in", "/invite", "/chat", "/conversations", "/paths", "/progress", "/calendar",
         "/privacy", "/admin")
STATIC_ROUTE = STATIC_PREFIX + "{name}"  # what the edge caches (core/edge.py)


async def page(request: Request) -> Response:
    shell = bundle()
    headers = {"Cache-Control": PAGE_CACHE_CONTROL, "ETag": shell.shell_etag}
    if shell.shell_etag in request.headers.get("if-none-match", "").replace("W/", "").split(", "):
        return Response(status_code=304, headers=headers)
    return Response(shell.shell, media_type="text/html; charset=utf-8", headers=headers)


for _path in PAGES:
    router.add_api_route(_path, page, methods=["GET"])


def accepted_encodings(header: str) -> set[str]:
    """The codings the client takes (``q=0`` refuses one)."""
    accepted = set()
    for part in header.split(","):
        coding, _, params = part.strip().partition(";")
        try:
            weight = float(params.strip().removeprefix("q=")) if params else 1.0
        except ValueError:
            weight = 1.0
        if coding and weight > 0:
            accepted.add(coding.strip().lower())
    return accepted


def encoded(asset: Asset, accept_encoding: str) -> tuple[bytes, str | None]:
    accepted = accepted_encodings(accept_encoding)
    if "br" in accepted:
        return asset.br, "br"
    if "gzip" in accepted:
        return asset.gzip, "gzip"
    return asset.identity, None


@router.get(STATIC_ROUTE)
async def static(name: str, request: Request) -> Response:
    asset = bundle().assets.get(name)
    if asset is None:  # never cached: mid-rollout, another pod (the other release) may have it
        raise HTTPException(404, detail="no such asset", headers={"Cache-Control": "no-store"})
    body, coding = encoded(asset, request.headers.get("accept-encoding", ""))
    headers = {"Cache-Control": STATIC_CACHE_CONTROL, "Vary": "Accept-Encoding"}
    if coding:
        headers["Content-Encoding"] = coding
    return Response(body, media_type=asset.content_type, headers=headers)
