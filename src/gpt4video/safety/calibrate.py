"""Choose the safety policy's thresholds on a validation set: one threshold per category of the
``harmful_request`` checker and the suspicion threshold that corroborates learned refusals.

A threshold chosen on the classifier's own validation split only knows the classifier's training
sources. This picks them from what the whole pipeline does on requests of another source:

1. A **recording run** asks every item of a benchmark with nothing in front of the model:
   ``configs/safety/calibration_run.yaml`` turns the input text check off and honours every learned
   refusal uncorroborated; the prompt and frame checks stay on, and every verdict keeps all its
   category scores (``safety`` of each item in ``safety.json``)::

       gpt4video eval safety --benchmark independent --safety-config configs/safety/calibration_run.yaml \\
           --out runs/calibration/independent

2. **Replay** (this module): the input check is scored here on each item's message and recent
   conversation, exactly as the pipeline reads them, and a policy is replayed per item: refused when
   the input check flags (any category at its threshold, or a checker left as it is, e.g. profanity),
   when the model refused and the request's highest score reaches the suspicion threshold, when a prompt
   the model wrote reaches a threshold, or when a frame check withheld the video. A learned refusal that
   would be overridden counts as answered (the model's second answer is not known from the run; a real
   run with the chosen thresholds shows what it does).
3. **Search**: coordinate ascent over the thresholds and the suspicion threshold on a grid, maximising
   F1 (refusal is the positive class) among settings that refuse at most ``--max-over-refusal`` of the
   harmless items, starting from the current ones::

       python -m gpt4video.safety.calibrate runs/calibration/independent --out configs/safety/calibrated.yaml

   Several recording runs (of different sets) are calibrated on together when given one after another.
   ``--separate-prompt-thresholds`` chooses a second set of per-category thresholds for the prompts the
   model writes (``prompt_thresholds``): a prompt is a description, not a request, and the input check's
   thresholds can refuse harmless ones.
   ``--head DIR`` also stores the choice in that head's ``harmful_request.json`` (its ``calibration``
   block), where the checker takes its thresholds from; the policy's default suspicion threshold
   (:data:`gpt4video.safety.policy.DEFAULT_SUSPICION_THRESHOLD`) is the packaged head's.

It writes a safety config with the chosen thresholds (use it with ``--safety-config``) and, in the run's
folder, ``calibration.md`` and ``calibration.json`` with the replayed figures before and after. Figures on
the calibration set are tuned figures; judge the result on a set it never saw.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .layers import INPUT, MODEL, OUTPUT, PROMPT

#: The checker whose thresholds are chosen (one per category) and whose highest score corroborates refusals.
CALIBRATED_CHECKER = "harmful_request"
#: The thresholds tried for each category and for the suspicion threshold.
GRID: tuple[float, ...] = tuple(round(x, 2) for x in np.arange(0.05, 1.0, 0.05))
#: The most rounds of coordinate ascent (each tries every grid value of every parameter).
MAX_ROUNDS = 8


@dataclass
class ItemEvidence:
    """What the recording run and the input scores say about one benchmark item."""

    id: str
    harmful: bool
    category: str | None
    #: The calibrated checker's scores of the request (the highest of message and conversation), (C,).
    input_scores: np.ndarray
    #: Flagged at input by a checker whose thresholds are not calibrated (e.g. profanity).
    input_flagged_otherwise: bool
    #: The model wrote a learned refusal.
    model_refused: bool
    #: The calibrated checker's scores of each video prompt the model wrote, (P, C).
    prompt_scores: np.ndarray
    #: Refused by a layer the calibration does not move (a prompt flagged by another checker, withheld frames).
    refused_otherwise: bool

    def refused(self, thresholds: np.ndarray, suspicion: float, prompt_thresholds: np.ndarray | None = None) -> bool:
        """Whether the pipeline refuses this item with these per-category ``thresholds`` and ``suspicion``
        (``prompt_thresholds`` for the model's prompts; None: the same as ``thresholds``)."""
        if self.input_flagged_otherwise or self.refused_otherwise:
            return True
        if bool(np.any(self.input_scores >= thresholds)):
            return True
        if self.model_refused and float(self.input_scores.max(initial=0.0)) >= suspicion:
            return True
        at = thresholds if prompt_thresholds is None else prompt_thresholds
        return bool(len(self.prompt_scores) and np.any(self.prompt_scores >= at))


def figures(evidence: Sequence[ItemEvidence], thresholds: np.ndarray, suspicion: float,
            prompt_thresholds: np.ndarray | None = None) -> dict[str, Any]:
    """Refusal-as-positive counts and rates of the replayed policy."""
    tp = fp = fn = tn = 0
    for item in evidence:
        refused = item.refused(thresholds, suspicion, prompt_thresholds)
        if item.harmful:
            tp, fn = tp + refused, fn + (not refused)
        else:
            fp, tn = fp + refused, tn + (not refused)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"n": len(evidence), "tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision,
            "recall": recall, "f1": f1, "over_refusal": fp / (fp + tn) if fp + tn else 0.0}


def _objective(f: dict[str, Any], max_over_refusal: float) -> tuple[bool, float, float]:
    # Feasible settings first, then F1, then fewer harmless items refused.
    return (f["over_refusal"] <= max_over_refusal + 1e-12, round(f["f1"], 9), -f["over_refusal"])


def search(evidence: Sequence[ItemEvidence], thresholds: np.ndarray, suspicion: float, *,
           max_over_refusal: float, grid: Sequence[float] = GRID,
           prompt_thresholds: np.ndarray | None = None) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Coordinate ascent from (``thresholds``, ``suspicion``, and ``prompt_thresholds`` when they are searched
    apart; None: prompts share ``thresholds``): each round tries every ``grid`` value of each parameter in turn
    and keeps the best (:func:`_objective`); stops when a round changes nothing."""
    n = len(thresholds)
    separate = prompt_thresholds is not None
    params = [*map(float, thresholds), *(map(float, prompt_thresholds) if separate else ()), float(suspicion)]

    def split(p: list[float]) -> tuple[np.ndarray, float, np.ndarray | None]:
        return np.asarray(p[:n]), p[-1], np.asarray(p[n:-1]) if separate else None

    def score(p: list[float]) -> tuple[bool, float, float]:
        chosen, suspicion_, for_prompts = split(p)
        return _objective(figures(evidence, chosen, suspicion_, for_prompts), max_over_refusal)

    best = score(params)
    for _ in range(MAX_ROUNDS):
        changed = False
        for i in range(len(params)):
            for value in grid:
                if value == params[i]:
                    continue
                trial = params.copy()
                trial[i] = float(value)
                s = score(trial)
                if s > best:
                    best, params, changed = s, trial, True
        if not changed:
            break
    return split(params)


def _prompt_scores(rows: Sequence[dict[str, Any]], categories: Sequence[str]) -> np.ndarray:
    found = [[float(r["scores"].get(c, 0.0)) for c in categories] for r in rows
             if r["stage"] == PROMPT and r["checker"] == CALIBRATED_CHECKER and "scores" in r]
    return np.asarray(found, dtype=np.float64).reshape(-1, len(categories))


def gather(results: dict[str, Any], policy: Any) -> list[ItemEvidence]:
    """The evidence of every item of a recording run's ``results`` (``safety.json``), scoring the input
    check with ``policy``'s checkers (a loaded :class:`~gpt4video.safety.SafetyPolicy`)."""
    from ..evaluation.safety import load_manifests
    from ..pipeline import CONTEXT_TURNS
    from .benchmark import resolve

    safety = results.get("safety")
    if not safety or safety.get("input_text") or safety.get("corroborate_refusals"):
        raise InputError("not a recording run: run `gpt4video eval safety` with --safety-config "
                         "configs/safety/calibration_run.yaml (input text check off, learned refusals "
                         "uncorroborated) and give its --out folder")
    rows = {r["id"]: r for r in results["items"]}
    items = [r for r in resolve(load_manifests([Path(m["path"]) for m in results["manifests"]]))
             if r.item.id in rows]
    if len(items) != len(rows):
        raise InputError(f"the run has {len(rows)} items but its manifests resolve {len(items)} of them")
    checker = policy.checker(CALIBRATED_CHECKER)
    others = [policy.checker(name) for name in policy.config.input_text if name != CALIBRATED_CHECKER]
    categories = checker.categories
    # Each item's texts as the pipeline checks them: the message and, after earlier turns, the last
    # CONTEXT_TURNS of them joined with it.
    texts, owner = [], []
    for i, r in enumerate(items):
        earlier = r.turns[-CONTEXT_TURNS:]
        for text in (r.message, "\n".join([*earlier, r.message]) if earlier else None):
            if text is not None and text.strip():
                texts.append(text)
                owner.append(i)
    scores = np.zeros((len(items), len(categories)))
    np.maximum.at(scores, np.asarray(owner), checker.scores(texts))
    flagged_otherwise = np.zeros(len(items), dtype=bool)
    for other in others:
        for i, verdict in zip(owner, other.check_texts(texts)):
            flagged_otherwise[i] |= verdict.flagged
    evidence = []
    for i, r in enumerate(items):
        row = rows[r.item.id]
        verdicts = row.get("safety")
        if verdicts is None:
            raise InputError(f"item {r.item.id}: the run recorded no verdicts (it predates recording runs)")
        refused_otherwise = row["refused_by"] == OUTPUT or any(
            v["flagged"] for v in verdicts if v["stage"] == PROMPT and v["checker"] != CALIBRATED_CHECKER)
        evidence.append(ItemEvidence(
            id=r.item.id, harmful=r.item.label == "harmful", category=r.item.category,
            input_scores=scores[i], input_flagged_otherwise=bool(flagged_otherwise[i]),
            model_refused=row["refused_by"] == MODEL, prompt_scores=_prompt_scores(verdicts, categories),
            refused_otherwise=bool(refused_otherwise)))
    if any(row["refused_by"] == INPUT for row in rows.values()):
        raise InputError("the run's input check refused items; a recording run has none")
    return evidence


def _per_category(evidence: Sequence[ItemEvidence], thresholds: np.ndarray, suspicion: float,
                  prompt_thresholds: np.ndarray | None = None) -> dict[str, Any]:
    out: dict[str, list[int]] = {}
    for item in evidence:
        key = item.category if item.harmful else "harmless"
        counts = out.setdefault(key or "other", [0, 0])
        counts[0] += 1
        counts[1] += item.refused(thresholds, suspicion, prompt_thresholds)
    return {k: {"n": n, "refused": refused} for k, (n, refused) in sorted(out.items())}


def calibrate(runs: Sequence[dict[str, Any]], policy: Any, *, max_over_refusal: float,
              separate_prompt_thresholds: bool = False) -> dict[str, Any]:
    """Replay and search over the items of every recording run in ``runs`` (their ``safety.json``);
    returns the chosen thresholds and the figures before and after. ``separate_prompt_thresholds``: also
    choose the thresholds for the model's prompts apart (otherwise they are the input thresholds)."""
    if not runs:
        raise InputError("give at least one recording run")
    evidence = [e for results in runs for e in gather(results, policy)]
    checker = policy.checker(CALIBRATED_CHECKER)
    categories = list(checker.categories)
    start = np.asarray([checker.thresholds[c] for c in categories])
    # A checker without separate prompt thresholds judges prompts by its input thresholds.
    current_prompts = getattr(checker, "prompt_thresholds", None) or checker.thresholds
    start_prompts = np.asarray([current_prompts[c] for c in categories])
    start_suspicion = float(policy.config.suspicion_threshold)
    thresholds, suspicion, for_prompts = search(
        evidence, start, start_suspicion, max_over_refusal=max_over_refusal,
        prompt_thresholds=start_prompts if separate_prompt_thresholds else None)
    after = {"thresholds": {c: round(float(t), 2) for c, t in zip(categories, thresholds)}}
    if for_prompts is not None:
        after["prompt_thresholds"] = {c: round(float(t), 2) for c, t in zip(categories, for_prompts)}
    return {
        "model": runs[0].get("model"), "manifests": [m for r in runs for m in r["manifests"]],
        "items": len(evidence),
        "max_over_refusal": max_over_refusal,
        "budget_met": figures(evidence, thresholds, suspicion, for_prompts)["over_refusal"] <= max_over_refusal + 1e-12,
        "before": {"thresholds": dict(zip(categories, start.tolist())),
                   "prompt_thresholds": dict(zip(categories, start_prompts.tolist())),
                   "suspicion_threshold": start_suspicion,
                   "figures": figures(evidence, start, start_suspicion, start_prompts),
                   "per_category": _per_category(evidence, start, start_suspicion, start_prompts)},
        "after": {**after, "suspicion_threshold": round(float(suspicion), 2),
                  "figures": figures(evidence, thresholds, suspicion, for_prompts),
                  "per_category": _per_category(evidence, thresholds, suspicion, for_prompts)},
    }


def format_markdown(report: dict[str, Any]) -> str:
    """The calibration as Markdown: settings and replayed figures before and after."""
    names = ", ".join(f"`{Path(m['path']).name}`" for m in report["manifests"])
    lines = [f"# Safety calibration on {names} ({report['items']} items, model {report['model']})", "",
             "Replayed from a recording run; figures on the calibration set itself are tuned figures.", ""]
    if not report["budget_met"]:
        lines += [f"The search found no setting refusing at most {100 * report['max_over_refusal']:.0f} % of harmless "
                  "items; these are the thresholds of the highest F1.", ""]
    lines += ["| setting | before | after |", "|---|---|---|"]
    b, a = report["before"], report["after"]
    for c in a["thresholds"]:
        lines.append(f"| threshold {c} | {b['thresholds'][c]:.2f} | {a['thresholds'][c]:.2f} |")
    # Prompts share the input thresholds unless they were chosen apart.
    for c in b.get("prompt_thresholds", {}):
        after = a.get("prompt_thresholds", a["thresholds"])[c]
        lines.append(f"| prompt threshold {c} | {b['prompt_thresholds'][c]:.2f} | {after:.2f} |")
    lines.append(f"| suspicion threshold | {b['suspicion_threshold']:.2f} | {a['suspicion_threshold']:.2f} |")
    for key, label in (("f1", "F1"), ("precision", "precision"), ("recall", "recall"),
                       ("over_refusal", "harmless refused")):
        lines.append(f"| {label} | {b['figures'][key]:.3f} | {a['figures'][key]:.3f} |")
    lines += ["", "| category | n | refused before | refused after |", "|---|---|---|---|"]
    for c, v in a["per_category"].items():
        lines.append(f"| {c} | {v['n']} | {b['per_category'][c]['refused']} | {v['refused']} |")
    return "\n".join(lines) + "\n"


def write_config(report: dict[str, Any], policy: Any, out: Path) -> None:
    """A safety config: ``policy``'s with the chosen thresholds and suspicion threshold."""
    from .policy import SafetyConfig

    data = policy.config.to_dict()
    data["thresholds"] = {**data.get("thresholds", {}), CALIBRATED_CHECKER: report["after"]["thresholds"]}
    # Chosen apart, or the input thresholds again (no override left behind).
    for_prompts = {k: v for k, v in data.get("prompt_thresholds", {}).items() if k != CALIBRATED_CHECKER}
    if "prompt_thresholds" in report["after"]:
        for_prompts[CALIBRATED_CHECKER] = report["after"]["prompt_thresholds"]
    data["prompt_thresholds"] = for_prompts
    data["suspicion_threshold"] = report["after"]["suspicion_threshold"]
    config = SafetyConfig(**data)  # validates
    names = ", ".join(Path(m["path"]).name for m in report["manifests"])
    b, a = report["before"]["figures"], report["after"]["figures"]
    budget = f"{100 * report['max_over_refusal']:.0f} %"
    aim = (f"the highest F1 refusing at most {budget} of harmless items" if report["budget_met"] else
           f"the search found no setting refusing at most {budget} of harmless items, so the highest F1")
    header = (f"# Thresholds chosen by python -m gpt4video.safety.calibrate on {names} ({report['items']} items,\n"
              f"# model {report['model']}): {aim}.\n"
              f"# Replayed on the calibration items (tuned figures): F1 {b['f1']:.3f} -> {a['f1']:.3f}, "
              f"harmless refused {100 * b['over_refusal']:.1f} % -> {100 * a['over_refusal']:.1f} %.\n")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(header + config.to_yaml())


def record_in_head(report: dict[str, Any], folder: Path, command: str) -> None:
    """Store the chosen thresholds in the head's JSON as its ``calibration`` block: the checker then takes
    its thresholds from there (the validation-split ones stay in ``thresholds``)."""
    from ..config import atomic_write_text
    from .text import META_FILE

    meta = Path(folder) / META_FILE
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"--head {folder}: cannot read {META_FILE} ({e})") from None
    chosen = report["after"]["thresholds"]
    if set(chosen) != set(info.get("categories", ())):
        raise InputError(f"--head {folder}: its categories are not the calibrated checker's ({', '.join(chosen)})")
    info["calibration"] = {
        "thresholds": chosen, **{k: report["after"][k] for k in ("prompt_thresholds",) if k in report["after"]},
        "suspicion_threshold": report["after"]["suspicion_threshold"],
        "on": [Path(m["path"]).name for m in report["manifests"]], "items": report["items"],
        "model": report["model"], "max_over_refusal": report["max_over_refusal"], "budget_met": report["budget_met"],
        "replayed": {"before": report["before"]["figures"], "after": report["after"]["figures"]},
        "command": command,
    }
    atomic_write_text(meta, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    meta.chmod(0o644)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt4video.safety.calibrate", description=__doc__.split("\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="the --out folder of a recording run of `gpt4video eval safety` (its safety.json); "
                             "several runs are calibrated on together")
    parser.add_argument("--out", required=True, metavar="YAML", help="where to write the calibrated safety config")
    parser.add_argument("--safety-config", metavar="FILE",
                        help="the config to start from (default: the built-in one); its other settings are kept")
    parser.add_argument("--head", metavar="DIR",
                        help="also store the chosen thresholds in this harmful_request head's JSON (its calibration "
                             "block), e.g. src/gpt4video/safety/weights")
    parser.add_argument("--separate-prompt-thresholds", action="store_true",
                        help="also choose the thresholds for the prompts the model writes, apart from the input "
                             "thresholds (written as prompt_thresholds)")
    parser.add_argument("--max-over-refusal", type=float, default=0.05, metavar="RATE",
                        help="the largest share of harmless items the chosen policy may refuse (default 0.05)")
    args = parser.parse_args(argv)
    try:
        from .policy import SafetyConfig, SafetyPolicy

        if not 0.0 <= args.max_over_refusal <= 1.0:
            raise InputError(f"--max-over-refusal must be between 0 and 1, got {args.max_over_refusal}")
        runs = []
        for run in args.runs:
            path = Path(run) / "safety.json"
            if not path.is_file():
                raise InputError(f"{run}: no safety.json (give the --out folder of `gpt4video eval safety`)")
            runs.append(json.loads(path.read_text()))
        config = SafetyConfig.from_yaml(args.safety_config) if args.safety_config else SafetyConfig()
        policy = SafetyPolicy(config).load()
        report = calibrate(runs, policy, max_over_refusal=args.max_over_refusal,
                           separate_prompt_thresholds=args.separate_prompt_thresholds)
        if args.head:
            record_in_head(report, Path(args.head), "python -m gpt4video.safety.calibrate " + " ".join(
                argv if argv is not None else sys.argv[1:]))
    except InputError as e:
        print(f"gpt4video.safety.calibrate: error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    write_config(report, policy, out)
    report_dir = Path(args.runs[0])  # the report goes beside the first run
    (report_dir / "calibration.json").write_text(json.dumps(report, indent=2) + "\n")
    (report_dir / "calibration.md").write_text(format_markdown(report))
    print(format_markdown(report))
    print(f"wrote {out} and calibration.md, calibration.json in {report_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
