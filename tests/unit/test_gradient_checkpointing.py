"""Gradient checkpointing of the LLM (``TrainConfig.gradient_checkpointing``): its layers run again in the backward
pass, the gradients are the same, and a short training run ends with the same weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from gpt4video.config import TrainConfig
from gpt4video.errors import ConfigError
from gpt4video.modeling import GPT4Video
from gpt4video.processing import Turn
from gpt4video.training import train


def loss_and_grads(model: GPT4Video) -> tuple[torch.Tensor, dict[str, torch.Tensor], int]:
    """The loss, the trainable parameters' gradients, and how often the MLP of the LLM's first layer started."""
    video = np.random.default_rng(0).integers(0, 256, (4, 32, 32, 3), dtype=np.uint8)
    enc = model.processor.encode([Turn("user", "What color is the square?", videos=[0]), Turn("assistant", "red")],
                                 add_generation_prompt=False)
    features = model.encode_frames([video])
    params = model.trainable_parameters()
    for p in params.values():
        p.requires_grad_(True)
        p.grad = None
    calls = []
    # a pre-hook: the recomputation stops as soon as it has every tensor the backward needs, inside the MLP
    mlp = model.llm.get_base_model().model.layers[0].mlp
    hook = mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    model.train()
    try:
        out = model(input_ids=enc.input_ids[None], labels=enc.labels[None], features=features)
        out.loss.backward()
    finally:
        hook.remove()
        model.eval()
    return out.loss.detach(), {k: p.grad.clone() for k, p in params.items()}, len(calls)


def test_checkpointing_recomputes_the_layers_and_keeps_the_gradients(tiny_saved_model_dir):
    torch.manual_seed(0)
    plain_loss, plain_grads, plain_calls = loss_and_grads(GPT4Video.from_pretrained(tiny_saved_model_dir))
    model = GPT4Video.from_pretrained(tiny_saved_model_dir)
    model.enable_gradient_checkpointing()
    loss, grads, calls = loss_and_grads(model)
    assert (plain_calls, calls) == (1, 2)  # the layer ran again in the backward pass
    torch.testing.assert_close(loss, plain_loss)
    assert grads.keys() == plain_grads.keys() and any(g.abs().sum() > 0 for g in grads.values())
    for name, grad in grads.items():
        torch.testing.assert_close(grad, plain_grads[name], atol=1e-6, rtol=1e-5, msg=name)


def test_training_with_checkpointing_ends_with_the_same_weights(tiny_world, tiny_saved_model_dir, tmp_path):
    base = {"model": str(tiny_saved_model_dir), "stage": 2, "data": [{"path": str(tiny_world / "train/qa.jsonl")}],
            "max_steps": 2, "batch_size": 2, "learning_rate": 1e-2, "save_every": 2, "seed": 0}
    finals = [train(TrainConfig.from_dict({**base, "output_dir": str(tmp_path / name), "gradient_checkpointing": on}),
                    progress=False).final_dir for name, on in (("plain", False), ("checkpointed", True))]
    plain, checkpointed = (load_file(str(f / "lora/adapter_model.safetensors")) for f in finals)
    assert any(t.abs().sum() > 0 for k, t in plain.items() if "lora_B" in k)  # it trained
    for name, tensor in plain.items():
        torch.testing.assert_close(checkpointed[name], tensor, atol=1e-6, rtol=1e-5, msg=name)


def test_stage0_refuses_it():
    with pytest.raises(ConfigError, match="gradient_checkpointing is a stage 1 and 2 option"):
        TrainConfig(stage=0, data=[{"path": "x.jsonl"}], gradient_checkpointing=True)
