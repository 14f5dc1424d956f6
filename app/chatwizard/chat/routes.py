"""/v1/chat (JSON), /v1/chat/stream (server-sent events), /v1/chat/ws (WebSocket), conversations."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import structlog
from fastapi import APIRouter, HTTPException, Query, WebSocket, WebSocketDisconnect, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, ValidationError

from chatwizard.chat import queries, service
from chatwizard.contract import cache_header, errors, event_stream
from chatwizard.core.models import StrictModel
from chatwizard.core.responses import SafeJSONResponse, safe_json
from chatwizard.core.security import authenticate, until_key_stops
from chatwizard.core.services import Services, ServicesDep
from chatwizard.policy import CurrentUser, count_question
from chatwizard.videos.routes import EXAMPLE_VIDEO, Video

router = APIRouter(tags=["chat"])
log = structlog.get_logger(__name__)


class ChatRequest(StrictModel):
    question: str = Field(min_length=1, max_length=2000, description="the learner's question",
                          examples=["How do I make a main menu in Unity?"])
    conversation_id: UUID | None = Field(None, description="continue this conversation")


AnswerSource = Literal["openai", "local", "fallback"]
CacheResult = Literal["exact", "semantic"]
Role = Literal["user", "assistant"]


class Usage(BaseModel):
    input_tokens: int = Field(ge=0)
    output_tokens: int = Field(ge=0)
    cost_usd: float = Field(ge=0, description="what the language model charged for this answer")


class ChatDone(BaseModel):
    """How an answer ended: where it is stored and what made it."""

    conversation_id: UUID | None = Field(description="continue here; null when it could not be saved")
    message_id: UUID | None
    saved: bool = Field(description="false when the database was unavailable: answered, not kept in history")
    answer_source: AnswerSource = Field(description="the language model that wrote it (openai, local) or "
                                                    "fallback: composed from the catalogue, no model")
    cache: CacheResult | None = Field(description="the cache that served it (as X-Cache), null: generated")
    usage: Usage


class ChatAnswer(ChatDone):
    answer: str = Field(examples=["Start with \"Unity UI in 10 minutes\" by Brackeys: it builds a menu."])
    videos: list[Video] = Field(description="3-5 recommended videos", examples=[[EXAMPLE_VIDEO]])


class Token(BaseModel):
    text: str = Field(description="the next piece of the answer", examples=["Start with "])


SSE_EXAMPLE = ('event: token\ndata: {"text":"Start with "}\n\nevent: token\ndata: {"text":"this video."}\n\n'
               'event: videos\ndata: [{"id":"dQw4w9WgXcQ", ...}]\n\nevent: done\ndata: {"conversation_id":'
               '"0193...", "message_id":"0193...", "saved":true, "answer_source":"openai", "cache":null, '
               '"usage":{...}}\n\n')
SSE_RESPONSE = event_stream("`token` events as the answer streams, then one `videos` event, then one `done`",
                            SSE_EXAMPLE, token=Token, videos=list[Video], done=ChatDone)


def not_found() -> HTTPException:
    return HTTPException(404, detail="no such conversation")


# The busiest route: it returns its response itself, which spares FastAPI re-validating the result.
@router.post("/v1/chat", response_model=ChatAnswer,
             responses={**cache_header("exact", "semantic", "miss"), **errors(404)})
async def chat(body: ChatRequest, principal: CurrentUser, services: ServicesDep) -> SafeJSONResponse:
    """Answer a question with 3-5 recommended videos; X-Cache says exact, semantic or miss."""
    try:
        result = await service.answer_once(services, principal, body.question, body.conversation_id)
    except service.ConversationNotFound:
        raise not_found() from None
    return SafeJSONResponse(result, headers={"X-Cache": result["cache"] or "miss"})


@router.post("/v1/chat/stream", response_class=StreamingResponse, responses={**SSE_RESPONSE, **errors(404)})
async def chat_stream(body: ChatRequest, principal: CurrentUser, services: ServicesDep) -> StreamingResponse:
    """The same answer as server-sent events: token events, then videos, then done."""
    events = service.chat_events(services, principal, body.question, body.conversation_id, "sse")
    try:  # run up to the first event so an unknown conversation is a 404, not a broken stream
        first = await anext(events)
    except service.ConversationNotFound:
        raise not_found() from None

    async def body_bytes() -> AsyncIterator[bytes]:
        yield service.sse(*first)
        async for kind, data in events:
            yield service.sse(kind, data)

    return StreamingResponse(body_bytes(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


async def send(websocket: WebSocket, frame: dict[str, Any]) -> None:
    await websocket.send_text(safe_json(frame).decode())


@router.websocket("/v1/chat/ws")
async def chat_ws(websocket: WebSocket, services: ServicesDep) -> None:
    """Send {"question": ...} frames; receive token frames, then videos, then done. One socket, many turns.
    Each question counts against your rate limit (an error frame with status 429 past it); the socket
    closes (code 1008) within seconds of its key being revoked, expiring or its account being erased."""
    await websocket.accept()
    # Both end with why the key stopped working, or None (the client left).
    tasks = [asyncio.create_task(answer_questions(websocket, services)),
             asyncio.create_task(until_key_stops(websocket))]
    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    for task in tasks:
        task.cancel()
    await asyncio.wait(tasks)
    if reason := next(filter(None, [t.result() for t in done]), None):  # result() re-raises a failure
        with contextlib.suppress(WebSocketDisconnect, RuntimeError):  # the client may be gone already
            await websocket.close(status.WS_1008_POLICY_VIOLATION, reason=reason)


def error_frame(refused: HTTPException) -> dict[str, Any]:
    """A refused question as a frame; a 429 says when to ask again, as its Retry-After header would."""
    frame = {"type": "error", "status": refused.status_code, "detail": refused.detail}
    if refused.headers and "Retry-After" in refused.headers:
        frame["retry_after"] = int(refused.headers["Retry-After"])
    return frame


async def answer_questions(websocket: WebSocket, services: Services) -> str | None:
    """The socket's turns until the client leaves (None) or its key stops working (why); each question
    is authenticated and counted anew."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            try:
                request = ChatRequest.model_validate_json(await websocket.receive_text())
            except ValidationError as exc:
                await send(websocket, {"type": "error", "status": 422,
                                           "detail": exc.errors(include_url=False, include_input=False)})
                continue
            try:
                principal = await authenticate(websocket)  # a revoked key gets no answer, even between checks
                await count_question(websocket, principal)
            except HTTPException as refused:
                await send(websocket, error_frame(refused))
                if refused.status_code == 401:
                    return str(refused.detail)
                continue
            try:
                async for kind, data in service.chat_events(services, principal, request.question,
                                                            request.conversation_id, "ws"):
                    await send(websocket, {"type": kind, "text": data} if kind == "token"
                                              else {"type": kind, "data": data})
            except service.ConversationNotFound:
                await send(websocket, {"type": "error", "status": 404, "detail": "no such conversation"})
    return None


class ConversationSummary(BaseModel):
    id: UUID
    title: str = Field(description="the conversation's first question, shortened",
                       examples=["How do I make a main menu in Unity?"])
    created_at: datetime
    updated_at: datetime


class Message(BaseModel):
    id: UUID
    role: Role
    content: str
    videos: list[Video] = Field(description="the answer's recommendations (empty for questions)")
    answer_source: AnswerSource | None
    cache: CacheResult | None
    created_at: datetime


class Conversation(ConversationSummary):
    messages: list[Message] = Field(description="questions and answers, oldest first")


@router.get("/v1/conversations", response_model=list[ConversationSummary])
async def list_conversations(principal: CurrentUser, services: ServicesDep,
                             limit: Annotated[int, Query(ge=1, le=100)] = 20) -> list[dict[str, Any]]:
    """Your conversations, most recently active first."""
    return await services.db.read(
        lambda c: queries.list_conversations(c, services.cipher, principal.user_id, limit), fresh=True)


@router.get("/v1/conversations/{conversation_id}", response_model=Conversation, responses=errors(404))
async def get_conversation(conversation_id: UUID, principal: CurrentUser,
                           services: ServicesDep) -> dict[str, Any]:
    """One of your conversations with all its messages."""
    found = await services.db.read(
        lambda c: queries.get_conversation(c, services.cipher, principal.user_id, conversation_id),
        fresh=True,
    )
    if found is None:
        raise not_found()
    return found
