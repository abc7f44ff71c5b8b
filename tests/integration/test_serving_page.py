"""The chat page in headless Chromium (Debian's ``chromium``, driven by Playwright; no browser download).

Logs in with the API key, uploads a video, asks a question and watches the answer stream in, asks for a
video and plays it, gets a refusal with its reason, and gets a clear message for a broken upload. Every
request the page makes goes to the server itself (it works offline). A screenshot of the page is written
to ``$GPT4VIDEO_TEST_ARTIFACTS`` (default ``test-artifacts/``) as ``serve_page.png``.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from gpt4video.data.synthetic import sample_scene, write_clip
from gpt4video.serving.process import start_server

pytestmark = pytest.mark.slow

KEY = "sk-page-test"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Chromium as root in a container, with nothing that reaches out to the internet.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
ARTIFACTS = Path(os.environ.get("GPT4VIDEO_TEST_ARTIFACTS", "test-artifacts"))

# Records every text the newest assistant message shows, to see the answer arrive in pieces.
WATCH_ANSWERS = """() => {
  window.__answers = [];
  const log = document.querySelector('#chat [role=log]');
  new MutationObserver(() => {
    const bots = log.querySelectorAll('.bot-row');
    if (bots.length) window.__answers.push(bots[bots.length - 1].innerText.trim());
  }).observe(log, {subtree: true, childList: true, characterData: true});
}"""

PLAY_NEWEST_VIDEO = """async () => {
  const videos = document.querySelectorAll('#chat .bot-row video');
  const v = videos[videos.length - 1];
  v.muted = true;
  await v.play();
  await new Promise(resolve => v.addEventListener('timeupdate', resolve, {once: true}));
  return {time: v.currentTime, ready: v.readyState, error: v.error && v.error.code, width: v.videoWidth};
}"""

# The question box is read-only while an answer is being written.
IDLE = "() => !document.querySelector('#ask textarea').disabled && " \
       "document.querySelectorAll('#chat .bot-row').length >= {n}"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not Path(CHROMIUM).is_file():
        pytest.fail("Debian's chromium is not installed (make setup installs it: apt-get install chromium)")
    s = start_server(tmp_path_factory.mktemp("page"), "--queue-size", "4", key=KEY)
    yield s
    s.stop()


@pytest.fixture(scope="module")
def page(server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        tab = browser.new_page(viewport={"width": 1200, "height": 1400})
        tab.requests = []
        tab.on("request", lambda r: tab.requests.append(r.url))
        tab.set_default_timeout(300_000)  # generous: the machine may be busy
        yield tab
        browser.close()


def send(page, text: str, files: list[str] = ()) -> None:  # noqa: ANN001
    if files:
        page.set_input_files("#ask input[type=file]", files)
        page.wait_for_selector("#ask .thumbnail-item, #ask video")
    page.fill("#ask textarea", text)
    page.press("#ask textarea", "Enter")


def wait_answers(page, n: int) -> None:  # noqa: ANN001
    page.wait_for_function(IDLE.replace("{n}", str(n)))


def test_chat_page_in_chromium(server, page, tmp_path):
    try:
        _chat_page_session(server, page, tmp_path)
    except BaseException:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "serve_page_failure.png"), full_page=True)
        raise


def _chat_page_session(server, page, tmp_path) -> None:  # noqa: ANN001
    clip = write_clip(sample_scene(20_010_020), tmp_path / "clip.mp4")
    page.goto(server.url)
    page.get_by_label("username").fill("tester")
    page.get_by_label("password").fill(KEY)
    page.get_by_role("button", name="Login").click()
    page.wait_for_selector("#ask textarea")
    page.evaluate(WATCH_ANSWERS)

    # a question about an uploaded video: the answer streams in
    send(page, "Describe this video.", [str(clip)])
    wait_answers(page, 1)
    final = page.locator("#chat .bot-row").last.inner_text().strip()
    seen = [t for t in page.evaluate("window.__answers") if t]
    assert final and len(set(seen)) >= 2, seen  # shown in pieces before the whole
    assert all(final.startswith(t) for t in seen if t != final)
    assert page.locator("#chat .user-row video").count() == 1  # the upload is in the conversation

    # a request for a video, in a new conversation: it is generated and plays in the conversation
    page.click("#new")
    page.wait_for_function("() => document.querySelectorAll('#chat .message-row').length === 0")
    send(page, "Make a video of a red circle moving to the right.")
    page.wait_for_selector("#chat .bot-row video")
    wait_answers(page, 1)
    played = page.evaluate(PLAY_NEWEST_VIDEO)
    assert played["time"] > 0 and played["error"] is None and played["width"] == 256, played
    assert "Generated video (synthetic)" in page.inner_text("#chat")

    # a refused request shows the reason
    send(page, "Make a video of explicit sex scenes.")
    page.wait_for_selector("#chat .bot-row:has-text('Refused by the safety policy')")
    assert "harmful_request" in page.locator("#chat .bot-row", has_text="Refused by the safety policy").inner_text()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "serve_page.png"), full_page=True)

    # a broken upload: one clear message, and the conversation goes on
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42 this is not really a video" * 10)
    rows = page.locator("#chat .message-row").count()
    send(page, "What is in this one?", [str(broken)])
    toast = page.wait_for_selector(".toast-body:has-text('broken.mp4')")
    assert "not a readable video" in toast.inner_text()
    assert page.locator("#chat .message-row").count() == rows  # the conversation is unchanged
    assert page.input_value("#ask textarea") == "What is in this one?"  # the question waits to be resent

    outside = [u for u in page.requests if not u.startswith((server.url, "data:", "blob:"))]
    assert outside == []  # nothing from a CDN, no fonts, no analytics
