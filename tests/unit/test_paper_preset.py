"""The ``paper`` preset end to end with tiny weights of its own classes (CLIPVisionModel + LlamaForCausalLM): stage 1
and stage 2 through ``gpt4video train``, save, load, ``gpt4video chat``. Only the checkpoints are swapped for tiny
ones (``model_overrides``); everything else is the preset's."""

from __future__ import annotations

import json

import numpy as np
import torch
import yaml
from safetensors.torch import load_file

from gpt4video.modeling import GPT4Video, preset_config
from gpt4video.processing import Turn
from gpt4video.video import write_video

# The preset's abstractor is 6 layers of width 1024 into a 4096-wide LLM; the tiny parts are 32 wide.
TINY_ABSTRACTOR = {"encoder_dim": 32, "tokens_per_frame": 17, "hidden_size": 32, "num_layers": 1, "num_heads": 4,
                   "num_queries": 4, "output_dim": 32}




def train_config(path, **fields) -> str:
    base = {"max_steps": 2, "batch_size": 2, "learning_rate": 1e-2, "log_every": 1, "save_every": 2, "seed": 0}
    path.write_text(yaml.safe_dump({**base, **fields}))
    return str(path)


def test_paper_preset_trains_both_stages_saves_loads_and_chats(tiny_world, tiny_clip_dir, tiny_llm_dir, tmp_path, cli):
    preset = preset_config("paper")
    overrides = {"encoder": {"model": str(tiny_clip_dir)}, "llm": {"model": str(tiny_llm_dir)},
                 "abstractor": TINY_ABSTRACTOR}
    stage1 = tmp_path / "stage1"
    code, _, err = cli(["train", "--no-progress", "--config", train_config(
        tmp_path / "s1.yaml", model="paper", model_overrides=overrides, stage=1, output_dir=str(stage1),
        data=[{"path": str(tiny_world / "train/captions.jsonl")}])])
    assert code == 0, err
    stage2 = tmp_path / "stage2"
    code, _, err = cli(["train", "--no-progress", "--config", train_config(
        tmp_path / "s2.yaml", model=str(stage1 / "final"), stage=2, output_dir=str(stage2),
        data=[{"path": str(tiny_world / "train/qa.jsonl")}, {"path": str(tiny_world / "train/dialogues.jsonl")}])])
    assert code == 0, err

    # stage 1 trained the abstractor only (LoRA's B matrices start at zero and stay there), stage 2 the LoRA too
    lora1 = load_file(str(stage1 / "final/lora/adapter_model.safetensors"))
    lora2 = load_file(str(stage2 / "final/lora/adapter_model.safetensors"))
    assert lora1.keys() == lora2.keys() and all(("q_proj" in k or "v_proj" in k) for k in lora1)  # the paper's
    b_matrices = [k for k in lora1 if "lora_B" in k]
    assert b_matrices and all(not lora1[k].any() for k in b_matrices)
    assert all(lora2[k].any() for k in b_matrices)
    abstractor1 = load_file(str(stage1 / "final/abstractor.safetensors"))
    abstractor2 = load_file(str(stage2 / "final/abstractor.safetensors"))
    assert any(not torch.equal(abstractor1[k], abstractor2[k]) for k in abstractor1)

    model = GPT4Video.from_pretrained(stage2 / "final")
    saved = model.config
    assert saved.encoder == preset.encoder.replace(model=str(tiny_clip_dir))
    assert saved.llm == preset.llm.replace(model=str(tiny_llm_dir))
    assert (saved.num_frames, saved.frame_size, saved.llm.chat_template) == (4, 448, "paper")
    assert type(model.encoder.model).__name__ == "CLIPVisionModel"
    assert type(model.llm.get_base_model()).__name__ == "LlamaForCausalLM"
    assert model.trained and model.encoder.tokens_per_frame == 17
    prompt = model.processor.render([Turn("user", "Describe this video.", videos=[0])])
    assert prompt.startswith("###Human: <video>[4 video tokens]</video>\n###Human: Describe this video.\n###AI: ")

    clip = write_video(tmp_path / "clip.mp4", np.random.default_rng(0).integers(0, 255, (8, 48, 64, 3), np.uint8))
    replies = []
    for _ in range(2):  # each run loads the saved model afresh; greedy decoding gives the same reply
        code, out, err = cli(["chat", "--model", str(stage2 / "final"), "--video", str(clip), "--prompt",
                              "Describe this video.", "--max-new-tokens", "6", "--json"])
        assert code == 0, err
        replies.append(json.loads(out))
    assert replies[0]["trained"] is True and replies[0]["input_videos"] == [str(clip)]
    assert isinstance(replies[0]["text"], str) and replies[0]["text"] == replies[1]["text"]
