"""Reply routing: split_reply on well-formed and malformed replies, and the streaming router."""

from __future__ import annotations

import random

import pytest

from gpt4video.routing import (
    CLOSE_TAG,
    IMAGE_CLOSE_TAG,
    IMAGE_OPEN_TAG,
    OPEN_TAG,
    ImagePrompt,
    RoutedReply,
    StreamRouter,
    TextDelta,
    VideoPrompt,
    route_stream,
    split_reply,
)


@pytest.mark.parametrize(
    ("reply", "text", "prompts"),
    [
        ("Just text.", "Just text.", []),
        ("", "", []),
        (
            "Sure! <video_prompt>A red circle moves to the right on a gray background.</video_prompt>",
            "Sure!",
            ["A red circle moves to the right on a gray background."],
        ),
        # Text on both sides, two prompts, prompt whitespace collapsed.
        (
            "One: <video_prompt> a  red\ncircle </video_prompt> and two: <video_prompt>a blue square</video_prompt> done",
            "One: and two: done",
            ["a red circle", "a blue square"],
        ),
        # Case-insensitive tags.
        ("A <VIDEO_PROMPT>x</Video_Prompt> B", "A B", ["x"]),
        # Separators where a prompt was removed: blank line, newline, space, none before punctuation.
        ("Here.\n\n<video_prompt>p</video_prompt>\n\nEnjoy!", "Here.\n\nEnjoy!", ["p"]),
        ("Here.\n<video_prompt>p</video_prompt>Enjoy!", "Here.\nEnjoy!", ["p"]),
        ("foo<video_prompt>p</video_prompt>bar", "foo bar", ["p"]),
        ("Here you go: <video_prompt>p</video_prompt>.", "Here you go:.", ["p"]),
        # Whitespace away from tags is kept as written; the ends are stripped.
        ("  a   b\n\n\n c  ", "a   b\n\n\n c", []),
        # Malformed: unclosed prompt at the end counts (the model ran out of tokens).
        ("Making it now. <video_prompt>A green triangle shrinks", "Making it now.", ["A green triangle shrinks"]),
        # Unclosed and empty: dropped.
        ("Making it now. <video_prompt>   ", "Making it now.", []),
        # Empty prompt dropped.
        ("a <video_prompt> </video_prompt> b", "a b", []),
        # Stray closing tag dropped.
        ("a </video_prompt> b", "a b", []),
        ("a</video_prompt>b", "a b", []),
        # Nested opening tag: part of the outer prompt; the first close ends it; the later close is stray.
        (
            "<video_prompt>a red circle <video_prompt>grows</video_prompt> then</video_prompt> ok",
            "then ok",
            ["a red circle grows"],
        ),
        # A truncated tag at the end is dropped; a lone "<" is kept; other "<" are text.
        ("Here <video_pro", "Here", []),
        ("x < y and 3 <", "x < y and 3 <", []),
        ("a <b>bold</b> <video_prompt>p</video_prompt>", "a <b>bold</b>", ["p"]),
        ("<video_promptx> is not a tag", "<video_promptx> is not a tag", []),
        # Inside a prompt, a partial closing tag at the end is not part of the prompt.
        ("<video_prompt>a square</video_pr", "", ["a square"]),
        # "<" inside a prompt is content.
        ("<video_prompt>a < b</video_prompt>", "", ["a < b"]),
    ],
)
def test_split_reply(reply: str, text: str, prompts: list[str]) -> None:
    assert split_reply(reply) == RoutedReply(text, prompts)


@pytest.mark.parametrize(
    ("reply", "text", "videos", "images"),
    [
        ("Here it is: <image_prompt>A green square on a white background.</image_prompt>", "Here it is:", [],
         ["A green square on a white background."]),
        # Both kinds in one reply, each in its own list and order; tags are case-insensitive.
        ("A <video_prompt>v1</video_prompt> B <Image_Prompt>i1</IMAGE_PROMPT> C <image_prompt>i2</image_prompt>",
         "A B C", ["v1"], ["i1", "i2"]),
        # Unclosed image prompt at the end; empty image prompt dropped; stray image closing tag dropped.
        ("Drawing. <image_prompt>a red circle on black", "Drawing.", [], ["a red circle on black"]),
        ("a <image_prompt>  </image_prompt> b </image_prompt> c", "a b c", [], []),
        # A mismatched closing tag still ends the prompt; the opening tag gives its kind.
        ("<image_prompt>a blue triangle</video_prompt> done", "done", [], ["a blue triangle"]),
        ("<video_prompt>a blue triangle grows</image_prompt> done", "done", ["a blue triangle grows"], []),
        # An opening tag of the other kind inside a prompt belongs to the outer prompt.
        ("<video_prompt>a red <image_prompt>circle</image_prompt> x</video_prompt>", "x", ["a red circle"], []),
        # A truncated image tag at the end is dropped; a near-miss is text.
        ("Here <image_pro", "Here", [], []),
        ("<image_promptx> is not a tag", "<image_promptx> is not a tag", [], []),
    ],
)
def test_split_reply_image_prompts(reply: str, text: str, videos: list[str], images: list[str]) -> None:
    routed = split_reply(reply)
    assert routed == RoutedReply(text, videos, images)
    assert routed.wants_image == bool(images) and routed.wants_video == bool(videos)


def test_split_reply_has_no_tags_left() -> None:
    routed = split_reply("x <video_prompt>a</video_prompt> </video_prompt> y <video_prompt>b")
    assert "video_prompt" not in routed.text
    assert routed.prompts == ["a", "b"]
    assert routed.wants_video


def test_split_reply_rejects_non_text() -> None:
    with pytest.raises(TypeError):
        split_reply(None)  # type: ignore[arg-type]


def _stream(reply: str, pieces: list[str]) -> tuple[RoutedReply, list[str]]:
    """Feed ``pieces``; returns the routed reply and the text shown after each feed."""
    router = StreamRouter()
    shown: list[str] = []
    text: list[str] = []
    prompts: list[str] = []
    images: list[str] = []

    def take(events: list) -> None:
        for event in events:
            if isinstance(event, TextDelta):
                assert event.text
                text.append(event.text)
            elif isinstance(event, ImagePrompt):
                images.append(event.prompt)
            else:
                assert isinstance(event, VideoPrompt)
                prompts.append(event.prompt)

    for piece in pieces:
        take(router.feed(piece))
        shown.append("".join(text))
    take(router.close())
    assert "".join(pieces) == reply
    return RoutedReply("".join(text), prompts, images), shown


def _random_chunks(reply: str, rng: random.Random) -> list[str]:
    pieces, i = [], 0
    while i < len(reply):
        size = rng.choice([1, 1, 2, 3, 5, 8, 13, 40])
        pieces.append(reply[i : i + size])
        i += size
    return pieces


REPLIES = [
    "Sure! <video_prompt>A red circle moves to the right on a gray background.</video_prompt>",
    "Two videos:\n\n<video_prompt>a blue square grows</video_prompt>\n\nand <VIDEO_PROMPT>a white triangle</video_prompt>.",
    "a </video_prompt> b <video_prompt>x <video_prompt>y</video_prompt> z</video_prompt> tail",
    "unclosed at the end <video_prompt>A purple circle shrinks on a black background",
    "ends inside a tag <video_prom",
    "ends with a lone <",
    "less-than signs: 1 < 2, <b>, <video, </vid, <video_promptx> and <<video_prompt>>p</video_prompt>>",
    "  spaces   and\ttabs\n\n\n<video_prompt>\n  p  \n</video_prompt>   \n  after  ",
    "",
    "<video_prompt></video_prompt>",
    "no tags at all, just a plain answer: red.",
    "A picture: <image_prompt>A green square on a white background.</image_prompt> and a video: "
    "<video_prompt>a red circle moves left</video_prompt>!",
    "mismatched <image_prompt>a blue circle</video_prompt> then <video_prompt>x <image_prompt>y</image_prompt> z",
    "ends inside an image tag <image_prom",
    "unclosed image <IMAGE_PROMPT>a white triangle on a black background",
]


@pytest.mark.parametrize("reply", REPLIES)
def test_stream_matches_split_reply_under_any_chunking(reply: str) -> None:
    expected = split_reply(reply)
    rng = random.Random(1234)
    chunkings = [[reply], list(reply)] + [_random_chunks(reply, rng) for _ in range(30)]
    for pieces in chunkings:
        routed, shown = _stream(reply, pieces)
        assert routed == expected, pieces
        # What is on screen only ever grows, and is always a prefix of the final text.
        for before, after in zip(shown, shown[1:]):
            assert after.startswith(before)
        for partial in shown:
            assert expected.text.startswith(partial)


def test_held_back_text_never_shows_a_half_tag() -> None:
    reply = "Here it is <video_prompt>a red square moves up</video_prompt> enjoy"
    for pieces in (list(reply), _random_chunks(reply, random.Random(7))):
        _, shown = _stream(reply, pieces)
        for partial in shown:
            assert "<" not in partial
            assert "video" not in partial
            assert "red square" not in partial  # prompt text is never shown


def test_text_is_emitted_as_soon_as_it_cannot_start_a_tag() -> None:
    router = StreamRouter()
    assert router.feed("Hello wor") == [TextDelta("Hello wor")]
    assert router.feed("ld <vid") == [TextDelta("ld")]  # the space and "<vid" wait
    assert router.feed("eo games>") == [TextDelta(" <video games>")]  # not a tag after all
    assert router.feed(" <video_prompt>a blue") == []
    assert router.feed(" circle</video_prompt>") == [VideoPrompt("a blue circle")]
    assert router.feed("!") == [TextDelta("!")]
    assert router.close() == []


def test_unclosed_prompt_is_emitted_at_close() -> None:
    router = StreamRouter()
    assert router.feed("ok <video_prompt>a green") == [TextDelta("ok")]
    assert router.feed(" triangle") == []
    assert router.close() == [VideoPrompt("a green triangle")]
    assert router.closed
    assert router.close() == []
    with pytest.raises(RuntimeError):
        router.feed("more")


def test_held_back_text_never_shows_an_image_prompt() -> None:
    reply = "One picture <image_prompt>a green square on a white background</image_prompt> coming up"
    for pieces in (list(reply), _random_chunks(reply, random.Random(3))):
        routed, shown = _stream(reply, pieces)
        assert routed.image_prompts == ["a green square on a white background"]
        for partial in shown:
            assert "<" not in partial and "image" not in partial and "green" not in partial


def test_route_stream_and_tag_constants() -> None:
    events = list(route_stream(["a ", OPEN_TAG, "p", CLOSE_TAG, " b"]))
    assert events == [TextDelta("a"), VideoPrompt("p"), TextDelta(" b")]
    events = list(route_stream(["a ", IMAGE_OPEN_TAG, "p", IMAGE_CLOSE_TAG, " b"]))
    assert events == [TextDelta("a"), ImagePrompt("p"), TextDelta(" b")]
