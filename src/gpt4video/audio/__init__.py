"""A video's sound as part of the conversation: speech as subtitles timed to the sampled frames.

``load_audio`` reads an audio file or a video's sound track (16 kHz mono), ``Transcriber`` finds the
speech in it (VAD, then a recogniser), ``format_subtitles`` writes the line the LLM reads, ``tone_regions`` and
``format_sounds`` find beeps and write their line (at inference unless ``SpeechConfig(sounds=False)``), and
:mod:`gpt4video.audio.synthesis` speaks and beeps for synthetic clips.
"""

from .decode import AUDIO_EXTENSIONS, SAMPLE_RATE, AudioTrack, has_only_audio, is_audio_file, load_audio
from .events import format_sounds, tone_regions
from .recognition import SpeechConfig, Transcriber
from .subtitles import SpeechSegment, format_subtitles, name_source, segment_frames, spoken_words

__all__ = ["AUDIO_EXTENSIONS", "SAMPLE_RATE", "AudioTrack", "SpeechConfig", "SpeechSegment", "Transcriber",
           "format_sounds", "format_subtitles", "has_only_audio", "is_audio_file", "load_audio", "name_source",
           "segment_frames", "spoken_words", "tone_regions"]
