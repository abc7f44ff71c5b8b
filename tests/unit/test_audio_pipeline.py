"""Sound in a conversation: subtitles of a video's speech, its beeps as the sounds line (when on), audio files
alone, and every bad sound case."""

import json

import numpy as np
import pytest

from gpt4video.audio import SAMPLE_RATE, SpeechConfig, Transcriber, load_audio
from gpt4video.audio.synthesis import beep, mix, mux_audio, narrate, write_audio
from gpt4video.cli import main
from gpt4video.engines import GenerationParams
from gpt4video.errors import AudioError, InputError
from gpt4video.pipeline import Assistant
from gpt4video.video import write_video

PARAMS = GenerationParams(max_new_tokens=2)


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """A silent clip, the same clip speaking from 1.0 s, with a silent track, with a beep, speaking then beeping;
    audio files with speech, silence, a beep, and a corrupt one."""
    root = tmp_path_factory.mktemp("sound")
    frames = np.random.default_rng(0).integers(0, 255, (32, 48, 64, 3), dtype=np.uint8)
    silent = write_video(root / "silent.mp4", frames, fps=8)
    speech = narrate("good morning everyone")
    made = {"silent": silent,
            "speaking": mux_audio(silent, mix([(1.0, speech)], 4.0), SAMPLE_RATE, root / "speaking.mp4"),
            "quiet": mux_audio(silent, np.zeros(4 * SAMPLE_RATE, np.float32), SAMPLE_RATE, root / "quiet.mp4"),
            "beeping": mux_audio(silent, mix([(2.0, beep(880.0, 0.5))], 4.0), SAMPLE_RATE, root / "beeping.mp4"),
            "speaking_beeping": mux_audio(silent, mix([(0.3, speech), (3.2, beep(880.0, 0.4))], 4.0), SAMPLE_RATE,
                                          root / "speaking_beeping.mp4"),
            "speech.wav": write_audio(root / "speech.wav", mix([(0.5, speech)], 3.0)),
            "silence.flac": write_audio(root / "silence.flac", np.zeros(2 * SAMPLE_RATE, np.float32)),
            "beep.wav": write_audio(root / "beep.wav", mix([(1.0, beep(660.0, 0.4))], 3.0)),
            "broken.wav": root / "broken.wav"}
    made["broken.wav"].write_bytes(b"RIFF" + b"\x00" * 64)
    return made


@pytest.fixture
def assistant(tiny_model, hears_red_ball):
    return Assistant(tiny_model, speech=hears_red_ball)


@pytest.fixture
def hears_beeps(tiny_model, hears_red_ball):
    """An assistant whose recogniser gives the sounds line too (``SpeechConfig.sounds``)."""
    return Assistant(tiny_model, speech=Transcriber(hears_red_ball.recognizer, sounds=True))


def test_a_video_with_speech_gets_its_subtitles_first_in_its_turn(assistant, clips):
    reply = assistant.ask("What is said?", [clips["speaking"]], PARAMS).consume()
    user = assistant.turns[0]
    assert user.videos == [0]
    line, question = user.text.split("\n")
    assert line.startswith('Subtitles: "the red ball" (frame') and question == "What is said?"
    assert reply.subtitles == [line] and reply.request == "What is said?"
    # the 4 frames sit at 0.5, 1.5, 2.5 and 3.5 s; the speech runs from about 1.0 to 2.3 s
    assert line in ('Subtitles: "the red ball" (frame 2).', 'Subtitles: "the red ball" (frames 2-3).')
    prompt = assistant.model.processor.render(assistant.turns)
    assert prompt.index("[4 video tokens]") < prompt.index("Subtitles:") < prompt.index("What is said?")


def test_with_several_videos_each_subtitles_line_names_its_video(assistant, clips):
    reply = assistant.ask("Who speaks?", [clips["speaking"], clips["silent"], clips["speaking"]], PARAMS).consume()
    *lines, question = assistant.turns[0].text.split("\n")
    assert question == "Who speaks?" and reply.subtitles == lines and len(lines) == 2
    assert lines[0].startswith('Subtitles (video 1): "the red ball" (frame')
    assert lines[1].startswith('Subtitles (video 3): "the red ball" (frame')
    # an audio file in a later turn is named too, numbered among the audio files
    assistant.ask("And this?", audio=[clips["speech.wav"]], params=PARAMS).consume()
    assert assistant.turns[2].text.startswith('Subtitles (audio 1): "the red ball"')


def test_a_refused_turn_takes_its_audio_files_with_it(tiny_model, hears_red_ball, clips):
    from gpt4video.safety import SafetyConfig, SafetyPolicy

    policy = SafetyPolicy(SafetyConfig(input_text=["profanity"], input_frames=[], prompt=[], output_frames=[],
                                       corroborate_refusals=False)).load()
    assistant = Assistant(tiny_model, speech=hears_red_ball, safety=policy)
    refused = assistant.ask("What the fuck is this shit?", audio=[clips["speech.wav"]], params=PARAMS).consume()
    assert refused.refused_by == "input" and assistant.audio_paths == [] and assistant.turns == []
    assistant.ask("What is said?", audio=[clips["speech.wav"]], params=PARAMS).consume()
    assert assistant.audio_paths == [str(clips["speech.wav"])]
    assert assistant.turns[0].text.startswith('Subtitles: "the red ball"')  # the only audio file: not numbered


class Hears:
    """A speech recogniser that hears ``words`` in every stretch of sound it is given."""

    name = "hears"

    def __init__(self, words):
        self.words = words

    def transcribe(self, samples):
        return self.words


def marker_policy(monkeypatch):
    """A policy whose only text check flags 'hate' for text containing the neutral marker 'zzhate' and records
    every text it reads."""
    from gpt4video.safety import CHECKERS, SafetyChecker, SafetyConfig, SafetyPolicy
    from gpt4video.safety.base import verdict_from_scores

    class Marker(SafetyChecker):
        name, kind, categories = "marker", "text", ("hate",)
        seen: list[str] = []

        def __init__(self, *, thresholds=None):
            pass

        def check_text(self, text):
            Marker.seen.append(text)
            return verdict_from_scores(self.name, {"hate": 0.9 if "zzhate" in text else 0.01}, {"hate": 0.5})

    monkeypatch.setitem(CHECKERS._items, "marker", Marker)
    config = SafetyConfig(input_text=["marker"], input_frames=[], prompt=[], output_frames=[],
                          corroborate_refusals=False)
    return SafetyPolicy(config).load(), Marker.seen


def test_the_input_check_reads_the_speech_apart_from_the_message(tiny_model, clips, monkeypatch):
    """What a video says is checked as its own text, without the subtitles line's form; a refusal names it."""
    policy, seen = marker_policy(monkeypatch)
    assistant = Assistant(tiny_model, speech=Transcriber(Hears("please zzhate them")), safety=policy)
    refused = assistant.ask("What is said?", [clips["speaking"]], PARAMS).consume()
    assert refused.refused_by == "input" and assistant.turns == []
    assert "your video's speech was flagged as hate" in refused.text
    assert [(r["source"], r["flagged"]) for r in refused.safety] == [("message", False), ("video's speech", True)]
    assert seen == ["What is said?", "please zzhate them"]


def test_the_conversation_check_reads_the_users_words_not_the_lines_heard(tiny_model, clips, monkeypatch):
    policy, seen = marker_policy(monkeypatch)
    assistant = Assistant(tiny_model, speech=Transcriber(Hears("the red ball")), safety=policy)
    assistant.ask("What is said?", [clips["speaking"]], PARAMS).consume()
    assert assistant.turns[0].text.startswith("Subtitles:")  # the model still reads the line
    answered = assistant.ask("And here?", [clips["speaking"]], PARAMS).consume()
    assert answered.refused_by is None
    assert not any("Subtitles" in text for text in seen)
    assert "What is said?\nAnd here?" in seen  # the conversation: the user's own words of both turns
    # with two videos in the conversation the speech is named by its video
    assert [r["source"] for r in answered.safety] == ["message", "conversation", "video 2's speech"]


@pytest.mark.parametrize("clip", ["silent", "quiet", "beeping"])
def test_a_video_without_speech_gets_no_subtitles(assistant, clips, clip):
    reply = assistant.ask("What is said?", [clips[clip]], PARAMS).consume()
    assert reply.subtitles == [] and assistant.turns[0].text == "What is said?"


def test_an_audio_file_alone_is_answered_from_its_subtitles(assistant, clips):
    reply = assistant.ask("What does the narrator say?", audio=[clips["speech.wav"]], params=PARAMS).consume()
    assert reply.finish_reason and reply.input_videos == [] and reply.input_audio == [str(clips["speech.wav"])]
    assert assistant.turns[0].videos == [] and assistant.turns[0].text.startswith('Subtitles: "the red ball"')
    assert "video tokens" not in assistant.model.processor.render(assistant.turns)
    assert json.loads(json.dumps(reply.output.to_dict()))["subtitles"] == reply.subtitles


def test_a_silent_audio_file_leaves_only_the_question(assistant, clips):
    reply = assistant.ask("Is anything said?", audio=[clips["silence.flac"]], params=PARAMS).consume()
    assert reply.finish_reason and reply.subtitles == [] and assistant.turns[0].text == "Is anything said?"


def test_bad_sound_is_one_error_and_leaves_the_conversation_unchanged(assistant, clips):
    with pytest.raises(AudioError, match=r"broken\.wav: not an audio or video file"):
        assistant.ask("What is said?", [clips["speaking"]], PARAMS, audio=[clips["broken.wav"]])
    with pytest.raises(AudioError, match="has no audio stream"):
        assistant.ask("What is said?", audio=[clips["silent"]], params=PARAMS)
    assert assistant.video_paths == [] and assistant.audio_paths == [] and assistant.turns == []
    reply = assistant.ask("And now?", [clips["silent"]], PARAMS).consume()
    assert reply.subtitles == [] and assistant.turns[0].text == "And now?"


def test_without_a_recogniser_videos_are_not_heard_and_audio_files_are_refused(tiny_model, clips):
    deaf = Assistant(tiny_model)
    deaf.ask("What is said?", [clips["speaking"]], PARAMS).consume()
    assert deaf.turns[0].text == "What is said?"
    with pytest.raises(InputError, match="speech recognition is off"):
        deaf.ask("What is said?", audio=[clips["speech.wav"]], params=PARAMS)


def test_restored_turns_carry_their_subtitles(assistant, clips):
    assistant.restore([("user", "What is said?", [clips["speaking"]]), ("assistant", "hello", []),
                       ("user", "And here?", [load_audio(clips["speech.wav"])]), ("assistant", "hi", [])])
    first, _, second, _ = assistant.turns
    assert first.videos == [0] and first.text.startswith("Subtitles:") and first.text.endswith("What is said?")
    # the second medium of the conversation: its line names it
    assert second.videos == [] and second.text.startswith("Subtitles (audio 1):") and second.text.endswith("And here?")


# -- the sounds line (SpeechConfig.sounds) -------------------------------------------------------------
def test_sounds_are_on_by_default():
    assert SpeechConfig().sounds is True and SpeechConfig(sounds=False).build().sounds is False


def test_with_sounds_on_a_beep_is_the_sounds_line_first_in_its_turn(hears_beeps, clips):
    reply = hears_beeps.ask("When does the beep start?", [clips["beeping"]], PARAMS).consume()
    # the 4 frames sit at 0.5, 1.5, 2.5 and 3.5 s; the beep sounds from 2.0 to 2.5 s; nothing is said
    assert hears_beeps.turns[0].text == "Sounds: a beep (frame 3).\nWhen does the beep start?"
    assert reply.subtitles == ["Sounds: a beep (frame 3)."]
    assert json.loads(json.dumps(reply.output.to_dict()))["subtitles"] == reply.subtitles
    prompt = hears_beeps.model.processor.render(hears_beeps.turns)
    assert prompt.index("[4 video tokens]") < prompt.index("Sounds:") < prompt.index("When does the beep start?")


def test_with_sounds_on_the_sounds_line_follows_its_videos_subtitles(hears_beeps, clips):
    reply = hears_beeps.ask("What happens?", [clips["speaking_beeping"]], PARAMS).consume()
    # speech from 0.3 to about 1.5 s, the beep from 3.2 to 3.6 s
    assert hears_beeps.turns[0].text.split("\n") == ['Subtitles: "the red ball" (frames 1-2).',
                                                      "Sounds: a beep (frame 4).", "What happens?"]
    assert reply.subtitles == hears_beeps.turns[0].text.split("\n")[:2]


@pytest.mark.parametrize("clip", ["silent", "quiet", "speaking"])
def test_with_sounds_on_a_track_without_a_beep_has_no_sounds_line(hears_beeps, clips, clip):
    reply = hears_beeps.ask("What is heard?", [clips[clip]], PARAMS).consume()
    assert not any(line.startswith("Sounds") for line in reply.subtitles)
    assert hears_beeps.turns[0].text == "\n".join([*reply.subtitles, "What is heard?"])


@pytest.mark.parametrize(("clip", "lines"), [("beeping", []),
                                             ("speaking_beeping", ['Subtitles: "the red ball" (frames 1-2).'])])
def test_with_sounds_off_a_beep_gives_no_line(assistant, clips, clip, lines):
    assert assistant.speech.sounds is False
    reply = assistant.ask("What is heard?", [clips[clip]], PARAMS).consume()
    assert reply.subtitles == lines and assistant.turns[0].text == "\n".join([*lines, "What is heard?"])


def test_with_sounds_on_a_beep_in_an_audio_file_is_heard(hears_beeps, clips):
    reply = hears_beeps.ask("When does the beep start?", audio=[clips["beep.wav"]], params=PARAMS).consume()
    # an audio file alone: its 3 s are timed to 4 points (0.375, 1.125, 1.875, 2.625 s); the beep is 1.0-1.4 s
    assert reply.subtitles == ["Sounds: a beep (frame 2)."] and reply.input_videos == []
    assert hears_beeps.turns[0].text == "Sounds: a beep (frame 2).\nWhen does the beep start?"


def test_with_sounds_on_each_line_names_its_source(hears_beeps, clips):
    reply = hears_beeps.ask("Which beeps?", [clips["beeping"], clips["silent"], clips["speaking_beeping"]],
                            PARAMS).consume()
    *lines, question = hears_beeps.turns[0].text.split("\n")
    assert question == "Which beeps?" and reply.subtitles == lines
    assert lines == ["Sounds (video 1): a beep (frame 3).", 'Subtitles (video 3): "the red ball" (frames 1-2).',
                     "Sounds (video 3): a beep (frame 4)."]
    hears_beeps.ask("And this?", audio=[clips["beep.wav"]], params=PARAMS).consume()
    assert hears_beeps.turns[2].text == "Sounds (audio 1): a beep (frame 2).\nAnd this?"


def test_without_a_recogniser_a_beep_is_not_heard(tiny_model, clips):
    deaf = Assistant(tiny_model)
    reply = deaf.ask("When does the beep start?", [clips["beeping"]], PARAMS).consume()
    assert reply.subtitles == [] and deaf.turns[0].text == "When does the beep start?"


# -- the command line ------------------------------------------------------------------------------
def run(argv, capsys):
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_chat_hears_an_audio_file(tiny_saved_model_dir, clips, capsys):
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["speech.wav"]),
                          "--prompt", "What does the narrator say?", "--max-new-tokens", "2", "--json",
                          "--no-safety"], capsys)
    assert code == 0, err
    reply = json.loads(out)
    assert reply["input_videos"] == [] and reply["input_audio"] == [str(clips["speech.wav"])]
    assert len(reply["subtitles"]) == 1 and "morning" in reply["subtitles"][0]


def test_chat_turns_subtitles_off(tiny_saved_model_dir, clips, capsys):
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--video", str(clips["speaking"]),
                          "--prompt", "What is said?", "--max-new-tokens", "2", "--json", "--no-safety",
                          "--no-subtitles"], capsys)
    assert code == 0, err
    assert json.loads(out)["subtitles"] == []
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["speech.wav"]),
                          "--prompt", "What is said?", "--no-subtitles"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--no-subtitles" in err


def test_chat_gives_beeps_as_the_sounds_line_when_asked(tiny_saved_model_dir, clips, capsys):
    base = ["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["beep.wav"]), "--prompt",
            "When does the beep start?", "--max-new-tokens", "2", "--json", "--no-safety"]
    code, out, err = run([*base, "--sounds"], capsys)
    assert code == 0, err
    assert [line.split(" (")[0] for line in json.loads(out)["subtitles"]] == ["Sounds: a beep"]
    code, out, err = run([*base, "--no-sounds"], capsys)
    assert code == 0, err
    assert json.loads(out)["subtitles"] == []


def test_chat_names_a_broken_audio_file(tiny_saved_model_dir, clips, capsys):
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["broken.wav"]),
                          "--prompt", "What is said?"], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "broken.wav: not an audio or video file" in err and "Traceback" not in err


def test_chat_limits_the_recogniser_to_a_vocabulary(tiny_saved_model_dir, clips, tmp_path, capsys):
    words = tmp_path / "words.txt"
    words.write_text("good morning everyone evening night\n")
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["speech.wav"]),
                          "--prompt", "What is said?", "--max-new-tokens", "2", "--json", "--no-safety",
                          "--speech-vocabulary", str(words)], capsys)
    assert code == 0, err
    heard = json.loads(out)["subtitles"][0]
    assert "morning" in heard and set(heard.split('"')[1].split()) <= {"good", "morning", "everyone", "evening", "night"}
    words.write_text("good zqxv\n")
    code, out, err = run(["chat", "--model", str(tiny_saved_model_dir), "--audio", str(clips["speech.wav"]),
                          "--prompt", "What is said?", "--speech-vocabulary", str(words)], capsys)
    assert code == 2 and "no pronunciation for: zqxv" in err and err.count("\n") == 1


def test_predict_hears_audio_rows_unless_subtitles_are_off(tiny_saved_model_dir, clips, tmp_path, capsys):
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"question": "What does the narrator say?", "audio": str(clips["speech.wav"])}) + "\n")
    base = ["predict", "--model", str(tiny_saved_model_dir), "--input", str(rows), "--max-new-tokens", "2",
            "--no-safety", "--no-progress"]
    code, _, err = run([*base, "--output", str(tmp_path / "heard.jsonl")], capsys)
    heard = json.loads((tmp_path / "heard.jsonl").read_text())
    assert code == 0 and "error" not in heard, err
    assert len(heard["subtitles"]) == 1 and "morning" in heard["subtitles"][0]
    code, _, err = run([*base, "--output", str(tmp_path / "deaf.jsonl"), "--no-subtitles"], capsys)
    assert code == 0 and "speech recognition is off" in json.loads((tmp_path / "deaf.jsonl").read_text())["error"]
