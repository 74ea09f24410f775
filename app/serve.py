"""`hybrid serve`: the answering pipeline behind an OpenAI-compatible HTTP API.

``GET /v1/models`` lists one model per collection and mode (``sample:auto``, ``sample:rag``, …);
``POST /v1/chat/completions`` answers the last user message through the same pipeline as
`hybrid ask` (the same route, passages, prompt and generation), streamed as server-sent events
or whole. The router's choice and reason, the passages and the citations travel in an extra
``hybrid`` field (on the response, or on the last chunk of a stream). Errors have the OpenAI shape
``{"error": {"message", "type", "param", "code"}}``.

One model answers one request at a time: requests queue on one lock, so two requests never
interleave adapter states on the loaded model, and the collection's assistant is built on first
use and kept until a request names another collection. Bodies are capped at ``max_request_bytes``;
with an API key set, every request needs ``Authorization: Bearer <key>``.
"""

from __future__ import annotations

import hmac
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from itertools import chain
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from domain.errors import ConfigError, GenerationError, HybridError
from domain.router import MODE_CHOICES

if TYPE_CHECKING:
    from domain.pipeline import Assistant
    from domain.types import Answer

MODES = MODE_CHOICES  # "auto", then the four modes
OWNER = "hybrid-assistant"

logger = logging.getLogger(__name__)


class ApiError(Exception):
    """An error answered in the OpenAI shape with ``status``."""

    def __init__(
        self, status: int, message: str, kind: str = "invalid_request_error", code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.kind, self.code = status, message, kind, code

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": None, "code": self.code}}


def model_ids(collections: list[str]) -> list[str]:
    return [f"{c}:{m}" for c in collections for m in MODES]


def parse_model(model: Any, collections: list[str], default: str) -> tuple[str, str]:
    """(collection, mode) named by ``model``: "coll:mode", "coll" (auto), a mode alone (the default
    collection) or nothing (the default collection, auto).

    Raises:
        ApiError: 404 for a collection or mode that does not exist.
    """
    name = str(model or "").strip()
    if not name:
        return default, "auto"
    coll, _, mode = name.rpartition(":") if ":" in name else ("", "", name)
    if not coll and mode not in MODES:
        coll, mode = mode, "auto"
    coll = coll or default
    if coll not in collections or mode not in MODES:
        raise ApiError(
            404, f"the model {name!r} does not exist — GET /v1/models lists them", code="model_not_found"
        )
    return coll, mode


def last_user_text(messages: Any) -> str:
    """The text of the last user message (a string or a list of text parts).

    Raises:
        ApiError: 400 when ``messages`` is not a list of messages or holds no user text.
    """
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise ApiError(400, "'messages' must be a list of {role, content} objects")
    for m in reversed(messages):
        if m.get("role") != "user":
            continue
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(
                p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"
            )
        if isinstance(content, str) and content.strip():
            return content.strip()
        break
    raise ApiError(400, "the last user message has no text to answer")


class Pipelines:
    """The assistant of one collection at a time behind ``lock`` (hold it to use ``get``)."""

    def __init__(self, build: Callable[[str], Assistant]) -> None:
        self._build = build
        self._name: str | None = None
        self._assistant: Assistant | None = None
        self.lock = threading.Lock()

    def get(self, collection: str) -> Assistant:
        if self._name != collection or self._assistant is None:
            self._assistant = None  # the old model goes before the new one loads
            self._assistant = self._build(collection)
            self._name = collection
        return self._assistant


def hybrid_field(collection: str, answer: Answer) -> dict[str, Any]:
    from domain.serialize import citation_to_json, hit_to_json

    return {
        "collection": collection,
        "mode": answer.mode.value,
        "route_reason": answer.reason,
        "passages": [hit_to_json(h) for h in answer.passages],
        "citations": [citation_to_json(c) for c in answer.citations],
        "from_correction": answer.from_correction,
        "warnings": list(answer.warnings),
        "translated_from": answer.translated_from,
        "answered_by": answer.answered_by,
    }


def _as_api_error(e: HybridError) -> ApiError:
    if isinstance(e, GenerationError):
        return ApiError(500, str(e), "server_error")
    if isinstance(e, ConfigError):
        return ApiError(400, str(e))
    return ApiError(503, str(e), "server_error")


class Server:
    """The request handling, free of HTTP: ``complete`` answers a request body (a dict) whole,
    ``stream`` returns its server-sent events (JSON strings, then "[DONE]")."""

    def __init__(self, pipelines: Pipelines, collections: Callable[[], list[str]], default: str) -> None:
        self.pipelines, self.collections, self.default = pipelines, collections, default

    def _request(self, body: Any) -> tuple[str, str, str, str]:
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        coll, mode = parse_model(body.get("model"), self.collections(), self.default)
        return coll, mode, last_user_text(body.get("messages")), f"{coll}:{mode}"

    def complete(self, body: Any) -> dict[str, Any]:
        coll, mode, question, model = self._request(body)
        with self.pipelines.lock:
            try:
                answer = self.pipelines.get(coll).answer(question, mode)
            except HybridError as e:
                raise _as_api_error(e) from e
        return {
            "id": f"chatcmpl-{uuid.uuid4().hex}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": answer.text},
                    "finish_reason": "stop",
                }
            ],
            "hybrid": hybrid_field(coll, answer),
        }

    def stream(self, body: Any) -> Iterator[str]:
        """The events of a streamed answer. The first is produced before this returns, so an error
        in routing or retrieval raises here (and becomes an HTTP status) rather than mid-stream."""
        coll, mode, question, model = self._request(body)
        events = self._events(coll, mode, question, model)
        first = next(events)
        return chain([first], events)

    def _events(self, coll: str, mode: str, question: str, model: str) -> Iterator[str]:
        base = {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion.chunk", "model": model}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return json.dumps({**base, "created": int(time.time()), "choices": [choice], **extra})

        with self.pipelines.lock:  # held until the stream ends or is dropped
            try:
                answering = self.pipelines.get(coll).stream(question, mode)
            except HybridError as e:
                raise _as_api_error(e) from e
            try:
                yield chunk({"role": "assistant", "content": ""})
                for piece in answering.pieces:
                    yield chunk({"content": piece})
                answer = answering.answer()
            except HybridError as e:
                yield json.dumps(_as_api_error(e).body())
                return
            finally:
                answering.close()
            yield chunk({}, "stop", hybrid=hybrid_field(coll, answer))
        yield "[DONE]"


def create_app(server: Server, *, api_key: str | None, max_request_bytes: int) -> FastAPI:
    """The ASGI app over ``server``; no interactive docs (nothing beyond the two routes)."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    def error(e: ApiError) -> JSONResponse:
        return JSONResponse(e.body(), status_code=e.status)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, e: ApiError) -> JSONResponse:
        return error(e)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, e: Exception) -> JSONResponse:
        logger.exception("request failed")
        return error(ApiError(500, f"the request failed: {type(e).__name__}: {e}", "server_error"))

    @app.exception_handler(HTTPException)
    async def _http_error(_request: Request, e: HTTPException) -> JSONResponse:
        return error(ApiError(e.status_code, str(e.detail), "invalid_request_error"))

    @app.middleware("http")
    async def _guard(request: Request, call_next: Any) -> Any:
        if api_key is not None:
            given = request.headers.get("authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {api_key}".encode()):
                return error(
                    ApiError(
                        401, "a valid API key is needed: Authorization: Bearer <key>", code="invalid_api_key"
                    )
                )
        return await call_next(request)

    async def read_json(request: Request) -> Any:
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_request_bytes:
            raise ApiError(
                413, f"the request is larger than {max_request_bytes} bytes", code="request_too_large"
            )
        data = bytearray()
        async for part in request.stream():
            data += part
            if len(data) > max_request_bytes:
                raise ApiError(
                    413, f"the request is larger than {max_request_bytes} bytes", code="request_too_large"
                )
        try:
            return json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, f"the request body is not valid JSON: {e}") from e

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        names = await run_in_threadpool(server.collections)
        data = [{"id": m, "object": "model", "created": 0, "owned_by": OWNER} for m in model_ids(names)]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Any:
        body = await read_json(request)
        if isinstance(body, dict) and body.get("stream"):
            events = await run_in_threadpool(server.stream, body)
            return EventSourceResponse(events, sep="\n")
        return await run_in_threadpool(server.complete, body)

    return app
