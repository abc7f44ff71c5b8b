import json
import logging
from pathlib import Path

import pytest

from gpt4video.data import build_split
from gpt4video.data.formats import (
    CAPTION_INSTRUCTIONS,
    Example,
    LoadResult,
    choose_instruction,
    read_jsonl,
    sample_caption,
    strip_media_markers,
)
from gpt4video.data.loaders import detect_format, load_dataset, read_videochat_json, read_webvid_csv
from gpt4video.errors import InputError
from gpt4video.processing import Turn


def touch(path: Path) -> Path:
    """A stand-in video file (the readers only check that it exists; nothing is decoded)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"\x00not really a video")
    return path


def write_jsonl(path: Path, rows) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path):
    for name in ("a.mp4", "b.mp4", "c.mp4"):
        touch(tmp_path / "clips" / name)
    return tmp_path


# ---------------------------------------------------------------------------------------------
# JSONL schemas


def test_caption_rows(data_dir):
    path = write_jsonl(data_dir / "captions.jsonl", [
        {"video": "clips/a.mp4", "caption": "A red circle moves left.",
         "captions": ["A red circle moves left.", "A red circle slides left."]},
        {"video": "clips/b.mp4", "captions": ["A blue square grows."]},
    ])
    result = read_jsonl(path)
    assert not result.errors and len(result) == 2
    ex = result.examples[0]
    assert ex.kind == "caption"
    assert ex.videos == [str(data_dir / "clips" / "a.mp4")]
    assert ex.source == f"{path}:1"
    assert [t.role for t in ex.turns] == ["user", "assistant"]
    assert ex.turns[0].videos == [0] and ex.turns[0].text in CAPTION_INSTRUCTIONS
    assert ex.turns[1].text == "A red circle moves left."
    assert ex.meta["captions"] == ["A red circle moves left.", "A red circle slides left."]  # no duplicate
    assert result.examples[1].turns[1].text == "A blue square grows."  # first of "captions"
    # the instruction is fixed by the seed: same seed, same instructions
    again = read_jsonl(path)
    assert [e.turns[0].text for e in again.examples] == [e.turns[0].text for e in result.examples]


def test_caption_rows_with_grounding_readings(data_dir):
    readings = ["A red circle grows and a blue square shrinks.", "A blue square shrinks and a red circle grows."]
    path = write_jsonl(data_dir / "captions.jsonl", [
        {"video": "clips/a.mp4", "caption": readings[0], "grounding_captions": readings},
        {"video": "clips/b.mp4", "caption": "A blue square grows."},
        {"video": "clips/c.mp4", "caption": "A blue square grows.", "grounding_captions": [" "]},
        {"video": "clips/a.mp4", "caption": "A blue square grows.", "reversed_grounding_captions": ["A blue square shrinks."]},
        {"video": "clips/b.mp4", "caption": "A blue square grows.", "reversed_grounding_captions": []},
    ])
    result = read_jsonl(path)
    assert result.examples[0].meta["grounding_captions"] == readings
    assert "grounding_captions" not in result.examples[1].meta
    assert result.examples[2].meta["reversed_grounding_captions"] == ["A blue square shrinks."]
    assert [e.line for e in result.errors] == [3, 5]
    assert "'grounding_captions' is empty" in result.errors[0].message
    assert "'reversed_grounding_captions' is empty" in result.errors[1].message


def test_caption_instruction_varies_with_seed_and_sample_caption_per_epoch():
    picked = {choose_instruction(seed, "file.jsonl:1") for seed in range(40)}
    assert len(picked) > 1 and picked <= set(CAPTION_INSTRUCTIONS)
    assert choose_instruction(3, "x:1", epoch=2) == choose_instruction(3, "x:1", epoch=2)

    ex = Example(turns=[Turn("user", "Describe this video.", [0]), Turn("assistant", "one")],
                 videos=["/v.mp4"], source="f:1", kind="caption", meta={"captions": ["one", "two", "three"]})
    epochs = [sample_caption(ex, seed=0, epoch=e) for e in range(30)]
    assert {e.turns[1].text for e in epochs} == {"one", "two", "three"}
    assert all(e.turns[0].videos == [0] and e.meta["caption"] == e.turns[1].text for e in epochs)
    assert sample_caption(ex, seed=0, epoch=5).turns == sample_caption(ex, seed=0, epoch=5).turns
    assert ex.turns[1].text == "one"  # the original is untouched


def test_conversation_rows_relative_and_absolute_paths(data_dir):
    sub = data_dir / "ann"
    sub.mkdir()
    touch(sub / "local.mp4")
    path = write_jsonl(sub / "conv.jsonl", [
        {"videos": ["../clips/a.mp4", str(data_dir / "clips" / "b.mp4")],
         "turns": [{"role": "user", "text": "Compare.", "videos": [1, 0]},
                   {"role": "assistant", "text": "Both move."}]},
        {"video": "local.mp4",
         "conversations": [{"role": "user", "text": "What is it?"}, {"role": "assistant", "text": "A circle."}]},
    ])
    result = read_jsonl(path)
    assert not result.errors
    first, second = result.examples
    assert first.kind == "conversation"
    assert first.videos == [str(data_dir / "clips" / "a.mp4"), str(data_dir / "clips" / "b.mp4")]
    assert first.turns[0].videos == [1, 0]
    assert second.videos == [str(sub / "local.mp4")]
    # no turn references the video: it goes to the first user turn
    assert second.turns[0].videos == [0] and second.turns[1].videos == []

    # video_dir replaces the file's folder as the base of relative paths
    other = write_jsonl(data_dir / "x.jsonl", [{"video": "a.mp4", "question": "Q?", "answer": "A"}])
    assert read_jsonl(other, video_dir=data_dir / "clips").examples[0].videos == [str(data_dir / "clips" / "a.mp4")]


def test_unreferenced_videos_attach_to_first_user_turn(data_dir):
    path = write_jsonl(data_dir / "c.jsonl", [
        {"videos": ["clips/a.mp4", "clips/b.mp4"],
         "turns": [{"role": "user", "text": "Hi"}, {"role": "assistant", "text": "Hello"},
                   {"role": "user", "text": "More"}]},
    ])
    ex = read_jsonl(path).examples[0]
    assert [t.videos for t in ex.turns] == [[0, 1], [], []]


def test_text_only_dialogue(data_dir):
    path = write_jsonl(data_dir / "d.jsonl", [
        {"videos": [], "turns": [{"role": "user", "text": "Show me a red circle."},
                                 {"role": "assistant", "text": "Sure. <video_prompt>A red circle.</video_prompt>"}]},
        {"turns": [{"role": "user", "text": "Hi"}, {"role": "assistant", "text": "Hello"}]},
    ])
    result = read_jsonl(path, kind="dialogue")
    assert not result.errors
    assert [e.kind for e in result.examples] == ["dialogue", "dialogue"]
    assert result.examples[0].videos == []
    assert "<video_prompt>A red circle.</video_prompt>" in result.examples[0].turns[1].text


def test_qa_rows(data_dir):
    path = write_jsonl(data_dir / "qa.jsonl", [
        {"video": "clips/a.mp4", "question": "What color is the square?", "answer": "red", "type": "color"},
    ])
    ex = read_jsonl(path).examples[0]
    assert ex.kind == "conversation"
    assert [(t.role, t.text, t.videos) for t in ex.turns] == [
        ("user", "What color is the square?", [0]), ("assistant", "red", [])]
    assert ex.meta == {"format": "qa", "question": "What color is the square?", "answer": "red", "type": "color"}


def test_llava_spelling_in_jsonl_strips_markers_only():
    assert strip_media_markers("<video>\nWhat happens?") == "What happens?"
    assert strip_media_markers("<image> Look") == "Look"
    text = "Here: <video_prompt>A red circle.</video_prompt>"
    assert strip_media_markers(text) == text


def test_auto_detection_of_mixed_rows(data_dir):
    path = write_jsonl(data_dir / "mixed.jsonl", [
        {"video": "clips/a.mp4", "caption": "A circle."},
        {"video": "clips/a.mp4", "question": "Q?", "answer": "A"},
        {"video": "clips/b.mp4", "conversations": [{"from": "human", "value": "<video>\nWhat?"},
                                                   {"from": "gpt", "value": "A square."}]},
        {"turns": [{"role": "user", "text": "Hi"}]},
    ])
    result = read_jsonl(path)
    assert not result.errors
    assert [e.kind for e in result.examples] == ["caption", "conversation", "conversation", "dialogue"]
    assert [e.meta["format"] for e in result.examples] == ["caption", "qa", "conversation", "conversation"]
    assert result.examples[2].turns[0].text == "What?" and result.examples[2].turns[0].videos == [0]
    assert result.counts() == {"caption": 1, "conversation": 2, "dialogue": 1}

    forced = read_jsonl(path, kind="qa")
    assert len(forced) == 1 and len(forced.errors) == 3
    assert [e.line for e in forced.errors] == [1, 3, 4]
    with pytest.raises(InputError, match="kind"):
        read_jsonl(path, kind="nonsense")


BAD_ROWS = [
    ("{not json", "bad JSON"),
    ('["a", "list"]', "expected a JSON object"),
    ({"video": "clips/a.mp4"}, "cannot tell the row's schema"),
    ({"video": "clips/a.mp4", "question": "Q?"}, "missing key 'answer'"),
    ({"video": 3, "caption": "x"}, "'video' must be a string, got 3"),
    ({"video": "clips/a.mp4", "caption": 5}, "'caption' must be a string"),
    ({"video": "clips/missing.mp4", "caption": "x"}, "file not found"),
    ({"video": "clips/a.mp4", "turns": [{"role": "user", "text": "hi", "videos": [1]}]}, "out of range"),
    ({"videos": ["clips/a.mp4"], "turns": [{"role": "user", "text": "a", "videos": [0]},
                                           {"role": "user", "text": "b", "videos": [0]}]}, "more than once"),
    ({"videos": ["clips/a.mp4", "clips/b.mp4"], "turns": [{"role": "user", "text": "a", "videos": [0]}]},
     "never referenced: [1]"),
    ({"video": "clips/a.mp4", "turns": [{"role": "user", "text": "a"},
                                        {"role": "assistant", "text": "b", "videos": [0]}]}, "only user turns"),
    ({"turns": [{"role": "robot", "text": "a"}]}, "role must be"),
    ({"turns": []}, "no turns"),
    ({"turns": "hello"}, "must be a list"),
    ({"videos": "clips/a.mp4", "turns": [{"role": "user", "text": "a"}]}, "list of strings"),
    ({"video": "clips/a.mp4", "videos": ["clips/b.mp4"], "turns": [{"role": "user", "text": "a"}]}, "not both"),
    ({"turns": [{"role": "user", "text": "a", "videos": [True]}]}, "integer indices, got [true]"),
]


def test_bad_rows_are_reported_with_file_and_line_and_skipped(data_dir, caplog):
    good = {"video": "clips/a.mp4", "caption": "fine"}
    rows = [good] + [row for row, _ in BAD_ROWS] + ["", good]
    path = write_jsonl(data_dir / "bad.jsonl", rows)
    with caplog.at_level(logging.WARNING, logger="gpt4video.data.formats"):
        result = read_jsonl(path)
    assert len(result) == 2
    assert [e.source for e in result.examples] == [f"{path}:1", f"{path}:{len(rows)}"]
    assert len(result.errors) == len(BAD_ROWS)
    for error, (line, (_, expected)) in zip(result.errors, enumerate(BAD_ROWS, start=2)):
        assert error.file == str(path) and error.line == line, error
        assert expected in error.message, (error, expected)
        assert str(error).startswith(f"{path}:{line}: ")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert sum(f"{path}:" in w for w in warnings) >= len(BAD_ROWS)  # one per row ...
    assert any(f"{len(BAD_ROWS)} bad rows skipped" in w for w in warnings)  # ... and a summary


def test_check_files_off_and_not_utf8(data_dir):
    path = write_jsonl(data_dir / "m.jsonl", [{"video": "nowhere/x.mp4", "caption": "x"}])
    assert len(read_jsonl(path).errors) == 1
    result = read_jsonl(path, check_files=False)
    assert not result.errors and result.examples[0].videos == [str(data_dir / "nowhere" / "x.mp4")]

    raw = data_dir / "latin.jsonl"
    raw.write_bytes(b'{"video": "clips/a.mp4", "caption": "caf\xe9"}\n{"video": "clips/a.mp4", "caption": "ok"}\n')
    result = read_jsonl(raw)
    assert len(result) == 1 and result.errors[0].line == 1 and "UTF-8" in result.errors[0].message


def test_missing_data_file_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_jsonl(tmp_path / "nope.jsonl")
    with pytest.raises(InputError, match="not found"):
        load_dataset(tmp_path / "nope.csv")


def test_synthetic_split_files_load_cleanly(tmp_path):
    root = build_split(tmp_path, "train", 3, width=64, height=64, num_frames=8, progress=False)
    for name, kinds in (("captions.jsonl", {"caption"}), ("qa.jsonl", {"conversation"}),
                        ("dialogues.jsonl", {"conversation", "dialogue"})):
        result = load_dataset(root / name)
        assert not result.errors and len(result) >= 3
        assert {e.kind for e in result.examples} <= kinds
        assert all(Path(v).is_file() for e in result.examples for v in e.videos)


# ---------------------------------------------------------------------------------------------
# WebVid CSV


def test_webvid_csv_both_video_layouts(tmp_path):
    touch(tmp_path / "videos" / "000001_000050" / "1001.mp4")
    touch(tmp_path / "videos" / "1002.mp4")
    csv_path = tmp_path / "results_2M_val.csv"
    csv_path.write_text(
        "videoid,contentUrl,duration,page_dir,name\n"
        "1001,https://example.com/1001.mp4,PT00H00M10S,000001_000050,A dog runs on the beach.\n"
        '1002,https://example.com/1002.mp4,PT00H00M07S,000051_000100,"Aerial view, city at night."\n'
        "1003,https://example.com/1003.mp4,PT00H00M05S,000051_000100,Missing clip.\n"
        "1004,https://example.com/1004.mp4,PT00H00M05S,000051_000100,\n",
        encoding="utf-8",
    )
    result = load_dataset(csv_path, video_dir=tmp_path / "videos")
    assert len(result) == 2
    first, second = result.examples
    assert first.videos == [str(tmp_path / "videos" / "000001_000050" / "1001.mp4")]  # {page_dir}/{videoid}.mp4
    assert second.videos == [str(tmp_path / "videos" / "1002.mp4")]  # {videoid}.mp4
    assert first.kind == "caption" and first.turns[1].text == "A dog runs on the beach."
    assert second.turns[1].text == "Aerial view, city at night."
    assert first.meta["videoid"] == "1001" and first.meta["format"] == "webvid" and first.source == f"{csv_path}:2"
    assert [(e.line, e.file) for e in result.errors] == [(4, str(csv_path)), (5, str(csv_path))]
    assert "video not found" in result.errors[0].message and "1003.mp4" in result.errors[0].message
    assert "empty caption" in result.errors[1].message


def test_plain_csv_with_video_and_caption_columns(tmp_path):
    touch(tmp_path / "clips" / "a.mp4")
    touch(tmp_path / "clips" / "b.mp4")
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text(
        "Path,Caption\n"
        'clips/a.mp4,"A caption that\nspans two lines."\n'
        "clips/missing.mp4,Nothing here.\n"
        "clips/b.mp4,Fine.,extra\n"
        "clips/b.mp4,Also fine.\n",
        encoding="utf-8",
    )
    result = read_webvid_csv(csv_path)
    assert [e.videos[0] for e in result.examples] == [str(tmp_path / "clips" / "a.mp4"), str(tmp_path / "clips" / "b.mp4")]
    assert result.examples[0].turns[1].text == "A caption that\nspans two lines."
    assert [e.source.rsplit(":", 1)[1] for e in result.examples] == ["2", "6"]
    assert [e.line for e in result.errors] == [4, 5]  # line numbers count the quoted line break

    bad = tmp_path / "cols.csv"
    bad.write_text("foo,bar\n1,2\n", encoding="utf-8")
    with pytest.raises(InputError, match="caption column"):
        read_webvid_csv(bad)


# ---------------------------------------------------------------------------------------------
# VideoChat / LLaVA JSON


def test_videochat_qa_style(tmp_path):
    touch(tmp_path / "v" / "x.mp4")
    data = [
        {"video": "x.mp4", "QA": [
            {"i": "", "q": "<video>\nWhat is happening?", "a": "A man is cooking."},
            {"i": "Answer briefly.", "q": "Where is he?", "a": "In a kitchen."},
        ]},
    ]
    path = tmp_path / "videochat_instruct_11k.json"
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    result = load_dataset(path, video_dir=tmp_path / "v")
    assert not result.errors
    ex = result.examples[0]
    assert ex.kind == "conversation" and ex.meta["format"] == "videochat"
    assert ex.videos == [str(tmp_path / "v" / "x.mp4")]
    assert [(t.role, t.text, t.videos) for t in ex.turns] == [
        ("user", "What is happening?", [0]), ("assistant", "A man is cooking.", []),
        ("user", "Answer briefly.\nWhere is he?", []), ("assistant", "In a kitchen.", []),
    ]
    assert ex.source == f"{path}:2"


def test_llava_style_json_and_bad_items(tmp_path):
    touch(tmp_path / "v_abc.mp4")  # Video-ChatGPT names videos without an extension
    touch(tmp_path / "y.mp4")
    items = [
        {"id": "v_abc", "video": "v_abc", "conversations": [
            {"from": "human", "value": "<video>\nDescribe the video."}, {"from": "gpt", "value": "A cat sleeps."},
            {"from": "human", "value": "Is it <video_prompt>-worthy?"}, {"from": "gpt", "value": "Yes."}]},
        {"video": "missing.mp4", "conversations": [{"from": "human", "value": "<video>\nHi"},
                                                   {"from": "gpt", "value": "Hello"}]},
        {"video": "y.mp4", "conversations": [{"from": "robot", "value": "beep"}]},
        {"video": "y.mp4"},
        {"video": "y.mp4", "QA": [{"q": "Hi?", "a": ""}]},
        "not an object",
        {"conversations": [{"from": "human", "value": "Hello"}, {"from": "gpt", "value": "Hi there."}]},
    ]
    path = tmp_path / "instruct.json"
    path.write_text("[\n" + ",\n".join(json.dumps(i) for i in items) + "\n]\n", encoding="utf-8")
    result = read_videochat_json(path)
    assert len(result) == 2
    ex, text_only = result.examples
    assert ex.videos == [str(tmp_path / "v_abc.mp4")]
    assert ex.turns[0].text == "Describe the video." and ex.turns[0].videos == [0]
    assert ex.turns[2].text == "Is it <video_prompt>-worthy?"
    assert ex.meta == {"format": "llava", "id": "v_abc"} and ex.source == f"{path}:2"
    assert text_only.kind == "dialogue" and text_only.videos == []
    assert [e.line for e in result.errors] == [3, 4, 5, 6, 7]
    messages = [e.message for e in result.errors]
    assert messages[0].startswith("item 1:") and "file not found" in messages[0]
    assert "'from' must be" in messages[1]
    assert "expected 'QA'" in messages[2]
    assert "is empty" in messages[3]
    assert "expected an object" in messages[4]


def test_broken_json_file_is_an_input_error(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"video": "a.mp4", "QA": []},\n{"video": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"broken.json:\d+: bad JSON"):
        read_videochat_json(path)
    obj = tmp_path / "obj.json"
    obj.write_text('{"a": 1}\n{"b": 2}\n', encoding="utf-8")
    assert detect_format(obj) == "jsonl"  # a .json file holding JSON lines


def test_load_dataset_dispatch(tmp_path):
    touch(tmp_path / "a.mp4")
    write_jsonl(tmp_path / "d.jsonl", [{"video": "a.mp4", "caption": "c"}])
    (tmp_path / "d.csv").write_text("video,caption\na.mp4,c\n", encoding="utf-8")
    (tmp_path / "d.json").write_text(json.dumps([{"video": "a.mp4", "QA": [{"q": "q", "a": "a"}]}]), encoding="utf-8")
    (tmp_path / "d.txt").write_text("hello\n", encoding="utf-8")
    assert [detect_format(tmp_path / f"d.{e}") for e in ("jsonl", "csv", "json")] == ["jsonl", "webvid", "videochat"]
    for ext in ("jsonl", "csv", "json"):
        result = load_dataset(tmp_path / f"d.{ext}")
        assert isinstance(result, LoadResult) and len(result) == 1 and not result.errors
    assert load_dataset(tmp_path / "d.jsonl", format="jsonl", kind="caption").examples[0].kind == "caption"
    with pytest.raises(InputError, match="cannot tell the data format"):
        load_dataset(tmp_path / "d.txt")
    with pytest.raises(InputError, match="unknown data format"):
        load_dataset(tmp_path / "d.jsonl", format="parquet")
    combined = load_dataset(tmp_path / "d.jsonl").extend(load_dataset(tmp_path / "d.csv"))
    assert len(combined) == 2 and "2 examples" in combined.summary()
