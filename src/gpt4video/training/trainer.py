"""The trainer (paper §3.3), launched with Hugging Face accelerate.

One process on a CPU, DDP or FSDP2 (fsdp.py) on several GPUs or CPU processes (gloo), DeepSpeed: the same code,
started with ``gpt4video train --config FILE`` or ``accelerate launch -m gpt4video.cli train --config FILE``.

Stage 0 (grounding, optional) trains the abstractor alone to put each clip's caption into its video
tokens, without running the LLM; stage 1 trains the abstractor with the LLM frozen; stage 2 trains LoRA
(and optionally the abstractor). A pretrained video LLM (gpt4video.vlm) trains stage 2 only: LoRA on its
language model, on the same data.
Checkpoints are accelerate's ``save_state``/``load_state`` (the trainable weights, the optimizer, the
scheduler, the gradient scaler, every process's RNG state) plus the step; the data order is a pure function
of (seed, epoch), so a resumed run — even after SIGKILL — ends with the same weights as one that was never
interrupted. The layout is in docs/training.md.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import random
import re
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..config import ModelConfig, TrainConfig
from ..errors import InputError
from ..jsonl import append_jsonl, read_jsonl, write_jsonl
from ..llm.lora import reset_lora
from ..modeling import GPT4Video, VideoBackbone, preset_config, preset_names, resolve_config
from . import fsdp
from .data import (ConversationDataset, GroundingDataset, VideoLLMConversations, clip_features, load_examples,
                   micro_batch_indices)

logger = logging.getLogger(__name__)

CHECKPOINT_RE = re.compile(r"^step-(\d+)$")
LOG_NAME = "train_log.jsonl"
STATE_NAME = "state.json"  # written last: a checkpoint without it is incomplete


@dataclass
class TrainResult:
    output_dir: Path
    final_dir: Path
    steps: int
    seconds: float
    samples_per_second: float
    final_loss: float | None


def build_model(config: TrainConfig, *, device: torch.device) -> VideoBackbone:
    """The starting model: a preset (with ``model_overrides``; untrained), a saved model directory, or a video LLM
    checkpoint (a directory or hub id, with fresh LoRA)."""
    if Path(config.model).expanduser().is_dir() or config.model not in preset_names():
        if config.model_overrides:
            raise InputError("model_overrides apply to presets only; a saved model keeps its own config")
        saved = resolve_config(config.model)
        _check_stage(saved, config)
        if config.fresh_lora and (saved.vlm is not None or saved.llm.lora is None):
            raise InputError(f"fresh_lora: model {config.model!r} has no LoRA of its own to start anew")
        model = GPT4Video.from_pretrained(config.model, device=device)
        if config.fresh_lora:
            reset_lora(model.llm, config.seed)
        return model
    if config.fresh_lora:
        raise InputError(f"fresh_lora applies to a saved model; preset {config.model!r} starts untrained anyway")
    base = preset_config(config.model).to_dict()
    merged = ModelConfig.from_dict(_deep_merge(base, config.model_overrides), where="model_overrides")
    _check_stage(merged, config)
    return GPT4Video.from_config(merged, device=device)


def _check_stage(model: ModelConfig, config: TrainConfig) -> None:
    if model.vlm is not None and config.stage != 2:
        raise InputError(f"model {config.model!r} is a pretrained video LLM ({model.vlm.model}): it has no abstractor, "
                         f"so it trains stage 2 only (LoRA on its language model), not stage {config.stage}; set stage: 2")


def _to_device(batch: dict, device: torch.device) -> dict:
    """The batch's tensors on ``device`` (a video LLM's batch also holds its conversations' turns)."""
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _deep_merge(base: dict, changes: dict) -> dict:
    out = dict(base)
    for k, v in changes.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _check_deepspeed_runs() -> None:
    """Stop when the launcher asked for DeepSpeed on a machine without a CUDA GPU: accelerate runs it on GPUs
    only, and would fail in its own words. (FSDP runs everywhere: the trainer shards the model itself.)"""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "false").lower() == "true" and not torch.cuda.is_available():
        raise InputError("the launcher asked for DeepSpeed, but accelerate runs it on CUDA GPUs only and torch "
                         "finds none here; on a machine without GPUs launch with configs/accelerate/fsdp_cpu_2proc.yaml "
                         "(FSDP over gloo) or configs/accelerate/cpu_ddp_2proc.yaml (DDP over gloo)")


def _keep_trainable_weights(models: list[torch.nn.Module], weights: list[dict], output_dir: str) -> None:
    """save_state hook: a checkpoint keeps only the weights being trained (the frozen parts are the start model's)."""
    for model, state in zip(models, weights):
        trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        for name in [name for name in state if name not in trainable]:
            del state[name]


def _check_checkpoint_weights(models: list[torch.nn.Module], input_dir: str) -> None:
    """load_state hook: the checkpoint holds exactly the weights this model trains (load_state then loads them
    with ``strict=False``, as the frozen weights are not in it)."""
    from safetensors import safe_open

    for i, model in enumerate(models):
        path = Path(input_dir) / (f"model_{i}.safetensors" if i else "model.safetensors")
        with safe_open(str(path), framework="pt") as f:
            saved = set(f.keys())
        _check_names(input_dir, saved, {name for name, p in model.named_parameters() if p.requires_grad})


def _check_names(where: str | Path, saved: set[str], trainable: set[str]) -> None:
    if saved != trainable:
        odd = sorted(saved - trainable) or sorted(trainable - saved)
        raise InputError(f"{where}: the checkpoint's trained weights are not this run's "
                         f"({odd[0]!r} is in only one of them); was the config changed?")


def set_trainable(model: VideoBackbone, config: TrainConfig) -> list[str]:
    """Freeze everything but what this stage trains; returns the trainable parameter names."""
    for p in model.parameters():
        p.requires_grad_(False)
    names = []
    for name, p in model.trainable_parameters().items():
        is_lora = name.startswith("llm.")
        train = (config.stage == 2 and is_lora) or (not is_lora and config.train_abstractor)
        if train:
            p.requires_grad_(True)
            names.append(name)
    if not names:
        raise InputError("nothing to train: stage 2 needs LoRA in the model config or train_abstractor: true")
    return names


class FeatureSource:
    """Frame features for a list of clip paths: from the on-disk cache, or decoded and encoded each time."""

    def __init__(self, model: VideoBackbone, cache_dir: str | None) -> None:
        self.model = model
        self.cache = None
        self.unflatten = None
        if cache_dir:
            from ..data.feature_cache import FeatureCache

            if isinstance(model, GPT4Video):
                self.cache = FeatureCache(cache_dir, model)
            else:
                # A video LLM's "features" are the frames it sees (its vision tower runs in its forward):
                # (V, T, S, S, 3) uint8, kept in the cache's (V, T, N, D) layout as (V, T, S·S, 3).
                size = model.processor.image_size
                self.cache = FeatureCache(cache_dir, lambda clips: model.encode_frames(clips).flatten(2, 3),
                                          identity=model.frames_identity, sampling=model.processor.sampling,
                                          device=model.device)
                self.unflatten = (size, size)

    def precompute(self, paths: list[str], *, progress: bool) -> None:
        if self.cache is not None and paths:
            self.cache.precompute(sorted(set(paths)), progress=progress)

    def __call__(self, paths: list[str]) -> torch.Tensor | None:
        if not paths:
            return None
        if self.cache is not None:
            features = self.cache.get_many(paths)  # (V, T, N, D)
            return features.unflatten(2, self.unflatten) if self.unflatten else features
        clips = [self.model.processor.load_video(p).frames for p in paths]
        return self.model.encode_frames(clips)


class Trainer:
    def __init__(self, config: TrainConfig, *, progress: bool = True) -> None:
        from accelerate import Accelerator
        from accelerate.utils import DistributedDataParallelKwargs

        self.config = config
        self.progress = progress
        _check_deepspeed_runs()
        # FSDP is ours to apply (fsdp.py): accelerate sees a plain process group and never wraps the model.
        self.fsdp = fsdp.take_fsdp_request()
        handlers: list = [DistributedDataParallelKwargs(find_unused_parameters=False)]
        if self.fsdp is not None and torch.cuda.is_available():
            from accelerate.utils import InitProcessGroupKwargs

            # Gathered states travel through the CPU: give the group a gloo side besides NCCL.
            handlers.append(InitProcessGroupKwargs(backend="cuda:nccl,cpu:gloo"))
        # With no GPU, processes started by a launcher (accelerate launch --multi_gpu, torchrun) form a
        # CPU process group over gloo; accelerate only does that when told it runs on the CPU.
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(),
            mixed_precision=config.mixed_precision,
            step_scheduler_with_optimizer=False,  # one scheduler step per optimizer step, whatever the world size
            kwargs_handlers=handlers,
        )
        self.accelerator.register_save_state_pre_hook(_keep_trainable_weights)
        self.accelerator.register_load_state_pre_hook(_check_checkpoint_weights)
        self.output_dir = Path(config.output_dir).expanduser()
        self.checkpoint_dir = self.output_dir / "checkpoints"

    # -- set-up -----------------------------------------------------------------------------------
    def _seed(self, seed: int) -> None:
        seed = seed + self.accelerator.process_index
        random.seed(seed)
        np.random.seed(seed % 2**32)
        torch.manual_seed(seed)

    # -- checkpoints ------------------------------------------------------------------------------
    def latest_checkpoint(self) -> Path | None:
        if not self.checkpoint_dir.is_dir():
            return None
        done = [(int(m.group(1)), p) for p in self.checkpoint_dir.iterdir()
                if (m := CHECKPOINT_RE.match(p.name)) and (p / STATE_NAME).is_file()]
        return max(done)[1] if done else None

    @property
    def strategy(self) -> str:
        """How the weights are held, as state.json records it: ``ddp`` (whole on every process) or FSDP's."""
        if self.fsdp is None:
            return "ddp"
        return "fsdp-sharded" if self.fsdp.sharded else "fsdp-full"

    def save_checkpoint(self, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> None:
        """accelerate's state of what it prepared (with FSDP: the scheduler and the RNG states) plus, with FSDP,
        the trained weights and optimizer state, sharded or gathered; written whole or not at all."""
        acc = self.accelerator
        final = self.checkpoint_dir / f"step-{step:07d}"
        tmp = self.checkpoint_dir / f".step-{step:07d}.tmp"
        if acc.is_main_process:
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir(parents=True)
        acc.wait_for_everyone()
        acc.save_state(str(tmp))
        if self.fsdp is not None:
            fsdp.save_state(model, optimizer, tmp, self.fsdp, is_main=acc.is_main_process)
        acc.wait_for_everyone()
        if acc.is_main_process:
            (tmp / STATE_NAME).write_text(json.dumps({"step": step, "world_size": acc.num_processes,
                                                      "strategy": self.strategy}))
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)  # the checkpoint appears whole or not at all
            kept = sorted((int(m.group(1)), p) for p in self.checkpoint_dir.iterdir()
                          if (m := CHECKPOINT_RE.match(p.name)))
            for _, old in kept[: -self.config.save_total_limit]:
                shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()

    def check_resumable(self, path: Path) -> None:
        """Stop, before any model is built, when this launch cannot continue the checkpoint's run exactly."""
        state = json.loads((path / STATE_NAME).read_text())
        # Each process's share of the data is a function of the world size, so another count cannot
        # continue the same run exactly.
        if state["world_size"] != self.accelerator.num_processes:
            raise InputError(
                f"{path} was written by {state['world_size']} processes; resume it with the same number "
                f"(now {self.accelerator.num_processes})"
            )
        saved = state.get("strategy", "ddp")
        if saved != self.strategy:
            raise InputError(f"{path} was written with {saved} weights, but this launch uses {self.strategy}; "
                             "resume it with the accelerate config that wrote it")

    def load_checkpoint(self, path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
        """Restore the model, optimizer and scheduler and this process's RNG state; returns the step."""
        self.check_resumable(path)
        state = json.loads((path / STATE_NAME).read_text())
        self.accelerator.load_state(str(path), strict=False)  # a checkpoint holds only the trainable weights
        if self.fsdp is not None:
            _check_names(path, fsdp.saved_weight_names(path, self.fsdp),
                         {n for n, p in model.named_parameters() if p.requires_grad})
            fsdp.load_state(model, optimizer, path, self.fsdp)
        return int(state["step"])

    # -- logging ----------------------------------------------------------------------------------
    def _log(self, row: dict) -> None:
        if self.accelerator.is_main_process:
            append_jsonl(self.output_dir / LOG_NAME, [row])

    def _truncate_log(self, step: int) -> None:
        """On resume, forget log rows written after the checkpoint (they will be written again)."""
        path = self.output_dir / LOG_NAME
        if not self.accelerator.is_main_process or not path.is_file():
            return
        write_jsonl(path, [row for row in read_jsonl(path, what="log row") if row.get("step", 0) <= step])

    # -- the loop ---------------------------------------------------------------------------------
    def train(self) -> TrainResult:
        from transformers import get_scheduler

        cfg = self.config
        acc = self.accelerator
        self.output_dir.mkdir(parents=True, exist_ok=True)
        resume = self.latest_checkpoint()
        if resume is not None:
            self.check_resumable(resume)
        if self.fsdp is not None and acc.num_processes < 2:
            raise InputError("FSDP shards the model across processes, but this launch started one; launch two "
                             "or more (num_processes), or train without FSDP")
        if acc.is_main_process:
            cfg.to_yaml(self.output_dir / "train_config.yaml")
        self._seed(cfg.seed)
        model = build_model(cfg, device=acc.device)
        trainable = set_trainable(model, cfg)
        if cfg.gradient_checkpointing:
            model.enable_gradient_checkpointing()
        model.train()

        train_set: ConversationDataset | GroundingDataset | VideoLLMConversations
        eval_set: ConversationDataset | GroundingDataset | VideoLLMConversations | None = None
        if not isinstance(model, GPT4Video):  # a pretrained video LLM: stage 2 (checked in build_model)
            train_set = VideoLLMConversations(load_examples(cfg.data), model.processor, max_length=cfg.max_length,
                                              seed=cfg.seed)
            if cfg.eval_data:
                eval_set = VideoLLMConversations(load_examples(cfg.eval_data, what="evaluation"), model.processor,
                                                 max_length=cfg.max_length, seed=cfg.seed)
        elif cfg.stage == 0:
            ac = model.config.abstractor
            if ac.word_tokens and cfg.grounding_filler is None and ac.word_tokens_end is None:
                logger.warning("abstractor.word_tokens is on but neither grounding_filler nor abstractor.word_tokens_end "
                               "is set: video tokens past a caption's end are not trained and will read as arbitrary words")
            train_set = GroundingDataset(load_examples(cfg.data), model.processor, time_reversal=cfg.time_reversal,
                                         filler=cfg.grounding_filler)
            if cfg.eval_data:
                eval_set = GroundingDataset(load_examples(cfg.eval_data, what="evaluation"), model.processor,
                                            vocab=train_set.vocab, filler=cfg.grounding_filler)
            # The words the video tokens were taught (with those of any earlier stage 0), saved with the model:
            # what `abstractor.word_tokens` chooses from, and what `GPT4Video.video_words` decodes against.
            ac.vocabulary = sorted(set(ac.vocabulary or []) | {int(t) for t in train_set.vocab})
        else:
            if model.config.abstractor.word_tokens:
                model.word_vocabulary()  # a missing or unusable vocabulary fails here, before any training
            train_set = ConversationDataset(load_examples(cfg.data), model.processor, max_length=cfg.max_length,
                                            seed=cfg.seed)
            if cfg.eval_data:
                eval_set = ConversationDataset(load_examples(cfg.eval_data, what="evaluation"), model.processor,
                                               max_length=cfg.max_length, seed=cfg.seed)
        features = FeatureSource(model, cfg.feature_cache)
        if acc.is_main_process:
            paths = [v for ex in train_set.examples for v in ex.videos]
            if eval_set is not None:
                paths += [v for ex in eval_set.examples for v in ex.videos]
            features.precompute(paths, progress=self.progress)
        acc.wait_for_everyone()

        world, rank = acc.num_processes, acc.process_index
        lengths = tuple(train_set.lengths) if cfg.group_by_length and not isinstance(train_set, GroundingDataset) else None
        micro_per_epoch = len(train_set) // (cfg.batch_size * world)
        if micro_per_epoch == 0:
            raise InputError(f"{len(train_set)} examples are fewer than one batch of {cfg.batch_size} × {world}")
        steps_per_epoch = max(1, micro_per_epoch // cfg.gradient_accumulation_steps)
        total_steps = cfg.max_steps or steps_per_epoch * cfg.num_epochs

        if self.fsdp is not None:
            fsdp.shard_model(model, self.fsdp, acc.device, bf16=acc.mixed_precision == "bf16")  # before the optimizer: it takes the sharded weights
        params = [p for p in model.parameters() if p.requires_grad]
        decay = [p for p in params if p.ndim >= 2]
        no_decay = [p for p in params if p.ndim < 2]
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
        )
        scheduler = get_scheduler(cfg.lr_scheduler, optimizer, num_warmup_steps=cfg.warmup_steps,
                                  num_training_steps=total_steps)
        # DDP / DeepSpeed wrapping, as the launcher configured; the data sharding stays ours. With FSDP the
        # model is already sharded and accelerate keeps only the scheduler (and the RNG states).
        if self.fsdp is None:
            ddp_model, optimizer, scheduler = acc.prepare(model, optimizer, scheduler)
        else:
            ddp_model, scheduler = model, acc.prepare(scheduler)
        start_step = 0
        if resume is not None:
            start_step = self.load_checkpoint(resume, model, optimizer)
            self._truncate_log(start_step)
            logger.info("resumed from %s (step %d)", resume, start_step)
        elif acc.is_main_process:
            (self.output_dir / LOG_NAME).unlink(missing_ok=True)

        if acc.is_main_process:
            n_params = sum(p.numel() for p in params)
            logger.info("stage %d: training %d tensors (%.2f M parameters) on %d examples, %d steps, %d process(es)",
                        cfg.stage, len(trainable), n_params / 1e6, len(train_set), total_steps, world)
        bar = None
        if self.progress and acc.is_main_process:
            from tqdm.auto import tqdm

            bar = tqdm(total=total_steps, initial=start_step, desc=f"stage {cfg.stage}", unit="step", dynamic_ncols=True)

        t_start = time.perf_counter()
        window_t, window_samples, window_loss, window_n = time.perf_counter(), 0, 0.0, 0
        last_loss = None
        samples_done = 0
        for step in range(start_step, total_steps):
            for micro in range(cfg.gradient_accumulation_steps):
                micro_step = step * cfg.gradient_accumulation_steps + micro
                epoch, idx = micro_batch_indices(len(train_set), seed=cfg.seed, micro_step=micro_step,
                                                 batch_size=cfg.batch_size, world_size=world, rank=rank,
                                                 lengths=lengths)
                batch, videos = train_set.collate([train_set.get(i, epoch) for i in idx])
                batch = _to_device(batch, acc.device)
                feats = clip_features(batch, videos, features)
                sync = micro == cfg.gradient_accumulation_steps - 1
                if self.fsdp is not None:
                    ddp_model.set_requires_gradient_sync(sync)  # FSDP2: reduce-scatter on the last micro-batch
                    ctx = contextlib.nullcontext()
                else:
                    ctx = acc.no_sync(ddp_model) if not sync and world > 1 else contextlib.nullcontext()
                if cfg.stage != 0:
                    batch["loss_reduction"] = cfg.loss_reduction
                with ctx, acc.autocast():
                    out = ddp_model(**batch, features=feats)
                    loss = out.loss / cfg.gradient_accumulation_steps
                    acc.backward(loss)
                window_loss += float(out.loss.detach())
                window_n += 1
                window_samples += len(idx) * world
                samples_done += len(idx) * world
            grad_norm = (fsdp.clip_grad_norm(params, cfg.max_grad_norm) if self.fsdp is not None
                         else acc.clip_grad_norm_(params, cfg.max_grad_norm))
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            done = step + 1
            if bar is not None:
                bar.update(1)
            if done % cfg.log_every == 0 or done == total_steps:
                mean_loss = acc.reduce(torch.tensor(window_loss / max(window_n, 1), device=acc.device), "mean").item()
                elapsed = time.perf_counter() - window_t
                row = {"step": done, "epoch": epoch, "loss": round(mean_loss, 6), "lr": scheduler.get_last_lr()[0],
                       "grad_norm": float(grad_norm), "samples_per_second": round(window_samples / elapsed, 3),
                       "elapsed": round(time.perf_counter() - t_start, 2)}
                self._log(row)
                last_loss = mean_loss
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4f}", lr=f"{row['lr']:.2e}")
                window_t, window_samples, window_loss, window_n = time.perf_counter(), 0, 0.0, 0
            if eval_set is not None and cfg.eval_every and (done % cfg.eval_every == 0 or done == total_steps):
                self._log({"step": done, "eval_loss": self.evaluate(model, eval_set, features)})
                model.train()
            if done % cfg.save_every == 0 and done < total_steps:
                self.save_checkpoint(done, model, optimizer)
                if acc.is_main_process:
                    from .plotting import plot_loss_curve

                    plot_loss_curve(self.output_dir / LOG_NAME, self.output_dir / "loss.png")
            if cfg.debug_kill_at_step is not None and done == cfg.debug_kill_at_step:
                os.kill(os.getpid(), signal.SIGKILL)  # fault injection for the resume test
        if bar is not None:
            bar.close()
        seconds = time.perf_counter() - t_start
        acc.wait_for_everyone()
        final_dir = self.output_dir / "final"
        if self.fsdp is not None:
            model = self._gathered(model)
        if acc.is_main_process:
            from .plotting import plot_loss_curve

            info = {"stage": cfg.stage, "steps": total_steps, "seconds_this_run": round(seconds, 2),
                    "samples_per_second": round(samples_done / seconds, 3) if seconds > 0 else None,
                    "final_loss": last_loss, "processes": world, "train_examples": len(train_set)}
            model.eval()
            model.save_pretrained(final_dir, info=info)
            plot_loss_curve(self.output_dir / LOG_NAME, self.output_dir / "loss.png")
        acc.wait_for_everyone()
        # A process group left to the interpreter's exit can abort the process as gloo's threads are torn down
        # ("terminate called without an active exception"): every process closes it here, after the last barrier.
        acc.end_training()
        return TrainResult(self.output_dir, final_dir, total_steps, seconds,
                           samples_done / seconds if seconds > 0 else 0.0, last_loss)

    def _gathered(self, model: VideoBackbone) -> VideoBackbone:
        """The sharded model whole, on the main process's CPU (to save); the sharded model elsewhere."""
        weights = fsdp.gather_weights(model)  # every process takes part
        if not self.accelerator.is_main_process:
            return model
        whole = GPT4Video.from_config(model.config, device=torch.device("cpu"))
        whole.load_state_dict(weights, strict=True)
        return whole

    @torch.no_grad()
    def evaluate(self, model: VideoBackbone, dataset: ConversationDataset | GroundingDataset | VideoLLMConversations,
                 features: FeatureSource) -> float:
        """Mean loss over the evaluation set (each process takes its share; the means are averaged)."""
        model.eval()
        acc = self.accelerator
        indices = list(range(acc.process_index, len(dataset), acc.num_processes))
        total, count = 0.0, 0
        bs = self.config.batch_size
        for start in range(0, len(indices), bs):
            batch, videos = dataset.collate([dataset.get(i, 0) for i in indices[start : start + bs]])
            batch = _to_device(batch, acc.device)
            total += float(model(**batch, features=clip_features(batch, videos, features)).loss)
            count += 1
        mean = torch.tensor(total / max(count, 1), device=acc.device)
        return round(acc.reduce(mean, "mean").item(), 6)


def train(config: TrainConfig, *, progress: bool = True) -> TrainResult:
    return Trainer(config, progress=progress).train()


def steps_summary(result: TrainResult) -> str:
    return (f"trained {result.steps} steps in {result.seconds:.1f} s ({result.samples_per_second:.2f} samples/s); "
            f"final loss {result.final_loss:.4f}; model saved to {result.final_dir}"
            if result.final_loss is not None and not math.isnan(result.final_loss)
            else f"trained {result.steps} steps; model saved to {result.final_dir}")
