"""Voice-activity detection: the stretches of a sound track that may hold speech, so silence is skipped.

Energy-based, on 30 ms frames: a frame is voiced when it is louder than ``threshold_db`` (dBFS) and
than the track's quiet floor (its 10th-percentile frame) by ``margin_db``, and its energy is not held by
one narrow band (a steady tone, a beep, is sound but not speech). Voiced frames join into regions
that bridge short pauses, are padded a little, and are kept when long enough to hold a word.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["VoiceActivity", "speech_regions"]


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


def speech_regions(samples: np.ndarray, sample_rate: int,
                   settings: VoiceActivity = VoiceActivity()) -> list[tuple[float, float]]:
    """``(start, end)`` seconds of each stretch of ``samples`` (mono float) that may hold speech."""
    hop = max(1, round(settings.frame_seconds * sample_rate))
    count = len(samples) // hop
    if count == 0:
        return []
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
    voiced = loud & ~tonal

    regions: list[list[int]] = []
    bridge = round(settings.bridge_seconds / settings.frame_seconds)
    for i in np.flatnonzero(voiced):
        if regions and i - regions[-1][1] <= bridge + 1:
            regions[-1][1] = int(i) + 1
        else:
            regions.append([int(i), int(i) + 1])
    total = len(samples) / sample_rate
    out = []
    for first, end in regions:
        start, stop = first * hop / sample_rate, end * hop / sample_rate
        if stop - start >= settings.min_seconds:
            out.append((max(0.0, start - settings.pad_seconds), min(total, stop + settings.pad_seconds)))
    return out
