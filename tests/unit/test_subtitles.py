import pytest

from gpt4video.audio import SpeechSegment, format_subtitles, name_source, segment_frames, spoken_words

FRAMES = [0.0, 0.5, 1.0, 1.5, 2.1, 2.5]


def test_segment_spans_the_frames_shown_while_it_is_spoken():
    assert segment_frames(SpeechSegment(0.3, 1.1, "x"), FRAMES) == (2, 3)


def test_a_segment_between_two_frames_gets_the_nearest_one():
    assert segment_frames(SpeechSegment(2.0, 2.05, "x"), FRAMES) == (5, 5)


def test_the_line_names_each_segment_with_its_frames():
    line = format_subtitles([SpeechSegment(0.3, 1.1, "the red  ball"), SpeechSegment(2.0, 2.05, "go")], FRAMES)
    assert line == 'Subtitles: "the red ball" (frames 2-3); "go" (frame 5).'


def test_no_speech_gives_no_line():
    assert format_subtitles([], FRAMES) == ""
    assert format_subtitles([SpeechSegment(0.0, 1.0, "  ")], FRAMES) == ""


def test_timing_needs_frames():
    with pytest.raises(ValueError, match="frame_times is empty"):
        segment_frames(SpeechSegment(0.0, 1.0, "x"), [])


def test_a_line_can_name_its_source():
    line = format_subtitles([SpeechSegment(0.3, 1.1, "hello")], FRAMES)
    assert name_source(line, "video 2") == 'Subtitles (video 2):' + line[len("Subtitles:"):]
    with pytest.raises(ValueError, match="not a subtitles line"):
        name_source("hello", "video 1")


def test_spoken_words_are_the_lines_quotes_without_its_form():
    line = format_subtitles([SpeechSegment(0.3, 1.1, 'say "hi" now'), SpeechSegment(2.0, 2.05, "go")], FRAMES)
    assert spoken_words(line) == 'say "hi" now go'
    assert spoken_words(name_source(line, "audio 1")) == 'say "hi" now go'
    assert spoken_words("Sounds: a beep (frame 3).") == ""
    assert spoken_words('What is "said" (frame 2).') == ""
