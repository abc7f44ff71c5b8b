"""The OpenAI-compatible API: ``/v1/models``, ``/v1/chat/completions`` (also streamed), ``/v1/files``.

Extensions to OpenAI's chat completion message (extra fields that OpenAI clients keep):

- ``videos``: the videos rendered for the reply's video prompts, each ``{"id", "url", "prompt",
  "backend", "seed", "content_type", "bytes", "expires_at"}``; download with ``GET /v1/files/{id}/content``.
- ``images``: the images (PNG) drawn for the reply's image prompts, each with the same fields; the same storage,
  expiry and URLs as videos.
- ``video_prompts`` / ``image_prompts``: the prompts the model wrote; ``generation_errors``: why a prompt was not
  rendered.
- ``safety``: the safety verdicts of the turn (layer, checker, category, score, threshold, reason);
  ``refusal`` holds the reply text when the turn was refused, ``refused_by`` the layer (input, model,
  prompt, output) and ``refusal_category`` its category; ``blocked_prompts`` and ``withheld`` list the
  prompts not rendered or whose video was withheld. These are the fields of ``chat --json`` of the same name.

Request extensions: ``generator`` names the text-to-video backend, ``image_generator`` the text-to-image backend
("none": only report the prompts).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.datastructures import UploadFile as StarletteUploadFile
from starlette.requests import ClientDisconnect

from ..errors import InputError
from ..modeling import GenerationParams
from ..video import VideoClip
from ..processing import Turn
from .config import ServeConfig
from .engine import ChatResult, ChatTurn, Delta, Done, Engine, Job
from .errors import BadRequest, NotFound, ServeError, Unauthorized, error_body
from .files import FileStore, too_large
from .inputs import VideoInputs
from .messages import parse_messages

#: Fields of the reply's output (``ReplyOutput.to_dict``) that the message carries besides OpenAI's.
REPLY_EXTRAS = ("video_prompts", "image_prompts", "generation_errors", "refused_by", "refusal_category",
                "blocked_prompts", "withheld", "safety", "subtitles")

NO_GENERATOR = "none"


class ChatCompletionRequest(BaseModel):
    """OpenAI's request body (the fields this server uses; other fields are accepted and ignored)."""

    model_config = ConfigDict(extra="allow")

    model: str
    messages: list[Any] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = Field(default=None, ge=0, lt=2**63)
    n: int | None = Field(default=None, ge=1)
    stop: str | list[str] | None = None
    generator: str | None = None
    image_generator: str | None = None


class Api:
    """The routes, bound to one engine, store and config."""

    def __init__(self, config: ServeConfig, engine: Engine, store: FileStore, inputs: VideoInputs,
                 default_generator: str | None, default_image_generator: str | None = None) -> None:
        self.config = config
        self.engine = engine
        self.store = store
        self.inputs = inputs
        self.default_generator = default_generator
        self.default_image_generator = default_image_generator
        self.started = int(time.time())

    # -- request pieces --------------------------------------------------------------------------
    def check_key(self, request: Request) -> None:
        key = self.config.api_key
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized("no API key: send it as 'Authorization: Bearer YOUR_KEY'",
                               headers={"WWW-Authenticate": "Bearer"})
        if not secrets.compare_digest(given.strip().encode(), key.encode()):
            raise Unauthorized("incorrect API key", headers={"WWW-Authenticate": "Bearer"})

    def params(self, body: ChatCompletionRequest) -> GenerationParams:
        if body.model != self.config.model_name:
            raise NotFound(f"the model {body.model!r} does not exist on this server; it serves "
                           f"{self.config.model_name!r}", param="model", code="model_not_found")
        if body.n not in (None, 1):
            raise BadRequest("n must be 1: this server writes one answer per request", param="n")
        max_tokens = body.max_completion_tokens or body.max_tokens or self.config.default_max_tokens
        if max_tokens > self.config.max_tokens:
            raise BadRequest(f"max_tokens is {max_tokens}; this server allows at most {self.config.max_tokens}",
                             param="max_tokens")
        stops = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        if len(stops) > 4 or any(not s for s in stops):
            raise BadRequest("stop must be up to 4 non-empty strings", param="stop")
        return GenerationParams(max_new_tokens=max_tokens, max_prompt_tokens=self.config.max_prompt_tokens,
                                temperature=body.temperature or 0.0,
                                top_p=body.top_p or 1.0, seed=body.seed,
                                stop=(*self.engine.model.processor.stop_strings, *stops))

    def generator(self, name: str | None, default: str | None) -> str | None:
        """The backend a request asks for by ``name`` (None: ``default``), or None for "none"."""
        name = default if name is None else name
        return None if name in (None, NO_GENERATOR) else name

    async def read_request(self, request: Request) -> ChatCompletionRequest:
        """The chat request, read chunk by chunk into one buffer (the BodyLimit middleware bounds it)."""
        buffer = bytearray()
        async for chunk in request.stream():
            buffer += chunk
        return await run_in_threadpool(_parse_request, buffer)

    def load_turns(self, messages: list[Any], host: str | None) -> list[ChatTurn]:
        """Parse the messages and decode every video (runs in a worker thread: decoding is slow).
        ``messages`` is emptied and each video's text dropped once decoded, so a base64 video is held
        only once, and only until it is decoded."""
        parsed = parse_messages(messages, max_videos=self.config.max_videos)
        messages.clear()
        turns = []
        for turn in parsed:
            clips = []
            while turn.videos:
                ref = turn.videos.pop(0)
                clips.append(self.inputs.load_base64(ref.value, ref.where) if ref.is_base64
                             else self.inputs.load_reference(ref.value, ref.where, host=host))
                del ref
            turns.append(ChatTurn(turn.role, turn.text, clips))
        return turns

    def check_prompt_length(self, turns: list[ChatTurn], params: GenerationParams) -> None:
        """An InputError (400) if the conversation's prompt is longer than the model accepts."""
        prompt, count = [], 0
        for turn in turns:
            clips = [c for c in turn.clips or () if isinstance(c, VideoClip)]  # sound files add no video tokens
            prompt.append(Turn(turn.role, turn.text, videos=list(range(count, count + len(clips)))))
            count += len(clips)
        self.engine.model.check_prompt_length(prompt, count, params)

    # -- responses -------------------------------------------------------------------------------
    def message_extras(self, result: ChatResult, request: Request) -> dict[str, Any]:
        base = str(request.base_url).rstrip("/")

        def described(files: list) -> list[dict[str, Any]]:  # noqa: ANN001
            return [{"id": f.file.id, "url": f"{base}/v1/files/{f.file.id}/content", "prompt": f.prompt,
                     "backend": f.backend, "seed": f.seed, "content_type": f.file.content_type,
                     "bytes": f.file.bytes, "expires_at": f.file.expires_at} for f in files]

        return {"refusal": result.text if result.refused else None, "videos": described(result.videos),
                "images": described(result.images), **{key: result.output[key] for key in REPLY_EXTRAS}}

    @staticmethod
    def usage(result: ChatResult) -> dict[str, int]:
        return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
                "total_tokens": result.prompt_tokens + result.completion_tokens}

    def completion(self, job: Job, result: ChatResult, request: Request) -> dict[str, Any]:
        message = {"role": "assistant", "content": result.text, **self.message_extras(result, request)}
        return {"id": job.id, "object": "chat.completion", "created": job.created, "model": self.config.model_name,
                "choices": [{"index": 0, "message": message, "finish_reason": result.finish_reason, "logprobs": None}],
                "usage": self.usage(result), "timings": result.timings}

    def chunk(self, job: Job, delta: dict[str, Any], finish_reason: str | None = None) -> str:
        data = {"id": job.id, "object": "chat.completion.chunk", "created": job.created,
                "model": self.config.model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}]}
        return f"data: {json.dumps(data, ensure_ascii=False)}\n\n"

    async def stream(self, job: Job, request: Request, include_usage: bool) -> AsyncIterator[str]:
        yield self.chunk(job, {"role": "assistant", "content": ""})
        try:
            async for event in job.events(self.config.request_timeout):
                if isinstance(event, Delta):
                    yield self.chunk(job, {"content": event.text})
                elif isinstance(event, Done):
                    result = event.result
                    yield self.chunk(job, self.message_extras(result, request), result.finish_reason)
                    if include_usage:
                        data = {"id": job.id, "object": "chat.completion.chunk", "created": job.created,
                                "model": self.config.model_name, "choices": [], "usage": self.usage(result)}
                        yield f"data: {json.dumps(data)}\n\n"
        except InputError as e:  # headers are sent: the error travels as an event (the SDK raises it)
            yield f"data: {json.dumps(error_object(e)[1])}\n\n"
        except Exception as e:  # noqa: BLE001
            yield f"data: {json.dumps(error_body(f'internal error: {type(e).__name__}', type='server_error'))}\n\n"
        yield "data: [DONE]\n\n"

    # -- routes ----------------------------------------------------------------------------------
    def router(self) -> APIRouter:
        r = APIRouter(prefix="/v1", dependencies=[Depends(self.check_key)])

        @r.get("/models")
        def models() -> dict[str, Any]:
            return {"object": "list", "data": [self.model_card()]}

        @r.get("/models/{model_id:path}")
        def model(model_id: str) -> dict[str, Any]:
            if model_id != self.config.model_name:
                raise NotFound(f"the model {model_id!r} does not exist on this server", code="model_not_found")
            return self.model_card()

        @r.post("/chat/completions", openapi_extra=_json_body(ChatCompletionRequest))
        async def chat(request: Request) -> Any:
            try:
                body = await self.read_request(request)
            except ClientDisconnect:
                return Response(status_code=499)
            params = self.params(body)
            generator = self.generator(body.generator, self.default_generator)
            image_generator = self.generator(body.image_generator, self.default_image_generator)
            messages, body.messages = body.messages, []  # load_turns lets go of each video once decoded
            turns = await run_in_threadpool(self.load_turns, messages, request.headers.get("host"))
            await run_in_threadpool(self.check_prompt_length, turns, params)  # a 400 before the queue
            job = self.engine.submit(turns, params, generator, asyncio.get_running_loop(), image_generator)
            if body.stream:
                include_usage = bool((body.stream_options or {}).get("include_usage"))
                return StreamingResponse(self.stream(job, request, include_usage), media_type="text/event-stream",
                                         headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
            result = await self.wait(job, request)
            if result is None:  # the client went away; nobody reads this
                return Response(status_code=499)
            return self.completion(job, result, request)

        @r.post("/files", openapi_extra=_UPLOAD_BODY)
        async def upload(request: Request) -> dict[str, Any]:
            try:
                async with request.form(max_files=1, max_fields=4) as form:
                    file, purpose = form.get("file"), form.get("purpose", "user_data")
                    if not isinstance(file, StarletteUploadFile):
                        raise BadRequest("the upload needs a multipart field \"file\" with the video", param="file")
                    if not isinstance(purpose, str):
                        raise BadRequest("purpose must be a string", param="purpose")
                    limit = self.config.max_upload_bytes
                    if file.size is not None and file.size > limit:
                        raise too_large(f"{file.filename!r}", file.size, limit)
                    stored = await run_in_threadpool(self.store.add_stream, file.file, file.filename or "upload",
                                                     purpose, max_bytes=limit, content_type=file.content_type)
            except ClientDisconnect:
                return Response(status_code=499)
            return stored.to_openai()

        @r.get("/files")
        def list_files(purpose: str | None = None) -> dict[str, Any]:
            return {"object": "list", "data": [f.to_openai() for f in self.store.list(purpose)], "has_more": False}

        @r.get("/files/{file_id}")
        def get_file(file_id: str) -> dict[str, Any]:
            return self.store.get(file_id).to_openai()

        @r.get("/files/{file_id}/content")
        def file_content(file_id: str) -> FileResponse:
            record = self.store.get(file_id)
            return FileResponse(record.path, media_type=record.content_type, filename=record.filename,
                                content_disposition_type="inline")

        @r.delete("/files/{file_id}")
        def delete_file(file_id: str) -> dict[str, Any]:
            self.store.get(file_id)  # 404 for a bad id
            return {"id": file_id, "object": "file", "deleted": self.store.delete(file_id)}

        @r.api_route("/{path:path}", methods=["GET", "POST", "PUT", "PATCH", "DELETE"], include_in_schema=False)
        def unknown(path: str) -> None:
            raise NotFound(f"no such endpoint: /v1/{path}", code="unknown_url")

        return r

    def model_card(self) -> dict[str, Any]:
        return {"id": self.config.model_name, "object": "model", "created": self.started, "owned_by": "gpt4video"}

    async def wait(self, job: Job, request: Request) -> ChatResult | None:
        """The job's result; None (and the job cancelled) if the client disconnects while it waits."""
        task = asyncio.ensure_future(job.result(self.config.request_timeout))
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=0.5)
                if done:
                    return task.result()
                if await request.is_disconnected():
                    job.cancel()
                    return None
        finally:
            if not task.done():
                task.cancel()


def _parse_request(buffer: bytearray) -> ChatCompletionRequest:
    """JSON → the request; the raw bytes are dropped as soon as they are text, the text once parsed."""
    try:
        text = buffer.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the request body is not valid JSON (not UTF-8)") from None
    finally:
        buffer.clear()
    try:
        data = json.loads(text)
    except ValueError:
        raise BadRequest("the request body is not valid JSON") from None
    del text
    if not isinstance(data, dict):
        raise BadRequest("the request body must be a JSON object")
    try:
        return ChatCompletionRequest.model_validate(data)
    except ValidationError as e:
        message, param = _first_error(e.errors())
        raise BadRequest(message, param=param) from None


def _first_error(errors: list[Any]) -> tuple[str, str | None]:
    """The message and param of a request's first validation error."""
    first = errors[0] if errors else {}
    param = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or None
    message = first.get("msg", "invalid request")
    return (f"{param}: {message}" if param else message), param


def _json_body(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI request body of a route that reads its JSON itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


_UPLOAD_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "string", "format": "binary"}, "purpose": {"type": "string"}}}}}}}


def error_object(error: Exception) -> tuple[int, dict[str, Any], dict[str, str]]:
    """HTTP status, body and headers for an error."""
    if isinstance(error, ServeError):
        return error.status, error.body(), error.headers
    if isinstance(error, InputError):
        return 400, error_body(str(error), type="invalid_request_error"), {}
    return 500, error_body(f"internal error: {type(error).__name__}", type="server_error"), {}


def install_error_handlers(app: FastAPI) -> None:
    """Every error of the API as an OpenAI error object with the right status, never a traceback."""
    from starlette.exceptions import HTTPException

    def respond(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers or None)

    @app.exception_handler(InputError)
    async def input_error(request: Request, exc: InputError) -> JSONResponse:
        return respond(*error_object(exc))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        if errors and errors[0].get("type") == "json_invalid":
            return respond(400, error_body("the request body is not valid JSON", type="invalid_request_error"))
        message, param = _first_error(list(errors))
        return respond(400, error_body(message, type="invalid_request_error", param=param))

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> JSONResponse:
        kind: Literal["invalid_request_error", "server_error"] = (
            "server_error" if exc.status_code >= 500 else "invalid_request_error")
        return respond(exc.status_code, error_body(str(exc.detail), type=kind), dict(exc.headers or {}))

    @app.exception_handler(Exception)
    async def internal_error(request: Request, exc: Exception) -> JSONResponse:
        import logging

        logging.getLogger("gpt4video.serve").error("internal error on %s %s", request.method, request.url.path,
                                                    exc_info=exc)
        return respond(*error_object(exc)[:2])
