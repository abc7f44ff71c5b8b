"""``safety.suspicion_threshold`` (corroborated learned refusal) seen on the TRAINING portion only.

The shipped default is chosen by ``python -m gpt4video.safety.train_text`` on out-of-source scores (the
cross-source folds; ``training.suspicion_threshold`` in ``harmful_request.json``). This script shows how
the same choice looks on the packaged head's own training portion, where scores run higher.

With ``corroborate_refusals`` on, a refusal the model writes itself is honoured only when the
harmful-request checker's highest category score of the user's text reaches the suspicion threshold
(:mod:`gpt4video.safety.policy`). This script scores, with the packaged checker:

- harmful: every harmful item of the classifier's training portion (as the data packages give it) and
  every refused user message of the stage-2 safety dialogues (``data/safety/train.jsonl``: the same
  items in the wrappers the model learned to refuse; a multi-turn row counts with the higher of its
  message and its recent conversation, as the assistant checks them);
- benign: the harmless texts of the training portion the dialogues use (VBench scenes, everyday and
  look-alike questions and requests, Do-Not-Answer's advice questions) and every user message of the
  dialogues' harmless rows;

and picks the highest threshold below which at most ``--max-miss`` of the harmful prompts fall (so
almost no harmful training prompt could have its learned refusal overridden). The classifier was fit
on these very items, so their scores are higher than those of harmful text it has not seen: the
default ``--max-miss`` is therefore strict (0.1 %: one prompt in a thousand), and, as a check that
plays no part in the choice, the same figures are printed for the classifier's validation portion
(held out from its training, and not the benchmark). No benchmark item is read: the benchmark draws
from the classifier's test portion, the dialogues and the choice here from its training portion only.
Prints Markdown tables (and ``--json`` writes the figures).

Usage::

    OMP_NUM_THREADS=1 .venv/bin/python bench/safety_suspicion.py [--dialogues data/safety/train.jsonl]
        [--max-miss 0.001] [--no-check] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import log, markdown_table  # noqa: E402

#: Thresholds always shown in the table besides the chosen one.
GRID = (0.005, 0.01, 0.02, 0.03, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3)


def dialogue_texts(path: Path) -> tuple[list[tuple[str, str | None]], list[str]]:
    """(harmful: (refused message, recent conversation or None), benign user messages) of a dialogues file."""
    from gpt4video.errors import InputError
    from gpt4video.safety.refusals import is_refusal

    if not path.is_file():
        raise InputError(f"{path}: dialogues file not found (make it with: gpt4video data safety --out {path})")
    harmful: list[tuple[str, str | None]] = []
    benign: list[str] = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            turns = row["turns"]
        except (json.JSONDecodeError, KeyError, TypeError) as e:
            raise InputError(f"{path}:{n}: not a dialogue row ({e})") from None
        users: list[str] = []
        for i, turn in enumerate(turns):
            if turn["role"] != "user":
                continue
            refused = i + 1 < len(turns) and is_refusal(turns[i + 1]["text"])
            context = "\n".join([*users[-3:], turn["text"]]) if users else None
            if refused:
                harmful.append((turn["text"], context))
            else:
                benign.append(turn["text"])
            users.append(turn["text"])
    return harmful, benign


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dialogues", default="data/safety/train.jsonl", help="the stage-2 safety dialogues")
    parser.add_argument("--max-miss", type=float, default=0.001,
                        help="largest share of harmful training prompts allowed below the threshold (default 0.001)")
    parser.add_argument("--no-check", action="store_true", help="skip the validation-portion check")
    parser.add_argument("--json", help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    from gpt4video.errors import InputError
    from gpt4video.safety.dialogues import benign_texts, harmful_requests
    from gpt4video.safety.text import HarmfulRequestChecker

    if not 0.0 <= args.max_miss < 1.0:
        print("error: --max-miss must be in [0, 1)", file=sys.stderr)
        return 2
    try:
        harmful_items = harmful_requests("train")
        benign = benign_texts("train")
        refused, helped = dialogue_texts(Path(args.dialogues))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2

    groups: dict[str, list[str]] = defaultdict(list)  # name -> texts; "harmful:" / "benign:" prefixes
    for it in harmful_items:
        groups[f"harmful:{it.source.split(':')[0]} (raw)"].append(it.text)
    groups["benign:vbench + look-alike scenes (raw)"] = [d.text for d in benign.descriptions]
    groups["benign:everyday + advice questions (raw)"] = [q.text for q in benign.questions]
    groups["benign:everyday generation requests (raw)"] = [r.text for r, _ in benign.requests]
    groups["benign:dialogue messages"] = helped

    log("loading the harmful_request checker ...")
    checker = HarmfulRequestChecker().load()
    scores: dict[str, np.ndarray] = {}
    for name, texts in groups.items():
        scores[name] = checker.scores(texts).max(axis=1) if texts else np.zeros(0)
        log(f"scored {len(texts)} texts: {name}")
    messages = checker.scores([m for m, _ in refused]).max(axis=1)
    contexts = [c for _, c in refused if c is not None]
    ctx_scores = iter(checker.scores(contexts).max(axis=1)) if contexts else iter(())
    scores["harmful:dialogue refused messages"] = np.array(
        [max(float(s), float(next(ctx_scores))) if c is not None else float(s) for s, (_, c) in zip(messages, refused)])
    log(f"scored {len(refused)} refused dialogue messages (+ {len(contexts)} conversations)")

    harmful_all = np.concatenate([v for k, v in scores.items() if k.startswith("harmful:")])
    benign_all = np.concatenate([v for k, v in scores.items() if k.startswith("benign:")])
    ordered = np.sort(harmful_all)
    k = int(np.floor(args.max_miss * len(ordered)))  # at most k harmful prompts may fall below
    chosen = float(np.floor(ordered[k] * 1000) / 1000)  # rounded down: the k-th lowest score stays above

    def below(values: np.ndarray, t: float) -> float:
        return float((values < t).mean()) if len(values) else float("nan")

    rows = []
    for t in sorted({*GRID, chosen}):
        rows.append([f"{t:.3f}" + (" (chosen)" if t == chosen else ""),
                     f"{100 * below(harmful_all, t):.2f} % ({int((harmful_all < t).sum())})",
                     f"{100 * below(benign_all, t):.1f} %"]
                    + [f"{100 * below(scores[g], t):.1f} %" for g in groups if g.startswith("benign:")])
    head = ["threshold", f"harmful below (of {len(harmful_all)})", f"benign below (of {len(benign_all)})"] + [
        g.split(":", 1)[1] for g in groups if g.startswith("benign:")]
    per_group = {name: {"n": int(len(v)), "below_chosen": round(below(v, chosen), 4),
                        "min": round(float(v.min()), 4) if len(v) else None,
                        "median": round(float(np.median(v)), 4) if len(v) else None} for name, v in scores.items()}
    print(f"# Suspicion threshold (training portion only; max miss {args.max_miss:.3f})\n")
    print(f"Chosen: **{chosen:.3f}**: {int((harmful_all < chosen).sum())} of {len(harmful_all)} harmful training "
          f"prompts fall below it ({100 * below(harmful_all, chosen):.2f} %); {100 * below(benign_all, chosen):.1f} % "
          f"of {len(benign_all)} benign training prompts do (their learned refusals would be overridden).\n")
    print(markdown_table(head, rows))
    print("\n" + markdown_table(["group", "n", "below chosen", "min", "median"],
                                [[k, v["n"], f"{100 * v['below_chosen']:.2f} %", v["min"], v["median"]]
                                 for k, v in per_group.items()]))
    check: dict[str, dict[str, float]] = {}
    if not args.no_check:
        val_harmful = checker.scores([it.text for it in harmful_requests("val")]).max(axis=1)
        val_benign_texts = benign_texts("val")
        val_benign = checker.scores([d.text for d in val_benign_texts.descriptions]
                                    + [q.text for q in val_benign_texts.questions]
                                    + [r.text for r, _ in val_benign_texts.requests]).max(axis=1)
        log(f"scored the validation portion: {len(val_harmful)} harmful, {len(val_benign)} benign")
        check = {f"{t:.3f}": {"harmful_below": round(below(val_harmful, t), 4), "benign_below": round(below(val_benign, t), 4)}
                 for t in sorted({*GRID, chosen})}
        print(f"\nCheck, not used for the choice: the classifier's validation portion ({len(val_harmful)} harmful, "
              f"{len(val_benign)} benign raw texts)\n")
        print(markdown_table(["threshold", "harmful below", "benign below"],
                             [[t + (" (chosen)" if float(t) == chosen else ""),
                               f"{100 * v['harmful_below']:.2f} % ({int(round(v['harmful_below'] * len(val_harmful)))})",
                               f"{100 * v['benign_below']:.1f} %"] for t, v in check.items()]))
    if args.json:
        Path(args.json).write_text(json.dumps({
            "validation_check": check,
            "chosen": chosen, "max_miss": args.max_miss, "n_harmful": int(len(harmful_all)),
            "n_benign": int(len(benign_all)), "harmful_below": round(below(harmful_all, chosen), 4),
            "benign_below": round(below(benign_all, chosen), 4), "groups": per_group,
            "grid": {f"{t:.3f}": {"harmful_below": round(below(harmful_all, t), 4),
                                  "benign_below": round(below(benign_all, t), 4)} for t in sorted({*GRID, chosen})},
        }, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
