"""Evaluation metrics on fixed predictions, and evaluate_split with stub answer functions (no model)."""

import importlib.util
import json
import shutil

import pytest

from gpt4video.data.phrasing import HELDOUT_FAMILIES, TRAIN_FAMILIES
from gpt4video.errors import InputError
from gpt4video.evaluation import (
    caption_scores,
    contains_answer,
    detection_scores,
    evaluate_split,
    format_markdown,
    has_video_prompt,
    qa_scores,
    write_report,
)

JAVA = shutil.which("java") is not None
needs_coco = pytest.mark.skipif(importlib.util.find_spec("pycocoevalcap") is None,
                                reason="pycocoevalcap is not installed (the [eval] extra)")


# -- QA ------------------------------------------------------------------------------------------
def test_qa_accuracy_by_type_and_overall():
    items = [
        ("color", "red", "red"),
        ("color", "red", "The circle is red."),  # a sentence: not exact, but contains the gold word
        ("color", "blue", "green"),
        ("count", "2", "Two."),  # number words as digits
        ("count", "3", "There are three objects."),
        ("existence", "no", "no"),
    ]
    s = qa_scores(items)
    assert s["n"] == 6 and list(s["by_type"]) == ["color", "count", "existence"]
    color = s["by_type"]["color"]
    assert (color["n"], color["exact"], color["contains_gold"]) == (3, 1, 2)
    assert color["accuracy_exact"] == pytest.approx(1 / 3) and color["accuracy_contains_gold"] == pytest.approx(2 / 3)
    assert s["by_type"]["count"]["accuracy_exact"] == 0.5 and s["by_type"]["count"]["accuracy_contains_gold"] == 1.0
    assert s["overall"]["accuracy_exact"] == pytest.approx(3 / 6)
    assert s["overall"]["accuracy_contains_gold"] == pytest.approx(5 / 6)
    assert s["macro_accuracy_exact"] == pytest.approx((1 / 3 + 1 / 2 + 1) / 3)
    assert qa_scores([])["overall"]["accuracy_exact"] is None


def test_contains_answer_matches_whole_words_only():
    assert contains_answer("It moves to the left.", "left")
    assert not contains_answer("leftover", "left")
    assert contains_answer("There are two.", "2")


# -- generation requests -------------------------------------------------------------------------
def test_video_prompt_detection():
    assert has_video_prompt("Sure! <video_prompt>A red circle grows.</video_prompt>")
    assert has_video_prompt("<video_prompt>\nA red\ncircle.\n</video_prompt> done")
    assert not has_video_prompt("<video_prompt>   </video_prompt>")
    assert not has_video_prompt("<video_prompt>A red circle grows.")  # never closed
    assert not has_video_prompt("A red circle.")


def test_precision_recall_f1():
    labels = [True, True, True, True, False, False, False]
    predicted = [True, True, True, False, True, False, False]
    s = detection_scores(labels, predicted)
    assert (s["tp"], s["fp"], s["fn"], s["tn"]) == (3, 1, 1, 2)
    assert (s["positives"], s["negatives"], s["n"]) == (4, 3, 7)
    assert s["precision"] == 0.75 and s["recall"] == 0.75 and s["f1"] == 0.75
    assert s["accuracy"] == pytest.approx(5 / 7)
    none = detection_scores([True, False], [False, False])
    assert none["precision"] is None and none["recall"] == 0.0 and none["f1"] == 0.0


# -- captioning ----------------------------------------------------------------------------------
@needs_coco
def test_bleu_on_known_pairs():
    refs = [["A red circle moves to the right on a gray background.", "A red circle slides right."]]
    s = caption_scores(refs, ["A red circle moves right."], tokenizer="simple", meteor=False)
    m = s["metrics"]
    assert s["tokenizer"] == "simple" and 0 < m["BLEU-4"] < m["BLEU-1"] <= 1 and 0 < m["ROUGE-L"] <= 1
    assert m["METEOR"] == "unavailable" and "METEOR" in s["unavailable"]
    same = caption_scores([["A red circle moves right on a gray background."]],
                          ["a red circle moves right on a gray background"], tokenizer="simple", meteor=False)
    assert same["metrics"]["BLEU-4"] == pytest.approx(1.0) and same["metrics"]["ROUGE-L"] == pytest.approx(1.0)
    empty = caption_scores([["A red circle."], ["A blue square."]], ["", "A blue square."], tokenizer="simple",
                           meteor=False)
    assert 0 <= empty["metrics"]["BLEU-1"] < 1


@needs_coco
def test_meteor_is_unavailable_without_java(monkeypatch):
    import gpt4video.evaluation.synthetic as ev

    monkeypatch.setattr(ev.shutil, "which", lambda name: None)
    s = caption_scores([["A red circle grows."]], ["A red circle grows."])
    assert s["metrics"]["METEOR"] == "unavailable" and "java" in s["unavailable"]["METEOR"]
    assert s["tokenizer"] == "simple" and "java" in s["tokenizer_note"]
    with pytest.raises(InputError, match="PTB"):
        caption_scores([["A red circle grows."]], ["A red circle grows."], tokenizer="ptb")


@pytest.mark.slow
@needs_coco
@pytest.mark.skipif(not JAVA, reason="java is not installed")
def test_ptb_tokenizer_and_meteor_with_java():
    refs = [["A red circle moves to the right on a gray background."], ["Two blue squares grow."]]
    s = caption_scores(refs, ["A red circle moves to the right on a gray background.", ""], tokenizer="ptb")
    assert s["tokenizer"] == "ptb" and s["unavailable"] == {}
    assert 0 < s["metrics"]["METEOR"] < 1 and s["metrics"]["BLEU-1"] > 0


# -- evaluate_split ------------------------------------------------------------------------------
def prompt_reply(text):
    return f"Here it is. <video_prompt>{text}</video_prompt>"


@pytest.fixture
def split_dir(tmp_path):
    """A hand-written split in the layout of build_split (the clips are never opened by the stubs)."""
    qa = [
        {"video": "clips/0.mp4", "question": "What color is the circle?", "answer": "red", "type": "color"},
        {"video": "clips/0.mp4", "question": "How many objects are there?", "answer": "1", "type": "count"},
        {"video": "clips/1.mp4", "question": "What shape is the blue object?", "answer": "square", "type": "shape"},
        {"video": "clips/1.mp4", "question": "Which way does the blue square move?", "answer": "left", "type": "motion"},
    ]
    captions = [
        {"video": "clips/0.mp4", "caption": "A red circle grows on a black background.",
         "captions": ["A red circle grows on a black background.", "A red circle gets bigger on a black background."]},
        {"video": "clips/1.mp4", "caption": "A blue square moves left on a white background.",
         "captions": ["A blue square moves left on a white background.", "A blue square slides left."]},
    ]
    dialogues = [
        {"videos": [], "turns": [
            {"role": "user", "text": "Show me a purple square that grows.", "videos": []},
            {"role": "assistant", "text": prompt_reply("A purple square grows on a gray background.")},
            {"role": "user", "text": "Now make the square green.", "videos": []},
            {"role": "assistant", "text": prompt_reply("A green square grows on a gray background.")}]},
        {"videos": ["clips/0.mp4"], "turns": [
            {"role": "user", "text": "Describe this video.", "videos": [0]},
            {"role": "assistant", "text": "A red circle grows on a black background."},
            {"role": "user", "text": "What color is the circle?", "videos": []},
            {"role": "assistant", "text": "It is red."},
            {"role": "user", "text": "Make a similar video where the circle shrinks instead.", "videos": []},
            {"role": "assistant", "text": prompt_reply("A red circle shrinks on a black background.")}]},
        {"videos": ["clips/0.mp4", "clips/1.mp4"], "turns": [
            {"role": "user", "text": "Which video shows a square?", "videos": [0, 1]},
            {"role": "assistant", "text": "The second one."}]},
    ]
    for name, rows in (("qa.jsonl", qa), ("captions.jsonl", captions), ("dialogues.jsonl", dialogues)):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def oracle(split):
    """An answer function that gives the data's own answers, in- and out-of-template (and records what it
    was asked). QA answers are looked up by question and clip, dialogue replies by the user's text and the
    turns before it."""
    qa = {(r["question"], str(split / r["video"])): r["answer"]
          for name in ("qa.jsonl", "qa_heldout.jsonl") if (split / name).is_file()
          for r in map(json.loads, open(split / name))}
    qa.update({(r["turns"][0]["text"], str(split / r["video"])): r["turns"][1]["text"]
               for name in ("narration_qa.jsonl", "narration_qa_heldout.jsonl", "sound_qa.jsonl")
               if (split / name).is_file()
               for r in map(json.loads, open(split / name))})
    caps = {str(split / r["video"]): r["caption"] for r in map(json.loads, open(split / "captions.jsonl"))}
    replies = {}
    for name in ("dialogues.jsonl", "dialogues_heldout.jsonl", "image_requests.jsonl", "image_requests_heldout.jsonl"):
        for row in map(json.loads, open(split / name)) if (split / name).is_file() else ():
            turns = row["turns"]
            for k in range(0, len(turns) - 1, 2):
                replies.setdefault((turns[k]["text"], tuple(t["text"] for t in turns[:k])), turns[k + 1]["text"])
    asked = []

    def answer(question, videos, history=()):
        asked.append((question, list(videos)))
        if question == "Describe this video.":
            return caps[videos[0]]
        if videos and (question, videos[0]) in qa:
            return qa[(question, videos[0])]
        return replies[(question, tuple(h["text"] for h in history))]

    answer.asked = asked
    return answer


@needs_coco
def test_evaluate_split_with_an_oracle(split_dir, tmp_path):
    fn = oracle(split_dir)
    r = evaluate_split(None, split_dir, answer_fn=fn, tokenizer="simple", meteor=False, progress=False)
    assert r["qa"]["overall"]["accuracy_exact"] == 1.0 and set(r["qa"]["by_type"]) == {"color", "count", "shape", "motion"}
    assert r["captioning"]["metrics"]["BLEU-4"] == pytest.approx(1.0) and r["captioning"]["n"] == 2
    g = r["generation"]
    assert (g["positives"], g["negatives"], g["precision"], g["recall"], g["f1"]) == (3, 2, 1.0, 1.0, 1.0)
    assert g["recall_follow_up_requests"] == 1.0
    assert r["counts"] == {"qa": 4, "captioning": 2, "generation": 5, "answers": 11, "errors": 0}
    assert r["elapsed_seconds"]["total"] >= 0
    # Videos are absolute; a follow-up request is asked with the videos shown so far in its dialogue.
    asked = dict(fn.asked)
    assert asked["Make a similar video where the circle shrinks instead."] == [str(split_dir / "clips/0.mp4")]
    assert asked["Which video shows a square?"] == [str(split_dir / "clips/0.mp4"), str(split_dir / "clips/1.mp4")]
    assert asked["Now make the square green."] == []

    json_path, md_path = write_report(r, tmp_path / "report")
    assert json.loads(json_path.read_text())["qa"]["n"] == 4
    md = md_path.read_text()
    assert "| **overall** | 4 | 100.0% | 100.0% |" in md and "METEOR unavailable" in md and "| 5 | 3 | 2 |" in md


def test_follow_up_requests_are_asked_after_their_dialogue(split_dir):
    seen = {}

    def answer(question, videos, history=()):
        seen[question] = (list(videos), [dict(h) for h in history])
        return prompt_reply("A red circle.") if "make" in question.lower() or "show" in question.lower() else "red"

    r = evaluate_split(answer, split_dir, max_qa=0, max_captions=0, tokenizer="simple", meteor=False, progress=False)
    assert r["generation"]["recall_follow_up_requests"] == 1.0
    # every request is kept with what it asked for and what became of it, misses included
    kept = r["generation"]["requests"]
    assert len(kept) == r["generation"]["positives"]
    assert all({"question", "prediction", "check", "want"} <= set(k) for k in kept)
    assert sum(k["check"]["content_right"] for k in kept) == r["generation"]["content_right"]
    # the change to the clip shown is counted apart ("A red circle." is not the shrinking red circle asked for)
    assert (r["generation"]["edits_of_a_shown_clip"], r["generation"]["edits_content_right"]) == (1, 0)
    videos, history = seen["Make a similar video where the circle shrinks instead."]
    assert videos == [str(split_dir / "clips/0.mp4")]
    assert [h["text"] for h in history] == ["Describe this video.", "A red circle grows on a black background.",
                                           "What color is the circle?", "It is red."]
    assert history[0]["videos"] == [0] and history[2]["videos"] == []
    assert seen["Show me a purple square that grows."] == ([], [])  # a first turn has no history
    assert [h["role"] for h in seen["Now make the square green."][1]] == ["user", "assistant"]


@pytest.mark.slow
def test_assistant_answer_fn_replays_the_history(tiny_model_config, tmp_path):
    import numpy as np

    from gpt4video.evaluation.synthetic import assistant_answer_fn
    from gpt4video.modeling import GenerationParams, GPT4Video
    from gpt4video.pipeline import Assistant
    from gpt4video.video import write_video

    clip = str(write_video(tmp_path / "c.mp4", np.zeros((8, 64, 64, 3), np.uint8), fps=8))
    assistant = Assistant(GPT4Video.from_config(tiny_model_config))
    fn = assistant_answer_fn(assistant, GenerationParams(max_new_tokens=2))
    history = [{"role": "user", "text": "Describe this video.", "videos": [0]},
               {"role": "assistant", "text": "A circle."}]
    fn("Make it red.", [clip], history)
    assert [(t.role, t.text, t.videos) for t in assistant.turns[:3]] == [
        ("user", "Describe this video.", [0]), ("assistant", "A circle.", []), ("user", "Make it red.", [])]
    fn("And this one?", [clip, clip], history)  # the second clip joins the question
    assert assistant.turns[2].videos == [1] and len(assistant.turns) == 4


@pytest.fixture
def split_with_heldout(split_dir):
    """The hand-written split plus its held-out files: the same rows, worded otherwise."""
    qa = [json.loads(line) for line in open(split_dir / "qa.jsonl")]
    reworded = ["The circle: what colour is it?", "Objects in this video: how many?", "That blue one there, what shape "
                "would you call it?", "The blue box: where is it headed?"]
    (split_dir / "qa_heldout.jsonl").write_text("".join(json.dumps({**r, "question": q}) + "\n" for r, q in zip(qa, reworded)))
    dialogues = [json.loads(line) for line in open(split_dir / "dialogues.jsonl")]
    dialogues[0]["turns"][0]["text"] = "Produce footage where a purple block grows."
    dialogues[0]["turns"][2]["text"] = "The square: turn it green for the next one."
    dialogues[2]["turns"][0]["text"] = "A square: which of the two has it?"
    (split_dir / "dialogues_heldout.jsonl").write_text("".join(json.dumps(r) + "\n" for r in dialogues))
    return split_dir


def test_in_and_out_of_template_side_by_side(split_with_heldout):
    """A model that follows only the training wordings: perfect in-template, wrong out-of-template motion
    answers, and out-of-template videos with the right objects but the wrong motion."""
    split = split_with_heldout
    fn = oracle(split)
    held = {json.loads(line)["question"] for line in open(split / "qa_heldout.jsonl")}

    def answer(question, videos, history=()):
        reply = fn(question, videos, history)
        if question in held and reply == "left":
            return "up"
        if question.startswith(("Produce footage", "The square:")):
            return reply.replace("grows", "shrinks")
        return reply

    r = evaluate_split(answer, split, max_captions=0, tokenizer="simple", meteor=False, progress=False)
    assert r["qa"]["overall"]["accuracy_exact"] == 1.0
    assert r["qa_heldout"]["by_type"]["motion"]["accuracy_exact"] == 0.0
    assert r["qa_heldout"]["overall"]["accuracy_exact"] == 0.75
    g, h = r["generation"], r["generation_heldout"]
    assert (g["recall"], g["content_right_rate"], g["prompt_asks_for_request_rate"], g["no_video_rate"]) == (1.0, 1.0, 1.0, 1.0)
    assert (h["recall"], h["content_right"], h["prompt_asks_for_request"], h["no_video_rate"]) == (1.0, 1, 1, 1.0)
    check = r["generation_heldout"]["examples"][0]["check"]
    assert check["rendered"] and check["detected"] == [["purple", "square", "shrinks"]] and not check["content_right"]
    md = format_markdown(r)
    assert "| motion | 1 / 1 | 100.0% | 0.0% | 100.0% | 0.0% |" in md
    assert "| content right from the pixels (of requests) | 100.0% (3/3) | 33.3% (1/3) |" in md
    assert "| no video for ordinary questions | 100.0% (2/2) | 100.0% (2/2) |" in md
    # One column alone.
    only_out = evaluate_split(answer, split, phrasing="heldout", tokenizer="simple", meteor=False, progress=False)
    assert set(only_out["counts"]) == {"qa_heldout", "generation_heldout", "answers", "errors"}
    assert "not asked for" in only_out["qa"]["skipped"] and "not asked for" in only_out["captioning"]["skipped"]
    only_in = evaluate_split(answer, split, phrasing="train", max_captions=0, tokenizer="simple", meteor=False,
                             progress=False)
    assert "qa_heldout" not in only_in["counts"] and only_in["qa"]["n"] == 4
    with pytest.raises(InputError, match="phrasing"):
        evaluate_split(answer, split, phrasing="sideways", progress=False)


def test_a_split_without_heldout_files_says_how_to_get_them(split_dir):
    r = evaluate_split(oracle(split_dir), split_dir, max_captions=0, progress=False)
    assert "qa_heldout.jsonl not found" in r["qa_heldout"]["skipped"] and "gpt4video data synthetic" in r["qa_heldout"]["skipped"]
    assert "Out-of-template: qa_heldout.jsonl not found" in format_markdown(r)


def test_evaluate_split_with_a_poor_model_limits_and_errors(split_dir):
    def answer(question, videos, history=()):
        if question == "What shape is the blue object?":
            raise InputError("clips/1.mp4: cannot decode")
        return "It is red. <video_prompt>A red circle.</video_prompt>"

    r = evaluate_split(answer, split_dir, max_qa=3, max_captions=0, max_generation=2, tokenizer="simple",
                       progress=False)
    assert r["qa"]["n"] == 3 and r["qa"]["overall"]["exact"] == 0 and r["qa"]["overall"]["contains_gold"] == 1
    assert r["captioning"] == {"skipped": "switched off (limit 0)"}
    g = r["generation"]
    assert (g["n"], g["positives"], g["tp"], g["fp"], g["precision"], g["recall"]) == (2, 1, 1, 1, 0.5, 1.0)
    assert r["counts"]["errors"] == 1 and "cannot decode" in r["errors"][0]["error"]


@needs_coco
def test_evaluate_split_on_a_rendered_split(tmp_path):
    from gpt4video.data.synthetic import build_split

    split = build_split(tmp_path, "test", 12, width=64, height=64, num_frames=8, progress=False)
    fn = oracle(split)
    r = evaluate_split(fn, split, tokenizer="simple", meteor=False, progress=False)
    assert r["qa"]["overall"]["accuracy_exact"] == 1.0 and r["captioning"]["n"] == 12
    assert r["generation"]["fp"] == 0 and r["generation"]["fn"] == 0
    # Out-of-template: the same questions and requests in held-out wordings, side by side.
    assert r["qa_heldout"]["overall"]["accuracy_exact"] == 1.0 and r["qa_heldout"]["n"] == r["qa"]["n"]
    assert set(r["qa"]["by_family"]) <= set(TRAIN_FAMILIES)
    assert set(r["qa_heldout"]["by_family"]) <= set(HELDOUT_FAMILIES)
    assert sum(c["n"] for c in r["qa_heldout"]["by_family"].values()) == r["qa_heldout"]["n"]
    for task in ("generation", "generation_heldout"):
        g = r[task]
        assert g["positives"] > 0 and g["content_right"] == g["prompt_asks_for_request"] == g["tp"] == g["positives"]
        assert g["no_video"] == g["negatives"]
    for task in ("images", "images_heldout"):  # the data's own replies draw exactly what was asked
        g = r[task]
        assert g["positives"] > 0 and g["content_right"] == g["tp"] == g["positives"] and g["no_image"] == g["negatives"]
    for task in ("narration", "narration_heldout", "sounds"):
        assert r[task]["accuracy"] == 1.0
    assert "sounds_heldout" not in r and r["counts"]["sounds"] == 12  # one file, in-template only
    md = format_markdown(r)
    assert "| measure | in-template | out-of-template |" in md and "## Beeps (the sounds line)" in md
    with pytest.raises(InputError, match="not found"):
        evaluate_split(fn, tmp_path / "nope", progress=False)


@needs_coco
def test_evaluate_split_with_a_tiny_model(tmp_path, tiny_model_config):
    """The default answer function: a real (tiny, untrained) model answering about rendered clips."""
    from gpt4video.data.synthetic import build_split
    from gpt4video.modeling import GenerationParams, GPT4Video

    split = build_split(tmp_path, "test", 2, width=64, height=64, num_frames=8, progress=False)
    model = GPT4Video.from_config(tiny_model_config)
    r = evaluate_split(model, split, max_qa=2, max_captions=1, max_generation=2, max_images=2, max_narration=1,
                       max_sounds=1, params=GenerationParams(max_new_tokens=3), tokenizer="simple", meteor=False,
                       progress=False)
    # Both columns by default: in-template and out-of-template (the held-out files of a test split).
    assert r["counts"] == {"qa": 2, "captioning": 1, "generation": 2, "images": 2, "narration": 1, "sounds": 1,
                           "qa_heldout": 2, "generation_heldout": 2, "images_heldout": 2, "narration_heldout": 1,
                           "answers": 16, "errors": 0}
    assert r["model"] == {"source": "", "trained": False}
    assert all(isinstance(e["prediction"], str) for e in r["qa"]["examples"])


# -- beeps (sound_qa.jsonl) ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def sound_split(tmp_path_factory):
    """A rendered split with every kind of beep question (the first clip without a beep asked when it starts is
    the 20th of the test split's seeds)."""
    from gpt4video.data.synthetic import build_split

    return build_split(tmp_path_factory.mktemp("sounds"), "test", 20, width=64, height=64, num_frames=8,
                       progress=False)


def _sounds_only(answer, split, **kwargs):
    return evaluate_split(answer, split, max_qa=0, max_captions=0, max_generation=0, max_images=0, max_narration=0,
                          progress=False, **kwargs)


def test_beep_questions_by_kind_with_an_oracle(sound_split):
    fn = oracle(sound_split)
    r = _sounds_only(fn, sound_split)
    s = r["sounds"]
    rows = [json.loads(line) for line in open(sound_split / "sound_qa.jsonl")]
    assert list(s["by_kind"]) == ["when", "no_beep", "whether", "picture"]  # every kind, in report order
    assert (s["n"], s["right"], s["accuracy"]) == (len(rows), len(rows), 1.0) and r["counts"]["sounds"] == 20
    assert all(c["accuracy"] == 1.0 and c["right"] == c["n"] > 0 for c in s["by_kind"].values())
    # The kind comes from the row: a beep's start for "when", no beep and its reply for "no_beep".
    assert s["by_kind"]["when"]["n"] == sum(r["sound"] is not None and r["turns"][1]["text"].startswith("The beep")
                                            for r in rows)
    assert s["by_kind"]["no_beep"]["n"] == sum(r["turns"][1]["text"] == "There is no beep in this video."
                                               for r in rows)
    # Asked with the sounds line as the data gives it, and the clip.
    asked = [(q, v) for q, v in fn.asked if q in {row["turns"][0]["text"] for row in rows}]
    assert len(asked) == 20 and all(len(v) == 1 and v[0].startswith(str(sound_split)) for _, v in asked)
    assert any(q.startswith("Sounds: a beep (frame") for q, _ in asked)
    assert {"question", "gold", "prediction"} <= set(s["examples"][0])
    # In-template only: "both" runs it once, "heldout" does not ask it.
    assert "sounds_heldout" not in r and r["settings"]["max_sounds"] is None
    assert "not asked for" in _sounds_only(fn, sound_split, phrasing="heldout")["sounds"]["skipped"]
    md = format_markdown(r)
    assert "## Beeps (the sounds line)" in md
    assert f"| when does the beep start? (names the right frame) | {s['by_kind']['when']['n']} | " in md
    assert "| **overall** | 20 | 20 | 100.0% |" in md


def test_a_beep_at_the_wrong_frame_is_wrong(sound_split):
    import re

    from gpt4video.data.synthetic.sounds import beep_reply

    fn = oracle(sound_split)

    def answer(question, videos, history=()):
        reply = fn(question, videos, history)
        frame = re.fullmatch(r"The beep starts at frame (\d+)\.", reply)
        if frame:  # one frame late
            return beep_reply(int(frame.group(1)) + 1)
        if reply == "There is no beep in this video.":
            return "there is NO beep in this video"  # normalised: still right
        return {"Yes.": "yes", "No.": "Yes, there is."}.get(reply, reply)

    s = _sounds_only(answer, sound_split)["sounds"]["by_kind"]
    assert s["when"]["right"] == 0 and s["when"]["n"] > 0
    assert s["no_beep"]["accuracy"] == 1.0 and s["picture"]["accuracy"] == 1.0
    rows = [json.loads(line) for line in open(sound_split / "sound_qa.jsonl")]
    assert s["whether"]["right"] == sum(r["turns"][1]["text"] == "Yes." for r in rows) < s["whether"]["n"]


def test_max_sounds_limits_and_zero_skips(sound_split):
    fn = oracle(sound_split)
    r = _sounds_only(fn, sound_split, max_sounds=0)
    assert r["sounds"] == {"skipped": "switched off (limit 0)"} and "sounds" not in r["counts"]
    assert "## Beeps" not in format_markdown(r)
    three = _sounds_only(fn, sound_split, max_sounds=3)
    assert three["sounds"]["n"] == 3 and three["settings"]["max_sounds"] == 3


def test_a_split_made_before_the_beeps_skips_them(split_dir, tmp_path):
    r = evaluate_split(oracle(split_dir), split_dir, max_captions=0, progress=False)
    assert "sound_qa.jsonl not found" in r["sounds"]["skipped"] and "gpt4video data synthetic" in r["sounds"]["skipped"]
    assert "sounds" not in r["counts"] and r["qa"]["overall"]["accuracy_exact"] == 1.0
    assert "## Beeps" not in format_markdown(r)
    json_path, _ = write_report(r, tmp_path / "report")
    assert "skipped" in json.loads(json_path.read_text())["sounds"]


def test_a_beep_reply_that_disagrees_with_its_row_is_an_input_error(split_dir):
    row = {"video": "clips/0.mp4", "sound": None, "turns": [
        {"role": "user", "text": "When does the beep start?", "videos": [0]},
        {"role": "assistant", "text": "The beep starts at frame 2."}]}
    (split_dir / "sound_qa.jsonl").write_text(json.dumps(row) + "\n")
    with pytest.raises(InputError, match="sound_qa.jsonl row 1: .*does not agree"):
        evaluate_split(lambda q, v, h=(): "", split_dir, max_qa=0, max_captions=0, max_generation=0,
                       progress=False)


def test_eval_command_passes_max_sounds(split_dir, monkeypatch, capsys):
    import gpt4video.evaluation
    import gpt4video.modeling
    import gpt4video.pipeline
    from gpt4video.cli import main

    seen = {}

    class Stub:
        notes = ()

    monkeypatch.setattr(gpt4video.modeling, "resolve_config", lambda model: None)
    monkeypatch.setattr(gpt4video.pipeline.Assistant, "from_pretrained", lambda *a, **k: Stub())
    monkeypatch.setattr(gpt4video.evaluation, "evaluate_split", lambda *a, **k: seen.update(k) or {"ok": True})
    assert main(["eval", "--split-dir", str(split_dir), "--max-sounds", "7", "--json", "--no-progress"]) == 0
    assert seen["max_sounds"] == 7 and seen["max_narration"] is None
    assert json.loads(capsys.readouterr().out) == {"ok": True}
    assert main(["eval", "--split-dir", str(split_dir), "--json", "--no-progress"]) == 0 and seen["max_sounds"] is None


def test_assistant_restore_rejects_an_unknown_role(tiny_model_config):
    from gpt4video.errors import InputError
    from gpt4video.modeling import GPT4Video
    from gpt4video.pipeline import Assistant

    assistant = Assistant(GPT4Video.from_config(tiny_model_config))
    assistant.restore([("user", "Hi.", ()), ("assistant", "Hello.", ())])
    assert [(t.role, t.text, t.videos) for t in assistant.turns] == [("user", "Hi.", []), ("assistant", "Hello.", [])]
    with pytest.raises(InputError, match="role must be 'user' or 'assistant'"):
        assistant.restore([("system", "Be brief.", ())])
