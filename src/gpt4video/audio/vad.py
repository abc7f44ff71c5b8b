"""Voice-activity detection: the stretches of a sound track that may hold speech, so silence is skipped.

Energy-based, on 30 ms frames: a frame is voiced when it is louder than ``threshold_db`` (dBFS) and
than the track's quiet floor (its 10th-percentile frame) by ``margin_db``, and its energy is not held by
one narrow band (a steady tone, a beep, is sound but not speech). Voiced frames join into regions
that bridge short pauses, are padded a little, and are kept when long enough to hold a word.

The per-frame analysis (:func:`analyse_frames`) and the joining of frames into regions (:func:`join_frames`)
are shared with :mod:`gpt4video.audio.events`, which keeps the loud tonal frames instead.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FrameAnalysis", "VoiceActivity", "analyse_frames", "join_frames", "speech_regions"]


@dataclass(frozen=True)
class VoiceActivity:
    """The detector's settings (seconds and decibels)."""

    frame_seconds: float = 0.03
    threshold_db: float = -40.0  # quieter than this is silence, whatever the floor
    margin_db: float = 12.0  # above the track's quiet floor
    tonal_share: float = 0.6  # a frame with this share of its energy in 3 FFT bins is a tone
    bridge_seconds: float = 0.3  # pauses shorter than this stay inside one region
    pad_seconds: float = 0.1
    min_seconds: float = 0.15


@dataclass(frozen=True)
class FrameAnalysis:
    """What each frame of a track is: ``loud`` (over the threshold and the quiet floor) and ``tonal`` (its
    energy held by one narrow band); ``hop`` samples a frame, ``seconds`` the whole track's length."""

    hop: int
    sample_rate: int
    seconds: float
    loud: np.ndarray  # (F,) bool
    tonal: np.ndarray  # (F,) bool


def analyse_frames(samples: np.ndarray, sample_rate: int,
                   settings: VoiceActivity = VoiceActivity()) -> FrameAnalysis:
    """Cut ``samples`` (mono float) into frames of ``settings.frame_seconds`` and say which are loud and which
    tonal (a track shorter than one frame has none)."""
    hop = max(1, round(settings.frame_seconds * sample_rate))
    count = len(samples) // hop
    seconds = len(samples) / sample_rate
    if count == 0:
        nothing = np.zeros(0, bool)
        return FrameAnalysis(hop, sample_rate, seconds, nothing, nothing)
    frames = np.asarray(samples[: count * hop], np.float64).reshape(count, hop)  # (F, hop)
    power = np.mean(frames**2, axis=1)  # (F,)
    level = 10 * np.log10(power + 1e-12)
    floor = np.percentile(level, 10)
    loud = level > max(settings.threshold_db, floor + settings.margin_db)
    spectrum = np.abs(np.fft.rfft(frames * np.hanning(hop), axis=1)) ** 2  # (F, hop // 2 + 1)
    peak = spectrum.argmax(axis=1)
    near = np.stack([np.take_along_axis(spectrum, np.clip(peak + k, 0, spectrum.shape[1] - 1)[:, None], 1)[:, 0]
                     for k in (-1, 0, 1)]).sum(axis=0)  # (F,)
    tonal = near > settings.tonal_share * (spectrum.sum(axis=1) + 1e-20)
    return FrameAnalysis(hop, sample_rate, seconds, loud, tonal)


def join_frames(active: np.ndarray, analysis: FrameAnalysis, settings: VoiceActivity = VoiceActivity(), *,
                bridge_seconds: float | None = None, pad_seconds: float | None = None) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of the runs of ``active`` frames: runs apart by less than ``bridge_seconds``
    (and one frame more) join, runs shorter than ``settings.min_seconds`` are dropped, and each is padded by
    ``pad_seconds`` within the track. ``None`` takes ``settings.bridge_seconds`` and ``settings.pad_seconds``."""
    pad = settings.pad_seconds if pad_seconds is None else pad_seconds
    bridge_seconds = settings.bridge_seconds if bridge_seconds is None else bridge_seconds
    runs: list[list[int]] = []
    bridge = round(bridge_seconds / settings.frame_seconds)
    for i in np.flatnonzero(active):
        if runs and i - runs[-1][1] <= bridge + 1:
            runs[-1][1] = int(i) + 1
        else:
            runs.append([int(i), int(i) + 1])
    out = []
    for first, end in runs:
        start, stop = first * analysis.hop / analysis.sample_rate, end * analysis.hop / analysis.sample_rate
        if stop - start >= settings.min_seconds:
            out.append((max(0.0, start - pad), min(analysis.seconds, stop + pad)))
    return out


def speech_regions(samples: np.ndarray, sample_rate: int,
                   settings: VoiceActivity = VoiceActivity()) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each stretch of ``samples`` (mono float) that may hold speech."""
    frames = analyse_frames(samples, sample_rate, settings)
    return join_frames(frames.loud & ~frames.tonal, frames, settings)
