"""One model, ``max_batch`` worker threads, a bounded queue of conversations to answer.

Up to ``max_batch`` requests are answered at once, each on its own worker thread, and their replies are
decoded together by the model's engine made batched (``LLMEngine.batched``: a
:class:`~gpt4video.engines.batching.BatchedEngine`, or vLLM's own batching; continuous batching: a
request joins and leaves the batch between decode steps). Everything else the model does (reading and
encoding videos, the safety checks, rendering video and image prompts) is not thread-safe, so the workers take
turns at it under one lock, which a worker lets go while it waits for its next token. Requests wait in a
queue of ``queue_size``; when it is full :meth:`Engine.submit` raises :class:`Busy` at once (the API
answers 429) instead of letting requests pile up.

A request is a whole conversation (the API is stateless: clients send every turn each time). The
worker rebuilds it in a fresh :class:`~gpt4video.pipeline.Assistant` and asks the last question, so
the pipeline's safety checks and video and image generation apply exactly as on the command line. Text pieces
and the final result travel back to the asking coroutine through its event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import secrets
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..audio import AudioTrack
from ..engines import LLMEngine
from ..errors import InputError
from ..generators import ImageGenerator, VideoGenerator
from ..modeling import GenerationParams, GPT4Video
from ..pipeline import Assistant, GenerationSettings
from ..video import VideoClip
from .errors import Busy, ServeError, TimedOut, Unavailable
from .files import FileStore, StoredFile

log = logging.getLogger("gpt4video.serve")


@dataclass
class ChatTurn:
    """One turn of a conversation sent to the server: its videos (and sound files) are already decoded."""

    role: str  # "user" or "assistant"
    text: str
    clips: list[VideoClip | AudioTrack] = field(default_factory=list)


@dataclass
class GeneratedFile:
    """A video (or image) the reply's prompt was rendered into, stored under a file id."""

    file: StoredFile
    prompt: str
    backend: str
    seed: int | None


@dataclass
class ChatResult:
    """A finished turn: the reply's output as :meth:`ReplyOutput.to_dict` gives it (without the generated
    videos and images), the generated videos and images as stored files, and OpenAI's finish reason."""

    output: dict[str, Any]
    videos: list[GeneratedFile] = field(default_factory=list)
    finish_reason: str = "stop"
    images: list[GeneratedFile] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.output["text"]

    @property
    def refused(self) -> bool:
        return bool(self.output["refused"])

    @property
    def safety(self) -> list[dict[str, Any]]:
        return self.output["safety"]

    @property
    def video_prompts(self) -> list[str]:
        return self.output["video_prompts"]

    @property
    def image_prompts(self) -> list[str]:
        return self.output["image_prompts"]

    @property
    def generation_errors(self) -> list[str]:
        return self.output["generation_errors"]

    @property
    def prompt_tokens(self) -> int:
        return self.output["num_prompt_tokens"]

    @property
    def completion_tokens(self) -> int:
        return self.output["num_generated_tokens"]

    @property
    def timings(self) -> dict[str, float]:
        return self.output["timings"]


@dataclass
class Delta:
    text: str


@dataclass
class Done:
    result: ChatResult


@dataclass
class Failed:
    error: Exception


class Job:
    """One request in the engine. Iterate :meth:`events` (in the event loop that submitted it)."""

    def __init__(self, turns: list[ChatTurn], params: GenerationParams, generator: str | None,
                 loop: asyncio.AbstractEventLoop, image_generator: str | None = None) -> None:
        if not turns or turns[-1].role != "user":
            raise InputError("a conversation must end with a user turn")
        self.id = "chatcmpl-" + secrets.token_hex(12)
        self.created = int(time.time())
        self.turns = turns
        self.params = params
        self.generator = generator
        self.image_generator = image_generator
        self._loop = loop
        self._events: asyncio.Queue = asyncio.Queue()
        self.cancelled = threading.Event()
        self.finished = False

    def emit(self, event: Delta | Done | Failed) -> None:
        """Called on the worker thread: hand an event to the asking coroutine."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening any more
            self._loop.call_soon_threadsafe(self._events.put_nowait, event)

    def cancel(self) -> None:
        """The client went away: skip the job if it has not started, stop generating if it has."""
        self.cancelled.set()

    async def events(self, timeout: float) -> AsyncIterator[Delta | Done]:
        """Text pieces, then one Done; raises the job's error, or TimedOut after ``timeout`` seconds in all."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimedOut(f"the answer took longer than this server allows ({timeout:g} s)")
                try:
                    event = await asyncio.wait_for(self._events.get(), remaining)
                except asyncio.TimeoutError:
                    continue
                if isinstance(event, Failed):
                    self.finished = True
                    raise event.error
                yield event
                if isinstance(event, Done):
                    self.finished = True
                    return
        finally:
            if not self.finished:
                self.cancel()

    async def result(self, timeout: float) -> ChatResult:
        async for event in self.events(timeout):
            if isinstance(event, Done):
                return event.result
        raise RuntimeError("the job ended without a result")  # pragma: no cover


class Engine:
    """Owns the model and the generators (video and image); answers up to ``max_batch`` jobs at once on its worker
    threads.

    ``assistant_options`` are passed to every :class:`~gpt4video.pipeline.Assistant` it makes (the
    safety policy, for one), so the server checks requests exactly as the command line does.
    """

    def __init__(self, model: GPT4Video, store: FileStore, *, generators: Mapping[str, VideoGenerator],
                 queue_size: int = 8, max_batch: int = 8, video_frames: int = 16, video_size: int = 256,
                 assistant_options: Mapping[str, Any] | None = None,
                 image_generators: Mapping[str, ImageGenerator] | None = None, image_size: int = 256) -> None:
        self.model = model
        self.store = store
        self.generators = dict(generators)
        self.image_generators = dict(image_generators or {})
        self.image_size = image_size
        self.assistant_options = dict(assistant_options or {})  # e.g. {"safety": a SafetyPolicy}
        self.video_frames = video_frames
        self.video_size = video_size
        self.queue_size = queue_size
        self.max_batch = max_batch
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=queue_size)
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()  # a job is queued, or the queue closed, never both at once
        self._pipeline_lock = threading.RLock()  # held by a worker for all but its waits for tokens
        self.decoder: LLMEngine | None = None  # made by start(): the model's engine, batched
        self._accepting = False
        self._stopping = False
        self._running: set[Job] = set()
        self.completed = 0
        self.failed = 0

    # -- life cycle ------------------------------------------------------------------------------
    def start(self) -> Engine:
        if not self._threads:
            self.decoder = self.model.engine.batched(self.max_batch, pipeline_lock=self._pipeline_lock)
            self._accepting = True
            self._threads = [threading.Thread(target=self._work, name=f"gpt4video-engine-{i}", daemon=True)
                             for i in range(self.max_batch)]
            for thread in self._threads:
                thread.start()
        return self

    def stop_accepting(self) -> None:
        """Shutdown has begun: take no more jobs and answer the waiting ones 503 at once."""
        with self._lock:
            self._accepting, self._stopping = False, True
            waiting = []
            while True:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is not None:
                    waiting.append(job)
        for job in waiting:
            job.cancel()
            job.emit(Failed(Unavailable("the server is shutting down: this request was not started",
                                        code="shutting_down")))

    def abort_running(self) -> None:
        """The shutdown's time is up: cancel the jobs being answered and answer their clients 503."""
        for job in list(self._running):
            job.cancel()  # its worker stops at its next text piece
            job.emit(Failed(Unavailable("the server shut down before this answer was finished",
                                        code="shutting_down")))

    def stop(self, timeout: float = 10.0) -> None:
        """Stop taking jobs; answer the waiting ones 503; give the running ones ``timeout`` seconds, then
        cancel them (503 to their clients); end the workers and the decoder."""
        self.stop_accepting()
        if not self._threads:
            return
        for _ in self._threads:
            self._queue.put(None)
        if not self._join(timeout):
            self.abort_running()
            if not self._join(timeout):
                log.warning("the engine's workers did not stop within %g s; leaving them", timeout)
        self._threads = []
        if self.decoder is not None:
            self.decoder.close()

    def _join(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds in all for the workers; whether they all ended."""
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

    @property
    def ready(self) -> bool:
        return self._accepting and bool(self._threads) and all(t.is_alive() for t in self._threads)

    def stats(self) -> dict[str, Any]:
        return {"waiting": self._queue.qsize(), "capacity": self.queue_size, "busy": bool(self._running),
                "running": len(self._running), "max_batch": self.max_batch,
                "completed": self.completed, "failed": self.failed}

    # -- requests --------------------------------------------------------------------------------
    def submit(self, turns: list[ChatTurn], params: GenerationParams, generator: str | None,
               loop: asyncio.AbstractEventLoop, image_generator: str | None = None) -> Job:
        """Queue a conversation; Busy (429) when the queue is full, Unavailable (503) when stopping."""
        for param, name, gallery in (("generator", generator, self.generators),
                                     ("image_generator", image_generator, self.image_generators)):
            if name is not None and name not in gallery:
                known = ", ".join([*gallery, "none"])
                raise ServeError(f"unknown {param} {name!r}; this server has: {known}", param=param)
        job = Job(turns, params, generator, loop, image_generator)
        with self._lock:
            if self._stopping:
                raise Unavailable("the server is shutting down", code="shutting_down")
            if not self.ready:
                raise Unavailable("the server is not accepting requests (not started)")
            try:
                self._queue.put_nowait(job)
            except queue.Full:
                raise Busy(f"the server is busy: {self.queue_size} requests are already waiting; retry shortly",
                           headers={"Retry-After": "1"}) from None
        return job

    # -- the worker ------------------------------------------------------------------------------
    def _work(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            if job.cancelled.is_set():
                continue
            self._running.add(job)
            try:
                with self._pipeline_lock:  # the counters too
                    self._answer_and_report(job)
            finally:
                self._running.discard(job)

    def _answer_and_report(self, job: Job) -> None:
        try:
            result = self._answer(job)
        except InputError as e:  # bad input found late (a prompt the backend cannot draw, ...)
            self.failed += 1
            job.emit(Failed(e))
        except Exception as e:  # noqa: BLE001 - the worker must survive anything one request does
            self.failed += 1
            log.exception("request %s failed", job.id)
            job.emit(Failed(e))
        else:
            self.completed += 1  # counted before the client hears of it, so /health is never behind
            job.emit(Done(result))

    def _answer(self, job: Job) -> ChatResult:
        settings = None
        if job.generator is not None or job.image_generator is not None:
            seed = job.params.seed
            settings = GenerationSettings(
                None if job.generator is None else self.generators[job.generator], num_frames=self.video_frames,
                height=self.video_size, width=self.video_size, seed=seed,
                image_generator=None if job.image_generator is None else self.image_generators[job.image_generator],
                image_size=self.image_size, image_seed=seed)
        conversation = Assistant(self.model, settings, engine=self.decoder, **self.assistant_options)
        conversation.restore([(t.role, t.text, t.clips or ()) for t in job.turns[:-1]])
        last = job.turns[-1]
        videos = [c for c in last.clips if isinstance(c, VideoClip)]
        sounds = [c for c in last.clips if isinstance(c, AudioTrack)]
        reply = conversation.ask(last.text, videos, job.params, audio=sounds, cancel=job.cancelled)
        pieces = iter(reply)
        try:
            for piece in pieces:
                if job.cancelled.is_set():
                    break
                job.emit(Delta(piece))
        finally:
            pieces.close()  # type: ignore[attr-defined]
        videos, images = [], []
        # A cancelled job's videos and images are not stored: nobody is waiting for them.
        for video in [] if job.cancelled.is_set() else reply.generated:
            stored = self.store.add_video(video.frames, video.fps, video.filename)
            videos.append(GeneratedFile(stored, video.prompt, video.backend, video.seed))
        for image in [] if job.cancelled.is_set() else reply.generated_images:
            stored = self.store.add_image(image.image, image.filename)
            images.append(GeneratedFile(stored, image.prompt, image.backend, image.seed))
        # OpenAI's finish reasons: a request refused before the model ran is "content_filter".
        finish = {"refused": "content_filter", "": "stop"}.get(reply.finish_reason, reply.finish_reason)
        output = reply.output.to_dict()
        del output["generated_videos"], output["generated_images"]  # served as stored files instead
        return ChatResult(output, videos, finish, images)
