"""The trainer on tiny models: stages, logs, checkpoints, exact resume after SIGKILL, and 2-process DDP."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file

from gpt4video.config import TrainConfig
from gpt4video.modeling import GPT4Video
from gpt4video.training import train


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    from gpt4video.data.synthetic import build_split

    root = tmp_path_factory.mktemp("world")
    build_split(root, "train", 12, width=64, height=64, num_frames=8, progress=False)
    build_split(root, "val", 4, width=64, height=64, num_frames=8, progress=False)
    return root


@pytest.fixture(scope="module")
def start_model(tmp_path_factory, tiny_llm_dir, tiny_clip_dir):
    """An untrained tiny GPT4Video saved as a model directory, to start training from."""
    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig

    config = ModelConfig(
        encoder=EncoderConfig(name="clip", model=str(tiny_clip_dir)),
        abstractor=AbstractorConfig(encoder_dim=32, tokens_per_frame=17, max_frames=4, hidden_size=32,
                                    num_layers=1, num_heads=4, num_queries=4, output_dim=32, dropout=0.1),
        llm=LLMConfig(model=str(tiny_llm_dir), lora=LoraConfig(r=4, alpha=8, dropout=0.1)),
        frame_size=64,
    )
    torch.manual_seed(0)
    return GPT4Video.from_config(config).save_pretrained(tmp_path_factory.mktemp("start") / "model")


def make_config(world, model, out, **kw) -> dict:
    cfg = {
        "model": str(model), "stage": 1,
        "data": [{"path": str(world / "train/captions.jsonl")}, {"path": str(world / "train/qa.jsonl")}],
        "output_dir": str(out), "max_steps": 6, "batch_size": 4, "learning_rate": 3e-3, "log_every": 1,
        "save_every": 2, "seed": 1,
    }
    cfg.update(kw)
    return cfg


def weights(final: Path) -> dict[str, torch.Tensor]:
    out = {f"abstractor.{k}": v for k, v in load_file(str(final / "abstractor.safetensors")).items()}
    out.update({f"lora.{k}": v for k, v in load_file(str(final / "lora/adapter_model.safetensors")).items()})
    return out


def assert_only_the_abstractor_changed(start: Path, final: Path) -> None:
    before, after = weights(start), weights(final)
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("abstractor."))
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("lora."))


def log_rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "train_log.jsonl").read_text().splitlines()]


def test_stage1_trains_only_the_abstractor_and_writes_logs(world, start_model, tmp_path):
    cfg = TrainConfig.from_dict(make_config(world, start_model, tmp_path / "s1", feature_cache=str(tmp_path / "fc"),
                                            eval_data=[{"path": str(world / "val/qa.jsonl")}], eval_every=3))
    result = train(cfg, progress=False)
    assert_only_the_abstractor_changed(start_model, result.final_dir)
    rows = log_rows(tmp_path / "s1")
    losses = [r["loss"] for r in rows if "loss" in r]
    assert len(losses) == 6 and all(l > 0 for l in losses)
    assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]
    assert (tmp_path / "s1/loss.png").read_bytes()[:4] == b"\x89PNG"
    assert any((tmp_path / "fc").rglob("*.safetensors"))  # features were cached
    info = json.loads((result.final_dir / "training_info.json").read_text())
    assert info["stage"] == 1 and info["steps"] == 6
    assert GPT4Video.from_pretrained(result.final_dir).trained


def test_training_lowers_the_loss(world, start_model, tmp_path):
    # A random tiny LLM is near-uniform (loss ≈ ln 400); LoRA and the abstractor together can still fit it.
    cfg = TrainConfig.from_dict(make_config(world, start_model, tmp_path / "fit", stage=2, max_steps=30, log_every=5,
                                            save_every=100, learning_rate=5e-2, lr_scheduler="constant",
                                            data=[{"path": str(world / "train/qa.jsonl")}], batch_size=4))
    train(cfg, progress=False)
    losses = [json.loads(line)["loss"] for line in (tmp_path / "fit/train_log.jsonl").read_text().splitlines()]
    assert losses[-1] < losses[0] * 0.8


def test_stage2_trains_lora_and_keeps_a_frozen_abstractor(world, start_model, tmp_path):
    cfg = TrainConfig.from_dict(make_config(world, start_model, tmp_path / "s2", stage=2, train_abstractor=False,
                                            data=[{"path": str(world / "train/dialogues.jsonl")}], max_steps=3))
    result = train(cfg, progress=False)
    before, after = weights(start_model), weights(result.final_dir)
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("abstractor."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("lora.") and "lora_B" in k)


def test_stage0_grounds_video_tokens_in_caption_words_without_the_llm(world, start_model, tmp_path):
    cfg = TrainConfig.from_dict(make_config(
        world, start_model, tmp_path / "s0", stage=0, max_steps=40, log_every=10, save_every=100,
        learning_rate=1e-2, lr_scheduler="constant", batch_size=6,
        data=[{"path": str(world / "train/captions.jsonl")}, {"path": str(world / "train/qa.jsonl")}],
        eval_data=[{"path": str(world / "val/captions.jsonl")}], eval_every=40))
    result = train(cfg, progress=False)
    assert_only_the_abstractor_changed(start_model, result.final_dir)
    rows = log_rows(tmp_path / "s0")
    losses = [r["loss"] for r in rows if "loss" in r]
    assert losses[-1] < losses[0] * 0.5  # 12 clips: their captions' first words are learnable
    assert [r["step"] for r in rows if "eval_loss" in r] == [40]
    assert json.loads((result.final_dir / "training_info.json").read_text())["stage"] == 0


def test_grounding_loss_is_low_when_video_tokens_are_the_caption_words(start_model):
    from gpt4video.modeling import GROUNDING_SCALE

    model = GPT4Video.from_pretrained(start_model)
    vocab = torch.tensor([5, 9, 17, 30, 41])
    targets = torch.tensor([[0, 3, 2, -100], [4, 4, 1, 0]])  # indices into vocab; -100 past the end
    words = model.llm.get_input_embeddings().weight.detach()
    as_words = words[vocab[targets.clamp(min=0)]]  # (2, 4, D): each video token is its target word
    model.abstractor.forward = lambda features: as_words  # the abstractor's output, replaced
    features = torch.zeros(2, 1, 17, 32)
    low = model(features=features, grounding_targets=targets, grounding_vocab=vocab)
    assert low.num_tokens == 7
    shuffled = model(features=features, grounding_targets=targets.roll(1, dims=1), grounding_vocab=vocab)
    assert float(low.loss) < float(shuffled.loss)
    assert float(low.loss) < math.log(len(vocab)) < GROUNDING_SCALE


def test_grounding_loss_takes_each_captions_closest_reading(start_model):
    model = GPT4Video.from_pretrained(start_model)
    vocab = torch.tensor([5, 9, 17, 30, 41])
    spelled = torch.tensor([0, 3, 2, -100])  # what the video tokens spell
    other = torch.tensor([1, 1, 4, 4])  # another accepted reading of the same caption
    empty = torch.full((4,), -100)  # padding: a clip with fewer readings
    words = model.llm.get_input_embeddings().weight.detach()
    as_words = words[vocab[spelled.clamp(min=0)]][None]  # (1, 4, D)
    model.abstractor.forward = lambda features: as_words
    features = torch.zeros(1, 1, 17, 32)

    def loss(*readings):
        return model(features=features, grounding_targets=torch.stack(readings)[None], grounding_vocab=vocab)

    alone, first, second, padded = loss(spelled), loss(spelled, other), loss(other, spelled), loss(other, spelled, empty)
    assert alone.num_tokens == first.num_tokens == second.num_tokens == padded.num_tokens == 3
    torch.testing.assert_close(first.loss, alone.loss)  # the order of the readings does not matter
    torch.testing.assert_close(second.loss, alone.loss)
    torch.testing.assert_close(padded.loss, alone.loss)
    assert float(loss(other).loss) > float(alone.loss)  # only the farther reading: a higher loss
    # (B, Nq) targets are one reading per caption, as before
    torch.testing.assert_close(model(features=features, grounding_targets=spelled[None], grounding_vocab=vocab).loss,
                               alone.loss)


def test_grounding_dataset_keeps_every_object_order(world, start_model):
    from gpt4video.config import DataConfig
    from gpt4video.training.data import GroundingDataset, load_examples

    model = GPT4Video.from_pretrained(start_model)
    examples = load_examples([DataConfig(path=str(world / "train/captions.jsonl"))])
    dataset = GroundingDataset(examples, model.processor)
    scenes = [json.loads(line)["scene"] for line in (world / "train/scenes.jsonl").read_text().splitlines()]
    counts = [len(item.targets) for item in dataset.items]
    assert counts == [math.factorial(len(scene["objects"])) for scene in scenes]
    assert max(counts) > 1  # the fixture has clips with several objects
    batch, _ = dataset.collate([dataset.get(i, 0) for i in range(len(dataset))])
    assert batch["grounding_targets"].shape == (len(dataset), max(counts), model.processor.num_video_tokens)


def test_time_reversal_adds_each_clip_backwards_against_its_reversed_readings(world, start_model):
    from gpt4video.config import DataConfig
    from gpt4video.training.data import GroundingDataset, clip_features, load_examples

    model = GPT4Video.from_pretrained(start_model)
    examples = load_examples([DataConfig(path=str(world / "train/captions.jsonl"))])
    forwards = GroundingDataset(examples, model.processor)
    both = GroundingDataset(examples, model.processor, time_reversal=True)
    n = len(forwards)
    assert len(both) == 2 * n and [it.reversed for it in both.items] == [False] * n + [True] * n
    assert [it.targets for it in both.items[:n]] == [it.targets for it in forwards.items]
    backwards = GroundingDataset([ex for ex in examples], model.processor, vocab=both.vocab)
    rows = [json.loads(line) for line in (world / "train/captions.jsonl").read_text().splitlines()]
    tok = model.processor.tokenizer
    index = {int(t): i for i, t in enumerate(both.vocab)}
    for item, row in zip(both.items[n:], rows):  # the reversed readings, spelled in the vocab
        expected = [[index[t] for t in tok(text, add_special_tokens=False).input_ids[: backwards.num_tokens]]
                    for text in row["reversed_grounding_captions"]]
        assert item.targets == expected
    # the batch marks the reversed clips; their frames come in reverse order, the others as they are
    batch, videos = both.collate([both.get(0, 0), both.get(n, 0)])
    assert batch["time_reversed"].tolist() == [False, True] and videos[0] == videos[1]
    frames = torch.arange(4.0).view(1, 4, 1, 1).expand(1, 4, 2, 3)
    feats = clip_features(batch, videos, lambda paths: frames.expand(len(paths), 4, 2, 3).clone())
    assert "time_reversed" not in batch
    assert feats[0, :, 0, 0].tolist() == [0, 1, 2, 3] and feats[1, :, 0, 0].tolist() == [3, 2, 1, 0]
    plain, _ = forwards.collate([forwards.get(0, 0)])
    assert "time_reversed" not in plain


def test_time_reversal_needs_reversed_readings(world, start_model, tmp_path):
    from gpt4video.config import DataConfig
    from gpt4video.errors import InputError
    from gpt4video.training.data import GroundingDataset, load_examples

    path = tmp_path / "captions.jsonl"
    rows = [json.loads(line) for line in (world / "train/captions.jsonl").read_text().splitlines()]
    path.write_text("".join(json.dumps({"video": str(world / "train" / r["video"]), "caption": r["caption"]}) + "\n"
                            for r in rows))
    model = GPT4Video.from_pretrained(start_model)
    with pytest.raises(InputError, match="reversed_grounding_captions"):
        GroundingDataset(load_examples([DataConfig(path=str(path))]), model.processor, time_reversal=True)
    with pytest.raises(ValueError, match="time_reversal is a stage-0"):
        TrainConfig.from_dict(make_config(world, start_model, tmp_path / "x", stage=1, time_reversal=True))


def test_stage0_trains_with_time_reversal(world, start_model, tmp_path):
    cfg = TrainConfig.from_dict(make_config(
        world, start_model, tmp_path / "s0r", stage=0, max_steps=4, log_every=2, save_every=100, batch_size=6,
        time_reversal=True, data=[{"path": str(world / "train/captions.jsonl")}],
        eval_data=[{"path": str(world / "val/captions.jsonl")}], eval_every=4))
    result = train(cfg, progress=False)
    assert_only_the_abstractor_changed(start_model, result.final_dir)
    info = json.loads((result.final_dir / "training_info.json").read_text())
    assert info["train_examples"] == 24  # 12 clips, forwards and backwards


@pytest.mark.parametrize("reduction", ["token", "sample", "square"])
def test_loss_reduction_weighs_sequences(start_model, reduction):
    model = GPT4Video.from_pretrained(start_model)
    model.eval()
    torch.manual_seed(0)
    ids = torch.randint(5, 50, (2, 12))
    labels = torch.full_like(ids, -100)
    labels[0, 10:] = ids[0, 10:]  # a short answer: predicted at 2 positions
    labels[1, 2:] = ids[1, 2:]  # a long one: 10 positions
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels, loss_reduction=reduction)
        per_row = [model(input_ids=ids[i:i + 1], attention_mask=torch.ones_like(ids[i:i + 1]),
                         labels=labels[i:i + 1]).loss for i in range(2)]
    assert out.num_tokens == 12
    w = {"token": [2, 10], "sample": [1, 1], "square": [2 / math.sqrt(2), 10 / math.sqrt(10)]}[reduction]
    expected = (w[0] * per_row[0] + w[1] * per_row[1]) / (w[0] + w[1])
    torch.testing.assert_close(out.loss, expected, rtol=1e-4, atol=1e-5)


def test_bad_loss_reduction_and_mixed_precision_are_clear_errors(world, start_model, tmp_path):
    from gpt4video.errors import InputError

    model = GPT4Video.from_pretrained(start_model)
    ids = torch.randint(5, 50, (1, 6))
    with pytest.raises(InputError, match="loss_reduction must be one of"):
        model(input_ids=ids, labels=ids, loss_reduction="mean")
    with pytest.raises(ValueError, match="loss_reduction must be"):
        TrainConfig.from_dict(make_config(world, start_model, tmp_path / "x", loss_reduction="mean"))
    with pytest.raises(ValueError, match="mixed_precision must be"):
        TrainConfig.from_dict(make_config(world, start_model, tmp_path / "x", mixed_precision="fp8"))
    # YAML 1.1 reads a bare `no` as false
    assert TrainConfig.from_dict(make_config(world, start_model, tmp_path / "x", **yaml.safe_load(
        "mixed_precision: no"))).mixed_precision == "no"


def test_grounding_accuracy_reads_video_tokens_as_caption_words(world, start_model):
    from gpt4video.config import DataConfig
    from gpt4video.evaluation.grounding import grounding_accuracy
    from gpt4video.training.data import GroundingDataset, load_examples

    model = GPT4Video.from_pretrained(start_model)
    dataset = GroundingDataset(load_examples([DataConfig(path=str(world / "val/captions.jsonl"))]), model.processor)
    batch, videos = dataset.collate([dataset.get(i, 0) for i in range(len(dataset))])
    targets = batch["grounding_targets"][:, 0]  # (4 clips, 4 video tokens): each caption's first reading
    words = model.llm.get_input_embeddings().weight.detach()
    clip_ids = {v: i for i, v in enumerate(videos)}
    as_features = lambda paths: torch.tensor([clip_ids[p] for p in paths])  # noqa: E731 - clip indices as "features"
    tokens = words[dataset.vocab[targets.clamp(min=0)]]  # (4, 4, D): each video token is its caption word
    model.abstractor.forward = lambda ids: tokens[ids]
    perfect = grounding_accuracy(model, dataset, as_features, batch_size=3)
    assert perfect["tokens"] == {"accuracy": 1.0, "count": int((targets >= 0).sum())}
    assert all(v["accuracy"] in (1.0, None) for v in perfect["by_kind"].values())
    assert perfect["clips"] == {"accuracy": 1.0, "count": len(dataset)}
    model.abstractor.forward = lambda ids: tokens.roll(1, dims=1)[ids]
    shifted = grounding_accuracy(model, dataset, as_features)
    assert shifted["tokens"]["accuracy"] < 1.0 and shifted["clips"]["accuracy"] < 1.0


def test_stage0_without_caption_pairs_is_a_clear_error(world, start_model, tmp_path):
    from gpt4video.errors import InputError

    cfg = TrainConfig.from_dict(make_config(world, start_model, tmp_path / "s0bad", stage=0,
                                            data=[{"path": str(world / "train/qa.jsonl")}]))
    with pytest.raises(InputError, match="grounding .stage 0. needs video-caption pairs"):
        train(cfg, progress=False)


def run_cli(args: list[str], **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run(args, capture_output=True, text=True, timeout=600, env=env, **kw)


def test_sigkill_and_resume_end_with_the_same_weights(world, start_model, tmp_path):
    """Kill the run with SIGKILL after step 5 (last checkpoint: step 4), resume, compare with an unbroken run."""
    base = make_config(world, start_model, tmp_path / "unbroken", stage=2, max_steps=8, save_every=2,
                       gradient_accumulation_steps=2, group_by_length=True,
                       data=[{"path": str(world / "train/captions.jsonl")}, {"path": str(world / "train/qa.jsonl")}])
    unbroken = train(TrainConfig.from_dict(base), progress=False)

    broken_cfg = {**base, "output_dir": str(tmp_path / "broken"), "debug_kill_at_step": 5}
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump(broken_cfg))
    first = run_cli([sys.executable, "-m", "gpt4video.cli", "train", "--config", str(path), "--no-progress"])
    assert first.returncode == -9, first.stderr[-2000:]  # killed by SIGKILL
    assert not (tmp_path / "broken/final").exists()
    assert sorted(p.name for p in (tmp_path / "broken/checkpoints").iterdir()) == ["step-0000002", "step-0000004"]
    second = run_cli([sys.executable, "-m", "gpt4video.cli", "train", "--config", str(path), "--no-progress",
                      "debug_kill_at_step=null"])
    assert second.returncode == 0, second.stderr[-2000:]
    a, b = weights(unbroken.final_dir), weights(tmp_path / "broken/final")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    steps = [json.loads(line)["step"] for line in (tmp_path / "broken/train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))  # the rows after the checkpoint were rewritten, not duplicated


def test_checkpoints_are_accelerate_states_of_the_trained_weights(world, start_model, tmp_path):
    """A checkpoint is accelerate's save_state (trainable weights only) plus state.json; a run resumed from it
    through load_state ends where an unbroken one does, and a checkpoint of other weights is a clear error."""
    from safetensors import safe_open

    from gpt4video.errors import InputError

    base = make_config(world, start_model, tmp_path / "unbroken", stage=2, train_abstractor=False, max_steps=4,
                       save_every=2)
    unbroken = train(TrainConfig.from_dict(base), progress=False)
    step = tmp_path / "unbroken/checkpoints/step-0000002"
    assert sorted(p.name for p in step.iterdir()) == ["model.safetensors", "optimizer.bin", "random_states_0.pkl",
                                                     "scheduler.bin", "state.json"]
    with safe_open(str(step / "model.safetensors"), framework="pt") as f:
        saved = set(f.keys())
    assert saved and all("lora_" in name for name in saved)  # stage 2 without the abstractor: LoRA alone

    resumed = tmp_path / "resumed"
    shutil.copytree(step, resumed / "checkpoints" / step.name)
    train(TrainConfig.from_dict({**base, "output_dir": str(resumed)}), progress=False)
    a, b = weights(unbroken.final_dir), weights(resumed / "final")
    assert all(torch.equal(a[k], b[k]) for k in a)

    other = tmp_path / "other"
    shutil.copytree(step, other / "checkpoints" / step.name)
    with pytest.raises(InputError, match="trained weights are not this run's"):
        train(TrainConfig.from_dict({**base, "output_dir": str(other), "train_abstractor": True}), progress=False)


def test_group_by_length_batches_similar_lengths_and_keeps_every_example():
    from gpt4video.training.data import micro_batch_indices

    g = torch.Generator().manual_seed(0)
    lengths = tuple(int(x) for x in torch.randint(10, 300, (1000,), generator=g))
    steps = 1000 // 8

    def epoch(**kw):
        return [micro_batch_indices(1000, seed=3, micro_step=s, batch_size=4, world_size=2, rank=r, **kw)[1]
                for s in range(steps) for r in range(2)]

    def padded(batches):  # tokens a step computes: each global batch padded to its longest example
        return sum(max(lengths[i] for i in a + b) * 8 for a, b in zip(batches[::2], batches[1::2]))

    plain, grouped = epoch(), epoch(lengths=lengths)
    assert sorted(i for b in grouped for i in b) == sorted(i for b in plain for i in b) == list(range(1000))
    assert padded(grouped) < 0.75 * padded(plain)
    assert grouped == epoch(lengths=lengths)  # a pure function of (lengths, seed, epoch): resumable
    assert micro_batch_indices(1000, seed=3, micro_step=steps, batch_size=4, world_size=2, rank=0,
                               lengths=lengths)[0] == 1  # next epoch


def test_two_process_ddp_on_cpu(world, start_model, tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    assert accelerate, "accelerate's launcher is installed with the package"
    cfg = make_config(world, start_model, tmp_path / "ddp", max_steps=3, batch_size=2, save_every=2)
    path = tmp_path / "ddp.yaml"
    path.write_text(yaml.safe_dump(cfg))
    # accelerate's --cpu launcher starts one process unless MPI is installed; --multi_gpu starts the
    # processes with torchrun, and on a machine without GPUs the trainer joins them over gloo.
    result = run_cli([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                      "--mixed_precision", "no", "--dynamo_backend", "no", "-m", "gpt4video.cli", "train",
                      "--config", str(path), "--no-progress"])
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((tmp_path / "ddp/checkpoints/step-0000002/state.json").read_text())
    assert state["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "ddp/checkpoints/step-0000002").glob("random_states_*.pkl")) == ["random_states_0.pkl", "random_states_1.pkl"]
    assert (tmp_path / "ddp/final/abstractor.safetensors").is_file()
    assert "2 process(es)" in result.stderr


def test_bad_training_config_exits_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("stage: 3\ndata: [{path: x.jsonl}]\n")
    result = run_cli([sys.executable, "-m", "gpt4video.cli", "train", "--config", str(path)])
    assert result.returncode == 2 and "stage must be 0, 1 or 2" in result.stderr and "Traceback" not in result.stderr
    path.write_text("data: [{path: /no/such/file.jsonl}]\n")
    result = run_cli([sys.executable, "-m", "gpt4video.cli", "train", "--config", str(path)])
    assert result.returncode == 2 and "not found" in result.stderr


@pytest.mark.parametrize("name", ["cpu_ddp_2proc", "ddp_8gpu", "deepspeed_zero2", "deepspeed_zero3", "fsdp",
                                  "fsdp_cpu_2proc"])
def test_shipped_accelerate_configs_load(name):
    from accelerate.commands.config.config_args import load_config_from_file

    from gpt4video.modeling import package_resource

    config = load_config_from_file(str(package_resource("configs", "accelerate", f"{name}.yaml")))
    expected = {"cpu_ddp_2proc": "MULTI_GPU", "ddp_8gpu": "MULTI_GPU", "deepspeed_zero2": "DEEPSPEED",
                "deepspeed_zero3": "DEEPSPEED", "fsdp": "FSDP", "fsdp_cpu_2proc": "FSDP"}[name]
    assert str(config.distributed_type).endswith(expected)
    if name.startswith("deepspeed"):
        assert config.deepspeed_config["zero_stage"] == int(name[-1])
    if name.startswith("fsdp"):
        assert str(config.fsdp_config["fsdp_version"]) == "2"  # the trainer runs FSDP2 only


# -- word tokens: the video read as the caption words its tokens are closest to ----------------------------------


def _model_with(start_model, tmp_path, copy_weights=True, **abstractor) -> Path:
    """start_model's config (and weights, unless their shapes change) with abstractor settings changed, saved anew."""
    from dataclasses import replace

    base = GPT4Video.from_pretrained(start_model)
    config = replace(base.config, abstractor=replace(base.config.abstractor, **abstractor))
    model = GPT4Video.from_config(config)
    if copy_weights:
        model.abstractor.load_state_dict(base.abstractor.state_dict())
    return model.save_pretrained(tmp_path / "model")


def test_grounding_filler_fills_the_tokens_past_each_captions_end(world, start_model, tmp_path):
    from gpt4video.config import DataConfig
    from gpt4video.errors import InputError
    from gpt4video.processing import IGNORE_INDEX
    from gpt4video.training.data import GroundingDataset, load_examples

    model = GPT4Video.from_pretrained(_model_with(start_model, tmp_path, copy_weights=False, num_queries=64))
    examples = load_examples([DataConfig(path=str(world / "train/captions.jsonl"))])
    plain = GroundingDataset(examples, model.processor)
    filled = GroundingDataset(examples, model.processor, filler=".")
    dot = model.processor.tokenizer(".", add_special_tokens=False).input_ids[0]
    dot_index = filled.vocab.tolist().index(dot)
    for a, b in zip(plain.items, filled.items):
        for short, full in zip(a.targets, b.targets):
            assert len(short) < 64 and len(full) == 64  # every caption of the fixture fits in 64 tokens
            assert [int(filled.vocab[i]) for i in full[: len(short)]] == [int(plain.vocab[i]) for i in short]
            assert full[len(short):] == [dot_index] * (64 - len(short))
    batch, _ = filled.collate([filled.get(0, 0)])
    assert bool((batch["grounding_targets"][0, 0] != IGNORE_INDEX).all())
    with pytest.raises(InputError, match="one token"):
        GroundingDataset(examples, model.processor, filler="square circle triangle")
    with pytest.raises(ValueError, match="grounding_filler is a stage-0"):
        TrainConfig.from_dict(make_config(world, start_model, tmp_path / "x", stage=2, grounding_filler="."))


def test_stage0_records_its_vocabulary_and_word_tokens_read_as_those_words(world, start_model, tmp_path):
    from gpt4video.config import ConfigError

    cfg = TrainConfig.from_dict(make_config(world, start_model, tmp_path / "s0w", stage=0, max_steps=2, batch_size=6,
                                            save_every=100, grounding_filler=".",
                                            data=[{"path": str(world / "train/captions.jsonl")}]))
    final = train(cfg, progress=False).final_dir
    soft = GPT4Video.from_pretrained(final)
    vocabulary = soft.config.abstractor.vocabulary
    tok = soft.processor.tokenizer
    captions = [json.loads(line)["caption"] for line in (world / "train/captions.jsonl").read_text().splitlines()]
    used = {t for c in captions for t in tok(c, add_special_tokens=False).input_ids[:4]}  # 4 video tokens
    assert used <= set(vocabulary) and vocabulary == sorted(vocabulary)
    assert not soft.config.abstractor.word_tokens  # recording the words changes nothing by itself

    words_dir = _model_with(final, tmp_path, word_tokens=True, vocabulary=vocabulary)
    model = GPT4Video.from_pretrained(words_dir)
    model.abstractor.load_state_dict(soft.abstractor.state_dict())
    torch.manual_seed(0)
    features = torch.randn(2, 4, 17, 32)
    embeds = model.video_embeddings(features)  # (2, 4, 32)
    table = model.llm.get_input_embeddings().weight.detach()
    read = model.video_words(features)
    for row, text in zip(embeds, read):
        ids = [int((table - e).abs().sum(-1).argmin()) for e in row]  # each token IS a word's embedding
        assert all(torch.equal(table[i], e) for i, e in zip(ids, row.detach()))
        assert set(ids) <= set(vocabulary) and tok.decode(ids) == text
    # the nearest word by cosine similarity to the soft token
    soft_tokens = model.abstractor(features).detach()
    cos = torch.nn.functional.normalize(soft_tokens, dim=-1) @ torch.nn.functional.normalize(
        table[vocabulary], dim=-1).T
    assert torch.equal(embeds.detach(), table[torch.tensor(vocabulary)[cos.argmax(-1)]])
    # gradients pass straight through the word choice to the abstractor
    model.abstractor.zero_grad()
    (model.video_embeddings(features) * torch.randn(2, 4, 32)).sum().backward()
    assert model.abstractor.output_proj.weight.grad.abs().sum() > 0

    # stage 2 trains on them (abstractor included, through the straight-through gradient)
    cfg2 = TrainConfig.from_dict(make_config(world, words_dir, tmp_path / "s2w", stage=2, max_steps=2, save_every=100,
                                             data=[{"path": str(world / "train/qa.jsonl")}]))
    result = train(cfg2, progress=False)
    assert any(not torch.equal(a, b) for a, b in zip(weights(words_dir).values(), weights(result.final_dir).values()))
    assert GPT4Video.from_pretrained(result.final_dir).config.abstractor.vocabulary == vocabulary

    # without a vocabulary there is nothing to choose from: one clear error, before any training
    bare = _model_with(start_model, tmp_path / "bare", word_tokens=True)
    with pytest.raises(ConfigError, match="stage 0"):
        train(TrainConfig.from_dict(make_config(world, bare, tmp_path / "s2bare", stage=2)), progress=False)
    with pytest.raises(ConfigError, match="vocabulary"):
        GPT4Video.from_pretrained(bare).video_words(features)
    with pytest.raises(ConfigError, match="vocabulary"):
        from gpt4video.config import AbstractorConfig

        AbstractorConfig(vocabulary=[3, -1])


def test_grounding_filler_does_not_dilute_the_caption_words_loss(world, start_model, tmp_path):
    from gpt4video.config import DataConfig
    from gpt4video.training.data import GroundingDataset, load_examples

    model = GPT4Video.from_pretrained(_model_with(start_model, tmp_path, copy_weights=False, num_queries=64))
    examples = load_examples([DataConfig(path=str(world / "train/captions.jsonl"))])
    plain = GroundingDataset(examples, model.processor)
    filled = GroundingDataset(examples, model.processor, vocab=plain.vocab, filler=".")
    torch.manual_seed(0)
    features = torch.randn(3, 4, 17, 32)
    words, _ = plain.collate([plain.get(i, 0) for i in range(3)])
    both, _ = filled.collate([filled.get(i, 0) for i in range(3)])
    mask = both["grounding_caption_mask"]
    assert mask.shape == both["grounding_targets"].shape and bool(mask.any()) and not bool(mask.all())
    lengths = [[len(ids) for ids in item.targets] for item in plain.items[:3]]
    assert [[int(m.sum()) for m in row[: len(ls)]] for row, ls in zip(mask, lengths)] == lengths
    with torch.no_grad():
        only = model.grounding_loss(features, words["grounding_targets"], plain.vocab)
        total = model.grounding_loss(features, both["grounding_targets"], plain.vocab, mask)
        diluted = model.grounding_loss(features, both["grounding_targets"], plain.vocab)
    # same words, same count: the filler adds its cross-entropy on top, divided by the caption tokens alone
    assert total.num_tokens == only.num_tokens < diluted.num_tokens
    assert float(total.loss) > float(only.loss)
    assert math.isclose(float(total.loss) * total.num_tokens, float(diluted.loss) * diluted.num_tokens, rel_tol=1e-5)


def test_word_tokens_end_makes_every_token_after_the_first_end_word_read_as_it(start_model, tmp_path):
    from gpt4video.config import ConfigError

    model = GPT4Video.from_pretrained(start_model)
    tok = model.processor.tokenizer
    ids = [tok(w, add_special_tokens=False).input_ids[0] for w in (" red", ".", " circle", " square")]
    assert len(set(ids)) == 4
    words_dir = _model_with(start_model, tmp_path, word_tokens=True, word_tokens_end=".", vocabulary=sorted(ids))
    model = GPT4Video.from_pretrained(words_dir)
    table = model.llm.get_input_embeddings().weight.detach()
    red, dot, circle, square = ids
    spelled = torch.tensor([[red, circle, dot, square], [red, square, circle, red]])  # (2 videos, 4 tokens)
    model.abstractor.forward = lambda features: table[spelled] * 3.0  # soft tokens pointing at those words
    embeds = model.video_embeddings(torch.zeros(2, 4, 17, 32))
    expected = torch.tensor([[red, circle, dot, dot], [red, square, circle, red]])  # no end word: unchanged
    assert torch.equal(embeds, table[expected])
    assert model.video_words(torch.zeros(2, 4, 17, 32)) == [tok.decode(row.tolist()) for row in expected]
    outside = GPT4Video.from_pretrained(_model_with(start_model, tmp_path / "o", word_tokens=True, word_tokens_end=".",
                                                    vocabulary=[red, circle]))
    with pytest.raises(ConfigError, match="not in abstractor.vocabulary"):
        outside.video_embeddings(torch.zeros(1, 4, 17, 32))
    long = GPT4Video.from_pretrained(_model_with(start_model, tmp_path / "l", word_tokens=True,
                                                 word_tokens_end="red circle square", vocabulary=ids))
    with pytest.raises(ConfigError, match="one token"):
        long.video_embeddings(torch.zeros(1, 4, 17, 32))


def test_deepspeed_asked_for_where_accelerate_cannot_run_it_is_one_clear_error(monkeypatch, tmp_path):
    """accelerate runs DeepSpeed on GPUs only (FSDP runs here: the trainer shards the model itself)."""
    from accelerate.state import AcceleratorState

    from gpt4video.errors import InputError
    from gpt4video.training.trainer import Trainer

    if torch.cuda.is_available():
        pytest.skip("a GPU is here: accelerate can run DeepSpeed")
    monkeypatch.setenv("ACCELERATE_USE_DEEPSPEED", "true")
    try:
        with pytest.raises(InputError, match="the launcher asked for DeepSpeed, but accelerate runs it on CUDA GPUs "
                                             "only and torch finds none here; .*configs/accelerate/fsdp_cpu_2proc.yaml"):
            Trainer(TrainConfig(data=[{"path": str(tmp_path / "x.jsonl")}], output_dir=str(tmp_path / "run")))
    finally:
        AcceleratorState._reset_state(True)


@pytest.mark.parametrize("env, message", [
    ({"FSDP_VERSION": "1"}, "FSDP version 1 was asked for; the trainer runs FSDP2 only"),
    ({"FSDP_VERSION": "2", "FSDP_STATE_DICT_TYPE": "LOCAL_STATE_DICT"}, "fsdp_state_dict_type 'LOCAL_STATE_DICT' is not"),
])
def test_fsdp_options_the_trainer_cannot_honour_are_one_clear_error(env, message, monkeypatch):
    from gpt4video.errors import InputError
    from gpt4video.training.fsdp import take_fsdp_request

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(InputError, match=message):
        take_fsdp_request()


def test_fsdp_request_is_read_and_hidden_from_accelerate(monkeypatch):
    from gpt4video.training.fsdp import take_fsdp_request

    monkeypatch.delenv("ACCELERATE_USE_FSDP", raising=False)
    assert take_fsdp_request() is None
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("FSDP_STATE_DICT_TYPE", "FULL_STATE_DICT")
    monkeypatch.setenv("FSDP_RESHARD_AFTER_FORWARD", "false")
    options = take_fsdp_request()
    assert (options.state_dict_type, options.sharded, options.reshard_after_forward) == ("FULL_STATE_DICT", False, False)
    assert os.environ["ACCELERATE_USE_FSDP"] == "false"  # accelerate sets up a plain process group


def launch_fsdp(config_path: Path, *args: str, state_dict_type: str = "SHARDED_STATE_DICT",
                num_processes: int = 2) -> subprocess.CompletedProcess:
    """``accelerate launch`` with the shipped 2-process CPU FSDP config (state-dict type and count overridden)."""
    from gpt4video.modeling import package_resource

    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent))
    config = yaml.safe_load(package_resource("configs", "accelerate", "fsdp_cpu_2proc.yaml").read_text())
    config["fsdp_config"]["fsdp_state_dict_type"] = state_dict_type
    config["num_processes"] = num_processes
    acc_path = config_path.with_name(f"accelerate_{state_dict_type}_{num_processes}.yaml")
    acc_path.write_text(yaml.safe_dump(config))
    return run_cli([accelerate, "launch", "--config_file", str(acc_path), "-m", "gpt4video.cli", "train",
                    "--config", str(config_path), "--no-progress", *args])


def fsdp_config(world, start_model, out: Path) -> dict:
    return make_config(world, start_model, out, stage=2, train_abstractor=True, max_steps=4, batch_size=2,
                       save_every=2, gradient_accumulation_steps=2)


@pytest.fixture(scope="module")
def fsdp_unbroken(world, start_model, tmp_path_factory) -> Path:
    """The final weights of a 2-process FSDP run that was never interrupted."""
    out = tmp_path_factory.mktemp("fsdp") / "unbroken"
    path = out.with_suffix(".yaml")
    path.write_text(yaml.safe_dump(fsdp_config(world, start_model, out)))
    result = launch_fsdp(path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "2 process(es)" in result.stderr
    return out / "final"


@pytest.mark.parametrize("state_dict_type", ["SHARDED_STATE_DICT", "FULL_STATE_DICT"])
def test_two_process_fsdp_on_cpu_killed_and_resumed_ends_with_the_same_weights(world, start_model, tmp_path,
                                                                                fsdp_unbroken, state_dict_type):
    """FSDP2 over gloo: a run killed with SIGKILL after step 3 (last checkpoint: step 2) and resumed ends with the
    weights of an unbroken FSDP run; its checkpoints hold each process's shards (or the gathered state). How the
    checkpoints are written does not change the arithmetic, so one unbroken run serves both."""
    from gpt4video.training.fsdp import FULL_FILE, SHARDED_DIR

    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump({**fsdp_config(world, start_model, tmp_path / "broken"), "debug_kill_at_step": 3}))
    first = launch_fsdp(path, state_dict_type=state_dict_type)
    assert first.returncode != 0 and re.search(r"exitcode\s*:\s*-9", first.stderr), first.stderr[-3000:]  # SIGKILL
    assert not (tmp_path / "broken/final").exists()
    step = tmp_path / "broken/checkpoints/step-0000002"
    state = json.loads((step / "state.json").read_text())
    assert state == {"step": 2, "world_size": 2, "strategy": "fsdp-sharded" if state_dict_type == "SHARDED_STATE_DICT"
                     else "fsdp-full"}
    if state_dict_type == "SHARDED_STATE_DICT":
        assert sorted(p.name for p in (step / SHARDED_DIR).glob("*.distcp")) == ["__0_0.distcp", "__1_0.distcp"]
    else:
        saved = torch.load(step / FULL_FILE, weights_only=True)
        assert saved["model"] and all("lora_" in k or k.startswith("abstractor.") for k in saved["model"])
    assert not (step / "model.safetensors").exists()  # no unsharded copy of process 0's shards

    second = launch_fsdp(path, "debug_kill_at_step=null", state_dict_type=state_dict_type)
    assert second.returncode == 0, second.stderr[-3000:]
    a, b = weights(fsdp_unbroken), weights(tmp_path / "broken/final")
    start = weights(start_model)
    assert a.keys() == b.keys() == start.keys()
    assert any(not torch.equal(a[k], start[k]) for k in a if k.startswith("lora."))  # trained, whole
    assert all(a[k].shape == start[k].shape for k in a)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [row["step"] for row in log_rows(tmp_path / "broken")] == [1, 2, 3, 4]


def test_a_checkpoint_resumes_only_with_its_process_count_and_strategy(tmp_path, monkeypatch):
    """The data each process reads depends on the process count, so another count cannot continue a run exactly;
    nor can DDP continue an FSDP run (or the reverse). Both stop before a model is built, naming the checkpoint."""
    from accelerate.state import AcceleratorState

    from gpt4video.errors import InputError
    from gpt4video.training.trainer import Trainer

    step = tmp_path / "run/checkpoints/step-0000002"
    step.mkdir(parents=True)
    try:
        trainer = Trainer(TrainConfig(data=[{"path": str(tmp_path / "x.jsonl")}], output_dir=str(tmp_path / "run")))
        assert trainer.latest_checkpoint() is None  # no state.json yet: incomplete
        (step / "state.json").write_text(json.dumps({"step": 2, "world_size": 2, "strategy": "fsdp-sharded"}))
        assert trainer.latest_checkpoint() == step
        with pytest.raises(InputError, match="step-0000002 was written by 2 processes; resume it with the same "
                                             r"number \(now 1\)"):
            trainer.check_resumable(step)
        (step / "state.json").write_text(json.dumps({"step": 2, "world_size": 1, "strategy": "fsdp-sharded"}))
        with pytest.raises(InputError, match="step-0000002 was written with fsdp-sharded weights, but this launch "
                                             "uses ddp; resume it with the accelerate config that wrote it"):
            trainer.check_resumable(step)
        (step / "state.json").write_text(json.dumps({"step": 2, "world_size": 1}))  # before FSDP: DDP
        trainer.check_resumable(step)
    finally:
        AcceleratorState._reset_state(True)


@pytest.mark.parametrize("sharded", [True, False])
def test_fsdp_checkpoint_weight_names_are_read_from_either_layout(tmp_path, sharded):
    """What the resume check compares with this run's trained weights: the names in the DCP metadata or the file."""
    import torch.distributed.checkpoint as dcp

    from gpt4video.errors import InputError
    from gpt4video.training.fsdp import FULL_FILE, SHARDED_DIR, FSDPOptions, saved_weight_names
    from gpt4video.training.trainer import _check_names

    state = {"model": {"abstractor.w": torch.ones(2, 2), "llm.x.lora_A.default.weight": torch.zeros(3)},
             "optimizer": {"state": {"abstractor.w": {"exp_avg": torch.ones(2, 2)}}}}
    options = FSDPOptions("SHARDED_STATE_DICT" if sharded else "FULL_STATE_DICT")
    if sharded:
        dcp.save(state, checkpoint_id=str(tmp_path / SHARDED_DIR), no_dist=True)
    else:
        torch.save(state, tmp_path / FULL_FILE)
    names = saved_weight_names(tmp_path, options)
    assert names == {"abstractor.w", "llm.x.lora_A.default.weight"}
    _check_names(tmp_path, names, set(names))
    with pytest.raises(InputError, match="the checkpoint's trained weights are not this run's .'abstractor.w' is in "
                                         "only one of them.; was the config changed"):
        _check_names(tmp_path, names, {"llm.x.lora_A.default.weight"})


def test_two_process_fsdp_on_cpu_trains_in_bf16(world, start_model, tmp_path):
    """mixed_precision: bf16 gathers and computes the sharded weights in bfloat16 (reducing gradients in
    float32); the stored weights stay float32 and train."""
    cfg = {**fsdp_config(world, start_model, tmp_path / "bf16"), "max_steps": 2, "mixed_precision": "bf16"}
    path = tmp_path / "bf16.yaml"
    path.write_text(yaml.safe_dump(cfg))
    result = launch_fsdp(path)
    assert result.returncode == 0, result.stderr[-3000:]
    after, start = weights(tmp_path / "bf16/final"), weights(start_model)
    assert all(v.dtype == torch.float32 and torch.isfinite(v).all() for v in after.values())
    assert any(not torch.equal(after[k], start[k]) for k in after if k.startswith("lora."))
    assert all(math.isfinite(row["loss"]) for row in log_rows(tmp_path / "bf16") if "loss" in row)


def test_fresh_lora_starts_stage_2_from_a_saved_abstractor_with_new_adapters(start_model, tmp_path):
    from gpt4video.errors import ConfigError, InputError
    from gpt4video.training.trainer import build_model

    trained = GPT4Video.from_pretrained(start_model)
    with torch.no_grad():
        for name, p in trained.llm.named_parameters():
            if "lora_" in name:
                p.fill_(0.5)  # stands for trained adapters
    saved = trained.save_pretrained(tmp_path / "trained")
    data = [{"path": str(tmp_path / "x.jsonl")}]

    def lora(model):
        return {n: p.detach().clone() for n, p in model.llm.named_parameters() if "lora_" in n}

    kept = lora(build_model(TrainConfig(model=str(saved), stage=2, data=data), device=torch.device("cpu")))
    assert all(torch.all(p == 0.5) for p in kept.values())
    fresh = build_model(TrainConfig(model=str(saved), stage=2, fresh_lora=True, data=data), device=torch.device("cpu"))
    again = lora(build_model(TrainConfig(model=str(saved), stage=2, fresh_lora=True, data=data),
                             device=torch.device("cpu")))
    new = lora(fresh)
    assert all(torch.all(p == 0) for n, p in new.items() if "lora_B" in n)  # the model is its base again
    assert all(not torch.all(p == 0.5) for n, p in new.items() if "lora_A" in n)
    assert all(torch.equal(new[n], again[n]) for n in new)  # drawn from the config's seed
    for n, p in fresh.abstractor.state_dict().items():
        assert torch.equal(p, trained.abstractor.state_dict()[n])
    with pytest.raises(ConfigError, match="fresh_lora is a stage-2 option"):
        TrainConfig(model=str(saved), stage=1, fresh_lora=True, data=data)
    with pytest.raises(InputError, match="fresh_lora applies to a saved model"):
        build_model(TrainConfig(model="smol", stage=2, fresh_lora=True, data=data), device=torch.device("cpu"))
