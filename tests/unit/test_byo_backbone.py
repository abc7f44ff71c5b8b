"""Bring your own backbone: a SigLIP tower and a Qwen2 LLM with its own (ChatML) chat template, tiny and built from
configs, through both training stages, save, load and chat, starting from the ``paper`` preset with the parts
swapped by ``model_overrides``; with it and with a Llama in a Llama-3-style template, a reply that routes its
<video_prompt> to the offline generator, a refusal by the input hook, and the same greedy reply after save and load."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import yaml

from gpt4video.modeling import GPT4Video
from gpt4video.processing import IGNORE_INDEX, Turn
from gpt4video.video import write_video

transformers = pytest.importorskip("transformers")

CHATML = ("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}"
          "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


@pytest.fixture(scope="module")
def parts(tmp_path_factory, tiny_tokenizer_dir):
    """A tiny SigLIP tower (32 px, 8 px patches: 16 tokens of width 32) and a tiny Qwen2 with a ChatML template."""
    root = tmp_path_factory.mktemp("byo")
    torch.manual_seed(0)
    transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        image_size=32, patch_size=8, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4)).save_pretrained(root / "siglip")
    tok = transformers.AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    tok.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    tok.chat_template = CHATML
    qwen = transformers.Qwen2ForCausalLM(transformers.Qwen2Config(
        vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id, tie_word_embeddings=True))
    qwen.save_pretrained(root / "qwen2")
    tok.save_pretrained(root / "qwen2")
    return root




def train(cli, tmp_path, name: str, **fields) -> None:
    config = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-2, "log_every": 1, "save_every": 2, "seed": 0,
              "output_dir": str(tmp_path / name), **fields}
    (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump(config))
    code, _, err = cli(["train", "--no-progress", "--config", str(tmp_path / f"{name}.yaml")])
    assert code == 0, err


def test_siglip_and_qwen2_with_its_chat_template_train_save_load_chat(parts, tiny_world, tmp_path, cli):
    overrides = {
        "encoder": {"name": "siglip", "model": str(parts / "siglip")},
        "abstractor": {"encoder_dim": 32, "tokens_per_frame": 16, "hidden_size": 32, "num_layers": 1, "num_heads": 4,
                       "num_queries": 4, "output_dim": 32},
        "llm": {"model": str(parts / "qwen2"), "chat_template": "native"},
    }
    train(cli, tmp_path, "stage1", model="paper", model_overrides=overrides, stage=1,
          data=[{"path": str(tiny_world / "train/captions.jsonl")}])
    train(cli, tmp_path, "stage2", model=str(tmp_path / "stage1/final"), stage=2,
          data=[{"path": str(tiny_world / "train/dialogues.jsonl")}])

    model = GPT4Video.from_pretrained(tmp_path / "stage2/final")
    assert type(model.encoder).__name__ == "SigLIPFrameEncoder" and model.encoder.tokens_per_frame == 16
    assert type(model.llm.get_base_model()).__name__ == "Qwen2ForCausalLM"
    assert model.config.llm.chat_template == "native"
    im_end = model.tokenizer.convert_tokens_to_ids("<|im_end|>")
    assert model.processor.eos_token_id == im_end and im_end in model.eos_token_ids
    prompt = model.processor.render([Turn("user", "Describe this video.", videos=[0])])
    assert prompt == "<|im_start|>user\n<video>[4 video tokens]</video>\nDescribe this video.<|im_end|>\n" \
                     "<|im_start|>assistant\n"
    enc = model.processor.encode([Turn("user", "Hi"), Turn("assistant", "red")], add_generation_prompt=False)
    assert model.tokenizer.decode(enc.input_ids[enc.labels != IGNORE_INDEX].tolist()) == "red<|im_end|>"

    clip = write_video(tmp_path / "clip.mp4", np.random.default_rng(0).integers(0, 255, (8, 48, 64, 3), np.uint8))
    replies = []
    for _ in range(2):
        code, out, err = cli(["chat", "--model", str(tmp_path / "stage2/final"), "--video", str(clip), "--prompt",
                              "Describe this video.", "--max-new-tokens", "6", "--json"])
        assert code == 0, err
        replies.append(json.loads(out))
    assert replies[0]["trained"] is True and isinstance(replies[0]["text"], str)
    assert replies[0]["text"] == replies[1]["text"]


ALL_PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@pytest.fixture(params=["siglip+qwen2", "clip+llama3"])
def native_model(request, parts, tiny_clip_dir, tiny_llm_dir, tmp_path):
    """A GPT4Video of tiny parts prompted in its LLM's own template: the SigLIP tower with the ChatML Qwen2, or the
    CLIP tower with a Llama whose tokenizer has a Llama-3-style template. LoRA on every projection."""
    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig
    from test_chat_templates import save_llama3_style

    if request.param == "siglip+qwen2":
        encoder, tokens, llm = EncoderConfig(name="siglip", model=str(parts / "siglip")), 16, tmp_path / "qwen2"
        tok = transformers.AutoTokenizer.from_pretrained(parts / "qwen2")
        config = transformers.Qwen2Config.from_pretrained(parts / "qwen2")
        config.initializer_range = 0.3  # large enough that the output head can express confident predictions
        torch.manual_seed(0)
        transformers.Qwen2ForCausalLM(config).save_pretrained(llm)
        tok.save_pretrained(llm)
    else:
        encoder, tokens = EncoderConfig(name="clip", model=str(tiny_clip_dir)), 17
        llm = save_llama3_style(tiny_llm_dir, tmp_path / "llama3")
    config = ModelConfig(
        encoder=encoder, frame_size=64,
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=tokens, max_frames=4, hidden_size=32, num_layers=1,
                                    num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(llm), chat_template="native",
                      lora=LoraConfig(r=8, alpha=16, dropout=0.0, target_modules=ALL_PROJECTIONS)))
    torch.manual_seed(0)
    return GPT4Video.from_config(config)


def test_routing_refusal_stage2_steps_save_load_same_greedy_reply(native_model, tmp_path, monkeypatch):
    """Stage-2 steps on one generation dialogue (the LoRA learns it by heart, so the model writes the tag itself):
    the reply routes its <video_prompt> to the offline generator; the input hook refuses before the model; saved and
    loaded, the model gives the same greedy reply about a video."""
    from gpt4video.engines import GenerationParams
    from gpt4video.generators import build_generator
    from gpt4video.pipeline import Assistant, GenerationSettings
    from gpt4video.safety import CHECKERS, SafetyConfig, SafetyPolicy
    from test_vlm_backbones import MarkerText

    model = native_model
    turns = [Turn("user", "make a video of a blue circle"),
             Turn("assistant", "<video_prompt>A blue circle moves left.</video_prompt>")]
    batch = model.processor.collate([model.processor.encode(turns, add_generation_prompt=False)])
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    optimizer = torch.optim.AdamW(lora, lr=2e-2)
    before = [p.detach().clone() for p in lora]
    model.train()
    losses = []
    for _ in range(15):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(float(loss.detach()))
    model.eval()
    assert all(np.isfinite(losses)) and any(not torch.equal(a, b) for a, b in zip(before, lora))

    generation = GenerationSettings(build_generator("synthetic"), num_frames=4, height=32, width=32, seed=0)
    out = Assistant(model, generation).ask("make a video of a blue circle",
                                           params=GenerationParams(max_new_tokens=24)).consume().output
    assert out.video_prompts == ["A blue circle moves left."], out.raw_text
    assert len(out.generated) == 1 and out.generated[0].frames.shape == (4, 32, 32, 3)

    monkeypatch.setitem(CHECKERS._items, "vlm_marker_text", MarkerText)
    policy = SafetyPolicy(SafetyConfig(input_text=["vlm_marker_text"], input_frames=[], prompt=["vlm_marker_text"],
                                       output_frames=[], suspicion_checker="vlm_marker_text"))
    video = np.random.default_rng(1).integers(0, 255, (4, 48, 64, 3), np.uint8)
    clip = write_video(tmp_path / "clip.mp4", video)
    calls = []
    engine = model.engine
    monkeypatch.setattr(engine, "generate", lambda request: calls.append(request))  # the model must never be asked
    reply = Assistant(model, safety=policy).ask("please zzhate them", [clip]).consume()
    assert reply.refused_by == "input" and reply.refusal_category == "hate" and not calls
    monkeypatch.undo()

    greedy = GenerationParams(max_new_tokens=6)
    question = [Turn("user", "What color is the square?", videos=[0])]
    text = model.generate(question, [video], params=greedy).text
    loaded = GPT4Video.from_pretrained(model.save_pretrained(tmp_path / "saved"))
    assert loaded.trained and loaded.config.llm.chat_template == "native"
    assert loaded.generate(question, [video], params=greedy).text == text
