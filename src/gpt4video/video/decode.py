"""Open video and image files, describe them, and turn decoded frames into RGB arrays.

``probe(path)`` returns a :class:`VideoInfo`. The lower-level helpers here (:func:`open_video`,
:func:`decode_frames`, :func:`frame_to_rgb`, :func:`read_image`, :func:`fit_within`) are shared
with :mod:`gpt4video.video.sampling`, which picks the frames a model sees.

Every problem with a file is reported as one :class:`~gpt4video.errors.VideoError` naming the
file and saying plainly what is wrong; no exception from PyAV or Pillow escapes.

Conventions:

- A still image (png, jpg, webp, bmp, tiff) is a one-frame video with ``duration == 0.0``.
- ``rotation`` is the counter-clockwise rotation, in degrees (0, 90, 180 or 270), that turns the
  stored picture upright, as written in the container's display matrix (or a JPEG's EXIF
  orientation). ``width`` and ``height`` are the size *after* that rotation, i.e. as displayed.
- Mirroring in a display matrix is not applied (it is very rare in practice).
"""

from __future__ import annotations

import math
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from gpt4video.errors import VideoError

__all__ = ["IMAGE_EXTENSIONS", "VideoInfo", "probe"]

#: File name endings read with Pillow as still images.
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

# FFmpeg demuxers that read single still images rather than videos.
_IMAGE_DEMUXERS = ("image2", "_pipe")

# The first bytes of common video and image containers. A file that starts like one of these but
# cannot be opened is reported as truncated or corrupt rather than as "not a video".
_MAGIC_AT_0 = (
    b"\x1a\x45\xdf\xa3",  # Matroska / WebM (EBML)
    b"RIFF",  # AVI, WebP
    b"GIF87a",
    b"GIF89a",
    b"\x89PNG",
    b"\xff\xd8\xff",  # JPEG
    b"OggS",
    b"FLV",
    b"\x00\x00\x01\xba",  # MPEG program stream
    b"\x30\x26\xb2\x75",  # ASF / WMV
)
_MAGIC_AT_4 = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")  # MP4 / MOV boxes

# EXIF orientation -> counter-clockwise rotation that makes the picture upright (mirrored
# orientations 2, 4, 5 and 7 are applied by Pillow; only their rotation part is reported).
_EXIF_ROTATION = {1: 0, 2: 0, 3: 180, 4: 180, 5: 90, 6: 270, 7: 270, 8: 90}


@dataclass(frozen=True)
class VideoInfo:
    """What a video (or still image) file holds.

    Attributes:
        path: The file.
        width: Displayed width in pixels (after applying ``rotation``).
        height: Displayed height in pixels (after applying ``rotation``).
        fps: Average frame rate, or ``None`` if unknown (always ``None`` for a still image).
        duration: Length in seconds; ``0.0`` for a still image.
        num_frames: Number of frames (from the container, else estimated from duration and fps),
            or ``None`` if it cannot be estimated.
        rotation: Counter-clockwise rotation in degrees (0, 90, 180, 270) applied for display.
        codec: Decoder name, e.g. ``"h264"``, ``"vp9"``, ``"png"``.
        pix_fmt: Pixel format as stored, e.g. ``"yuv420p"``, ``"pal8"``, ``"RGB"`` (Pillow mode).
        is_image: ``True`` for a still image.
    """

    path: Path
    width: int
    height: int
    fps: float | None
    duration: float
    num_frames: int | None
    rotation: int
    codec: str
    pix_fmt: str
    is_image: bool


def probe(path: str | os.PathLike[str]) -> VideoInfo:
    """Describe a video or image file, checking that at least one frame decodes.

    Raises:
        VideoError: the file is missing, a directory, empty, not a video or image, has no video
            stream, or is truncated / corrupt.
    """
    file = check_file(path)
    image = read_image(file, max_side=None, fallback_to_video=True)
    if image is not None:
        return image[1]
    with open_video(file) as video:
        return video.info


# --------------------------------------------------------------------------------------------
# Files


def check_file(path: str | os.PathLike[str]) -> Path:
    """Return ``path`` as a ``Path`` if it is a readable, non-empty regular file; else raise."""
    file = Path(path)
    try:
        st = file.stat()
    except FileNotFoundError:
        raise VideoError(file, "file not found") from None
    except PermissionError:
        raise VideoError(file, "cannot be read (permission denied)") from None
    except OSError as exc:
        raise VideoError(file, f"cannot be read ({exc.strerror or exc})") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoError(file, "is a directory, not a video file")
    if not stat.S_ISREG(st.st_mode):
        # FIFOs and devices could block forever or never end.
        raise VideoError(file, "is not a regular file")
    if st.st_size == 0:
        raise VideoError(file, "file is empty")
    if not os.access(file, os.R_OK):
        raise VideoError(file, "cannot be read (permission denied)")
    return file


def _looks_like_media(file: Path) -> bool:
    """Whether the file starts with the signature of a known video or image container."""
    try:
        with open(file, "rb") as fh:
            head = fh.read(12)
    except OSError:
        return False
    return head.startswith(_MAGIC_AT_0) or head[4:8] in _MAGIC_AT_4


def _ffmpeg_reason(exc: BaseException) -> str:
    """A short, one-line description of an FFmpeg error (its most specific log line if any)."""
    log = getattr(exc, "log", None)
    if log and isinstance(log, tuple) and len(log) == 3 and log[2]:
        return str(log[2]).strip()
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).strip().rstrip(".")


# --------------------------------------------------------------------------------------------
# Sizes and RGB conversion


def fit_within(width: int, height: int, max_side: int | None) -> tuple[int, int]:
    """Scale ``(width, height)`` down, keeping the aspect ratio, so the longer side is ≤ max_side.

    Sizes already within the limit (or ``max_side=None``) are returned unchanged; never upscales.
    """
    if max_side is None or max(width, height) <= max_side:
        return width, height
    scale = max_side / max(width, height)
    return max(1, min(max_side, round(width * scale))), max(1, min(max_side, round(height * scale)))


def normalize_rotation(degrees: float | int | None) -> int:
    """Round a rotation to the nearest multiple of 90 and bring it into ``{0, 90, 180, 270}``."""
    if degrees is None or not math.isfinite(degrees):
        return 0
    return int(round(degrees / 90.0)) * 90 % 360


def frame_to_rgb(frame: av.VideoFrame, rotation: int, size: tuple[int, int] | None = None) -> np.ndarray:
    """Convert a decoded frame of any pixel format to an upright ``(H, W, 3)`` uint8 RGB array.

    Args:
        frame: The decoded frame.
        rotation: Counter-clockwise display rotation in degrees (multiple of 90).
        size: ``(width, height)`` to scale the *stored* picture to before rotating it, or ``None``
            to keep its size. Scaling happens inside the colour conversion (one pass, no full-size
            RGB copy), which keeps memory small for 4K input.
    """
    width, height = size if size is not None else (frame.width, frame.height)
    rgb = frame.reformat(width=width, height=height, format="rgb24", interpolation="AREA")
    array = rgb.to_ndarray()  # (height, width, 3) uint8
    if rotation:
        array = np.rot90(array, k=rotation // 90)  # np.rot90 turns counter-clockwise
    return np.ascontiguousarray(array)


# --------------------------------------------------------------------------------------------
# Still images (Pillow)


def read_image(
    file: Path, max_side: int | None, *, fallback_to_video: bool = False
) -> tuple[np.ndarray, VideoInfo] | None:
    """Read a still image as an upright ``(H, W, 3)`` uint8 RGB array plus its :class:`VideoInfo`.

    Returns ``None`` when the file does not have an image extension. With
    ``fallback_to_video=True`` it also returns ``None`` when Pillow does not recognise the file,
    so the caller can try FFmpeg (e.g. a video someone named ``.png``).
    """
    if file.suffix.lower() not in IMAGE_EXTENSIONS:
        return None
    try:
        with Image.open(file) as img:
            codec = (img.format or "image").lower()
            pix_fmt = img.mode
            orientation = img.getexif().get(0x0112, 1)  # EXIF "Orientation" tag
            if max_side is not None:
                # JPEG can decode directly at a reduced size, which is much faster for big photos.
                img.draft("RGB", (max_side, max_side))
            img.load()
            upright = ImageOps.exif_transpose(img)
            rgb = upright.convert("RGB")
    except UnidentifiedImageError:
        if fallback_to_video:
            return None
        raise VideoError(file, "not a video or image file (unrecognised image format)") from None
    except Image.DecompressionBombError as exc:
        raise VideoError(file, f"image is too large to read safely ({exc})") from None
    except Exception as exc:  # Pillow's plugins raise OSError, SyntaxError, struct.error, ...
        raise VideoError(file, f"truncated or corrupt image ({exc})") from None
    width, height = fit_within(rgb.width, rgb.height, max_side)
    if (width, height) != rgb.size:
        rgb = rgb.resize((width, height), Image.Resampling.BOX)
    info = VideoInfo(
        path=file,
        width=upright.width,
        height=upright.height,
        fps=None,
        duration=0.0,
        num_frames=1,
        rotation=_EXIF_ROTATION.get(orientation, 0),
        codec=codec,
        pix_fmt=pix_fmt,
        is_image=True,
    )
    return np.asarray(rgb, dtype=np.uint8).copy(), info


# --------------------------------------------------------------------------------------------
# Videos (PyAV)


def demux_safely(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.Packet]:
    """Demux ``stream``'s packets from the current position, ending quietly at a container error
    (damage in the container is treated as the end of the file)."""
    packets = container.demux(stream)
    while True:
        try:
            packet = next(packets)
        except (StopIteration, av.FFmpegError):
            return
        yield packet


def decode_frames(container: av.container.InputContainer, stream: av.VideoStream) -> Iterator[av.VideoFrame]:
    """Decode ``stream`` forward from the container's current position.

    Packets the decoder rejects are skipped, as FFmpeg's own tools do, so damage in the middle
    of a file costs only the frames that depend on it. Never raises a PyAV error.
    """
    for packet in demux_safely(container, stream):
        try:
            frames = packet.decode()
        except av.FFmpegError:
            continue
        yield from frames


@dataclass
class OpenVideo:
    """An open video file, probed, ready for more decoding.

    ``frames`` continues the decoding that produced ``first_frame``; ``first_frame`` itself is not
    repeated by it. ``start_pts`` is the presentation timestamp of the first frame (time 0) in
    ``stream.time_base`` units. ``decoded_frames`` counts the frames the decoder has produced.
    ``duration_is_own`` says whether ``info.duration`` is the video stream's own length rather
    than the whole container's (which may include a longer audio track).
    """

    info: VideoInfo
    container: av.container.InputContainer
    stream: av.VideoStream
    first_frame: av.VideoFrame
    start_pts: int
    frames: Iterator[av.VideoFrame]
    decoded_frames: int = 1
    duration_is_own: bool = True

    def close(self) -> None:
        self.container.close()

    def __enter__(self) -> OpenVideo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_container(file: Path) -> av.container.InputContainer:
    """Open a file with FFmpeg, turning failures into a :class:`VideoError`."""
    try:
        return av.open(str(file), mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        reason = _ffmpeg_reason(exc)
        if _looks_like_media(file):
            raise VideoError(file, f"truncated or corrupt: the file cannot be opened ({reason})") from None
        raise VideoError(file, f"not a video or image file ({reason})") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise VideoError(file, f"cannot be opened ({exc})") from None


def _pick_video_stream(file: Path, container: av.container.InputContainer) -> av.VideoStream:
    """The first real video stream (cover art attached to audio files does not count)."""
    videos = list(container.streams.video)
    real = [s for s in videos if not (s.disposition & av.stream.Disposition.attached_pic)]
    if real:
        return real[0]
    found = sorted({s.type for s in container.streams if s.type != "video"}) + (["cover art"] if videos else [])
    raise VideoError(file, f"has no video stream (found: {', '.join(found) or 'no streams at all'})")


def _rate(stream: av.VideoStream) -> Fraction | None:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return None


def _parse_clock(text: str) -> float | None:
    """Parse a Matroska ``DURATION`` tag like ``00:30:00.000000000`` into seconds."""
    try:
        hours, minutes, seconds = text.strip().split(":")
        value = int(hours) * 3600 + int(minutes) * 60 + float(seconds)
    except (AttributeError, ValueError):
        return None
    return value if math.isfinite(value) and value > 0 else None


def _duration_from_packets(file: Path, stream_index: int, rate: Fraction | None) -> float | None:
    """Last resort for files without duration metadata: scan the packets (no decoding)."""
    try:
        with av.open(str(file), metadata_errors="ignore") as container:
            stream = container.streams[stream_index]
            tb = stream.time_base
            first = last = None
            count = 0
            for packet in demux_safely(container, stream):
                if packet.size == 0:
                    continue
                count += 1
                if packet.pts is not None and tb is not None:
                    end = packet.pts + (packet.duration or 0)
                    first = packet.pts if first is None else min(first, packet.pts)
                    last = end if last is None else max(last, end)
    except (av.FFmpegError, OSError):
        return None
    if first is not None and last is not None and last > first:
        return float((last - first) * tb)
    if count and rate:
        return float(count / rate)
    return None


def open_video(path: str | os.PathLike[str]) -> OpenVideo:
    """Open a video file, decode its first frame and describe it. The caller closes the result.

    Raises:
        VideoError: as :func:`probe`.
    """
    file = check_file(path)
    container = open_container(file)
    try:
        stream = _pick_video_stream(file, container)
        # Frame- and slice-threaded decoding; must be set before the decoder opens.
        stream.codec_context.thread_type = "AUTO"
        frames = decode_frames(container, stream)
        first = next(frames, None)
        if first is None:
            if _looks_like_media(file):
                raise VideoError(file, "truncated or corrupt: no frame could be decoded")
            raise VideoError(file, "not a video or image file (no frame could be decoded)")
        _check_index_within_file(file, container, stream)
        info, start_pts, own = _describe(file, container, stream, first)
        return OpenVideo(
            info=info,
            container=container,
            stream=stream,
            first_frame=first,
            start_pts=start_pts,
            frames=frames,
            duration_is_own=own,
        )
    except VideoError:
        container.close()
        raise
    except av.FFmpegError as exc:  # defensive: anything PyAV raises while probing
        container.close()
        raise VideoError(file, f"truncated or corrupt: {_ffmpeg_reason(exc)}") from None


def _check_index_within_file(file: Path, container: av.container.InputContainer, stream: av.VideoStream) -> None:
    """Catch a file cut short without decoding it: MP4/MOV and AVI index every packet with its
    byte position, so the last video packet must end inside the file."""
    if not any(name in container.format.name.split(",") for name in ("mov", "mp4", "avi")):
        return
    entries = stream.index_entries
    count = len(entries)
    if count == 0:
        return
    tail = (entries[i] for i in range(max(0, count - 32), count))  # packets at the end of the file
    needed = max((e.pos + e.size for e in tail if e.pos >= 0), default=0)
    size = file.stat().st_size
    if needed > size:
        raise VideoError(file, f"truncated or corrupt: the file is cut short ({size} bytes; its index needs {needed})")


def _describe(
    file: Path, container: av.container.InputContainer, stream: av.VideoStream, first: av.VideoFrame
) -> tuple[VideoInfo, int, bool]:
    """Build the :class:`VideoInfo`; also return the start pts and whether the duration is the
    video stream's own (rather than the whole container's, which may include longer audio)."""
    codec = stream.codec_context.name
    is_image = any(tag in container.format.name for tag in _IMAGE_DEMUXERS) and stream.frames <= 1
    rotation = normalize_rotation(first.rotation)
    width, height = first.width, first.height
    if rotation in (90, 270):
        width, height = height, width
    if first.pts is not None:
        start_pts = first.pts
    else:
        start_pts = stream.start_time if stream.start_time is not None else 0
    if is_image:
        info = VideoInfo(file, width, height, None, 0.0, 1, rotation, codec, first.format.name, True)
        return info, start_pts, True

    rate = _rate(stream)
    duration: float | None = None
    own = True
    if stream.duration is not None and stream.duration > 0 and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    if duration is None:
        duration = _parse_clock(stream.metadata.get("DURATION", ""))  # Matroska / WebM
    if duration is None and container.duration is not None and container.duration > 0:
        duration = container.duration / av.time_base
        own = len(container.streams) == 1
    if duration is None:
        duration = _duration_from_packets(file, stream.index, rate)
    if duration is None:
        # A single frame and nothing else to go by.
        duration = float(1 / rate) if rate else 0.0

    num_frames: int | None = stream.frames if stream.frames and stream.frames > 0 else None
    if num_frames is None and rate:
        num_frames = max(1, round(duration * rate))
    info = VideoInfo(
        path=file,
        width=width,
        height=height,
        fps=float(rate) if rate else None,
        duration=duration,
        num_frames=num_frames,
        rotation=rotation,
        codec=codec,
        pix_fmt=first.format.name,
        is_image=False,
    )
    return info, start_pts, own
