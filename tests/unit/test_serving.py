"""The server on a tiny model: a real uvicorn on loopback, driven by the official openai client.

Covers the API's shapes (completion, stream, files), every kind of bad input (one OpenAI-style error
with the right status), the key, the size limits, the bounded queue (429), expiry, no URL fetching
and no path reads, request logs and graceful shutdown. The shipped model end to end (generation,
the page in a browser) is in tests/integration/test_serving_smol.py.
"""

from __future__ import annotations

import base64
import http.server
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import openai
import pytest

from gpt4video.generators import build_generator, build_image_generator
from gpt4video.serving import ServeConfig
from gpt4video.serving.app import create_app, make_server
from gpt4video.serving.errors import NotFound
from gpt4video.serving.files import FileStore
from gpt4video.serving.process import free_port
from gpt4video.serving.messages import parse_messages
from gpt4video.video import write_video

KEY = "test-key"


class LiveServer:
    """create_app served by make_server (uvicorn) on a thread, on 127.0.0.1."""

    def __init__(self, model, **overrides) -> None:  # noqa: ANN001
        self.port = free_port()
        options = {"model_name": "tiny", "api_key": KEY, "max_upload_mb": 1.0, "queue_size": 2,
                   "max_tokens": 64, "default_max_tokens": 8, **overrides}
        web = options.pop("web", False)
        self.config = ServeConfig(port=self.port, **options)
        self.app = create_app(self.config, model, generators={"synthetic": build_generator("synthetic")},
                              default_generator="synthetic", web=web,
                              image_generators={"synthetic": build_image_generator("synthetic")},
                              default_image_generator="synthetic")
        self.server = make_server(self.app, self.config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, key: str | None = KEY, **kw) -> openai.OpenAI:  # noqa: ANN003
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=key or "none", max_retries=0, timeout=300, **kw)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(30)


@pytest.fixture(scope="module")
def server(tiny_model):
    with LiveServer(tiny_model) as s:
        yield s


@pytest.fixture(scope="module")
def clip_bytes(tmp_path_factory) -> bytes:
    rng = np.random.default_rng(0)
    path = write_video(tmp_path_factory.mktemp("clips") / "clip.mp4", rng.integers(0, 255, (8, 48, 64, 3), np.uint8))
    return path.read_bytes()


def data_url(data: bytes, kind: str = "video/mp4") -> str:
    return f"data:{kind};base64,{base64.b64encode(data).decode()}"


def ask(text: str, *videos: str, part: str = "video_url") -> list[dict]:
    content = [{"type": "text", "text": text}]
    content += [{"type": part, part: {"url": v}} for v in videos]
    return [{"role": "user", "content": content}]


def wait_for(condition, what: str) -> None:  # noqa: ANN001
    deadline = time.monotonic() + 120
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def status_of(call) -> tuple[int, dict]:  # noqa: ANN001
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value.status_code, info.value.body


# -- the happy paths ---------------------------------------------------------------------------
def test_models_and_health(server):
    models = server.client().models.list()
    assert [m.id for m in models.data] == ["tiny"]
    assert server.client().models.retrieve("tiny").owned_by == "gpt4video"
    health = httpx.get(f"{server.url}/health").json()  # no key needed
    assert health["status"] == "ok" and health["model"] == "tiny" and health["queue"]["capacity"] == 2


def test_video_question_returns_a_chat_completion(server, clip_bytes):
    reply = server.client().chat.completions.create(model="tiny", messages=ask("What color?", data_url(clip_bytes)),
                                                    max_tokens=5, seed=1)
    choice = reply.choices[0]
    assert reply.object == "chat.completion" and reply.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and isinstance(choice.message.content, str)
    assert choice.finish_reason in ("stop", "length")
    assert reply.usage.completion_tokens <= 5 and reply.usage.prompt_tokens > 4  # the 4 video tokens are in it
    extras = choice.message.model_extra
    assert extras["videos"] == [] and extras["safety"] == [] and choice.message.refusal is None
    assert extras["refused_by"] is None and extras["blocked_prompts"] == [] and extras["withheld"] == []


def test_streamed_answer_equals_the_plain_one(server, clip_bytes):
    client = server.client()
    messages = ask("Describe this video.", data_url(clip_bytes))
    plain = client.chat.completions.create(model="tiny", messages=messages, max_tokens=12)
    chunks = list(client.chat.completions.create(model="tiny", messages=messages, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == plain.choices[0].message.content  # greedy: the same answer, in pieces
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finals) == 1 and finals[0].choices[0].delta.model_extra["videos"] == []
    assert chunks[-1].usage.total_tokens == plain.usage.total_tokens


def test_several_videos_in_one_message_each_add_video_tokens(server, clip_bytes):
    client = server.client()
    one = client.chat.completions.create(model="tiny", messages=ask("Compare.", data_url(clip_bytes)), max_tokens=2)
    two = client.chat.completions.create(model="tiny", messages=ask("Compare.", data_url(clip_bytes),
                                                                    data_url(clip_bytes)), max_tokens=2)
    assert two.usage.prompt_tokens - one.usage.prompt_tokens >= 4  # Nq = 4 placeholders per video


def test_multi_turn_history_is_replayed(server, clip_bytes):
    client = server.client()
    first = client.chat.completions.create(model="tiny", messages=ask("What is it?", data_url(clip_bytes)),
                                           max_tokens=4)
    messages = [{"role": "system", "content": "You are helpful."}, *ask("What is it?", data_url(clip_bytes)),
                {"role": "assistant", "content": first.choices[0].message.content},
                {"role": "user", "content": "And then?"}]
    second = client.chat.completions.create(model="tiny", messages=messages, max_tokens=4)
    assert second.usage.prompt_tokens > first.usage.prompt_tokens


def test_files_api_round_trip_and_every_way_to_refer_to_a_file(server, clip_bytes):
    client = server.client()
    uploaded = client.files.create(file=("clip.mp4", clip_bytes), purpose="user_data")
    assert uploaded.id.startswith("file-") and uploaded.bytes == len(clip_bytes) and uploaded.filename == "clip.mp4"
    assert uploaded.expires_at > uploaded.created_at
    assert client.files.retrieve(uploaded.id).bytes == len(clip_bytes)
    assert uploaded.id in [f.id for f in client.files.list()]
    assert client.files.content(uploaded.id).read() == clip_bytes
    own_url = f"{server.url}/v1/files/{uploaded.id}/content"
    for messages in (ask("Hi", uploaded.id), ask("Hi", own_url),
                     [{"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                   {"type": "file", "file": {"file_id": uploaded.id}}]}],
                     [{"role": "user", "content": [{"type": "text", "text": "Hi"},
                                                   {"type": "file", "file": {"file_data": data_url(clip_bytes)}}]}]):
        reply = client.chat.completions.create(model="tiny", messages=messages, max_tokens=2)
        assert reply.usage.prompt_tokens > 4
    assert client.files.delete(uploaded.id).deleted is True
    code, body = status_of(lambda: client.files.retrieve(uploaded.id))
    assert code == 404 and body["code"] == "file_not_found"


# -- bad input: one OpenAI error each ----------------------------------------------------------
@pytest.mark.parametrize("kwargs, status, needle", [
    ({"model": "gpt-4o"}, 404, "does not exist"),
    ({"messages": []}, 400, "messages"),
    ({"messages": [{"role": "assistant", "content": "hi"}]}, 400, "last message must be a user message"),
    ({"messages": [{"role": "user", "content": [{"type": "input_audio", "input_audio": {}}]}]}, 400, "input_audio"),
    ({"messages": [{"role": "tool", "content": "x"}]}, 400, "unsupported role"),
    ({"messages": ask("x", "data:video/mp4;base64,@@@not base64@@@")}, 400, "not valid base64"),
    ({"messages": ask("x", "data:text/plain;base64,aGVsbG8=")}, 400, "not a video"),
    ({"messages": ask("x", data_url(b"this is not a video at all"))}, 400, "not a readable video"),
    ({"messages": ask("x", "file:///etc/passwd")}, 400, "unsupported video reference"),
    ({"messages": ask("x", "/etc/passwd")}, 400, "unsupported video reference"),
    ({"messages": ask("x", "file-000000000000000000000000")}, 404, "no such file"),
    ({"messages": ask("x", "http://127.0.0.1:9/video.mp4")}, 400, "does not fetch URLs"),
    ({"n": 2}, 400, "n must be 1"),
    ({"max_tokens": 10_000}, 400, "at most 64"),
    ({"temperature": -1}, 400, "temperature"),
    ({"generator": "nonexistent"}, 400, "unknown generator"),
    ({"image_generator": "dalle"}, 400, "unknown image_generator 'dalle'; this server has: synthetic, none"),
])
def test_bad_chat_requests_get_one_clear_error(server, kwargs, status, needle):
    request = {"model": "tiny", "messages": ask("What is this?"), "max_tokens": 2, **kwargs}
    extra = {key: request.pop(key) for key in ("generator", "image_generator") if key in request} or None
    code, body = status_of(lambda: server.client().chat.completions.create(**request, extra_body=extra))
    assert code == status and needle in body["message"], body
    assert body["type"] and "Traceback" not in body["message"]


def test_video_over_the_duration_limit_is_400(tiny_model, clip_bytes):
    with LiveServer(tiny_model, max_video_seconds=0.5) as s:  # the clip lasts 1 s
        code, body = status_of(lambda: s.client().chat.completions.create(
            model="tiny", messages=ask("x", data_url(clip_bytes)), max_tokens=2))
    assert code == 400 and body["code"] == "video_too_long" and "at most 0.5 s" in body["message"]


def test_too_many_videos_is_400(server, clip_bytes):
    url = data_url(clip_bytes)
    code, body = status_of(lambda: server.client().chat.completions.create(
        model="tiny", messages=ask("x", *[url] * 9), max_tokens=2))
    assert code == 400 and "at most 8" in body["message"]


def test_a_prompt_over_the_limit_is_400_streamed_or_not(tiny_model):
    with LiveServer(tiny_model, max_prompt_tokens=40) as s:
        for stream in (False, True):
            code, body = status_of(lambda: s.client().chat.completions.create(
                model="tiny", messages=ask("word " * 200), max_tokens=2, stream=stream))
            assert code == 400 and "max_prompt_tokens" in body["message"]
        parts = [{"role": "user", "content": [{"type": "text", "text": "a"}] * 10_000}]
        code, body = status_of(lambda: s.client().chat.completions.create(model="tiny", messages=parts, max_tokens=2))
        assert code == 400 and "tokens" in body["message"]
        assert s.client().chat.completions.create(model="tiny", messages=ask("hi"), max_tokens=2).choices


def test_broken_json_and_unknown_routes_are_openai_errors(server):
    headers = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}
    broken = httpx.post(f"{server.url}/v1/chat/completions", content=b"{not json", headers=headers)
    assert broken.status_code == 400 and broken.json()["error"]["message"] == "the request body is not valid JSON"
    missing = httpx.get(f"{server.url}/v1/embeddings", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "unknown_url"


def test_file_ids_cannot_name_paths(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    for file_id in ("..%2F..%2F..%2Fetc%2Fpasswd", "file-..", "%2Fetc%2Fpasswd", "file-0123456789abcdef01234567"):
        response = httpx.get(f"{server.url}/v1/files/{file_id}/content", headers=headers)
        assert response.status_code == 404 and "root:" not in response.text


# -- operation -----------------------------------------------------------------------------------
def test_api_key_is_required(server):
    for key in (None, "wrong"):
        code, body = status_of(lambda: server.client(key=key).models.list())  # noqa: B023
        assert code == 401 and body["code"] == "invalid_api_key"
    no_header = httpx.get(f"{server.url}/v1/models")
    assert no_header.status_code == 401 and no_header.headers["www-authenticate"] == "Bearer"


def test_oversized_uploads_are_413(server, clip_bytes):
    big = bytes(3_000_000)  # the server accepts 1 MB
    code, body = status_of(lambda: server.client().files.create(file=("big.mp4", big), purpose="user_data"))
    assert code == 413 and "MB" in body["message"]
    code, body = status_of(lambda: server.client().chat.completions.create(
        model="tiny", messages=ask("x", data_url(bytes(1_200_000))), max_tokens=2))
    assert code == 413 and "larger than this server accepts" in body["message"]


@pytest.mark.parametrize("max_batch", [1, 2])
def test_full_queue_answers_429_at_once_and_loses_nothing(tiny_model, clip_bytes, max_batch):
    """The workers are held on the first requests: max_batch run, the queue (2) fills, the rest get 429; then
    all finish."""
    with LiveServer(tiny_model, queue_size=2, max_batch=max_batch) as s:
        engine = s.app.state.engine
        gate = threading.Event()
        answer = engine._answer
        engine._answer = lambda job: (gate.wait(30), answer(job))[1]
        client = s.client()

        def one(_: int):  # noqa: ANN202
            try:
                return client.chat.completions.create(model="tiny", messages=ask("Hi"), max_tokens=3)
            except openai.APIStatusError as e:
                return e

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(one, i) for i in range(max_batch)]
            wait_for(lambda: engine.stats()["running"] == max_batch, "the first requests did not reach the workers")
            futures += [pool.submit(one, i) for i in range(max_batch, 8)]
            turned_away = 8 - max_batch - 2
            wait_for(lambda: sum(f.done() for f in futures) >= turned_away, "no 429s while the workers were held")
            assert engine.stats()["waiting"] == 2 and engine.stats()["running"] == max_batch
            rejected = [f.result() for f in futures if f.done()]
            gate.set()
            results = [f.result(timeout=300) for f in futures]
    assert len(rejected) == turned_away and all(isinstance(r, openai.RateLimitError) for r in rejected)
    assert rejected[0].response.headers["retry-after"] == "1" and rejected[0].body["code"] == "queue_full"
    answered = [r for r in results if not isinstance(r, Exception)]
    assert len(answered) == max_batch + 2 and all(r.choices[0].message.content is not None for r in answered)


def test_sixteen_concurrent_requests_are_each_answered_or_rejected(tiny_model, clip_bytes):
    with LiveServer(tiny_model, queue_size=4) as s:
        client = s.client()
        messages = ask("Describe it.", data_url(clip_bytes))

        def one(_: int):  # noqa: ANN202
            try:
                return client.chat.completions.create(model="tiny", messages=messages, max_tokens=16)
            except openai.RateLimitError as e:
                return e

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16), timeout=300))
        stats = httpx.get(f"{s.url}/health").json()["queue"]
    answered = [r for r in results if not isinstance(r, openai.RateLimitError)]
    assert len(results) == 16 and answered
    assert all(r.choices[0].finish_reason in ("stop", "length") for r in answered)
    assert stats["completed"] == len(answered) and stats["waiting"] == 0 and stats["failed"] == 0


def test_urls_are_fetched_only_when_allowed(tiny_model, clip_bytes, tmp_path):
    (tmp_path / "clip.mp4").write_bytes(clip_bytes)

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw) -> None:  # noqa: ANN002, ANN003
            super().__init__(*a, directory=str(tmp_path), **kw)

        def log_message(self, *args) -> None:  # noqa: ANN002
            pass

    origin = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{origin.server_address[1]}/clip.mp4"
    try:
        with LiveServer(tiny_model, allow_url_fetch=True) as s:
            reply = s.client().chat.completions.create(model="tiny", messages=ask("Hi", url), max_tokens=2)
            assert reply.usage.prompt_tokens > 4
            code, body = status_of(lambda: s.client().chat.completions.create(
                model="tiny", messages=ask("Hi", url.replace("clip.mp4", "missing.mp4")), max_tokens=2))
            assert code == 400 and "HTTP 404" in body["message"]
    finally:
        origin.shutdown()


def test_one_log_line_per_request(tiny_model, caplog):
    with caplog.at_level(logging.INFO, logger="gpt4video.serve"), LiveServer(tiny_model) as s:
        httpx.get(f"{s.url}/health")
        httpx.get(f"{s.url}/v1/models")
        s.client().chat.completions.create(model="tiny", messages=ask("Hi"), max_tokens=2)
    lines = [r.getMessage() for r in caplog.records if '"' in r.getMessage()]
    assert len(lines) == 3
    assert '"GET /health" 200' in lines[0] and '"GET /v1/models" 401' in lines[1]
    assert '"POST /v1/chat/completions" 200' in lines[2]


def test_graceful_shutdown_finishes_the_stream_in_flight(tiny_model):
    s = LiveServer(tiny_model).__enter__()
    stream = s.client().chat.completions.create(model="tiny", messages=ask("Hi"), max_tokens=40, stream=True)
    first = next(iter(stream))
    s.server.should_exit = True  # what SIGTERM does
    rest = list(stream)
    s.thread.join(30)
    assert first.choices[0].delta.role == "assistant"
    assert any(c.choices and c.choices[0].finish_reason for c in rest)
    assert not s.thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{s.url}/health")


# -- pieces --------------------------------------------------------------------------------------
def test_files_expire_and_stay_inside_the_store(tmp_path):
    now = [1000.0]
    store = FileStore(tmp_path / "store", ttl=60, clock=lambda: now[0])
    src = tmp_path / "video.mp4"
    src.write_bytes(b"x" * 10)
    record = store.add_path(src, "generated")
    assert Path(record.path).read_bytes() == b"x" * 10 and Path(record.path).is_relative_to(tmp_path / "store")
    assert store.get(record.id).expires_at == 1060
    now[0] = 1061
    with pytest.raises(NotFound):
        store.get(record.id)
    assert not Path(record.path).exists()
    again = FileStore(tmp_path / "store", ttl=60, clock=lambda: now[0])  # a restart with the same storage
    assert again.list() == []


def test_files_survive_a_restart_until_they_expire(tmp_path):
    import io

    store = FileStore(tmp_path, ttl=60)
    record = store.add_stream(io.BytesIO(b"abc"), "../../evil name.mp4", "user_data", max_bytes=10)
    assert record.filename == "evil name.mp4" and Path(record.path).parent.parent == tmp_path / "files"
    assert FileStore(tmp_path, ttl=60).get(record.id).bytes == 3


def test_message_parsing_joins_turns_and_names_the_bad_part():
    turns = parse_messages([{"role": "system", "content": "be brief"},
                            {"role": "user", "content": [{"type": "video_url", "video_url": {"url": "file-x"}}]},
                            {"role": "user", "content": "What is it?"}], max_videos=4)
    assert len(turns) == 1 and turns[0].text == "What is it?" and turns[0].videos[0].value == "file-x"
    with pytest.raises(Exception, match=r"messages\[0\]\.content\[1\]: a video_url part"):
        parse_messages([{"role": "user", "content": [{"type": "text", "text": "x"},
                                                     {"type": "video_url", "video_url": 5}]}], max_videos=4)
    with pytest.raises(Exception, match="only user messages can carry videos"):
        parse_messages([{"role": "assistant", "content": [{"type": "image_url", "image_url": {"url": "x"}}]},
                        {"role": "user", "content": "q"}], max_videos=4)


def test_page_is_served_with_no_outside_assets(tiny_model):
    with LiveServer(tiny_model, web=True, api_key=None) as s:
        page = httpx.get(f"{s.url}/")
        config = httpx.get(f"{s.url}/config").json()
    assert page.status_code == 200 and "<html" in page.text.lower()
    text = page.text + json.dumps(config)
    for outside in ("fonts.googleapis", "fonts.gstatic", "cdn.jsdelivr", "unpkg.com", "cdnjs"):
        assert outside not in text
    assert config["analytics_enabled"] is False
    assert "Image generator" in json.dumps(config)  # a picture's backend is chosen beside the video's


def test_the_page_shows_generated_images(tmp_path):
    from gpt4video.serving import web
    from gpt4video.serving.engine import ChatResult, GeneratedFile

    stored = FileStore(tmp_path, ttl=60).add_image(np.zeros((8, 8, 3), np.uint8), "a-green-square.png")
    output = {"text": "Here.", "refused": False, "safety": [], "video_prompts": [], "generation_errors": [],
              "image_prompts": ["A green square."]}
    page = web.ChatPage(None, None, ServeConfig(), generators=["synthetic"], default_generator="synthetic",
                        image_generators=["synthetic"], default_image_generator="synthetic")
    shown = page._result_messages(ChatResult(output, images=[GeneratedFile(stored, "A green square.", "synthetic", 0)]))
    assert shown == [{"role": "assistant", "content": {"path": stored.path, "alt_text": "A green square."}},
                     {"role": "assistant", "content": "Generated image (synthetic): *A green square.*"}]
    assert stored.path.endswith(".png") and stored.content_type == "image/png"
    # no image backend chosen: the prompt is shown instead
    shown = page._result_messages(ChatResult(output))
    assert shown == [{"role": "assistant", "content": "Image prompt (no generator chosen): *A green square.*"}]


def test_serve_command_rejects_bad_options_before_loading_anything(capsys):
    from gpt4video.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port), "--no-safety"]) == 2
    assert f"cannot listen on 127.0.0.1:{port}" in capsys.readouterr().err
    for argv in (["--port", "70000"], ["--max-upload-mb", "0"], ["--max-body-mb", "0"],
                 ["--model", "no-such-model"]):
        with pytest.raises(SystemExit) as info:
            code = main(["serve", *argv])
            raise SystemExit(code)
        assert info.value.code == 2
        assert "Traceback" not in capsys.readouterr().err


# -- images out ------------------------------------------------------------------------------------
def test_images_are_served_as_files_like_videos(tiny_saved_model_dir, tmp_path):
    """An <image_prompt> the model writes comes back as a PNG file: the same storage, permissions and URLs as a
    generated video, in the plain and the streamed answer; image_generator "none" only reports the prompt."""
    import io

    from PIL import Image

    from gpt4video.engines import TextStream
    from gpt4video.evaluation.pixels import analyze_clip, matches
    from gpt4video.modeling import GPT4Video

    prompt = "A green square on a white background."
    model = GPT4Video.from_pretrained(tiny_saved_model_dir)
    model.generate_stream = lambda *a, **k: TextStream.of_text(["Here it is. <image_", f"prompt>{prompt}</image_prompt>"])
    with LiveServer(model, storage_dir=str(tmp_path / "store"), image_size=96) as s:
        client = s.client()
        message = client.chat.completions.create(model="tiny", messages=ask("Draw a green square."),
                                                 extra_body={"generator": "none"}).choices[0].message
        assert message.content == "Here it is." and message.model_extra["image_prompts"] == [prompt]
        (image,) = message.model_extra["images"]
        assert message.model_extra["videos"] == [] and image["prompt"] == prompt and image["backend"] == "synthetic"
        assert image["content_type"] == "image/png" and image["url"] == f"{s.url}/v1/files/{image['id']}/content"
        pixels = np.asarray(Image.open(io.BytesIO(client.files.content(image["id"]).read())).convert("RGB"))
        assert pixels.shape == (96, 96, 3) and matches(analyze_clip(pixels), color="green", shape="square")
        stored = Path(s.app.state.store.get(image["id"]).path)
        assert stored.suffix == ".png" and stored.stat().st_mode & 0o777 == 0o600
        assert stored.parent.stat().st_mode & 0o777 == 0o700
        assert client.files.retrieve(image["id"]).purpose == "generated"

        chunks = list(client.chat.completions.create(model="tiny", messages=ask("Draw it again."), stream=True))
        final = [c for c in chunks if c.choices and c.choices[0].finish_reason][0].choices[0].delta.model_extra
        assert len(final["images"]) == 1 and final["image_prompts"] == [prompt]

        message = client.chat.completions.create(model="tiny", messages=ask("Just the prompt."),
                                                 extra_body={"image_generator": "none"}).choices[0].message
        assert message.model_extra["images"] == [] and message.model_extra["image_prompts"] == [prompt]
