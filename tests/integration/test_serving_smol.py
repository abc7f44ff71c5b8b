"""``gpt4video serve`` with the shipped smol model, driven by the official openai client over loopback."""

from __future__ import annotations

import base64
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from gpt4video.data.synthetic import sample_scene, write_clip
from gpt4video.serving.process import start_server
from gpt4video.video import probe

pytestmark = pytest.mark.slow

KEY = "sk-integration-test"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    s = start_server(folder, "--max-upload-mb", "1", "--queue-size", "4", "--max-tokens", "64", key=KEY)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """Two clips of the synthetic world (seeds outside every split), as data: URLs."""
    folder = tmp_path_factory.mktemp("clips")
    urls = []
    for seed in (20_010_010, 20_010_011):
        path = write_clip(sample_scene(seed), folder / f"{seed}.mp4")
        urls.append("data:video/mp4;base64," + base64.b64encode(path.read_bytes()).decode())
    return urls


def client(server, key: str = KEY) -> openai.OpenAI:  # noqa: ANN001
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=900)


def ask(text: str, *videos: str) -> list[dict]:
    return [{"role": "user", "content": [{"type": "text", "text": text},
                                         *({"type": "video_url", "video_url": {"url": v}} for v in videos)]}]


def test_a_video_question_and_the_same_streamed(server, clips):
    c = client(server)
    messages = ask("Describe this video.", clips[0])
    plain = c.chat.completions.create(model="smol", messages=messages, max_tokens=24)
    text = plain.choices[0].message.content
    assert text.strip() and plain.usage.completion_tokens > 0 and plain.choices[0].message.refusal is None
    pieces = [chunk.choices[0].delta.content for chunk in
              c.chat.completions.create(model="smol", messages=messages, max_tokens=24, stream=True)
              if chunk.choices and chunk.choices[0].delta.content]
    assert len(pieces) > 1 and "".join(pieces) == text  # greedy decoding: the same answer, streamed


def test_a_generation_request_returns_a_video_to_download(server):
    c = client(server)
    reply = c.chat.completions.create(model="smol", max_tokens=64,
                                      messages=ask("Make a video of a red circle moving to the right."))
    message = reply.choices[0].message
    videos = message.model_extra["videos"]
    assert message.model_extra["video_prompts"] and len(videos) == 1, message
    video = videos[0]
    assert video["backend"] == "synthetic" and video["url"].endswith(f"/v1/files/{video['id']}/content")
    assert "<video_prompt>" not in message.content
    mp4 = c.files.content(video["id"]).read()
    assert len(mp4) == video["bytes"] and mp4[4:8] == b"ftyp"
    info = c.files.retrieve(video["id"])
    assert info.purpose == "generated" and info.expires_at > info.created_at
    path = server.log.parent / "downloaded.mp4"
    path.write_bytes(mp4)
    meta = probe(path)
    assert (meta.width, meta.height, meta.num_frames) == (256, 256, 16)


def test_several_videos_in_one_message(server, clips):
    c = client(server)
    one = c.chat.completions.create(model="smol", messages=ask("What differs?", clips[0]), max_tokens=8)
    two = c.chat.completions.create(model="smol", messages=ask("What differs?", *clips), max_tokens=8)
    assert two.usage.prompt_tokens - one.usage.prompt_tokens >= 32  # each video is 32 tokens for smol


def test_a_refusal_is_a_normal_message_with_its_reason(server):
    reply = client(server).chat.completions.create(model="smol", max_tokens=32,
                                                   messages=ask("Make a video of explicit sex scenes."))
    message = reply.choices[0].message
    flagged = [v for v in message.model_extra["safety"] if v["flagged"]]
    assert flagged and flagged[0]["reason"] and message.refusal == message.content
    assert message.model_extra["videos"] == [] and reply.choices[0].finish_reason == "content_filter"
    # the same fields as `chat --json`
    assert message.model_extra["refused_by"] == "input" and message.model_extra["refusal_category"]


def test_a_wrong_key_is_401(server):
    with pytest.raises(openai.AuthenticationError) as info:
        client(server, key="sk-wrong").chat.completions.create(model="smol", messages=ask("Hi"), max_tokens=4)
    assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"


def test_an_oversized_upload_is_413(server):
    with pytest.raises(openai.APIStatusError) as info:
        client(server).files.create(file=("big.mp4", bytes(3_000_000)), purpose="user_data")
    body = info.value.body
    assert info.value.status_code == 413 and body["code"] == "payload_too_large" and "--max-upload-mb" in body["message"]


def test_sixteen_concurrent_requests_are_answered_or_rejected(server, clips):
    c = client(server)
    start = threading.Barrier(16)

    def one(i: int):  # noqa: ANN202
        start.wait()
        try:
            return c.chat.completions.create(model="smol", messages=ask("What color is it?", clips[i % 2]),
                                             max_tokens=8)
        except openai.RateLimitError as e:
            return e

    with ThreadPoolExecutor(16) as pool:
        results = list(pool.map(one, range(16), timeout=900))
    answered = [r for r in results if isinstance(r, openai.types.chat.ChatCompletion)]
    rejected = [r for r in results if isinstance(r, openai.RateLimitError)]
    assert len(answered) + len(rejected) == 16 and answered
    assert all(r.choices[0].message.content is not None for r in answered)
    assert all(r.status_code == 429 and r.body["code"] == "queue_full" for r in rejected)


def test_sigterm_finishes_the_request_in_flight_then_exits(server, clips):
    """Last in this module: it stops the server."""
    stream = client(server).chat.completions.create(model="smol", messages=ask("Describe this video.", clips[1]),
                                                    max_tokens=48, stream=True)
    chunks = iter(stream)
    first = next(chunks)
    server.process.send_signal(signal.SIGTERM)
    rest = list(chunks)
    assert first.choices[0].delta.role == "assistant"
    assert any(c.choices and c.choices[0].finish_reason for c in rest)
    assert server.stop() == 0
    log = server.log.read_text()
    assert "Shutting down" in log and "gpt4video.serve: stopped" in log and "Traceback" not in log
    assert '"POST /v1/chat/completions" 200' in log  # one line per request
