"""Sound for synthetic clips: spoken words (eSpeak NG), beeps, and writing a sound track into a video.

The synthetic world's data generator calls these to make narrated and sounding clips::

    speech = narrate("the red ball moves left")                  # (S,) float32 at 16 kHz
    track = mix([(0.5, speech), (2.0, beep(880.0, 0.3))], duration=4.0)
    mux_audio("clip.mp4", track, SAMPLE_RATE, "clip_with_sound.mp4")

eSpeak NG comes from the ``espeakng-loader`` package (its shared library and voice data ship inside the
wheel), so nothing outside the project's dependencies is needed. The C library keeps one global
synthesiser, so calls into it are serialised by a lock.
"""

from __future__ import annotations

import ctypes
import functools
import os
import threading
from collections.abc import Sequence
from pathlib import Path

import av
import numpy as np

from gpt4video.errors import AudioError, InputError
from gpt4video.video.decode import check_file
from gpt4video.video.writing import _create_temp_file

from .decode import SAMPLE_RATE, resample

__all__ = ["beep", "mix", "mux_audio", "narrate", "write_audio"]

# espeak_AUDIO_OUTPUT: synthesise synchronously and hand the samples to a callback.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAMETER_RATE = 1
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)
_LOCK = threading.Lock()


class _Espeak:
    """The eSpeak NG library, initialised once; :meth:`speak` returns int16 samples at :attr:`rate`."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise InputError("speech synthesis needs eSpeak NG: pip install 'gpt4video[narration]' (espeakng-loader)") from None
        self.lib = ctypes.cdll.LoadLibrary(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.rate = self.lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0,
                                               str(espeakng_loader.get_data_path()).encode(), 0)
        if self.rate <= 0:
            raise AudioError(espeakng_loader.get_library_path(), "eSpeak NG did not initialise")
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)  # kept alive as long as the library may call it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav, count: int, events) -> int:  # noqa: ANN001 - C pointers
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0  # go on

    def speak(self, text: str, voice: str, words_per_minute: int) -> np.ndarray:
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise InputError(f"eSpeak NG has no voice named {voice!r}")
        self.lib.espeak_SetParameter(_PARAMETER_RATE, int(words_per_minute), 0)
        data = text.encode("utf-8")
        self._chunks = []
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
        self.lib.espeak_Synchronize()
        return np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)


@functools.cache
def _espeak() -> _Espeak:
    return _Espeak()


def narrate(text: str, sample_rate: int = SAMPLE_RATE, *, voice: str = "en-us",
            words_per_minute: int = 160) -> np.ndarray:
    """``text`` spoken by eSpeak NG: mono float32 samples at ``sample_rate`` (no silence added around it).
    The default voice, US English, is the one PocketSphinx's US-English model hears best (docs/audio.md)."""
    if not isinstance(text, str) or not text.strip():
        raise InputError("narrate needs some text to speak")
    with _LOCK:
        engine = _espeak()
        speech = engine.speak(" ".join(text.split()), voice, words_per_minute)
    return resample(speech, engine.rate, sample_rate)


def beep(frequency: float, seconds: float, sample_rate: int = SAMPLE_RATE, *, volume: float = 0.5) -> np.ndarray:
    """A sine tone with 10 ms fades (no clicks): mono float32 samples at ``sample_rate``."""
    if frequency <= 0 or seconds <= 0 or not 0 < volume <= 1:
        raise InputError(f"beep needs frequency > 0, seconds > 0 and 0 < volume <= 1, got {frequency}, {seconds}, {volume}")
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    tone = volume * np.sin(2 * np.pi * frequency * t)
    fade = min(len(t) // 2, round(0.01 * sample_rate))
    if fade:
        ramp = np.linspace(0.0, 1.0, fade)
        tone[:fade] *= ramp
        tone[-fade:] *= ramp[::-1]
    return tone.astype(np.float32)


def mix(sounds: Sequence[tuple[float, np.ndarray]], duration: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """A track of ``duration`` seconds with each ``(start_seconds, samples)`` added at its start (cut at the end)."""
    track = np.zeros(round(duration * sample_rate), np.float32)
    for start, samples in sounds:
        if start < 0:
            raise InputError(f"a sound cannot start before the track (start {start} s)")
        first = round(start * sample_rate)
        piece = np.asarray(samples, np.float32)[: max(0, len(track) - first)]
        track[first : first + len(piece)] += piece
    return np.clip(track, -1.0, 1.0)


def mux_audio(video_path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int,
              out_path: str | os.PathLike[str]) -> Path:
    """Write ``video_path``'s video (copied, not re-encoded) with ``audio`` (mono float, AAC) as its sound
    track into ``out_path`` (an mp4 or mkv; may be ``video_path`` itself). Written to a temporary file,
    then renamed into place. Sound past the video's end is cut."""
    source = check_file(video_path)
    out = Path(out_path)
    samples = np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0)
    tmp = _create_temp_file(out)
    try:
        with av.open(str(source)) as src, av.open(str(tmp), mode="w", format=_muxer(out)) as dst:
            if not src.streams.video:
                raise AudioError(source, "has no video stream to put a sound track beside")
            video_in = src.streams.video[0]
            video_out = dst.add_stream_from_template(video_in)
            sound = dst.add_stream("aac", rate=sample_rate, layout="mono")
            duration = _seconds(video_in, src)
            if duration is not None:
                samples = samples[: round(duration * sample_rate)]
            for packet in src.demux(video_in):
                if packet.dts is None:
                    continue
                packet.stream = video_out
                dst.mux(packet)
            frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
            frame.sample_rate, frame.pts = sample_rate, 0
            dst.mux(sound.encode(frame))
            dst.mux(sound.encode(None))
        os.replace(tmp, out)
    except av.FFmpegError as e:
        raise AudioError(source, f"cannot write a sound track into {out} ({e})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out


# ending -> (FFmpeg muxer, encoder, sample format, the encoder's rate or None for any)
_AUDIO_FORMATS = {
    ".wav": ("wav", "pcm_s16le", "s16", None),
    ".flac": ("flac", "flac", "s16", None),
    ".mp3": ("mp3", "libmp3lame", "fltp", None),
    ".ogg": ("ogg", "libopus", "flt", 48000),
    ".opus": ("ogg", "libopus", "flt", 48000),
}


def write_audio(path: str | os.PathLike[str], audio: np.ndarray, sample_rate: int = SAMPLE_RATE) -> Path:
    """Write mono float ``audio`` as a sound file chosen by the ending (.wav, .flac, .mp3, .ogg/.opus: Opus
    at 48 kHz), through a temporary file renamed into place."""
    out = Path(path)
    if out.suffix.lower() not in _AUDIO_FORMATS:
        raise InputError(f"{out}: a sound file is written as {', '.join(_AUDIO_FORMATS)}, not {out.suffix or 'no ending'}")
    muxer, encoder, sample_format, rate = _AUDIO_FORMATS[out.suffix.lower()]
    samples = resample(np.clip(np.asarray(audio, np.float32).reshape(-1), -1.0, 1.0), sample_rate, rate or sample_rate)
    tmp = _create_temp_file(out)
    try:
        with av.open(str(tmp), mode="w", format=muxer) as container:
            stream = container.add_stream(encoder, rate=rate or sample_rate, layout="mono")
            stream.format = sample_format
            frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate or sample_rate, 0
            container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, out)
    finally:
        tmp.unlink(missing_ok=True)
    return out


def _muxer(path: Path) -> str:
    muxers = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
    if path.suffix.lower() not in muxers:
        raise InputError(f"{path}: a video with sound is written as .mp4, .mov or .mkv, not {path.suffix or 'no ending'}")
    return muxers[path.suffix.lower()]


def _seconds(stream: av.VideoStream, container: av.container.InputContainer) -> float | None:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    return container.duration / av.time_base if container.duration else None
