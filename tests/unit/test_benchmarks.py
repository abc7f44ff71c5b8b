"""The public benchmark readers (MSVD-QA, MSRVTT-QA, ActivityNet-QA, MSR-VTT captions) on small files written here
in the released layouts, and the runs over them: predictions through the batch machinery, exact / contains
match without a judge, and the same figures as the synthetic evaluation on the same questions."""

import json
import re

import pytest

from gpt4video.errors import InputError
from gpt4video.evaluation.benchmarks import (
    evaluate_video_qa,
    predict_rows,
    read_msrvtt_captions,
    read_video_qa,
)


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return path


def touch(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")
    return path


def lines():
    said = []
    return said, said.append


# -- video QA readers ----------------------------------------------------------------------------------------


def test_msvd_qa_test_q_and_test_a_are_joined_by_question_id(tmp_path):
    write_json(tmp_path / "test_q.json", [
        {"video_name": "-4wsuPCjDBc_5_15", "question_id": 0, "question": "what is the man doing?"},
        {"video_name": "-4wsuPCjDBc_5_15", "question_id": 1, "question": "who is talking?"},
        {"video_name": "gone_1_2", "question_id": 2, "question": "what falls?"},
    ])
    # answers in another order: joined by id, not by position
    write_json(tmp_path / "test_a.json", [{"answer": "man", "question_id": 1, "type": "who"},
                                          {"answer": "rock", "question_id": 2},
                                          {"answer": "talk", "question_id": 0, "type": "what"}])
    touch(tmp_path / "videos" / "-4wsuPCjDBc_5_15.avi")
    said, report = lines()
    qa = read_video_qa("msvd-qa", tmp_path, report=report)
    assert [(i.question_id, i.answer, i.type) for i in qa.items] == [("0", "talk", "what"), ("1", "man", "who")]
    assert qa.items[0].video == str(tmp_path / "videos" / "-4wsuPCjDBc_5_15.avi")
    assert [i.question_id for i in qa.missing] == ["2"]
    assert len(said) == 1 and "question 2" in said[0] and "'gone_1_2' not found" in said[0]


def test_msvd_qa_release_with_the_youtube_mapping(tmp_path):
    write_json(tmp_path / "test_qa.json", [
        {"answer": "cat", "id": 30933, "question": "what is playing?", "video_id": 1201},
        {"answer": "dog", "id": 30934, "question": "what runs?", "video_id": 1202},
    ])
    with pytest.raises(InputError, match="youtube_mapping.txt"):
        read_video_qa("msvd-qa", tmp_path, report=None)
    (tmp_path / "youtube_mapping.txt").write_text("abc_1_9 vid1201\nxyz_3_4 vid1202\n")
    touch(tmp_path / "YouTubeClips" / "abc_1_9.avi")
    touch(tmp_path / "YouTubeClips" / "xyz_3_4.avi")
    qa = read_video_qa("msvd-qa", tmp_path, report=None)
    assert [(i.question_id, i.video_name, i.video.rsplit("/", 1)[1]) for i in qa.items] == [
        ("30933", "vid1201", "abc_1_9.avi"), ("30934", "vid1202", "xyz_3_4.avi")]
    (tmp_path / "youtube_mapping.txt").write_text("abc_1_9 vid1201 extra\n")
    with pytest.raises(InputError, match=r"youtube_mapping.txt:1: expected"):
        read_video_qa("msvd-qa", tmp_path, report=None)


def test_msrvtt_and_activitynet_video_names(tmp_path):
    msrvtt = tmp_path / "msrvtt"
    write_json(msrvtt / "test_qa.json", [{"answer": "car", "id": 1, "question": "what drives?", "video_id": 7010,
                                          "category_id": 0}])
    touch(msrvtt / "TestVideo" / "video7010.mp4")
    qa = read_video_qa("msrvtt-qa", msrvtt, report=None)
    assert qa.items[0].video.endswith("TestVideo/video7010.mp4") and qa.items[0].type == 0

    anet = tmp_path / "anet"
    write_json(anet / "test_q.json", [{"video_name": "Lf_7RurLgp0", "question_id": "v_Lf_7RurLgp0_0",
                                       "question": "is the athlete wearing trousers"},
                                      {"video_name": "v_abc", "question_id": "v_abc_1", "question": "what color"}])
    write_json(anet / "test_a.json", [{"answer": "yes", "question_id": "v_Lf_7RurLgp0_0", "type": 3},
                                      {"answer": "red", "question_id": "v_abc_1", "type": 4}])
    clips = tmp_path / "elsewhere"
    touch(clips / "v_Lf_7RurLgp0.mp4")
    touch(clips / "abc.mkv")
    touch(clips / "notes.txt")
    qa = read_video_qa("activitynet-qa", anet, clips, report=None)
    assert [i.video.rsplit("/", 1)[1] for i in qa.items] == ["v_Lf_7RurLgp0.mp4", "abc.mkv"] and not qa.missing


@pytest.mark.parametrize("files, needle", [
    ({}, "neither test_q.json"),
    ({"test_q.json": []}, "test_a.json is not there"),
    ({"test_q.json": "{not json", "test_a.json": []}, "test_q.json:1: not valid JSON"),
    ({"test_q.json": {"a": 1}, "test_a.json": []}, "expected a JSON list"),
    ({"test_q.json": [{"video_name": "v", "question_id": 1}], "test_a.json": []}, "item 0 has no 'question'"),
    ({"test_q.json": [{"video_name": "v", "question_id": 1, "question": "q"}],
      "test_a.json": [{"answer": "a", "question_id": 2}]}, "question_id '1' (item 0) has no answer"),
    ({"test_q.json": [], "test_a.json": [{"answer": "a", "question_id": 2}, {"answer": "b", "question_id": 2}]},
     "appears twice"),
    ({"test_q.json": [{"video_name": ["v"], "question_id": 1, "question": "q"}],
      "test_a.json": [{"answer": "a", "question_id": 1}]}, "'video_name' must be a string"),
])
def test_bad_qa_files_are_one_clear_error(tmp_path, files, needle):
    for name, content in files.items():
        (tmp_path / name).write_text(content if isinstance(content, str) else json.dumps(content))
    with pytest.raises(InputError, match=re.escape(needle)):
        read_video_qa("msrvtt-qa", tmp_path, report=None)


def test_missing_folders_and_unknown_benchmark(tmp_path):
    with pytest.raises(InputError, match="data folder not found"):
        read_video_qa("msvd-qa", tmp_path / "nope")
    write_json(tmp_path / "test_q.json", [])
    write_json(tmp_path / "test_a.json", [])
    with pytest.raises(InputError, match="video folder not found"):
        read_video_qa("msvd-qa", tmp_path, tmp_path / "no-videos")
    with pytest.raises(InputError, match="unknown video QA benchmark"):
        read_video_qa("tgif-qa", tmp_path)


# -- MSR-VTT captions ----------------------------------------------------------------------------------------


def msrvtt_folder(root):
    write_json(root / "test_videodatainfo.json", {
        "info": {}, "videos": [{"video_id": f"video{n}", "split": "test", "id": n} for n in (7010, 7011, 7012)],
        "sentences": [{"video_id": f"video{n}", "caption": f"caption {k} of {n}", "sen_id": k}
                      for n in (7010, 7011, 7012) for k in range(3)]})
    write_json(root / "train_val_videodatainfo.json", {
        "videos": [{"video_id": "video6600", "split": "validate"}, {"video_id": "video0", "split": "train"}],
        "sentences": [{"video_id": "video6600", "caption": "a validation caption"},
                      {"video_id": "video0", "caption": "a training caption"}]})
    for n in (7010, 7011, 6600):
        touch(root / "TestVideo" / f"video{n}.mp4")
    return root


def test_msrvtt_caption_splits(tmp_path):
    root = msrvtt_folder(tmp_path)
    said, report = lines()
    test = read_msrvtt_captions(root, report=report)
    assert [i.video_id for i in test.items] == ["video7010", "video7011"]
    assert test.items[0].references == ["caption 0 of 7010", "caption 1 of 7010", "caption 2 of 7010"]
    assert [i.video_id for i in test.missing] == ["video7012"] and len(said) == 1 and "clip video7012" in said[0]
    val = read_msrvtt_captions(root, split="validate", report=None)
    assert [(i.video_id, i.references) for i in val.items] == [("video6600", ["a validation caption"])]

    with pytest.raises(InputError, match="MSRVTT_JSFUSION_test.csv, which is not there"):
        read_msrvtt_captions(root, split="1k-a", report=None)
    (root / "MSRVTT_JSFUSION_test.csv").write_text(
        "key,vid_key,video_id,sentence\nret0,msr7011,video7011,a caption\nret1,msr7010,video7010,another\n")
    one_k = read_msrvtt_captions(root, split="1k-a", report=None)
    assert [i.video_id for i in one_k.items] == ["video7011", "video7010"] and len(one_k.items[0].references) == 3

    # MSRVTT_data.json repeats the clips of the other files: their references are not doubled
    write_json(root / "MSRVTT_data.json", {"videos": [{"video_id": "video7010", "split": "test"}],
                                           "sentences": [{"video_id": "video7010", "caption": "caption 0 of 7010"}]})
    assert len(read_msrvtt_captions(root, report=None).items[0].references) == 3


@pytest.mark.parametrize("content, needle", [
    ({"videos": []}, "lists 'videos' and 'sentences'"),
    ({"videos": [{"split": "test"}], "sentences": []}, "videos item 0 has no 'video_id'"),
    ({"videos": [{"video_id": "video1", "split": "test"}], "sentences": [{"video_id": "video1"}]},
     "sentences item 0 needs 'video_id' and 'caption'"),
    ({"videos": [{"video_id": "video1", "split": "test"}], "sentences": []}, "have no reference captions"),
    ({"videos": [{"video_id": "video1", "split": "train"}], "sentences": []}, "no clips of split 'test'"),
])
def test_bad_msrvtt_files(tmp_path, content, needle):
    write_json(tmp_path / "test_videodatainfo.json", content)
    with pytest.raises(InputError, match=needle):
        read_msrvtt_captions(tmp_path, report=None)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="none of test_videodatainfo.json"):
        read_msrvtt_captions(tmp_path / "empty")


# -- runs ----------------------------------------------------------------------------------------------------


class _Reply:
    def __init__(self, text):
        from gpt4video.pipeline import ReplyOutput

        self.output = ReplyOutput(text=text, raw_text=text)
        self.generated = []

    def consume(self):
        return self


class FakeAssistant:
    """Answers from a table (question, video) -> text, records what it was asked."""

    def __init__(self, answers):
        self.answers, self.asked = answers, []

    def reset(self):
        pass

    def ask(self, question, videos, params=None):
        self.asked.append((question, list(videos)))
        if not videos or videos[0].endswith("broken.mp4"):
            raise InputError(f"{videos[0] if videos else '?'}: cannot be decoded")
        return _Reply(self.answers.get((question, videos[0]), "no idea"))


@pytest.fixture
def fake_assistant(monkeypatch):
    """Put a FakeAssistant behind batch.predict_file (the real resumable writer, with answers we choose)."""
    import gpt4video.batch as batch

    made = []

    def use(answers):
        fake = FakeAssistant(answers)
        made.append(fake)
        monkeypatch.setattr(batch, "_as_assistant", lambda model: fake)
        return fake

    return use


def test_predictions_resume_and_refuse_other_questions(tmp_path, fake_assistant):
    rows = [{"question": "q1", "video": "/v/a.mp4"}, {"question": "q2", "video": "/v/broken.mp4"}]
    fake = fake_assistant({("q1", "/v/a.mp4"): "red"})
    out = predict_rows("unused", rows, tmp_path / "out", progress=False)
    assert [o.get("text") for o in out] == ["red", None] and "cannot be decoded" in out[1]["error"]
    assert len(fake.asked) == 2
    again = predict_rows("unused", rows, tmp_path / "out", progress=False)
    assert again == out and len(fake.asked) == 2  # nothing asked twice
    with pytest.raises(InputError, match="holds predictions for other inputs"):
        predict_rows("unused", rows[:1], tmp_path / "out", progress=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="must be a directory"):
        predict_rows("unused", rows, tmp_path / "file", progress=False)


def test_video_qa_without_a_judge(tmp_path, fake_assistant):
    write_json(tmp_path / "test_q.json", [
        {"video_name": "a", "question_id": "q0", "question": "what color is it?"},
        {"video_name": "a", "question_id": "q1", "question": "what shape is it?"},
        {"video_name": "b", "question_id": "q2", "question": "how many are there?"},
        {"video_name": "broken", "question_id": "q3", "question": "what moves?"},
        {"video_name": "gone", "question_id": "q4", "question": "what falls?"},
    ])
    write_json(tmp_path / "test_a.json", [{"answer": "red", "question_id": "q0", "type": "color"},
                                          {"answer": "circle", "question_id": "q1", "type": "shape"},
                                          {"answer": "two", "question_id": "q2", "type": "count"},
                                          {"answer": "car", "question_id": "q3", "type": "what"},
                                          {"answer": "rock", "question_id": "q4", "type": "what"}])
    for name in ("a", "b", "broken"):
        touch(tmp_path / "videos" / f"{name}.mp4")
    a, b = str(tmp_path / "videos" / "a.mp4"), str(tmp_path / "videos" / "b.mp4")
    fake_assistant({("what color is it?", a): "Red.", ("what shape is it?", a): "It is a circle.",
                    ("how many are there?", b): "3"})
    qa = read_video_qa("msvd-qa", tmp_path, report=None)
    r = evaluate_video_qa("unused", qa, tmp_path / "out", progress=False, model_name="m")
    assert r["judge"] is None and r["accuracy"] is None and r["score"] is None
    assert r["no_judge"] == {"n": 3, "exact": 1, "contains": 2, "accuracy_exact": 1 / 3, "accuracy_contains": 2 / 3}
    assert r["counts"] == {"questions": 5, "missing_videos": 1, "asked": 4, "prediction_errors": 1, "answered": 3}
    assert r["missing_videos"] == ["q4"] and r["prediction_errors"][0]["question_id"] == "q3"
    assert r["by_type"]["color"] == {"n": 1, "accuracy_exact": 1.0} and r["by_type"]["count"]["accuracy_exact"] == 0
    scored = [json.loads(x) for x in (tmp_path / "out" / "scored.jsonl").read_text().splitlines()]
    assert [(s["question_id"], s["exact"], s["contains"]) for s in scored] == [
        ("q0", True, True), ("q1", False, True), ("q2", False, False)]

    from gpt4video.evaluation.benchmarks import format_video_qa_markdown

    md = format_video_qa_markdown(r)
    assert "| no judge | 3 | 33.3% | 66.7% |" in md and "| judge |" not in md


def test_one_truth_two_readers(tmp_path, fake_assistant):
    """A synthetic split's questions written in the MSVD-QA format score as `gpt4video eval` scores them."""
    from gpt4video.data.synthetic.splits import build_split
    from gpt4video.evaluation import evaluate_split

    split = build_split(tmp_path / "synth", "test", 3, width=64, height=64, num_frames=8, progress=False)
    rows = [json.loads(x) for x in (split / "qa.jsonl").read_text().splitlines()]
    # right on every other question, in a sentence on every third: both readers must agree on each
    answers = {}
    for k, row in enumerate(rows):
        video = str(split / row["video"])
        answers[(row["question"], video)] = (row["answer"] if k % 2 == 0 else "nothing") if k % 3 else \
            f"The answer is {row['answer']}."
    synthetic = evaluate_split(None, split, answer_fn=lambda q, v, h=(): answers[(q, v[0])], phrasing="train",
                               max_captions=0, max_generation=0, max_images=0, max_narration=0, max_sounds=0,
                               progress=False)

    bench = tmp_path / "msvd"
    write_json(bench / "test_q.json", [{"video_name": row["video"].rsplit("/", 1)[1].rsplit(".", 1)[0],
                                        "question_id": k, "question": row["question"]} for k, row in enumerate(rows)])
    write_json(bench / "test_a.json", [{"answer": str(row["answer"]), "question_id": k, "type": row["type"]}
                                       for k, row in enumerate(rows)])
    fake_assistant(answers)
    qa = read_video_qa("msvd-qa", bench, split / "clips", report=None)
    assert len(qa.items) == len(rows) and not qa.missing
    r = evaluate_video_qa("unused", qa, tmp_path / "out", progress=False)
    overall = synthetic["qa"]["overall"]
    assert 0 < overall["accuracy_exact"] < 1
    assert r["no_judge"]["accuracy_exact"] == overall["accuracy_exact"]
    assert r["no_judge"]["accuracy_contains"] == overall["accuracy_contains_gold"]
    assert {t: c["accuracy_exact"] for t, c in r["by_type"].items()} == \
        {t: c["accuracy_exact"] for t, c in synthetic["qa"]["by_type"].items()}


needs_coco = pytest.mark.skipif(__import__("importlib").util.find_spec("pycocoevalcap") is None,
                                reason="pycocoevalcap is not installed (the [eval] extra)")


@needs_coco
def test_captions_scored_against_every_reference(tmp_path, fake_assistant):
    from gpt4video.evaluation.benchmarks import evaluate_captions, format_captions_markdown
    from gpt4video.evaluation.synthetic import CAPTION_PROMPT

    root = msrvtt_folder(tmp_path / "msrvtt")
    touch(root / "TestVideo" / "video7012.mp4")
    videos = {n: str(root / "TestVideo" / f"video{n}.mp4") for n in (7010, 7011, 7012)}
    # a reference itself for one clip, a sentence sharing nothing for another
    fake_assistant({(CAPTION_PROMPT, videos[7010]): "caption 1 of 7010", (CAPTION_PROMPT, videos[7011]): "zzz qqq"})
    captions = read_msrvtt_captions(root, report=None)
    r = evaluate_captions("unused", captions, tmp_path / "out", tokenizer="simple", meteor=False, progress=False,
                          model_name="m")
    assert r["counts"] == {"clips": 3, "missing_videos": 0, "asked": 3, "prediction_errors": 0, "captioned": 3,
                           "references": 9}
    assert r["benchmark"] == "msr-vtt" and r["split"] == "test" and r["tokenizer"] == "simple"
    assert r["metrics"]["METEOR"] == "unavailable" and 0 < r["metrics"]["BLEU-1"] < 1
    # the same figures as caption_scores on the same pairs: one place for the metrics
    from gpt4video.evaluation.synthetic import caption_scores

    same = caption_scores([i.references for i in captions.items], ["caption 1 of 7010", "zzz qqq", "no idea"],
                          tokenizer="simple", meteor=False)
    assert r["metrics"] == same["metrics"]
    scored = [json.loads(x) for x in (tmp_path / "out" / "scored.jsonl").read_text().splitlines()]
    assert [s["prediction"] for s in scored] == ["caption 1 of 7010", "zzz qqq", "no idea"]
    assert "| BLEU-1 |" in format_captions_markdown(r)

    one = evaluate_captions("unused", captions, tmp_path / "one", max_clips=1, tokenizer="simple", meteor=False,
                            progress=False)
    assert one["counts"]["asked"] == 1 and one["metrics"]["BLEU-4"] == pytest.approx(1.0)


@needs_coco
def test_eval_captions_command(tiny_saved_model_dir, tmp_path, capsys):
    import numpy as np

    from gpt4video.cli import main
    from gpt4video.video import write_video

    root = msrvtt_folder(tmp_path / "msrvtt")
    rng = np.random.default_rng(0)
    for n in (7010, 7011):
        write_video(root / "TestVideo" / f"video{n}.mp4", rng.integers(0, 255, (8, 48, 64, 3), dtype=np.uint8))
    out = tmp_path / "out"
    argv = ["eval", "captions", "--benchmark", "msr-vtt", "--data", str(root), "--out", str(out), "--model",
            str(tiny_saved_model_dir), "--max-new-tokens", "3", "--no-progress", "--tokenizer", "simple",
            "--no-meteor"]
    assert main(argv) == 0
    stdout, err = capsys.readouterr()
    assert "clip video7012: video not found" in err and stdout.startswith("# MSR-VTT captioning (test split)")
    results = json.loads((out / "results.json").read_text())
    assert results["counts"]["captioned"] == 2 and set(results["metrics"]) >= {"BLEU-4", "CIDEr", "ROUGE-L"}
    for bad, needle in ((["--judge-base-url", "http://127.0.0.1:9/v1", "--judge-model", "j"], "takes no judge"),
                        (["--caption-split", "1k-a"], "MSRVTT_JSFUSION_test.csv")):
        assert main(argv + bad) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1
