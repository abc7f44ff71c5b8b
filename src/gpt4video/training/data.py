"""Training data: examples from the configured files → token ids, labels and the clips they show
(stages 1 and 2), or clips and their captions' token ids (stage 0, grounding).

The order of examples is a pure function of (seed, epoch), so a resumed run sees exactly the batches
the uninterrupted run would have seen: nothing about the data position needs saving but the step.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from ..config import DataConfig
from ..data.formats import Example, sample_caption
from ..data.loaders import load_dataset
from ..errors import InputError
from ..processing import IGNORE_INDEX, Encoded, GPT4VideoProcessor, Turn

if TYPE_CHECKING:
    from ..vlm import VLMPrompts

logger = logging.getLogger(__name__)


@dataclass
class TrainItem:
    input_ids: torch.Tensor  # (L,)
    labels: torch.Tensor  # (L,)
    videos: list[str]
    source: str


def load_examples(sources: list[DataConfig], *, what: str = "training") -> list[Example]:
    """Read every configured file; bad rows are reported (file:line) and skipped, never silently."""
    examples: list[Example] = []
    for src in sources:
        path = Path(src.path).expanduser()
        if not path.is_file():
            raise InputError(f"{what} data file not found: {path}")
        result = load_dataset(path, format=src.format, video_dir=src.video_dir)  # logs bad rows and a summary
        chosen = result.examples
        if src.max_examples is not None and src.max_examples < len(chosen):
            g = torch.Generator().manual_seed(len(chosen))  # a fixed subset of this file
            keep = sorted(torch.randperm(len(chosen), generator=g)[: src.max_examples].tolist())
            chosen = [chosen[i] for i in keep]
        examples.extend(chosen * src.repeat)
    if not examples:
        raise InputError(f"no usable {what} examples in {', '.join(s.path for s in sources)}")
    return examples


class ConversationDataset:
    """Tokenizes examples on demand (caption examples pick their paraphrase per epoch)."""

    def __init__(self, examples: list[Example], processor: GPT4VideoProcessor, *, max_length: int, seed: int) -> None:
        self.processor = processor
        self.max_length = max_length
        self.seed = seed
        self.examples: list[Example] = []
        #: Each example's length in tokens (as given; a caption example's paraphrase varies per epoch).
        self.lengths: list[int] = []
        too_long = 0
        for ex in examples:
            # The longest variant decides; captions vary per epoch, so check the example as given.
            n = len(processor.encode(ex.turns, ex.num_videos, add_generation_prompt=False).input_ids)
            if n > max_length:
                too_long += 1
                continue
            self.examples.append(ex)
            self.lengths.append(n)
        if too_long:
            logger.warning("skipped %d examples longer than max_length=%d tokens", too_long, max_length)
        if not self.examples:
            raise InputError(f"every example is longer than max_length={max_length} tokens")

    def __len__(self) -> int:
        return len(self.examples)

    def get(self, index: int, epoch: int) -> TrainItem:
        ex = sample_caption(self.examples[index], seed=self.seed, epoch=epoch)
        enc = self.processor.encode(ex.turns, ex.num_videos, add_generation_prompt=False)
        ids, labels = enc.input_ids[: self.max_length], enc.labels[: self.max_length]
        if int((ids == self.processor.video_token_id).sum()) != ex.num_videos * self.processor.num_video_tokens:
            raise InputError(f"{ex.source}: too long for max_length={self.max_length} once its videos are placed")
        return TrainItem(ids, labels, list(ex.videos), ex.source)

    def collate(self, items: list[TrainItem]) -> tuple[dict[str, torch.Tensor], list[str]]:
        batch = self.processor.collate([Encoded(i.input_ids, i.labels, len(i.videos)) for i in items])
        videos = [v for i in items for v in i.videos]  # in placeholder order, row by row
        return batch, videos


@dataclass
class VideoLLMItem:
    turns: list[Turn]
    videos: list[str]
    source: str


class VideoLLMConversations:
    """:class:`ConversationDataset` for a pretrained video LLM (gpt4video.vlm): the same examples, kept as turns,
    since the model's processor tokenizes them with their frames (its image tokens) inside its forward. Examples
    longer than ``max_length`` tokens, images included, are skipped (not cut: a cut would split a frame's tokens)."""

    def __init__(self, examples: list[Example], processor: VLMPrompts, *, max_length: int, seed: int) -> None:
        self.seed = seed
        self.examples: list[Example] = []
        self.lengths: list[int] = []  # each example's tokens as given, images included
        for ex in examples:
            n = len(processor.prompt_ids(ex.turns, ex.num_videos, add_generation_prompt=False))
            if n <= max_length:
                self.examples.append(ex)
                self.lengths.append(n)
        if len(self.examples) < len(examples):
            logger.warning("skipped %d examples longer than max_length=%d tokens",
                           len(examples) - len(self.examples), max_length)
        if not self.examples:
            raise InputError(f"every example is longer than max_length={max_length} tokens")

    def __len__(self) -> int:
        return len(self.examples)

    def get(self, index: int, epoch: int) -> VideoLLMItem:
        ex = sample_caption(self.examples[index], seed=self.seed, epoch=epoch)
        return VideoLLMItem(list(ex.turns), list(ex.videos), ex.source)

    def collate(self, items: list[VideoLLMItem]) -> tuple[dict[str, Any], list[str]]:
        """The batch ``VideoLLM.forward`` takes (its conversations) and the clips they show, in order."""
        return {"conversations": [i.turns for i in items]}, [v for i in items for v in i.videos]


@functools.lru_cache(maxsize=2)
def epoch_order(num_examples: int, seed: int, epoch: int) -> list[int]:
    """The shuffled order of one epoch: the same for every process and every (re)start."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(num_examples, generator=g).tolist()


#: group_by_length sorts the examples of this many consecutive global batches of the shuffled order by length.
LENGTH_GROUP_BATCHES = 50


@functools.lru_cache(maxsize=2)
def grouped_epoch_order(lengths: tuple[int, ...], seed: int, epoch: int, per_step: int) -> list[int]:
    """:func:`epoch_order` with similar lengths batched together (``group_by_length``, as in transformers'
    Trainer): the shuffled order is cut into runs of :data:`LENGTH_GROUP_BATCHES` global batches, each run is
    sorted longest first and cut into global batches, and the batches of a run are shuffled. Less padding,
    the same examples per epoch; a pure function of (lengths, seed, epoch, per_step), so a resumed run
    sees the same batches."""
    order = epoch_order(len(lengths), seed, epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch + 7)
    chunk = per_step * LENGTH_GROUP_BATCHES
    grouped: list[int] = []
    for start in range(0, len(order), chunk):
        run = sorted(order[start : start + chunk], key=lambda i: -lengths[i])
        batches = [run[b : b + per_step] for b in range(0, len(run), per_step)]
        full = [b for b in batches if len(b) == per_step]  # a short last batch goes to the end (dropped)
        for k in torch.randperm(len(full), generator=g).tolist():
            grouped.extend(full[k])
        grouped.extend(i for b in batches if len(b) < per_step for i in b)
    return grouped


def micro_batch_indices(
    num_examples: int, *, seed: int, micro_step: int, batch_size: int, world_size: int, rank: int,
    lengths: tuple[int, ...] | None = None,
) -> tuple[int, list[int]]:
    """(epoch, example indices) of one process's share of global micro-step ``micro_step``.

    Each epoch holds ``num_examples // (batch_size * world_size)`` micro-steps; the tail is dropped.
    With ``lengths`` (one per example), batches hold examples of similar length (:func:`grouped_epoch_order`).
    """
    per_step = batch_size * world_size
    steps_per_epoch = num_examples // per_step
    if steps_per_epoch == 0:
        raise InputError(
            f"{num_examples} examples are fewer than one global batch ({batch_size} × {world_size} processes)"
        )
    epoch, within = divmod(micro_step, steps_per_epoch)
    if lengths is not None:
        if len(lengths) != num_examples:
            raise InputError(f"group_by_length: {len(lengths)} lengths for {num_examples} examples")
        order = grouped_epoch_order(lengths, seed, epoch, per_step)
    else:
        order = epoch_order(num_examples, seed, epoch)
    start = within * per_step + rank * batch_size
    return epoch, order[start : start + batch_size]


@dataclass
class GroundingItem:
    #: Each accepted reading of the caption (usually one; e.g. every object order) as its tokens' indices
    #: into the dataset's vocab (IGNORE_INDEX: not in it).
    targets: list[list[int]]
    videos: list[str]
    source: str
    #: Whether the clip is to be seen played backwards (its frames' features in reverse order).
    reversed: bool = False
    #: How many of each reading's targets are the caption's own tokens (the rest, if any: the grounding filler).
    caption_lengths: list[int] = field(default_factory=list)


class GroundingDataset:
    """Stage 0: (clip, caption) pairs → the caption's token ids, one per video token.

    Only caption examples are used (their ``caption``: the row's own caption, not a per-epoch
    paraphrase, so a clip always has the same target; or, when the row gives ``grounding_captions``,
    each of those readings, of which the loss takes the closest). Token ids become indices into ``vocab``, the
    sorted ids every caption uses (an evaluation set passes the training set's ``vocab``; its words
    outside it are not scored); a caption longer than the video tokens is cut (and counted).

    With ``time_reversal``, each row that gives ``reversed_grounding_captions`` (the readings of its clip
    played backwards) adds a second item: the same clip with its frames in reverse order, against those
    readings. The frame features of a clip are computed frame by frame, so the reversed clip costs
    nothing to encode; and it is a real clip of the same world (a circle that moves left, backwards,
    moves right), so the abstractor sees twice as many different clips.

    With ``filler`` (a text of one token), the video tokens past a caption's end are trained to spell it;
    the batch then marks each reading's own tokens (``grounding_caption_mask``), so that the loss is
    normalised by those alone and the filler does not dilute what the caption's words learn.
    """

    def __init__(self, examples: list[Example], processor: GPT4VideoProcessor,
                 vocab: torch.Tensor | None = None, *, time_reversal: bool = False,
                 filler: str | None = None) -> None:
        tokenizer = processor.tokenizer
        self.num_tokens = processor.num_video_tokens
        self.filler = filler
        self.examples = [ex for ex in examples if ex.kind == "caption" and ex.num_videos == 1]
        skipped = len(examples) - len(self.examples)
        if skipped:
            logger.warning("grounding uses caption pairs only: skipped %d other examples", skipped)
        if not self.examples:
            raise InputError("grounding (stage 0) needs video-caption pairs; none of the data is one")
        readings = [ex.meta.get("grounding_captions") or [ex.meta.get("caption") or ex.turns[-1].text]
                    for ex in self.examples]
        backwards = [False] * len(readings)
        if time_reversal:
            reversible = [ex for ex in self.examples if ex.meta.get("reversed_grounding_captions")]
            if not reversible:
                raise InputError("time_reversal is on but no caption row gives 'reversed_grounding_captions'")
            if len(reversible) < len(self.examples):
                logger.warning("time_reversal: %d of %d caption rows give no 'reversed_grounding_captions'; "
                               "they are used forwards only", len(self.examples) - len(reversible), len(self.examples))
            sources = self.examples + reversible
            readings += [ex.meta["reversed_grounding_captions"] for ex in reversible]
            backwards += [True] * len(reversible)
        else:
            sources = self.examples
        token_ids = [[tokenizer(text, add_special_tokens=False).input_ids for text in texts] for texts in readings]
        cut = sum(len(ids) > self.num_tokens for alternatives in token_ids for ids in alternatives)
        if cut:
            logger.warning("%d captions are longer than the %d video tokens; their ends are not grounded",
                           cut, self.num_tokens)
        token_ids = [[ids[: self.num_tokens] for ids in alternatives] for alternatives in token_ids]
        caption_lengths = [[len(ids) for ids in alternatives] for alternatives in token_ids]
        if filler is not None:
            filler_ids = tokenizer(filler, add_special_tokens=False).input_ids
            if len(filler_ids) != 1:
                raise InputError(f"grounding_filler {filler!r} must be one token of the LLM's tokenizer, "
                                 f"it is {len(filler_ids)}")
            token_ids = [[ids + filler_ids * (self.num_tokens - len(ids)) for ids in alternatives]
                         for alternatives in token_ids]
        self.vocab = (vocab if vocab is not None else torch.tensor(
            sorted({t for alternatives in token_ids for ids in alternatives for t in ids}), dtype=torch.long))
        index = {int(t): i for i, t in enumerate(self.vocab)}
        self.items = [GroundingItem([[index.get(t, IGNORE_INDEX) for t in ids] for ids in alternatives],
                                    list(ex.videos), ex.source, back, lengths)
                      for alternatives, ex, back, lengths in zip(token_ids, sources, backwards, caption_lengths)]

    def __len__(self) -> int:
        return len(self.items)

    def get(self, index: int, epoch: int) -> GroundingItem:  # noqa: ARG002 - same interface as ConversationDataset
        return self.items[index]

    def collate(self, items: list[GroundingItem]) -> tuple[dict[str, torch.Tensor], list[str]]:
        k = max(len(item.targets) for item in items)
        # (B, K, Nq): K readings per clip, a clip with fewer padded by readings that are all IGNORE_INDEX
        targets = torch.full((len(items), k, self.num_tokens), IGNORE_INDEX, dtype=torch.long)
        for row, item in enumerate(items):
            for alt, ids in enumerate(item.targets):
                targets[row, alt, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        videos = [v for item in items for v in item.videos]
        batch = {"grounding_targets": targets, "grounding_vocab": self.vocab}
        if self.filler is not None:
            # (B, K, Nq): True at a reading's own caption tokens, False at its filler (and padding)
            positions = torch.arange(self.num_tokens)
            own = torch.zeros_like(targets, dtype=torch.bool)
            for row, item in enumerate(items):
                for alt, n in enumerate(item.caption_lengths):
                    own[row, alt] = positions < n
            batch["grounding_caption_mask"] = own
        if any(item.reversed for item in items):
            batch["time_reversed"] = torch.tensor([item.reversed for item in items])
        return batch, videos


def clip_features(batch: dict[str, torch.Tensor], videos: list[str], features) -> torch.Tensor | None:  # noqa: ANN001
    """The frame features (V, T, N, D) of a batch's ``videos`` from ``features`` (paths → features), with
    the frames of the clips the batch marks ``time_reversed`` (a key it loses) in reverse order."""
    feats = features(videos)
    reverse = batch.pop("time_reversed", None)
    if reverse is not None and feats is not None:
        reverse = reverse.to(feats.device).view(-1, *([1] * (feats.dim() - 1)))
        feats = torch.where(reverse, feats.flip(1), feats)
    return feats
