"""Scheduled learning sessions and the per-user iCalendar feed behind an unguessable token URL."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import asyncpg
import structlog
from fastapi import APIRouter, HTTPException, Path, Request, Response, status
from icalendar import Calendar, Event
from pydantic import BaseModel, Field, model_validator

from chatwizard.calendar import queries
from chatwizard.contract import errors
from chatwizard.core import metrics
from chatwizard.core.models import CONTROL_CHARACTERS, StrictModel, Title
from chatwizard.core.security import hash_secret
from chatwizard.core.services import ServicesDep
from chatwizard.policy import CurrentUser

router = APIRouter(tags=["calendar"])
log = structlog.get_logger(__name__)
FEED_TOKEN_BYTES = 32
SCHEDULE_WINDOW = timedelta(days=3653)  # sessions start at most ten years before or after now
ICS_EXAMPLE = ("BEGIN:VCALENDAR\r\nPRODID:-//Chat Wizard//Learning sessions//EN\r\nVERSION:2.0\r\n"
               "BEGIN:VEVENT\r\nSUMMARY:Unity UI from scratch\r\nDTSTART:20261201T170000Z\r\n"
               "DTEND:20261201T174500Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")
FeedToken = Annotated[str, Path(min_length=20, max_length=100, pattern=r"^[A-Za-z0-9_-]+$")]


class SessionCreate(StrictModel):
    video_id: str | None = Field(None, min_length=1, max_length=64)
    path_id: UUID | None = None
    starts_at: datetime = Field(description="ISO 8601 with a time zone")
    duration_min: int = Field(ge=5, le=480)
    title: Title | None = Field(None, min_length=1, max_length=200)

    @model_validator(mode="after")
    def _one_target(self) -> SessionCreate:
        if (self.video_id is None) == (self.path_id is None):
            raise ValueError("give exactly one of video_id or path_id")
        if self.starts_at.tzinfo is None:
            raise ValueError("starts_at needs a time zone, e.g. 2026-12-01T18:00:00Z")
        now = datetime.now(UTC)
        if not now - SCHEDULE_WINDOW <= self.starts_at <= now + SCHEDULE_WINDOW:
            raise ValueError(f"starts_at must be within ten years of today ({now - SCHEDULE_WINDOW:%Y-%m-%d} "
                             f"to {now + SCHEDULE_WINDOW:%Y-%m-%d})")
        return self


class Session(BaseModel):
    id: UUID
    video_id: str | None = Field(description="the session's video, or null for a path")
    path_id: UUID | None = Field(description="the session's learning path, or null for a video")
    title: str = Field(examples=["Unity UI from scratch"])
    starts_at: datetime
    duration_min: int = Field(ge=5, le=480)
    created_at: datetime


class Feed(BaseModel):
    url: str = Field(description="the iCalendar feed; works without a key, so keep it secret",
                     json_schema_extra={"format": "uri"}, examples=["https://chatwizard.example/calendar/Yk3...Qw.ics"])


@router.post("/v1/calendar/sessions", status_code=status.HTTP_201_CREATED, response_model=Session,
             responses=errors(404))
async def schedule(body: SessionCreate, principal: CurrentUser, services: ServicesDep) -> dict[str, Any]:
    """Schedule a learning session for a video or one of your paths."""
    async def create(conn: asyncpg.Connection) -> dict[str, Any] | None:
        cipher = services.cipher
        title = await queries.target_title(conn, cipher, principal.user_id, body.video_id, body.path_id)
        if title is None:
            return None
        return await queries.create_session(conn, cipher, principal.user_id, body, body.title or title)

    session = await services.db.write(create)
    if session is None:
        raise HTTPException(404, detail="no such video or learning path")
    metrics.SESSIONS_SCHEDULED.inc()
    return session


@router.get("/v1/calendar/sessions", response_model=list[Session])
async def list_sessions(principal: CurrentUser, services: ServicesDep) -> list[dict[str, Any]]:
    """Your scheduled sessions."""
    return await services.db.read(lambda c: queries.sessions(c, services.cipher, principal.user_id),
                                  fresh=True)


@router.delete("/v1/calendar/sessions/{session_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses=errors(404))
async def cancel(session_id: UUID, principal: CurrentUser, services: ServicesDep) -> None:
    """Cancel one of your sessions."""
    deleted = await services.db.write(lambda c: c.fetchval(
        "DELETE FROM calendar_sessions WHERE id = $1 AND user_id = $2 RETURNING true",
        session_id, principal.user_id,
    ))
    if not deleted:
        raise HTTPException(404, detail="no such session")


@router.post("/v1/calendar/feed", status_code=status.HTTP_201_CREATED, response_model=Feed)
async def create_feed(principal: CurrentUser, services: ServicesDep, request: Request) -> dict[str, str]:
    """A new feed URL; any earlier one stops working. Shown once: only its hash is stored."""
    token = secrets.token_urlsafe(FEED_TOKEN_BYTES)
    await services.db.write(lambda c: c.execute(
        "INSERT INTO calendar_feeds (user_id, token_hash) VALUES ($1, $2) ON CONFLICT (user_id) "
        "DO UPDATE SET token_hash = EXCLUDED.token_hash, created_at = now()",
        principal.user_id, hash_secret(token),
    ))
    return {"url": str(request.url_for("calendar_feed", token=token))}


@router.delete("/v1/calendar/feed", status_code=status.HTTP_204_NO_CONTENT)
async def revoke_feed(principal: CurrentUser, services: ServicesDep) -> None:
    """Revoke your calendar feed URL."""
    await services.db.write(lambda c: c.execute("DELETE FROM calendar_feeds WHERE user_id = $1",
                                                principal.user_id))


@router.get("/calendar/{token}.ics", name="calendar_feed", response_class=Response,
            responses={200: {"description": "the sessions as an iCalendar (RFC 5545) feed", "content": {
                "text/calendar": {"schema": {"type": "string"}, "example": ICS_EXAMPLE}}}, **errors(404)})
async def calendar_feed(services: ServicesDep, token: FeedToken) -> Response:
    """Your sessions for calendar apps; the token in the URL is the key (POST /v1/calendar/feed)."""
    rows = await services.db.read(lambda c: queries.feed_sessions(c, services.cipher, hash_secret(token)),
                                  fresh=True)
    if rows is None:
        raise HTTPException(404, detail="no such calendar feed")
    return Response(to_ics(rows), media_type="text/calendar; charset=utf-8",
                    headers={"Cache-Control": "private, max-age=300"})


def to_ics(sessions: list[dict[str, Any]]) -> bytes:
    calendar = Calendar()
    calendar.add("prodid", "-//Chat Wizard//Learning sessions//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", "Chat Wizard learning sessions")
    stamp = datetime.now(UTC)
    for session in sessions:
        try:
            end = session["starts_at"] + timedelta(minutes=session["duration_min"])
        except OverflowError:  # stored before dates were bounded: leave it out, keep the feed working
            log.warning("calendar_session_out_of_range", session=str(session["id"]))
            continue
        event = Event()
        event.add("uid", f"{session['id']}@chatwizard")
        event.add("dtstamp", stamp)
        event.add("dtstart", session["starts_at"])
        event.add("dtend", end)
        # Titles may come from the catalogue or from before titles were checked: text in iCalendar may
        # hold no control characters (RFC 5545, 3.3.11), so they become spaces.
        event.add("summary", CONTROL_CHARACTERS.sub(" ", session["title"]))
        if session["video_id"]:
            event.add("url", f"https://www.youtube.com/watch?v={session['video_id']}")
        calendar.add_component(event)
    return calendar.to_ical()
