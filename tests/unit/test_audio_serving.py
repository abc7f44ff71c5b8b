"""The server hears: a video's own sound track and input_audio / file parts become subtitles; bad sound is a 400."""

from __future__ import annotations

import base64
import httpx
import numpy as np
import pytest

from gpt4video.audio import SAMPLE_RATE
from gpt4video.audio.synthesis import mix, mux_audio, narrate, write_audio
from gpt4video.serving import ServeConfig
from gpt4video.serving.app import create_app
from gpt4video.serving.process import free_port
from gpt4video.video import write_video


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    root = tmp_path_factory.mktemp("media")
    silent = write_video(root / "silent.mp4", np.zeros((8, 48, 64, 3), np.uint8), fps=4)
    speech = mix([(0.3, narrate("good morning"))], 2.0)
    return {"silent": silent.read_bytes(),
            "speaking": mux_audio(silent, speech, SAMPLE_RATE, root / "speaking.mp4").read_bytes(),
            "wav": write_audio(root / "speech.wav", speech).read_bytes(),
            "broken": b"RIFF" + bytes(64)}


@pytest.fixture(scope="module")
def url(tiny_model, serve_app, hears_red_ball):
    """A server whose assistants hear "the red ball" in any speech."""
    config = ServeConfig(port=free_port(), model_name="tiny", default_max_tokens=2, queue_size=2)
    app = create_app(config, tiny_model, generators={}, web=False, assistant_options={"speech": hears_red_ball})
    with serve_app(app, config) as v1:
        yield f"{v1}/chat/completions"


def chat(url, *parts):
    body = {"model": "tiny", "max_tokens": 2,
            "messages": [{"role": "user", "content": [{"type": "text", "text": "What is said?"}, *parts]}]}
    return httpx.post(url, json=body, timeout=300)


def video_part(data):
    return {"type": "video_url", "video_url": {"url": f"data:video/mp4;base64,{base64.b64encode(data).decode()}"}}


def audio_part(data):
    return {"type": "input_audio", "input_audio": {"data": base64.b64encode(data).decode(), "format": "wav"}}


def test_a_videos_sound_track_is_heard(url, media):
    reply = chat(url, video_part(media["speaking"]))
    assert reply.status_code == 200, reply.text
    assert reply.json()["choices"][0]["message"]["subtitles"][0].startswith('Subtitles: "the red ball" (frame')
    silent = chat(url, video_part(media["silent"]))
    assert silent.status_code == 200 and silent.json()["choices"][0]["message"]["subtitles"] == []


def test_an_audio_part_alone_is_answered(url, media):
    reply = chat(url, audio_part(media["wav"]))
    assert reply.status_code == 200, reply.text
    message = reply.json()["choices"][0]["message"]
    assert isinstance(message["content"], str) and message["subtitles"][0].startswith('Subtitles: "the red ball"')
    file_part = {"type": "file", "file": {"file_data": base64.b64encode(media["wav"]).decode()}}
    assert chat(url, file_part).json()["choices"][0]["message"]["subtitles"] == message["subtitles"]


def test_broken_audio_is_one_400(url, media):
    reply = chat(url, audio_part(media["broken"]))
    assert reply.status_code == 400
    error = reply.json()["error"]
    assert error["param"] == "messages[0].content[1]" and "Traceback" not in error["message"]
    assert error["message"].startswith("messages[0].content[1]: not a readable video or image")
