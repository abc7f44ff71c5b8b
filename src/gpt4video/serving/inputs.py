"""Where the videos of a request come from, and how they are checked before any model work.

A video in a message is one of:

- a ``data:`` URL (``data:video/mp4;base64,...``): decoded slice by slice into a private scratch file,
  read, then deleted;
- a file id from ``POST /v1/files`` (``file-...``), bare or as the URL of ``/v1/files/<id>/content``
  on this server;
- an ``http(s)`` URL, fetched only when the server was started with ``--allow-url-fetch`` (otherwise
  the server never makes a request it is handed, so it cannot be used to reach other hosts).

Local paths and ``file:`` URLs are always refused: the server reads nothing outside its storage.
Every video is checked against the size and duration limits, then decoded (T frames) here, off the
model's thread, so a bad file is answered 400/413 before the request waits in the queue. When the server
hears (``VideoLimits.hear``), a video's sound track is read with it, and a sound file (wav, mp3, flac,
ogg, ...) is read as an :class:`~gpt4video.audio.AudioTrack` under the same limits.
"""

from __future__ import annotations

import binascii
import os
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

import numpy as np

from ..audio import SAMPLE_RATE, AudioTrack, has_only_audio, load_audio
from ..errors import AudioError, VideoError
from ..processing import VideoSampling
from ..video import VideoClip, probe
from .errors import BadRequest, ServeError
from .files import FILE_ID, FileStore, open_private, too_large

_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+)?(?P<params>(;[\w.+-]+=[^;,]*)*)(?P<b64>;base64)?,",
                       re.IGNORECASE)
_CONTENT_PATH = re.compile(r"^/v1/files/(?P<id>file-[0-9a-f]{24})/content$")
_SPACES = re.compile(r"\s*")
_B64_SLICE = 1 << 22  # base64 characters decoded at a time (a multiple of 4)


@dataclass
class VideoLimits:
    max_bytes: int
    max_seconds: float
    sampling: VideoSampling  # the model's: frames per video and their size
    allow_url_fetch: bool = False
    hear: bool = False  # read sound tracks and sound files (the assistants have a speech recogniser)


class VideoInputs:
    """Turns the video references of one request into decoded clips, enforcing the server's limits."""

    def __init__(self, store: FileStore, limits: VideoLimits, *, own_hosts: frozenset[str] = frozenset()) -> None:
        self.store = store
        self.limits = limits
        self.own_hosts = own_hosts

    # -- sources ---------------------------------------------------------------------------------
    def load_reference(self, ref: str, where: str, *, host: str | None = None) -> VideoClip:
        """A video given as a data: URL, a file id, or an http(s) URL (see the module's docstring)."""
        if not isinstance(ref, str) or not ref or ref.isspace():
            raise BadRequest(f"{where}: the video reference is empty", param=where)
        lead = _SPACES.match(ref).end()  # not strip(): a data: URL is never copied
        if ref[lead:lead + 5].lower() == "data:":
            return self._load_temporary(lambda out: self._decode_data_url(ref, lead, where, out), where)
        ref = ref.strip()
        if FILE_ID.match(ref):
            return self.load_file(self.store.get(ref).path, where)
        parts = urlsplit(ref)
        if parts.scheme in ("http", "https"):
            match = _CONTENT_PATH.match(parts.path)
            if match and (parts.netloc in self.own_hosts or (host is not None and parts.netloc == host)):
                return self.load_file(self.store.get(match["id"]).path, where)
            if not self.limits.allow_url_fetch:
                raise BadRequest(f"{where}: this server does not fetch URLs (start it with --allow-url-fetch); send "
                                 "the video as a data: URL or upload it with POST /v1/files and pass its id",
                                 param=where, code="url_fetch_disabled")
            return self._load_temporary(lambda out: self._fetch(ref, where, out), where)
        raise BadRequest(f"{where}: unsupported video reference {ref[:60]!r}; use a data: URL, a file id from "
                         "POST /v1/files, or an http(s) URL", param=where)

    def load_base64(self, data: str, where: str) -> VideoClip:
        """Raw base64 (OpenAI's ``file.file_data`` may be a bare base64 string)."""
        return self._load_temporary(lambda out: self._b64decode_into(data, where, out), where)

    def _decode_data_url(self, url: str, start: int, where: str, out: BinaryIO) -> None:
        match = _DATA_URL.match(url, start)
        if not match:
            raise BadRequest(f"{where}: malformed data: URL (expected data:video/mp4;base64,...)", param=where)
        if not match["b64"]:
            raise BadRequest(f"{where}: a data: URL must be base64-encoded (data:video/mp4;base64,...)", param=where)
        kind = (match["type"] or "").lower()
        if kind and not kind.startswith(("video/", "image/", "application/octet-stream")):
            raise BadRequest(f"{where}: a data: URL of type {kind} is not a video", param=where)
        self._b64decode_into(url, where, out, start=match.end())

    def _b64decode_into(self, data: str, where: str, out: BinaryIO, start: int = 0) -> None:
        """Decode ``data[start:]`` slice by slice into ``out``: no second copy of the text is ever made,
        and decoding stops as soon as the video passes the size limit."""
        limit = self.limits.max_bytes
        size, carry, padded = 0, "", False
        for at in range(start, len(data), _B64_SLICE):
            piece = carry + "".join(data[at:at + _B64_SLICE].split())
            carry = ""
            if at + _B64_SLICE < len(data):  # keep whole quads; the rest joins the next slice
                cut = len(piece) - len(piece) % 4
                piece, carry = piece[:cut], piece[cut:]
            if not piece:
                continue
            try:
                if padded:
                    raise ValueError("data after the padding")
                raw = binascii.a2b_base64(piece, strict_mode=True)
            except (binascii.Error, ValueError):
                raise BadRequest(f"{where}: the video's base64 data is not valid base64", param=where) from None
            padded = piece.endswith("=")
            size += len(raw)
            if size > limit:
                raise too_large(f"{where}: the video", (len(data) - start) * 3 // 4, limit)
            out.write(raw)
        if size == 0:
            raise BadRequest(f"{where}: the video is empty", param=where)

    def _fetch(self, url: str, where: str, out: BinaryIO) -> None:
        import httpx

        limit = self.limits.max_bytes
        try:
            with httpx.stream("GET", url, timeout=30.0, follow_redirects=True) as response:
                if response.url.scheme not in ("http", "https"):
                    raise BadRequest(f"{where}: {url} redirected to a non-http URL", param=where)
                if response.status_code != 200:
                    raise BadRequest(f"{where}: fetching {url} answered HTTP {response.status_code}", param=where)
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > limit:
                        raise too_large(f"{where}: the video at {url}", size, limit)
                    out.write(chunk)
        except httpx.HTTPError as e:
            raise BadRequest(f"{where}: could not fetch {url}: {type(e).__name__}", param=where) from None

    # -- checking and decoding -------------------------------------------------------------------
    def _load_temporary(self, fill: Callable[[BinaryIO], None], where: str) -> VideoClip:
        """Let ``fill`` write the video into a private scratch file, then check and decode it."""
        path = self.store.scratch_dir / f"upload-{secrets.token_hex(8)}"
        try:
            with open_private(path) as out:
                fill(out)
            return self.load_file(path, where)
        finally:
            path.unlink(missing_ok=True)

    def load_file(self, path: str | os.PathLike[str], where: str) -> VideoClip | AudioTrack:
        """Check size and duration, then decode the frames the model samples (and the sound track, when the
        server hears), or read a sound file. Errors name ``where``, not the path."""
        path = Path(path)
        try:
            size = path.stat().st_size
        except OSError:
            raise BadRequest(f"{where}: the video file is gone", param=where) from None
        if size > self.limits.max_bytes:
            raise too_large(f"{where}: the video", size, self.limits.max_bytes)
        try:
            info = probe(path)
            if info.duration > self.limits.max_seconds:
                raise BadRequest(f"{where}: the video is {info.duration:.1f} s long; this server accepts at most "
                                 f"{self.limits.max_seconds:g} s", param=where, code="video_too_long")
            clip = self.limits.sampling.load(path)
        except ServeError:
            raise
        except VideoError as e:
            if self.limits.hear and has_only_audio(path):
                return self._load_sound(path, where)
            raise BadRequest(f"{where}: not a readable video or image ({e.reason})", param=where,
                             code="invalid_video") from None
        if self.limits.hear and not info.is_image:
            clip.sound = self._load_sound(path, where, in_video=True)
        return clip

    def _load_sound(self, path: Path, where: str, *, in_video: bool = False) -> AudioTrack:
        """A sound file, or a video's sound track (an empty track when it has none)."""
        what = "the video's sound track" if in_video else "the audio"
        try:
            track = load_audio(path, missing_ok=in_video)
        except AudioError as e:
            raise BadRequest(f"{where}: {what} cannot be read ({e.reason})", param=where, code="invalid_audio") from None
        if track is None:
            return AudioTrack(np.zeros(0, np.float32), SAMPLE_RATE, path)
        if track.duration > self.limits.max_seconds:
            raise BadRequest(f"{where}: the audio is {track.duration:.1f} s long; this server accepts at most "
                             f"{self.limits.max_seconds:g} s", param=where, code="audio_too_long")
        return track
