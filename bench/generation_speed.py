"""Generation time per video: the offline "synthetic" backend, and a TINY diffusers backend per step.

1. **Offline backend**: the median over ``--renders`` prompts (captions of random scenes of the
   synthetic world, 1 to 3 objects) of ``render_video_prompt`` and saving the mp4 — what the assistant runs for each video
   prompt: draw 16 frames at 256x256, write the mp4 (h264) and its JSON sidecar.
2. **Tiny diffusers backend**: the real ``TextToVideoSDPipeline`` (ZeroScope / ModelScope family)
   behind our ``ZeroscopeGenerator``, on tiny random components built from configs (as the unit
   tests do; no download), run for 2, 4 and 8 denoising steps. Reported: time per video, time per
   step (total / steps) and the marginal cost of one step (slope of a line fitted through the three
   points, which leaves out text encoding and VAE decoding). Tiny weights make the figures a floor
   for the pipeline's own overhead, not a prediction for real checkpoints.

Usage::

    .venv/bin/python bench/generation_speed.py [--renders 20] [--repeats 3] [--json PATH]

Progress goes to stderr, the Markdown table to stdout. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import Timing, load_average, log, markdown_table, time_it  # noqa: E402

STEPS = (2, 4, 8)
PROMPT = "A red circle moves to the left on a gray background."


# ------------------------------------------------------------------------------------------------
# Offline backend


def offline_renders(n: int, size: int, num_frames: int, out_dir: Path) -> dict[str, Any]:
    """Time ``render_video_prompt`` (then saving the mp4) with the synthetic backend for the captions of ``n`` random scenes."""
    from gpt4video.data.synthetic import caption, sample_scene
    from gpt4video.generators import build_generator
    from gpt4video.pipeline import GenerationSettings, render_video_prompt

    settings = GenerationSettings(build_generator("synthetic"), num_frames=num_frames,
                                  height=size, width=size)
    prompts = [caption(sample_scene(seed)) for seed in range(n + 1)]
    settings.seed = 0
    render_video_prompt(prompts[-1], settings, None).video.save(out_dir)  # warm-up (imports, encoder start-up)
    total, generate, write = [], [], []
    for i, prompt in enumerate(prompts[:n]):
        settings.seed = i
        start = time.perf_counter()
        video = render_video_prompt(prompt, settings, None).video
        saving = time.perf_counter()
        video.save(out_dir)
        total.append(time.perf_counter() - start)
        generate.append(video.seconds)
        write.append(time.perf_counter() - saving)
    return {
        "renders": n, "size": size, "num_frames": num_frames,
        "total": Timing(total).as_dict(1000), "generate": Timing(generate).as_dict(1000),
        "write_mp4": Timing(write).as_dict(1000),
    }


# ------------------------------------------------------------------------------------------------
# Tiny diffusers backend (components as in tests/unit/test_diffusers_backends.py)


def tiny_text_to_video_pipeline() -> Any:
    """A ``TextToVideoSDPipeline`` of tiny random components: CLIP text encoder (1 layer, width 16) with
    an in-memory BPE tokenizer, a 2-block VAE and a 2-block UNet3D, DDIM scheduler."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, TextToVideoSDPipeline, UNet3DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    letters = "abcdefghijklmnopqrstuvwxyz"
    merges = [("r", "e"), ("re", "d</w>"), ("c", "i"), ("ci", "r")]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*letters, *(c + "</w>" for c in letters), ".", ".</w>", "re", "red</w>", "ci", "cir"]:
        vocab.setdefault(token, len(vocab))
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=77)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    vae = AutoencoderKL(
        block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2, up_block_types=("UpDecoderBlock2D",) * 2,
        latent_channels=4, norm_num_groups=4, layers_per_block=1, sample_size=32,
    )
    unet = UNet3DConditionModel(
        block_out_channels=(8, 16), layers_per_block=1, sample_size=16, cross_attention_dim=16, attention_head_dim=4,
        norm_num_groups=4, down_block_types=("CrossAttnDownBlock3D", "DownBlock3D"),
        up_block_types=("UpBlock3D", "CrossAttnUpBlock3D"),
    )
    scheduler = DDIMScheduler(beta_schedule="linear", clip_sample=False)
    return TextToVideoSDPipeline(unet=unet, scheduler=scheduler, vae=vae, text_encoder=text_encoder, tokenizer=tokenizer)


def tiny_diffusers(size: int, num_frames: int, repeats: int) -> dict[str, Any]:
    from gpt4video.generators import ZeroscopeGenerator

    pipe = tiny_text_to_video_pipeline()
    results: dict[str, Any] = {"size": size, "num_frames": num_frames, "pipeline": type(pipe).__name__, "steps": {}}
    medians = []
    for steps in STEPS:
        generator = ZeroscopeGenerator.from_pipeline(pipe, num_inference_steps=steps)
        timing, frames = time_it(
            lambda g=generator: g(PROMPT, num_frames=num_frames, height=size, width=size, seed=0), repeats, warmup=1)
        assert frames.shape == (num_frames, size, size, 3)
        medians.append(timing.median)
        results["steps"][str(steps)] = {**timing.as_dict(1000), "ms_per_step": timing.median * 1000 / steps}
        log(f"tiny diffusers, {steps} steps: {timing.median * 1000:.1f} ms")
    slope, intercept = np.polyfit(np.asarray(STEPS, dtype=float), np.asarray(medians), 1)
    results["marginal_ms_per_step"] = float(slope * 1000)
    results["fixed_ms"] = float(intercept * 1000)
    return results


# ------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--renders", type=int, default=20, help="offline renders to time (default 20)")
    parser.add_argument("--size", type=int, default=256, help="offline video side in pixels (default 256)")
    parser.add_argument("--frames", type=int, default=16, help="frames per video (default 16)")
    parser.add_argument("--tiny-size", type=int, default=32, help="tiny diffusers video side (default 32)")
    parser.add_argument("--tiny-frames", type=int, default=16, help="tiny diffusers frames (default 16)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per step count (default 3)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for the diffusers runs (default 1)")
    parser.add_argument("--skip-diffusers", action="store_true")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args(argv)
    if args.renders < 1 or args.repeats < 1:
        parser.error("--renders and --repeats must be >= 1")

    report: dict[str, Any] = {"load_average_before": load_average(), "time": time.strftime("%Y-%m-%d %H:%M:%S")}
    with tempfile.TemporaryDirectory(prefix="gen-speed-") as tmp:
        log(f"offline backend: {args.renders} renders of {args.frames} frames at {args.size}x{args.size} ...")
        report["offline"] = offline_renders(args.renders, args.size, args.frames, Path(tmp))
    if not args.skip_diffusers:
        try:
            import diffusers  # noqa: F401
        except ImportError:
            log("diffusers is not installed (pip install 'gpt4video[gen]'): skipping the tiny diffusers backend")
        else:
            import torch

            torch.set_num_threads(args.threads)
            log(f"tiny diffusers backend: {args.tiny_frames} frames at {args.tiny_size}x{args.tiny_size}, "
                f"steps {', '.join(map(str, STEPS))} ...")
            report["tiny_diffusers"] = tiny_diffusers(args.tiny_size, args.tiny_frames, args.repeats)
            report["tiny_diffusers"]["torch_threads"] = args.threads
    report["load_average_after"] = load_average()

    off = report["offline"]
    rows = [[
        f"synthetic (offline), {off['num_frames']} frames {off['size']}x{off['size']}, incl. mp4 + sidecar",
        "—", f"{off['total']['median']:.1f} ms",
        f"draw {off['generate']['median']:.1f} ms + mp4 {off['write_mp4']['median']:.1f} ms "
        f"(median of {off['renders']}; range {off['total']['min']:.1f}–{off['total']['max']:.1f} ms)",
    ]]
    tiny = report.get("tiny_diffusers")
    if tiny:
        for steps in STEPS:
            cell = tiny["steps"][str(steps)]
            rows.append([
                f"tiny diffusers ({tiny['pipeline']}), {tiny['num_frames']} frames {tiny['size']}x{tiny['size']}",
                str(steps), f"{cell['median']:.1f} ms", f"{cell['ms_per_step']:.1f} ms/step (total / steps)",
            ])
        rows.append(["tiny diffusers, fitted over 2/4/8 steps", "per step",
                     f"{tiny['marginal_ms_per_step']:.1f} ms/step",
                     f"+ {tiny['fixed_ms']:.1f} ms fixed (text encoder, VAE decode, set-up)"])
    print("# Generation time per video\n")
    print(markdown_table(["Backend", "Steps", "Time per video (median)", "Notes"], rows))
    print(f"\nLoad average (1/5/15 min) before: {report['load_average_before']}, after: {report['load_average_after']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=2), encoding="utf-8")
        log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
