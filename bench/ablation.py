"""Ablation of the video abstractor: does motion need the temporal branch and its frame-index embeddings?

Trains three variants of the `smol` model under one short protocol (LoRA + abstractor from scratch on the
synthetic world's question conversations, same data, seed and steps) and measures QA accuracy on held-out
validation clips, by question type, motion first:

- full: spatial + temporal queries, patch- and frame-index embeddings (the design)
- no_temporal_positions: as full, without the frame-index embeddings (frame order is invisible)
- spatial_only: spatial queries only (with patch-index embeddings), no temporal branch

Needs the synthetic splits: `gpt4video data synthetic --out data/synth --split train --num-clips 2000` and
the same with `--split val --num-clips 200`. Prints a Markdown table; `--json PATH` also writes the figures.

    python bench/ablation.py --steps 150 --max-qa 700
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

VARIANTS = {
    "full": {},
    "no_temporal_positions": {"temporal_position": False},
    "spatial_only": {"use_temporal_queries": False},
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synth", help="root of the synthetic splits")
    parser.add_argument("--out", default="runs/ablation", help="where the three runs go")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-qa", type=int, default=700, help="validation questions per variant (spread over types)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from gpt4video.config import TrainConfig
    from gpt4video.evaluation import evaluate_split
    from gpt4video.modeling import GenerationParams, GPT4Video
    from gpt4video.training import train

    data = Path(args.data)
    results = {}
    for name in args.variants:
        print(f"[{name}] training {args.steps} steps", file=sys.stderr, flush=True)
        config = TrainConfig.from_dict({
            "model": "smol", "model_overrides": {"abstractor": VARIANTS[name]}, "stage": 2, "train_abstractor": True,
            "data": [{"path": str(data / "train/qa_conversations.jsonl")}],
            "output_dir": str(Path(args.out) / name), "max_steps": args.steps, "batch_size": args.batch_size,
            "learning_rate": 5e-4, "warmup_steps": 20, "lr_scheduler": "cosine", "log_every": 10,
            "save_every": max(args.steps, 1), "seed": 0, "feature_cache": str(Path(args.data).parent / "feature_cache"),
        })
        t0 = time.perf_counter()
        result = train(config, progress=True)
        train_seconds = time.perf_counter() - t0
        model = GPT4Video.from_pretrained(result.final_dir)
        print(f"[{name}] evaluating on {args.max_qa} validation questions", file=sys.stderr, flush=True)
        scores = evaluate_split(model, data / "val", max_qa=args.max_qa, max_captions=0, max_generation=0,
                                params=GenerationParams(max_new_tokens=8), progress=True)
        qa = scores["qa"]
        results[name] = {"overrides": VARIANTS[name], "train_seconds": round(train_seconds, 1),
                         "final_loss": result.final_loss, "qa": qa}
    print("\n| variant | abstractor change | motion | color | shape | count | existence | overall | final loss |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        by = r["qa"]["by_type"]
        cells = [f"{by[t]['accuracy_exact']:.3f}" if t in by else "n/a"
                 for t in ("motion", "color", "shape", "count", "existence")]
        change = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "none (the design)"
        print(f"| {name} | {change} | " + " | ".join(cells)
              + f" | {r['qa']['overall']['accuracy_exact']:.3f} | {r['final_loss']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
