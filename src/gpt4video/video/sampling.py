"""Sample the T frames a model sees from a video file.

The paper samples T frames uniformly over the whole video. :func:`uniform_timestamps` gives the
centres of T equal segments of the video, and :func:`load_video` returns the frame on screen at
each of those times.

:func:`load_video` *seeks*: for each time it jumps to the keyframe before it and decodes forward
only as far as needed, so a 30-minute video costs about what a 5-second one does. It skips the
seek when the frames it needs are already ahead of the decoder (same group of pictures), and
falls back to one sequential decoding pass, keeping only the frames it needs, when seeking does
not work for a file. Memory stays bounded either way: at most the T output frames plus the
decoder's own buffers are held.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np

from typing import TYPE_CHECKING

from gpt4video.errors import InputError, VideoError
if TYPE_CHECKING:
    from gpt4video.audio import AudioTrack
from gpt4video.video.decode import (
    OpenVideo,
    VideoInfo,
    check_file,
    decode_frames,
    fit_within,
    frame_to_rgb,
    open_video,
    read_image,
)

__all__ = ["VideoClip", "load_video", "uniform_timestamps"]

# When the video's own metadata says it lasts longer than the frames that can be decoded by more
# than this (seconds, or this fraction of the duration if larger), the file is reported truncated.
_TRUNCATION_SLACK_SECONDS = 1.0
_TRUNCATION_SLACK_FRACTION = 0.1

# How far back through the seek index to look for a keyframe before giving up on it.
_MAX_INDEX_WALK = 4096

# Stop seeking after this many seeks in a row that did not move the decoder forward.
_MAX_WASTED_SEEKS = 2

# Seek attempts per sample when the demuxer keeps landing after the requested time.
_MAX_SEEK_ATTEMPTS = 4


def uniform_timestamps(duration: float, num_frames: int) -> list[float]:
    """The centres of ``num_frames`` equal segments of ``[0, duration]``, in seconds.

    >>> uniform_timestamps(8.0, 4)
    [1.0, 3.0, 5.0, 7.0]
    """
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames must be a positive integer, got {num_frames!r}")
    if not isinstance(duration, (int, float)) or not math.isfinite(duration) or duration < 0:
        raise InputError(f"duration must be a finite number of seconds >= 0, got {duration!r}")
    step = float(duration) / num_frames
    return [(i + 0.5) * step for i in range(num_frames)]


@dataclass
class VideoClip:
    """Frames sampled from one video.

    Attributes:
        frames: ``(T, H, W, 3)`` uint8 RGB, upright (rotation metadata applied).
        timestamps: The requested time of each frame in seconds (``[0.0]`` for a still image).
        info: What :func:`~gpt4video.video.probe` reports for the file.
        decoded_frames: How many frames the decoder actually produced to get these (including
            the one decoded while probing); far fewer than the video's frames when seeking works.
        seconds: Wall-clock time :func:`load_video` took (probe, seek, decode, convert).
        sound: The video's sound track, when the reader read it too (an empty track for a silent video);
            None when it was not read (the pipeline reads it from ``info.path`` if it needs it).
    """

    frames: np.ndarray
    timestamps: list[float]
    info: VideoInfo
    decoded_frames: int
    seconds: float = 0.0
    sound: AudioTrack | None = None


def load_video(path: str | os.PathLike[str], num_frames: int = 4, max_side: int | None = None) -> VideoClip:
    """Load ``num_frames`` frames sampled uniformly over a video, or the single frame of an image.

    Args:
        path: A video (mp4, webm, mkv, avi, mov, gif, ...) or a still image (png, jpg, webp, bmp).
        num_frames: T. A video always gives exactly T frames: when it has fewer, frames repeat.
            A still image gives exactly one.
        max_side: If given, frames are scaled down (aspect ratio kept) so that their longer side
            is at most this many pixels; scaling happens during colour conversion.

    Returns:
        A :class:`VideoClip`.

    Raises:
        InputError: ``num_frames`` or ``max_side`` is not a positive integer.
        VideoError: the file cannot be read (see :func:`~gpt4video.video.probe`).
    """
    start = time.perf_counter()
    clip = _load_video(path, num_frames, max_side)
    clip.seconds = time.perf_counter() - start
    return clip


def _load_video(path: str | os.PathLike[str], num_frames: int, max_side: int | None) -> VideoClip:
    if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
        raise InputError(f"num_frames must be a positive integer, got {num_frames!r}")
    if max_side is not None and (isinstance(max_side, bool) or not isinstance(max_side, int) or max_side < 1):
        raise InputError(f"max_side must be a positive integer or None, got {max_side!r}")

    file = check_file(path)
    image = read_image(file, max_side, fallback_to_video=True)
    if image is not None:
        array, info = image
        return VideoClip(frames=array[None], timestamps=[0.0], info=info, decoded_frames=1)

    with open_video(file) as video:
        info = video.info
        size = fit_within(video.first_frame.width, video.first_frame.height, max_side)
        if info.is_image:
            frame = _to_rgb(video, video.first_frame, size)
            return VideoClip(frames=frame[None], timestamps=[0.0], info=info, decoded_frames=1)
        timestamps = uniform_timestamps(info.duration, num_frames)
        sampler = _Sampler(video, size, allow_seek=True)
        try:
            frames = sampler.sample(timestamps)
        except _SeekFailed:
            frames = None
        decoded = sampler.decoded

    if frames is None:
        # Seeking does not work for this file: one sequential pass from the start instead.
        with open_video(file) as video:
            sampler = _Sampler(video, size, allow_seek=False)
            frames = sampler.sample(timestamps)
            decoded += sampler.decoded
    assert frames is not None
    return VideoClip(frames=np.stack(frames), timestamps=timestamps, info=info, decoded_frames=decoded)


def _to_rgb(video: OpenVideo, frame: av.VideoFrame, size: tuple[int, int]) -> np.ndarray:
    try:
        return frame_to_rgb(frame, video.info.rotation, size)
    except (av.FFmpegError, ValueError) as exc:
        raise VideoError(video.info.path, f"cannot convert its {frame.format.name} frames to RGB ({exc})") from None


class _SeekFailed(Exception):
    """Seeking misbehaved for this file; sample it with one sequential pass instead."""


class _Sampler:
    """Walks forward through an open video and returns the frame on screen at requested times.

    Times are handled as presentation timestamps (pts) in the stream's time base. ``pending``
    holds a decoded frame that lies after the last requested time (it may serve the next one);
    ``shown`` is the latest frame at or before it.
    """

    def __init__(self, video: OpenVideo, size: tuple[int, int], *, allow_seek: bool) -> None:
        self.video = video
        self.size = size
        self.forward_only = not allow_seek
        stream = video.stream
        self.time_base = Fraction(stream.time_base) if stream.time_base else Fraction(1, 1000)
        rate = video.info.fps
        # One frame's duration in pts units: for frames without pts, and for the end of the video.
        self.frame_step = max(1, round(1 / (Fraction(rate) * self.time_base))) if rate else 1
        self.frames = video.frames
        self.pending: tuple[int, av.VideoFrame] | None = (video.start_pts, video.first_frame)
        self.shown: tuple[int, av.VideoFrame] | None = None
        self.newest_pts = video.start_pts
        self.decoded = video.decoded_frames
        self.end_pts: int | None = None  # set once decoding reaches the end of the file
        self.wasted_seeks = 0  # seeks in a row that landed no further than the decoder already was

    # -- public -----------------------------------------------------------------------------

    def sample(self, timestamps: list[float]) -> list[np.ndarray]:
        """RGB frames at ``timestamps`` (seconds from the start, ascending)."""
        out: list[np.ndarray] = []
        last: tuple[int, av.VideoFrame] | None = None
        for t in timestamps:
            target = self.video.start_pts + math.floor(Fraction(t) / self.time_base)
            item = self._frame_at(target)
            if item is last:
                out.append(out[-1])  # the same frame again (video shorter than T frames)
            else:
                out.append(_to_rgb(self.video, item[1], self.size))
            last = item
        self._check_not_truncated(timestamps[-1])
        return out

    # -- decoding ---------------------------------------------------------------------------

    def _pull(self) -> tuple[int, av.VideoFrame] | None:
        """Decode the next frame with its pts, or ``None`` at the end of the file."""
        frame = next(self.frames, None)
        if frame is None:
            return None
        self.decoded += 1
        if frame.pts is not None:
            pts = frame.pts
        elif self.forward_only:
            pts = self.newest_pts + self.frame_step  # no timestamps: count frames instead
        else:
            raise _SeekFailed  # cannot locate frames without timestamps after a seek
        self.newest_pts = pts
        return pts, frame

    def _frame_at(self, target: int) -> tuple[int, av.VideoFrame]:
        """The frame on screen at pts ``target``: the last frame whose pts is ≤ target
        (or the first frame if the video starts after it, the last if it ends before it)."""
        if self._should_seek(target):
            self._seek_to(target)
        while True:
            item, self.pending = self.pending or self._pull(), None
            if item is None:  # end of the file
                if self.shown is None:
                    # Nothing decodes from where a seek put us (e.g. the file is cut short).
                    if self.forward_only:
                        raise VideoError(self.video.info.path, "truncated or corrupt: no frame could be decoded")
                    raise _SeekFailed
                self._note_end()
                return self.shown
            pts, frame = item
            if pts > target:
                self.pending = item
                return self.shown if self.shown is not None else item
            self.shown = item
            if frame.duration and pts + frame.duration > target:
                return item  # still on screen at the target; no need to decode the next frame

    def _note_end(self) -> None:
        if self.end_pts is None and self.shown is not None:
            pts, frame = self.shown
            self.end_pts = pts + (frame.duration or self.frame_step)

    # -- seeking ----------------------------------------------------------------------------

    def _should_seek(self, target: int) -> bool:
        """Seek only if that skips frames: i.e. a keyframe lies between the decoder and target."""
        if self.forward_only or self.end_pts is not None:
            return False
        current = (self.pending or self.shown or (None, None))[0]
        if current is None:
            return True
        if target <= current:
            return False
        keyframe = self._keyframe_at_or_before(target)
        if keyframe is None:
            return True  # no index (yet): let the demuxer find the keyframe
        return keyframe > current

    def _keyframe_at_or_before(self, target: int) -> int | None:
        """Presentation time of the last indexed keyframe at or before ``target``, or ``None`` when
        the index cannot tell: no index, or one built while reading that does not reach ``target``
        yet (MPEG-TS, IVF, ...)."""
        stream = self.video.stream
        entries = stream.index_entries
        count = len(entries)
        if count <= 1:
            return None
        # MP4 and AVI index decode times, which trail presentation times by the B-frame delay;
        # the first entry and the first frame tell by how much.
        delay = max(0, self.video.start_pts - entries[0].timestamp)
        complete = stream.frames > 0 and count >= stream.frames  # every frame indexed (MP4, AVI)
        if not (complete or entries[count - 1].timestamp + delay >= target):
            return None
        lo, hi = 0, count  # binary search: first entry presented after the target
        while lo < hi:
            mid = (lo + hi) // 2
            if entries[mid].timestamp + delay <= target:
                lo = mid + 1
            else:
                hi = mid
        for i in range(lo - 1, max(-1, lo - 1 - _MAX_INDEX_WALK), -1):
            if entries[i].is_keyframe:
                return entries[i].timestamp + delay
        return None

    def _seek_to(self, target: int) -> None:
        """Seek so that decoding resumes at a frame at or before ``target``.

        Demuxers may land a little after the requested time (MPEG-TS estimates byte positions;
        AVI with B-frames indexes decode times): then seek again further back, doubling the
        distance each time, and give up (sequential pass) after a few tries.
        """
        start = self.video.start_pts
        before = (self.pending or self.shown or (None, None))[0]
        back_off = 0
        for _ in range(_MAX_SEEK_ATTEMPTS):
            position = max(start, target - back_off)
            try:
                self.video.container.seek(position, stream=self.video.stream, backward=True, any_frame=False)
            except av.FFmpegError:
                raise _SeekFailed from None
            self.frames = decode_frames(self.video.container, self.video.stream)
            self.pending = self.shown = None
            landed = self._pull()
            if landed is None:
                raise _SeekFailed  # nothing decodes after the seek
            pts = landed[0]
            if pts <= target or pts <= start:
                self.pending = landed
                self._judge_seek(pts, before)
                return
            back_off = 2 * back_off + (pts - target) + self.frame_step  # overshot: go further back
        raise _SeekFailed

    def _judge_seek(self, landed: int, before: int | None) -> None:
        """Stop seeking if seeks do not move the decoder forward."""
        if before is not None and landed <= before:
            # The seek went back to where the decoder already was. Once may be chance (the target
            # was in the same group of pictures); twice in a row means seeking does not help this
            # file (e.g. GIF, or one long group of pictures): only decode forward from now on.
            self.wasted_seeks += 1
            self.forward_only = self.wasted_seeks >= _MAX_WASTED_SEEKS
        else:
            self.wasted_seeks = 0

    # -- sanity -----------------------------------------------------------------------------

    def _check_not_truncated(self, last_time: float) -> None:
        """Raise if the frames end well before the duration the video stream itself declares."""
        if self.end_pts is None or not self.video.duration_is_own:
            return
        end_time = float((self.end_pts - self.video.start_pts) * self.time_base)
        declared = self.video.info.duration
        slack = max(_TRUNCATION_SLACK_SECONDS, _TRUNCATION_SLACK_FRACTION * declared)
        if last_time > end_time + slack:
            raise VideoError(
                self.video.info.path,
                f"truncated or corrupt: frames stop at {end_time:.1f} s but the video declares {declared:.1f} s",
            )
