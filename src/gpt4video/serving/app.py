"""The server: the API and the chat page in one FastAPI app, served by uvicorn.

    app = create_app(ServeConfig(...), model, generators={"synthetic": SyntheticGenerator()},
                     image_generators={"synthetic": SyntheticImageGenerator()}, default_image_generator="synthetic")
    serve(app, config)                      # blocks; SIGINT/SIGTERM shut it down gracefully

``create_app`` wires one :class:`~gpt4video.serving.engine.Engine` (the model's worker thread and its
bounded queue) to the OpenAI-compatible routes under ``/v1``, ``GET /health`` and, when
``config.web``, the Gradio page at ``/``. Middleware logs one line per request and answers 413 for
a body over the limit, from its Content-Length or as soon as the bytes received pass it.
``make_server`` is the uvicorn server whose shutdown answers queued requests 503 at once and ends
those in flight after ``--shutdown-timeout``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from ..errors import InputError
from ..generators import ImageGenerator, VideoGenerator
from ..modeling import GPT4Video
from .api import Api, install_error_handlers
from .config import MB, ServeConfig
from .engine import Engine
from .errors import TooLarge
from .files import FileStore
from .inputs import VideoInputs, VideoLimits

if TYPE_CHECKING:
    import uvicorn

log = logging.getLogger("gpt4video.serve")

#: Seconds a shutdown gives a cancelled answer to end, beyond --shutdown-timeout.
ABORT_GRACE = 5


# -- middleware ------------------------------------------------------------------------------------
class RequestLog:
    """One log line per HTTP request: client, method, path, status, bytes sent, milliseconds."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status, sent = 0, 0

        async def send_and_count(message: dict) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_and_count)
        finally:
            client = scope.get("client") or ("-", 0)
            log.info('%s "%s %s" %s %dB %.0fms', client[0], scope["method"], scope["path"], status or 500, sent,
                     (time.perf_counter() - start) * 1000)


class BodyLimit:
    """Answer 413 for a request body over its path's limit: at once from a Content-Length over it, or as
    soon as the bytes received pass it (no Content-Length, chunked). Nothing is buffered here: the body
    goes on to the app chunk by chunk, counted. After the 413 is sent, a body up to about twice the
    limit is read and dropped so the client, still sending, sees the 413 instead of a reset connection."""

    def __init__(self, app: Any, limit_for: Callable[[str, str], tuple[int, str] | None]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        found = self.limit_for(scope.get("method", ""), scope.get("path", "")) if scope["type"] == "http" else None
        if found is None:
            await self.app(scope, receive, send)
            return
        limit, note = found
        drain = 2 * limit + 16 * MB
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length", b"")
        if length.isdigit() and int(length) > limit:
            # A client that waits for "100 Continue" has sent nothing yet: answering is enough.
            waiting = headers.get(b"expect", b"").lower() == b"100-continue"
            await self._reject(send, receive, int(length), limit, note,
                               drain=0 if waiting or int(length) > drain else drain)
            return
        received, started, answered = 0, False, False

        async def counted() -> dict:
            nonlocal received, answered
            message = await receive()
            if message["type"] == "http.request" and not answered:
                received += len(message.get("body", b""))
                if received > limit:
                    if not started:  # an app that answered already keeps its answer
                        answered = True
                        more = message.get("more_body", False)
                        await self._reject(send, receive, received, limit, note, drain=drain - received if more else 0)
                    raise _too_large(received, limit, note)  # ends the app's read; its own answer is dropped
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if not answered:
                started = True
                await send(message)

        await self.app(scope, counted, guarded_send)

    @staticmethod
    async def _reject(send: Callable, receive: Callable, size: int, limit: int, note: str, *, drain: int) -> None:
        """Send the 413; then read and drop up to ``drain`` more bytes before ending the response."""
        body = json.dumps(_too_large(size, limit, note).body()).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": drain > 0})
        if drain <= 0:
            return
        while drain > 0:
            message = await receive()
            if message["type"] != "http.request":
                break
            drain -= len(message.get("body", b""))
            if not message.get("more_body", False):
                break
        await send({"type": "http.response.body", "body": b""})


def _too_large(size: int, limit: int, note: str) -> TooLarge:
    return TooLarge(f"the request body is larger than this server accepts: {size / 1e6:.1f} MB > "
                    f"{limit / 1e6:.1f} MB ({note})")


# -- the app ---------------------------------------------------------------------------------------
def create_app(config: ServeConfig, model: GPT4Video, *, generators: Mapping[str, VideoGenerator],
               default_generator: str | None = None, web: bool | None = None,
               assistant_options: Mapping[str, Any] | None = None,
               image_generators: Mapping[str, ImageGenerator] | None = None,
               default_image_generator: str | None = None) -> FastAPI:
    """The whole server for ``model``. ``generators`` are the text-to-video backends clients may choose
    (by name); ``default_generator`` is used when a request names none (None: only report prompts).
    ``image_generators`` and ``default_image_generator`` are the same for images.
    ``assistant_options`` go to every Assistant the engine makes (``{"safety": policy}``)."""
    image_generators = dict(image_generators or {})
    for what, default, gallery in (("generator", default_generator, generators),
                                   ("image generator", default_image_generator, image_generators)):
        if default is not None and default not in gallery:
            raise ValueError(f"default {what} {default!r} is not among {sorted(gallery)}")
    owned = config.storage_dir is None
    root = Path(tempfile.mkdtemp(prefix="gpt4video-serve-")) if owned else Path(config.storage_dir)
    store = FileStore(root, ttl=config.file_ttl_seconds)
    engine = Engine(model, store, generators=generators, queue_size=config.queue_size, max_batch=config.max_batch,
                    video_frames=config.video.frames, video_size=config.video.size,
                    assistant_options=assistant_options, image_generators=image_generators,
                    image_size=config.image_size)
    inputs = VideoInputs(store, VideoLimits(max_bytes=config.max_upload_bytes, max_seconds=config.max_video_seconds,
                                            sampling=model.processor.sampling,
                                            allow_url_fetch=config.allow_url_fetch,
                                            # subtitles or the audio branch: sound is read with the upload
                                            hear=(assistant_options or {}).get("speech") is not None
                                            or getattr(model, "audio_encoder", None) is not None),
                         own_hosts=frozenset({f"{config.host}:{config.port}", f"localhost:{config.port}"}))
    api = Api(config, engine, store, inputs, default_generator, default_image_generator)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine.start()
        sweeper = asyncio.create_task(_sweep_forever(store, min(60.0, config.file_ttl_seconds / 4)))
        log.info("serving %s (batch %d, queue %d, generators: %s; image generators: %s)", config.model_name,
                 config.max_batch, config.queue_size, ", ".join(generators) or "none",
                 ", ".join(image_generators) or "none")
        try:
            yield
        finally:
            sweeper.cancel()
            await asyncio.to_thread(engine.stop, ABORT_GRACE)  # make_server's shutdown gave requests their time
            if owned:
                shutil.rmtree(root, ignore_errors=True)
            log.info("stopped")

    app = FastAPI(title="gpt4video", version="1", lifespan=lifespan, docs_url="/docs", redoc_url=None)
    app.state.engine, app.state.store, app.state.api = engine, store, api
    install_error_handlers(app)
    app.include_router(api.router())

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok" if engine.ready else "unavailable", "model": config.model_name,
                "trained": bool(getattr(model, "trained", False)), "queue": engine.stats()}

    upload_limit = config.max_upload_bytes + MB  # the video and its multipart framing

    def limit_for(method: str, path: str) -> tuple[int, str] | None:
        if not path.startswith("/v1/"):
            return None  # the page's uploads are limited by gradio (max_file_size)
        if path == "/v1/files" and method == "POST":
            return upload_limit, "the server's --max-upload-mb"
        if path == "/v1/chat/completions":
            return config.max_body_bytes, ("the server's --max-body-mb; upload large videos with POST /v1/files "
                                           "and refer to them by file id")
        return MB, "the limit for this endpoint"

    app.add_middleware(BodyLimit, limit_for=limit_for)
    app.add_middleware(RequestLog)

    if config.web if web is None else web:
        _mount_page(app, config, engine, inputs, store, default_generator, default_image_generator, model)
    return app


def _mount_page(app: FastAPI, config: ServeConfig, engine: Engine, inputs: VideoInputs, store: FileStore,
                default_generator: str | None, default_image_generator: str | None, model: GPT4Video) -> None:
    import secrets

    from ..pipeline import Assistant
    from . import web

    examples_dir = store.root / "examples"
    page = web.ChatPage(engine, inputs, config, generators=list(engine.generators),
                        default_generator=default_generator or "none", image_generators=list(engine.image_generators),
                        default_image_generator=default_image_generator or "none", notes=Assistant(model).notes,
                        examples=web.make_examples(examples_dir)).build()
    key = config.api_key
    auth = (lambda username, password: secrets.compare_digest(password.encode(), key.encode())) if key else None
    web.gr.mount_gradio_app(
        app, page, path="/", theme=web.theme(), css=web.CSS, allowed_paths=[str(store.root)],
        max_file_size=config.max_upload_bytes, ssr_mode=False, mcp_server=False, pwa=False, enable_monitoring=False,
        footer_links=["api", "settings"], run_history=False, auth=auth,
        auth_message="This server is protected: enter any user name and the server's API key as the password.",
    )


async def _sweep_forever(store: FileStore, every: float) -> None:
    while True:
        await asyncio.sleep(every)
        try:
            removed = await asyncio.to_thread(store.sweep)
        except OSError as e:  # a full or vanished disk must not end the server
            log.warning("file expiry sweep failed: %s", e)
            continue
        if removed:
            log.info("expired %d file(s)", len(removed))


def make_server(app: FastAPI, config: ServeConfig) -> uvicorn.Server:
    """The uvicorn server for ``app``. When it is told to exit (SIGINT, SIGTERM, ``should_exit``), the
    requests waiting in the queue are answered 503 at once; those in flight get ``config.shutdown_timeout``
    seconds, then their job is cancelled and they end with a 503 error (an error event then ``[DONE]`` when
    streamed), all before uvicorn's own deadline, so none is killed mid-answer."""
    import uvicorn

    engine: Engine = app.state.engine

    class Server(uvicorn.Server):
        async def shutdown(self, sockets: list | None = None) -> None:
            engine.stop_accepting()
            deadline = asyncio.get_running_loop().call_later(config.shutdown_timeout, engine.abort_running)
            try:
                await super().shutdown(sockets)
            finally:
                deadline.cancel()

    return Server(uvicorn.Config(app, host=config.host, port=config.port, log_level="info", access_log=False,
                                 timeout_graceful_shutdown=math.ceil(config.shutdown_timeout) + ABORT_GRACE,
                                 log_config=None))


def serve(app: FastAPI, config: ServeConfig) -> None:
    """Run until SIGINT/SIGTERM; then stop accepting, answer the queue 503, give requests in flight
    ``config.shutdown_timeout`` seconds (then 503), stop the engine and remove temporary storage."""
    import signal

    # uvicorn shuts down gracefully on SIGTERM and then raises the signal again under the handler that
    # was there before it: a handler that does nothing lets the process end normally (status 0).
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda signum, frame: None)
    server = make_server(app, config)
    server.run()
    if not server.started:  # uvicorn has logged why (the address is taken, ...)
        raise InputError(f"the server could not start on {config.host}:{config.port}")
