"""How well a trained model's video tokens spell each validation clip's caption (what stage 0 trains),
overall and by the number of objects in the clip: per word kind, per token, and the share of clips spelled
wholly right.

Uses :func:`gpt4video.evaluation.grounding.grounding_accuracy` (a caption with several accepted readings,
``grounding_captions``, is scored against the one the clip's tokens spell best) on a synthetic split's
``captions.jsonl``, with the training split's caption vocabulary, and the split's ``scenes.jsonl`` for
the object counts. Features come from the feature cache (clips not in it are encoded). Prints a Markdown
table.

    python bench/grounding_eval.py runs/smol/stage0/final [--data data/synth] [--split val]
"""

from __future__ import annotations

import argparse
import json
import sys
from copy import copy
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("model", help="a model directory (e.g. runs/smol/stage0/final)")
    parser.add_argument("--data", default="data/synth", help="root of the synthetic splits")
    parser.add_argument("--split", default="val", help="the split to score (default val)")
    parser.add_argument("--feature-cache", default="data/feature_cache")
    args = parser.parse_args(argv)

    import torch

    from gpt4video.config import DataConfig
    from gpt4video.data.feature_cache import FeatureCache
    from gpt4video.evaluation.grounding import grounding_accuracy
    from gpt4video.modeling import GPT4Video
    from gpt4video.training.data import GroundingDataset, load_examples

    data = Path(args.data)
    model = GPT4Video.from_pretrained(args.model)
    # the words stage 0 taught (recorded with the model), else those of the training captions
    recorded = model.config.abstractor.vocabulary
    vocab = (torch.tensor(recorded) if recorded else GroundingDataset(
        load_examples([DataConfig(path=str(data / "train/captions.jsonl"))]), model.processor).vocab)
    split = data / args.split
    dataset = GroundingDataset(load_examples([DataConfig(path=str(split / "captions.jsonl"))], what="evaluation"),
                               model.processor, vocab=vocab)
    objects = {str((split / row["video"]).resolve()): len(row["scene"]["objects"])
               for row in map(json.loads, (split / "scenes.jsonl").read_text(encoding="utf-8").splitlines())}
    cache = FeatureCache(args.feature_cache, model)

    groups: dict[str, GroundingDataset] = {"all clips": dataset}
    for n in sorted(set(objects.values())):
        subset = copy(dataset)
        subset.items = [it for it in dataset.items if objects[str(Path(it.videos[0]).resolve())] == n]
        groups[f"{n} object{'s' if n > 1 else ''}"] = subset
    rows = []
    for name, subset in groups.items():
        log(f"scoring {name} ({len(subset)} clips)")
        r = grounding_accuracy(model, subset, cache.get_many)
        rows.append([name, len(subset)] + [f"{100 * r['by_kind'][k]['accuracy']:.1f} %" for k in ("color", "shape", "motion")]
                    + [f"{100 * r['tokens']['accuracy']:.1f} %", f"{100 * r['clips']['accuracy']:.1f} %"])
    print(markdown_table(["clips", "n", "colour words", "shape words", "motion words", "all caption tokens",
                          "whole caption right"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
