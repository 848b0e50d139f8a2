"""A local OpenAI-compatible chat completions server for tests (real HTTP on 127.0.0.1).

It streams SSE chunks (with the usage chunk when ``stream_options.include_usage`` is
set), answers with tool calls, fails with chosen HTTP statuses, or hangs mid-stream
until the client goes away. Every request is recorded, including whether the client
aborted it. The server runs in its own thread and event loop, so it keeps serving
while the test's loop is busy, and the runner may equally be another process.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.helpers import free_port


@dataclass
class Reply:
    """One scripted answer of the fake model."""

    text: str = ""
    # (name, arguments) of tool calls to make instead of answering.
    tool_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    status: int = 200
    error_message: str = ""
    error_code: str = ""
    # Seconds between streamed chunks.
    chunk_delay: float = 0.0
    # Characters per streamed chunk.
    chunk_size: int = 4
    # Stream the first chunk, then wait until the client disconnects.
    hang: bool = False
    # Stream a chunk that is not JSON.
    malformed: bool = False
    prompt_tokens: int = 11
    completion_tokens: int = 7


@dataclass
class Recorded:
    """One request as the server saw it."""

    body: dict[str, Any]
    authorization: str
    aborted: bool = False
    completed: bool = False

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    def last_user_content(self) -> str:
        users = [m for m in self.messages if m.get("role") == "user"]
        return content_text(users[-1]) if users else ""


Responder = Callable[[Recorded], Reply]
# Awaited before a request is answered (e.g. a barrier in the benchmark).
Gate = Callable[[Recorded], Awaitable[None]]


def content_text(message: dict[str, Any]) -> str:
    """A request message's text: content is a string or a list of content parts."""
    content = message.get("content")
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return str(content or "")


def tool_then_answer(name: str, arguments: dict[str, Any], answer: str) -> Responder:
    """Call ``name`` once per user turn, then answer; ``{tool_result}`` is filled in."""

    def respond(request: Recorded) -> Reply:
        messages = request.messages
        last_user = max(i for i, m in enumerate(messages) if m.get("role") == "user")
        results = [m for m in messages[last_user + 1 :] if m.get("role") == "tool"]
        if not results:
            return Reply(tool_calls=[(name, arguments)])
        return Reply(text=answer.replace("{tool_result}", content_text(results[-1])))

    return respond


class FakeOpenAI:
    """The server; use as ``with FakeOpenAI(responder) as server: server.url``.

    ``in_flight`` counts requests open right now and ``max_in_flight`` the most at once:
    how many model calls its clients held concurrently.
    """

    def __init__(self, responder: Responder, gate: Gate | None = None) -> None:
        self.responder = responder
        self.gate = gate
        self.requests: list[Recorded] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.port = free_port()
        self._ids = itertools.count(1)
        self._server = uvicorn.Server(
            uvicorn.Config(
                Starlette(routes=[Route("/v1/chat/completions", self._chat, methods=["POST"])]),
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                timeout_graceful_shutdown=1,
            )
        )
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    @property
    def url(self) -> str:
        """The base URL a client is configured with."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> FakeOpenAI:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("fake OpenAI server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def _chunk(self, completion_id: str, delta: dict[str, Any], finish: str | None) -> str:
        body = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(body)}\n\n"

    def _tool_call_deltas(self, reply: Reply) -> list[dict[str, Any]]:
        deltas = []
        for index, (name, arguments) in enumerate(reply.tool_calls):
            call_id = f"call_{next(self._ids)}"
            deltas.append(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": call_id,
                            "type": "function",
                            "function": {"name": name, "arguments": ""},
                        }
                    ]
                }
            )
            deltas.append(
                {"tool_calls": [{"index": index, "function": {"arguments": json.dumps(arguments)}}]}
            )
        return deltas

    async def _stream(
        self, record: Recorded, reply: Reply, include_usage: bool
    ) -> AsyncIterator[str]:
        completion_id = f"chatcmpl-{next(self._ids)}"
        try:
            yield self._chunk(completion_id, {"role": "assistant", "content": ""}, None)
            if reply.malformed:
                yield "data: {this is not json\n\n"
            if reply.hang:
                # Until the client disconnects and Starlette cancels us.
                await asyncio.Event().wait()
            if reply.tool_calls:
                deltas = self._tool_call_deltas(reply)
                finish = "tool_calls"
            else:
                size = reply.chunk_size
                deltas = [
                    {"content": reply.text[i : i + size]} for i in range(0, len(reply.text), size)
                ]
                finish = "stop"
            for delta in deltas:
                if reply.chunk_delay:
                    await asyncio.sleep(reply.chunk_delay)
                yield self._chunk(completion_id, delta, None)
            yield self._chunk(completion_id, {}, finish)
            if include_usage:
                usage = {
                    "prompt_tokens": reply.prompt_tokens,
                    "completion_tokens": reply.completion_tokens,
                    "total_tokens": reply.prompt_tokens + reply.completion_tokens,
                }
                body = {
                    "id": completion_id,
                    "object": "chat.completion.chunk",
                    "created": int(time.time()),
                    "model": "fake-model",
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(body)}\n\n"
            yield "data: [DONE]\n\n"
            record.completed = True
        except (asyncio.CancelledError, GeneratorExit):
            record.aborted = True
            raise
        finally:
            self.in_flight -= 1

    def _complete(self, reply: Reply) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            message["tool_calls"] = [
                {
                    "id": f"call_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": json.dumps(arguments)},
                }
                for name, arguments in reply.tool_calls
            ]
        return {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": "fake-model",
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.prompt_tokens,
                "completion_tokens": reply.completion_tokens,
                "total_tokens": reply.prompt_tokens + reply.completion_tokens,
            },
        }

    async def _chat(self, request: Request) -> Response:
        body = await request.json()
        record = Recorded(body=body, authorization=request.headers.get("authorization", ""))
        self.requests.append(record)
        # The server runs on one event loop in one thread: no lock needed.
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        streaming = False
        try:
            if self.gate:
                await self.gate(record)
            reply = self.responder(record)
            if reply.status != 200:
                record.completed = True
                error = {"message": reply.error_message, "type": "error", "code": reply.error_code}
                return JSONResponse({"error": error}, status_code=reply.status)
            if not body.get("stream"):
                record.completed = True
                return JSONResponse(self._complete(reply))
            streaming = True
        finally:
            if not streaming:  # else the stream counts itself out when it ends
                self.in_flight -= 1
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        return StreamingResponse(
            self._stream(record, reply, include_usage), media_type="text/event-stream"
        )
