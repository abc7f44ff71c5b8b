"""The model presets in configs/model/: each parses; the family presets' token counts are what their encoder gives
for the real checkpoint's geometry (a tiny-width tower of the same image and patch size, with the hub's image
processor settings); a preset whose weights are not here fails to load with one clear error."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from gpt4video.encoders import ENCODERS, build_encoder
from gpt4video.errors import ModelLoadError
from gpt4video.modeling import GPT4Video, preset_config, preset_names

transformers = pytest.importorskip("transformers")

FAMILIES = ["gemma2", "llama3", "qwen2_5", "qwen3", "smollm2"]
TINY = dict(hidden_size=8, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2)

# preset → (a tower of its checkpoint's geometry with a tiny width, that checkpoint's image processor settings)
GEOMETRY = {
    "llama3": (lambda: transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        image_size=384, patch_size=14, **TINY)), {"size": {"height": 384, "width": 384}, "resample": 3}),
    "qwen2_5": (lambda: transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        image_size=384, patch_size=14, **TINY)), {"size": {"height": 384, "width": 384}, "resample": 2}),
    "qwen3": (lambda: transformers.Dinov2Model(transformers.Dinov2Config(
        image_size=518, patch_size=14, hidden_size=8, num_hidden_layers=1, num_attention_heads=2, mlp_ratio=2)),
        {"size": {"shortest_edge": 256}, "do_center_crop": True, "crop_size": {"height": 224, "width": 224}}),
    "gemma2": (lambda: transformers.SiglipVisionModel(transformers.SiglipVisionConfig(
        image_size=224, patch_size=16, **TINY)), {"size": {"height": 224, "width": 224}}),
    "smollm2": (lambda: transformers.Siglip2VisionModel(transformers.Siglip2VisionConfig(
        patch_size=16, num_patches=256, **TINY)), {"patch_size": 16, "max_num_patches": 256}),
}


def test_every_preset_parses_and_names_its_template():
    assert set(FAMILIES) | {"paper", "smol"} <= set(preset_names())
    for name in ("paper", "smol"):
        assert preset_config(name).llm.chat_template == "paper"
    for name in FAMILIES:
        config = preset_config(name)
        assert config.llm.chat_template == "native" and config.encoder.name in ENCODERS
        assert config.encoder.model and config.llm.model and config.num_frames == 4


@pytest.mark.parametrize("name", FAMILIES)
def test_family_preset_token_count_is_its_encoders(name, tmp_path):
    config = preset_config(name)
    make, processor = GEOMETRY[name]
    torch.manual_seed(0)
    make().save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    encoder = build_encoder(config.encoder.replace(model=str(tmp_path)))
    assert encoder.tokens_per_frame == config.abstractor.tokens_per_frame


def test_a_preset_without_its_weights_here_is_one_clear_error():
    with pytest.raises(ModelLoadError, match="cannot load SigLIP vision model 'google/siglip-so400m-patch14-384'"):
        GPT4Video.from_pretrained("llama3")
