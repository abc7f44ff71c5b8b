"""The server's file storage: uploaded videos and generated videos and images, each under a random id, each expiring.

Layout under the storage root::

    files/<id>/meta.json     what GET /v1/files/<id> answers (name, size, purpose, times)
    files/<id>/content.<ext> the bytes
    scratch/                 where generators write before a file is stored; temporary uploads

A file is only ever looked up by an id that matches ``file-`` + 24 hex digits, so no request can name
a path: nothing outside ``files/`` is ever read for a client. Every file the store writes is 0600 and
every folder it makes 0700, whatever the umask.
"""

from __future__ import annotations

import json
import mimetypes
import os
import re
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO

from ..config import atomic_write_text
from .errors import NotFound, TooLarge

FILE_ID = re.compile(r"^file-[0-9a-f]{24}$")
_CHUNK = 1 << 20


@dataclass
class StoredFile:
    id: str
    filename: str
    bytes: int
    created_at: int
    expires_at: int
    purpose: str
    content_type: str
    path: str

    def to_openai(self) -> dict:
        """The file object of OpenAI's Files API."""
        return {"id": self.id, "object": "file", "bytes": self.bytes, "created_at": self.created_at,
                "expires_at": self.expires_at, "filename": self.filename, "purpose": self.purpose,
                "status": "processed", "status_details": None}


def safe_filename(name: str | None, default: str = "file") -> str:
    """The last component of a client's file name, without control characters; never a path."""
    base = re.split(r"[\\/]", name or "")[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip().lstrip(".")
    return base[:200] or default


def _suffix(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


def private_dir(path: Path, *, exist_ok: bool = False) -> Path:
    """Make the folder ``path`` (its parents as needed), readable by this user only."""
    path.mkdir(mode=0o700, parents=True, exist_ok=exist_ok)
    os.chmod(path, 0o700)  # mkdir's mode is masked by the umask
    return path


def open_private(path: Path) -> BinaryIO:
    """A new file at ``path``, open for writing, readable by this user only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.fchmod(fd, 0o600)  # os.open's mode is masked by the umask
    return os.fdopen(fd, "wb")


def too_large(what: str, size: int, limit: int) -> TooLarge:
    return TooLarge(f"{what} is larger than this server accepts: {size / 1e6:.1f} MB > {limit / 1e6:.1f} MB "
                    "(the server's --max-upload-mb)")


class FileStore:
    """Thread-safe store of files with ids and expiry times (``ttl`` seconds after they are added)."""

    def __init__(self, root: str | os.PathLike[str], ttl: float, clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.ttl = float(ttl)
        self.clock = clock
        self._lock = threading.Lock()
        self._files: dict[str, StoredFile] = {}
        if not self.root.exists():
            private_dir(self.root)
        private_dir(self.root / "files", exist_ok=True)
        private_dir(self.scratch_dir, exist_ok=True)
        self._load_existing()

    @property
    def scratch_dir(self) -> Path:
        return self.root / "scratch"

    def _load_existing(self) -> None:
        """Files kept from an earlier run of a server with the same --storage-dir (expired ones go)."""
        for meta in (self.root / "files").glob("*/meta.json"):
            try:
                record = StoredFile(**json.loads(meta.read_text(encoding="utf-8")))
            except (OSError, ValueError, TypeError):
                shutil.rmtree(meta.parent, ignore_errors=True)
                continue
            if FILE_ID.match(record.id) and meta.parent.name == record.id:
                self._files[record.id] = record
        self.sweep()

    # -- adding ----------------------------------------------------------------------------------
    def _new_record(self, filename: str, purpose: str, content_type: str | None) -> tuple[StoredFile, Path]:
        file_id = "file-" + secrets.token_hex(12)
        folder = private_dir(self.root / "files" / file_id)
        name = safe_filename(filename)
        now = self.clock()
        path = folder / f"content{_suffix(name)}"
        ctype = content_type or mimetypes.guess_type(name)[0] or "application/octet-stream"
        record = StoredFile(file_id, name, 0, int(now), int(now + self.ttl), purpose, ctype, str(path))
        return record, path

    def _commit(self, record: StoredFile, path: Path) -> StoredFile:
        os.chmod(path, 0o600)  # a file a writer or a move made with other modes
        record.bytes = path.stat().st_size
        meta = path.parent / "meta.json"
        atomic_write_text(meta, json.dumps(asdict(record)))
        os.chmod(meta, 0o600)
        with self._lock:
            self._files[record.id] = record
        return record

    def add_stream(self, source: BinaryIO, filename: str, purpose: str, *, max_bytes: int,
                   content_type: str | None = None) -> StoredFile:
        """Copy a stream in, stopping with 413 as soon as it passes ``max_bytes``."""
        record, path = self._new_record(filename, purpose, content_type)
        size = 0
        try:
            with open_private(path) as out:
                while chunk := source.read(_CHUNK):
                    size += len(chunk)
                    if size > max_bytes:
                        raise too_large(f"{record.filename!r}", size, max_bytes)
                    out.write(chunk)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return self._commit(record, path)

    def add_video(self, frames, fps: float, filename: str, purpose: str = "generated") -> StoredFile:  # noqa: ANN001
        """Encode frames (T, H, W, 3) uint8 straight into the store as a video named ``filename`` (.mp4)."""
        from ..video import write_video

        return self._add_written(filename, purpose, lambda path: write_video(path, frames, fps=fps))

    def add_image(self, image, filename: str, purpose: str = "generated") -> StoredFile:  # noqa: ANN001
        """Write an image (H, W, 3) uint8 straight into the store as a PNG named ``filename`` (.png)."""
        from ..video import write_image

        return self._add_written(filename, purpose, lambda path: write_image(path, image))

    def _add_written(self, filename: str, purpose: str, write: Callable[[Path], object]) -> StoredFile:
        """A new file named ``filename`` whose content ``write(path)`` makes (nothing is kept if it fails)."""
        record, path = self._new_record(filename, purpose, None)
        try:
            write(path)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return self._commit(record, path)

    def add_path(self, source: str | os.PathLike[str], purpose: str, *, filename: str | None = None) -> StoredFile:
        """Move a file the server made (a generated video) into the store."""
        source = Path(source)
        record, path = self._new_record(filename or source.name, purpose, None)
        try:
            shutil.move(str(source), path)
        except BaseException:
            shutil.rmtree(path.parent, ignore_errors=True)
            raise
        return self._commit(record, path)

    # -- reading ---------------------------------------------------------------------------------
    def get(self, file_id: str) -> StoredFile:
        """The file with this id; 404 for a malformed, unknown, deleted or expired id."""
        if not isinstance(file_id, str) or not FILE_ID.match(file_id):
            raise NotFound(f"no such file: {str(file_id)[:80]!r} (file ids look like file-0123…)", param="file_id",
                           code="file_not_found")
        with self._lock:
            record = self._files.get(file_id)
        if record is not None and record.expires_at <= self.clock():
            self.delete(file_id)
            record = None
        if record is None or not Path(record.path).is_file():
            raise NotFound(f"no such file: {file_id} (unknown, deleted or expired)", param="file_id",
                           code="file_not_found")
        return record

    def list(self, purpose: str | None = None) -> list[StoredFile]:
        self.sweep()
        with self._lock:
            records = list(self._files.values())
        return sorted((r for r in records if purpose is None or r.purpose == purpose), key=lambda r: r.created_at)

    # -- removing --------------------------------------------------------------------------------
    def delete(self, file_id: str) -> bool:
        with self._lock:
            record = self._files.pop(file_id, None)
        if record is None:
            return False
        shutil.rmtree(Path(record.path).parent, ignore_errors=True)
        return True

    def sweep(self) -> list[str]:
        """Delete expired files (and scratch files older than the ttl); returns the ids removed."""
        now = self.clock()
        with self._lock:
            expired = [r.id for r in self._files.values() if r.expires_at <= now]
        for file_id in expired:
            self.delete(file_id)
        for stale in _older_than(self.scratch_dir.iterdir(), now - self.ttl):
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        return expired


def _older_than(paths: Iterable[Path], cutoff: float) -> list[Path]:
    out = []
    for p in paths:
        try:
            if p.stat().st_mtime < cutoff:
                out.append(p)
        except OSError:
            continue
    return out
