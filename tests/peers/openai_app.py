"""An OpenAI-compatible streaming endpoint that ``test_openai.py`` serves under uvicorn.

``POST /v1/chat/completions`` answers a chat completion request (``stream: true``) the way
OpenAI's API does: ``data: {chat.completion.chunk}`` events, one per token, then
``data: [DONE]``; a request without ``Authorization: Bearer <API_KEY>`` gets 401 with
OpenAI's JSON error body. ``POST /resumable/v1/chat/completions`` is the same answer with an
event id on every event (the token's index) that continues after the request's
``Last-Event-ID``. The answer is a function of the prompt (the last message's words, each
written back as a token, with its separator), so a resumed request gets the same tokens.
Tokens go out ``PACE`` seconds apart, so that a cut lands in the middle of an answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from sse_core import Event, ServerConfig
from sse_core.adapters.asgi import StreamResponse

#: The one API key the endpoint accepts.
API_KEY = "sk-test-key"
#: Seconds between two tokens.
PACE = 0.01
MODEL = "sse-core-echo"
CONFIG = ServerConfig(heartbeat_interval=5.0)

app = FastAPI()


def tokens_of(prompt: str) -> list[str]:
    """The answer to ``prompt``: each of its words with the spaces before it, in order."""
    return re.findall(r"\s*\S+", prompt)


def chunk(completion_id: str, index: int, delta: dict[str, str], finish: str | None) -> str:
    """One ``chat.completion.chunk`` object, as JSON text."""
    return json.dumps({
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": 1700000000,
        "model": MODEL,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    })


def chunks(prompt: str) -> list[str]:
    """Every event's data for the answer to ``prompt``: the role, one chunk per token, the
    finish reason, then ``[DONE]``. The completion id is a function of the prompt, so a
    resumed answer keeps it."""
    completion_id = "chatcmpl-" + hashlib.sha256(prompt.encode()).hexdigest()[:24]
    return [
        chunk(completion_id, 0, {"role": "assistant", "content": ""}, None),
        *(chunk(completion_id, 0, {"content": token}, None) for token in tokens_of(prompt)),
        chunk(completion_id, 0, {}, "stop"),
        "[DONE]",
    ]


async def _checked(request: Request) -> str | Response:
    """The request's prompt, or the error response OpenAI's API gives."""
    if request.headers.get("authorization") != f"Bearer {API_KEY}":
        return JSONResponse(
            {"error": {"message": "Incorrect API key provided.", "type": "invalid_request_error",
                       "param": None, "code": "invalid_api_key"}},
            status_code=401,
        )
    body: Any = await request.json()
    if body.get("stream") is not True:
        return JSONResponse({"error": {"message": "only stream: true is served here",
                                       "type": "invalid_request_error", "param": "stream",
                                       "code": None}}, status_code=400)
    return str(body["messages"][-1]["content"])


@app.post("/v1/chat/completions", response_model=None)
async def completions(request: Request) -> Response:
    """The answer as OpenAI streams it: no event ids, so it cannot be resumed."""
    prompt = await _checked(request)
    if isinstance(prompt, Response):
        return prompt

    async def answer() -> AsyncIterator[str]:
        for data in chunks(prompt):
            yield data
            await asyncio.sleep(PACE)

    return StreamResponse(answer(), config=CONFIG)


@app.post("/resumable/v1/chat/completions", response_model=None)
async def resumable(request: Request) -> Response:
    """The same answer with an id on each event (its index): a request with
    ``Last-Event-ID`` gets the events after that one."""
    prompt = await _checked(request)
    if isinstance(prompt, Response):
        return prompt

    async def answer(last_event_id: str) -> AsyncIterator[Event]:
        start = int(last_event_id) + 1 if last_event_id.isdigit() else 0
        for index, data in enumerate(chunks(prompt)[start:], start):
            yield Event(data=data, id=str(index))
            await asyncio.sleep(PACE)

    return StreamResponse(answer, config=CONFIG)
