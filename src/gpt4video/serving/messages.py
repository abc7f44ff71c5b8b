"""OpenAI chat messages → the turns of a conversation, with the video references each user turn carries.

Accepted content parts: ``text``; ``video_url`` (``{"url": ...}`` or ``{"file_id": ...}``); ``image_url``
(a still image is a one-frame video); ``file`` (``{"file_id": ...}`` or ``{"file_data": ...}``: a video,
an image or a sound file); ``input_audio`` (``{"data": base64, "format": "wav"}``, OpenAI's audio part).
Whether a file is a video or sound is read from its content, not from the part's type.
System and developer messages are accepted and left out: the paper's prompt template has no system
turn. Consecutive messages of the same role are joined into one turn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import BadRequest

IGNORED_ROLES = ("system", "developer")


@dataclass
class VideoRef:
    where: str  # e.g. "messages[0].content[1]", for error messages
    value: str  # a data: URL, a file id, an http(s) URL; or base64 when is_base64
    is_base64: bool = False


@dataclass
class ParsedTurn:
    role: str
    text: str
    videos: list[VideoRef] = field(default_factory=list)


def _video_part(part: dict[str, Any], key: str, where: str) -> VideoRef:
    value = part.get(key)
    if isinstance(value, str):  # a bare URL is accepted too
        return VideoRef(where, value)
    if not isinstance(value, dict):
        raise BadRequest(f"{where}: a {key} part needs {{\"{key}\": {{\"url\": \"...\"}}}}", param=where)
    for name in ("url", "file_id"):
        if isinstance(value.get(name), str):
            return VideoRef(where, value[name])
    raise BadRequest(f"{where}.{key}: expected a \"url\" (data: URL, file id or http(s) URL) or a \"file_id\"",
                     param=where)


def _file_part(part: dict[str, Any], where: str) -> VideoRef:
    value = part.get("file")
    if isinstance(value, dict):
        if isinstance(value.get("file_id"), str):
            return VideoRef(where, value["file_id"])
        data = value.get("file_data")
        if isinstance(data, str):
            return VideoRef(where, data, is_base64=not data.startswith("data:"))
    raise BadRequest(f"{where}: a file part needs \"file\" with a \"file_id\" or \"file_data\"", param=where)


def _audio_part(part: dict[str, Any], where: str) -> VideoRef:
    value = part.get("input_audio")
    if isinstance(value, dict) and isinstance(value.get("data"), str):
        return VideoRef(where, value["data"], is_base64=not value["data"].startswith("data:"))
    raise BadRequest(f"{where}: an input_audio part needs {{\"input_audio\": {{\"data\": base64, \"format\": \"wav\"}}}}",
                     param=where)


def _parse_content(content: Any, where: str) -> tuple[str, list[VideoRef]]:
    if content is None:
        return "", []
    if isinstance(content, str):
        return content, []
    if not isinstance(content, list):
        raise BadRequest(f"{where}: content must be a string or a list of parts", param=where)
    texts: list[str] = []
    videos: list[VideoRef] = []
    for j, part in enumerate(content):
        at = f"{where}[{j}]"
        if not isinstance(part, dict):
            raise BadRequest(f"{at}: each content part must be an object with a \"type\"", param=at)
        kind = part.get("type")
        if kind == "text":
            if not isinstance(part.get("text"), str):
                raise BadRequest(f"{at}: a text part needs a \"text\" string", param=at)
            texts.append(part["text"])
        elif kind in ("video_url", "image_url"):
            videos.append(_video_part(part, kind, at))
        elif kind == "file":
            videos.append(_file_part(part, at))
        elif kind == "input_audio":
            videos.append(_audio_part(part, at))
        else:
            raise BadRequest(f"{at}: unsupported content part type {kind!r}; this model takes text, video_url, "
                             "image_url, input_audio and file parts", param=at)
    return "\n".join(t for t in texts if t), videos


def parse_messages(messages: Sequence[Any], *, max_videos: int) -> list[ParsedTurn]:
    """Validate ``messages`` and join them into alternating turns ending with a user question."""
    if not isinstance(messages, (list, tuple)) or not messages:
        raise BadRequest("messages must be a non-empty list", param="messages")
    turns: list[ParsedTurn] = []
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{where}: each message must be an object with a role and content", param=where)
        role = message.get("role")
        if role in IGNORED_ROLES:
            continue
        if role not in ("user", "assistant"):
            raise BadRequest(f"{where}: unsupported role {role!r}; use user, assistant or system",
                             param=f"{where}.role")
        text, videos = _parse_content(message.get("content"), f"{where}.content")
        if videos and role != "user":
            raise BadRequest(f"{where}: only user messages can carry videos", param=f"{where}.content")
        if turns and turns[-1].role == role:
            last = turns[-1]
            last.text = "\n".join(t for t in (last.text, text) if t)
            last.videos.extend(videos)
        else:
            turns.append(ParsedTurn(role, text, videos))
    if not turns or turns[-1].role != "user":
        raise BadRequest("the last message must be a user message (the question to answer)", param="messages")
    if not turns[-1].text.strip():
        raise BadRequest("the last user message has no text: ask a question about the video(s)", param="messages")
    count = sum(len(t.videos) for t in turns)
    if count > max_videos:
        raise BadRequest(f"{count} videos in one request; this server accepts at most {max_videos}", param="messages")
    return turns
