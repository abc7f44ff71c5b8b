"""Picture requests and narrated clips of the synthetic world's training data."""

import json
import re

import numpy as np
import pytest

from gpt4video.audio.subtitles import SUBTITLES_PREFIX
from gpt4video.data import phrasing as ph
from gpt4video.data.synthetic import build_split, parse_prompt, sample_scene
from gpt4video.data.synthetic.dialogues import image_request
from gpt4video.data.synthetic.narration import NO_SPEECH_REPLY, narration_row, speech_reply


def _objects(spec):
    return sorted((o.shape, o.color) for o in spec.objects)


@pytest.mark.parametrize("phrasing", ["train", "heldout", *ph.FAMILIES])
def test_picture_requests_ask_for_what_the_user_said_without_motion(phrasing, monkeypatch):
    monkeypatch.setattr(ph, "_TYPO_SHARE", 0.0)
    for seed in range(30):
        user, reply = image_request(np.random.default_rng(seed), phrasing=phrasing)
        prompt = re.fullmatch(r".*<image_prompt>(.*?)</image_prompt>", reply["text"]).group(1)
        asked = parse_prompt(prompt)
        assert asked is not None, prompt
        # The prompt carries the user's own words for the objects (and the background, if said).
        assert ph.normalize(prompt) in ph.normalize(user["text"]), (user["text"], prompt)
        assert all(o.motion is None for o in asked.objects), prompt
        assert "<video_prompt>" not in reply["text"] and user["videos"] == []
        # The same request in the classic wording asks for the same objects.
        classic = image_request(np.random.default_rng(seed), phrasing="classic")[1]["text"]
        assert _objects(parse_prompt(re.search(r"<image_prompt>(.*?)</image_prompt>", classic).group(1))) == _objects(asked)


def test_narration_rows_give_speech_as_the_subtitles_line():
    kinds = set()
    for seed in range(60):
        scene = sample_scene(seed)
        row = narration_row(scene, "clips/x.mp4", np.random.default_rng(seed))
        user, reply = row["turns"]
        assert user["videos"] == [0] and set(row) == {"video", "turns", "narration"}
        if row["narration"] is None:
            assert not user["text"].startswith(SUBTITLES_PREFIX) and reply["text"] == NO_SPEECH_REPLY
            kinds.add("silent")
            continue
        text = row["narration"]["text"]
        first, question = user["text"].split("\n", 1)
        assert first.startswith(SUBTITLES_PREFIX) and f'"{text}"' in first and question
        start, end, said = row["narration"]["segments"][0]
        assert said == text and 0 <= start < end <= scene.num_frames / scene.fps
        kinds.add("speech" if reply["text"] == speech_reply(text) else "picture")
    assert kinds == {"silent", "speech", "picture"}


def test_a_split_has_requests_and_narration_files(tmp_path):
    root = build_split(tmp_path, "test", 6, progress=False)
    for name in ("generation_requests", "image_requests", "narration_qa"):
        rows = [json.loads(line) for line in (root / f"{name}.jsonl").read_text().splitlines()]
        held = [json.loads(line) for line in (root / f"{name}_heldout.jsonl").read_text().splitlines()]
        assert rows and len(rows) == len(held)
        assert [r.get("narration") for r in rows] == [r.get("narration") for r in held]
    train = build_split(tmp_path, "train", 4, progress=False)
    assert (train / "image_requests.jsonl").is_file() and not (train / "image_requests_heldout.jsonl").exists()
