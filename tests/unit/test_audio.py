"""Sound in: reading audio files and sound tracks, voice activity, recognisers, and synthetic narration."""

import json

import av
import numpy as np
import pytest
import torch

from gpt4video.audio import SAMPLE_RATE, AudioTrack, SpeechSegment, Transcriber, load_audio
from gpt4video.audio.recognition import PocketSphinxRecognizer, SpeechConfig, WhisperRecognizer
from gpt4video.audio.synthesis import beep, mix, mux_audio, narrate, write_audio
from gpt4video.audio.vad import speech_regions
from gpt4video.errors import AudioError, ConfigError, InputError
from gpt4video.video import load_video, write_video


class FixedWords:
    """A recogniser that hears the same words in every stretch it is given (and counts the stretches)."""

    name = "fixed"

    def __init__(self, words="hello there"):
        self.words = words
        self.calls = []

    def transcribe(self, samples):
        self.calls.append(len(samples) / SAMPLE_RATE)
        return self.words


@pytest.fixture(scope="module")
def speech():
    return narrate("good morning everyone")


@pytest.fixture(scope="module")
def silent_clip(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("v") / "silent.mp4", np.zeros((32, 48, 64, 3), np.uint8), fps=8)


def with_sound(clip, sounds, out):
    """``clip`` with a 4 s sound track made of ``sounds`` ((start, samples) pairs)."""
    return mux_audio(clip, mix(sounds, duration=4.0), SAMPLE_RATE, out)


# -- reading sound ---------------------------------------------------------------------------------
@pytest.mark.parametrize("ending", [".wav", ".flac", ".mp3", ".ogg"])
def test_audio_files_read_as_16k_mono(tmp_path, speech, ending):
    sound = mix([(0.5, speech)], duration=2.0)
    track = load_audio(write_audio(tmp_path / f"speech{ending}", sound))
    assert track.sample_rate == SAMPLE_RATE and track.samples.ndim == 1 and track.samples.dtype == np.float32
    assert abs(track.duration - 2.0) < 0.1
    assert np.abs(track.samples).max() > 0.3


def test_a_video_without_sound_has_no_track(silent_clip):
    assert load_audio(silent_clip, missing_ok=True) is None
    with pytest.raises(AudioError, match="has no audio stream"):
        load_audio(silent_clip)


@pytest.mark.parametrize("content, reason", [(b"", "file is empty"), (b"not sound at all " * 20, "not an audio or video")])
def test_unreadable_files_are_one_error(tmp_path, content, reason):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match=reason):
        load_audio(path)
    with pytest.raises(AudioError, match="file not found"):
        load_audio(tmp_path / "missing.wav")


def test_a_corrupt_sound_track_is_one_error(tmp_path, silent_clip, speech):
    good = with_sound(silent_clip, [(0.5, speech)], tmp_path / "good.mp4")
    rng = np.random.default_rng(0)
    bad = tmp_path / "bad.mp4"
    with av.open(str(good)) as src, av.open(str(bad), "w") as dst:
        video, sound = (dst.add_stream_from_template(src.streams.video[0]),
                        dst.add_stream_from_template(src.streams.audio[0]))
        for packet in src.demux():
            if packet.dts is None:
                continue
            if packet.stream.type == "audio":
                garbage = av.Packet(rng.integers(0, 256, packet.size, dtype=np.uint8).tobytes())
                garbage.pts, garbage.dts, garbage.time_base, garbage.stream = packet.pts, packet.dts, packet.time_base, sound
                dst.mux(garbage)
            else:
                packet.stream = video
                dst.mux(packet)
    with pytest.raises(AudioError, match=r"bad\.mp4: the audio stream is corrupt"):
        load_audio(bad)


# -- synthetic sound -------------------------------------------------------------------------------
def test_narration_is_speech_of_a_plausible_length(speech):
    assert speech.dtype == np.float32 and 0.1 < np.abs(speech).max() <= 1.0
    assert 0.6 < len(speech) / SAMPLE_RATE < 3.0  # three words
    with pytest.raises(InputError, match="needs some text"):
        narrate("  ")


def test_sound_joins_a_video_without_changing_its_frames(tmp_path, silent_clip, speech):
    out = with_sound(silent_clip, [(0.5, speech), (3.0, beep(880.0, 0.3))], tmp_path / "sounding.mp4")
    before, after = load_video(silent_clip, 8), load_video(out, 8)
    assert np.array_equal(before.frames, after.frames) and before.timestamps == after.timestamps
    track = load_audio(out)
    assert abs(track.duration - 4.0) < 0.1
    loud = np.flatnonzero(np.abs(track.samples) > 0.05) / SAMPLE_RATE
    assert 0.4 < loud[0] < 0.7 and 3.0 < loud[-1] < 3.4  # speech from 0.5 s, the beep ends at 3.3 s


def test_mux_refuses_an_ending_it_cannot_hold_sound_in(tmp_path, silent_clip):
    with pytest.raises(InputError, match=r"\.mp4, \.mov or \.mkv"):
        mux_audio(silent_clip, np.zeros(100, np.float32), SAMPLE_RATE, tmp_path / "x.gif")
    assert not list(tmp_path.iterdir())  # no temporary file left behind


# -- voice activity --------------------------------------------------------------------------------
def test_voice_activity_finds_speech_and_skips_silence_and_beeps(speech):
    assert speech_regions(np.zeros(3 * SAMPLE_RATE, np.float32), SAMPLE_RATE) == []
    assert speech_regions(mix([(1.0, beep(660.0, 1.0))], duration=3.0), SAMPLE_RATE) == []
    regions = speech_regions(mix([(1.0, speech)], duration=4.0), SAMPLE_RATE)
    assert len(regions) == 1
    start, end = regions[0]
    assert 0.8 < start < 1.1 and abs(end - (1.0 + len(speech) / SAMPLE_RATE)) < 0.3


def test_the_transcriber_times_each_stretch_of_speech(speech):
    words = FixedWords()
    track = AudioTrack(mix([(0.5, speech), (3.0, speech)], duration=5.0), SAMPLE_RATE)
    segments = Transcriber(words)(track)
    assert [s.text for s in segments] == ["hello there", "hello there"]
    assert segments[0].start < 0.6 and segments[1].start > 2.8 and segments[0].end < segments[1].start
    assert Transcriber(words)(AudioTrack(np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)) == []
    assert len(words.calls) == 2  # silence never reaches the recogniser


def test_long_speech_is_cut_into_pieces_the_recogniser_can_read(speech):
    words = FixedWords()
    segments = Transcriber(words, max_segment_seconds=0.5)(AudioTrack(mix([(0.2, speech)], 3.0), SAMPLE_RATE))
    assert len(segments) >= 3 and max(words.calls) <= 0.5 + 1e-6
    assert all(a.end == pytest.approx(b.start) for a, b in zip(segments, segments[1:]))


# -- recognisers -----------------------------------------------------------------------------------
def test_pocketsphinx_hears_a_spoken_sentence(speech):
    segments = SpeechConfig().build()(AudioTrack(mix([(0.5, speech)], duration=3.0), SAMPLE_RATE))
    assert "morning" in " ".join(s.text for s in segments)


def test_pocketsphinx_hears_no_words_in_noise():
    noise = np.random.default_rng(0).standard_normal(2 * SAMPLE_RATE).astype(np.float32) * 0.2
    assert PocketSphinxRecognizer().transcribe(noise) == ""


def test_a_vocabulary_needs_words_the_dictionary_knows():
    with pytest.raises(ConfigError, match="no pronunciation for: zqxv"):
        PocketSphinxRecognizer(["red zqxv"])


def test_speech_settings_are_checked():
    assert SpeechConfig(recognizer="none").build() is None
    with pytest.raises(ConfigError, match="must be one of"):
        SpeechConfig(recognizer="sphinx4").build()
    with pytest.raises(ConfigError, match="needs a model"):
        SpeechConfig(recognizer="whisper").build()


@pytest.fixture(scope="module")
def tiny_whisper_dir(tmp_path_factory):
    """A 1-layer Whisper of width 16 with a 27-letter tokenizer, saved with its processor."""
    from transformers import (WhisperConfig, WhisperFeatureExtractor, WhisperForConditionalGeneration,
                              WhisperProcessor, WhisperTokenizer)

    path = tmp_path_factory.mktemp("tiny_whisper")
    (path / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate([*"abcdefghijklmnopqrstuvwxyz", "Ġ"])}))
    (path / "merges.txt").write_text("#version: 0.2\n")
    specials = ["<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"]
    tokenizer = WhisperTokenizer(str(path / "vocab.json"), str(path / "merges.txt"), additional_special_tokens=specials,
                                 unk_token="<|endoftext|>", bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                 pad_token="<|endoftext|>")
    end, start = tokenizer.convert_tokens_to_ids(["<|endoftext|>", "<|startoftranscript|>"])
    config = WhisperConfig(vocab_size=len(tokenizer), d_model=16, encoder_layers=1, decoder_layers=1,
                           encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32,
                           decoder_ffn_dim=32, num_mel_bins=80, max_source_positions=1500, max_target_positions=64,
                           decoder_start_token_id=start, eos_token_id=end, pad_token_id=end, bos_token_id=end)
    torch.manual_seed(0)
    WhisperForConditionalGeneration(config).save_pretrained(path)
    WhisperProcessor(feature_extractor=WhisperFeatureExtractor(feature_size=80), tokenizer=tokenizer).save_pretrained(path)
    return path


def test_whisper_transcribes_through_transformers(tiny_whisper_dir, speech):
    recognizer = WhisperRecognizer.from_pretrained(str(tiny_whisper_dir), max_new_tokens=4)
    text = recognizer.transcribe(speech)
    assert isinstance(text, str) and set(text) <= set("abcdefghijklmnopqrstuvwxyz ")  # random weights: any letters
    transcriber = SpeechConfig(recognizer="whisper", model=str(tiny_whisper_dir)).build()
    assert isinstance(transcriber.recognizer, WhisperRecognizer)
    segments = transcriber(AudioTrack(mix([(0.5, speech)], duration=3.0), SAMPLE_RATE))
    assert all(isinstance(s, SpeechSegment) and 0.3 < s.start < s.end <= 3.0 for s in segments)


def test_a_missing_whisper_model_is_one_error(tmp_path):
    from gpt4video.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="cannot load the Whisper model"):
        WhisperRecognizer.from_pretrained(str(tmp_path / "nowhere"))
