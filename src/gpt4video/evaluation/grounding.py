"""How well a model's video tokens spell out each clip's caption (what stage 0 trains).

For every caption token, the video token at its position is read as the nearest caption word by cosine
similarity in the LLM's input-embedding space (``GPT4Video.grounding_logits`` over the dataset's
``vocab``). Accuracy is reported over all caption tokens and by kind of word (the synthetic world's
colours, shapes and motion words by default), so an abstractor ablation can show what a variant can and
cannot express (motion words need frame order). A caption with several accepted readings (its objects in
every order: ``grounding_captions``) is scored against the reading the clip's tokens spell best.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch

from ..data.synthetic.vocabulary import COLORS, MOTIONS, SHAPES
from ..modeling import GPT4Video
from ..training.data import GroundingDataset

#: Kinds of caption word reported separately (a token counts when its text is one of the words).
WORD_KINDS: dict[str, tuple[str, ...]] = {"color": COLORS, "shape": SHAPES, "motion": MOTIONS}


@torch.no_grad()
def grounding_accuracy(
    model: GPT4Video,
    dataset: GroundingDataset,
    features: Callable[[list[str]], torch.Tensor],
    *,
    kinds: Mapping[str, Sequence[str]] = WORD_KINDS,
    batch_size: int = 64,
) -> dict:
    """{"tokens": {"accuracy", "count"}, "by_kind": {kind: {"accuracy", "count"}}, "clips": {"accuracy",
    "count"}} over ``dataset`` ("clips": the share of clips whose every caption token is spelled right);
    ``features(paths)`` gives the frame features of a batch of clips (e.g. a FeatureCache's get_many)."""
    model.eval()
    tokenizer = model.processor.tokenizer
    vocab = dataset.vocab
    word_kind = {}
    for i, token in enumerate(vocab.tolist()):
        text = tokenizer.decode([token]).strip().lower()
        for kind, members in kinds.items():
            if text in members:
                word_kind[i] = kind
    hits = {"tokens": [0, 0], "clips": [0, 0], **{k: [0, 0] for k in kinds}}
    for start in range(0, len(dataset), batch_size):
        batch, videos = dataset.collate([dataset.get(i, 0) for i in range(start, min(start + batch_size, len(dataset)))])
        pred = model.grounding_logits(features(videos).to(model.device), vocab).argmax(-1).cpu()  # (B, Nq)
        readings = batch["grounding_targets"]  # (B, K, Nq)
        # each clip is scored against the reading its tokens spell best (ties: the first)
        matches = ((readings == pred[:, None]) & (readings >= 0)).sum(-1)  # (B, K)
        targets = readings[torch.arange(len(readings)), matches.argmax(-1)]  # (B, Nq)
        whole = ((targets == pred) | (targets < 0)).all(-1)
        hits["clips"][0] += int(whole.sum())
        hits["clips"][1] += len(whole)
        for target, guess in zip(targets[targets >= 0].tolist(), pred[targets >= 0].tolist()):
            for key in ("tokens", word_kind.get(target)):
                if key is not None:
                    hits[key][0] += int(target == guess)
                    hits[key][1] += 1

    def score(pair: list[int]) -> dict:
        return {"accuracy": round(pair[0] / pair[1], 4) if pair[1] else None, "count": pair[1]}

    return {"tokens": score(hits["tokens"]), "by_kind": {k: score(hits[k]) for k in kinds}, "clips": score(hits["clips"])}
