"""Speech → timed text: voice-activity detection, then a speech recogniser on each voiced stretch.

Two recognisers behind one call, ``recognizer.transcribe(samples_16k) -> str``:

- ``pocketsphinx`` (the offline default): CMU PocketSphinx with the US-English acoustic model, language
  model and dictionary that ship inside its wheel. An optional ``vocabulary`` restricts it to a word
  list (a JSGF word loop), far more accurate when the words that can be said are known.
- ``whisper``: OpenAI Whisper through transformers (``WhisperForConditionalGeneration``), by hub id or
  directory, for connected machines.

:class:`Transcriber` joins them: ``Transcriber(recognizer)(track) -> [SpeechSegment]``; segments are
timed in seconds from the track's start, ready for :func:`~gpt4video.audio.format_subtitles`.
``transcriber.lines(track, frame_times)`` is everything a track gives the model: its subtitles line and, with
``sounds`` on, its sounds line (:mod:`gpt4video.audio.events`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from gpt4video.errors import ConfigError, InputError, ModelLoadError

from .decode import SAMPLE_RATE, AudioTrack, resample
from .events import format_sounds, tone_regions
from .subtitles import SpeechSegment, format_subtitles
from .vad import VoiceActivity, speech_regions

__all__ = ["RECOGNIZERS", "PocketSphinxRecognizer", "SpeechConfig", "SpeechRecognizer", "Transcriber",
           "WhisperRecognizer"]

RECOGNIZERS = ("pocketsphinx", "whisper")
_WORD_VARIANT = re.compile(r"\(\d+\)$")  # "whew(2)": the dictionary's second pronunciation
#: The noise floor added before PocketSphinx reads a stretch (RMS, full scale 1).
DITHER = 0.003


class SpeechRecognizer(Protocol):
    """Words spoken in ``samples`` (mono float32 at 16 kHz), as one lower-case string ("" for none)."""

    name: str

    def transcribe(self, samples: np.ndarray) -> str: ...


class PocketSphinxRecognizer:
    """CMU PocketSphinx with the model inside its wheel; ``vocabulary`` limits it to those words.

    A stretch whose words' mean posterior probability is below ``min_confidence`` counts as no speech:
    music and noise that pass the VAD come out as one or two words it is unsure of.
    """

    name = "pocketsphinx"

    def __init__(self, vocabulary: Sequence[str] | None = None, *, min_confidence: float = 0.1) -> None:
        try:
            from pocketsphinx import Decoder
        except ImportError:
            raise ModelLoadError("the pocketsphinx recogniser needs its package: pip install pocketsphinx") from None
        self.decoder = Decoder(samprate=SAMPLE_RATE, loglevel="FATAL")
        self.min_confidence = min_confidence
        if vocabulary:
            words = sorted({w.lower() for text in vocabulary for w in text.split()})
            unknown = [w for w in words if self.decoder.lookup_word(w) is None]
            if unknown:
                raise ConfigError(f"pocketsphinx's dictionary has no pronunciation for: {', '.join(unknown[:10])}")
            self.decoder.add_jsgf_string("vocabulary", f"#JSGF V1.0;\ngrammar vocabulary;\n"
                                                       f"public <words> = ( {' | '.join(words)} )+ ;\n")
            self.decoder.activate_search("vocabulary")

    def transcribe(self, samples: np.ndarray) -> str:
        # Digital silence (exact zeros) upsets its live cepstral mean normalisation; a faint noise floor
        # (-50 dBFS), as any recording has, keeps it steady.
        noise = np.random.default_rng(0).standard_normal(len(samples)) * DITHER
        pcm = (np.clip(samples + noise, -1.0, 1.0) * 32767).astype(np.int16)
        self.decoder.start_utt()
        self.decoder.process_raw(pcm.tobytes(), full_utt=True)
        self.decoder.end_utt()
        words = [(_WORD_VARIANT.sub("", s.word), s.prob) for s in self.decoder.seg()
                 if not (s.word.startswith(("<", "[", "+")))]  # <s>, <sil>, </s>, [NOISE], +fillers+
        if not words or sum(p for _, p in words) / len(words) < self.min_confidence:
            return ""
        return " ".join(w for w, _ in words)


class WhisperRecognizer:
    """Whisper (any size) through transformers: a ``WhisperForConditionalGeneration`` and its processor."""

    name = "whisper"

    def __init__(self, model, processor, *, language: str | None = "en", max_new_tokens: int = 128) -> None:  # noqa: ANN001
        self.model = model.eval()
        self.processor = processor
        self.language = language
        self.max_new_tokens = max_new_tokens

    @classmethod
    def from_pretrained(cls, name_or_path: str, *, device: str = "cpu", dtype: str = "float32",
                        **kwargs) -> WhisperRecognizer:  # noqa: ANN003
        import torch
        from transformers import AutoProcessor, WhisperForConditionalGeneration

        try:
            processor = AutoProcessor.from_pretrained(name_or_path)
            model = WhisperForConditionalGeneration.from_pretrained(name_or_path, dtype=getattr(torch, dtype))
        except OSError as e:
            raise ModelLoadError(f"cannot load the Whisper model {name_or_path!r}: {' '.join(str(e).split())}") from None
        return cls(model.to(device), processor, **kwargs)

    def transcribe(self, samples: np.ndarray) -> str:
        import torch

        features = self.processor.feature_extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        inputs = features.input_features.to(self.model.device, self.model.dtype)  # (1, n_mels, 3000)
        # English-only checkpoints (``*.en``) take no language or task.
        multilingual = getattr(self.model.generation_config, "lang_to_id", None)
        options = {"language": self.language, "task": "transcribe"} if self.language and multilingual else {}
        with torch.inference_mode():
            # The decoder's positions hold the start tokens (up to 4) and the words.
            limit = min(self.max_new_tokens, self.model.config.max_target_positions - 4)
            ids = self.model.generate(inputs, max_new_tokens=limit, **options)
        return self.processor.tokenizer.batch_decode(ids, skip_special_tokens=True)[0].strip()


@dataclass(frozen=True)
class SpeechConfig:
    """Which recogniser turns a video's speech into subtitles.

    ``recognizer``: ``pocketsphinx`` (offline, packaged model), ``whisper`` (``model``: a hub id or
    directory, e.g. ``openai/whisper-small``) or ``none`` (no subtitles). ``vocabulary``: words that
    can be said (pocketsphinx only). ``max_segment_seconds``: longer voiced stretches are cut into
    pieces of this length (Whisper reads 30 s at a time). ``sounds``: beeps and other steady tones are given
    as the sounds line too (``Sounds: a beep (frames 2-3).``, :mod:`gpt4video.audio.events`), after the
    subtitles line of the same video or audio file. On by default (the offline default is trained on
    ``sound_qa`` rows); a track without a steady tone gives no line, so a model never trained on the line sees
    it only when something beeps.
    """

    recognizer: str = "pocketsphinx"
    model: str | None = None
    vocabulary: tuple[str, ...] = ()
    device: str = "cpu"
    dtype: str = "float32"
    max_segment_seconds: float = 20.0
    voice_activity: VoiceActivity = field(default_factory=VoiceActivity)
    sounds: bool = True

    def build(self) -> Transcriber | None:
        """The transcriber these settings describe (None for ``recognizer: none``)."""
        if self.recognizer == "none":
            return None
        if self.recognizer == "pocketsphinx":
            recognizer: SpeechRecognizer = PocketSphinxRecognizer(self.vocabulary or None)
        elif self.recognizer == "whisper":
            if not self.model:
                raise ConfigError("the whisper recogniser needs a model: a hub id or directory, e.g. openai/whisper-small")
            recognizer = WhisperRecognizer.from_pretrained(self.model, device=self.device, dtype=self.dtype)
        else:
            raise ConfigError(f"speech recogniser must be one of {', '.join(RECOGNIZERS)} or none, got {self.recognizer!r}")
        return Transcriber(recognizer, self.voice_activity, self.max_segment_seconds, sounds=self.sounds)


class Transcriber:
    """A track → its speech segments: voiced stretches (VAD) each read by the recogniser.

    ``sounds``: :meth:`lines` gives the track's beeps too, as the sounds line (see :class:`SpeechConfig`)."""

    def __init__(self, recognizer: SpeechRecognizer, voice_activity: VoiceActivity = VoiceActivity(),
                 max_segment_seconds: float = 20.0, *, sounds: bool = False) -> None:
        if max_segment_seconds <= 0:
            raise ConfigError(f"max_segment_seconds must be > 0, got {max_segment_seconds}")
        self.recognizer = recognizer
        self.voice_activity = voice_activity
        self.max_segment_seconds = max_segment_seconds
        self.sounds = sounds

    def __call__(self, track: AudioTrack) -> list[SpeechSegment]:
        return self._segments(self._samples(track))

    def lines(self, track: AudioTrack, frame_times: Sequence[float]) -> list[str]:
        """The lines ``track`` gives the model, timed to ``frame_times`` (seconds of the sampled frames): its
        subtitles line if anything is said, then, with ``sounds`` on, its sounds line if anything beeps.
        ``[]`` for neither. The caller names their source (:func:`~gpt4video.audio.name_source`)."""
        samples = self._samples(track)
        lines = [format_subtitles(self._segments(samples), frame_times)]
        if self.sounds:
            lines.append(format_sounds(tone_regions(samples, SAMPLE_RATE, self.voice_activity), frame_times))
        return [line for line in lines if line]

    @staticmethod
    def _samples(track: AudioTrack) -> np.ndarray:
        """``track``'s samples at the recogniser's rate (16 kHz)."""
        if track.samples.ndim != 1:
            raise InputError(f"a sound track must be mono samples (S,), got shape {track.samples.shape}")
        return resample(track.samples, track.sample_rate, SAMPLE_RATE)

    def _segments(self, samples: np.ndarray) -> list[SpeechSegment]:
        """The speech segments of ``samples`` (mono, 16 kHz)."""
        segments = []
        for start, end in speech_regions(samples, SAMPLE_RATE, self.voice_activity):
            piece_start = start
            while piece_start < end:
                piece_end = min(end, piece_start + self.max_segment_seconds)
                text = self.recognizer.transcribe(samples[round(piece_start * SAMPLE_RATE):round(piece_end * SAMPLE_RATE)])
                if text:
                    segments.append(SpeechSegment(piece_start, piece_end, text))
                piece_start = piece_end
        return segments
