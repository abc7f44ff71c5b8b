"""SigLIP, SigLIP 2 (NaFlex) and DINOv2 frame encoders: tiny towers built from configs, saved, loaded through the
registry; output shapes, layer selection, preprocessing against transformers' own image processors, and the
error for a checkpoint of another family."""

from __future__ import annotations

import json
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub are imported

import numpy as np
import pytest
import torch

from gpt4video.config import EncoderConfig
from gpt4video.encoders import ENCODERS, build_encoder
from gpt4video.encoders.dinov2 import IMAGENET_MEAN, IMAGENET_STD, DINOv2FrameEncoder
from gpt4video.encoders.siglip import SigLIPFrameEncoder
from gpt4video.encoders.siglip2 import SigLIP2FrameEncoder
from gpt4video.errors import ConfigError, ModelLoadError

transformers = pytest.importorskip("transformers")

TOWER = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)  # (T, H, W, 3)


def smooth(h: int, w: int) -> np.ndarray:
    """One (H, W, 3) uint8 image of gentle gradients (resampling filters agree closely on it)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([255 * x / (w - 1), 255 * y / (h - 1), 127 + 100 * np.sin(x / 5.0) * np.cos(y / 7.0)], -1)
    return img.round().clip(0, 255).astype(np.uint8)


def save(model, path, preprocessor: dict | None = None) -> str:
    model.save_pretrained(path)
    if preprocessor is not None:
        (path / "preprocessor_config.json").write_text(json.dumps(preprocessor))
    return str(path)


@pytest.fixture(scope="module")
def siglip_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.SiglipVisionConfig(image_size=32, patch_size=8, **TOWER)
    return save(transformers.SiglipVisionModel(config), tmp_path_factory.mktemp("siglip"))


@pytest.fixture(scope="module")
def dinov2_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.Dinov2Config(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                       num_attention_heads=4, mlp_ratio=2)
    return save(transformers.Dinov2Model(config), tmp_path_factory.mktemp("dinov2"))


@pytest.fixture(scope="module")
def siglip2_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.Siglip2VisionConfig(patch_size=8, num_patches=16, **TOWER)
    return save(transformers.Siglip2VisionModel(config), tmp_path_factory.mktemp("siglip2"))


def test_registry_has_every_family():
    assert {"clip", "siglip", "siglip2", "dinov2", "open_nsfw"} <= set(ENCODERS.names())
    assert ENCODERS.get("siglip") is SigLIPFrameEncoder
    assert ENCODERS.get("siglip2") is SigLIP2FrameEncoder
    assert ENCODERS.get("dinov2") is DINOv2FrameEncoder


# ------------------------------------------------------------------------------------------- SigLIP
def test_siglip_shapes_and_layer_selection(siglip_dir):
    enc = build_encoder(EncoderConfig(name="siglip", model=siglip_dir))
    x = frames(3, 40, 60)
    out = enc(x)
    assert out.shape == (3, 16, 32)  # (32 // 8)^2 patches, no CLS
    assert enc.tokens_per_frame == 16 and enc.hidden_size == 32
    pixels = enc._preprocess(torch.from_numpy(x))  # (3, 3, 32, 32)
    with torch.no_grad():
        ref = enc.model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(out, ref.last_hidden_state)  # -1: after the post-layernorm
    for layer in (-2, 0, 1):
        chosen = build_encoder(EncoderConfig(name="siglip", model=siglip_dir, select_layer=layer))(x)
        torch.testing.assert_close(chosen, ref.hidden_states[layer])
    assert not torch.allclose(ref.hidden_states[-1], ref.last_hidden_state)
    with pytest.raises(ConfigError, match="select_layer 3 is out of range for a SigLIP vision model with 2 layers"):
        build_encoder(EncoderConfig(name="siglip", model=siglip_dir, select_layer=3))
    assert not any(p.requires_grad for p in enc.parameters())


def test_siglip_preprocessing_values(siglip_dir):
    enc = build_encoder(EncoderConfig(name="siglip", model=siglip_dir))
    pre = enc.preprocessing
    assert (pre.resize, pre.crop, pre.mean, pre.std, pre.resample) == (("exact", 32, 32), None, (0.5,) * 3, (0.5,) * 3,
                                                                         "bicubic")
    levels = torch.tensor([0, 128, 255], dtype=torch.uint8).view(3, 1, 1, 1).expand(3, 32, 32, 3)
    px = enc._preprocess(levels.contiguous())  # (3, 3, 32, 32)
    assert torch.allclose(px[0], torch.tensor(-1.0)) and torch.allclose(px[2], torch.tensor(1.0))
    assert torch.allclose(px[1], torch.tensor((128 / 255 - 0.5) / 0.5), atol=1e-6)
    # no crop: a 32 x 96 frame, black | white | black in thirds, keeps all three (squashed to 32 x 32)
    img = np.zeros((1, 32, 96, 3), np.uint8)
    img[:, :, 32:64] = 255
    px = enc._preprocess(torch.from_numpy(img))[0, 0]  # (32, 32)
    assert px[:, 0].max() < -0.99 and px[:, -1].max() < -0.99 and px[:, 16].min() > 0.99


def test_siglip_matches_transformers_image_processor(tmp_path, siglip_dir):
    import shutil

    local = tmp_path / "siglip-with-processor"
    shutil.copytree(siglip_dir, local)
    reference = transformers.SiglipImageProcessor(size={"height": 32, "width": 32})
    reference.save_pretrained(local)
    enc = build_encoder(EncoderConfig(name="siglip", model=str(local)))
    same_size = smooth(32, 32)
    ours = enc._preprocess(torch.from_numpy(same_size[None]))
    ref = torch.as_tensor(np.asarray(reference(images=[same_size], return_tensors="np")["pixel_values"]))
    torch.testing.assert_close(ours, ref.float(), atol=1e-5, rtol=0)  # no resize: the same values
    resized = smooth(48, 80)
    ours = enc._preprocess(torch.from_numpy(resized[None]))
    ref = torch.as_tensor(np.asarray(reference(images=[resized], return_tensors="np")["pixel_values"])).float()
    assert ours.shape == ref.shape == (1, 3, 32, 32)
    assert (ours - ref).abs().mean() < 0.02  # PIL's and torch's bicubic differ slightly, nothing more


def test_siglip_at_another_resolution_interpolates_its_positions(tmp_path, siglip_dir):
    import shutil

    local = tmp_path / "siglip-48"
    shutil.copytree(siglip_dir, local)
    (local / "preprocessor_config.json").write_text(json.dumps({"size": {"height": 48, "width": 48}}))
    enc = build_encoder(EncoderConfig(name="siglip", model=str(local)))
    assert enc.tokens_per_frame == 36 and enc._model_inputs(torch.zeros(1, 3, 48, 48))["interpolate_pos_encoding"]
    assert enc(frames(2, 40, 60)).shape == (2, 36, 32)  # 6 x 6 patches from a model built for 4 x 4


def test_siglip_full_checkpoint_loads_its_vision_tower(tmp_path):
    torch.manual_seed(1)
    text = dict(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                max_position_embeddings=16)
    full = transformers.SiglipModel(transformers.SiglipConfig(
        text_config=text, vision_config=dict(image_size=32, patch_size=8, **TOWER)))
    path = save(full, tmp_path / "siglip-full")
    enc = build_encoder(EncoderConfig(name="siglip", model=path))
    x = frames(2, 32, 32)
    with torch.no_grad():
        ref = full.vision_model(pixel_values=enc._preprocess(torch.from_numpy(x))).last_hidden_state
    torch.testing.assert_close(enc(x), ref)


def test_a_checkpoint_of_another_family_is_one_clear_error(siglip_dir, siglip2_dir, dinov2_dir, tiny_clip_dir,
                                                             tiny_llm_dir):
    with pytest.raises(ConfigError, match=r"is a SigLIP checkpoint \(model_type 'siglip_vision_model'\), not CLIP: "
                                          r"set encoder.name to 'siglip'"):
        build_encoder(EncoderConfig(name="clip", model=siglip_dir))
    with pytest.raises(ConfigError, match="not SigLIP: set encoder.name to 'siglip2'"):
        build_encoder(EncoderConfig(name="siglip", model=siglip2_dir))
    with pytest.raises(ConfigError, match="is a CLIP checkpoint .* set encoder.name to 'clip'"):
        build_encoder(EncoderConfig(name="dinov2", model=str(tiny_clip_dir)))
    with pytest.raises(ConfigError, match="is a DINOv2 checkpoint .* set encoder.name to 'dinov2'"):
        build_encoder(EncoderConfig(name="siglip", model=dinov2_dir))
    with pytest.raises(ConfigError, match="has model_type 'llama'; the 'siglip' encoder loads siglip, "
                                          "siglip_vision_model"):
        build_encoder(EncoderConfig(name="siglip", model=str(tiny_llm_dir)))


def test_missing_model_and_bad_preprocessor_config(tmp_path, siglip_dir):
    with pytest.raises(ModelLoadError, match="cannot load SigLIP vision model .*nowhere.*no such directory"):
        build_encoder(EncoderConfig(name="siglip", model=str(tmp_path / "nowhere")))
    with pytest.raises(ConfigError, match="encoder.model must be a hub id or a local directory for the 'dinov2'"):
        build_encoder(EncoderConfig(name="dinov2"))
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(siglip_dir, bad)
    (bad / "preprocessor_config.json").write_text(json.dumps({"size": {"shortest_edge": 32}, "do_center_crop": False}))
    with pytest.raises(ModelLoadError, match="shortest-edge resize with no center crop"):
        build_encoder(EncoderConfig(name="siglip", model=str(bad)))
    (bad / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5, 0.5], "image_std": [0.5] * 3}))
    with pytest.raises(ModelLoadError, match="preprocessor_config.json: image_mean and image_std must be 3 numbers"):
        build_encoder(EncoderConfig(name="siglip", model=str(bad)))


# ------------------------------------------------------------------------------------------- DINOv2
def test_dinov2_default_preprocessing_shapes_and_layers(dinov2_dir):
    enc = build_encoder(EncoderConfig(name="dinov2", model=dinov2_dir))
    pre = enc.preprocessing
    assert (pre.resize, pre.crop, pre.mean, pre.std) == (("shortest_edge", 37), (32, 32), IMAGENET_MEAN, IMAGENET_STD)
    x = frames(2, 40, 64)
    out = enc(x)
    assert out.shape == (2, 17, 32) and enc.tokens_per_frame == 17  # CLS + 4 x 4 patches
    with torch.no_grad():
        ref = enc.model(pixel_values=enc._preprocess(torch.from_numpy(x)), output_hidden_states=True)
    torch.testing.assert_close(out, ref.last_hidden_state)
    chosen = build_encoder(EncoderConfig(name="dinov2", model=dinov2_dir, select_layer=-2))(x)
    torch.testing.assert_close(chosen, ref.hidden_states[-2])
    # values: white is (1 - mean) / std per channel; a center crop drops the black sides of a wide frame
    img = np.zeros((1, 37, 111, 3), np.uint8)
    img[:, :, 37:74] = 255
    px = enc._preprocess(torch.from_numpy(img))[0]  # (3, 32, 32)
    white = (1 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(px[:, 10:22, 10:22].mean(dim=(1, 2)), white, atol=1e-3, rtol=0)


def test_dinov2_follows_its_image_processor_config(tmp_path, dinov2_dir):
    import shutil

    local = tmp_path / "dinov2-with-processor"
    shutil.copytree(dinov2_dir, local)
    # the hub's facebook/dinov2-* preprocessor config, scaled down (256 → 27, 224 → 24)
    config = {"image_processor_type": "BitImageProcessor", "do_resize": True, "size": {"shortest_edge": 27},
              "resample": 3, "do_center_crop": True, "crop_size": {"height": 24, "width": 24}, "do_rescale": True,
              "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(IMAGENET_MEAN),
              "image_std": list(IMAGENET_STD), "do_convert_rgb": True}
    (local / "preprocessor_config.json").write_text(json.dumps(config))
    enc = build_encoder(EncoderConfig(name="dinov2", model=str(local)))
    assert enc.tokens_per_frame == 1 + 9 and enc(frames(1, 30, 40)).shape == (1, 10, 32)  # 24 px: 3 x 3 patches
    reference = transformers.AutoImageProcessor.from_pretrained(local)
    for h, w in ((27, 27), (45, 60)):  # 27: crop only (same values); 45 x 60: resize and crop
        img = smooth(h, w)
        ours = enc._preprocess(torch.from_numpy(img[None]))
        ref = torch.as_tensor(np.asarray(reference(images=[img], return_tensors="np")["pixel_values"])).float()
        assert ours.shape == ref.shape == (1, 3, 24, 24)
        if h == 27:
            torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)
        else:
            assert (ours - ref).abs().mean() < 0.03


def test_dinov2_with_registers(tmp_path):
    torch.manual_seed(0)
    config = transformers.Dinov2WithRegistersConfig(image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=4, mlp_ratio=2, num_register_tokens=2)
    path = save(transformers.Dinov2WithRegistersModel(config), tmp_path / "dinov2-reg")
    enc = build_encoder(EncoderConfig(name="dinov2", model=path))
    assert enc.tokens_per_frame == 1 + 2 + 16 and enc(frames(2, 32, 32)).shape == (2, 19, 32)


# --------------------------------------------------------------------------------------- SigLIP 2
def test_siglip2_naflex_on_a_fixed_grid_matches_its_processor(tmp_path, siglip2_dir):
    import shutil

    enc = build_encoder(EncoderConfig(name="siglip2", model=siglip2_dir))
    assert enc.preprocessing.output_size == (32, 32) and enc.preprocessing.resample == "bilinear"
    assert enc.tokens_per_frame == 16 and enc(frames(3, 40, 60)).shape == (3, 16, 32)  # 4 x 4 patches, no CLS

    local = tmp_path / "siglip2-with-processor"
    shutil.copytree(siglip2_dir, local)
    reference = transformers.Siglip2ImageProcessor(patch_size=8, max_num_patches=9)
    reference.save_pretrained(local)
    enc = build_encoder(EncoderConfig(name="siglip2", model=str(local)))
    assert enc.tokens_per_frame == 9  # a 3 x 3 grid
    img = smooth(24, 24)  # already 3 x 3 patches: the processor's patches and ours must be equal
    ref = reference(images=[img], return_tensors="pt")
    ours = enc._model_inputs(enc._preprocess(torch.from_numpy(img[None])))
    torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"].float(), atol=1e-5, rtol=0)
    assert ours["spatial_shapes"].tolist() == ref["spatial_shapes"].tolist() == [[3, 3]]
    assert ours["pixel_attention_mask"].tolist() == ref["pixel_attention_mask"].tolist()
    with torch.no_grad():
        expected = enc.model(**{k: v for k, v in ref.items()}).last_hidden_state
    torch.testing.assert_close(enc(img[None]), expected, atol=1e-5, rtol=1e-5)


# ------------------------------------------------------------------------------------ in the model
def test_a_siglip_encoder_feeds_the_abstractor(siglip_dir, tiny_llm_dir):
    from gpt4video.config import AbstractorConfig, LLMConfig, ModelConfig
    from gpt4video.modeling import GPT4Video

    config = ModelConfig(
        encoder=EncoderConfig(name="siglip", model=siglip_dir),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=16, max_frames=4, hidden_size=32, num_layers=1,
                                    num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(tiny_llm_dir), lora=None), frame_size=64)
    torch.manual_seed(0)
    model = GPT4Video.from_config(config)
    features = model.encode_frames([frames(4, 48, 64)])
    assert features.shape == (1, 4, 16, 32)
    assert model.video_embeddings(features).shape == (1, 4, 32)
    with pytest.raises(ConfigError, match="gives 16 tokens of width 32 per frame, but the abstractor expects 17"):
        GPT4Video.from_config(config.replace(abstractor=config.abstractor.replace(tokens_per_frame=17)))
