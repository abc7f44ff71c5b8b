"""Builds the safety training data and trains the harmful-request head: :mod:`.sources` (the labelled
texts and their split), :mod:`.everyday` (the project's hand-written harmless texts), :mod:`.framings`
(wrappers and augmentation), :mod:`.metrics`, :mod:`.head` (training, ``python -m
gpt4video.safety.train_text``) and :mod:`.dialogues` (the stage-2 safety dialogues)."""
