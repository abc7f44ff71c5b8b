"""The GPT judge (the Video-ChatGPT protocol) against a fake OpenAI-compatible endpoint served here on loopback:
the request it sends, how replies are read, retries, counting, the cache, and an unreachable judge; and
`gpt4video eval video-qa` end to end on a tiny model with that judge."""

import json
import re

import pytest

from gpt4video.config import JudgeConfig
from gpt4video.errors import InputError
from gpt4video.evaluation.judge import SYSTEM_PROMPT, Judge, check_reachable, parse_judgment, summarize


@pytest.mark.parametrize("reply, expected", [
    ("{'pred': 'yes', 'score': 4}", (True, 4)),
    ("  {'pred': 'Yes', 'score': 4.8}\n", (True, 4)),  # int() of the score, as the published scripts do
    ("{'pred': 'no', 'score': '2'}", (False, 2)),
    ('{"pred": "no", "score": 0}', (False, 0)),
])
def test_replies_are_read_as_the_published_scripts_read_them(reply, expected):
    assert parse_judgment(reply) == expected


@pytest.mark.parametrize("reply, needle", [
    ("The answer is correct.", "not a Python dict string"),
    ("```python\n{'pred': 'yes', 'score': 5}\n```", "not a Python dict string"),
    ("{'pred': 'yes'}", "with 'pred' and 'score'"),
    ("{'pred': 'maybe', 'score': 3}", "neither yes nor no"),
    ("{'pred': 1, 'score': 3}", "'pred' is not a string"),
    ("{'pred': 'yes', 'score': 'high'}", "'score' is not a number"),
])
def test_unreadable_replies(reply, needle):
    with pytest.raises(ValueError, match=needle):
        parse_judgment(reply)


def judge_reply(status=200):
    """A fake judge's reply, by the correct answer in the prompt: 'red' -> yes 5, 'blue' -> no 1, 'garbled' ->
    prose (always), 'flaky' -> HTTP 500 once, then yes 3, 'notjson' -> a body that is not a chat completion
    (always); ``status`` other than 200: that status for every request. ``reply.seen`` counts the answers asked."""
    seen = {}

    def reply(body):
        if status != 200:
            return status, b'{"error": "nope"}'
        answer = re.search(r"Correct Answer: (.*)\n", body["messages"][1]["content"]).group(1)
        seen[answer] = seen.get(answer, 0) + 1
        if answer == "flaky" and seen[answer] == 1:
            return 500, b"overloaded"
        if answer == "notjson":
            return 200, b"<html>hello</html>"
        return 200, {"red": "{'pred': 'yes', 'score': 5}", "blue": "{'pred': 'no', 'score': 1}",
                     "flaky": "{'pred': 'yes', 'score': 3}"}.get(answer, "Looks right to me!")

    reply.seen = seen
    return reply


@pytest.fixture
def fake_judge(chat_stub):
    return chat_stub(judge_reply())


ITEMS = [("what color?", "red", "Red."), ("what color?", "blue", "Green."), ("what?", "garbled", "x"),
         ("what?", "flaky", "y"), ("what?", "notjson", "z")]


def test_judge_protocol_retries_counting_and_cache(fake_judge, tmp_path):
    config = JudgeConfig(base_url=fake_judge.url + "/", model="judge-7b", api_key="k", retries=2, concurrency=3)
    judgments = Judge(config, tmp_path / "judgments.jsonl", backoff=0).judge_all(ITEMS, progress=False)
    assert [(j.yes, j.score) for j in judgments] == [(True, 5), (False, 1), (False, 0), (True, 3), (False, 0)]
    assert "unreadable judgment 'Looks right to me!'" in judgments[2].error and "after 3 attempts" in judgments[2].error
    assert "not a chat completion" in judgments[4].error
    assert fake_judge.seen == {"red": 1, "blue": 1, "garbled": 3, "flaky": 2, "notjson": 3}
    first = fake_judge.requests[0]
    assert first["path"] == "/v1/chat/completions" and first["auth"] == "Bearer k"
    assert first["model"] == "judge-7b" and first["temperature"] == 0
    assert [m["role"] for m in first["messages"]] == ["system", "user"] and first["messages"][0]["content"] == SYSTEM_PROMPT
    user = next(r for r in fake_judge.requests if "Correct Answer: red" in r["messages"][1]["content"])
    assert "Question: what color?\nCorrect Answer: red\nPredicted Answer: Red.\n" in user["messages"][1]["content"]
    assert "Python dictionary string with keys 'pred' and 'score'" in user["messages"][1]["content"]

    s = summarize(judgments)
    assert s == {"accuracy": 2 / 5, "score": 9 / 5, "judged": 5, "yes": 2, "no": 3, "failed_judgments": 2,
                 "cached_judgments": 0}

    # A rerun asks only for what failed: the three good judgments come from the cache.
    before = dict(fake_judge.seen)
    again = Judge(config, tmp_path / "judgments.jsonl", backoff=0).judge_all(ITEMS, progress=False)
    assert [(j.yes, j.score, j.cached) for j in again][:2] == [(True, 5, True), (False, 1, True)]
    assert again[3].cached and summarize(again)["cached_judgments"] == 3
    assert {k: fake_judge.seen[k] - before[k] for k in before} == {"red": 0, "blue": 0, "garbled": 3, "flaky": 0,
                                                                   "notjson": 3}
    # Another judge model is another judgment.
    other = Judge(config.replace(model="judge-13b"), tmp_path / "judgments.jsonl", backoff=0)
    assert not other.judge("what color?", "red", "Red.").cached


def test_a_torn_cache_line_is_asked_again(fake_judge, tmp_path):
    cache = tmp_path / "judgments.jsonl"
    config = JudgeConfig(base_url=fake_judge.url, model="j")
    Judge(config, cache, backoff=0).judge("q", "red", "r")
    cache.write_text(cache.read_text() + '{"key": "abc", "rep')  # a crash mid-write
    judge = Judge(config, cache, backoff=0)
    assert judge.judge("q", "red", "r").cached and fake_judge.seen["red"] == 1
    # a reply edited into something unreadable is asked again, not trusted
    cache.write_text(cache.read_text().replace("{'pred': 'yes', 'score': 5}", "yes!"))
    assert not Judge(config, cache, backoff=0).judge("q", "red", "r").cached and fake_judge.seen["red"] == 2


def test_an_unreachable_judge_is_one_clear_error(chat_stub):
    closed = chat_stub(judge_reply())
    url = closed.url
    closed.close()
    config = JudgeConfig(base_url=url, model="j", timeout=5)
    with pytest.raises(InputError, match="the judge is unreachable: cannot connect"):
        check_reachable(config)
    with pytest.raises(InputError, match="the judge is unreachable"):
        Judge(config, backoff=0).judge_all(ITEMS[:2], progress=False)
    for status in (401, 404):
        wrong = chat_stub(judge_reply(status))
        with pytest.raises(InputError, match=f"HTTP {status} from {re.escape(wrong.url)}/chat/completions"):
            Judge(JudgeConfig(base_url=wrong.url, model="j"), backoff=0).judge("q", "a", "p")
        assert len(wrong.requests) == 1  # not retried


@pytest.mark.parametrize("kwargs, needle", [
    ({"base_url": "localhost:8000/v1", "model": "m"}, "must start with http"),
    ({"base_url": "http://localhost:8000/v1"}, "go together"),
    ({"model": "m"}, "go together"),
    ({"base_url": "http://x/v1", "model": "m", "concurrency": 0}, "concurrency"),
])
def test_judge_config_checks(kwargs, needle):
    with pytest.raises(InputError, match=needle):
        JudgeConfig(**kwargs)


# -- the command ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def msvd_folder(tmp_path_factory):
    """Three MSVD-QA questions in the Video-ChatGPT layout about synthetic clips; two clips written, one missing."""
    from gpt4video.generators import build_generator
    from gpt4video.video import write_video

    root = tmp_path_factory.mktemp("msvd")
    (root / "test_q.json").write_text(json.dumps([
        {"video_name": "clip_a", "question_id": 0, "question": "What color is the square?"},
        {"video_name": "clip_b", "question_id": 1, "question": "How many objects are there?"},
        {"video_name": "clip_gone", "question_id": 2, "question": "What moves?"}]))
    (root / "test_a.json").write_text(json.dumps([{"answer": "red", "question_id": 0},
                                                  {"answer": "blue", "question_id": 1},
                                                  {"answer": "red", "question_id": 2}]))
    render = build_generator("synthetic")
    for name, prompt in (("clip_a", "A red square moves to the right on a gray background."),
                         ("clip_b", "A blue circle grows on a black background.")):
        write_video(root / "videos" / f"{name}.mp4", render(prompt, num_frames=8, height=48, width=48, seed=0))
    return root


def test_eval_video_qa_command_with_the_judge(tiny_saved_model_dir, msvd_folder, fake_judge, tmp_path, capsys):
    from gpt4video.cli import main

    out = tmp_path / "out"
    argv = ["eval", "video-qa", "--benchmark", "msvd-qa", "--data", str(msvd_folder), "--out", str(out),
            "--model", str(tiny_saved_model_dir), "--max-new-tokens", "3", "--no-progress",
            "--judge-base-url", fake_judge.url, "--judge-model", "judge-7b", "--judge-retries", "0"]
    assert main(argv) == 0
    stdout, err = capsys.readouterr()
    assert "question 2: video 'clip_gone' not found" in err and "1 of 3 have no video" in err
    results = json.loads((out / "results.json").read_text())
    assert results["judge"] == "judge-7b" and results["accuracy"] == 0.5 and results["score"] == 3.0
    assert results["counts"] == {"questions": 3, "missing_videos": 1, "asked": 2, "prediction_errors": 0,
                                 "answered": 2, "judged": 2, "yes": 1, "no": 1, "failed_judgments": 0,
                                 "cached_judgments": 0}
    assert "| judge-7b | 50.0% | 3.00 | 1 | 1 | 0 |" in stdout and "| no judge | 2 |" in stdout
    assert len((out / "predictions.jsonl").read_text().splitlines()) == 2

    # A rerun costs nothing: the predictions and the judgments are there already.
    asked = len(fake_judge.requests)
    assert main(argv) == 0
    capsys.readouterr()
    assert len(fake_judge.requests) == asked
    assert json.loads((out / "results.json").read_text())["counts"]["cached_judgments"] == 2

    # Without a judge: exact and contains match, labelled "no judge".
    assert main(argv[:-6] + ["--out", str(tmp_path / "plain")]) == 0
    stdout = capsys.readouterr().out
    assert "| no judge | 2 |" in stdout and json.loads((tmp_path / "plain" / "results.json").read_text())["judge"] is None


def test_eval_video_qa_bad_input_exits_2_before_any_answer(tiny_saved_model_dir, msvd_folder, tmp_path, capsys,
                                                          chat_stub):
    from gpt4video.cli import main

    closed = chat_stub(judge_reply())
    closed.close()
    (tmp_path / "file").write_text("x")
    base = ["eval", "video-qa", "--model", str(tiny_saved_model_dir), "--no-progress"]
    for argv, needle in (
        (base + ["--data", str(msvd_folder), "--out", str(tmp_path / "o")], "needs --benchmark msvd-qa|"),
        (base + ["--benchmark", "msr-vtt", "--data", str(msvd_folder), "--out", str(tmp_path / "o")], "needs --benchmark"),
        (base + ["--benchmark", "msvd-qa", "--out", str(tmp_path / "o")], "needs --data"),
        (base + ["--benchmark", "msvd-qa", "--data", str(msvd_folder)], "needs --out"),
        (base + ["--benchmark", "msvd-qa", "--data", str(msvd_folder), "--out", str(tmp_path / "file")],
         "must be a directory"),
        (base + ["--benchmark", "msvd-qa", "--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")],
         "data folder not found"),
        (base + ["--benchmark", "msvd-qa", "--data", str(msvd_folder), "--out", str(tmp_path / "o"),
                 "--judge-base-url", closed.url, "--judge-model", "j"], "the judge is unreachable"),
        (base + ["--benchmark", "msvd-qa", "--data", str(msvd_folder), "--out", str(tmp_path / "o"),
                 "--judge-model", "j"], "go together"),
        (["eval", "--split-dir", str(tmp_path), "--judge-model", "j"], "--judge-model is an option of `eval video-qa`"),
        (["eval", "safety", "--benchmark", "msvd-qa"], "not a safety benchmark"),
    ):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert needle in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    assert not (tmp_path / "o").exists()  # nothing answered


def test_gpt4video_serve_as_the_judge(tiny_server, tmp_path):
    """`gpt4video serve` (uvicorn on loopback, the tiny model) is an OpenAI-compatible endpoint the judge can use:
    the tiny model's replies are no Python dict, so every judgment fails after its retries and counts as no / 0,
    and none is cached. A wrong key is an unreachable judge."""
    judge = Judge(JudgeConfig(base_url=tiny_server, model="tiny", api_key="k", retries=1, concurrency=2),
                  tmp_path / "judgments.jsonl", backoff=0)
    judgments = judge.judge_all(ITEMS[:2], progress=False)
    assert [(j.yes, j.score) for j in judgments] == [(False, 0), (False, 0)]
    assert all("after 2 attempts" in j.error for j in judgments)
    assert summarize(judgments)["failed_judgments"] == 2 and not (tmp_path / "judgments.jsonl").exists()
    with pytest.raises(InputError, match="HTTP 401"):
        Judge(JudgeConfig(base_url=tiny_server, model="tiny", api_key="wrong"), backoff=0).judge("q", "a", "p")


def test_eval_video_qa_with_gpt4video_serve_as_the_judge(tiny_saved_model_dir, msvd_folder, tiny_server, tmp_path,
                                                         capsys):
    """The whole command with `gpt4video serve` (the tiny model) as the judge: the protocol's prompt is longer than
    the tiny model's 512-token context, so the server answers HTTP 400 and both answered questions count as no / 0
    after their retries, each with its reason in results.json."""
    from gpt4video.cli import main

    out = tmp_path / "out"
    assert main(["eval", "video-qa", "--benchmark", "msvd-qa", "--data", str(msvd_folder), "--out", str(out),
                 "--model", str(tiny_saved_model_dir), "--max-new-tokens", "3", "--no-progress", "--json",
                 "--judge-base-url", tiny_server, "--judge-model", "tiny", "--judge-api-key", "k",
                 "--judge-retries", "1"]) == 0
    printed = json.loads(capsys.readouterr().out)
    results = json.loads((out / "results.json").read_text())
    assert printed == results and results["judge"] == "tiny" and (results["accuracy"], results["score"]) == (0.0, 0.0)
    assert results["counts"]["failed_judgments"] == 2 and len(results["failed_judgments"]) == 2
    assert "after 2 attempts: HTTP 400" in results["failed_judgments"][0]["error"]
    assert "more than the 506 allowed" in results["failed_judgments"][0]["error"]
    assert not (out / "judgments.jsonl").exists()
