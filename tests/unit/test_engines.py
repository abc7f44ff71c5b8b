"""The decoding engine interface and the transformers reference engine, on a tiny model built from a config."""

import threading

import pytest
import torch

from gpt4video.engines import ENGINES, EngineRequest, GenerationParams, ReplyText, TextStream, make_engine
from gpt4video.engines.transformers_generate import SuppressOpenings, TransformersEngine
from gpt4video.errors import ConfigError, InputError
from gpt4video.modeling import GPT4Video
from gpt4video.processing import Turn


@pytest.fixture
def model(tiny_model_config):
    torch.manual_seed(0)
    return GPT4Video.from_config(tiny_model_config)


def _decode_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "gpt4video-decode"]


class _Tokens:
    """A tokenizer whose token i is the i-th string of ``pieces``."""

    def __init__(self, pieces):
        self.pieces = pieces

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.pieces[i] for i in ids)


def test_reply_text_cuts_at_stop_and_holds_back_what_could_become_one():
    reply = ReplyText(_Tokens(["  Hello", " wor", "ld", " #", "#", "#Human"]), stops=("###",))
    shown = [reply.add(i) for i in range(3)]
    assert "".join(shown) == "Hello world"  # leading white space dropped
    assert reply.add(3) == "" and reply.add(4) == ""  # " #", "##": maybe a stop string, held back
    assert reply.add(5) == "" and reply.stopped
    assert reply.finish() == "" and reply.text == "Hello world"


def test_reply_text_releases_a_false_alarm_and_waits_for_whole_characters():
    reply = ReplyText(_Tokens(["a", " #", "b", "\ufffd", "é"]), stops=("###",))
    assert reply.add(0) == "a" and reply.add(1) == ""
    assert reply.add(2) == " #b"  # not a stop string after all
    assert reply.add(3) == ""  # half of a multi-byte character
    assert reply.add(4) == "\ufffdé" and reply.finish() == ""


def test_suppress_openings_masks_a_sequence_at_the_start_only():
    def pick(generated, *openings, prompt=()):
        ids = torch.tensor([list(prompt) + list(generated)], dtype=torch.long)
        scores = torch.zeros(1, 12)
        scores[0, 5], scores[0, 6] = 3.0, 2.0  # greedy picks 5, then 6 if 5 is masked
        return int(SuppressOpenings(openings, len(prompt))(ids, scores).argmax())

    assert pick([]) == 5
    assert pick([], (5,)) == 6  # one token: never the first
    assert pick([9], (5,)) == 5  # ... but later it is not constrained
    assert pick([9], (9, 5)) == 6  # two tokens: the second is masked right after the first
    assert pick([3], (9, 5)) == 5 and pick([], (9, 5)) == 5 and pick([9, 9], (9, 5)) == 5
    assert pick([], (5,), prompt=(5, 5)) == 6  # prompt tokens are not the reply's opening
    with pytest.raises(InputError, match="suppress_openings"):
        GenerationParams(suppress_openings=((),))


def test_the_placeholder_is_never_generated(model):
    engine = model.engine
    processors = engine._logits_processors(GenerationParams(), 0, torch.device("cpu"))
    scores = processors(torch.zeros(1, 0, dtype=torch.long), torch.zeros(1, len(model.tokenizer)))
    assert scores[0, model.processor.video_token_id] == -torch.inf
    assert torch.isfinite(scores).sum() == len(model.tokenizer) - 1


def test_greedy_decode_matches_the_step_by_step_argmax(model):
    """The engine picks the same tokens as a plain loop over the LLM with its KV cache."""
    turns = [Turn("user", "Describe this.")]
    params = GenerationParams(max_new_tokens=6, stop=())
    request = model.prompt_request(turns, [], params)
    tokens = []
    with torch.inference_mode():
        out = model.llm(inputs_embeds=request.inputs_embeds[None], use_cache=True)
        for _ in range(params.max_new_tokens):
            logits = out.logits[0, -1].float()
            logits[model.processor.video_token_id] = -torch.inf
            top2 = torch.topk(logits, 2).values
            token = int(logits.argmax())
            if token in model.eos_token_ids or float(top2[0] - top2[1]) < 1e-3:
                break  # stop comparing where the choice is not clear-cut
            tokens.append(token)
            out = model.llm(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
    stream = model.engine.generate(request).consume()
    expected = model.tokenizer.decode(tokens, skip_special_tokens=True).strip()
    assert tokens, "the tiny model's first choice should be clear-cut"
    assert stream.text.startswith(expected)
    assert stream.num_prompt_tokens == request.inputs_embeds.shape[0]


def test_stop_string_ends_the_reply_before_it(model):
    turns = [Turn("user", "Say something.")]
    free = model.generate(turns, [], GenerationParams(max_new_tokens=12, stop=()))
    visible = [c for c in free.text[1:] if not c.isspace()]
    if not visible:
        pytest.skip("the tiny model's reply has no character to stop at")
    stop = visible[len(visible) // 2]
    cut = model.generate(turns, [], GenerationParams(max_new_tokens=12, stop=(stop,)))
    assert cut.text == free.text[: free.text.index(stop)].rstrip()
    assert stop not in cut.text and cut.finish_reason == "stop"
    assert cut.num_generated_tokens <= free.num_generated_tokens


def test_length_limit_and_token_ids_prompt(model):
    ids = torch.tensor(model.tokenizer.encode("hello there", add_special_tokens=False))
    stream = model.engine.generate(EngineRequest(GenerationParams(max_new_tokens=3, stop=()), input_ids=ids))
    stream.consume()
    assert stream.num_generated_tokens <= 3 and stream.num_prompt_tokens == len(ids)
    assert stream.finish_reason in ("length", "stop")
    with pytest.raises(ValueError, match="exactly one"):
        EngineRequest(GenerationParams())


def test_sampling_is_reproducible_by_seed_and_does_not_touch_the_global_generator(model):
    turns = [Turn("user", "Hello")]
    p = GenerationParams(max_new_tokens=8, temperature=1.5, top_p=0.95, seed=3, stop=())
    state = torch.get_rng_state()
    first = model.generate(turns, [], p).text
    assert torch.equal(torch.get_rng_state(), state)
    assert model.generate(turns, [], p).text == first


def test_closing_a_stream_cancels_the_decode(model):
    turns = [Turn("user", "Tell me a long story.")]
    stream = model.generate_stream(turns, [], GenerationParams(max_new_tokens=64, stop=()))
    with stream:
        for _ in stream:
            break
    assert stream.finish_reason in ("cancelled", "stop", "length")
    assert stream.num_generated_tokens <= 64
    assert not _decode_threads()  # the worker is joined, not left decoding


def test_an_error_inside_generate_reaches_the_reader(model):
    class Broken(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.zeros(1))

        def generate(self, **kwargs):
            raise RuntimeError("out of memory in the LLM")

    engine = TransformersEngine(Broken(), model.tokenizer, eos_token_ids=[0])
    stream = engine.generate(EngineRequest(GenerationParams(), input_ids=torch.tensor([1, 2])))
    with pytest.raises(RuntimeError, match="out of memory"):
        stream.consume()
    assert not _decode_threads()


def test_engines_are_chosen_by_name(model):
    assert "transformers" in ENGINES.names()
    assert isinstance(make_engine("transformers", model), TransformersEngine)
    with pytest.raises(ConfigError, match="transformers"):
        make_engine("no-such-engine", model)


def test_a_model_can_decode_with_any_engine(model):
    class Fixed:
        name = "fixed"

        def generate(self, request):
            return TextStream.of_text(["A red ", "circle."])

    original = model.engine
    model.engine = Fixed()
    try:
        assert model.generate([Turn("user", "x")]).text == "A red circle."
    finally:
        model.engine = original


def test_a_prompt_longer_than_allowed_is_refused_before_any_work(model):
    from gpt4video.errors import InputError
    from gpt4video.pipeline import Assistant

    long_text = "word " * 400
    with pytest.raises(InputError, match="max_prompt_tokens"):
        model.generate([Turn("user", long_text)], [], GenerationParams(max_prompt_tokens=50))
    assistant = Assistant(model)
    with pytest.raises(InputError, match="max_prompt_tokens"):
        assistant.ask(long_text, [], GenerationParams(max_prompt_tokens=50))
    assert assistant.turns == []  # nothing joined the conversation
    context = model.context_length
    with pytest.raises(InputError, match="context"):
        assistant.ask("word " * (context + 10), [], GenerationParams(max_new_tokens=8))
    with pytest.raises(InputError, match="max_prompt_tokens"):
        GenerationParams(max_prompt_tokens=0)


def test_ignore_eos_decodes_exactly_max_new_tokens(model):
    turns = [Turn("user", "Hello")]
    stream = model.generate(turns, [], GenerationParams(max_new_tokens=7, stop=(), ignore_eos=True))
    assert stream.num_generated_tokens == 7 and stream.finish_reason == "length"


def test_a_long_prompt_is_prefilled_in_chunks_with_the_same_answer(model, monkeypatch):
    from gpt4video.engines import transformers_generate

    turns = [Turn("user", "word " * 300)]  # longer than the chunk set below
    params = GenerationParams(max_new_tokens=4, stop=(), max_prompt_tokens=2000)
    whole = model.generate(turns, [], params)
    monkeypatch.setattr(transformers_generate, "PREFILL_CHUNK", 64)
    calls = []
    original = model.llm.forward
    monkeypatch.setattr(model.llm, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    chunked = model.generate(turns, [], params)
    assert len(calls) > 4  # several prefill chunks, then the decode steps
    assert chunked.text == whole.text and chunked.num_prompt_tokens == whole.num_prompt_tokens


def test_a_cancel_set_before_or_during_prefill_stops_the_request(model, monkeypatch):
    import threading

    from gpt4video.engines import transformers_generate

    monkeypatch.setattr(transformers_generate, "PREFILL_CHUNK", 16)
    turns = [Turn("user", "word " * 200)]
    params = GenerationParams(max_new_tokens=32, stop=(), max_prompt_tokens=2000)
    cancel = threading.Event()
    cancel.set()
    stream = model.generate_stream(turns, [], params, cancel=cancel).consume()
    assert stream.num_generated_tokens == 0 and stream.finish_reason == "cancelled"

    cancel = threading.Event()
    seen = []
    original = model.llm.forward

    def forward(*a, **k):  # the third prefill chunk asks to cancel
        seen.append(1)
        if len(seen) == 3:
            cancel.set()
        return original(*a, **k)

    monkeypatch.setattr(model.llm, "forward", forward)
    stream = model.generate_stream(turns, [], params, cancel=cancel).consume()
    assert stream.finish_reason == "cancelled" and stream.num_generated_tokens == 0
    assert len(seen) == 3  # no chunk after the cancel, and no decode
    assert not _decode_threads()
