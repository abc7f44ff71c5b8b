"""Batch prediction on a tiny model: kept fields, per-row errors, resuming, and a torn last line."""

import json

import numpy as np
import pytest

from gpt4video.batch import PredictSummary, predict_file, read_done_lines
from gpt4video.errors import InputError
from gpt4video.modeling import GenerationParams
from gpt4video.video import write_video


@pytest.fixture(scope="module")
def tiny_model(tiny_saved_model_dir):
    from gpt4video.modeling import GPT4Video

    return GPT4Video.from_pretrained(tiny_saved_model_dir)


@pytest.fixture
def counting(tiny_model):
    """An Assistant over the tiny model that counts its calls to ``ask``."""
    from gpt4video.pipeline import Assistant

    class Counting(Assistant):
        calls = 0

        def ask(self, *args, **kwargs):
            self.calls += 1
            return super().ask(*args, **kwargs)

    return Counting(tiny_model)


PARAMS = GenerationParams(max_new_tokens=2)


@pytest.fixture
def input_file(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "clips").mkdir()
    write_video(tmp_path / "clips" / "a.mp4", rng.integers(0, 255, (8, 48, 64, 3), dtype=np.uint8))
    (tmp_path / "notes.mp4").write_text("this is text, not a video\n" * 20)
    rows = [
        json.dumps({"id": 1, "question": "What color is it?", "video": "clips/a.mp4", "meta": {"k": [1, 2]}}),
        json.dumps({"id": 2, "prompt": "Show me a red circle that grows."}),
        "{not json",
        "",
        json.dumps({"id": 4, "video": "clips/a.mp4"}),
        json.dumps({"id": 5, "question": "Compare them.", "videos": ["clips/a.mp4", "missing.mp4"]}),
        json.dumps({"id": 6, "question": "What is it?", "video": "notes.mp4"}),
        json.dumps({"id": 7, "question": "Hi", "video": "clips/a.mp4", "videos": ["clips/a.mp4"]}),
        json.dumps({"id": 8, "question": "Two clips?", "videos": ["clips/a.mp4", str(tmp_path / "clips" / "a.mp4")]}),
    ]
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def read_rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_rows_keep_fields_and_bad_rows_get_an_error(counting, input_file, tmp_path):
    out = tmp_path / "out" / "pred.jsonl"
    summary = predict_file(counting, input_file, out, params=PARAMS, progress=False)
    assert summary == PredictSummary(rows=8, written=8, skipped_existing=0, errors=5)
    rows = {r["_line"]: r for r in read_rows(out)}
    assert sorted(rows) == [1, 2, 3, 5, 6, 7, 8, 9]  # line 4 is blank
    good = rows[1]
    assert good["id"] == 1 and good["meta"] == {"k": [1, 2]} and good["video"] == "clips/a.mp4"
    assert isinstance(good["text"], str) and "generation" in good["timings"] and "error" not in good
    assert isinstance(rows[2]["text"], str) and rows[2]["prompt"].startswith("Show me")
    assert isinstance(rows[9]["text"], str)
    for line, words in {3: "JSON", 5: "question", 6: "missing.mp4", 7: "notes.mp4", 8: "not both"}.items():
        assert "text" not in rows[line] and words in rows[line]["error"], rows[line]
    assert rows[5]["id"] == 4  # fields of a bad row are kept too
    assert counting.calls == 5  # three good rows, and two whose videos fail in the model's loader


def test_rerun_resumes_without_recomputing(counting, input_file, tmp_path):
    out = tmp_path / "pred.jsonl"
    predict_file(counting, input_file, out, params=PARAMS, progress=False)
    before, calls = out.read_bytes(), counting.calls

    def must_not_load():
        raise AssertionError("the model must not be loaded when every row is done")

    summary = predict_file(must_not_load, input_file, out, params=PARAMS, progress=False)
    assert summary == PredictSummary(rows=8, written=0, skipped_existing=8, errors=0)
    assert out.read_bytes() == before and counting.calls == calls


def test_a_torn_last_line_is_dropped_and_redone(counting, input_file, tmp_path):
    out = tmp_path / "pred.jsonl"
    predict_file(counting, input_file, out, params=PARAMS, progress=False)
    full = read_rows(out)
    data = out.read_bytes()
    last_start = data.rstrip(b"\n").rfind(b"\n") + 1
    out.write_bytes(data[: last_start + 10])  # a crash in the middle of writing the last row
    assert read_done_lines(out, repair=False) == {r["_line"] for r in full[:-1]}

    loads = []

    def loader():
        loads.append(1)
        return counting

    counting.calls = 0
    summary = predict_file(loader, input_file, out, params=PARAMS, progress=False)
    assert summary.written == 1 and summary.skipped_existing == 7 and loads == [1] and counting.calls == 1
    again = read_rows(out)
    assert [r["_line"] for r in again] == [r["_line"] for r in full]
    assert again[-1]["text"] == full[-1]["text"]  # greedy decoding: the same answer


def test_video_dir_and_foreign_output(counting, input_file, tmp_path):
    other = tmp_path / "elsewhere"
    other.mkdir()
    src = tmp_path / "q.jsonl"
    src.write_text(json.dumps({"question": "What is it?", "video": "clips/a.mp4"}) + "\n")
    summary = predict_file(counting, src, other / "o.jsonl", video_dir=other, params=PARAMS, progress=False)
    assert summary.errors == 1 and "elsewhere" in read_rows(other / "o.jsonl")[0]["error"]
    summary = predict_file(counting, src, other / "p.jsonl", video_dir=tmp_path, params=PARAMS, progress=False)
    assert summary.errors == 0

    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text('{"a": 1}\n{"b": 2}\n')
    with pytest.raises(InputError, match="not an output row"):
        predict_file(counting, src, foreign, params=PARAMS, progress=False)
    assert foreign.read_text() == '{"a": 1}\n{"b": 2}\n'
    foreign.write_text("some notes, not JSON")  # no final newline, but not a torn row either: kept
    with pytest.raises(InputError, match="not an output row"):
        predict_file(counting, src, foreign, params=PARAMS, progress=False)
    assert foreign.read_text() == "some notes, not JSON"
    with pytest.raises(InputError, match="not found"):
        predict_file(counting, tmp_path / "nope.jsonl", tmp_path / "x.jsonl", progress=False)


def test_rows_with_audio_files_are_heard_and_bad_audio_is_the_rows_error(tiny_model, hears_red_ball, tmp_path):
    from gpt4video.audio.synthesis import mix, narrate, write_audio
    from gpt4video.pipeline import Assistant

    write_audio(tmp_path / "speech.wav", mix([(0.5, narrate("good morning"))], 3.0))
    (tmp_path / "broken.wav").write_bytes(b"RIFF" + b"\x00" * 64)
    rows = [{"question": "What is said?", "audio": "speech.wav"},
            {"question": "And these?", "audio": ["speech.wav", "broken.wav"]},
            {"question": "Empty?", "audio": [""]}]
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = predict_file(Assistant(tiny_model, speech=hears_red_ball), tmp_path / "in.jsonl", tmp_path / "out.jsonl",
                           params=PARAMS, progress=False)
    heard, broken, empty = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert summary.errors == 2 and "error" not in heard
    assert len(heard["subtitles"]) == 1 and heard["subtitles"][0].startswith('Subtitles: "the red ball"')
    assert heard["input_audio"] == [str(tmp_path / "speech.wav")] and heard["audio"] == "speech.wav"
    assert "broken.wav" in broken["error"] and "'audio' must hold non-empty path strings" in empty["error"]
