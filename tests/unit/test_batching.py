"""Continuous batching (engines.batching) over the transformers engine's slots, on a tiny model.

Each batched reply must be the reply the reference engine gives the same request alone; the steps are
recorded (and, where the order matters, let through one at a time) to see requests join and leave.
"""

import threading
import time

import pytest
import torch

from gpt4video.engines import GenerationParams
from gpt4video.engines.batching import BatchedEngine, DecodeSlots
from gpt4video.errors import ConfigError
from gpt4video.processing import Turn

QUESTIONS = ["Describe this.", "What color is the square? " * 3, "Hi", "How many objects are there?",
             "Which way does the green circle move?"]


@pytest.fixture(scope="module")
def model(tiny_model):
    return tiny_model


class Recorded(DecodeSlots):
    """Wraps slots: records the slots of every step; with ``gated``, each step waits for :meth:`allow`."""

    def __init__(self, inner: DecodeSlots, gated: bool = False) -> None:
        self.inner, self.size, self.tokenizer = inner, inner.size, inner.tokenizer
        self.eos_token_ids = inner.eos_token_ids
        self.steps: list[tuple[int, ...]] = []
        self.prefills: list[int] = []  # how many requests each prefill_many call got
        self.gate = threading.Semaphore(0) if gated else None

    def allow(self, steps: int = 1) -> None:
        self.gate.release(steps)

    def chooser(self, request):
        return self.inner.chooser(request)

    def prefill(self, slot, request):
        return self.inner.prefill(slot, request)

    def prefill_many(self, requests):
        self.prefills.append(len(requests))
        return self.inner.prefill_many(requests)

    def step(self, tokens):
        if self.gate is not None:
            assert self.gate.acquire(timeout=60), "the test never let this step through"
        self.steps.append(tuple(sorted(tokens)))
        return self.inner.step(tokens)

    def release(self, slot):
        self.inner.release(slot)


def request(model, question, params):
    return model.prompt_request([Turn("user", question)], [], params)


def alone(model, question, params):
    """The reference engine's reply to ``question``, decoded alone."""
    return model.engine.generate(request(model, question, params)).consume()


def in_threads(engine, model, jobs):
    """Decode every (question, params) of ``jobs`` at once, each from its own thread; the finished streams."""
    streams = [engine.generate(request(model, q, p)) for q, p in jobs]
    threads = [threading.Thread(target=s.consume) for s in streams]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return streams


def wait_for(condition, what):
    deadline = time.monotonic() + 60
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


@pytest.mark.parametrize("ignore_eos", [True, False])
def test_batched_greedy_equals_one_at_a_time(model, ignore_eos):
    params = GenerationParams(max_new_tokens=20, stop=(), ignore_eos=ignore_eos)
    engine = BatchedEngine(model.engine.decode_slots(3))
    try:
        batched = in_threads(engine, model, [(q, params) for q in QUESTIONS])
    finally:
        engine.close()
    for question, stream in zip(QUESTIONS, batched):
        solo = alone(model, question, params)
        assert (stream.text, stream.num_generated_tokens, stream.finish_reason) == \
            (solo.text, solo.num_generated_tokens, solo.finish_reason), question


def test_token_id_prompts_batch_with_embedding_prompts(model):
    params = GenerationParams(max_new_tokens=12, stop=(), ignore_eos=True)
    engine = BatchedEngine(model.engine.decode_slots(2))
    from gpt4video.engines import EngineRequest

    ids = EngineRequest(params, input_ids=torch.tensor(model.tokenizer.encode(QUESTIONS[0], add_special_tokens=False)))
    embeds = request(model, QUESTIONS[1], params)
    try:
        streams = [engine.generate(ids), engine.generate(embeds)]
        threads = [threading.Thread(target=s.consume) for s in streams]
        [t.start() for t in threads]
        [t.join(120) for t in threads]
    finally:
        engine.close()
    assert streams[0].text == model.engine.generate(ids).consume().text
    assert streams[1].text == alone(model, QUESTIONS[1], params).text


def test_requests_join_and_leave_between_steps(model):
    slots = Recorded(model.engine.decode_slots(4), gated=True)
    engine = BatchedEngine(slots)
    long, short = (GenerationParams(max_new_tokens=n, stop=(), ignore_eos=True) for n in (10, 3))
    try:
        first = engine.generate(request(model, QUESTIONS[0], long))
        reader = threading.Thread(target=first.consume)
        reader.start()
        slots.allow(2)
        wait_for(lambda: len(slots.steps) == 2, "the first request did not decode alone")
        second = engine.generate(request(model, QUESTIONS[1], short))
        joiner = threading.Thread(target=second.consume)
        joiner.start()
        # in line while step 3 waits at the gate, or already admitted if it came before the scheduler reached it
        wait_for(lambda: len(engine._waiting) == 1 or engine.running == 2, "the second request did not join")
        slots.allow(100)
        reader.join(60)
        joiner.join(60)
        wait_for(lambda: engine.running == 0, "a finished request kept its slot")
    finally:
        engine.close()
    sizes = [len(step) for step in slots.steps]
    assert sizes[:2] == [1, 1] and sizes.count(2) == 2  # the short one joined for its 2 steps after its prefill
    assert sizes[-1] == 1 and sizes.index(2) > 1  # ... and left while the long one went on
    assert first.text == alone(model, QUESTIONS[0], long).text and first.num_generated_tokens == 10
    assert second.text == alone(model, QUESTIONS[1], short).text and second.num_generated_tokens == 3


def test_a_cancelled_request_frees_its_slot_for_a_waiting_one(model):
    slots = Recorded(model.engine.decode_slots(1), gated=True)
    engine = BatchedEngine(slots)
    endless = GenerationParams(max_new_tokens=200, stop=(), ignore_eos=True)
    short = GenerationParams(max_new_tokens=3, stop=(), ignore_eos=True)
    try:
        running = request(model, QUESTIONS[0], endless)
        running.cancel = threading.Event()
        first = engine.generate(running)
        reader = threading.Thread(target=first.consume)
        reader.start()
        slots.allow(1)
        wait_for(lambda: len(slots.steps) == 1, "the first request did not start")
        second = engine.generate(request(model, QUESTIONS[1], short))
        waiter = threading.Thread(target=second.consume)
        waiter.start()
        wait_for(lambda: len(engine._waiting) == 1, "the second request is not waiting for the slot")
        running.cancel.set()
        slots.allow(100)
        reader.join(60)
        waiter.join(60)
    finally:
        engine.close()
    assert first.finish_reason == "cancelled" and first.num_generated_tokens < 10
    assert second.finish_reason == "length" and second.text == alone(model, QUESTIONS[1], short).text


def test_a_reader_that_leaves_frees_its_slot(model):
    engine = BatchedEngine(model.engine.decode_slots(1))
    params = GenerationParams(max_new_tokens=200, stop=(), ignore_eos=True)
    try:
        with engine.generate(request(model, QUESTIONS[0], params)) as stream:
            next(iter(stream))
        wait_for(lambda: engine.running == 0, "the slot of a reader that left was not freed")
        after = engine.generate(request(model, QUESTIONS[2], GenerationParams(max_new_tokens=4, stop=()))).consume()
    finally:
        engine.close()
    assert stream.finish_reason == "cancelled"
    assert after.text == alone(model, QUESTIONS[2], GenerationParams(max_new_tokens=4, stop=())).text


def test_each_row_keeps_its_own_sampling_penalty_and_openings(model):
    greedy = GenerationParams(max_new_tokens=12, stop=(), ignore_eos=True)
    opening = tuple(alone(model, QUESTIONS[0], greedy).result.text.split()[:1])
    first_token = model.tokenizer.encode(" " + opening[0], add_special_tokens=False) if opening else [1]
    jobs = [
        (QUESTIONS[0], greedy),
        (QUESTIONS[0], GenerationParams(max_new_tokens=12, stop=(), temperature=1.3, top_p=0.9, seed=7)),
        (QUESTIONS[0], GenerationParams(max_new_tokens=12, stop=(), repetition_penalty=1.8)),
        (QUESTIONS[0], GenerationParams(max_new_tokens=12, stop=(), suppress_openings=(tuple(first_token[:1]),))),
    ]
    engine = BatchedEngine(model.engine.decode_slots(4))
    try:
        batched = in_threads(engine, model, jobs)
    finally:
        engine.close()
    texts = [alone(model, q, p).text for q, p in jobs]
    assert [s.text for s in batched] == texts
    assert len(set(texts)) > 1  # the parameters did change the replies


def test_max_batch_bounds_every_step(model):
    slots = Recorded(model.engine.decode_slots(2))
    engine = BatchedEngine(slots)
    params = GenerationParams(max_new_tokens=6, stop=(), ignore_eos=True)
    try:
        streams = in_threads(engine, model, [(q, params) for q in QUESTIONS])
    finally:
        engine.close()
    assert max(len(step) for step in slots.steps) == 2
    assert all(s.num_generated_tokens == 6 for s in streams)
    assert [s.text for s in streams] == [alone(model, q, params).text for q in QUESTIONS]


def test_an_engine_that_cannot_batch_says_so(model):
    from gpt4video.engines import LLMEngine

    class Plain(LLMEngine):
        name = "plain"

        def generate(self, request):
            raise NotImplementedError

    with pytest.raises(ConfigError, match="plain engine cannot decode requests in batches"):
        Plain().decode_slots(2)


# -- prefilling several prompts at once ---------------------------------------------------------------
def greedy_tokens(slots, firsts, steps):
    """Greedy decode of every slot in ``firsts`` (slot -> its prefill's logits) for ``steps`` more tokens."""
    tokens = {slot: [int(logits.argmax())] for slot, logits in firsts.items()}
    for _ in range(steps):
        for slot, row in slots.step({slot: t[-1] for slot, t in tokens.items()}).items():
            tokens[slot].append(int(row.argmax()))
    return tokens


def prefill_both_ways(model, requests):
    """(logits and greedy tokens of prefill_many, the same of one prefill per request)."""
    together = model.engine.decode_slots(len(requests))
    many = dict(zip(range(len(requests)), together.prefill_many(list(enumerate(requests)))))
    alone_slots = model.engine.decode_slots(len(requests))
    one = {slot: alone_slots.prefill(slot, r) for slot, r in enumerate(requests)}
    return (many, greedy_tokens(together, many, 10)), (one, greedy_tokens(alone_slots, one, 10))


def test_prefill_together_gives_the_tokens_of_one_at_a_time(model):
    params = GenerationParams(max_new_tokens=12, stop=(), ignore_eos=True)
    requests = [request(model, q, params) for q in QUESTIONS]
    from gpt4video.engines.transformers_generate import _pack

    lengths = [r.num_prompt_tokens for r in requests]
    assert any(len({lengths[i] for i in group}) > 1 for group in _pack(range(len(lengths)), lengths))  # padded rows
    (many, many_tokens), (one, one_tokens) = prefill_both_ways(model, requests)
    assert many_tokens == one_tokens
    for slot in one:
        torch.testing.assert_close(many[slot], one[slot], rtol=1e-4, atol=1e-4)


def test_prefill_together_runs_one_forward_for_similar_prompts(model):
    from gpt4video.engines.transformers_generate import _pack

    params = GenerationParams(max_new_tokens=4, stop=())
    questions = ["Describe this.", "Describe the video.", "What moves here?", "Which color is it?"]
    requests = [request(model, q, params) for q in questions]
    assert len(_pack(range(4), [r.num_prompt_tokens for r in requests])) == 1
    calls = []
    hook = model.engine.llm.register_forward_hook(lambda *_: calls.append(1))
    try:
        slots = model.engine.decode_slots(4)
        slots.prefill_many(list(enumerate(requests)))
    finally:
        hook.remove()
    assert len(calls) == 1 and len(slots.rows) == 4


def test_pack_bounds_padding_and_size(monkeypatch):
    from gpt4video.engines import transformers_generate
    from gpt4video.engines.transformers_generate import _pack

    monkeypatch.setattr(transformers_generate, "PREFILL_BATCH_TOKENS", 1000)
    assert _pack([0, 1, 2], [10, 10, 10]) == [[0, 1, 2]]
    assert _pack([0, 1, 2], [10, 50, 12]) == [[0, 2], [1]]  # padding all to 50 would be more than the real tokens
    assert _pack([0, 1, 2], [10, 15, 12]) == [[0, 2, 1]]  # shortest first
    monkeypatch.setattr(transformers_generate, "PREFILL_BATCH_TOKENS", 100)
    assert _pack(list(range(12)), [10] * 12) == [list(range(10)), [10, 11]]  # 10 rows of 10 fill the budget


def test_prefill_together_with_long_token_id_and_cancelled_prompts(model, monkeypatch):
    from gpt4video.engines import EngineRequest, transformers_generate

    monkeypatch.setattr(transformers_generate, "PREFILL_CHUNK", 8)  # the long question is prefilled alone, in chunks
    params = GenerationParams(max_new_tokens=12, stop=(), ignore_eos=True)
    ids = EngineRequest(params, input_ids=torch.tensor(model.tokenizer.encode(QUESTIONS[3], add_special_tokens=False)))
    requests = [request(model, q, params) for q in QUESTIONS[:3]] + [ids]
    assert requests[1].num_prompt_tokens > 8 >= requests[3].num_prompt_tokens
    (many, many_tokens), (one, one_tokens) = prefill_both_ways(model, requests)
    assert many_tokens == one_tokens
    cancelled = request(model, QUESTIONS[4], params)
    cancelled.cancel = threading.Event()
    cancelled.cancel.set()
    slots = model.engine.decode_slots(3)
    results = slots.prefill_many([(0, requests[0]), (1, cancelled), (2, requests[2])])
    assert results[1] is None and sorted(slots.rows) == [0, 2]


def test_requests_waiting_together_are_prefilled_together(model):
    slots = Recorded(model.engine.decode_slots(4), gated=True)
    engine = BatchedEngine(slots)
    params = GenerationParams(max_new_tokens=5, stop=(), ignore_eos=True)
    try:
        first = engine.generate(request(model, QUESTIONS[0], params))
        reader = threading.Thread(target=first.consume)
        reader.start()
        wait_for(lambda: engine.running == 1, "the first request was not admitted")
        # the scheduler waits at the gate of the first request's first step: the others queue meanwhile
        others = [engine.generate(request(model, q, params)) for q in QUESTIONS[1:4]]
        threads = [threading.Thread(target=s.consume) for s in others]
        for t in threads:
            t.start()
        wait_for(lambda: len(engine._waiting) == 3, "the others are not waiting")
        slots.allow(100)
        for t in [reader, *threads]:
            t.join(60)
    finally:
        engine.close()
    assert slots.prefills == [1, 3]
    assert [s.text for s in [first, *others]] == [alone(model, q, params).text for q in QUESTIONS[:4]]
