"""Helpers shared by the benchmark scripts in ``bench/`` (not part of the package or of ``make test``).

Timing (median of repeats), progress messages on stderr, machine/version description, peak RSS,
Markdown tables, and synthetic test clips written straight from YUV planes with PyAV.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

_T0 = time.perf_counter()


def log(message: str) -> None:
    """A progress line on stderr, prefixed with the seconds since the script started."""
    print(f"[{time.perf_counter() - _T0:7.1f}s] {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Timing


@dataclass
class Timing:
    """Wall-clock seconds of each repetition (warm-up runs excluded)."""

    samples: list[float]
    warmup: list[float] = field(default_factory=list)  # the untimed warm-up runs, kept for diagnosis

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def low(self) -> float:
        return min(self.samples)

    @property
    def high(self) -> float:
        return max(self.samples)

    @property
    def noisy(self) -> bool:
        """The slowest run took over 1.5x the fastest: other load on the machine, most likely."""
        return self.high > 1.5 * self.low

    def as_dict(self, scale: float = 1.0) -> dict[str, Any]:
        return {"median": self.median * scale, "min": self.low * scale, "max": self.high * scale,
                "samples": [s * scale for s in self.samples], "warmup": [s * scale for s in self.warmup]}


def time_it(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> tuple[Timing, Any]:
    """Run ``fn`` ``warmup`` times untimed, then ``repeats`` times timed; return the timings and the last result."""
    result = None
    warm = []
    for _ in range(warmup):
        start = time.perf_counter()
        result = fn()
        warm.append(time.perf_counter() - start)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        samples.append(time.perf_counter() - start)
    return Timing(samples, warm), result


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, tuple[Timing, list]]:
    """Time several functions round-robin (a, b, c, a, b, c, ...) so that load from other processes on a
    shared machine hits all of them alike. Returns {label: (timings, results of the timed runs)}."""
    warm: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(warmup):
        for label, fn in fns.items():
            start = time.perf_counter()
            fn()
            warm[label].append(time.perf_counter() - start)
    samples: dict[str, list[float]] = {k: [] for k in fns}
    results: dict[str, list] = {k: [] for k in fns}
    for _ in range(repeats):
        for label, fn in fns.items():
            start = time.perf_counter()
            results[label].append(fn())
            samples[label].append(time.perf_counter() - start)
    return {k: (Timing(samples[k], warm[k]), results[k]) for k in fns}


def load_average() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def vm_hwm_mb() -> float:
    """Peak RSS of this process image, from /proc/self/status VmHWM (Linux), else ru_maxrss.

    Unlike ru_maxrss, VmHWM is not inherited: on Linux a process started by fork + exec reports in
    ru_maxrss at least the RSS its parent had when it forked, so a child of a big process cannot
    measure its own peak with ru_maxrss.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return peak_rss_mb()


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size so far, in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


# --------------------------------------------------------------------------------------------
# Machine and versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info() -> dict[str, Any]:
    """Cores, threads and versions of everything on the measured path."""
    import av
    import onnxruntime
    import torch
    import transformers

    import gpt4video

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count() or 0
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    try:
        libavcodec = ".".join(str(x) for x in av.library_versions["libavcodec"])
    except (AttributeError, KeyError, TypeError):
        libavcodec = "?"
    try:
        import peft

        peft_version = peft.__version__
    except ImportError:
        peft_version = "not installed"
    return {
        "cpu": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": usable,
        "load_average_1_5_15": load,
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "gpt4video": gpt4video.__version__,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft_version,
        "onnxruntime": onnxruntime.__version__,
        "pyav": av.__version__,
        "libavcodec": libavcodec,
        "numpy": np.__version__,
    }


# --------------------------------------------------------------------------------------------
# Markdown


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    """A GitHub-flavoured Markdown table; cells are str()-ed and '|' is escaped."""
    def cell(x: Any) -> str:
        return str(x).replace("|", "\\|")

    lines = ["| " + " | ".join(cell(h) for h in header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def fmt_ms(seconds: float, digits: int = 1) -> str:
    return f"{seconds * 1000:.{digits}f} ms"


def fmt_s(seconds: float, digits: int = 2) -> str:
    return f"{seconds:.{digits}f} s"


# --------------------------------------------------------------------------------------------
# Synthetic clips


@dataclass(frozen=True)
class ClipSpec:
    """A synthetic h264 clip: a textured gradient panning diagonally plus a little per-frame noise.

    The texture moves, so the encoder needs real motion compensation and the decoder real work; the
    noise is small enough that file sizes stay reasonable. ``gop`` is the keyframe interval.
    """

    width: int
    height: int
    fps: int
    seconds: float
    gop: int = 250
    preset: str = "ultrafast"
    crf: int = 28

    @property
    def num_frames(self) -> int:
        return max(1, round(self.seconds * self.fps))

    @property
    def filename(self) -> str:
        return (f"synthetic_{self.width}x{self.height}_{self.fps}fps_gop{self.gop}_{self.preset}_crf{self.crf}_"
                f"{self.num_frames}f.mp4")

    def describe(self) -> str:
        return (f"{self.width}x{self.height}, {self.fps} fps, GOP {self.gop}, h264 {self.preset} crf {self.crf}, "
                f"{self.num_frames} frames ({self.seconds:g} s)")


class _Pattern:
    """Precomputed planes; frame i is a window into them, shifted by the motion, plus pooled noise."""

    MARGIN = 256  # pixels of travel (luma) before the motion turns back

    def __init__(self, width: int, height: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        m = self.MARGIN
        h, w = height + m, width + m
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        # Gradient + waves + a coarse random texture (upsampled blocks): structure for motion search.
        blocks = rng.integers(0, 64, size=(h // 16 + 1, w // 16 + 1)).astype(np.float32)
        texture = np.kron(blocks, np.ones((16, 16), np.float32))[:h, :w]
        luma = 40 + 120 * (x / w) * 0.5 + 60 * (y / h) + 25 * np.sin(x / 23.0) * np.cos(y / 17.0) + texture
        self.luma = np.clip(luma, 0, 255).astype(np.uint8)  # (h, w)
        cy, cx = np.mgrid[0:h // 2, 0:w // 2].astype(np.float32)
        self.cb = np.clip(128 + 60 * np.sin(cx / 31.0 + cy / 47.0), 0, 255).astype(np.uint8)  # (h/2, w/2)
        self.cr = np.clip(128 + 60 * np.cos(cy / 29.0 - cx / 41.0), 0, 255).astype(np.uint8)
        # Small temporal noise (-3..3 in luma), a pool reused cyclically.
        self.noise = [rng.integers(-3, 4, size=(height, width), dtype=np.int16) for _ in range(8)]
        self.width, self.height = width, height

    def frame(self, i: int) -> np.ndarray:
        """Frame ``i`` as a yuv420p array (H·3/2, W), the layout PyAV's ``from_ndarray`` expects."""
        m, w, h = self.MARGIN, self.width, self.height
        period = 2 * (m // 2)
        step = (i * 2) % (2 * period)  # 2 px per frame, back and forth (a triangle wave: no cuts)
        off = step if step < period else 2 * period - step  # 0..period, always even
        dx, dy = off, off // 2
        luma = self.luma[dy:dy + h, dx:dx + w].astype(np.int16) + self.noise[i % len(self.noise)]
        y_plane = np.clip(luma, 0, 255).astype(np.uint8)
        cb = self.cb[dy // 2:dy // 2 + h // 2, dx // 2:dx // 2 + w // 2]
        cr = self.cr[dy // 2:dy // 2 + h // 2, dx // 2:dx // 2 + w // 2]
        return np.concatenate([y_plane.ravel(), cb.ravel(), cr.ravel()]).reshape(h * 3 // 2, w)


def make_clip(spec: ClipSpec, cache_dir: Path) -> tuple[Path, float | None]:
    """Write the clip into ``cache_dir`` unless it is already there.

    Returns (path, seconds spent writing it, or None when it was cached). Written under a temporary
    name and renamed at the end, so an interrupted run never leaves a half-written clip in the cache.
    """
    import av

    path = cache_dir / spec.filename
    if path.is_file() and path.stat().st_size > 0:
        return path, None
    if spec.width % 2 or spec.height % 2:
        raise ValueError("yuv420p needs even width and height")
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.part")
    pattern = _Pattern(spec.width, spec.height)
    start = time.perf_counter()
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(
                "libx264", rate=Fraction(spec.fps),
                # keyint via the codec context (gop_size); min-keyint/scenecut keep x264's usual behaviour.
                options={"preset": spec.preset, "crf": str(spec.crf)},
            )
            stream.width, stream.height, stream.pix_fmt = spec.width, spec.height, "yuv420p"
            stream.codec_context.gop_size = spec.gop
            for i in range(spec.num_frames):
                frame = av.VideoFrame.from_ndarray(pattern.frame(i), format="yuv420p")
                frame.pts = i
                frame.time_base = Fraction(1, spec.fps)
                container.mux(stream.encode(frame))
            container.mux(stream.encode(None))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path, time.perf_counter() - start


def keyframe_stats(path: Path) -> dict[str, Any]:
    """Frames, keyframes and the mean keyframe interval, from the container index (no decoding)."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        entries = stream.index_entries
        keys = [i for i in range(len(entries)) if entries[i].is_keyframe]
        duration = float(stream.duration * stream.time_base) if stream.duration else None
    gaps = np.diff(keys) if len(keys) > 1 else np.array([len(entries)])
    return {"frames": len(entries), "keyframes": len(keys), "mean_gop": float(np.mean(gaps)),
            "max_gop": int(np.max(gaps)), "duration": duration, "bytes": path.stat().st_size}


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words: substitutions + deletions + insertions turning ``hypothesis`` into
    ``reference``."""
    row = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        previous, row[0] = row[0], i
        for j, hyp in enumerate(hypothesis, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ref != hyp))
    return row[-1]
