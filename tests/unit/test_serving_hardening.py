"""What a hostile client must not be able to do to the server, and how it shuts down.

Bodies are counted while they are read (413 from Content-Length at once, or as soon as a chunked body
passes the limit), base64 videos are decoded slice by slice from their one copy, stored files are
private whatever the umask, and a shutdown answers the queue 503 at once and ends a request in flight
after --shutdown-timeout with an error object (an error event then [DONE] when streamed). The server
is the one of test_serving.py: a tiny model behind a real uvicorn on loopback.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import logging
import os
import shutil
import socket
import stat
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from starlette.requests import Request
from test_serving import KEY, LiveServer, ask, wait_for

from gpt4video.serving import inputs as inputs_module
from gpt4video.serving.app import BodyLimit
from gpt4video.serving.errors import BadRequest, TooLarge
from gpt4video.serving.files import FileStore, open_private
from gpt4video.serving.inputs import VideoInputs, VideoLimits


HEADERS = {"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"}


@pytest.fixture(scope="module")
def server(tiny_model):
    with LiveServer(tiny_model) as s:  # max_upload_mb=1: chat bodies up to 4/3 MiB + 256 KiB
        yield s


def chat_body(size: int) -> bytes:
    """A chat request of about ``size`` bytes (JSON whitespace pads it; the question stays short)."""
    return b" " * size + json.dumps({"model": "tiny", "messages": ask("Hi"), "max_tokens": 2}).encode()


def assert_too_large(response: httpx.Response) -> dict:
    assert response.status_code == 413, response.text
    error = response.json()["error"]
    assert error["code"] == "payload_too_large" and error["type"] == "invalid_request_error"
    assert set(error) == {"message", "type", "param", "code"} and "larger than this server accepts" in error["message"]
    return error


# -- request bodies --------------------------------------------------------------------------------
def test_the_chat_body_limit_comes_from_the_upload_limit(server):
    config = server.config
    assert config.max_body_bytes == int(config.max_upload_bytes * 4 / 3) + 256 * 1024
    ok = httpx.post(f"{server.url}/v1/chat/completions", content=chat_body(config.max_body_bytes - 1000),
                    headers=HEADERS, timeout=60)
    assert ok.status_code == 200, ok.text


def test_a_body_over_the_limit_with_a_content_length_is_413(server):
    error = assert_too_large(httpx.post(f"{server.url}/v1/chat/completions", content=chat_body(3_000_000),
                                        headers=HEADERS, timeout=60))
    assert "--max-body-mb" in error["message"]


def test_a_content_length_over_the_limit_is_answered_before_any_body_is_sent(server):
    """Nothing of the body is sent: the 413 comes from the header alone (also to a client waiting for 100)."""
    for expect in ("", "Expect: 100-continue\r\n"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as conn:
            conn.sendall((f"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
                          f"Content-Type: application/json\r\nContent-Length: 10000000000\r\n{expect}\r\n").encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 413") and b"100 Continue" not in head, reply[:200]
        assert json.loads(body)["error"]["code"] == "payload_too_large"


def test_a_chunked_body_that_passes_the_limit_is_413(server):
    sent = []

    def body():  # no Content-Length: httpx sends it chunked
        for _ in range(64):
            sent.append(1)
            yield b" " * 65536  # 4 MiB of JSON whitespace in all

    error = assert_too_large(httpx.post(f"{server.url}/v1/chat/completions", content=body(), headers=HEADERS,
                                        timeout=60))
    size = float(error["message"].split(": ")[1].split(" MB")[0])
    assert size < 2.5  # the bytes read when the limit (1.7 MB) was passed, not the 4.2 MB sent
    assert len(sent) == 64  # the rest was read and dropped, so the client heard the 413


def test_an_upload_over_the_limit_is_413_with_or_without_a_content_length(server):
    headers = {"Authorization": f"Bearer {KEY}"}
    sized = httpx.post(f"{server.url}/v1/files", files={"file": ("big.mp4", bytes(3_000_000))},
                       data={"purpose": "user_data"}, headers=headers, timeout=60)
    assert "--max-upload-mb" in assert_too_large(sized)["message"]

    def multipart():
        yield b'--B\r\nContent-Disposition: form-data; name="file"; filename="big.mp4"\r\n\r\n'
        for _ in range(48):
            yield bytes(65536)  # 3 MiB
        yield b"\r\n--B--\r\n"

    chunked = httpx.post(f"{server.url}/v1/files", content=multipart(), timeout=60,
                         headers={**headers, "Content-Type": "multipart/form-data; boundary=B"})
    assert_too_large(chunked)
    assert server.client().files.list().data == []  # nothing half-stored


def test_bodies_read_by_hand_still_get_one_clear_error(server):
    url = f"{server.url}/v1/chat/completions"
    for content, needle in ((b"[]", "must be a JSON object"), (b"\xff{}", "not valid JSON"), (b"", "not valid JSON"),
                            (b'{"model": "tiny", "messages": "hi"}', "messages: Input should be a valid list")):
        response = httpx.post(url, content=content, headers=HEADERS)
        assert response.status_code == 400 and needle in response.json()["error"]["message"], response.text
    upload = httpx.post(f"{server.url}/v1/files", data={"purpose": "user_data"},
                        headers={"Authorization": f"Bearer {KEY}"})
    assert upload.status_code == 400 and upload.json()["error"]["param"] == "file"
    unauthorized = httpx.post(f"{server.url}/v1/files", files={"file": ("a.mp4", b"abc")})
    assert unauthorized.status_code == 401 and unauthorized.json()["error"]["code"] == "invalid_api_key"


def test_the_middleware_hands_the_app_no_byte_past_the_limit():
    """BodyLimit on its own: the app reads at most the limit, the 413 goes out when the limit is passed,
    and a Content-Length over the limit never reaches the app."""
    read, pulled, sent = [], [], []

    async def app(scope, receive, send):  # noqa: ANN001, ANN202
        async for chunk in Request(scope, receive).stream():
            read.append(len(chunk))

    async def receive():  # noqa: ANN202
        pulled.append(1)
        return {"type": "http.request", "body": b"x" * 300, "more_body": len(pulled) < 10}

    async def send(message):  # noqa: ANN001, ANN202
        sent.append((len(pulled), message))

    limited = BodyLimit(app, lambda method, path: (1000, "a test limit"))
    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    with pytest.raises(TooLarge):
        asyncio.run(limited(scope, receive, send))
    assert sum(read) == 900 and len(pulled) == 10  # 3 chunks read; the 4th passed the limit; 6 more dropped
    (when, start), (_, first), (_, last) = sent
    assert when == 4 and start["status"] == 413 and json.loads(first["body"])["error"]["code"] == "payload_too_large"
    assert first["more_body"] and not last.get("more_body", False)

    read.clear(), pulled.clear(), sent.clear()
    scope["headers"] = [(b"content-length", b"5000")]
    asyncio.run(limited(scope, receive, send))
    assert read == [] and sent[0][1]["status"] == 413 and not sent[-1][1].get("more_body", False)


# -- base64 videos ---------------------------------------------------------------------------------
def decoder(tmp_path: Path, max_bytes: int = 1 << 30) -> VideoInputs:
    return VideoInputs(FileStore(tmp_path / "store", ttl=60), VideoLimits(max_bytes, 60.0, sampling=None))


def test_base64_is_decoded_slice_by_slice_from_its_one_copy(tmp_path, monkeypatch):
    """A data: URL (spaces around it, MIME line breaks in it) or bare base64 is decoded into the scratch
    file a few slices at a time: the memory used stays far below the size of the text."""
    import tracemalloc

    monkeypatch.setattr(inputs_module, "_B64_SLICE", 1 << 16)
    raw = np.random.default_rng(0).integers(0, 256, 3 << 20, np.uint8).tobytes()
    text = base64.b64encode(raw).decode()
    wrapped = "\n".join(text[i:i + 76] for i in range(0, len(text), 76))  # lines cross the slices
    inputs, peaks = decoder(tmp_path), []

    def load_file(path, where):  # noqa: ANN001, ANN202 - the peak while decoding; the file kept to compare
        peaks.append(tracemalloc.get_traced_memory()[1])
        shutil.copyfile(path, tmp_path / f"decoded{len(peaks)}")

    inputs.load_file = load_file
    for load, data in ((inputs.load_reference, f" \n data:video/mp4;base64,{wrapped}\n"),
                       (inputs.load_reference, f"data:video/mp4;base64,{text}"), (inputs.load_base64, wrapped)):
        tracemalloc.start()
        load(data, "v")
        tracemalloc.stop()
        assert peaks[-1] < len(data) / 8  # never a copy of the whole text
        assert (tmp_path / f"decoded{len(peaks)}").read_bytes() == raw


@pytest.mark.parametrize("data, needle", [
    ("QUJD\nRA==QUJD", "not valid base64"),  # data after the padding
    ("QUJ", "not valid base64"),
    ("QU@D", "not valid base64"),
    ("QUJDé", "not valid base64"),
    ("  \n", "empty"),
])
def test_bad_base64_is_one_clear_error(tmp_path, monkeypatch, data, needle):
    monkeypatch.setattr(inputs_module, "_B64_SLICE", 4)
    with pytest.raises(BadRequest, match=needle):
        decoder(tmp_path)._b64decode_into(data, "v", io.BytesIO())


def test_base64_decoding_stops_at_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(inputs_module, "_B64_SLICE", 1 << 12)
    out = io.BytesIO()
    with pytest.raises(TooLarge, match="larger than this server accepts"):
        decoder(tmp_path, max_bytes=10_000)._b64decode_into(base64.b64encode(bytes(100_000)).decode(), "v", out)
    assert len(out.getvalue()) <= 10_000


# -- stored files ----------------------------------------------------------------------------------
def test_stored_files_and_their_folders_are_private_whatever_the_umask(tmp_path):
    def mode(path: Path) -> int:
        return stat.S_IMODE(path.stat().st_mode)

    old = os.umask(0)  # the most permissive umask: the modes must not depend on it
    try:
        store = FileStore(tmp_path / "new" / "store", ttl=60)
        uploaded = store.add_stream(io.BytesIO(b"abc"), "a.mp4", "user_data", max_bytes=10)
        generated = store.add_video(np.zeros((2, 16, 16, 3), np.uint8), 8.0, "g.mp4")
        (tmp_path / "moved.mp4").write_bytes(b"xyz")
        moved = store.add_path(tmp_path / "moved.mp4", "generated")
        with open_private(store.scratch_dir / "s") as f:
            f.write(b"s")
        seen = {}
        inputs = VideoInputs(store, VideoLimits(1000, 60.0, sampling=None))
        inputs.load_file = lambda path, where: seen.setdefault("scratch", mode(Path(path)))
        inputs.load_reference("data:video/mp4;base64,YWJj", "v")
    finally:
        os.umask(old)
    for record in (uploaded, generated, moved):
        path = Path(record.path)
        assert mode(path) == 0o600 and mode(path.parent / "meta.json") == 0o600, record
        assert mode(path.parent) == 0o700
    for folder in (store.root, store.root / "files", store.scratch_dir):
        assert mode(folder) == 0o700, folder
    assert mode(store.scratch_dir / "s") == 0o600 and seen["scratch"] == 0o600


# -- shutdown --------------------------------------------------------------------------------------
class EndlessReply:
    """A reply whose text never ends: only a cancelled job stops it."""

    generated: list = []
    generated_images: list = []
    finish_reason = "stop"

    def __init__(self) -> None:
        self.closed = threading.Event()
        self.output = self

    def to_dict(self) -> dict:
        return {"text": "", "generated_videos": [], "generated_images": []}

    def __iter__(self):  # noqa: ANN204
        try:
            while True:
                time.sleep(0.01)
                yield "x "
        finally:
            self.closed.set()


@pytest.fixture
def endless(monkeypatch):
    """Every answer is an EndlessReply (the list holds those made)."""
    made: list[EndlessReply] = []

    class Assistant:
        def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
            pass

        def restore(self, turns) -> None:  # noqa: ANN001
            pass

        def ask(self, *args, **kwargs) -> EndlessReply:  # noqa: ANN002, ANN003
            made.append(EndlessReply())
            return made[-1]

    monkeypatch.setattr("gpt4video.serving.engine.Assistant", Assistant)
    return made


def stopped_cleanly(s: LiveServer, caplog) -> None:  # noqa: ANN001
    s.thread.join(60)
    assert not s.thread.is_alive()
    problems = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert problems == [] and not any(r.exc_info for r in caplog.records)


def test_shutdown_answers_the_queue_503_at_once(tiny_model, caplog):
    """A request waits behind one held in the only worker (max_batch 1); on shutdown it is answered 503 while
    the one in flight still runs, and that one then finishes normally."""
    caplog.set_level(logging.INFO)
    s = LiveServer(tiny_model, shutdown_timeout=60, max_batch=1).__enter__()
    engine, gate = s.app.state.engine, threading.Event()
    answer = engine._answer
    engine._answer = lambda job: (gate.wait(60), answer(job))[1]
    post = lambda: httpx.post(f"{s.url}/v1/chat/completions", headers=HEADERS, timeout=120,  # noqa: E731
                              json={"model": "tiny", "messages": ask("Hi"), "max_tokens": 2})
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(post)
        wait_for(lambda: engine.stats()["busy"], "the first request did not reach the worker")
        queued = pool.submit(post)
        wait_for(lambda: engine.stats()["waiting"] == 1, "the second request did not wait")
        s.server.should_exit = True  # what SIGTERM does
        refused = queued.result(timeout=60)
        assert not running.done()
        gate.set()
        finished = running.result(timeout=60)
    assert refused.status_code == 503 and refused.json()["error"]["code"] == "shutting_down"
    assert refused.json()["error"]["type"] == "server_error"
    assert finished.status_code == 200 and finished.json()["choices"][0]["message"]["role"] == "assistant"
    stopped_cleanly(s, caplog)


def test_shutdown_ends_a_stream_in_flight_with_an_error_event_and_done(tiny_model, endless, caplog):
    caplog.set_level(logging.INFO)
    s = LiveServer(tiny_model, shutdown_timeout=0.5).__enter__()
    body = {"model": "tiny", "messages": ask("Hi"), "max_tokens": 8, "stream": True}
    events = []
    with httpx.stream("POST", f"{s.url}/v1/chat/completions", headers=HEADERS, json=body, timeout=60) as response:
        for line in response.iter_lines():
            if not line.startswith("data: "):
                continue
            events.append(line[6:])
            if len(events) == 3:  # the role, then text: the answer is in flight
                s.server.should_exit = True
    assert response.status_code == 200
    assert events[-1] == "[DONE]"
    error = json.loads(events[-2])["error"]
    assert error["code"] == "shutting_down" and error["type"] == "server_error" and "shut down" in error["message"]
    assert all("choices" in json.loads(e) for e in events[:-2])  # text chunks, then the error
    stopped_cleanly(s, caplog)
    assert endless[0].closed.is_set()  # the worker stopped the model's text


def test_shutdown_ends_a_plain_request_in_flight_with_503(tiny_model, endless, caplog):
    caplog.set_level(logging.INFO)
    s = LiveServer(tiny_model, shutdown_timeout=0.5).__enter__()
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(httpx.post, f"{s.url}/v1/chat/completions", headers=HEADERS, timeout=60,
                              json={"model": "tiny", "messages": ask("Hi"), "max_tokens": 8})
        wait_for(lambda: endless, "the request did not reach the model")
        s.server.should_exit = True
        response = pending.result(timeout=60)
    assert response.status_code == 503 and response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "shutting_down"
    stopped_cleanly(s, caplog)
    assert endless[0].closed.is_set()
