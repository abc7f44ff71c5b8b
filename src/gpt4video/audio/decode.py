"""Read sound from an audio file (wav, mp3, flac, ogg, ...) or a video's audio track, as 16 kHz mono.

:func:`load_audio` decodes the first audio stream with PyAV and resamples it to mono float32 at the
rate asked for (16 kHz by default, what speech recognisers expect). A video without an audio stream
gives ``None`` (``missing_ok=True``) or one :class:`~gpt4video.errors.AudioError`; so does a file that
is not media, or an audio stream that does not decode. No exception from PyAV escapes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from gpt4video.errors import AudioError, VideoError
from gpt4video.video.decode import check_file

__all__ = ["AUDIO_EXTENSIONS", "AudioTrack", "SAMPLE_RATE", "has_only_audio", "is_audio_file", "load_audio", "resample"]

#: The rate speech recognisers and audio encoders read (Whisper, PocketSphinx's en-us model).
SAMPLE_RATE = 16000
#: File name endings read as sound alone (no video).
AUDIO_EXTENSIONS = frozenset({".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac"})


@dataclass(frozen=True)
class AudioTrack:
    """Sound as mono float32 samples in [-1, 1] at ``sample_rate`` Hz; ``path`` is where it came from."""

    samples: np.ndarray  # (S,) float32
    sample_rate: int
    path: Path | None = None

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def is_audio_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` names a sound file by its ending (``.wav``, ``.mp3``, ``.flac``, ``.ogg``, ...)."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS


def has_only_audio(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a sound file: an audio stream and no video (cover art aside). False if unreadable."""
    try:
        with av.open(str(path), mode="r", metadata_errors="ignore") as container:
            pictures = [s for s in container.streams.video if not s.disposition & av.stream.Disposition.attached_pic]
            return bool(container.streams.audio) and not pictures
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError):
        return False


def load_audio(path: str | os.PathLike[str], sample_rate: int = SAMPLE_RATE, *,
               missing_ok: bool = False) -> AudioTrack | None:
    """The first audio stream of ``path`` as mono float32 at ``sample_rate``.

    Returns None for a file without an audio stream when ``missing_ok`` (a silent video); otherwise
    that is an :class:`AudioError`, as is a missing, unreadable or corrupt file or stream.
    """
    try:
        file = check_file(path)
    except VideoError as e:
        raise AudioError(e.path, e.reason) from None
    try:
        container = av.open(str(file), mode="r", metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError, ValueError) as e:
        raise AudioError(file, f"not an audio or video file, or truncated ({_reason(e)})") from None
    with container:
        if not container.streams.audio:
            if missing_ok:
                return None
            raise AudioError(file, "has no audio stream")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
        chunks: list[np.ndarray] = []
        try:
            for frame in container.decode(stream):
                chunks.extend(f.to_ndarray()[0] for f in resampler.resample(frame))
            chunks.extend(f.to_ndarray()[0] for f in resampler.resample(None))
        except (av.FFmpegError, ValueError) as e:
            raise AudioError(file, f"the audio stream is corrupt ({_reason(e)})") from None
    samples = np.concatenate(chunks).astype(np.float32, copy=False) if chunks else np.zeros(0, np.float32)
    if not samples.size and (stream.duration or stream.frames):
        raise AudioError(file, "the audio stream is corrupt (it holds packets but none decodes to sound)")
    return AudioTrack(np.clip(samples, -1.0, 1.0), sample_rate, file)


def resample(samples: np.ndarray, rate: int, to_rate: int) -> np.ndarray:
    """Mono ``samples`` (float in [-1, 1] or int16) at ``rate`` → float32 at ``to_rate``, through PyAV."""
    samples = np.asarray(samples)
    if samples.dtype == np.int16:
        samples = samples.astype(np.float32) / 32768.0
    samples = np.ascontiguousarray(samples, dtype=np.float32)
    if rate == to_rate or not samples.size:
        return samples
    frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=to_rate)
    out = [f.to_ndarray()[0] for f in (*resampler.resample(frame), *resampler.resample(None))]
    return np.concatenate(out).astype(np.float32, copy=False) if out else np.zeros(0, np.float32)


def _reason(exc: BaseException) -> str:
    """One line of an FFmpeg error."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return " ".join(str(text).split()).rstrip(".")
