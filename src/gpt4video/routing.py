"""Reply text → text for the user + prompts for the text-to-video and text-to-image models (paper §3.4).

The model asks for a video or a picture by writing the prompt inside its reply, as plain text::

    Sure! <video_prompt>A red circle moves to the right on a gray background.</video_prompt>
    Here it is: <image_prompt>A green square on a white background.</image_prompt>

:func:`split_reply` splits a finished reply; :class:`StreamRouter` does the same while the reply is
being generated, piece by piece. Both give exactly the same result, whatever the chunking: in fact
:func:`split_reply` is the router fed the whole reply at once.

Rules (also for malformed replies, which a small model writes now and then):

- Tags are ``<video_prompt>``, ``</video_prompt>``, ``<image_prompt>`` and ``</image_prompt>``, matched
  case-insensitively (``<Video_Prompt>`` counts); no other spelling (spaces inside the brackets,
  attributes) is a tag. Both kinds follow the same rules; the opening tag says which kind a prompt is.
- A prompt is the content between an opening tag and the next closing tag (of either kind: in
  ``<image_prompt>a</video_prompt>`` the mismatched tag still ends the image prompt "a"), with runs of
  whitespace collapsed to one space and the ends stripped. Empty prompts are dropped.
- An opening tag that is never closed (the model ran out of tokens or forgot to close it) makes
  everything after it, to the end of the reply, its prompt. It is never shown as text.
- A closing tag without an opening tag (a stray ``</video_prompt>``) is dropped.
- An opening tag inside a prompt (``<video_prompt>a <video_prompt>b</video_prompt>``, or an
  ``<image_prompt>`` inside a video prompt) is dropped and its content belongs to the outer prompt ("a b"); the first closing tag ends the prompt and a
  later closing tag is stray. This keeps the hidden part of a reply as short as possible.
- A reply that ends in the middle of a tag (``… <video_pro``) loses that fragment: it is a
  truncated tag, not text. A lone ``<`` at the very end is kept as text.
- Text: the reply outside the prompts, with whitespace tidied: no leading or trailing whitespace,
  and where a tag or prompt was removed the whitespace around it becomes one separator — a blank
  line if there was one (``\\n\\n``), else a newline if there was one, else one space (none before
  ``. , ; : ! ? ) ] }``). Whitespace elsewhere is left as the model wrote it.

While streaming, the router holds back only (a) a suffix that could be the start of a tag and
(b) a trailing run of whitespace (invisible anyway, and it may turn into a separator); every other
character of text is emitted as soon as it is fed. Text inside a prompt is never emitted as text.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

__all__ = [
    "CLOSE_TAG",
    "IMAGE_CLOSE_TAG",
    "IMAGE_OPEN_TAG",
    "OPEN_TAG",
    "Event",
    "ImagePrompt",
    "RoutedReply",
    "StreamRouter",
    "TextDelta",
    "VideoPrompt",
    "route_stream",
    "split_reply",
]

OPEN_TAG = "<video_prompt>"
CLOSE_TAG = "</video_prompt>"
IMAGE_OPEN_TAG = "<image_prompt>"
IMAGE_CLOSE_TAG = "</image_prompt>"
_TAGS = (OPEN_TAG, CLOSE_TAG, IMAGE_OPEN_TAG, IMAGE_CLOSE_TAG)
_LONGEST_TAG = max(len(t) for t in _TAGS)
_NO_SPACE_BEFORE = frozenset(".,;:!?)]}")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def _lower(text: str) -> str:
    # ASCII only: str.lower can change the length of some non-ASCII strings, which would break
    # the index arithmetic below; the tags are ASCII anyway.
    return text.translate(_ASCII_LOWER)


@dataclass(frozen=True)
class TextDelta:
    """A piece of reply text to show the user."""

    text: str


@dataclass(frozen=True)
class VideoPrompt:
    """A complete prompt for the text-to-video model."""

    prompt: str


@dataclass(frozen=True)
class ImagePrompt:
    """A complete prompt for the text-to-image model."""

    prompt: str


Event = TextDelta | VideoPrompt | ImagePrompt
# The opening tags and the prompt each one starts.
_PROMPT_KINDS: dict[str, type[VideoPrompt] | type[ImagePrompt]] = {OPEN_TAG: VideoPrompt, IMAGE_OPEN_TAG: ImagePrompt}


@dataclass
class RoutedReply:
    """A reply split into the ``text`` to show, the video ``prompts`` and the ``image_prompts`` (each in order)."""

    text: str
    prompts: list[str] = field(default_factory=list)
    image_prompts: list[str] = field(default_factory=list)

    @property
    def wants_video(self) -> bool:
        return bool(self.prompts)

    @property
    def wants_image(self) -> bool:
        return bool(self.image_prompts)


class StreamRouter:
    """Routes a reply that arrives in pieces: ``feed(piece)`` and finally ``close()`` return events.

    Example::

        router = StreamRouter()
        for piece in model.stream(...):
            for event in router.feed(piece):
                ...  # TextDelta: print it; VideoPrompt / ImagePrompt: generate a video / an image
        for event in router.close():
            ...

    The concatenated :class:`TextDelta` texts and the :class:`VideoPrompt` and :class:`ImagePrompt`
    prompts are exactly ``split_reply(whole_reply)``, however the reply was cut into pieces (see the module docstring
    for the rules). A router handles one reply; it cannot be fed after ``close()``.
    """

    def __init__(self) -> None:
        self._buf = ""  # input not processed yet: at most a possible partial tag
        self._inside: type[VideoPrompt] | type[ImagePrompt] | None = None  # the kind of prompt being read
        self._prompt: list[str] = []  # content of the current prompt
        self._pending_ws = ""  # whitespace of the text held back (trailing, so far)
        self._boundary = False  # a tag or prompt was removed since the last visible character
        self._started = False  # some visible text has been emitted
        self._closed = False

    # -- public -----------------------------------------------------------------------------------

    def feed(self, piece: str) -> list[Event]:
        """Process the next piece of the reply; returns the events it completes (possibly none)."""
        if self._closed:
            raise RuntimeError("StreamRouter.feed() after close(); use a new router for a new reply")
        if not isinstance(piece, str):
            raise TypeError(f"StreamRouter.feed() takes a str, got {type(piece).__name__}")
        self._buf += piece
        return self._drain(final=False)

    def close(self) -> list[Event]:
        """The reply is finished: flush what was held back, and emit an unclosed prompt (if non-empty)."""
        if self._closed:
            return []
        events = self._drain(final=True)
        self._closed = True
        if self._inside:
            self._finish_prompt(events)
        # Held-back trailing whitespace is dropped (the text is stripped).
        self._pending_ws = ""
        return events

    @property
    def closed(self) -> bool:
        return self._closed

    # -- internals --------------------------------------------------------------------------------

    def _drain(self, final: bool) -> list[Event]:
        events: list[Event] = []
        buf = self._buf
        start = 0
        while True:
            lt = buf.find("<", start)
            if lt < 0:
                self._content(buf[start:], events)
                buf = ""
                break
            self._content(buf[start:lt], events)
            rest = _lower(buf[lt : lt + _LONGEST_TAG])
            tag = next((t for t in _TAGS if rest.startswith(t)), None)
            if tag is not None:
                self._tag(tag, events)
                start = lt + len(tag)
                continue
            tail = buf[lt:]
            if len(tail) < _LONGEST_TAG and any(t.startswith(_lower(tail)) for t in _TAGS):
                # Could be the start of a tag: wait for more input (or, at the end, drop a truncated tag).
                if final:
                    if tail == "<" and not self._inside:
                        self._content(tail, events)
                    buf = ""
                else:
                    buf = tail
                break
            self._content("<", events)  # an ordinary "<"
            start = lt + 1
        self._buf = buf
        return events

    def _tag(self, tag: str, events: list[Event]) -> None:
        if tag in _PROMPT_KINDS:
            if self._inside:  # nested: its content belongs to the outer prompt
                self._prompt.append(" ")
            else:
                self._inside = _PROMPT_KINDS[tag]
                self._prompt = []
                self._boundary = True
        else:  # a closing tag of either kind ends the prompt being read
            if self._inside:
                self._finish_prompt(events)
            self._boundary = True  # a stray closing tag is dropped, but still separates words

    def _finish_prompt(self, events: list[Event]) -> None:
        kind, self._inside = self._inside, None
        prompt = " ".join("".join(self._prompt).split())
        self._prompt = []
        if prompt and kind is not None:
            events.append(kind(prompt))

    def _content(self, text: str, events: list[Event]) -> None:
        if not text:
            return
        if self._inside:
            self._prompt.append(text)
            return
        out: list[str] = []
        i, n = 0, len(text)
        while i < n:
            j = i
            if text[i].isspace():
                while j < n and text[j].isspace():
                    j += 1
                self._pending_ws += text[i:j]
            else:
                while j < n and not text[j].isspace():
                    j += 1
                out.append(self._separator(text[i]))
                out.append(text[i:j])
                self._pending_ws = ""
                self._boundary = False
                self._started = True
            i = j
        emitted = "".join(out)
        if emitted:
            if events and isinstance(events[-1], TextDelta):
                events[-1] = TextDelta(events[-1].text + emitted)
            else:
                events.append(TextDelta(emitted))

    def _separator(self, next_char: str) -> str:
        """What goes before the next visible character, given the whitespace held back."""
        if not self._started:
            return ""  # leading whitespace is stripped
        if not self._boundary:
            return self._pending_ws
        newlines = self._pending_ws.count("\n")
        if newlines >= 2:
            return "\n\n"
        if newlines == 1:
            return "\n"
        return "" if next_char in _NO_SPACE_BEFORE else " "


def route_stream(pieces: Iterable[str]) -> Iterator[Event]:
    """Route a whole stream of reply pieces: yields the events of a :class:`StreamRouter`."""
    router = StreamRouter()
    for piece in pieces:
        yield from router.feed(piece)
    yield from router.close()


def split_reply(reply: str) -> RoutedReply:
    """Split a finished reply into the text to show, the video prompts and the image prompts (rules: module
    docstring).

    >>> split_reply("Here you go! <video_prompt>A red circle grows.</video_prompt>")
    RoutedReply(text='Here you go!', prompts=['A red circle grows.'], image_prompts=[])
    """
    if not isinstance(reply, str):
        raise TypeError(f"split_reply() takes a str, got {type(reply).__name__}")
    routed = RoutedReply("")
    text: list[str] = []
    for event in route_stream([reply]):
        if isinstance(event, TextDelta):
            text.append(event.text)
        elif isinstance(event, ImagePrompt):
            routed.image_prompts.append(event.prompt)
        else:
            routed.prompts.append(event.prompt)
    routed.text = "".join(text)
    return routed
