"""Template families, synonyms and noise of the synthetic world's wording (gpt4video.data.phrasing)."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from gpt4video.data import phrasing as ph
from gpt4video.data import synthetic as sw
from gpt4video.data.synthetic import (
    SHAPES,
    Background,
    ObjectSpec,
    PromptSpec,
    count_questions,
    dialogue,
    parse_prompt,
    questions,
    sample_scene,
)
from gpt4video.errors import InputError


def _triples(spec) -> list[tuple]:
    return sorted((o.shape, o.color, o.motion) for o in spec.objects)


def _long_pieces(frame: str) -> list[str]:
    """A frame's fixed runs of two words or more (normalised)."""
    return [p for p in ph.frame_pieces(frame) if len(p.split()) >= 2]


def _heldout_pieces() -> list[tuple[str, str, str]]:
    return [(name, frame, piece) for name in ph.HELDOUT_FAMILIES for frames in ph.FAMILIES[name].frames.values()
            for frame in frames for piece in _long_pieces(frame)]


def _contains(text: str, piece: str) -> bool:
    return f" {piece} " in f" {ph.normalize(text)} "


# --------------------------------------------------------------------------------------------
# Families


def test_families_are_split_and_cover_every_intent():
    assert "classic" in ph.TRAIN_FAMILIES and len(ph.HELDOUT_FAMILIES) >= 2
    assert not set(ph.TRAIN_FAMILIES) & set(ph.HELDOUT_FAMILIES)
    assert set(ph.PHRASINGS) == {"train", "heldout", *ph.FAMILIES}
    for intent in ph.INTENT_SLOTS:
        assert sum(intent in ph.FAMILIES[n].frames for n in ph.TRAIN_FAMILIES) >= 5, intent
        assert any(intent in ph.FAMILIES[n].frames for n in ph.HELDOUT_FAMILIES), intent
    for f in ph.FAMILIES.values():
        for frame in f.frames.get("generate", ()):
            assert "{bg}" in frame and re.search(r"\{(ger|rel|clause)\}", frame), (f.name, frame)
    with pytest.raises(ValueError, match="uses slots"):
        ph.Family("bad", "train", {"color": ("What colour is {np}?",)})


def test_classic_family_is_the_old_templates():
    assert ph.classic("color") == ("What color is the {ref}?", "What is the color of the {ref}?",
                                   "Which color does the {ref} have?", "What colour is the {ref}?")
    assert ph.classic("generate")[0] == "Show me {rel}{bg}." and len(ph.classic("generate")) == 8
    assert [len(ph.classic(i)) for i in ("shape", "motion", "count_all", "count_shape", "count_color", "existence",
                                         "describe")] == [4, 5, 4, 2, 2, 5, 5]
    # The classic wording of a clip's questions and dialogues is what the world wrote before the families.
    scene = sample_scene(20000003)
    assert [q.question for q in questions(scene, np.random.default_rng([scene.seed, 2]), phrasing="classic")] == [
        "Which color does the object that moves right have?", "Which shape is the yellow object?",
        "How does the yellow shape move?", "Which shape is the purple shape?",
        "In which direction does the purple circle move?", "What is the shape of the green shape?",
        "What does the green object do?", "How many circles are there?", "Is there a purple circle?",
        "Does a blue circle appear in the video?"]
    assert [q.question for q in count_questions(scene, np.random.default_rng([scene.seed, 5]), phrasing="classic")] == [
        "How many circles are there?", "How many green shapes are in the video?",
        "How many purple shapes are in the video?", "How many yellow objects are there?"]
    turns = dialogue([], np.random.default_rng([6, 3]), phrasing="classic")
    assert [t["text"] for t in turns][::2] == ["Show me a white square sliding left on a gray background."]
    # The prompt carries the request's own words; a change asked for later gets the canonical caption.
    assert turns[1]["text"].endswith("<video_prompt>A white square sliding left on a gray background.</video_prompt>")
    turns = dialogue([], np.random.default_rng([3, 3]), phrasing="classic")
    assert [t["text"] for t in turns][::2] == ["Please create a video with a red circle that slides right.",
                                               "Make the same clip on a dark purple background."]
    assert turns[3]["text"].endswith("<video_prompt>A red circle moves right on a dark purple background.</video_prompt>")
    two = dialogue([sample_scene(5), sample_scene(6)], np.random.default_rng(11), phrasing="classic")
    assert two[2]["text"] == "Here is another video. Which of the two videos has a circle?"


def test_heldout_frames_share_no_fixed_piece_with_training_frames():
    """Every held-out frame has a fixed run of two words or more, and none of them occurs in a training
    frame (slots stand for a word no frame has) or in the noise words."""
    training = [ph.normalize(re.sub(r"\{\w+\}", " zzslotzz ", frame)) for name in ph.TRAIN_FAMILIES
                for frames in ph.FAMILIES[name].frames.values() for frame in frames]
    training += [ph.normalize(text) for text in ph._PREFIXES + ph._SUFFIXES]
    for name in ph.HELDOUT_FAMILIES:
        for frames in ph.FAMILIES[name].frames.values():
            for frame in frames:
                assert _long_pieces(frame), (name, frame)
    for name, frame, piece in _heldout_pieces():
        hits = [t for t in training if f" {piece} " in f" {t} "]
        assert not hits, (name, frame, piece, hits[:3])


def test_choice_questions_list_the_right_answer_anywhere_or_not_at_all():
    """The "choices" family names candidate answers inside colour questions; the answer is the clip's colour
    whatever the list, so training has it listed first, listed later and not listed at all."""
    placements = Counter()
    for seed in range(400):
        for qa in questions(sample_scene(seed), seed, phrasing="choices"):
            if qa.type != "color" or qa.family != "choices":
                continue
            listed = [w for w in re.findall(r"[a-z]+", qa.question.lower()) if w in ph.COLOR_WORDS]
            placements["first" if listed[:1] == [qa.answer] else "later" if qa.answer in listed else "absent"] += 1
    assert min(placements[k] for k in ("first", "later", "absent")) >= 10, placements


def _user_texts(root, names) -> list[str]:
    texts = []
    for name in names:
        for row in map(json.loads, (root / name).read_text().splitlines()):
            if "question" in row:
                texts.append(row["question"])
            texts += [t["text"] for t in row.get("turns", ()) if t["role"] == "user"]
    return texts


def test_heldout_families_never_appear_in_a_training_split(tmp_path):
    train = sw.build_split(tmp_path, "train", 8, width=64, height=64, num_frames=8, progress=False)
    assert not (train / "qa_heldout.jsonl").exists() and not (train / "dialogues_heldout.jsonl").exists()
    texts = _user_texts(train, ("qa.jsonl", "count_qa.jsonl", "qa_conversations.jsonl", "dialogues.jsonl"))
    assert len(texts) > 80
    pieces = _heldout_pieces()
    for text in texts:
        assert not [p for _, _, p in pieces if _contains(text, p)], text
    families = {row["family"] for name in ("qa.jsonl", "count_qa.jsonl")
                for row in map(json.loads, (train / name).read_text().splitlines())}
    assert families <= set(ph.TRAIN_FAMILIES) and len(families) >= 4
    # The same check finds the held-out families where they belong: a test split's held-out files.
    test = sw.build_split(tmp_path, "test", 4, width=64, height=64, num_frames=8, progress=False)
    held = _user_texts(test, ("qa_heldout.jsonl", "dialogues_heldout.jsonl"))
    assert sum(any(_contains(text, p) for _, _, p in pieces) for text in held) > 0.7 * len(held)
    assert {row["family"] for row in map(json.loads, (test / "qa_heldout.jsonl").read_text().splitlines())} \
        <= set(ph.HELDOUT_FAMILIES)


def _replies(turns) -> list[tuple[str, object]]:
    """Each reply's text around its video prompt, and the objects the prompt asks for (a first request's
    prompt carries the request's own words, so only what it asks for is the same in every phrasing)."""
    out = []
    for t in turns:
        if t["role"] == "assistant":
            found = re.search(r"<video_prompt>(.*?)</video_prompt>", t["text"])
            asked = _triples(parse_prompt(found.group(1))) if found else None
            out.append((re.sub(r"<video_prompt>.*?</video_prompt>", "", t["text"]), asked))
    return out


@pytest.mark.parametrize("phrasing", ["train", "heldout", *ph.FAMILIES])
def test_every_phrasing_asks_the_same_things(phrasing):
    """The wording draws from its own stream: what is asked, the answers and the dialogue's course and
    replies (what their video prompts ask for) do not depend on the phrasing."""
    for seed in range(12):
        scene = sample_scene(seed)
        base = questions(scene, np.random.default_rng([seed, 2]), phrasing="classic")
        worded = questions(scene, np.random.default_rng([seed, 2]), phrasing=phrasing)
        assert [(q.answer, q.type) for q in worded] == [(q.answer, q.type) for q in base]
        counts = count_questions(scene, np.random.default_rng([seed, 5]), phrasing=phrasing)
        classic_counts = count_questions(scene, np.random.default_rng([seed, 5]), phrasing="classic")
        assert [q.answer for q in counts] == [q.answer for q in classic_counts]
        allowed = {"train": set(ph.TRAIN_FAMILIES), "heldout": set(ph.HELDOUT_FAMILIES)}.get(phrasing, {phrasing, "classic"})
        assert {q.family for q in worded + counts} <= allowed
        scenes = [scene, sample_scene(seed + 100)][: seed % 3]
        a = dialogue(scenes, np.random.default_rng(seed), phrasing="classic")
        b = dialogue(scenes, np.random.default_rng(seed), phrasing=phrasing)
        assert [(t["role"], t["videos"]) for t in a] == [(t["role"], t["videos"]) for t in b]
        assert _replies(a) == _replies(b)
    with pytest.raises(InputError, match="unknown phrasing"):
        questions(sample_scene(0), 0, phrasing="pirate")


@pytest.mark.parametrize("phrasing", ["train", "heldout"])
def test_mixed_questions_vary_and_no_family_dominates(phrasing):
    qas = [qa for seed in range(150) for qa in questions(sample_scene(seed), seed, phrasing=phrasing)]
    shares = Counter(qa.family for qa in qas)
    names = ph.TRAIN_FAMILIES if phrasing == "train" else ph.HELDOUT_FAMILIES
    assert set(shares) == set(names)
    assert max(shares.values()) < 1.5 * len(qas) / len(names)  # roughly even
    texts = [qa.question for qa in qas]
    assert len(set(texts)) > 0.8 * len(texts)
    assert any(t == t.lower() for t in texts) and any(not t.rstrip().endswith(("?", ".")) for t in texts)
    nonclassic = [qa.question for qa in qas if qa.family != "classic"]
    assert any(w in re.findall(r"[a-z]+", t.lower()) for t in nonclassic for w in ("ball", "box", "block", "dot"))


@pytest.mark.parametrize("phrasing", ["train", "heldout"])
def test_mixed_questions_are_consistent_with_the_scene(phrasing):
    """Whatever the wording, an existence question names one (shape, colour) pair and a count question
    counts what it names; synonyms ("ball", "crimson") name the world's shapes and colours."""
    shape_of = {w: s for s, pairs in ph.SHAPE_WORDS.items() for pair in pairs for w in pair}
    color_of = {w: c for c, words in ph.COLOR_WORDS.items() for w in words}
    for seed in range(80):
        scene = sample_scene(seed)
        present = {(o.shape, o.color) for o in scene.objects}
        for qa in questions(scene, np.random.default_rng(seed), phrasing=phrasing):
            words = re.findall(r"[a-z]+", qa.question.lower())
            shapes = {shape_of[w] for w in words if w in shape_of}
            colors = {color_of[w] for w in words if w in color_of}
            if qa.type == "existence":
                assert len(shapes) == 1 and len(colors) == 1, qa
                assert (qa.answer == "yes") == ((shapes.pop(), colors.pop()) in present), qa
            elif qa.type == "count":
                if shapes:
                    assert int(qa.answer) == sum(o.shape in shapes for o in scene.objects), qa
                elif colors:
                    assert int(qa.answer) == sum(o.color in colors for o in scene.objects), qa
                else:
                    assert int(qa.answer) == len(scene.objects), qa


# --------------------------------------------------------------------------------------------
# Requests read back


def _request_specs() -> list[PromptSpec]:
    backgrounds = [None, Background("plain", ("black",)), Background("plain", ("white",)), Background("plain", ("gray",)),
                   Background("plain", ("dark blue",)), Background("noise", ("dark green",)),
                   Background("gradient", ("black", "dark red"))]
    specs = []
    for k, motion in enumerate(sw.MOTIONS):
        shape, color = SHAPES[k % 3], ("yellow", "red", "purple", "orange", "green", "blue", "red")[k]
        bg = backgrounds[k % len(backgrounds)]
        specs.append(PromptSpec((ObjectSpec(shape, color, motion),), bg))
        specs.append(PromptSpec((ObjectSpec(shape, color, motion),) * 2, bg))
    specs.append(PromptSpec((ObjectSpec("circle", "red", "up"), ObjectSpec("square", "blue", "down"),
                             ObjectSpec("triangle", "yellow", "still")), Background("plain", ("black",))))
    specs.append(PromptSpec((ObjectSpec("square", "purple", "grows"), ObjectSpec("circle", "orange", "shrinks")),
                            Background("plain", ("white",))))
    return specs


def _fill(frame: str, spec: PromptSpec, rng: np.random.Generator) -> str:
    groups = [(g.count, g.shape, g.color, g.motion) for g in sw._groups(spec)]
    bg = ph.background_slot(spec.background.kind, spec.background.colors)(rng) if spec.background else ""
    return frame.format(bg=bg, **{form: ph.objects_slot(groups, form)(rng) for form in ("ger", "rel", "clause")})


@pytest.mark.parametrize("name", [n for n, f in ph.FAMILIES.items() if "generate" in f.frames])
def test_every_generation_frame_reads_back_to_its_request(name):
    rng = np.random.default_rng(0)
    for frame in ph.FAMILIES[name].frames["generate"]:
        for spec in _request_specs():
            for _ in range(4):
                text = _fill(frame, spec, rng)
                got = parse_prompt(text)
                assert got is not None, text
                assert _triples(got) == _triples(spec), text
                if spec.background is not None:
                    assert spec.background.same_look(got.background), text


@pytest.mark.parametrize("phrasing", ["train", "heldout", *ph.FAMILIES])
def test_generation_requests_in_dialogues_read_back_to_their_prompts(phrasing, monkeypatch):
    """The user's request (typed without typos) parses to the objects its reply's <video_prompt> asks for."""
    monkeypatch.setattr(ph, "_TYPO_SHARE", 0.0)  # a typo in a glue word: the model reads it, the parser need not
    for seed in range(40):
        turns = dialogue([], np.random.default_rng(seed), phrasing=phrasing)
        prompt = re.search(r"<video_prompt>(.*?)</video_prompt>", turns[1]["text"]).group(1)
        got = parse_prompt(turns[0]["text"])
        assert got is not None, turns[0]["text"]
        assert _triples(got) == _triples(parse_prompt(prompt)), (turns[0]["text"], prompt)


@pytest.mark.parametrize("motion", sw.MOTIONS)
def test_every_wording_of_a_motion_reads_back(motion):
    for singular, plural, gerund in ph.MOTION_WORDING[motion]:
        for text, count in ((f"a red circle {singular}", 1), (f"two red circles {plural}", 2),
                            (f"a red circle {gerund}", 1), (f"a red circle that {singular}", 1)):
            spec = parse_prompt(text)
            assert spec is not None and spec.count == count and spec.motion == motion, text
    for adjective in ph.MOTION_ADJECTIVES.get(motion, ()):
        spec = parse_prompt(f"a {adjective} red circle and a blue square moving left")
        assert spec is not None and _triples(spec) == [("circle", "red", motion), ("square", "blue", "left")], adjective


def test_shape_and_colour_synonyms_read_back():
    for shape, pairs in ph.SHAPE_WORDS.items():
        for singular, plural in pairs:
            assert _triples(parse_prompt(f"a green {singular} rising")) == [(shape, "green", "up")]
            assert parse_prompt(f"three green {plural}").count == 3
    for color, words in ph.COLOR_WORDS.items():
        for word in words:
            assert parse_prompt(f"a {word} triangle").color == color


@pytest.mark.parametrize("text, objects, background", [
    ("Make a video of a yellow triangle rising upward.", [("triangle", "yellow", "up")], None),
    ("Show me a white circle that stays still on a dark background", [("circle", "white", "still")], ("plain", ("black",))),
    ("a crimson ball that doesn't move on black", [("circle", "red", "still")], ("plain", ("black",))),
    ("two violet boxes sinking against a light backdrop", [("square", "purple", "down")] * 2, ("plain", ("white",))),
    ("a motionless orange block on a grainy grey background", [("square", "orange", "still")], ("noise", ("gray",))),
    ("a blue dot ascending and a green disc that is stationary over dark blue",
     [("circle", "blue", "up"), ("circle", "green", "still")], ("plain", ("dark blue",))),
    ("an expanding red square", [("square", "red", "grows")], None),
    ("a red circle on the left", [("circle", "red", "left")], None),
])
def test_parse_prompt_reads_common_synonyms(text, objects, background):
    spec = parse_prompt(text)
    assert spec is not None, text
    assert _triples(spec) == sorted(objects)
    if background is None:
        assert spec.background is None
    else:
        assert (spec.background.kind, spec.background.colors) == background


@pytest.mark.parametrize("text", [
    "a white dot on white",                 # would not stand out
    "a red ball falling and rising",        # two motions
    "a red circle on a beach",
    "a navy square",                        # not a colour this world can map without doubt
])
def test_parse_prompt_still_rejects_what_it_cannot_read(text):
    assert parse_prompt(text) is None


def test_careless_typing_touches_only_frame_words():
    rng = np.random.default_rng(0)
    frame = "Could you tell me which way the {ref} moves?"
    typos = {ph._typo(rng, frame) for _ in range(200)}
    assert len(typos) > 10 and all("{ref}" in t for t in typos)
    assert all(len(t.split()) == len(frame.split()) for t in typos)
    assert any(t != frame for t in typos)
