"""Training throughput of the offline default with and without the feature cache.

Runs the same short stage-1 and stage-2 jobs twice (same data, seed and steps): once reading the frozen
encoder's features from the on-disk cache (as `make train-default` does), once decoding and encoding every
clip of every batch. The cache is filled before the timed run, so its cost is reported separately.
Prints a Markdown table of samples/s; `--json PATH` also writes the figures.

Needs the synthetic train split (`make data`). Run on an otherwise idle machine: torch uses both cores.

    python bench/train_throughput.py --steps 12
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/synth/train", help="the synthetic train split")
    parser.add_argument("--cache", default="data/feature_cache", help="the feature cache directory")
    parser.add_argument("--steps", type=int, default=12, help="timed steps per run (the first is warm-up)")
    parser.add_argument("--json", metavar="PATH")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from gpt4video.config import TrainConfig
    from gpt4video.data.feature_cache import FeatureCache
    from gpt4video.data.loaders import load_dataset
    from gpt4video.modeling import GPT4Video
    from gpt4video.training import train

    data = Path(args.data)
    files = {1: [data / "captions.jsonl", data / "qa_conversations.jsonl"],
             2: [data / "qa_conversations.jsonl", data / "dialogues.jsonl"]}
    for f in {p for ps in files.values() for p in ps}:
        if not f.is_file():
            print(f"error: {f} not found (run `make data` first)", file=sys.stderr)
            return 2

    # Fill the cache for every clip these runs can touch, and time it: the one-off cost of the cache.
    clips = sorted({v for ps in files.values() for p in ps for ex in load_dataset(p).examples for v in ex.videos})
    log(f"feature cache: {len(clips)} clips")
    cache = FeatureCache(args.cache, GPT4Video.from_pretrained("smol"))
    t0 = time.perf_counter()
    cache.precompute(clips, progress=True)
    fill_seconds = time.perf_counter() - t0

    batch = {1: 16, 2: 8}
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for stage in (1, 2):
            for cached in (True, False):
                name = f"stage {stage}, {'feature cache' if cached else 'decode + encode every batch'}"
                log(f"{name}: {args.steps} steps of {batch[stage]}")
                config = TrainConfig.from_dict({
                    "model": "smol", "stage": stage, "train_abstractor": True,
                    "data": [{"path": str(p)} for p in files[stage]],
                    "output_dir": str(Path(tmp) / f"s{stage}{'c' if cached else 'n'}"),
                    "max_steps": args.steps, "batch_size": batch[stage], "learning_rate": 1e-4,
                    "warmup_steps": 0, "log_every": 1, "save_every": args.steps + 1, "seed": 0,
                    "feature_cache": args.cache if cached else None,
                })
                result = train(config, progress=False)
                log_rows = [json.loads(x) for x in (Path(result.final_dir).parent / "train_log.jsonl").open()]
                rows = [r for r in log_rows if "loss" in r and "elapsed" in r]
                if len(rows) > 1:  # from the end of the first (warm-up) step to the end of the last
                    seconds, samples = rows[-1]["elapsed"] - rows[0]["elapsed"], batch[stage] * (len(rows) - 1)
                else:
                    seconds, samples = result.seconds, batch[stage] * result.steps
                results[name] = {"stage": stage, "feature_cache": cached, "steps": result.steps,
                                 "samples_per_second": round(samples / seconds, 3)}
                log(f"{name}: {results[name]['samples_per_second']} samples/s")

    print(f"\nfeature cache filled once: {len(clips)} clips in {fill_seconds:.1f} s "
          f"({len(clips) / max(fill_seconds, 1e-9):.1f} clips/s; already cached clips cost only a read)\n")
    print("| run | samples/s |")
    print("|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['samples_per_second']:.2f} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"cache_fill_seconds": fill_seconds, "clips": len(clips),
                                               "runs": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
