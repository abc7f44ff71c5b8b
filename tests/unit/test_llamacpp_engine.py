"""The llama.cpp engine's parts that run without llama.cpp: token choice, the GGUF adapter export, the
model's token-id prompts, and the errors a user meets. Decoding with llama.cpp itself is tested in
tests/integration/test_llamacpp_smol.py (skipped where llama-cpp-python is not built)."""

import numpy as np
import pytest
import torch

from gpt4video.engines import EngineRequest, GenerationParams
from gpt4video.engines import llamacpp
from gpt4video.engines.gguf_export import lora_tensors, rotary_permute, write_lora_adapter
from gpt4video.errors import ConfigError, ModelLoadError
from gpt4video.modeling import GPT4Video
from gpt4video.processing import Turn


@pytest.fixture
def model(tiny_model_config):
    torch.manual_seed(0)
    m = GPT4Video.from_config(tiny_model_config)
    with torch.no_grad():  # LoRA B starts at zero; give it values so the export is really checked
        for name, p in m.trainable_parameters().items():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def test_chooser_is_greedy_at_temperature_zero_and_honours_openings_and_penalty():
    logits = np.zeros(10, dtype=np.float32)
    logits[5], logits[6] = 3.0, 2.0
    choose = llamacpp.LogitsChooser(GenerationParams())
    assert choose(logits, []) == 5
    assert llamacpp.LogitsChooser(GenerationParams(suppress_openings=((5,),)))(logits, []) == 6
    assert llamacpp.LogitsChooser(GenerationParams(suppress_openings=((5,),)))(logits, [1]) == 5
    assert llamacpp.LogitsChooser(GenerationParams(repetition_penalty=2.0))(logits, [5]) == 6  # 3/2 < 2


def test_chooser_samples_reproducibly_within_the_nucleus():
    logits = np.log(np.array([0.5, 0.3, 0.15, 0.05]))
    params = GenerationParams(temperature=1.0, top_p=0.7, seed=4)
    chooser = llamacpp.LogitsChooser(params)
    picks = [chooser(logits, []) for _ in range(200)]
    assert set(picks) <= {0, 1}  # 0.5 + 0.3 covers top_p = 0.7; the tail is cut
    again = llamacpp.LogitsChooser(params)
    assert [again(logits, []) for _ in range(200)] == picks


def test_rotary_permutation_interleaves_each_heads_halves():
    rows = np.arange(8 * 3).reshape(8, 3)  # 2 heads of dimension 4
    permuted = rotary_permute(rows, 2)
    assert permuted[:, 0].tolist() == [0, 6, 3, 9, 12, 18, 15, 21]
    inverse = permuted.reshape(2, 2, 2, 3).swapaxes(1, 2).reshape(8, 3)
    assert np.array_equal(inverse, rows)


def test_lora_adapter_export_names_shapes_and_alpha(model, tmp_path):
    import gguf

    tensors = lora_tensors(model.llm)
    layers = model.llm.config.num_hidden_layers
    targets = model.config.llm.lora.target_modules
    assert len(tensors) == 2 * layers * len(targets)
    q_b = next(p for n, p in model.llm.named_parameters() if "layers.0.self_attn.q_proj.lora_B" in n)
    assert np.array_equal(tensors["blk.0.attn_q.weight.lora_b"],
                          rotary_permute(q_b.detach().numpy(), model.llm.config.num_attention_heads))
    path = write_lora_adapter(model.llm, tmp_path / "adapter.gguf")
    reader = gguf.GGUFReader(str(path))
    fields = {f.name: f for f in reader.fields.values()}
    assert bytes(fields["general.type"].parts[-1]).decode() == "adapter"
    assert float(fields["adapter.lora.alpha"].parts[-1][0]) == float(model.config.llm.lora.alpha)
    read = {t.name: t for t in reader.tensors}
    assert set(read) == set(tensors)
    assert np.allclose(np.asarray(read["blk.0.attn_q.weight.lora_b"].data),
                       tensors["blk.0.attn_q.weight.lora_b"])
    assert not list(tmp_path.glob("*.partial"))


def test_token_id_prompts_put_each_videos_words_in_place(model):
    words = model.tokenizer(" red circle moves left .", add_special_tokens=False).input_ids
    model.config.abstractor.word_tokens = True
    model.config.abstractor.vocabulary = sorted(set(words))
    model.config.abstractor.word_tokens_end = " ."
    if len(model.tokenizer(" .", add_special_tokens=False).input_ids) != 1:
        model.config.abstractor.word_tokens_end = None
    turns = [Turn("user", "What is it?", videos=[0])]
    features = torch.randn(1, model.config.num_frames, model.config.abstractor.tokens_per_frame,
                           model.config.abstractor.encoder_dim)
    by_ids = model.prompt_request(turns, [], GenerationParams(), features=features, as_token_ids=True)
    by_embeds = model.prompt_request(turns, [], GenerationParams(), features=features)
    assert by_ids.input_ids is not None and model.processor.video_token_id not in by_ids.input_ids.tolist()
    table = model.llm.get_input_embeddings()
    assert torch.equal(table(by_ids.input_ids), by_embeds.inputs_embeds)  # the same prompt, two forms


def test_token_id_prompts_need_word_tokens(model):
    with pytest.raises(ConfigError, match="word_tokens"):
        model.prompt_request([Turn("user", "hi")], [], GenerationParams(), as_token_ids=True)


def test_clear_errors_without_llama_cpp_or_with_an_embeddings_prompt(monkeypatch, tmp_path, model):
    monkeypatch.setattr(llamacpp, "is_available", lambda: False)
    with pytest.raises(ModelLoadError, match="make llamacpp"):
        llamacpp.LlamaCppEngine(tmp_path / "x.gguf", model.tokenizer, eos_token_ids=[0])
    engine = object.__new__(llamacpp.LlamaCppEngine)  # an engine without a loaded model
    with pytest.raises(ConfigError, match="transformers engine"):
        engine.generate(EngineRequest(GenerationParams(), inputs_embeds=torch.zeros(3, 4)))


def test_the_engine_needs_a_gguf_source(model, monkeypatch):
    from gpt4video.engines import make_engine

    monkeypatch.setattr(llamacpp, "is_available", lambda: True)
    with pytest.raises(ConfigError, match="GGUF"):
        make_engine("llamacpp", model)  # the tiny test LLM is a safetensors directory


def test_the_cli_names_the_missing_build(monkeypatch, capsys, tiny_saved_model_dir):
    from gpt4video.cli import main

    monkeypatch.setattr(llamacpp, "is_available", lambda: False)
    assert main(["chat", "--model", str(tiny_saved_model_dir), "--engine", "llamacpp", "--prompt", "hi"]) == 2
    assert "make llamacpp" in capsys.readouterr().err


def _tiny_source_gguf(llm, path):
    """A GGUF holding the tiny LLM's base projections in llama.cpp's layout (float32), as a converter writes it."""
    import gguf

    from gpt4video.engines.gguf_export import LLAMA_TENSOR_NAMES

    config = llm.config
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_block_count(config.num_hidden_layers)
    base = llm.get_base_model()
    for i, layer in enumerate(base.model.layers):
        for module, short in LLAMA_TENSOR_NAMES.items():
            linear = layer.get_submodule(module)
            weight = getattr(linear, "base_layer", linear).weight.detach().numpy().astype(np.float32)
            if module.endswith("q_proj"):
                weight = rotary_permute(weight, config.num_attention_heads)
            elif module.endswith("k_proj"):
                weight = rotary_permute(weight, config.num_key_value_heads)
            writer.add_tensor(f"blk.{i}.{short}.weight", np.ascontiguousarray(weight))
    writer.add_tensor("output_norm.weight", np.ones(config.hidden_size, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.mark.parametrize("quant,tolerance", [("f32", 1e-6), ("q8_0", 2e-2)])
def test_merged_gguf_holds_the_peft_merged_weights_in_llama_cpp_layout(model, tmp_path, quant, tolerance):
    import gguf
    from gguf.quants import dequantize

    from gpt4video.engines.gguf_export import write_merged_gguf

    source = _tiny_source_gguf(model.llm, tmp_path / "base.gguf")
    out = write_merged_gguf(model.llm, source, tmp_path / f"merged-{quant}.gguf", quant)
    merged = {t.name: dequantize(t.data, t.tensor_type) for t in gguf.GGUFReader(str(out)).tensors}
    config = model.llm.config
    assert any(t in ("q_proj", "k_proj") for t in model.config.llm.lora.target_modules)
    for module, short in (("self_attn.q_proj", "attn_q"), ("self_attn.k_proj", "attn_k"), ("self_attn.v_proj", "attn_v"),
                          ("mlp.down_proj", "ffn_down")):
        linear = model.llm.get_base_model().model.layers[1].get_submodule(module)
        with torch.no_grad():  # what peft's merge gives: W + alpha / r * B @ A (W alone where no LoRA)
            if hasattr(linear, "base_layer"):
                expected = (linear.base_layer.weight + linear.get_delta_weight("default")).numpy()
            else:
                expected = linear.weight.numpy()
        if short == "attn_q":
            expected = rotary_permute(expected, config.num_attention_heads)
        elif short == "attn_k":
            expected = rotary_permute(expected, config.num_key_value_heads)
        got = merged[f"blk.1.{short}.weight"].reshape(expected.shape)
        assert np.abs(got - expected).max() <= tolerance * max(1.0, np.abs(expected).max())
    assert np.array_equal(merged["output_norm.weight"], np.ones(config.hidden_size, dtype=np.float32))
    with pytest.raises(ConfigError, match="quantisation"):
        write_merged_gguf(model.llm, source, tmp_path / "x.gguf", "q3")


class _RecordingEngine:
    """Stands in for LlamaCppEngine: records which GGUF and adapter it was given."""

    def __init__(self, model_path, tokenizer, *, eos_token_ids, lora_path=None):
        self.model_path, self.lora_path = model_path, lora_path


def test_the_gguf_option_chooses_adapter_or_a_cached_merged_file(model, tmp_path, monkeypatch):
    from gpt4video.engines import make_engine

    source = _tiny_source_gguf(model.llm, tmp_path / "base.gguf")
    monkeypatch.setenv("GPT4VIDEO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(llamacpp, "is_available", lambda: True)
    monkeypatch.setattr(llamacpp, "LlamaCppEngine", _RecordingEngine)
    monkeypatch.setattr("gpt4video.llm.loading.source_gguf", lambda config: source)

    adapter = make_engine("llamacpp", model)
    assert adapter.model_path == source and adapter.lora_path.name.startswith("lora-")
    merged = make_engine("llamacpp", model, gguf="q8_0")
    assert merged.lora_path is None and merged.model_path.parent == tmp_path / "cache" / "gguf"
    assert merged.model_path.name.startswith("merged-base-") and merged.model_path.name.endswith("-q8_0.gguf")
    written = merged.model_path.stat().st_mtime_ns
    assert make_engine("llamacpp", model, gguf="q8_0").model_path == merged.model_path  # reused, not rewritten
    assert merged.model_path.stat().st_mtime_ns == written
    with torch.no_grad():  # other LoRA weights get another file
        next(p for n, p in model.llm.named_parameters() if "lora_B" in n).add_(1.0)
    assert make_engine("llamacpp", model, gguf="q8_0").model_path != merged.model_path


def test_engine_options_are_checked_by_name_and_value(model, monkeypatch):
    from gpt4video.config import LoadConfig
    from gpt4video.engines import make_engine

    monkeypatch.setattr(llamacpp, "is_available", lambda: True)
    for wrong in ("q3", "q4_1"):  # q4_1 would round the LoRA away
        with pytest.raises(ConfigError, match=f"adapter, q8_0, f16, got '{wrong}'"):
            make_engine("llamacpp", model, gguf=wrong)
    with pytest.raises(ConfigError, match="transformers engine has no option 'gguf'"):
        make_engine("transformers", model, gguf="q8_0")
    with pytest.raises(ConfigError, match="llamacpp engine"):
        LoadConfig(engine="transformers", gguf="q8_0")
    assert LoadConfig(engine="llamacpp", gguf="f16").load_options()["engine_options"] == {"gguf": "f16"}
    assert LoadConfig().load_options()["engine_options"] == {}
