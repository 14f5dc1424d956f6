"""Browser sign-in: invitations, sign-in links by mail, the session cookie, /v1/session and logout."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

import structlog
from fastapi import APIRouter, BackgroundTasks, HTTPException, Request, Response, status
from pydantic import BaseModel, EmailStr, Field

from chatwizard.audit.service import record
from chatwizard.contract import errors
from chatwizard.core.mail import MailUnavailable
from chatwizard.core.models import StrictModel
from chatwizard.core.security import SESSION_COOKIE, Principal, csrf_token, unauthorized
from chatwizard.core.services import Services, ServicesDep
from chatwizard.policy import CurrentUser
from chatwizard.web_sessions import service

log = structlog.get_logger(__name__)
router = APIRouter(tags=["sign-in"])
RETRY_MAIL_S = 30
EXAMPLE_EMAIL = "learner@example.org"


class InvitationCreate(StrictModel):
    email: EmailStr = Field(max_length=254, examples=[EXAMPLE_EMAIL])
    tier: Literal["free", "pro"] = "free"


class Invitation(BaseModel):
    id: UUID
    email: str = Field(examples=[EXAMPLE_EMAIL])
    tier: Literal["free", "pro", "admin"]
    expires_at: datetime = Field(description="the link works once, until then")


class SignInLinkRequest(StrictModel):
    email: EmailStr = Field(max_length=254, examples=[EXAMPLE_EMAIL])


class SignInLinkAccepted(BaseModel):
    detail: str = Field(examples=["if this address has an account, a sign-in link is on its way"])


class AcceptRequest(StrictModel):
    token: str = Field(min_length=1, max_length=128, description="the token from the link's #token=...")


class BrowserSession(BaseModel):
    user_id: UUID
    email: str = Field(examples=[EXAMPLE_EMAIL])
    tier: Literal["free", "pro", "admin"]
    csrf_token: str = Field(description="send it as X-CSRF-Token on every POST, PUT, PATCH and DELETE")
    expires_at: datetime = Field(description="the session's absolute end; unused for a while, it ends sooner")


def set_session_cookie(response: Response, session: str, lifetime_s: int) -> None:
    response.set_cookie(SESSION_COOKIE, session, max_age=lifetime_s, path="/", secure=True, httponly=True,
                        samesite="lax")


async def user_email(services: Services, user_id: UUID) -> str:
    row = await services.db.read(lambda c: c.fetchrow("SELECT email FROM users WHERE id = $1", user_id),
                                 fresh=True)
    return services.cipher.readable(row, "users")["email"]


@router.post("/v1/admin/invitations", status_code=status.HTTP_201_CREATED, response_model=Invitation,
             responses=errors(409))
async def admin_invite(body: InvitationCreate, services: ServicesDep, principal: CurrentUser,
                       request: Request) -> dict[str, Any]:
    """Invite a learner by e-mail (admin): they get a link that makes their account and signs them in.
    If the mail server is unavailable, 503 and no invitation is made."""
    try:
        invitation = await service.invite(services, body.email, body.tier, principal.user_id)
    except service.LinkRefused as refused:
        raise HTTPException(refused.status, detail=refused.detail) from None
    except MailUnavailable as failure:
        log.error("mail_unavailable", error=str(failure))
        raise HTTPException(503, detail="the mail server is unavailable, so no invitation was made; try "
                                        "again shortly", headers={"Retry-After": str(RETRY_MAIL_S)}) from None
    await record(services, "invitation_created", "success", connection=request, principal=principal,
                 target=f"invitation:{invitation['id']}", detail={"tier": body.tier})
    return invitation


@router.post("/v1/auth/sign-in-link", status_code=status.HTTP_202_ACCEPTED)
async def request_sign_in_link(body: SignInLinkRequest, services: ServicesDep,
                               background: BackgroundTasks) -> SignInLinkAccepted:
    """Ask for a sign-in link by mail (valid 15 minutes, once). The answer is the same whether or not the
    address has an account, and comes before any mail is sent, so it tells nobody which addresses do."""
    limiter = services.limiter
    address = services.cipher.blind_index(body.email, "sign_in_mail").hex()  # not the address itself
    await limiter.check(limiter.sign_in_mail, "sign_in_mail", address)
    background.add_task(mail_sign_in_link, services, body.email)
    return SignInLinkAccepted(detail="if this address has an account, a sign-in link is on its way")


async def mail_sign_in_link(services: Services, email: str) -> None:
    try:
        await service.mail_sign_in_link(services, email)
    except MailUnavailable as failure:  # after the answer: the learner asks again
        log.error("mail_unavailable", error=str(failure))


@router.post("/v1/auth/accept", responses=errors(400, 410))
async def accept(body: AcceptRequest, services: ServicesDep, request: Request,
                 response: Response) -> BrowserSession:
    """Use an invitation or sign-in link's token: signs in (sets the session cookie) and, for an
    invitation's first use, makes the account. A link works once and expires."""
    lifetime = services.settings.session_lifetime_s

    async def redeem(conn: Any) -> tuple[dict[str, Any], bool, str, datetime]:
        user, created = await service.redeem_link(conn, services.cipher, body.token)
        session, expires_at = await service.start_session(conn, user["id"], lifetime)
        return user, created, session, expires_at

    try:
        user, created, session, expires_at = await services.db.write(redeem)
    except service.LinkRefused as refused:
        await record(services, "sign_in_failed", "failure", connection=request,
                     detail={"status": refused.status})
        limiter = services.limiter  # guessing tokens counts as guessing keys
        address = request.client.host if request.client else "unknown"
        await limiter.check(limiter.auth_failures, "auth_failure", address)
        raise HTTPException(refused.status, detail=refused.detail) from None
    principal = Principal(user["id"], user["tier"], None, ())
    if created:
        await record(services, "user_created", "success", connection=request, principal=principal,
                     target=f"user:{user['id']}", subject=user["id"],
                     detail={"tier": user["tier"], "by": "invitation"})
    await record(services, "signed_in", "success", connection=request, principal=principal)
    set_session_cookie(response, session, lifetime)
    return BrowserSession(user_id=user["id"], email=user["email"], tier=user["tier"],
                          csrf_token=csrf_token(session), expires_at=expires_at)


@router.get("/v1/session")
async def current_session(principal: CurrentUser, services: ServicesDep) -> BrowserSession:
    """This browser's session: who is signed in and the CSRF token its page sends (401 with an API key)."""
    if principal.csrf_token is None or principal.expires_at is None:
        raise unauthorized("no_session")
    return BrowserSession(user_id=principal.user_id, email=await user_email(services, principal.user_id),
                          tier=principal.tier, csrf_token=principal.csrf_token,
                          expires_at=principal.expires_at)


@router.post("/v1/auth/logout", status_code=status.HTTP_204_NO_CONTENT)
async def logout(principal: CurrentUser, services: ServicesDep, request: Request, response: Response) -> None:
    """End this browser's session (server-side at once) and clear its cookie."""
    if principal.session_hash is not None:
        await service.end_session(services, principal.session_hash)
        await record(services, "signed_out", "success", connection=request, principal=principal)
    response.delete_cookie(SESSION_COOKIE, path="/", secure=True, httponly=True, samesite="lax")
