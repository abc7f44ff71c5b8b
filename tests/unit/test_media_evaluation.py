"""The picture-request and narrated-clip tasks of the synthetic-split evaluation, with stub answer functions."""

import re

import pytest

from gpt4video.data.phrasing import normalize
from gpt4video.data.synthetic import build_split
from gpt4video.data.synthetic.narration import NO_SPEECH_REPLY
from gpt4video.evaluation.synthetic import evaluate_split, format_markdown


@pytest.fixture(scope="module")
def split(tmp_path_factory):
    return build_split(tmp_path_factory.mktemp("media"), "test", 12, progress=False)


def _oracle(question, videos, history):
    """Answers as the data would: copies the objects of a picture request, the subtitles' words, and so on."""
    if not videos:
        words = re.sub(r"^.*?(picture of|image of|draw me|draw|picture:|illustration of|sketch|snapshot of|paint) ",
                       "", question, flags=re.IGNORECASE)
        words = re.split(r"[,.?!]| please| for me| just| could", words)[0]
        return f"Sure. <image_prompt>{words}.</image_prompt>"
    said = re.match(r'Subtitles: "(.*?)"', question)
    if said and re.search(r"narrat|said|spoken|voice|words", question, re.IGNORECASE):
        return f'The narrator says "{said.group(1)}".'
    if not said and re.search(r"narrat|said|spoken|voice|words", question, re.IGNORECASE):
        return NO_SPEECH_REPLY
    return "no"


def test_pictures_and_narration_are_scored_in_and_out_of_template(split):
    results = evaluate_split(None, split, answer_fn=_oracle, max_qa=0, max_captions=0, max_generation=0,
                             progress=False)
    for task in ("images", "images_heldout"):
        r = results[task]
        assert r["positives"] > 0 and r["negatives"] > 0
        assert r["recall"] == 1.0 and r["video_instead"] == 0
        assert r["no_image"] == r["negatives"]  # the negatives come with a clip, and the stub draws only without one
        assert r["content_right"] <= r["prompt_asks_for_request"] <= r["positives"]
    for task in ("narration", "narration_heldout"):
        kinds = results[task]["by_kind"]
        assert set(kinds) <= {"speech", "silent", "picture"} and "speech" in kinds
        assert kinds["speech"]["accuracy"] == 1.0
    report = format_markdown(results)
    assert "## Picture requests" in report and "## Narrated clips" in report


def test_a_reply_without_the_words_or_with_a_video_is_wrong(split):
    def wrong(question, videos, history):
        return "Here you go. <video_prompt>A red circle moves left.</video_prompt>" if not videos else "I don't know."
    results = evaluate_split(None, split, answer_fn=wrong, max_qa=0, max_captions=0, max_generation=0,
                             phrasing="train", progress=False)
    images = results["images"]
    assert images["tp"] == 0 and images["video_instead"] == images["positives"] and images["no_image"] == images["negatives"]
    assert results["narration"]["by_kind"]["speech"]["accuracy"] == 0.0
    assert "skipped" in results["images_heldout"]


def test_every_spoken_word_in_order_counts():
    from gpt4video.evaluation.synthetic_media import _says_all_words
    assert _says_all_words('The narrator says "The dog opens the door."', "the dog opens the door")
    assert not _says_all_words("the dog opens", "the dog opens the door")
    assert normalize("Hello, World") == "hello world"
