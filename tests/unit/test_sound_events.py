import json
import re

import numpy as np
import pytest

from gpt4video.audio import SAMPLE_RATE, SpeechSegment, format_subtitles, name_source
from gpt4video.audio.events import SOUNDS_PREFIX, format_sounds, tone_regions
from gpt4video.audio.synthesis import beep, mix
from gpt4video.audio.vad import speech_regions
from gpt4video.data.synthetic import sample_scene
from gpt4video.data.synthetic.sounds import NO_BEEP_REPLY, beep_reply, sound_row
from gpt4video.video.sampling import uniform_timestamps

FRAMES = [0.0, 0.5, 1.0, 1.5, 2.1, 2.5]


def test_a_beep_is_found_where_it_sounds():
    regions = tone_regions(mix([(1.23, beep(880.0, 0.4))], duration=3.0), SAMPLE_RATE)
    assert len(regions) == 1
    (start, end), = regions
    assert abs(start - 1.23) < 0.1 and abs(end - 1.63) < 0.1


def test_two_beeps_are_two_regions_and_speech_detection_skips_them():
    track = mix([(0.4, beep(660.0, 0.3)), (2.0, beep(1000.0, 0.5))], duration=3.0)
    starts = [start for start, _ in tone_regions(track, SAMPLE_RATE)]
    assert len(starts) == 2 and abs(starts[0] - 0.4) < 0.1 and abs(starts[1] - 2.0) < 0.1
    assert speech_regions(track, SAMPLE_RATE) == []


def test_silence_and_white_noise_have_no_beep():
    assert tone_regions(np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE) == []
    assert tone_regions(np.zeros(10, np.float32), SAMPLE_RATE) == []  # shorter than a frame
    noise = (np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE) * 0.2).astype(np.float32)
    assert tone_regions(noise, SAMPLE_RATE) == []


def test_a_beep_over_noise_is_found():
    noise = (np.random.default_rng(1).standard_normal(3 * SAMPLE_RATE) * 0.02).astype(np.float32)
    (start, _), = tone_regions(mix([(0.0, noise), (1.5, beep(880.0, 0.3))], duration=3.0), SAMPLE_RATE)
    assert abs(start - 1.5) < 0.1


def test_the_sounds_line_names_each_beep_with_its_frames():
    assert format_sounds([(0.3, 1.1)], FRAMES) == "Sounds: a beep (frames 2-3)."
    assert format_sounds([(0.3, 0.4), (2.0, 2.6)], FRAMES) == "Sounds: a beep (frame 2); a beep (frames 5-6)."
    assert format_sounds([], FRAMES) == ""


def test_the_sounds_line_is_timed_as_subtitles_are():
    said = format_subtitles([SpeechSegment(0.3, 1.1, "hello")], FRAMES)
    assert said.endswith("(frames 2-3).") and format_sounds([(0.3, 1.1)], FRAMES).endswith("(frames 2-3).")


def test_a_sounds_line_can_name_its_source():
    line = format_sounds([(0.3, 1.1)], FRAMES)
    assert SOUNDS_PREFIX == "Sounds:"
    assert name_source(line, "video 2") == "Sounds (video 2): a beep (frames 2-3)."
    assert name_source('Subtitles: "hi" (frame 1).', "audio 1") == 'Subtitles (audio 1): "hi" (frame 1).'
    with pytest.raises(ValueError, match="not a subtitles line"):
        name_source("Sounds like a plan", "video 1")


def _rows(count: int, num_frames: int = 4) -> list[tuple[object, dict]]:
    scenes = [sample_scene(seed, num_frames=16, fps=8.0) for seed in range(count)]
    return [(s, sound_row(s, "clips/x.mp4", np.random.default_rng([s.seed, 10]), num_frames=num_frames))
            for s in scenes]


@pytest.mark.parametrize("num_frames", [4, 8])
def test_sound_rows_answer_from_the_sounds_line(num_frames):
    kinds, narrated = set(), 0
    for scene, row in _rows(40, num_frames):
        user, reply = row["turns"]
        assert set(row) == {"video", "turns", "sound"} and user["videos"] == [0] and reply["role"] == "assistant"
        lines = user["text"].split("\n")
        question = lines[-1]
        if lines[0].startswith("Subtitles:"):  # a narrated clip: subtitles first, then the sounds line
            narrated += 1
            lines = lines[1:]
        if row["sound"] is None:
            assert "Sounds" not in user["text"] and len(lines) == 1
            if "beep" in question:
                assert reply["text"] in (NO_BEEP_REPLY, "No.")
                kinds.add("silent " + reply["text"])
            continue
        start, end = row["sound"]["start"], row["sound"]["end"]
        assert 0 <= start < end <= scene.num_frames / scene.fps and 0.19 <= end - start <= 0.61
        line, _ = lines
        frame_times = uniform_timestamps(scene.num_frames / scene.fps, num_frames)
        assert line == format_sounds([(start, end)], frame_times)
        first = int(re.search(r"frames? (\d+)", line).group(1))
        if reply["text"].startswith("The beep starts"):
            assert reply["text"] == beep_reply(first)
            kinds.add("when")
        elif reply["text"] in ("Yes.", "No."):
            assert reply["text"] == "Yes."
            kinds.add("whether")
        else:
            kinds.add("picture")
    assert kinds == {"when", "whether", "picture", f"silent {NO_BEEP_REPLY}", "silent No."}
    assert 0 < narrated < 40


def test_sound_rows_are_deterministic_for_a_seed():
    scene = sample_scene(3, num_frames=16, fps=8.0)
    first = [sound_row(scene, "v.mp4", np.random.default_rng([7, 10])) for _ in range(2)]
    assert first[0] == first[1]


def test_a_rows_beep_is_found_back_in_its_sound_track():
    for scene, row in _rows(12):
        if row["sound"] is None:
            continue
        sound = row["sound"]
        track = mix([(sound["start"], beep(sound["frequency"], sound["end"] - sound["start"]))],
                    duration=scene.num_frames / scene.fps)
        (start, _), = tone_regions(track, SAMPLE_RATE)
        assert abs(start - sound["start"]) < 0.1


def test_a_split_has_sound_questions(tmp_path):
    pytest.importorskip("gpt4video.video")
    from gpt4video.data.synthetic import build_split

    root = build_split(tmp_path, "val", 3, width=64, height=64, num_frames=8, progress=False)
    rows = [json.loads(line) for line in (root / "sound_qa.jsonl").read_text().splitlines()]
    scenes = [json.loads(line)["video"] for line in (root / "scenes.jsonl").read_text().splitlines()]
    assert [r["video"] for r in rows] == scenes
    assert all(set(r) == {"video", "turns", "sound"} for r in rows)
