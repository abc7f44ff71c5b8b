"""The harmful-request head's text features: a language model's mean hidden state (tiny Llama built from a
config), the head's input standardisation and linear form, and the checker reading its features from the
head's JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from gpt4video.errors import ModelLoadError
from gpt4video.safety import HarmfulRequestChecker
from gpt4video.safety.text import (
    HEAD_FILE,
    META_FILE,
    USER_TURN_TEMPLATE,
    LLMMeanEmbedder,
    TextFeatures,
    head_forward,
)
from gpt4video.safety.training.head import cached_features, train_head

TEXTS = ["What color is the square?", "Describe this video.", "How many objects are there? Which way does it move?"]


def _embedder(tiny_llm_dir, layer: int = 1) -> LLMMeanEmbedder:
    return LLMMeanEmbedder(str(tiny_llm_dir), layer, USER_TURN_TEMPLATE, max_tokens=64)


def test_llm_mean_is_the_state_after_the_layer_alone_or_in_a_batch(tiny_llm_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    batched = _embedder(tiny_llm_dir)(TEXTS, batch_size=3)
    alone = np.vstack([_embedder(tiny_llm_dir)([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, alone, rtol=1e-4, atol=1e-5)
    # The same as the whole model's hidden state after layer 1 (before the final norm), averaged.
    model = AutoModelForCausalLM.from_pretrained(tiny_llm_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_llm_dir)
    enc = tokenizer([USER_TURN_TEMPLATE.format(text=TEXTS[0])], return_tensors="pt")
    with torch.no_grad():
        reference = model(**enc, output_hidden_states=True).hidden_states[1].mean(1)[0].numpy()
    np.testing.assert_allclose(batched[0], reference, rtol=1e-4, atol=1e-5)


def test_a_layer_the_model_lacks_is_one_clear_error(tiny_llm_dir):
    with pytest.raises(ModelLoadError, match="layer 5 of .* which has 2"):
        _embedder(tiny_llm_dir, layer=5).load()
    with pytest.raises(ModelLoadError, match="unknown harmful_request feature kind 'tfidf'"):
        TextFeatures([{"kind": "tfidf"}])


def test_head_forward_standardizes_its_input():
    rng = np.random.default_rng(0)
    params = {"layers.0.weight": rng.normal(size=(3, 4)).astype(np.float32),
              "layers.0.bias": rng.normal(size=3).astype(np.float32)}
    mean, scale = rng.normal(size=4).astype(np.float32), rng.uniform(0.5, 2.0, size=4).astype(np.float32)
    x = rng.normal(size=(5, 4)).astype(np.float32)
    scaled = head_forward({**params, "input.mean": mean, "input.scale": scale}, x)
    np.testing.assert_allclose(scaled, head_forward(params, (x - mean) / scale), rtol=1e-5, atol=1e-6)


def test_a_linear_head_learns_separable_categories():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 6)).astype(np.float32) * 5 + 3  # far from zero mean and unit scale
    y = np.stack([x[:, 0] > 3, x[:, 1] > 3], axis=1).astype(np.float32)
    w = np.ones(200, np.float32)
    params, info = train_head(x[:150], y[:150], w[:150], x[150:], y[150:], w[150:], hidden=0, epochs=300,
                              lr=0.05, weight_decay=0.0, standardize=True, log=lambda m: None)
    assert set(params) == {"layers.0.weight", "layers.0.bias", "input.mean", "input.scale"}
    assert params["layers.0.weight"].shape == (2, 6)
    accuracy = ((head_forward(params, x[150:]) > 0.5) == (y[150:] > 0.5)).mean()
    assert accuracy > 0.9, (accuracy, info)


def test_checker_computes_the_features_its_head_names(tmp_path, tiny_llm_dir):
    from safetensors.numpy import save_file

    spec = {"kind": "llm_mean", "model": str(tiny_llm_dir), "layer": 2, "template": USER_TURN_TEMPLATE,
            "max_tokens": 64}
    rng = np.random.default_rng(1)
    params = {"layers.0.weight": rng.normal(size=(2, 32)).astype(np.float32), "layers.0.bias": np.zeros(2, np.float32),
              "input.mean": np.zeros(32, np.float32), "input.scale": np.ones(32, np.float32)}
    save_file(params, str(tmp_path / HEAD_FILE))
    (tmp_path / META_FILE).write_text(json.dumps({
        "format_version": 3, "categories": ["hate", "violence"], "thresholds": {"hate": 0.5, "violence": 0.5},
        "architecture": {"type": "linear", "input_dim": 32, "hidden": [], "activation": "gelu"},
        "features": [{**spec, "dim": 32}]}))
    checker = HarmfulRequestChecker(weights=tmp_path)
    expected = head_forward(params, LLMMeanEmbedder(str(tiny_llm_dir), 2, USER_TURN_TEMPLATE, 64)(TEXTS))
    np.testing.assert_allclose(checker.scores(TEXTS), expected, rtol=1e-4, atol=1e-6)


def test_cached_features_compute_each_text_once(tmp_path, tiny_llm_dir, monkeypatch):
    features = TextFeatures([{"kind": "llm_mean", "model": str(tiny_llm_dir), "layer": 1,
                              "template": USER_TURN_TEMPLATE, "max_tokens": 64}])
    first, _ = cached_features(features, TEXTS[:2], tmp_path, log=lambda m: None)
    computed = []
    real = features.part
    monkeypatch.setattr(features, "part", lambda i, texts: computed.extend(texts) or real(i, texts))
    again, dims = cached_features(features, TEXTS, tmp_path, log=lambda m: None)
    assert computed == [TEXTS[2]]  # only the new text
    np.testing.assert_allclose(again[:2], first, rtol=1e-6)
    assert again.shape == (3, 32) and dims == [32] and len(list(tmp_path.glob("llm_mean-*.npz"))) == 1
