"""The FastAPI application: routers by domain over the core, one lifespan for shared clients."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib.metadata import version

import structlog
from fastapi import Depends, FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.routing import APIRoute

from chatwizard import contract
from chatwizard.accounts.routes import router as accounts_router
from chatwizard.audit import service as audit
from chatwizard.audit.routes import router as audit_router
from chatwizard.calendar.routes import router as calendar_router
from chatwizard.chat.routes import router as chat_router
from chatwizard.core import metrics, problems
from chatwizard.core.crypto import NO_RING, FieldKeyError, parse_ring
from chatwizard.core.logs import configure_logging
from chatwizard.core.observability import RequestMiddleware, init_sentry
from chatwizard.core.responses import SafeJSONResponse
from chatwizard.core.services import Services
from chatwizard.core.settings import Settings, get_settings
from chatwizard.health.routes import router as health_router
from chatwizard.paths.routes import router as paths_router
from chatwizard.policy import authorize
from chatwizard.privacy.routes import router as privacy_router
from chatwizard.progress.routes import router as progress_router
from chatwizard.videos.routes import router as videos_router
from chatwizard.web.routes import PAGES
from chatwizard.web.routes import router as web_router
from chatwizard.web_sessions.routes import router as web_sessions_router

log = structlog.get_logger(__name__)
ROUTERS = [health_router, chat_router, videos_router, paths_router, progress_router, calendar_router,
           accounts_router, privacy_router, audit_router, web_sessions_router, web_router]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings)
    init_sentry(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not parse_ring(settings.field_keys.get_secret_value() if settings.field_keys else ""):
            raise FieldKeyError(NO_RING)  # personal text is never written unencrypted (core/crypto.py)
        routes = [(r.path_format, m) for r in app.routes if isinstance(r, APIRoute) for m in r.methods]
        metrics.init_series(routes)
        services = app.state.services = await Services.start(settings)
        metrics.BUILD_INFO.labels(version("chatwizard")).set(1)
        sweeper = asyncio.create_task(services.activity.run())
        auditor = asyncio.create_task(audit.run_flusher(services))
        log.info("app_started", llm=services.llm.name, replica=settings.replica_url is not None)
        yield
        sweeper.cancel()
        auditor.cancel()
        await audit.flush(services, everything=True)  # the tallied failures and denials get their rows
        await services.stop()

    app = FastAPI(
        title="Chat Wizard API", version=version("chatwizard"), lifespan=lifespan,
        default_response_class=SafeJSONResponse, dependencies=[Depends(authorize)],
        description="Answers learners' questions with YouTube learning videos. Authenticate with "
                    "`Authorization: Bearer <API key>` (here: Authorize). Errors are RFC 9457 problem "
                    "details (`application/problem+json`), one shape for every error.",
    )
    for router in ROUTERS:
        app.include_router(router)
    problems.install(app)
    contract.describe(app)
    if settings.cors_origins:  # none by default: the API is called by apps and servers, not other sites
        app.add_middleware(CORSMiddleware, allow_origins=settings.cors_origins, allow_credentials=False,
                           allow_methods=["GET", "POST", "PUT", "DELETE"],
                           allow_headers=["Authorization", "Content-Type", "X-Request-ID"], max_age=600)
    app.add_middleware(RequestMiddleware, settings=settings, pages=PAGES)
    return app
