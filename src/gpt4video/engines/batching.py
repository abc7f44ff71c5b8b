"""Continuous batching: many requests decode together, one token each per step.

A :class:`BatchedEngine` is an :class:`~.base.LLMEngine` whose requests share one scheduler thread. Each
request's ``generate`` stream hands its :class:`~.base.EngineRequest` to the scheduler and reads its
tokens back from its own queue; :func:`~.base.stream_reply` turns them into the reply exactly as for an
engine that decodes alone (end token, stop strings, max tokens, cancel, timings).

The scheduler loops: it gives waiting requests the free slots (prefilling all of them at once,
:meth:`DecodeSlots.prefill_many`: engines that can run their short prompts through one forward), drops
the requests that ended (finished, cancelled, or whose reader left), then runs one decode step over every
occupied slot and hands each row's token to its owner. So requests join and leave between steps, and a
slot is free again at the next step boundary.

The KV cache of ``size`` sequences is a :class:`DecodeSlots`, one per engine kind
(``LLMEngine.decode_slots``): the transformers engine keeps a preallocated per-slot cache, the llama.cpp
engine several sequences in one context. Each request's tokens are chosen by its own chooser (its
sampling parameters, seed, penalties and blocked openings), row by row.
"""

from __future__ import annotations

import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .base import DecodeResult, EngineRequest, LLMEngine, TextStream, stream_reply

log = logging.getLogger("gpt4video.engines")

_END = object()  # the scheduler's last message on a request's token queue

#: a request's token choice: (one row of logits, the tokens chosen so far) -> the next token
Chooser = Callable[[Any, Sequence[int]], int]


class DecodeSlots(ABC):
    """A model's KV cache for ``size`` sequences at once, used only by the scheduler thread.

    A slot is an integer in ``range(size)``. :meth:`prefill` computes one request's prompt into a free slot;
    :meth:`step` advances every occupied slot by one token; :meth:`release` frees a slot.
    """

    size: int
    tokenizer: Any
    eos_token_ids: frozenset[int]
    accepts_embeddings: bool = True

    def check(self, request: EngineRequest) -> None:
        """Raise a clear error for a request these slots cannot serve (called before it waits for a slot)."""

    def pick(self, free: Sequence[int], request: EngineRequest) -> int:
        """The free slot to give ``request`` (engines that keep a prompt cache pick the best match)."""
        return free[-1]

    @abstractmethod
    def chooser(self, request: EngineRequest) -> Chooser:
        """How ``request`` chooses each next token from its row of logits."""

    @abstractmethod
    def prefill(self, slot: int, request: EngineRequest) -> Any | None:
        """Compute ``request``'s prompt into ``slot``; the logits of its last position, or None if the request
        was cancelled between chunks (the slot is then released by the caller)."""

    def prefill_many(self, requests: Sequence[tuple[int, EngineRequest]]) -> list[Any]:
        """Prefill several (slot, request) pairs; per pair, what :meth:`prefill` returns or the exception its
        prefill raised (which ends that request alone). Here one after another; engines that can batch
        prompts override it."""
        results: list[Any] = []
        for slot, request in requests:
            try:
                results.append(self.prefill(slot, request))
            except Exception as error:  # noqa: BLE001 - handed to this request's reader
                results.append(error)
        return results

    @abstractmethod
    def step(self, tokens: Mapping[int, int]) -> Mapping[int, Any]:
        """One decode step: ``tokens`` holds the last token of every occupied slot; the next logits of each."""

    @abstractmethod
    def release(self, slot: int) -> None:
        """``slot`` holds no sequence any more."""


@dataclass(eq=False)
class _Sequence:
    """One request in the scheduler."""

    request: EngineRequest
    choose: Chooser
    tokens: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)  # tokens, then _END or an error
    generated: list[int] = field(default_factory=list)
    slot: int | None = None
    left: bool = False  # the reader closed its stream

    @property
    def over(self) -> bool:
        return self.left or self.request.cancelled


class ScheduledEngine(LLMEngine):
    """An engine whose requests share one scheduler thread (the only one that runs the model).

    Each request's ``generate`` stream makes the scheduler's record of it (:meth:`_sequence`: an object with a
    ``tokens`` queue and a ``left`` flag), puts it in the waiting line and reads its tokens back from its queue
    until ``_END`` (an exception there is raised in the reader); :func:`~.base.stream_reply` turns them into the
    reply exactly as for an engine that decodes alone. The subclass's :meth:`_run` is the scheduler loop.

    ``pipeline_lock``: a lock the callers hold while they run everything else (an ``RLock`` each request
    thread acquires before it asks); a request releases it while it waits for its next token, so the work
    around the model stays one request at a time while the decode of all of them runs in the scheduler.
    """

    tokenizer: Any
    eos_token_ids: frozenset[int]

    def __init__(self, *, pipeline_lock: threading.RLock | None = None) -> None:
        self.pipeline_lock = pipeline_lock
        self._wake = threading.Condition()
        self._waiting: deque[Any] = deque()
        self._thread: threading.Thread | None = None
        self._closed = False

    def generate(self, request: EngineRequest) -> TextStream:
        result = DecodeResult(num_prompt_tokens=request.num_prompt_tokens, timings=dict(request.timings))
        pieces = stream_reply(self._tokens(request), self.tokenizer, request, result, self.eos_token_ids)
        return TextStream(pieces, result)

    def close(self) -> None:
        """End the scheduler: requests still decoding or waiting end as cancelled."""
        with self._wake:
            self._closed = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    @abstractmethod
    def _sequence(self, request: EngineRequest) -> Any:
        """The scheduler's record of ``request`` (raises for a request it cannot serve)."""

    @abstractmethod
    def _run(self) -> None:
        """The scheduler loop, until ``_closed``; it ends every request it still holds with ``_END``."""

    # -- the requests' side ------------------------------------------------------------------------
    def _tokens(self, request: EngineRequest) -> Iterator[int]:
        sequence = self._sequence(request)
        with self._wake:
            if self._closed:
                raise RuntimeError(f"this {self.name} engine is closed (the server is stopping)")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=f"gpt4video-{self.name}", daemon=True)
                self._thread.start()
            self._waiting.append(sequence)
            self._wake.notify()
        try:
            while (item := self._next(sequence)) is not _END:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            with self._wake:
                sequence.left = True
                if sequence in self._waiting:  # never admitted: it leaves the line now
                    self._waiting.remove(sequence)
                self._wake.notify()

    def _next(self, sequence: Any) -> Any:
        """The sequence's next item; the pipeline lock is let go while it waits."""
        try:
            return sequence.tokens.get_nowait()
        except queue.Empty:
            pass
        if self.pipeline_lock is None:
            return sequence.tokens.get()
        self.pipeline_lock.release()
        try:
            return sequence.tokens.get()
        finally:
            self.pipeline_lock.acquire()


class BatchedEngine(ScheduledEngine):
    """Decodes up to ``slots.size`` requests together (continuous batching); more wait for a slot.
    ``pipeline_lock``: see :class:`ScheduledEngine`."""

    name = "batched"

    def __init__(self, slots: DecodeSlots, *, pipeline_lock: threading.RLock | None = None) -> None:
        super().__init__(pipeline_lock=pipeline_lock)
        self.slots = slots
        self.tokenizer = slots.tokenizer
        self.eos_token_ids = slots.eos_token_ids
        self.max_batch = slots.size
        self.accepts_embeddings = slots.accepts_embeddings
        self._active: dict[int, _Sequence] = {}  # slot -> sequence; only the scheduler thread changes it
        self._free = list(range(slots.size))

    @property
    def running(self) -> int:
        """Requests holding a slot now."""
        return len(self._active)

    def _sequence(self, request: EngineRequest) -> _Sequence:
        self.slots.check(request)
        return _Sequence(request, self.slots.chooser(request))

    # -- the scheduler thread ----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self._wake:
                while not (self._closed or self._waiting or self._active):
                    self._wake.wait()
                if self._closed:
                    break
                newcomers = [self._waiting.popleft() for _ in range(min(len(self._free), len(self._waiting)))]
            try:
                self._admit(newcomers)
                for sequence in [s for s in self._active.values() if s.over]:
                    self._end(sequence)
                if self._active:
                    self._step()
            except Exception as error:  # noqa: BLE001 - the scheduler must outlive anything a batch does
                log.exception("the batch scheduler failed; ending the requests in its slots")
                for sequence in {*newcomers, *self._active.values()}:
                    self._end(sequence, error)  # a reader that already got its end ignores this
        with self._wake:
            left = [*self._active.values(), *self._waiting]
            self._waiting.clear()
        for sequence in left:
            self._end(sequence)

    def _admit(self, newcomers: list[_Sequence]) -> None:
        """Prefill the newcomers into free slots (together, as the slots can) and hand over their first tokens."""
        admitted = []
        for sequence in newcomers:
            if sequence.over:
                sequence.tokens.put(_END)
                continue
            sequence.slot = self.slots.pick(self._free, sequence.request)
            self._free.remove(sequence.slot)
            admitted.append(sequence)
        if not admitted:
            return
        results = self.slots.prefill_many([(s.slot, s.request) for s in admitted])
        for sequence, logits in zip(admitted, results):
            if isinstance(logits, BaseException):  # handed to the request's reader, which raises it
                self._end(sequence, logits)
            elif logits is None:  # cancelled during its prefill
                self._end(sequence)
            else:
                self._active[sequence.slot] = sequence  # type: ignore[index]
                self._deliver(sequence, logits)

    def _step(self) -> None:
        try:
            logits = self.slots.step({slot: s.generated[-1] for slot, s in self._active.items()})
        except Exception as error:  # noqa: BLE001 - every request in the batch hears of it
            log.exception("a batched decode step failed")
            for sequence in list(self._active.values()):
                self._end(sequence, error)
            return
        for slot, sequence in list(self._active.items()):
            self._deliver(sequence, logits[slot])

    def _deliver(self, sequence: _Sequence, logits: Any) -> None:
        """Choose the sequence's next token and hand it over; end the sequence at an end token or its limit."""
        try:
            token = sequence.choose(logits, sequence.generated)
        except Exception as error:  # noqa: BLE001 - a bad row ends only its own request
            self._end(sequence, error)
            return
        sequence.generated.append(token)
        sequence.tokens.put(token)
        if token in self.slots.eos_token_ids or len(sequence.generated) >= sequence.request.params.max_new_tokens:
            self._end(sequence)

    def _end(self, sequence: _Sequence, error: BaseException | None = None) -> None:
        """Free the sequence's slot and end its token queue (with ``error`` if it failed)."""
        if sequence.slot is not None:
            self._active.pop(sequence.slot, None)
            self.slots.release(sequence.slot)
            self._free.append(sequence.slot)
            sequence.slot = None
        sequence.tokens.put(_END if error is None else error)
