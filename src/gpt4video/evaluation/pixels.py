"""Reading the objects of a synthetic-world clip back from its pixels alone.

:func:`analyze_clip` takes ``(T, H, W, 3)`` uint8 frames (rendered, or decoded from an mp4) and
returns one :class:`DetectedObject` per object it finds: its colour, shape and motion in the
vocabulary of the synthetic world (``synthetic-world.md``). No text, seed or scene description is
used, so it can check whether a generated video really shows what was asked for.

How (numpy only, vectorised over all frames at once):

1. **Colour**: every pixel gets the nearest object colour of :data:`COLOR_RGB`, or none if it is
   farther than ``color_threshold`` (RGB distance). Object colours differ clearly from every
   background, and anti-aliased edges are mostly left out.
2. **Components**: 4-connected regions of one colour within one frame, found from horizontal runs
   of equal labels joined row to row (a small union-find over runs, not pixels).
3. **Filtering**: a component is an object candidate if it is compact and of a plausible size: at
   least ``min_area`` pixels and 3 pixels wide and tall, at most a third of the frame, not touching
   the frame's edge (objects of this world never do; the end of a gradient background close to
   white does), filling at least 30% of its bounding box and matching one shape template well.
4. **Shape**: the intersection over union of the component with three templates fitted to its
   bounding box: the box itself (square), the inscribed ellipse (circle) and an upward triangle
   with its apex at the top middle and its base along the bottom (triangle). Fill ratios of the
   box: square 1, circle π/4 ≈ 0.785, triangle 0.5. The counts are exact per run of pixels.
5. **Tracking**: candidates are linked frame to frame (same colour; nearest to the predicted
   position, a different shape costing extra), tolerating frames where an object is missed
   (overlaps, touching objects of the same colour). Tracks seen in under half of the frames are
   dropped. An object's shape is the majority over its frames (ties go to the earliest frame).
6. **Motion**: straight lines fitted over the track's frames to the centroid and to the square
   root of the area give the displacement between the first and the last frame (a fraction of the
   frame's width / height) and the area ratio last / first. A displacement above ``move_threshold``
   (0.15) along the dominant axis is left / right / up / down; else an area ratio above
   ``grow_ratio`` (1.4) is "grows", below ``shrink_ratio`` (0.7) "shrinks", otherwise "still".
   With every frame seen and no noise the fit gives exactly first → last.

:func:`object_triples` and :func:`matches` compare detections with a scene or a request;
:func:`check_generation` follows one generation request from its video prompt to the pixels (used by
``gpt4video eval`` and ``bench/cycle.py``).
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from gpt4video.data.synthetic.prompts import parse_prompt
from gpt4video.data.synthetic.scenes import ObjectSpec, PromptSpec, Scene
from gpt4video.data.synthetic.vocabulary import COLOR_RGB, COLORS, SHAPES
from gpt4video.errors import InputError

__all__ = [
    "COLOR_THRESHOLD",
    "GROW_RATIO",
    "MOVE_THRESHOLD",
    "SHRINK_RATIO",
    "DetectedObject",
    "analyze_clip",
    "check_generation",
    "matches",
    "object_triples",
]

#: Largest RGB distance from a vocabulary colour for a pixel to count as that colour.
COLOR_THRESHOLD = 60.0
#: Displacement (fraction of the frame's width or height) above which an object moves.
MOVE_THRESHOLD = 0.15
#: Area ratio (last / first) above which an object grows, and below which it shrinks.
GROW_RATIO = 1.4
SHRINK_RATIO = 0.7

_PALETTE = np.asarray([COLOR_RGB[c] for c in COLORS], dtype=np.float32)  # (K, 3)
_PALETTE_SQ = (_PALETTE**2).sum(axis=1)  # (K,)
_TEMPLATE_AREA = {"square": 1.0, "circle": math.pi / 4, "triangle": 0.5}  # fraction of the box
_MIN_FILL = 0.3
_MIN_IOU = 0.55
_MAX_AREA_FRACTION = 1 / 3


@dataclass(frozen=True)
class DetectedObject:
    """One object found in a clip.

    Attributes:
        color, shape, motion: In the world's vocabulary (motion: "left", "right", "up", "down",
            "grows", "shrinks" or "still").
        start, end: Centroid ``(x, y)`` at the first and last frame (fitted), as fractions of the
            frame's width and height.
        displacement: ``end - start``.
        area_ratio: Area at the last frame / area at the first frame (fitted).
        size: Square root of the area at the first frame, as a fraction of the shorter side.
        frames_seen: In how many frames the object was found.
        shape_agreement: Fraction of those frames whose shape was ``shape``.
        first_shape: The shape found at the object's first frame.
    """

    color: str
    shape: str
    motion: str
    start: tuple[float, float]
    end: tuple[float, float]
    displacement: tuple[float, float]
    area_ratio: float
    size: float
    frames_seen: int
    shape_agreement: float
    first_shape: str

    @property
    def triple(self) -> tuple[str, str, str]:
        """``(color, shape, motion)``."""
        return self.color, self.shape, self.motion


# ============================================================================================
# Pixels → labelled runs → components


@functools.lru_cache(maxsize=8)
def _color_table(threshold: float) -> np.ndarray:
    """Colour label of every RGB value quantised to 6 bits per channel: ``table[r >> 2, g >> 2, b >> 2]``
    as a flat int8 array (index into :data:`COLORS`, -1 for none), decided at each cell's centre."""
    levels = np.arange(64, dtype=np.float32) * 4 + 1.5
    r, g, b = np.meshgrid(levels, levels, levels, indexing="ij")
    x = np.stack([r.ravel(), g.ravel(), b.ravel()], axis=1)  # (64**3, 3)
    d2 = (x * x).sum(axis=1, keepdims=True) - 2.0 * (x @ _PALETTE.T) + _PALETTE_SQ
    nearest = d2.argmin(axis=1)
    best = np.take_along_axis(d2, nearest[:, None], axis=1)[:, 0]
    return np.where(best <= np.float32(threshold) ** 2, nearest, -1).astype(np.int8)


def _label_colors(frames: np.ndarray, threshold: float) -> np.ndarray:
    """``(T, H, W)`` int8: the index into :data:`COLORS` of each pixel's colour, -1 for none.

    Colours are looked up in a table of 6-bit-per-channel cells (distances within about 3.5 of
    the exact ones), which is ~20x faster than computing distances per pixel.
    """
    table = _color_table(float(threshold))
    q = frames >> 2  # uint8, 0..63
    index = (q[..., 0].astype(np.int32) << 12) | (q[..., 1].astype(np.int32) << 6) | q[..., 2]
    return table[index]


@dataclass
class _Components:
    """Connected components of equal colour label, one frame each (arrays indexed by component)."""

    frame: np.ndarray
    color: np.ndarray
    area: np.ndarray
    cx: np.ndarray  # centroid, pixel units (pixel x covers [x, x + 1])
    cy: np.ndarray
    x0: np.ndarray  # bounding box, inclusive pixel indices
    x1: np.ndarray
    y0: np.ndarray
    y1: np.ndarray
    iou: np.ndarray  # (n, 3): IoU with the SHAPES templates


def _runs(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Horizontal runs of one label: (row, first column, last column, per-pixel run index)."""
    rows = labels.reshape(-1, labels.shape[-1])  # (T*H, W)
    valid = rows >= 0
    starts = valid.copy()
    starts[:, 1:] &= rows[:, 1:] != rows[:, :-1]
    ends = valid.copy()
    ends[:, :-1] &= rows[:, :-1] != rows[:, 1:]
    flat_starts = starts.ravel()
    run_of_pixel = np.cumsum(flat_starts) - 1  # meaningful where valid
    w = rows.shape[1]
    first = np.flatnonzero(flat_starts)
    last = np.flatnonzero(ends.ravel())
    return first // w, first % w, last % w, run_of_pixel


def _union_find(n: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Root (smallest member) of each of ``n`` nodes joined by the edges ``a[i]``–``b[i]``."""
    parent = np.arange(n)
    while a.size:
        ra, rb = parent[a], parent[b]
        lo, hi = np.minimum(ra, rb), np.maximum(ra, rb)
        open_ = lo != hi
        if not open_.any():
            break
        np.minimum.at(parent, hi[open_], lo[open_])  # hook roots to smaller roots
        while True:  # pointer jumping until every node points at its root
            up = parent[parent]
            if np.array_equal(up, parent):
                break
            parent = up
        a, b = a[open_], b[open_]
    return parent


def _components(labels: np.ndarray) -> _Components:
    t, h, w = labels.shape
    run_row, run_x0, run_x1, run_of_pixel = _runs(labels)
    n_runs = run_row.size
    rows = labels.reshape(t * h, w)
    # Vertical links: a pixel and the one below it, same label, same frame.
    link = (rows[:-1] >= 0) & (rows[:-1] == rows[1:])
    link[h - 1 :: h] = False
    top = np.flatnonzero(link.ravel())
    a, b = run_of_pixel[top], run_of_pixel[top + w]
    if a.size:  # pixel order makes duplicates consecutive
        keep = np.ones(a.size, dtype=bool)
        keep[1:] = (a[1:] != a[:-1]) | (b[1:] != b[:-1])
        a, b = a[keep], b[keep]
    roots = _union_find(n_runs, a, b)
    _, comp = np.unique(roots, return_inverse=True)
    n = int(comp.max()) + 1 if n_runs else 0

    length = (run_x1 - run_x0 + 1).astype(np.float64)
    yc = (run_row % h).astype(np.float64) + 0.5
    area = np.bincount(comp, length, n)
    cx = np.bincount(comp, length * (run_x0 + run_x1 + 1) / 2.0, n) / np.maximum(area, 1)
    cy = np.bincount(comp, length * yc, n) / np.maximum(area, 1)
    big = np.iinfo(np.int64).max
    x0, y0 = np.full(n, big), np.full(n, big)
    x1, y1 = np.full(n, -1), np.full(n, -1)
    np.minimum.at(x0, comp, run_x0)
    np.maximum.at(x1, comp, run_x1)
    np.minimum.at(y0, comp, run_row % h)
    np.maximum.at(y1, comp, run_row % h)
    frame = np.zeros(n, dtype=np.int64)
    frame[comp] = run_row // h
    color = np.zeros(n, dtype=np.int64)
    color[comp] = rows.ravel()[run_row * w + run_x0]

    # Pixels of each run inside the circle / triangle templates of its component's box.
    bw, bh = (x1 - x0 + 1).astype(np.float64), (y1 - y0 + 1).astype(np.float64)
    bx, by = (x0 + x1 + 1) / 2.0, (y0 + y1 + 1) / 2.0  # box centre
    rw, rh, rcx, rcy, ry0 = bw[comp], bh[comp], bx[comp], by[comp], y0[comp].astype(np.float64)
    dv = (yc - rcy) / (rh / 2)
    half_circle = (rw / 2) * np.sqrt(np.clip(1.0 - dv * dv, 0.0, None))
    half_triangle = (rw / 2) * np.clip((yc - ry0) / rh, 0.0, 1.0)
    inside = np.zeros((n, 3))
    for k, half in ((SHAPES.index("circle"), half_circle), (SHAPES.index("triangle"), half_triangle)):
        # Integer columns x in [x0, x1] whose centre x + 0.5 lies in [centre - half, centre + half].
        lo = np.maximum(run_x0, np.ceil(rcx - half - 0.5))
        hi = np.minimum(run_x1, np.floor(rcx + half - 0.5))
        inside[:, k] = np.bincount(comp, np.clip(hi - lo + 1, 0, None), n)
    inside[:, SHAPES.index("square")] = area
    box = bw * bh
    template = np.stack([_TEMPLATE_AREA[s] * box for s in SHAPES], axis=1)
    iou = inside / np.maximum(template + area[:, None] - inside, 1e-9)
    return _Components(frame, color, area, cx, cy, x0, x1, y0, y1, iou)


def _candidates(c: _Components, height: int, width: int, min_area: float) -> np.ndarray:
    """Indices of the components that look like objects of this world."""
    bw, bh = c.x1 - c.x0 + 1, c.y1 - c.y0 + 1
    fill = c.area / (bw * bh)
    ok = (
        (c.area >= min_area)
        & (np.minimum(bw, bh) >= 3)
        & (c.area <= _MAX_AREA_FRACTION * height * width)
        & (c.x0 > 0) & (c.y0 > 0) & (c.x1 < width - 1) & (c.y1 < height - 1)
        & (fill >= _MIN_FILL)
        & (c.iou.max(axis=1) >= _MIN_IOU)
    )
    return np.flatnonzero(ok)


# ============================================================================================
# Tracking and motion


@dataclass
class _Track:
    color: int
    frames: list[int]
    xs: list[float]
    ys: list[float]
    areas: list[float]
    shapes: list[int]

    def predict(self, frame: int) -> tuple[float, float]:
        if len(self.frames) < 2:
            return self.xs[-1], self.ys[-1]
        gap = (frame - self.frames[-1]) / (self.frames[-1] - self.frames[-2])
        return (self.xs[-1] + (self.xs[-1] - self.xs[-2]) * gap, self.ys[-1] + (self.ys[-1] - self.ys[-2]) * gap)

    def add(self, frame: int, x: float, y: float, area: float, shape: int) -> None:
        self.frames.append(frame)
        self.xs.append(x)
        self.ys.append(y)
        self.areas.append(area)
        self.shapes.append(shape)


def _track(c: _Components, keep: np.ndarray, num_frames: int, height: int, width: int) -> list[_Track]:
    scale = float(max(height, width))
    shape_of = c.iou.argmax(axis=1)
    by_frame: list[list[int]] = [[] for _ in range(num_frames)]
    for i in keep:
        by_frame[int(c.frame[i])].append(int(i))
    tracks: list[_Track] = []
    for f, found in enumerate(by_frame):
        pairs = []
        for ti, tr in enumerate(tracks):
            px, py = tr.predict(f)
            for i in found:
                if c.color[i] != tr.color:
                    continue
                cost = math.hypot(c.cx[i] - px, c.cy[i] - py) / scale + 0.5 * (shape_of[i] != tr.shapes[-1])
                pairs.append((cost, ti, i))
        pairs.sort()
        used_tracks: set[int] = set()
        used: set[int] = set()
        for _, ti, i in pairs:
            if ti in used_tracks or i in used:
                continue
            used_tracks.add(ti)
            used.add(i)
            tracks[ti].add(f, float(c.cx[i]), float(c.cy[i]), float(c.area[i]), int(shape_of[i]))
        for i in found:
            if i not in used:
                tracks.append(_Track(int(c.color[i]), [], [], [], [], []))
                tracks[-1].add(f, float(c.cx[i]), float(c.cy[i]), float(c.area[i]), int(shape_of[i]))
    return tracks


def _fit_ends(t: np.ndarray, v: np.ndarray) -> tuple[float, float]:
    """Values at t = 0 and t = 1 of the least-squares line through ``(t, v)``."""
    if t.size < 2 or np.ptp(t) == 0:
        return float(v[0]), float(v[-1])
    slope, intercept = np.polyfit(t, v, 1)
    return float(intercept), float(intercept + slope)


def _motion(dx: float, dy: float, area_ratio: float, move: float, grow: float, shrink: float) -> str:
    if max(abs(dx), abs(dy)) > move:
        if abs(dx) >= abs(dy):
            return "right" if dx > 0 else "left"
        return "down" if dy > 0 else "up"
    if area_ratio > grow:
        return "grows"
    if area_ratio < shrink:
        return "shrinks"
    return "still"


def analyze_clip(
    frames: np.ndarray,
    *,
    color_threshold: float = COLOR_THRESHOLD,
    min_area: float | None = None,
    min_frames_fraction: float = 0.5,
    move_threshold: float = MOVE_THRESHOLD,
    grow_ratio: float = GROW_RATIO,
    shrink_ratio: float = SHRINK_RATIO,
) -> list[DetectedObject]:
    """The objects of a synthetic-world clip, read from its pixels.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB (one frame ``(H, W, 3)`` is taken as T = 1).
        color_threshold: Largest RGB distance from a vocabulary colour for a pixel to count.
        min_area: Smallest object in pixels (default: 0.1% of the frame, at least 8 pixels).
        min_frames_fraction: An object must be found in at least this fraction of the frames.
        move_threshold, grow_ratio, shrink_ratio: Motion decision (see the module docstring).

    Returns:
        The detected objects, ordered by colour (vocabulary order), then shape, then start position.

    Raises:
        InputError: ``frames`` is not a uint8 ``(T, H, W, 3)`` array.
    """
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or 0 in frames.shape:
        raise InputError(f"analyze_clip needs (T, H, W, 3) uint8 frames, got {frames.dtype} {frames.shape}")
    t, h, w, _ = frames.shape
    if min_area is None:
        min_area = max(8.0, 0.001 * h * w)
    comps = _components(_label_colors(frames, color_threshold))
    keep = _candidates(comps, h, w, min_area)
    tracks = _track(comps, keep, t, h, w)

    needed = max(1, math.ceil(min_frames_fraction * t))
    times = np.linspace(0.0, 1.0, t) if t > 1 else np.zeros(1)
    objects = []
    for tr in tracks:
        if len(tr.frames) < needed:
            continue
        ts = times[np.asarray(tr.frames)]
        x_start, x_end = _fit_ends(ts, np.asarray(tr.xs) / w)
        y_start, y_end = _fit_ends(ts, np.asarray(tr.ys) / h)
        side = np.sqrt(np.asarray(tr.areas))
        s_start, s_end = _fit_ends(ts, side)
        s_start, s_end = max(s_start, 1e-3), max(s_end, 1e-3)
        area_ratio = (s_end / s_start) ** 2
        dx, dy = x_end - x_start, y_end - y_start
        votes = np.bincount(np.asarray(tr.shapes), minlength=len(SHAPES))
        best = [k for k in range(len(SHAPES)) if votes[k] == votes.max()]
        shape = next(s for s in tr.shapes if s in best)  # ties: the earliest frame's
        objects.append(DetectedObject(
            color=COLORS[tr.color],
            shape=SHAPES[shape],
            motion=_motion(dx, dy, area_ratio, move_threshold, grow_ratio, shrink_ratio),
            start=(x_start, y_start),
            end=(x_end, y_end),
            displacement=(dx, dy),
            area_ratio=float(area_ratio),
            size=float(s_start / min(h, w)),
            frames_seen=len(tr.frames),
            shape_agreement=float(votes[shape] / len(tr.shapes)),
            first_shape=SHAPES[tr.shapes[0]],
        ))
    objects.sort(key=lambda o: (COLORS.index(o.color), SHAPES.index(o.shape), o.start))
    return objects


# ============================================================================================
# Comparing with what was asked for


def object_triples(content: Scene | PromptSpec | Iterable[DetectedObject]) -> list[tuple[str, str, str]]:
    """Sorted ``(color, shape, motion)`` of every object of a scene, a (complete) prompt spec or a
    list of detections; compare two such lists for "the clip shows exactly these objects"."""
    if isinstance(content, (Scene, PromptSpec)):
        return sorted((o.color, o.shape, o.motion) for o in content.objects)  # type: ignore[misc]
    return sorted(o.triple for o in content)


def matches(
    objects: Iterable[DetectedObject],
    *,
    color: str | None = None,
    shape: str | None = None,
    motion: str | None = None,
    count: int | None = 1,
) -> bool:
    """Whether the detections show what was asked for: exactly ``count`` objects (``None``: any
    number, at least one), each with the given colour, shape and motion (``None``: any)."""
    objects = list(objects)
    if count is not None and len(objects) != count:
        return False
    if not objects:
        return False
    return all(
        (color is None or o.color == color) and (shape is None or o.shape == shape) and (motion is None or o.motion == motion)
        for o in objects
    )


def _same_objects(found: Sequence[tuple[str | None, str, str | None]], want: Sequence[ObjectSpec]) -> bool:
    """Whether ``found`` ((colour, shape, motion) triples) are exactly the objects of ``want``, one each,
    where an attribute ``want`` leaves open (``None``) matches anything."""
    if len(found) != len(want):
        return False
    wanted = [(o.color, o.shape, o.motion) for o in want]
    return any(all(all(w is None or w == f for w, f in zip(wanted[k], triple)) for k, triple in zip(order, found))
               for order in itertools.permutations(range(len(wanted))))


def check_generation(
    prompt: str | None,
    want: PromptSpec | None,
    *,
    frames: np.ndarray | None = None,
    render: bool = True,
    seed: int = 0,
    size: int = 128,
    num_frames: int = 16,
) -> dict[str, Any]:
    """What became of one request for a video of ``want`` whose reply wrote the video prompt ``prompt``.

    Args:
        prompt: The reply's (first) video prompt; ``None`` or blank if it wrote none.
        want: What was asked for (an attribute left ``None`` is not checked); ``None``: unknown, so only
            whether a prompt was written and rendered is judged.
        frames: The video made from the prompt, ``(T, H, W, 3)`` uint8 (e.g. decoded from the mp4 the
            pipeline wrote); ``None`` renders the prompt with the offline "synthetic" backend, a
            ``size`` × ``size`` × ``num_frames`` clip from ``seed``, unless ``render`` is False (no video
            was made: only the prompt is judged).

    Returns:
        ``{"prompt_written", "prompt_asks_for_request" (parse_prompt reads exactly the wanted objects from
        it), "rendered", "content_right" (the pixels show exactly the wanted objects, one each, with
        their colour, shape and motion; the background is not checked), "detected" ([colour, shape,
        motion] of each object found), "error" (why it was not rendered, else None)}``.
    """
    out: dict[str, Any] = {"prompt_written": bool(prompt and prompt.strip()), "prompt_asks_for_request": False,
                           "rendered": False, "content_right": False, "detected": [], "error": None}
    if not out["prompt_written"]:
        return out
    assert prompt is not None
    if want is not None:
        spec = parse_prompt(prompt)
        out["prompt_asks_for_request"] = spec is not None and _same_objects(
            [(o.color, o.shape, o.motion) for o in spec.objects], want.objects)
    if frames is None and not render:
        return out
    if frames is None:
        from gpt4video.generators import build_generator

        try:
            frames = build_generator("synthetic")(prompt, num_frames=num_frames, height=size, width=size, seed=seed)
        except InputError as e:  # a prompt outside the world, or objects that do not fit
            out["error"] = f"{type(e).__name__}: {e}"
            return out
    out["rendered"] = True
    detected = analyze_clip(frames)
    out["detected"] = [list(o.triple) for o in detected]
    out["content_right"] = want is not None and _same_objects([o.triple for o in detected], want.objects)
    return out
