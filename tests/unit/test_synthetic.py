"""The synthetic video world: scenes, pixels, text, prompts and splits."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from gpt4video.data import synthetic as sw
from gpt4video.data import (
    COLOR_RGB,
    COLORS,
    MIN_CONTRAST,
    MOTIONS,
    QA_ANSWERS,
    SHAPES,
    Background,
    Scene,
    answers_match,
    build_split,
    caption,
    captions,
    contrast,
    dialogue,
    normalize_answer,
    parse_prompt,
    questions,
    render_frames,
    sample_scene,
    scene_from_spec,
    split_seeds,
)
from gpt4video.errors import InputError


def _kinds(content) -> list[tuple]:
    return sorted((o.shape, o.color, o.motion) for o in content.objects)


def _mask(frame: np.ndarray, color: str, tolerance: float = 60.0) -> np.ndarray:
    """Pixels within ``tolerance`` (RGB distance) of an object colour."""
    distance = np.linalg.norm(frame.astype(np.float64) - np.asarray(COLOR_RGB[color], dtype=np.float64), axis=-1)
    return distance < tolerance


def _centroid(mask: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    return np.array([xs.mean(), ys.mean()])


# --------------------------------------------------------------------------------------------
# Vocabulary and scenes


def test_vocabulary_is_the_spec():
    assert SHAPES == ("circle", "square", "triangle")
    assert COLORS == ("red", "green", "blue", "yellow", "purple", "orange", "white")
    assert MOTIONS == ("left", "right", "up", "down", "still", "grows", "shrinks")
    assert sw.COUNTS == (1, 2, 3)
    assert set(sw.BACKGROUND_KINDS) == {"plain", "gradient", "noise"}
    assert {"black", "gray", "white"} <= set(sw.BACKGROUND_COLORS)
    assert sw.MOTION_PHRASES["left"][0].singular == "moves left"
    assert any(p.singular == "moves to the left" for p in sw.MOTION_PHRASES["left"])
    assert sw.MOTION_PHRASES["still"][0].singular == "stays still"
    assert sw.MOTION_PHRASES["grows"][0].singular == "grows"
    assert sw.MOTION_PHRASES["shrinks"][0].singular == "shrinks"
    rgb = np.array(list(COLOR_RGB.values()), dtype=float)
    distances = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1)
    assert distances[~np.eye(len(rgb), dtype=bool)].min() > 80  # object colours clearly distinct


def test_sample_scene_is_determined_by_its_seed():
    a, b = sample_scene(42), sample_scene(42)
    assert a == b
    assert np.array_equal(render_frames(a), render_frames(b))
    assert sample_scene(43) != a
    # A Generator only draws the seed: the scene is reproducible from scene.seed.
    c = sample_scene(np.random.default_rng(0))
    assert sample_scene(c.seed) == c
    assert Scene.from_dict(json.loads(json.dumps(a.to_dict()))) == a


@pytest.mark.parametrize("size", [(128, 128, 16), (64, 64, 8), (96, 160, 12)])
def test_sampled_scenes_follow_the_rules(size):
    width, height, frames = size
    times = np.linspace(0, 1, frames)
    for seed in range(150):
        scene = sample_scene(seed, width=width, height=height, num_frames=frames)
        objects = scene.objects
        assert 1 <= len(objects) <= 3
        assert len({(o.shape, o.color) for o in objects}) == len(objects)  # unambiguous questions
        for o in objects:
            assert (o.shape, o.color, o.motion) in {(s, c, m) for s in SHAPES for c in COLORS for m in MOTIONS}
            assert contrast(o.color, scene.background) >= MIN_CONTRAST
            if o.motion in ("left", "right", "up", "down"):
                assert o.speed >= 0.3  # travels at least 30% of the frame
            if o.motion in ("grows", "shrinks"):
                assert o.speed >= 1.8
            for t in times:  # inside the frame for the whole clip
                left, top, right, bottom = o.box(t, width, height)
                assert left >= 0 and top >= 0 and right <= width and bottom <= height
        for i in range(len(objects)):
            for j in range(i):
                assert not sw._overlap_too_much(objects[i], objects[j], width, height, times)


def test_no_object_colour_on_a_background_like_it():
    white = Background("plain", ("white",))
    assert contrast("white", white) < MIN_CONTRAST
    assert contrast("yellow", white) >= MIN_CONTRAST
    with pytest.raises(InputError, match="stand out"):
        scene_from_spec("circle", "white", "left", background=white)
    with pytest.raises(InputError):
        scene_from_spec("star", "red", "left")


# --------------------------------------------------------------------------------------------
# Pixels


@pytest.mark.parametrize("size", [(128, 128, 16), (64, 64, 8), (80, 64, 9)])
def test_render_shape_and_dtype(size):
    width, height, frames = size
    video = render_frames(sample_scene(7, width=width, height=height, num_frames=frames))
    assert video.shape == (frames, height, width, 3)
    assert video.dtype == np.uint8


@pytest.mark.parametrize("motion", MOTIONS)
@pytest.mark.parametrize("shape", SHAPES)
def test_motion_is_visible_in_the_pixels(motion, shape):
    scene = scene_from_spec(shape, "red", motion, seed=3, width=64, height=64, num_frames=8,
                            background=Background("plain", ("black",)))
    video = render_frames(scene)
    first, last = _mask(video[0], "red"), _mask(video[-1], "red")
    assert first.sum() > 10 and last.sum() > 10
    shift = _centroid(last) - _centroid(first)  # (dx, dy) in pixels
    expected = {"left": (-1, 0), "right": (1, 0), "up": (0, -1), "down": (0, 1)}
    if motion in expected:
        direction = np.array(expected[motion], dtype=float)
        across = np.abs(direction[::-1])  # the perpendicular axis
        assert float(shift @ direction) >= 0.25 * 64  # travels a good part of the frame
        assert abs(float(shift @ across)) <= 1.0
    else:
        assert np.abs(shift).max() <= 1.0
    if motion == "grows":
        assert last.sum() >= 2.5 * first.sum()
    elif motion == "shrinks":
        assert first.sum() >= 2.5 * last.sum()
    else:
        assert 0.8 <= last.sum() / first.sum() <= 1.25


def test_objects_stand_out_in_the_pixels():
    for seed in range(20):
        scene = sample_scene(seed, width=64, height=64, num_frames=8)
        frame = render_frames(scene)[0].astype(np.float64)
        covered = np.zeros(frame.shape[:2], dtype=bool)
        for o in scene.objects:
            left, top, right, bottom = o.box(0.0, 64, 64)
            covered[max(0, int(top) - 1) : int(bottom) + 2, max(0, int(left) - 1) : int(right) + 2] = True
        background = frame[~covered]  # pixels no object touches
        for o in scene.objects:
            distance = np.linalg.norm(background - np.asarray(COLOR_RGB[o.color]), axis=-1)
            assert distance.min() >= 60, (seed, o.color, scene.background)


# --------------------------------------------------------------------------------------------
# Text


def test_captions_describe_the_scene_and_parse_back():
    rng = np.random.default_rng(0)
    for seed in range(40):
        scene = sample_scene(seed)
        texts = captions(scene)
        assert len(set(texts)) == len(texts) >= 5
        for text in texts + [caption(scene, rng) for _ in range(3)]:
            for o in scene.objects:
                assert o.color in text and o.shape in text
            spec = parse_prompt(text)
            assert spec is not None, text
            assert _kinds(spec) == _kinds(scene), text
            assert scene.background.same_look(spec.background), text


def test_caption_examples():
    scene = scene_from_spec("circle", "red", "right", background=Background("plain", ("gray",)))
    assert caption(scene) == "A red circle moves right on a gray background."
    assert "On a gray background, a red circle moves to the right." in captions(scene)
    rng = np.random.default_rng(0)
    paraphrases = {caption(scene, rng) for _ in range(300)}
    assert "On a gray background, a red circle slides right." in paraphrases
    assert "A red circle moves to the right on a gray background." in paraphrases
    two = scene_from_spec("square", "purple", "grows", count=2, background=Background("plain", ("black",)))
    assert caption(two) == "Two purple squares grow on a black background."
    assert parse_prompt(caption(two)).count == 2


def test_count_questions_ask_every_shape_and_colour_with_its_count():
    scene = Scene(seed=3, width=64, height=64, num_frames=8, fps=8.0, background=Background("plain", ("black",)),
                  objects=[sw.SceneObject(shape=s, color=c, motion="still", size=0.2, x=x, y=0.5, speed=0.0)
                           for s, c, x in (("circle", "red", 0.2), ("circle", "blue", 0.5), ("square", "red", 0.8))])
    qas = sw.count_questions(scene, 0)
    assert len(qas) == 4 and {qa.type for qa in qas} == {"count"}
    answers = {word: qa.answer for qa in qas for word in ("circle", "square", "red", "blue")
               if re.search(rf"\b{word}s?\b", qa.question)}
    assert answers == {"circle": "2", "square": "1", "red": "2", "blue": "1"}


def test_questions_are_consistent_with_the_scene():
    # The classic templates; the other phrasings ask the same things (tests/unit/test_phrasing.py).
    rng = np.random.default_rng(0)
    for seed in range(60):
        scene = sample_scene(seed)
        qas = questions(scene, rng, phrasing="classic")
        present = {(o.shape, o.color) for o in scene.objects}
        assert {qa.type for qa in qas} >= {"count", "existence", "motion"}
        for qa in qas:
            assert qa.answer in QA_ANSWERS[qa.type], qa
            assert qa.question.endswith("?") and " " not in qa.answer
            if qa.type == "color":
                assert qa.answer in {o.color for o in scene.objects}
            elif qa.type == "shape":
                assert qa.answer in {o.shape for o in scene.objects}
            elif qa.type == "motion":
                assert qa.answer in {o.motion for o in scene.objects}
            elif qa.type == "count" and re.search(r"many (objects|shapes) (are|can|appear)", qa.question):
                assert qa.answer == str(len(scene.objects))
            elif qa.type == "existence":
                words = re.findall(r"[a-z]+", qa.question.lower())
                asked = {(s, c) for s in SHAPES for c in COLORS if s in words and c in words}
                assert len(asked) == 1
                assert (qa.answer == "yes") == (asked.pop() in present)
        answers = [qa.answer for qa in qas if qa.type == "existence"]
        assert sorted(answers) == ["no", "yes"]  # balanced
    single = scene_from_spec("square", "red", "left", seed=1, background=Background("plain", ("black",)))
    by_type = {qa.type: qa.answer for qa in questions(single, 0, phrasing="classic")}
    assert by_type["color"] == "red" and by_type["shape"] == "square" and by_type["motion"] == "left"
    assert by_type["count"] == "1"


@pytest.mark.parametrize(
    "text, expected",
    [("Two.", "2"), ("The Red", "red"), ("  a  Circle! ", "circle"), ("three", "3"), ("Yes.", "yes"), ("moves-left", "moves left")],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


def test_answers_match():
    assert answers_match("Two", "2")
    assert answers_match("The square.", "square")
    assert not answers_match("red", "orange")


# --------------------------------------------------------------------------------------------
# Prompts


@pytest.mark.parametrize(
    "text",
    [
        "a dog running",
        "A yellow star moves left.",
        "A red circle moves left on a beach.",
        "A red circle on a pink background.",
        "A white circle moves left on a white background.",  # would not stand out
        "Four red circles move left.",
        "A red circle moves left and right.",
        "Two objects: a red circle moving left.",
        "a red circle and a dog",
        "",
    ],
)
def test_parse_prompt_rejects_what_this_world_cannot_show(text):
    assert parse_prompt(text) is None


def test_parse_prompt_reads_requests_and_reply_tags():
    spec = parse_prompt("Sure! <video_prompt>A purple square grows on a black background.</video_prompt>")
    assert (spec.shape, spec.color, spec.motion, spec.count) == ("square", "purple", "grows", 1)
    assert spec.background == Background("plain", ("black",))
    spec = parse_prompt("Can you make a video of three orange triangles moving to the left?")
    assert (spec.shape, spec.color, spec.motion, spec.count, spec.background) == ("triangle", "orange", "left", 3, None)
    spec = parse_prompt("a circle")
    assert (spec.shape, spec.color, spec.motion) == ("circle", None, None)
    scene = scene_from_spec(spec, seed=5, width=64, height=64, num_frames=8)  # the rest chosen at random
    assert scene.objects[0].shape == "circle" and scene == scene_from_spec(spec, seed=5, width=64, height=64, num_frames=8)
    gradient = parse_prompt("A red circle moves up on a black to dark blue gradient background.")
    assert gradient.background.kind == "gradient" and gradient.background.colors == ("black", "dark blue")


# --------------------------------------------------------------------------------------------
# Dialogues


def test_dialogues_alternate_and_prompts_parse():
    rng = np.random.default_rng(0)
    prompts = 0
    for i in range(60):
        scenes = [sample_scene(rng) for _ in range(i % 3)]
        turns = dialogue(scenes, rng)
        assert len(turns) >= 2
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        shown = sorted(v for t in turns for v in t["videos"])
        assert shown == list(range(len(scenes)))  # each clip shown exactly once
        for t in turns:
            assert t["text"].strip()
            found = re.findall(r"<video_prompt>(.*?)</video_prompt>", t["text"])
            if found:
                assert t["role"] == "assistant" and len(found) == 1
                assert parse_prompt(found[0]) is not None, found[0]
                prompts += 1
    assert prompts > 10
    two = dialogue([sample_scene(1), sample_scene(2)], np.random.default_rng(5))
    assert any("first" in t["text"] or "second" in t["text"] for t in two)
    with pytest.raises(InputError):
        dialogue([sample_scene(1)] * 3)


def test_edit_dialogues_change_exactly_one_thing_of_the_clip():
    from collections import Counter

    from gpt4video.data.synthetic.dialogues import edit_dialogue
    from gpt4video.data.synthetic.scenes import _as_spec

    kinds = Counter()
    for seed in range(40):
        scene = sample_scene(seed, width=64, height=64, num_frames=8)
        turns = edit_dialogue(scene, np.random.default_rng([seed, 9]))
        assert turns is not None
        assert [t["role"] for t in turns] == ["user", "assistant"] * (len(turns) // 2)
        assert turns[0]["videos"] == [0] and not any(t["videos"] for t in turns[1:])
        prompts = [re.search(r"<video_prompt>(.*?)</video_prompt>", t["text"]) for t in turns]
        first_edit = parse_prompt(next(p for p in prompts if p).group(1))
        before, after = _as_spec(scene), first_edit
        changed = Counter(before.objects) - Counter(after.objects)
        if before.background.same_look(after.background):
            assert len(after.objects) == len(before.objects) and sum(changed.values()) == 1
            kinds["object"] += 1
        else:
            assert Counter(before.objects) == Counter(after.objects)
            kinds["background"] += 1
    assert kinds["object"] > 10 and kinds["background"] > 3


# --------------------------------------------------------------------------------------------
# Splits


def test_split_seeds_are_disjoint():
    train, val, test = (set(split_seeds(s, 1000)) for s in ("train", "val", "test"))
    assert len(train) == len(val) == len(test) == 1000
    assert not (train & val) and not (train & test) and not (val & test)
    assert split_seeds("val", 3) == split_seeds("val", 3)
    with pytest.raises(InputError):
        split_seeds("dev", 3)


def test_build_split_writes_a_resumable_split(tmp_path):
    video_api = pytest.importorskip("gpt4video.video")
    root = build_split(tmp_path, "test", 4, width=64, height=64, num_frames=8, progress=False)
    assert root == tmp_path / "test"
    clips = sorted((root / "clips").glob("*.mp4"))
    assert [p.name for p in clips] == [f"{s}.mp4" for s in split_seeds("test", 4)]

    rows = {name: [json.loads(line) for line in (root / name).read_text().splitlines()]
            for name in ("captions.jsonl", "qa.jsonl", "dialogues.jsonl", "scenes.jsonl", "qa_heldout.jsonl",
                         "dialogues_heldout.jsonl")}
    assert len(rows["captions.jsonl"]) == len(rows["scenes.jsonl"]) == len(rows["dialogues.jsonl"]) == 4
    for row in rows["captions.jsonl"]:
        assert set(row) == {"video", "caption", "captions", "grounding_captions", "reversed_grounding_captions"} and isinstance(row["captions"], list)
        assert row["grounding_captions"][0] == row["caption"]  # the left-to-right reading first
    for row in rows["qa.jsonl"] + rows["qa_heldout.jsonl"]:
        assert set(row) == {"video", "question", "answer", "type", "family"}
    # The held-out files ask the same things about the same clips, worded by the held-out families.
    same = [(r["video"], r["answer"], r["type"]) for r in rows["qa.jsonl"]]
    assert [(r["video"], r["answer"], r["type"]) for r in rows["qa_heldout.jsonl"]] == same
    assert [r["videos"] for r in rows["dialogues_heldout.jsonl"]] == [r["videos"] for r in rows["dialogues.jsonl"]]
    counts = [json.loads(line) for line in (root / "count_qa.jsonl").read_text().splitlines()]
    truth = {row["video"]: Scene.from_dict(row["scene"]) for row in rows["scenes.jsonl"]}
    asked = {(row["video"], row["question"], row["answer"]) for row in counts}
    several = {(video, qa.question, qa.answer) for video, scene in truth.items()
               for qa in sw.count_questions(scene, np.random.default_rng([scene.seed, 5])) if qa.answer != "1"}
    assert several <= asked  # every count answered 2 or 3, and half as many answered 1
    assert sum(row["answer"] == "1" for row in counts) == len(several) // 2 and len(counts) == len(asked)
    for row in rows["dialogues.jsonl"]:
        assert set(row) == {"videos", "turns"}
        for turn in row["turns"]:
            assert set(turn) == {"role", "text", "videos"}
            assert all(0 <= v < len(row["videos"]) for v in turn["videos"])
    for row in rows["scenes.jsonl"]:
        assert set(row) == {"video", "scene"}
        scene = Scene.from_dict(row["scene"])
        assert row["video"] == f"clips/{scene.seed}.mp4" and not row["video"].startswith("/")
        # The file decodes back to (nearly) the rendered frames.
        clip = video_api.load_video(root / row["video"], num_frames=8)
        assert clip.frames.shape == (8, 64, 64, 3)
        assert np.abs(clip.frames.astype(np.int16) - render_frames(scene)).mean() < 8

    mtimes = {p: p.stat().st_mtime_ns for p in root.rglob("*") if p.is_file()}
    before = {p: p.read_bytes() for p in mtimes}
    clips[0].write_bytes(b"")  # a broken clip is rendered again
    build_split(tmp_path, "test", 4, width=64, height=64, num_frames=8, progress=False)
    for p, mtime in mtimes.items():
        if p != clips[0]:
            assert p.stat().st_mtime_ns == mtime, p
            assert p.read_bytes() == before[p]
    assert video_api.load_video(clips[0], num_frames=8).frames.shape == (8, 64, 64, 3)
    assert not list(root.rglob("*.part"))


def test_canonical_caption_row_names_objects_from_left_to_right():
    from dataclasses import replace

    right = sw.SceneObject("circle", "red", "up", size=0.2, x=0.8, y=0.5, speed=0.3)
    left = sw.SceneObject("square", "blue", "grows", size=0.2, x=0.2, y=0.5, speed=1.5)
    scene = replace(scene_from_spec("circle", "red", "up", background=Background("plain", ("gray",))),
                    objects=[right, left])
    assert caption(scene).startswith("A red circle")  # drawing order
    assert sw.left_to_right(scene).objects == [left, right]
    assert captions(sw.left_to_right(scene))[0] == ("A blue square grows and a red circle moves up "
                                                    "on a gray background.")


def test_time_reversed_scene_renders_the_clip_backwards():
    for seed in range(6):
        scene = sw.sample_scene(seed, width=64, height=64, num_frames=8)
        backwards = sw.time_reversed(scene)
        assert [o.motion for o in backwards.objects] == [sw.REVERSED_MOTIONS[o.motion] for o in scene.objects]
        np.testing.assert_array_equal(sw.render_frames(backwards), sw.render_frames(scene)[::-1])
    assert all(sw.REVERSED_MOTIONS[sw.REVERSED_MOTIONS[m]] == m for m in sw.MOTIONS)


def test_captions_rows_give_the_readings_of_the_clip_played_backwards(tmp_path):
    root = sw.build_split(tmp_path, "val", 3, width=64, height=64, num_frames=8, progress=False)
    rows = [json.loads(line) for line in (root / "captions.jsonl").read_text().splitlines()]
    scenes = [sw.Scene.from_dict(json.loads(line)["scene"]) for line in (root / "scenes.jsonl").read_text().splitlines()]
    for row, scene in zip(rows, scenes):
        assert row["grounding_captions"] == sw.object_orders(scene)
        assert row["reversed_grounding_captions"] == sw.object_orders(sw.time_reversed(scene))


def test_object_orders_are_the_canonical_caption_in_every_order():
    from dataclasses import replace

    a = sw.SceneObject("circle", "red", "up", size=0.2, x=0.8, y=0.5, speed=0.3)
    b = sw.SceneObject("square", "blue", "grows", size=0.2, x=0.2, y=0.5, speed=1.5)
    c = sw.SceneObject("triangle", "green", "still", size=0.2, x=0.5, y=0.5, speed=0.0)
    scene = replace(scene_from_spec("circle", "red", "up", background=Background("plain", ("gray",))),
                    objects=[a, b, c])
    orders = sw.object_orders(scene)
    assert len(orders) == 6 == len(set(orders))
    assert orders[0] == captions(sw.left_to_right(scene))[0]  # left to right first
    assert "A red circle moves up, a green triangle stays still and a blue square grows on a gray background." in orders
    assert sw.object_orders(replace(scene, objects=[a])) == [captions(replace(scene, objects=[a]))[0]]
    assert len(sw.object_orders(replace(scene, objects=[a, a]))) == 1  # identical objects: one reading
