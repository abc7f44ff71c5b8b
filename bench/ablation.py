"""Ablation of the video abstractor: what do motion words need from it?

Trains variants of the `smol` abstractor under one protocol (same data, seed and steps) and measures, on
held-out validation clips, how often each variant's video tokens spell the right colour, shape and
motion words of the clip's caption (`--protocol grounding`, the default: training stage 0, no LLM in the
loop, a few minutes a variant), or the QA accuracy by question type after a short stage-2 run
(`--protocol qa`: LoRA + abstractor from scratch on the question conversations; far slower).

- full: spatial + temporal queries, each seeing the patch and the frame of every feature (the design)
- separate_positions: as the paper's figure: the spatial branch sees only patches, the temporal only frames
- no_temporal_positions: as full, without the frame-index embeddings (frame order is invisible)
- spatial_only: spatial queries only (with both positions), no temporal branch

Each variant's result is written to OUT/<variant>/result.json as soon as it is measured, and a variant
whose result is there is not run again (delete the file to redo it). Needs the synthetic splits
(`make data`). Prints a Markdown table; `--json PATH` also writes all figures.

    python bench/ablation.py                     # grounding, 600 steps of 64 clips per variant
    python bench/ablation.py --protocol qa --steps 150 --max-qa 700
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
    "separate_positions": {"joint_positions": False},
    "no_temporal_positions": {"temporal_position": False},
    "spatial_only": {"use_temporal_queries": False},
}
KINDS = ("motion", "color", "shape")


def _train(name: str, args: argparse.Namespace, out: Path, **settings):  # noqa: ANN003, ANN202
    """Train one variant under the protocol's settings → (TrainResult, seconds, the trained model)."""
    from gpt4video.config import TrainConfig
    from gpt4video.modeling import GPT4Video
    from gpt4video.training import train

    config = TrainConfig.from_dict({
        "model": "smol", "model_overrides": {"abstractor": VARIANTS[name]}, "output_dir": str(out),
        "max_steps": args.steps, "lr_scheduler": "cosine", "log_every": 20, "save_every": max(args.steps, 1),
        "seed": 0, "feature_cache": args.feature_cache, **settings,
    })
    t0 = time.perf_counter()
    result = train(config, progress=True)
    return result, time.perf_counter() - t0, GPT4Video.from_pretrained(result.final_dir)


def run_grounding(name: str, args: argparse.Namespace, out: Path) -> dict:
    from gpt4video.config import DataConfig
    from gpt4video.data.feature_cache import FeatureCache
    from gpt4video.evaluation.grounding import grounding_accuracy
    from gpt4video.training.data import GroundingDataset, load_examples

    data = Path(args.data)
    result, seconds, model = _train(name, args, out, stage=0, data=[{"path": str(data / "train/captions.jsonl")}],
                                    batch_size=args.batch_size or 64, learning_rate=1e-3, warmup_steps=30)
    train_set = GroundingDataset(load_examples([DataConfig(path=str(data / "train/captions.jsonl"))]), model.processor)
    val_set = GroundingDataset(load_examples([DataConfig(path=str(data / "val/captions.jsonl"))], what="evaluation"),
                               model.processor, vocab=train_set.vocab)
    cache = FeatureCache(args.feature_cache, model)
    scores = grounding_accuracy(model, val_set, cache.get_many)
    return {"protocol": "grounding", "overrides": VARIANTS[name], "steps": args.steps,
            "train_seconds": round(seconds, 1), "final_loss": result.final_loss,
            "overall": scores["tokens"]["accuracy"],
            "by_kind": {k: v["accuracy"] for k, v in scores["by_kind"].items()}, "counts": scores}


def run_qa(name: str, args: argparse.Namespace, out: Path) -> dict:
    from gpt4video.evaluation import evaluate_split
    from gpt4video.modeling import GenerationParams

    data = Path(args.data)
    result, seconds, model = _train(name, args, out, stage=2, train_abstractor=True,
                                    data=[{"path": str(data / "train/qa_conversations.jsonl")}],
                                    batch_size=args.batch_size or 8, learning_rate=5e-4, warmup_steps=20)
    print(f"[{name}] evaluating on {args.max_qa} validation questions", file=sys.stderr, flush=True)
    qa = evaluate_split(model, data / "val", max_qa=args.max_qa, max_captions=0, max_generation=0, max_images=0,
                        max_narration=0, max_sounds=0, params=GenerationParams(max_new_tokens=8),
                        progress=True)["qa"]
    by = qa["by_type"]
    return {"protocol": "qa", "overrides": VARIANTS[name], "steps": args.steps, "train_seconds": round(seconds, 1),
            "final_loss": result.final_loss, "overall": qa["overall"]["accuracy_exact"],
            "by_kind": {t: by[t]["accuracy_exact"] if t in by else None for t in (*KINDS, "count", "existence")},
            "qa": qa}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synth", help="root of the synthetic splits")
    parser.add_argument("--feature-cache", default="data/feature_cache")
    parser.add_argument("--out", default="runs/ablation", help="one directory per protocol and variant goes here")
    parser.add_argument("--protocol", choices=["grounding", "qa"], default="grounding")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch-size", type=int, default=None, help="default 64 (grounding) or 8 (qa)")
    parser.add_argument("--max-qa", type=int, default=700, help="qa protocol: validation questions per variant")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    results = {}
    for name in args.variants:
        out = Path(args.out) / args.protocol / name
        done = out / "result.json"
        if done.is_file():
            results[name] = json.loads(done.read_text())
            print(f"[{name}] already measured: {done}", file=sys.stderr, flush=True)
            continue
        print(f"[{name}] {args.protocol}: training {args.steps} steps", file=sys.stderr, flush=True)
        results[name] = (run_grounding if args.protocol == "grounding" else run_qa)(name, args, out)
        done.write_text(json.dumps(results[name], indent=2))
        print(f"[{name}] {json.dumps({k: results[name][k] for k in ('overall', 'by_kind')})}", file=sys.stderr,
              flush=True)

    what = "caption words spelled right" if args.protocol == "grounding" else "QA accuracy"
    print(f"\n{what} on validation clips ({args.protocol} protocol, {args.steps} steps)\n")
    print("| variant | abstractor change | " + " | ".join(KINDS) + " | overall | final loss |")
    print("|---|---|" + "---|" * (len(KINDS) + 2))
    for name, r in results.items():
        cells = [f"{r['by_kind'][k]:.3f}" if r["by_kind"].get(k) is not None else "n/a" for k in KINDS]
        change = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "none (the design)"
        print(f"| {name} | {change} | " + " | ".join(cells) + f" | {r['overall']:.3f} | {r['final_loss']:.3f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
