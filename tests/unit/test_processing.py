import pytest
from transformers import AutoTokenizer

from gpt4video.errors import InputError
from gpt4video.processing import IGNORE_INDEX, VIDEO_TOKEN, GPT4VideoProcessor, Turn


@pytest.fixture
def processor(tiny_tokenizer_dir):
    return GPT4VideoProcessor(AutoTokenizer.from_pretrained(tiny_tokenizer_dir), num_video_tokens=5)


def test_single_video_uses_paper_template(processor):
    turns = [Turn("user", "What color is the square?", videos=[0])]
    enc = processor.encode(turns)
    assert int((enc.input_ids == processor.video_token_id).sum()) == 5
    text = processor.tokenizer.decode(enc.input_ids.tolist())
    assert text == (
        "###Human: <video>" + VIDEO_TOKEN * 5 + "</video>\n###Human: What color is the square?\n###AI: "
    )
    assert (enc.labels == IGNORE_INDEX).all()  # nothing to learn in a prompt


def test_several_videos_interleaved_with_turns(processor):
    turns = [
        Turn("user", "Describe the first.", videos=[0]),
        Turn("assistant", "A red circle."),
        Turn("user", "And compare with these.", videos=[1, 2]),
    ]
    enc = processor.encode(turns, num_videos=3)
    text = processor.tokenizer.decode(enc.input_ids.tolist())
    assert text.index("<video1>") < text.index("###AI: A red circle.") < text.index("<video2>") < text.index("<video3>")
    assert int((enc.input_ids == processor.video_token_id).sum()) == 15


def test_labels_cover_only_assistant_replies_and_their_end(processor):
    turns = [Turn("user", "Hi", videos=[0]), Turn("assistant", "red"), Turn("user", "More?"), Turn("assistant", "blue")]
    enc = processor.encode(turns, add_generation_prompt=False)
    learned = [t for t, l in zip(enc.input_ids.tolist(), enc.labels.tolist()) if l != IGNORE_INDEX]
    eos = processor.eos_token_id
    assert learned.count(eos) == 2
    assert processor.tokenizer.decode([t for t in learned if t != eos]) == "redblue"


def test_video_count_mismatch_is_an_error(processor):
    with pytest.raises(InputError, match="reference videos"):
        processor.encode([Turn("user", "hi", videos=[0])], num_videos=2)
    with pytest.raises(InputError):
        Turn("assistant", "x", videos=[0])
    with pytest.raises(InputError):
        processor.encode([])


def test_collate_pads_and_masks(processor):
    a = processor.encode([Turn("user", "Hi"), Turn("assistant", "red")], add_generation_prompt=False)
    b = processor.encode([Turn("user", "How many objects are there?", videos=[0]), Turn("assistant", "2")],
                         add_generation_prompt=False)
    batch = processor.collate([a, b])
    assert batch["input_ids"].shape == batch["labels"].shape == batch["attention_mask"].shape
    assert batch["attention_mask"][0].sum() == len(a.input_ids)
    assert (batch["labels"][0, len(a.input_ids):] == IGNORE_INDEX).all()
    left = processor.collate([a, b], padding_side="left")
    assert left["attention_mask"][0, -1] == 1 and left["attention_mask"][0, 0] == 0


def test_each_text_is_tokenized_once(processor):
    """A server encodes a prompt three times (length check, the assistant's check, the answer): the tokenizer
    sees each text once, and the ids stay the same."""
    calls = []
    tokenize = processor.tokenizer.__class__.__call__

    class Counting(processor.tokenizer.__class__):
        def __call__(self, text, *args, **kwargs):
            calls.append(text)
            return tokenize(self, text, *args, **kwargs)

    processor.tokenizer.__class__ = Counting
    turns = [Turn("user", "What color is the square?", videos=[0])]
    first = processor.encode(turns)
    assert calls
    seen = len(calls)
    for _ in range(2):
        assert processor.encode(turns).input_ids.tolist() == first.input_ids.tolist()
    assert len(calls) == seen == len(set(calls))
