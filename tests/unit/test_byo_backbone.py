"""Bring your own backbone: a SigLIP tower and a Qwen2 LLM with its own (ChatML) chat template, tiny and built from
configs, through both training stages, save, load and chat, starting from the ``paper`` preset with the parts
swapped by ``model_overrides``."""

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
