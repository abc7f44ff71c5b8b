import numpy as np
import pytest
import torch

from gpt4video.config import ConfigError
from gpt4video.errors import InputError, ModelLoadError
from gpt4video.modeling import GenerationParams, GPT4Video
from gpt4video.processing import Turn


def random_frames(n=4, h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(n, h, w, 3), dtype=np.uint8)


@pytest.fixture
def model(tiny_model_config):
    torch.manual_seed(0)
    m = GPT4Video.from_config(tiny_model_config)
    with torch.no_grad():  # move LoRA away from its zero init so save/load is really tested
        for name, p in m.trainable_parameters().items():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def test_only_abstractor_and_lora_are_trainable(model):
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("abstractor.") or "lora_" in n for n in trainable)
    assert any("lora_" in n for n in trainable)
    assert not any(p.requires_grad for p in model.encoder.parameters())


def test_placeholders_are_filled_with_video_tokens(model):
    enc = model.processor.encode([Turn("user", "What color?", videos=[0, 1])], num_videos=2)
    ids = enc.input_ids[None]
    feats = model.encode_frames([random_frames(seed=1), random_frames(seed=2)])
    assert feats.shape == (2, 4, 17, 32)  # (V, T, N, D_enc)
    video = model.video_embeddings(feats)  # (V, Nq, D)
    assert video.shape == (2, 8, 32)
    embeds = model.embed(ids, video)
    mask = ids[0] == model.processor.video_token_id
    assert torch.equal(embeds[0, mask], video.reshape(-1, 32))
    text_rows = model.llm.get_input_embeddings()(ids)[0, ~mask]
    assert torch.equal(embeds[0, ~mask], text_rows)


def test_placeholder_count_mismatch_raises(model):
    enc = model.processor.encode([Turn("user", "hi", videos=[0])])
    with pytest.raises(InputError, match="placeholder"):
        model.embed(enc.input_ids[None], torch.zeros(2, 8, 32))
    with pytest.raises(InputError, match="placeholder"):
        model.embed(enc.input_ids[None], None)


def test_still_image_is_repeated_to_num_frames(model):
    feats = model.encode_frames([random_frames(n=1)])
    assert feats.shape == (1, 4, 17, 32)
    # the same frame encoded in one batch: equal up to the summation order of batched kernels
    assert torch.allclose(feats[0, 0], feats[0, 3], rtol=1e-4, atol=1e-5)


def test_loss_only_on_assistant_tokens_and_backward(model):
    enc = model.processor.encode([Turn("user", "Describe.", videos=[0]), Turn("assistant", "A red circle.")],
                                 add_generation_prompt=False)
    batch = model.processor.collate([enc])
    out = model(**batch, features=model.encode_frames([random_frames()]))
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.abstractor.spatial.queries.grad is not None
    lora = [p for n, p in model.llm.named_parameters() if "lora_B" in n]
    assert lora and all(p.grad is not None for p in lora)


def test_selective_head_loss_equals_full_logits_loss(model):
    model.eval()
    enc = [model.processor.encode([Turn("user", q, videos=[0]), Turn("assistant", a)], add_generation_prompt=False)
           for q, a in (("What color?", "red"), ("Describe the clip in detail.", "A blue square moves up."))]
    batch = model.processor.collate(enc)
    feats = model.encode_frames([random_frames(seed=1), random_frames(seed=2)])
    with torch.no_grad():
        fast = model(**batch, features=feats)
        full = model.llm(inputs_embeds=model.embed(batch["input_ids"], model.video_embeddings(feats)),
                         attention_mask=batch["attention_mask"], labels=batch["labels"])
    assert fast.num_tokens == int((batch["labels"][:, 1:] != -100).sum())
    assert torch.allclose(fast.loss, full.loss, atol=1e-5)


def test_save_load_round_trip_gives_identical_logits(model, tiny_model_config, tmp_path):
    model.eval()
    enc = model.processor.encode([Turn("user", "What color?", videos=[0])])
    frames = random_frames()
    with torch.no_grad():
        before = model(enc.input_ids[None], features=model.encode_frames([frames])).logits
    saved = model.save_pretrained(tmp_path / "m")
    files = sorted(p.relative_to(saved).as_posix() for p in saved.rglob("*") if p.is_file())
    assert "abstractor.safetensors" in files and "lora/adapter_model.safetensors" in files
    assert not any("model.safetensors" == f for f in files)  # frozen parts are named, not copied
    from safetensors.torch import load_file

    adapter = load_file(str(saved / "lora/adapter_model.safetensors"))
    assert adapter and all("lora_" in k for k in adapter)  # no embedding matrix copied into the adapter
    loaded = GPT4Video.from_pretrained(saved)
    assert loaded.trained
    with torch.no_grad():
        after = loaded(enc.input_ids[None], features=loaded.encode_frames([frames])).logits
    assert torch.equal(before, after)


def test_generate_streams_and_reports_timings(model):
    turns = [Turn("user", "Describe this video.", videos=[0])]
    params = GenerationParams(max_new_tokens=6, stop=())
    stream = model.generate_stream(turns, [random_frames()], params)
    pieces = list(stream)
    assert "".join(pieces) == stream.text
    assert 1 <= stream.num_generated_tokens <= 6
    for key in ("encode", "abstract", "prefill", "generation", "time_to_first_token", "tokens_per_second"):
        assert key in stream.timings
    again = model.generate(turns, [random_frames()], params)
    assert again.text == stream.text  # greedy is deterministic


def test_sampling_with_seed_is_reproducible(model):
    turns = [Turn("user", "Hello")]
    p = GenerationParams(max_new_tokens=5, temperature=1.0, top_p=0.9, seed=3, stop=())
    assert model.generate(turns, [], p).text == model.generate(turns, [], p).text


def test_generation_never_emits_the_placeholder(model):
    with torch.no_grad():
        model.llm.get_output_embeddings().weight[model.processor.video_token_id] *= 0
        model.llm.get_output_embeddings().weight[model.processor.video_token_id] += 10
    out = model.generate([Turn("user", "x")], [], GenerationParams(max_new_tokens=3, stop=()))
    assert "<|video_pad|>" not in out.text


def test_bad_generation_params():
    with pytest.raises(InputError):
        GenerationParams(max_new_tokens=0)
    with pytest.raises(InputError):
        GenerationParams(top_p=0)


def test_mismatched_parts_are_config_errors(tiny_model_config):
    bad = tiny_model_config.replace(abstractor=tiny_model_config.abstractor.replace(output_dim=64))
    with pytest.raises(ConfigError, match="output_dim"):
        GPT4Video.from_config(bad)
    bad = tiny_model_config.replace(abstractor=tiny_model_config.abstractor.replace(tokens_per_frame=50))
    with pytest.raises(ConfigError, match="tokens"):
        GPT4Video.from_config(bad)


def test_unknown_model_name(tmp_path):
    with pytest.raises(ModelLoadError, match="neither a preset"):
        GPT4Video.from_pretrained("no-such-model")
    with pytest.raises(ModelLoadError, match="not a gpt4video model directory"):
        GPT4Video.from_pretrained(tmp_path)


def test_half_precision_export_halves_the_files_and_reloads(model, tmp_path):
    from safetensors.torch import load_file

    from gpt4video.cli import main

    full = model.save_pretrained(tmp_path / "fp32")
    half = model.save_pretrained(tmp_path / "fp16", dtype=torch.float16)

    def size(d):  # bytes of tensor data per weights file (the tiny model's headers would dominate file sizes)
        return {f.relative_to(d).as_posix(): sum(t.numel() * t.element_size() for t in load_file(str(f)).values())
                for f in d.rglob("*.safetensors")}

    assert size(full).keys() == size(half).keys() and len(size(full)) == 2  # abstractor + LoRA adapter
    assert all(size(half)[k] * 2 == size(full)[k] for k in size(full))
    for f in half.rglob("*.safetensors"):
        assert all(t.dtype == torch.float16 for t in load_file(str(f)).values())
    reloaded = GPT4Video.from_pretrained(half)  # cast back to float32 on load
    for name, p in model.trainable_parameters().items():
        q = dict(reloaded.named_parameters())[name]
        assert q.dtype == torch.float32
        torch.testing.assert_close(q, p.detach(), atol=1e-3, rtol=1e-3)
    # the CLI: same files from a trained directory, and one clear error for a bad source
    assert main(["export", str(full), str(tmp_path / "cli16"), "--dtype", "float16"]) == 0
    assert size(tmp_path / "cli16") == size(half)
    assert main(["export", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
    with pytest.raises(InputError, match="floating dtype"):
        model.save_pretrained(tmp_path / "int", dtype=torch.int8)


