"""The vllm engine up to the call into vLLM: its prompt embeddings, the GenerationParams → SamplingParams
translation, the token rules it hands vLLM's logits processor, the PEFT adapter it gives vLLM, and the one-line
error where vLLM cannot run (the CLI's included). Decoding with vLLM itself needs vLLM and a CUDA GPU: that test
runs only where both are present and is skipped elsewhere with a reason naming what is missing."""

from __future__ import annotations

import queue
import sys
import threading
import types

import pytest
import torch

from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig
from gpt4video.engines import EngineRequest, GenerationParams, TransformersEngine, make_engine
from gpt4video.engines import vllm as vllm_engine
from gpt4video.errors import ConfigError, ModelLoadError
from gpt4video.modeling import GPT4Video
from gpt4video.processing import Turn


@pytest.fixture
def model(tiny_model_config):
    torch.manual_seed(0)
    m = GPT4Video.from_config(tiny_model_config)
    with torch.no_grad():  # LoRA B starts at zero; give it values so the adapter is really checked
        for p in m.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _features(model, videos=1):
    torch.manual_seed(1)
    ac = model.config.abstractor
    return torch.randn(videos, model.config.num_frames, ac.tokens_per_frame, ac.encoder_dim)


def _transformers_engine(model):
    return TransformersEngine(model.llm, model.tokenizer, eos_token_ids=model.eos_token_ids,
                              banned_token_ids=[model.processor.video_token_id])


# -- the prompt ----------------------------------------------------------------------------------------
def test_the_prompt_embeddings_are_what_the_transformers_engine_is_fed(model):
    turns = [Turn("user", "What moves?", videos=[0])]
    request = model.prompt_request(turns, [], GenerationParams(), features=_features(model))
    prompt = vllm_engine.vllm_prompt(request)
    assert set(prompt) == {"prompt_embeds"}
    embeds = prompt["prompt_embeds"]
    fed = _transformers_engine(model)._generate_kwargs(request, threading.Event(), queue.Queue())["inputs_embeds"]
    assert embeds.device.type == "cpu" and embeds.shape == (request.num_prompt_tokens, model.config.abstractor.output_dim)
    assert torch.equal(embeds, fed[0])  # the same tensor values, copied
    # the video's rows are the abstractor's tokens, the others the LLM's token embeddings
    ids = model.processor.encode(turns, 1).input_ids
    slots = ids == model.processor.video_token_id
    with torch.no_grad():
        video = model.video_embeddings(_features(model))[0]
        words = model.llm.get_input_embeddings()(ids[~slots])
    torch.testing.assert_close(embeds[slots], video)
    torch.testing.assert_close(embeds[~slots], words)


def test_a_prompt_of_token_ids_goes_in_as_ids():
    request = EngineRequest(GenerationParams(), input_ids=torch.tensor([5, 6, 7]))
    assert vllm_engine.vllm_prompt(request) == {"prompt_token_ids": [5, 6, 7]}


# -- sampling and the token rules ----------------------------------------------------------------------
def test_generation_params_become_sampling_params():
    greedy = vllm_engine.sampling_arguments(GenerationParams(max_new_tokens=20), eos_token_ids=[3, 1],
                                            banned_token_ids=[9])
    assert greedy == {
        "n": 1, "max_tokens": 20, "temperature": 0.0, "top_p": 1.0, "top_k": 0, "seed": None,
        "repetition_penalty": 1.0, "stop_token_ids": [1, 3], "ignore_eos": False, "detokenize": False,
        "extra_args": {vllm_engine.RULES_KEY: {"banned": [9], "openings": [], "repetition_penalty": 1.0}},
    }
    params = GenerationParams(max_new_tokens=5, temperature=0.7, top_p=0.9, seed=11, repetition_penalty=1.2,
                              suppress_openings=((4, 5), (6,)), stop=("###", "\n\n"))
    sampled = vllm_engine.sampling_arguments(params, eos_token_ids=[3])
    assert (sampled["temperature"], sampled["top_p"], sampled["seed"], sampled["max_tokens"]) == (0.7, 0.9, 11, 5)
    assert sampled["repetition_penalty"] == 1.0  # applied over the reply by the rules, not by vLLM
    assert sampled["extra_args"][vllm_engine.RULES_KEY] == {"banned": [], "openings": [[4, 5], [6]],
                                                           "repetition_penalty": 1.2}
    assert "stop" not in sampled  # stop strings are cut where the text is made (stream_reply)
    assert vllm_engine.sampling_arguments(GenerationParams(), eos_token_ids=[3])["extra_args"] is None


def test_ignore_eos_bans_the_end_tokens_instead_of_stopping_on_them():
    args = vllm_engine.sampling_arguments(GenerationParams(ignore_eos=True), eos_token_ids=[3, 1],
                                          banned_token_ids=[9])
    assert args["stop_token_ids"] == [] and args["ignore_eos"] is True
    assert args["extra_args"][vllm_engine.RULES_KEY]["banned"] == [1, 3, 9]


@pytest.mark.parametrize("generated", [[], [4], [4, 7], [2, 2, 8]])
def test_the_reply_rules_are_the_transformers_engines_logits_processors(model, generated):
    params = GenerationParams(repetition_penalty=1.3, suppress_openings=((4, 5), (6,), (4, 7, 2)))
    banned = [model.processor.video_token_id]
    torch.manual_seed(2)
    logits = torch.randn(len(model.tokenizer)) * 3
    ours = vllm_engine.ReplyRules.for_request(params, banned)(generated, logits.clone())
    processors = _transformers_engine(model)._logits_processors(params, 0, torch.device("cpu"))
    theirs = processors(torch.tensor([generated], dtype=torch.long), logits[None].clone())[0]
    torch.testing.assert_close(ours, theirs)
    assert torch.isinf(ours[banned]).all()


def test_the_reply_rules_travel_in_extra_args_and_skip_ids_beyond_the_vocabulary():
    rules = vllm_engine.ReplyRules(banned=(1, 50), openings=((2, 60),), repetition_penalty=2.0)
    args = {vllm_engine.RULES_KEY: rules.to_args()}
    assert vllm_engine.ReplyRules.from_extra_args(args) == rules
    assert vllm_engine.ReplyRules.from_extra_args(None) is None
    assert vllm_engine.ReplyRules.from_extra_args({"other": 1}) is None
    logits = torch.tensor([1.0, 2.0, -2.0, 4.0])  # a base vocabulary of 4: ids 50 and 60 are not in it
    out = rules([2, 3], logits.clone())
    assert out.tolist() == [1.0, -float("inf"), -4.0, 2.0]  # 1 banned; 2 and 3 of the reply penalised


def test_lora_ranks_round_up_to_what_vllm_serves():
    assert [vllm_engine.lora_rank_limit(r) for r in (1, 2, 8, 9, 16, 300, 512)] == [1, 8, 8, 16, 16, 320, 512]
    with pytest.raises(ConfigError, match="rank 600"):
        vllm_engine.lora_rank_limit(600)


def test_engine_arguments_enable_prompt_embeddings_the_rules_and_the_lora():
    args = vllm_engine.engine_arguments("/m", dtype="bfloat16", lora_rank=4, max_model_len=2048)
    assert args["model"] == "/m" and args["dtype"] == "bfloat16" and args["max_model_len"] == 2048
    assert args["enable_prompt_embeds"] and args["skip_tokenizer_init"]
    assert args["logits_processors"] == ["gpt4video.engines.vllm_logits:ReplyRulesProcessor"]
    assert (args["enable_lora"], args["max_loras"], args["max_lora_rank"]) == (True, 1, 8)
    assert "enable_lora" not in vllm_engine.engine_arguments("/m")


# -- the adapter ---------------------------------------------------------------------------------------
def test_the_peft_adapter_reloads_with_equal_weights(model, tiny_model_config, tmp_path, monkeypatch):
    import json

    from gpt4video.llm.lora import load_lora_weights

    monkeypatch.setenv("GPT4VIDEO_CACHE", str(tmp_path))
    path = vllm_engine.peft_adapter_for(model)
    assert path.parent == tmp_path / "peft" and (path / "adapter_model.safetensors").is_file()
    config = json.loads((path / "adapter_config.json").read_text())
    lora = tiny_model_config.llm.lora
    assert (config["r"], config["lora_alpha"], sorted(config["target_modules"])) == (
        lora.r, lora.alpha, sorted(lora.target_modules))
    assert vllm_engine.peft_adapter_for(model) == path  # cached
    assert [p.name for p in (tmp_path / "peft").iterdir()] == [path.name]  # no temporary folder left

    torch.manual_seed(5)
    fresh = GPT4Video.from_config(tiny_model_config)
    load_lora_weights(fresh.llm, path)
    ours = {n: p for n, p in model.llm.named_parameters() if "lora_" in n}
    theirs = {n: p for n, p in fresh.llm.named_parameters() if "lora_" in n}
    assert ours.keys() == theirs.keys() and ours
    assert all(torch.equal(ours[n], theirs[n]) for n in ours)

    with torch.no_grad():  # retrained weights: another folder
        next(iter(ours.values())).add_(1.0)
    assert vllm_engine.peft_adapter_for(model) != path


# -- where vLLM cannot run -----------------------------------------------------------------------------
def _find_spec_without(name, real):
    return lambda module, *a, **k: None if module == name else real(module, *a, **k)


def test_missing_names_vllm_then_the_gpu(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", _find_spec_without("vllm", real))
    assert vllm_engine.missing() == vllm_engine.INSTALL_HINT
    monkeypatch.setattr(importlib.util, "find_spec", lambda module, *a, **k: object())
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert vllm_engine.missing() == vllm_engine.NO_GPU_HINT


@pytest.mark.parametrize("hint", [vllm_engine.INSTALL_HINT, vllm_engine.NO_GPU_HINT])
def test_the_factory_raises_one_clear_error_naming_what_is_missing(model, monkeypatch, hint):
    monkeypatch.setattr(vllm_engine, "missing", lambda: hint)
    with pytest.raises(ModelLoadError) as error:
        make_engine("vllm", model)
    assert str(error.value) == hint and "\n" not in hint


def test_the_cli_accepts_engine_vllm_and_fails_with_one_line(monkeypatch, capsys, tiny_saved_model_dir):
    from gpt4video.cli import _config_from_options, build_parser, main
    from gpt4video.config import LoadConfig

    for command in ("serve", "chat"):
        args = build_parser().parse_args([command, "--engine", "vllm"])
        assert _config_from_options(LoadConfig, args).engine == "vllm"
    monkeypatch.setattr(vllm_engine, "missing", lambda: vllm_engine.INSTALL_HINT)
    assert main(["chat", "--model", str(tiny_saved_model_dir), "--engine", "vllm", "--no-safety", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "pip install vllm" in err and "Traceback" not in err


def test_a_gguf_llm_is_refused(model, monkeypatch):
    monkeypatch.setattr(vllm_engine, "missing", lambda: None)
    monkeypatch.setattr("gpt4video.llm.loading.resolve_llm_source", lambda config: ("/m", "x.Q4.gguf"))
    with pytest.raises(ConfigError, match="GGUF file 'x.Q4.gguf'"):
        vllm_engine.VLLMEngine.for_model(model)


# -- what our code passes to vLLM (a recording stand-in; it decodes nothing) ----------------------------
class _RecordingStandIn:
    """Stands in for the ``vllm`` package only to record what the engine passes to it. Its LLMEngine
    records ``add_request`` and then refuses the request, and has nothing to step: it produces no output, so no
    test here can take its output for vLLM's."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict]] = []
        record = self.calls

        class EngineArgs:
            def __init__(self, **kwargs):
                record.append(("EngineArgs", kwargs))
                self.kwargs = kwargs

        class LLMEngine:
            @classmethod
            def from_engine_args(cls, engine_args):
                record.append(("LLMEngine.from_engine_args", engine_args.kwargs))
                return cls()

            def add_request(self, request_id, prompt, params, **kwargs):
                record.append(("add_request", {"request_id": request_id, "prompt": prompt, "params": params,
                                               **kwargs}))
                raise ValueError("the recording stand-in runs no request")

            def has_unfinished_requests(self):
                return False  # it never holds a request

            def step(self):
                raise AssertionError("the recording stand-in has nothing to step")

        class SamplingParams:
            def __init__(self, **kwargs):
                record.append(("SamplingParams", kwargs))
                self.kwargs = kwargs

        class LoRARequest:
            def __init__(self, **kwargs):
                record.append(("LoRARequest", kwargs))
                self.kwargs = kwargs

        self.module = types.ModuleType("vllm")
        self.module.EngineArgs, self.module.LLMEngine, self.module.SamplingParams = EngineArgs, LLMEngine, SamplingParams
        self.lora = types.ModuleType("vllm.lora")
        self.request = types.ModuleType("vllm.lora.request")
        self.request.LoRARequest = LoRARequest


def test_what_the_engine_passes_to_vllm(model, monkeypatch, tmp_path):
    stand_in = _RecordingStandIn()
    monkeypatch.setitem(sys.modules, "vllm", stand_in.module)
    monkeypatch.setitem(sys.modules, "vllm.lora", stand_in.lora)
    monkeypatch.setitem(sys.modules, "vllm.lora.request", stand_in.request)
    monkeypatch.setattr(vllm_engine, "missing", lambda: None)
    monkeypatch.setenv("GPT4VIDEO_CACHE", str(tmp_path))

    engine = make_engine("vllm", model)
    calls = dict(stand_in.calls)
    adapter = vllm_engine.peft_adapter_for(model)
    assert calls["LoRARequest"] == {"lora_name": "gpt4video", "lora_int_id": 1, "lora_path": str(adapter)}
    assert calls["LLMEngine.from_engine_args"] == vllm_engine.engine_arguments(
        model.config.llm.model, dtype="float32", lora_rank=model.config.llm.lora.r,
        max_model_len=model.context_length)

    params = GenerationParams(max_new_tokens=7, temperature=0.5, seed=3, suppress_openings=((4,),))
    request = model.prompt_request([Turn("user", "hi", videos=[0])], [], params, features=_features(model))
    prompt, sampling, lora = engine.request_arguments(request)
    assert torch.equal(prompt["prompt_embeds"], request.inputs_embeds)
    assert lora is engine.lora_request
    assert sampling.kwargs == vllm_engine.sampling_arguments(
        params, eos_token_ids=model.eos_token_ids, banned_token_ids=[model.processor.video_token_id])
    lock = threading.RLock()
    assert engine.batched(8, pipeline_lock=lock) is engine and engine.pipeline_lock is lock  # vLLM batches itself
    engine.pipeline_lock = None

    # the scheduler thread hands the request to add_request; a request vLLM refuses fails alone, with its error
    stream = engine.generate(request)
    with pytest.raises(ValueError, match="runs no request"):
        stream.consume()
    added = [kwargs for name, kwargs in stand_in.calls if name == "add_request"]
    assert len(added) == 1 and added[0]["params"] is not None and added[0]["lora_request"] is engine.lora_request
    assert torch.equal(added[0]["prompt"]["prompt_embeds"], request.inputs_embeds)
    # a request cancelled before the scheduler takes it never reaches vLLM
    cancel = threading.Event()
    cancel.set()
    cancelled = model.prompt_request([Turn("user", "hi")], [], params)
    cancelled.cancel = cancel
    assert engine.generate(cancelled).consume().finish_reason == "cancelled"
    assert len([name for name, _ in stand_in.calls if name == "add_request"]) == 1
    engine.close()
    with pytest.raises(RuntimeError, match="closed"):
        engine.generate(request).consume()


def test_a_server_decodes_with_its_models_engine_made_batched(model, tmp_path):
    from gpt4video.engines.batching import BatchedEngine
    from gpt4video.serving.engine import Engine
    from gpt4video.serving.files import FileStore

    asked = []

    class Recording(TransformersEngine):
        def batched(self, size, pipeline_lock=None):
            asked.append((size, pipeline_lock))
            return super().batched(size, pipeline_lock)

    model.engine = Recording(model.llm, model.tokenizer, eos_token_ids=model.eos_token_ids)
    server = Engine(model, FileStore(tmp_path, ttl=60), generators={}, max_batch=3).start()
    try:
        assert asked == [(3, server._pipeline_lock)]
        assert isinstance(server.decoder, BatchedEngine) and server.decoder.max_batch == 3
    finally:
        server.stop()


# -- vLLM's own classes (vLLM installed; no GPU needed) ------------------------------------------------
def _vllm_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is not None


@pytest.mark.skipif(not _vllm_installed(), reason="vLLM's classes not checked: vLLM is not installed here")
def test_vllm_takes_our_arguments_and_runs_our_rules(model, tmp_path, monkeypatch):
    import importlib

    from vllm import EngineArgs, SamplingParams
    from vllm.config.lora import LoRAConfig
    from vllm.lora.peft_helper import PEFTHelper
    from vllm.v1.sample.logits_processor import BatchUpdate

    monkeypatch.setenv("GPT4VIDEO_CACHE", str(tmp_path))
    engine_args = EngineArgs(**vllm_engine.engine_arguments(str(tmp_path), dtype="float32", lora_rank=4))
    assert engine_args.enable_prompt_embeds and engine_args.skip_tokenizer_init and engine_args.max_lora_rank == 8
    adapter = PEFTHelper.from_local_dir(str(vllm_engine.peft_adapter_for(model)), 512)
    adapter.validate_legal(LoRAConfig(max_lora_rank=8, max_loras=1))  # vLLM accepts our PEFT adapter
    assert (adapter.r, sorted(adapter.target_modules)) == (4, ["q_proj", "v_proj"])

    with_rules = SamplingParams(**vllm_engine.sampling_arguments(
        GenerationParams(repetition_penalty=2.0, suppress_openings=((3, 4),), temperature=0.5, seed=1),
        eos_token_ids=[1], banned_token_ids=[5]))
    plain = SamplingParams(**vllm_engine.sampling_arguments(GenerationParams(), eos_token_ids=[1]))
    assert (with_rules.seed, with_rules.top_k, with_rules.detokenize, plain.extra_args) == (1, 0, False, None)
    module, _, name = vllm_engine.RULES_PROCESSOR.partition(":")  # as vLLM loads it by name
    processor = getattr(importlib.import_module(module), name)(None, torch.device("cpu"), False)
    assert not processor.is_argmax_invariant()
    reply_0, reply_1 = [3], [3]  # vLLM hands the processor each request's running list of tokens
    processor.update_state(BatchUpdate(batch_size=2, removed=[], moved=[],
                                       added=[(0, with_rules, None, reply_0), (1, plain, None, reply_1)]))
    torch.manual_seed(0)
    logits = torch.randn(2, 8)
    out = processor.apply(logits.clone())
    expected = vllm_engine.ReplyRules.from_extra_args(with_rules.extra_args)(reply_0, logits[0].clone())
    torch.testing.assert_close(out[0], expected)
    assert torch.isinf(out[0, [4, 5]]).all()  # the blocked opening's last token and the banned token
    torch.testing.assert_close(out[1], logits[1])  # a request without rules is left alone


# -- vLLM itself (a CUDA GPU with vLLM installed) ------------------------------------------------------
def _vllm_ready_model(tiny_tokenizer_dir, tiny_clip_dir, tmp_path):
    """A tiny GPT4Video whose LLM has a head size vLLM's attention kernels take (64)."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    torch.manual_seed(0)
    llm = LlamaForCausalLM(LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=128, intermediate_size=256, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
        eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=False,
        initializer_range=0.3))
    llm.save_pretrained(tmp_path / "llm")
    tokenizer.save_pretrained(tmp_path / "llm")
    config = ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(tiny_clip_dir)),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32, num_layers=1,
                                    num_heads=4, num_queries=4, output_dim=128),
        llm=LLMConfig(model=str(tmp_path / "llm"), lora=LoraConfig(r=8, alpha=16, dropout=0.0)),
        num_frames=4, frame_size=64)
    model = GPT4Video.from_config(config)
    with torch.no_grad():
        for p in model.trainable_parameters().values():
            p.add_(torch.randn_like(p) * 0.05)
    return model


@pytest.mark.skipif(vllm_engine.missing() is not None, reason=f"vLLM not run: {vllm_engine.missing()}")
def test_vllm_decodes_the_transformers_engines_greedy_reply(tiny_tokenizer_dir, tiny_clip_dir, tmp_path,
                                                            monkeypatch):
    monkeypatch.setenv("GPT4VIDEO_CACHE", str(tmp_path / "cache"))
    model = _vllm_ready_model(tiny_tokenizer_dir, tiny_clip_dir, tmp_path)
    engine = make_engine("vllm", model)
    try:
        turns = [Turn("user", "What moves?", videos=[0])]
        features = _features(model)
        params = GenerationParams(max_new_tokens=8, stop=())
        reference = model.generate(turns, [], params, features=features)
        reply = model.generate(turns, [], params, features=features, engine=engine)
        assert reply.num_generated_tokens > 0
        assert reply.text == reference.text  # the same prompt embeddings, base weights and LoRA
        first = model.tokenizer(reply.text, add_special_tokens=False).input_ids[:1]
        if first:  # a blocked opening changes the reply's start
            blocked = model.generate(turns, [], GenerationParams(max_new_tokens=8, stop=(),
                                                                 suppress_openings=(tuple(first),)),
                                     features=features, engine=engine)
            assert not blocked.text.startswith(reply.text)
        sampled = [model.generate(turns, [], GenerationParams(max_new_tokens=8, temperature=1.0, seed=7, stop=()),
                                  features=features, engine=engine).text for _ in range(2)]
        assert sampled[0] == sampled[1]  # a seed reproduces a reply
        with model.generate_stream(turns, [], GenerationParams(max_new_tokens=64, ignore_eos=True, stop=()),
                                   features=features, engine=engine) as stream:
            next(iter(stream), None)  # leave after the first piece: the request is aborted
        assert stream.finish_reason == "cancelled"
        again = model.generate(turns, [], params, features=features, engine=engine)
        assert again.text == reply.text  # the engine serves on after an abort
    finally:
        engine.close()
