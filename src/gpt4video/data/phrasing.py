"""How people word questions and requests about the synthetic world: template families, synonyms, noise.

The synthetic world's text (:mod:`gpt4video.data.synthetic`) asks its questions and requests in many
surface forms, so that a model trained on it follows phrasings it never saw. Only the *user* side
varies: the replies stay canonical (one-word answers, captions, and ``<video_prompt>`` s in the world's
own vocabulary, which :func:`~gpt4video.data.synthetic.parse_prompt` and the renderer read), so the
model learns to map many wordings onto one.

**Families.** A :class:`Family` is a named set of sentence frames for each *intent* it covers (a
colour question, a count question, a generation request, ...; :data:`INTENT_SLOTS`), with slots for
the objects: ``"What colour is the {ref}?"``. The family ``"classic"`` holds the templates this world
has always used. Every family is a *training* family (:data:`TRAIN_FAMILIES`) or a *held-out* one
(:data:`HELDOUT_FAMILIES`). The training data never uses a held-out family, so questions and requests
worded by held-out families measure phrasings the model never saw ("out-of-template") next to the
training ones ("in-template"). Held-out frames share no fixed piece of two or more words with any
training frame (checked by the unit tests).

**Words.** Slots are filled from a lexicon shared by all families: motions (:data:`MOTION_WORDING`:
"rising", "goes up", "ascends", "sinks", "stays still", "doesn't move", "gets bigger", ...),
shapes (:data:`SHAPE_WORDS`: "ball", "dot", "disc", "box", "block"), a few colours
(:data:`COLOR_WORDS`: only names that map onto one of the world's colours without doubt) and
backgrounds ("on a dark background" for black, "on a light background" for white, "backdrop",
"on gray"). Held-out families differ from the training ones in their sentence frames, not in these
words.

**Noise.** In a mix ("train" or "heldout") a text of any family but "classic" is sometimes typed
carelessly: all lower case, without its final punctuation mark, with one small typo in the frame's
own words (never in the words that name objects), or with an extra word before or after it.

**Phrasing** (the ``phrasing=`` argument of :func:`~gpt4video.data.synthetic.questions`,
:func:`~gpt4video.data.synthetic.count_questions` and :func:`~gpt4video.data.synthetic.dialogue`):

- ``"train"``: every training family, mixed (each equally likely for an intent), with noise.
  "classic" is one of them, and its texts are exactly the old templates' (no noise).
- ``"heldout"``: every held-out family, mixed, with noise. Only for evaluation.
- a family's name: that family alone, without noise (intents it has no frames for stay classic).

The choices of wording draw from their own random stream (:meth:`Wording.for_rng`), so a text's
content (which object is asked about, the answer, the dialogue's course) is the same whatever the
phrasing: ``questions(scene, rng_a, phrasing="heldout")`` asks the same things with the same answers
as ``questions(scene, rng_b, phrasing="train")`` when ``rng_a`` and ``rng_b`` start alike.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "COLOR_WORDS",
    "FAMILIES",
    "HELDOUT_FAMILIES",
    "INTENT_SLOTS",
    "MOTION_ADJECTIVES",
    "MOTION_WORDING",
    "PHRASINGS",
    "SHAPE_WORDS",
    "TRAIN_FAMILIES",
    "Family",
    "Phrase",
    "Wording",
    "classic",
    "family",
    "frame_pieces",
]

# ============================================================================================
# Intents and their slots

#: Each intent and the slots its frames may use.
#:
#: - ``ref``: how a question names one object ("red circle", "ball", "thing going left").
#: - ``shapes``: a plural shape noun ("circles", "balls"); ``color``: a colour word; ``np``: an
#:   object with its article ("a red circle", "a crimson ball").
#: - ``ger`` / ``rel`` / ``clause``: the requested objects as "a red circle rising", "a red circle that
#:   rises", "a red circle rises"; ``bg``: where, with a leading space (" on a dark background"), or "".
#: - ``verb`` / ``base`` / ``gerund``: a motion as "moves left", "move left", "moving left".
#: - ``still``: the requested objects of a picture, without motion ("two crimson balls and a green box").
#: - ``bg_np``: a background with its article ("a gray background"); ``f``: a feature only one of two
#:   clips has ("a moving circle"); ``o``: "first" or "second".
INTENT_SLOTS: dict[str, frozenset[str]] = {
    "color": frozenset({"ref"}),
    "shape": frozenset({"ref"}),
    "motion": frozenset({"ref"}),
    "count_all": frozenset(),
    "count_shape": frozenset({"shapes"}),
    "count_color": frozenset({"color"}),
    "existence": frozenset({"np"}),
    "describe": frozenset(),
    "generate": frozenset({"ger", "rel", "clause", "bg"}),
    "draw_image": frozenset({"still", "bg"}),
    "speech": frozenset(),
    "modify_motion": frozenset({"ref", "verb", "base", "gerund"}),
    "modify_color": frozenset({"ref", "color", "np"}),
    "modify_background": frozenset({"bg_np"}),
    "which_video": frozenset({"f"}),
    "compare": frozenset(),
    "describe_nth": frozenset({"o"}),
    "count_both": frozenset(),
    "same_background": frozenset(),
    "another_video": frozenset(),
}

# ============================================================================================
# Families


@dataclass(frozen=True)
class Family:
    """A named set of sentence frames per intent; ``split`` is "train" or "heldout"."""

    name: str
    split: str
    frames: Mapping[str, tuple[str, ...]]

    def __post_init__(self) -> None:
        if self.split not in ("train", "heldout"):
            raise ValueError(f"family {self.name!r}: split must be 'train' or 'heldout', got {self.split!r}")
        for intent, frames in self.frames.items():
            if intent not in INTENT_SLOTS:
                raise ValueError(f"family {self.name!r}: unknown intent {intent!r}")
            for frame in frames:
                used = {f for _, f, _, _ in string.Formatter().parse(frame) if f}
                if not used <= INTENT_SLOTS[intent]:
                    raise ValueError(f"family {self.name!r}, {intent}: {frame!r} uses slots {sorted(used - INTENT_SLOTS[intent])}")


_CLASSIC = Family("classic", "train", {
    # The templates this world has always used. Their order and number are fixed: the data's main
    # random stream picks among them, so changing them changes every split.
    "color": (
        "What color is the {ref}?",
        "What is the color of the {ref}?",
        "Which color does the {ref} have?",
        "What colour is the {ref}?",
    ),
    "shape": (
        "What shape is the {ref}?",
        "What is the shape of the {ref}?",
        "What kind of shape is the {ref}?",
        "Which shape is the {ref}?",
    ),
    "motion": (
        "Which way does the {ref} move?",
        "How does the {ref} move?",
        "What does the {ref} do?",
        "In which direction does the {ref} move?",
        "What is the {ref} doing?",
    ),
    "count_all": (
        "How many objects are there?",
        "How many objects are in the video?",
        "How many shapes can you see?",
        "How many shapes appear in the video?",
    ),
    "count_shape": ("How many {shapes} are there?", "How many {shapes} are in the video?"),
    "count_color": ("How many {color} objects are there?", "How many {color} shapes are in the video?"),
    "existence": (
        "Is there {np}?",
        "Is there {np} in the video?",
        "Does the video show {np}?",
        "Can you see {np}?",
        "Does {np} appear in the video?",
    ),
    "describe": (
        "Describe this video.",
        "What happens in the video?",
        "What do you see in this clip?",
        "Can you describe the clip?",
        "Tell me what is going on in this video.",
    ),
    "generate": (
        "Show me {rel}{bg}.",
        "Show me {ger}{bg}.",
        "Can you make a video of {ger}{bg}?",
        "Generate a clip where {clause}{bg}.",
        "Please create a video with {rel}{bg}.",
        "I'd like to see {ger}{bg}.",
        "Make a short video of {ger}{bg}.",
        "Could you generate a video in which {clause}{bg}?",
    ),
    "modify_motion": (
        "Make a similar video where the {ref} {verb} instead.",
        "Can you show the same thing, but with the {ref} {gerund}?",
        "Now generate one where the {ref} {verb}.",
    ),
    "modify_color": (
        "Now make the {ref} {color}.",
        "Same video, but with {np} instead, please.",
        "Can you change the {ref} to {color}?",
    ),
    "modify_background": ("Can you put it on {bg_np} instead?", "Make the same clip on {bg_np}."),
    "which_video": ("Which of the two videos has {f}?", "Which video shows {f}?", "In which of the two clips is there {f}?"),
    "compare": ("What is different between them?", "How do the two videos differ?", "Compare the two clips."),
    "describe_nth": ("Describe the {o} video.", "What happens in the {o} clip?"),
    "count_both": ("How many objects are there in the two videos together?", "How many shapes do both clips show in total?"),
    "same_background": ("Do the two videos have the same background?",),
    "another_video": ("Here is another video. ", "Now look at this one too. "),
    # Pictures and speech came after the templates above; their order is fixed from here on too.
    "draw_image": (
        "Draw a picture of {still}{bg}.",
        "Can you make an image of {still}{bg}?",
        "Show me a picture of {still}{bg}.",
        "Please create an image with {still}{bg}.",
        "I'd like a still image of {still}{bg}.",
        "Make a picture of {still}{bg}.",
    ),
    "speech": (
        "What does the narrator say?",
        "What is said in the video?",
        "What words are spoken in this clip?",
        "What does the voice in the video say?",
    ),
})

_CASUAL = Family("casual", "train", {
    "color": ("what's the color of the {ref}?", "so what colour's the {ref}?", "what color is that {ref}?"),
    "shape": ("what's the shape of the {ref}?", "so what shape's the {ref}?", "what kind of shape is that {ref}?"),
    "motion": ("which way's the {ref} going?", "where's the {ref} going?", "so what's that {ref} doing?"),
    "count_all": ("how many things are there?", "how many objects have we got?", "how many shapes are there in total?"),
    "count_shape": ("how many {shapes} have we got?", "so how many {shapes} are there?"),
    "count_color": ("how many {color} things are there?", "how many {color} ones do you see?"),
    "existence": ("is there {np} anywhere?", "have we got {np} here?", "any chance there's {np}?"),
    "describe": ("what's going on in this clip?", "so what's happening here?", "what's in this video?"),
    "generate": (
        "can you show me {ger}{bg}?",
        "make me a video of {ger}{bg}",
        "i wanna see {ger}{bg}",
        "how about a clip of {ger}{bg}?",
    ),
    "modify_motion": ("ok, same thing but the {ref} {verb}", "what if the {ref} {verb} instead?", "now have the {ref} {gerund}"),
    "modify_color": ("now make the {ref} {color} instead", "same but with {np}", "switch the {ref} to {color}"),
    "modify_background": ("put it on {bg_np} instead", "same clip but on {bg_np}"),
    "which_video": ("which one's got {f}?", "which clip has {f} in it?"),
    "compare": ("what's different between the two?", "how are these two clips different?"),
    "describe_nth": ("what's going on in the {o} one?", "so what happens in the {o} video?"),
    "count_both": ("how many objects in both videos put together?",),
    "same_background": ("same background in both?", "do both clips have the same background?"),
    "another_video": ("here's another one. ", "and this one too. "),
    "draw_image": ("draw me {still}{bg}", "can you draw {still}{bg}?", "i wanna see a picture of {still}{bg}",
                   "how about an image of {still}{bg}?"),
    "speech": ("what's the narrator saying?", "so what does the voice say?", "what's being said here?"),
})

_POLITE = Family("polite", "train", {
    "color": (
        "Could you tell me what color the {ref} is?",
        "Would you tell me the colour of the {ref}, please?",
        "Please tell me what colour the {ref} is.",
    ),
    "shape": (
        "Could you tell me what shape the {ref} is?",
        "Please tell me the shape of the {ref}.",
        "Would you mind telling me what shape the {ref} has?",
    ),
    "motion": (
        "Could you tell me which way the {ref} moves?",
        "Please tell me what the {ref} is doing.",
        "Would you mind telling me how the {ref} moves?",
    ),
    "count_all": (
        "Could you tell me how many objects there are?",
        "Please count the objects for me.",
        "Would you count the shapes in the video, please?",
    ),
    "count_shape": ("Could you tell me how many {shapes} there are?", "Please count the {shapes} for me."),
    "count_color": ("Could you tell me how many {color} objects there are?", "Please count the {color} shapes for me."),
    "existence": (
        "Could you tell me whether there is {np}?",
        "Please check if there is {np} in the video.",
        "Would you say there is {np} in this clip?",
    ),
    "describe": (
        "Could you please describe this video?",
        "Would you describe what happens in this clip?",
        "Please tell me what the video shows.",
    ),
    "generate": (
        "Could you please make a video of {ger}{bg}?",
        "Please generate a video showing {ger}{bg}.",
        "Would you make a clip in which {clause}{bg}, please?",
        "May I have a video of {ger}{bg}, please?",
    ),
    "modify_motion": ("Could you make the {ref} {base} instead, please?", "Please make one where the {ref} {verb}."),
    "modify_color": ("Could you make the {ref} {color}, please?", "Please change the {ref} to {color}."),
    "modify_background": ("Could you put it on {bg_np}, please?", "Please use {bg_np} instead."),
    "which_video": ("Could you tell me which video has {f}?", "Please tell me which clip shows {f}."),
    "compare": ("Could you tell me how the two videos differ?", "Please compare the two videos."),
    "describe_nth": ("Could you describe the {o} video?", "Please describe the {o} clip."),
    "count_both": ("Could you count the objects in both videos together?",),
    "same_background": ("Could you tell me whether the two videos have the same background?",),
    "another_video": ("Please have a look at this video as well. ", "Here is one more video, please. "),
    "draw_image": ("Could you please draw a picture of {still}{bg}?", "Please make an image showing {still}{bg}.",
                   "May I have a picture of {still}{bg}, please?"),
    "speech": ("Could you tell me what the narrator says?", "Please tell me what is said in the video."),
})

_IMPERATIVE = Family("imperative", "train", {
    "color": ("Tell me the colour of the {ref}.", "Name the color of the {ref}.", "Say what colour the {ref} is."),
    "shape": ("Tell me the shape of the {ref}.", "Name the shape of the {ref}.", "Identify the shape of the {ref}."),
    "motion": ("Tell me which way the {ref} goes.", "Say how the {ref} moves.", "Name the direction of the {ref}."),
    "count_all": ("Count the objects.", "Count the shapes in the video.", "Tell me how many objects there are."),
    "count_shape": ("Count the {shapes}.", "Tell me how many {shapes} there are."),
    "count_color": ("Count the {color} objects.", "Tell me how many {color} shapes there are."),
    "existence": ("Tell me if there is {np}.", "Say whether the video has {np}.", "Check whether there is {np}."),
    "describe": ("Describe the clip.", "Tell me what happens.", "Summarize this video."),
    "generate": ("Generate {ger}{bg}.", "Make a video with {rel}{bg}.", "Create a clip of {ger}{bg}.", "Show {ger}{bg}."),
    "modify_motion": ("Make the {ref} {base} instead.", "Change it so the {ref} {verb}."),
    "modify_color": ("Make the {ref} {color} instead.", "Change the colour of the {ref} to {color}."),
    "modify_background": ("Use {bg_np} instead.", "Switch to {bg_np}."),
    "which_video": ("Tell me which video has {f}.", "Name the clip that shows {f}."),
    "compare": ("Tell me how the two clips differ.", "List the differences between the videos."),
    "describe_nth": ("Describe the {o} one.", "Tell me what happens in the {o} video."),
    "count_both": ("Count the objects in both clips together.",),
    "same_background": ("Tell me whether both videos share a background.",),
    "another_video": ("Now watch this one. ", "Look at this second video. "),
    "draw_image": ("Draw {still}{bg}.", "Make an image of {still}{bg}.", "Create a picture with {still}{bg}."),
    "speech": ("Tell me what the narrator says.", "Repeat what is said in the video.", "Write down the spoken words."),
})

_CURIOUS = Family("curious", "train", {
    # Questions inside a longer sentence.
    "color": ("I was wondering, what colour is the {ref}?", "I'd like to know what color the {ref} is.",
              "Just curious, which color is the {ref}?"),
    "shape": ("I was wondering, what shape is the {ref}?", "I'd like to know what shape the {ref} is.",
              "Just curious, which shape is the {ref}?"),
    "motion": ("I was wondering, which way is the {ref} heading?", "I'd like to know which way the {ref} moves.",
               "Just curious, what is the {ref} doing?"),
    "count_all": ("I was wondering, how many objects are there?", "I'd like to know how many shapes there are.",
                  "Just curious, how many things are in the video?"),
    "count_shape": ("I was wondering, how many {shapes} are there?", "I'd like to know how many {shapes} the video has."),
    "count_color": ("I was wondering, how many {color} objects are there?",
                    "I'd like to know how many {color} shapes there are."),
    "existence": ("I was wondering, is there {np}?", "I'd like to know whether there is {np}.",
                  "Just curious, does the video have {np}?"),
    "describe": ("I was wondering what happens in this video.", "I'd like to know what this clip shows."),
    "generate": (
        "I was wondering if you could make a video of {ger}{bg}.",
        "I'd love a video of {ger}{bg}.",
        "I need a clip where {clause}{bg}.",
    ),
    "modify_motion": ("I'd like the {ref} to {base} instead.", "I was wondering if the {ref} could {base} this time."),
    "modify_color": ("I'd like the {ref} to be {color} instead.", "I was wondering if you could make the {ref} {color}."),
    "modify_background": ("I'd like it on {bg_np} instead.",),
    "which_video": ("I was wondering, which video has {f}?", "I'd like to know which clip shows {f}."),
    "compare": ("I'd like to know how the two videos differ.", "I was wondering what the difference between the clips is."),
    "describe_nth": ("I'd like to know what happens in the {o} video.",),
    "count_both": ("I was wondering how many objects the two videos show altogether.",),
    "same_background": ("I was wondering, do the two clips share the same background?",),
    "another_video": ("I have another video for you. ", "I've got a second clip too. "),
    "draw_image": ("I was wondering if you could draw {still}{bg}.", "I'd love a picture of {still}{bg}.",
                   "I need an image of {still}{bg}."),
    "speech": ("I was wondering what the narrator says.", "I'd like to know what is said in this clip."),
})

_TERSE = Family("terse", "train", {
    # Keywords rather than sentences.
    "color": ("colour of the {ref}?", "color of {ref}?", "{ref} colour?"),
    "shape": ("shape of the {ref}?", "what shape, the {ref}?"),
    "motion": ("direction of the {ref}?", "{ref} motion?", "{ref}: which way?"),
    "count_all": ("number of objects?", "how many objects?", "object count?"),
    "count_shape": ("number of {shapes}?", "how many {shapes}?"),
    "count_color": ("number of {color} objects?", "how many {color} ones?"),
    "existence": ("{np} in the video?", "any {np}?"),
    "describe": ("description please", "summary of the clip?"),
    "generate": ("video: {ger}{bg}", "clip of {ger}{bg} please", "new video, {ger}{bg}"),
    "modify_motion": ("now the {ref} {gerund}", "{ref} {gerund} instead"),
    "modify_color": ("{ref} in {color} now", "now {np}"),
    "modify_background": ("now on {bg_np}",),
    "which_video": ("which video has {f}?",),
    "compare": ("differences?", "difference between the two?"),
    "describe_nth": ("{o} video?",),
    "count_both": ("total objects in both?",),
    "same_background": ("same background?",),
    "another_video": ("another one: ", "second clip: "),
    "draw_image": ("picture: {still}{bg}", "image of {still}{bg} please", "still image, {still}{bg}"),
    "speech": ("narration?", "what's said?", "spoken words?"),
})

_CLIP = Family("clip", "train", {
    # Questions that point at the video.
    "color": ("In this clip, what colour is the {ref}?", "In the video, which colour is the {ref}?"),
    "shape": ("In this clip, what shape is the {ref}?", "In the video, what shape does the {ref} have?"),
    "motion": ("In this clip, which way does the {ref} go?", "In the video, how is the {ref} moving?"),
    "count_all": ("In this clip, how many objects do you see?", "Watching this video, how many shapes are there?"),
    "count_shape": ("In this clip, how many {shapes} do you see?", "Watching this video, how many {shapes} are there?"),
    "count_color": ("In this clip, how many {color} objects do you see?",),
    "existence": ("In this clip, do you see {np}?", "Watching this video, can you spot {np}?"),
    "describe": ("What does this clip show?", "Watch this video and describe it."),
    "generate": ("A clip of {ger}{bg}, please.", "I'd like a video where {clause}{bg}.", "Video request: {ger}{bg}."),
    "modify_motion": ("In the next clip, the {ref} should {base}.",),
    "modify_color": ("In the next clip, the {ref} should be {color}.",),
    "modify_background": ("In the next clip, use {bg_np}.",),
    "which_video": ("In which clip do you see {f}?",),
    "compare": ("Watch both clips: what differs?",),
    "describe_nth": ("What does the {o} clip show?",),
    "count_both": ("Across both clips, how many objects are there?",),
    "same_background": ("Across both clips, is the background the same?",),
    "another_video": ("Here is a second clip. ",),
    "draw_image": ("A picture of {still}{bg}, please.", "Image request: {still}{bg}."),
    "speech": ("In this clip, what does the narrator say?", "In the video, what words are spoken?"),
})

_STORY = Family("story", "train", {
    # The question inside a longer sentence that says why it is asked.
    "color": (
        "My daughter made this clip and wants to know: what colour is the {ref}?",
        "I'm writing a quiz about this clip, so what color is the {ref}?",
        "We're arguing about this at home. Which colour is the {ref}, really?",
        "I'm colour-blind, so please help: what is the colour of the {ref}?",
    ),
    "shape": (
        "My daughter made this clip and wants to know: what shape is the {ref}?",
        "I'm writing a quiz about this clip, so what shape is the {ref}?",
        "We're arguing about this at home. Which shape is the {ref}, really?",
    ),
    "motion": (
        "My daughter made this clip and wants to know: which way does the {ref} move?",
        "I'm writing a quiz about this clip, so how does the {ref} move?",
        "We're arguing about this at home. What does the {ref} actually do?",
    ),
    "count_all": (
        "My daughter made this clip and wants to know how many objects it has.",
        "I'm writing a quiz about this clip, so how many shapes are in it?",
        "We're arguing about this at home. How many objects are there, really?",
    ),
    "count_shape": (
        "My daughter made this clip and wants to know how many {shapes} it has.",
        "I'm writing a quiz about this clip, so how many {shapes} are in it?",
    ),
    "count_color": (
        "My daughter made this clip and wants to know how many {color} objects it has.",
        "I'm writing a quiz about this clip, so how many {color} shapes are in it?",
    ),
    "existence": (
        "My daughter made this clip and wants to know: is there {np} in it?",
        "I'm writing a quiz about this clip, so is there {np} anywhere in it?",
        "We're arguing about this at home. Does the clip really have {np}?",
        "I'm checking these clips for a report; does this one contain {np}?",
    ),
    "describe": (
        "My daughter made this clip and wants to know what it shows. Could you describe it?",
        "I'm writing a quiz about this clip, so please sum up what happens in it.",
    ),
    "generate": (
        "For a movie I'm making, I need a clip of {ger}{bg}.",
        "Quick request for my project: a video with {rel}{bg}, please.",
        "Here is a little request: could you make a short video where {clause}{bg}?",
    ),
    "modify_motion": (
        "My daughter liked it, but she wants the {ref} to {base} now.",
        "For the quiz I need a version where the {ref} {verb}.",
    ),
    "modify_color": (
        "My daughter liked it, but she wants the {ref} to be {color} now.",
        "For the quiz I need a version with {np} instead.",
    ),
    "modify_background": (
        "My daughter liked it, but she wants it on {bg_np} now.",
        "For the quiz I need a version on {bg_np}.",
    ),
    "which_video": (
        "I'm writing a quiz about these clips, so which one has {f}?",
        "We're arguing about this at home: which of the clips shows {f}?",
    ),
    "compare": (
        "I'm writing a quiz about these clips, so how are they different?",
        "We're arguing about this at home: what is the difference between the two videos?",
    ),
    "describe_nth": (
        "I'm writing a quiz about these clips, so what happens in the {o} one?",
        "My daughter only saw the {o} video; could you describe it for her?",
    ),
    "count_both": (
        "I'm writing a quiz about these clips, so how many objects do they have in total?",
        "We're arguing about this at home: how many shapes are there across both videos?",
    ),
    "same_background": (
        "I'm writing a quiz about these clips, so is the background the same in both?",
        "We're arguing about this at home: do both videos use the same background?",
    ),
    "another_video": ("My daughter made a second clip as well. ", "For the quiz, here is one more video. "),
    "draw_image": (
        "My daughter wants a poster, so could you draw {still}{bg}?",
        "I'm writing a quiz and need a picture of {still}{bg}.",
        "For a birthday card, please make an image of {still}{bg}.",
    ),
    "speech": (
        "My daughter can't hear the sound, so what does the narrator say?",
        "I'm writing a quiz about this clip, so what words are spoken in it?",
    ),
})

_INDIRECT = Family("indirect", "train", {
    # Indirect questions and other word orders.
    "color": (
        "Could you figure out the colour of the {ref}?",
        "Which colour would you say the {ref} is?",
        "Do you know what color the {ref} is?",
        "Can you work out which color the {ref} has?",
    ),
    "shape": (
        "Could you figure out the shape of the {ref}?",
        "Which shape would you say the {ref} has?",
        "Do you know what shape the {ref} is?",
    ),
    "motion": (
        "Could you figure out which way the {ref} moves?",
        "Which direction would you say the {ref} takes?",
        "Do you know what the {ref} is doing?",
    ),
    "count_all": (
        "Could you figure out how many objects there are?",
        "Do you know how many shapes this video has?",
        "How many objects would you say there are?",
    ),
    "count_shape": ("Could you figure out how many {shapes} there are?",
                    "Do you know how many {shapes} this video has?"),
    "count_color": ("Could you figure out how many {color} objects there are?",
                    "Do you know how many {color} shapes this video has?"),
    "existence": (
        "Does this video contain {np}?",
        "Is {np} visible here?",
        "Do you know whether {np} appears in this clip?",
        "Could you figure out if there is {np} in the video?",
        "Would you spot {np} anywhere in this clip?",
    ),
    "describe": ("Could you figure out what happens in this clip?", "Do you know what this video shows?"),
    "generate": (
        "What I'd like is a clip in which {clause}{bg}.",
        "A video with {rel}{bg} is what I'd like to see.",
        "Would you make me a short clip of {ger}{bg}?",
    ),
    "modify_motion": ("What if the {ref} were {gerund} instead?", "Could the {ref} {base} in the next video?"),
    "modify_color": ("What if the {ref} were {color} instead?", "Could the next video have {np} instead?"),
    "modify_background": ("What if it were on {bg_np} instead?", "Could the next video be on {bg_np}?"),
    "which_video": ("Do you know which video has {f}?", "Which clip would you say shows {f}?"),
    "compare": ("Do you know how the two clips differ?", "What would you say is different between the videos?"),
    "describe_nth": ("Do you know what happens in the {o} video?", "What would you say the {o} clip shows?"),
    "count_both": ("Do you know how many objects the two videos have in total?",
                   "How many shapes would you say both clips show together?"),
    "same_background": ("Do you know whether both clips have the same background?",
                        "Would you say the two videos share one background?"),
    "another_video": ("Also, take a look at this video. ", "There is one more clip as well. "),
    "draw_image": ("What I'd like is a picture of {still}{bg}.", "An image of {still}{bg} is what I'd like to get.",
                   "Would you draw me {still}{bg}?"),
    "speech": ("Do you know what the narrator says?", "Could you figure out which words are spoken here?"),
})

_CHOICES = Family("choices", "train", {
    # Candidate answers listed inside the question; the lists are fixed, so they hold the right answer or not,
    # in any order, and the answer is what the clip shows.
    "color": (
        "Is the {ref} yellow, white, purple or a different colour?",
        "Would you call the {ref} orange, green or blue?",
        "Tell me if the {ref} is purple, yellow, red or another color.",
        "Which of these is the {ref}: blue, orange, white or red?",
        "Is the {ref} green or blue, or maybe white?",
        "Red, purple, orange... what colour is the {ref} really?",
    ),
    "shape": (
        "Is the {ref} a circle, a square or a triangle?",
        "Would you call the {ref} a triangle or a square?",
        "Which of these is the {ref}: square, triangle or circle?",
    ),
    "motion": (
        "Does the {ref} go up, go down, or stay where it is?",
        "Is the {ref} moving left, moving right, growing or shrinking?",
        "Which of these does the {ref} do: rise, fall, slide sideways or grow?",
    ),
    "count_all": ("Are there one, two or three objects here?", "Is the number of shapes one, two, three or more?"),
    "count_shape": ("Are there one, two or three {shapes} here?",),
    "count_color": ("Are there one, two or three {color} objects here?",),
    "existence": ("Does {np} show up here at all, yes or no?", "Is {np} in the clip, or is there none?"),
})

_FRONTED = Family("fronted", "heldout", {
    # The thing asked about first, then the question about it.
    "color": ("The {ref}: what colour is it?", "That {ref} there, what color would you call it?"),
    "shape": ("The {ref}: what shape is it?", "That {ref} there, what shape would you call it?"),
    "motion": ("The {ref}: where is it headed?", "That {ref} there, which direction does it take?"),
    "count_all": ("Objects in this video: how many?", "The shapes here, how many would you count?"),
    "count_shape": ("{shapes} in this video: how many?", "The {shapes} here, how many would you count?"),
    "count_color": ("{color} objects in this video: how many?", "The {color} shapes here, how many would you count?"),
    "existence": ("{np}: is there one in this video?", "{np}, would you find one here?"),
    "describe": ("This video: what goes on in it?",),
    "generate": ("{ger}{bg}: could you turn that into a video?", "What I'm after is a video of {ger}{bg}."),
    "modify_motion": ("The {ref}: have it {base} for the next one.",),
    "modify_color": ("The {ref}: turn it {color} for the next one.",),
    "modify_background": ("The background: swap it for {bg_np} in the next one.",),
    "which_video": ("{f}: which of the two has it?",),
    "compare": ("These two videos: how do they differ?",),
    "describe_nth": ("The {o} video: what goes on in it?",),
    "count_both": ("Both videos together: how many objects?",),
    "same_background": ("The two backgrounds: are they alike?",),
    "another_video": ("A second video follows. ",),
    "draw_image": ("{still}{bg}: could you sketch that for me?", "What I'm after is a drawing of {still}{bg}."),
    "speech": ("The narration: what are its words?", "The voice here: what does it tell us?"),
})

_CHATTY = Family("chatty", "heldout", {
    # Longer sentences around the question.
    "color": ("Sorry if this is obvious, but which colour has the {ref} got?",
              "Help me out here: the {ref}, is it red, blue, green or some other color?"),
    "shape": ("Sorry if this is obvious, but which shape has the {ref} got?",
              "My eyes are bad, so help me out: the {ref} is which shape?"),
    "motion": ("Sorry if this is obvious, but where does the {ref} end up going?",
               "My eyes are bad, so help me out: the {ref} travels which way, or does it change size?"),
    "count_all": ("Sorry if this is obvious, but how many objects show up here altogether?",
                  "My eyes are bad, so help me out: the number of shapes here is what?"),
    "count_shape": ("Sorry if this is obvious, but how many {shapes} show up here altogether?",),
    "count_color": ("Sorry if this is obvious, but how many {color} objects show up here altogether?",),
    "existence": ("Sorry if this is obvious, but would you say this has {np} somewhere?",
                  "My eyes are bad, so help me out: is {np} somewhere here or not?"),
    "describe": ("My eyes are bad, so help me out: what is going on here?",),
    "generate": ("For a little project of mine, could you produce a video of {ger}{bg}?",
                 "My kid would love to see {ger}{bg}, could you do that?"),
    "modify_motion": ("Nice! For the next version, let the {ref} {base}.",),
    "modify_color": ("Nice! For the next version, let the {ref} be {color}.",),
    "modify_background": ("Nice! For the next version, put it all on {bg_np}.",),
    "which_video": ("Sorry if this is obvious, but which of these two has {f}?",),
    "compare": ("My eyes are bad, so help me out: what sets these two apart?",),
    "describe_nth": ("My eyes are bad, so help me out: what goes on in the {o} one?",),
    "count_both": ("Sorry if this is obvious, but how many objects do these two show between them?",),
    "same_background": ("My eyes are bad, so help me out: do these two share a backdrop?",),
    "another_video": ("Oh, and one more thing to watch. ",),
    "draw_image": ("For a little project of mine, could you paint {still}{bg}?",
                   "My kid would love an illustration of {still}{bg}, could you do that?"),
    "speech": ("Sorry if this is obvious, but what is the narrator telling us?",
               "My ears are bad, so help me out: which words does the voice speak?"),
})

_FOOTAGE = Family("footage", "heldout", {
    # Other words for a video (animation, footage, movie); the generation requests bench/cycle.py uses.
    "color": ("In the animation, the {ref} has which colour?",),
    "shape": ("In the animation, the {ref} has which shape?",),
    "motion": ("In the animation, the {ref} goes which way?",),
    "count_all": ("In the animation, the objects number how many?",),
    "existence": ("In the animation, does {np} turn up?",),
    "describe": ("What goes on in this footage?", "Summarise the animation for me."),
    "generate": (
        "I'd like to watch {ger}{bg}.",
        "Render a short clip of {ger}{bg}.",
        "Could you animate {ger}{bg}?",
        "Produce footage where {clause}{bg}.",
        "Please draw me an animation in which {clause}{bg}.",
        "Can I get a clip showing {ger}{bg}?",
        "Give me a short video with {rel}{bg}.",
        "I want an animation of {ger}{bg}.",
        "Would you put together a clip where {clause}{bg}?",
        "Make me a little movie featuring {rel}{bg}.",
        "Create an animation showing {ger}{bg}.",
        "Let me see a clip in which {clause}{bg}, please.",
    ),
    "modify_motion": ("Redo the animation so that the {ref} {verb}.",),
    "modify_color": ("Redo the animation with the {ref} coloured {color}.",),
    "modify_background": ("Redo the animation over {bg_np}.",),
    "draw_image": ("Sketch {still}{bg}, just a single frame.", "Give me one snapshot of {still}{bg}."),
    "speech": ("In the animation, which words are spoken aloud?",),
})

_ASIDE = Family("aside", "heldout", {
    # A remark about the viewer's screen, or a pick among named answers, before the question. Written after
    # round 4 and before any model was scored on it: a held-out family that no training change looked at.
    "color": ("Not sure my screen shows it right, so what colour does the {ref} look to you?",
              "Pick one for the {ref}: red, green, blue, yellow, purple, orange or white?"),
    "shape": ("Not sure my screen shows it right, so what form does the {ref} take?",
              "Pick one for the {ref}: circle, square or triangle?"),
    "motion": ("Not sure my screen shows it right, so how is the {ref} getting around?",
               "Pick one for the {ref}: up, down, left, right, bigger, smaller or still?"),
    "count_all": ("Not sure my screen shows it right, so what's the total number of objects?",),
    "count_shape": ("Not sure my screen shows it right, so what's the total number of {shapes}?",),
    "count_color": ("Not sure my screen shows it right, so what's the total number of {color} things?",),
    "existence": ("Not sure my screen shows it right, so can {np} be seen at all?",
                  "Pick one for this clip: {np} present, or absent?"),
})

#: Every family, by name.
FAMILIES: dict[str, Family] = {f.name: f for f in (_CLASSIC, _CASUAL, _POLITE, _IMPERATIVE, _CURIOUS, _TERSE, _CLIP,
                                                    _FRONTED, _CHATTY, _FOOTAGE, _STORY, _INDIRECT,
                                                    _CHOICES, _ASIDE)}
#: The families the training data uses ("classic" among them).
TRAIN_FAMILIES: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.split == "train")
#: The families only out-of-template evaluation uses.
HELDOUT_FAMILIES: tuple[str, ...] = tuple(n for n, f in FAMILIES.items() if f.split == "heldout")
#: The values of ``phrasing=``: the two mixes and every family's name.
PHRASINGS: tuple[str, ...] = ("train", "heldout", *FAMILIES)


def family(name: str) -> Family:
    """The family called ``name``."""
    if name not in FAMILIES:
        raise KeyError(f"unknown template family {name!r}; families: {', '.join(FAMILIES)}")
    return FAMILIES[name]


def classic(intent: str) -> tuple[str, ...]:
    """The classic templates of ``intent`` (the ones the data's main random stream picks among)."""
    return _CLASSIC.frames[intent]


def frame_pieces(frame: str) -> list[str]:
    """The fixed words of a frame around its slots, each run normalised (lower case, letters, digits
    and spaces only): ``"The {ref}: what colour is it?"`` → ``["the", "what colour is it"]``."""
    return [p for p in (normalize(piece) for piece, _, _, _ in string.Formatter().parse(frame)) if p]


def normalize(text: str) -> str:
    """Lower case, apostrophes dropped, anything but letters and digits a space, single spaces."""
    text = text.lower().replace("'", "").replace("’", "")
    return " ".join(re.findall(r"[a-z0-9]+", text))


# ============================================================================================
# Words

#: Ways to name each shape: (singular, plural), the world's own word first.
SHAPE_WORDS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("ball", "balls"), ("dot", "dots"), ("disc", "discs"), ("disk", "disks")),
    "square": (("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    "triangle": (("triangle", "triangles"),),
}

#: Ways to name each object colour, the world's own word first; only names that map onto one
#: colour of this world without doubt.
COLOR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green",),
    "blue": ("blue",),
    "yellow": ("yellow",),
    "purple": ("purple", "violet"),
    "orange": ("orange",),
    "white": ("white",),
}


def _verb_forms(verbs: Sequence[tuple[str, str, str]], targets: Sequence[str]) -> tuple[tuple[str, str, str], ...]:
    return tuple((f"{s} {t}", f"{p} {t}", f"{g} {t}") for s, p, g in verbs for t in targets)


_TRAVEL_VERBS = (
    ("moves", "move", "moving"), ("goes", "go", "going"), ("heads", "head", "heading"),
    ("drifts", "drift", "drifting"), ("slides", "slide", "sliding"), ("travels", "travel", "travelling"),
    ("glides", "glide", "gliding"),
)

#: Ways to say each motion: (singular, plural, gerund), as in "a circle rises", "two circles rise",
#: "a circle rising". Every one reads back to its motion with parse_prompt.
MOTION_WORDING: dict[str, tuple[tuple[str, str, str], ...]] = {
    "left": _verb_forms(_TRAVEL_VERBS, ("left", "to the left", "leftward", "towards the left")),
    "right": _verb_forms(_TRAVEL_VERBS, ("right", "to the right", "rightward", "towards the right")),
    "up": _verb_forms(_TRAVEL_VERBS[:5], ("up", "upward", "upwards")) + (
        ("rises", "rise", "rising"), ("rises upward", "rise upward", "rising upward"),
        ("ascends", "ascend", "ascending"), ("climbs", "climb", "climbing"), ("climbs up", "climb up", "climbing up"),
        ("floats up", "float up", "floating up"),
    ),
    "down": _verb_forms(_TRAVEL_VERBS[:5], ("down", "downward", "downwards")) + (
        ("sinks", "sink", "sinking"), ("falls", "fall", "falling"), ("drops", "drop", "dropping"),
        ("descends", "descend", "descending"), ("sinks down", "sink down", "sinking down"),
        ("falls down", "fall down", "falling down"),
    ),
    "still": (
        ("stays still", "stay still", "staying still"), ("does not move", "do not move", "not moving"),
        ("doesn't move", "don't move", "not moving"), ("stays in place", "stay in place", "staying in place"),
        ("remains still", "remain still", "remaining still"), ("stands still", "stand still", "standing still"),
        ("is motionless", "are motionless", "sitting motionless"), ("is stationary", "are stationary", "staying stationary"),
        ("keeps still", "keep still", "keeping still"), ("stays static", "stay static", "staying static"),
    ),
    "grows": (
        ("grows", "grow", "growing"), ("gets bigger", "get bigger", "getting bigger"),
        ("grows larger", "grow larger", "growing larger"), ("expands", "expand", "expanding"),
        ("becomes bigger", "become bigger", "becoming bigger"), ("grows in size", "grow in size", "growing in size"),
        ("increases in size", "increase in size", "increasing in size"), ("gets larger", "get larger", "getting larger"),
    ),
    "shrinks": (
        ("shrinks", "shrink", "shrinking"), ("gets smaller", "get smaller", "getting smaller"),
        ("becomes smaller", "become smaller", "becoming smaller"), ("contracts", "contract", "contracting"),
        ("shrinks in size", "shrink in size", "shrinking in size"),
        ("decreases in size", "decrease in size", "decreasing in size"),
    ),
}

#: Adjectives that say a motion before the noun ("a motionless white circle").
MOTION_ADJECTIVES: dict[str, tuple[str, ...]] = {
    "up": ("rising",),
    "down": ("falling", "sinking"),
    "still": ("motionless", "stationary", "static", "unmoving"),
    "grows": ("growing", "expanding"),
    "shrinks": ("shrinking",),
}

_NUMBER_WORDS = {1: "one", 2: "two", 3: "three"}
# How often a slot uses a synonym instead of the world's own word.
_SHAPE_SYNONYM_SHARE = 0.35
_COLOR_SYNONYM_SHARE = 0.15
_ADJECTIVE_SHARE = 0.25

Slot = Callable[[np.random.Generator], str]


def _pick(rng: np.random.Generator, items: Sequence[Any]) -> Any:
    return items[int(rng.integers(len(items)))]


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def shape_word(rng: np.random.Generator, shape: str, plural: bool = False) -> str:
    """The shape's own word, or now and then a synonym ("ball" for a circle)."""
    words = SHAPE_WORDS[shape]
    pair = _pick(rng, words[1:]) if len(words) > 1 and rng.random() < _SHAPE_SYNONYM_SHARE else words[0]
    return pair[1] if plural else pair[0]


def color_word(rng: np.random.Generator, color: str) -> str:
    """The colour's own word, or now and then a synonym ("crimson" for red)."""
    words = COLOR_WORDS[color]
    return _pick(rng, words[1:]) if len(words) > 1 and rng.random() < _COLOR_SYNONYM_SHARE else words[0]


def motion_forms(rng: np.random.Generator, motion: str) -> tuple[str, str, str]:
    """One way of saying ``motion``: (singular, plural, gerund)."""
    return _pick(rng, MOTION_WORDING[motion])


def ref_slot(kind: str, shape: str, color: str, motion: str) -> Slot:
    """How a question names an object it can name by ``kind``: "both" (colour and shape), "shape",
    "color", "motion" or "none" (it is the only object)."""
    def slot(rng: np.random.Generator) -> str:
        noun = _pick(rng, ("object", "shape", "thing"))
        if kind == "both":
            return f"{color_word(rng, color)} {shape_word(rng, shape)}"
        if kind == "shape":
            return shape_word(rng, shape)
        if kind == "color":
            return f"{color_word(rng, color)} {_pick(rng, (noun, 'one'))}"
        if kind == "motion":
            singular, _, gerund = motion_forms(rng, motion)
            return _pick(rng, (f"{noun} that {singular}", f"{noun} {gerund}", f"one that {singular}", f"one {gerund}"))
        return noun
    return slot


def np_slot(shape: str, color: str) -> Slot:
    """One object with its article: "a red circle", "a crimson ball"."""
    def slot(rng: np.random.Generator) -> str:
        words = f"{color_word(rng, color)} {shape_word(rng, shape)}"
        return f"{_article(words)} {words}"
    return slot


def shapes_slot(shape: str) -> Slot:
    """A plural shape noun: "circles", "balls"."""
    return lambda rng: shape_word(rng, shape, plural=True)


def color_slot(color: str) -> Slot:
    return lambda rng: color_word(rng, color)


def objects_slot(groups: Sequence[tuple[int, str, str, str]], form: str) -> Slot:
    """Requested objects, ``groups`` of (count, shape, colour, motion), joined by "and": form "ger"
    ("two red circles rising"; sometimes "two rising red circles"), "rel" ("... that rise"),
    "clause" ("... rise") or "still" ("two red circles", for a picture: the motion is not said)."""
    def slot(rng: np.random.Generator) -> str:
        parts = []
        for count, shape, color, motion in groups:
            singular, plural, gerund = motion_forms(rng, motion)
            noun = f"{color_word(rng, color)} {shape_word(rng, shape, plural=count > 1)}"
            if form == "still":
                motion_words = ""
            elif form == "ger" and motion in MOTION_ADJECTIVES and rng.random() < _ADJECTIVE_SHARE:
                noun, motion_words = f"{_pick(rng, MOTION_ADJECTIVES[motion])} {noun}", ""
            elif form == "ger":
                motion_words = f" {gerund}"
            elif form == "rel":
                motion_words = f" that {singular if count == 1 else plural}"
            else:
                motion_words = f" {singular if count == 1 else plural}"
            head = f"{_article(noun)} {noun}" if count == 1 else f"{_NUMBER_WORDS[count]} {noun}"
            parts.append(head + motion_words)
        return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return slot


def background_np(rng: np.random.Generator, kind: str, colors: Sequence[str]) -> str:
    """A background with its article: "a gray background", "a grey backdrop", "a dark background" (black),
    "a light background" (white), "a grainy dark blue background"."""
    noun = "backdrop" if rng.random() < 0.25 else "background"
    if kind == "gradient":
        return f"a {colors[0]} to {colors[1]} gradient {noun}"
    name = colors[0]
    if name == "gray" and rng.random() < 0.3:
        name = "grey"
    if kind == "noise":
        return f"a {_pick(rng, ('noisy', 'grainy'))} {name} {noun}"
    if name in ("black", "white") and rng.random() < 0.3:
        name = "dark" if name == "black" else "light"
    return f"{_article(name)} {name} {noun}"


def background_slot(kind: str, colors: Sequence[str]) -> Slot:
    """Where the objects are, with a leading space: " on a gray background", " against a dark backdrop",
    " on black"."""
    def slot(rng: np.random.Generator) -> str:
        if kind == "plain" and rng.random() < 0.15:
            return f" on {colors[0]}"
        return f" {_pick(rng, ('on', 'on', 'against', 'over', 'with'))} {background_np(rng, kind, colors)}"
    return slot


def bg_np_slot(kind: str, colors: Sequence[str]) -> Slot:
    return lambda rng: background_np(rng, kind, colors)


def motion_slot(motion: str, which: int) -> Slot:
    """One form of a motion: ``which`` 0 singular ("rises"), 1 plural ("rise"), 2 gerund ("rising")."""
    return lambda rng: motion_forms(rng, motion)[which]


def feature_slot(kind: str, shape: str, color: str, motion: str) -> Slot:
    """A feature of a clip: kind "np" ("a red circle"), "shape" ("a ball"), "motion" ("something that
    rises") or "moving" ("a moving circle")."""
    def slot(rng: np.random.Generator) -> str:
        if kind == "np":
            return np_slot(shape, color)(rng)
        if kind == "shape":
            word = shape_word(rng, shape)
            return f"{_article(word)} {word}"
        if kind == "motion":
            singular, _, gerund = motion_forms(rng, motion)
            return _pick(rng, (f"something that {singular}", f"something {gerund}", f"an object that {singular}"))
        return f"a moving {shape_word(rng, shape)}"
    return slot


# ============================================================================================
# Noise

_PREFIXES = ("hey, ", "hi! ", "ok, ", "so, ", "hmm, ", "quick question: ")
_SUFFIXES = (" thanks", " thank you!", " please", " :)", " thx")
_PREFIX_SHARE = 0.08
_SUFFIX_SHARE = 0.08
_LOWER_CASE_SHARE = 0.2
_NO_PUNCTUATION_SHARE = 0.2
_TYPO_SHARE = 0.1


def _typo(rng: np.random.Generator, frame: str) -> str:
    """``frame`` with one small typo (two letters swapped, one dropped or one doubled) in one of its
    own words of four letters or more; slots are left alone."""
    spans = [m.span() for m in re.finditer(r"(?<![{\w'])[A-Za-z]{4,}(?![\w}'])", frame)]
    if not spans:
        return frame
    start, end = _pick(rng, spans)
    word = frame[start:end]
    i = int(rng.integers(1, len(word) - 2))  # an inner letter: the first and the last stay
    kind = int(rng.integers(3))
    if kind == 0:
        word = word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    elif kind == 1:
        word = word[:i] + word[i + 1 :]
    else:
        word = word[:i] + word[i] + word[i:]
    return frame[:start] + word + frame[end:]


def _careless(rng: np.random.Generator, text: str) -> str:
    """``text`` as typed in a hurry, now and then: an extra word before or after it, all lower case,
    no final punctuation mark."""
    if rng.random() < _PREFIX_SHARE:
        keep = text[:2] in ("I ", "I'")
        text = _pick(rng, _PREFIXES) + (text if keep else text[:1].lower() + text[1:])
    if rng.random() < _LOWER_CASE_SHARE:
        text = text.lower()
    if rng.random() < _NO_PUNCTUATION_SHARE:
        text = text.rstrip(".?!")
    if rng.random() < _SUFFIX_SHARE:
        text = text + _pick(rng, _SUFFIXES)
    return text


# ============================================================================================
# Choosing a wording


class Phrase(NamedTuple):
    """A worded text, the family whose frame it uses, and the words its slots were filled with (empty
    for "classic", whose text the caller filled)."""

    text: str
    family: str
    slots: Mapping[str, str] = {}


class Wording:
    """Words the user side of the synthetic world's text for one ``phrasing`` (see the module
    docstring), drawing every choice from its own generator ``rng``.

    :meth:`say` takes the canonical text (a classic template, filled, chosen by the caller's own
    random stream) and the slots to fill another family's frame with.
    """

    def __init__(self, phrasing: str = "train", rng: np.random.Generator | None = None) -> None:
        if phrasing not in PHRASINGS:
            raise ValueError(f"unknown phrasing {phrasing!r}; choose {', '.join(PHRASINGS)}")
        self.phrasing = phrasing
        self.rng = rng if rng is not None else np.random.default_rng(0)
        if phrasing in ("train", "heldout"):
            self.families = [FAMILIES[n] for n in (TRAIN_FAMILIES if phrasing == "train" else HELDOUT_FAMILIES)]
            self.noisy = True
        else:
            self.families = [FAMILIES[phrasing]]
            self.noisy = False

    @classmethod
    def for_rng(cls, phrasing: str, rng: np.random.Generator) -> Wording:
        """A wording whose generator is a child of ``rng`` (``rng.spawn``): it draws nothing from ``rng``,
        so the texts' content, drawn from ``rng``, does not depend on the phrasing."""
        return cls(phrasing, rng.spawn(1)[0])

    def say(self, intent: str, canonical: str, *, noisy: bool = True, **slots: Slot | str) -> Phrase:
        """``canonical`` (family "classic"), or the same request in a frame of another family of this
        phrasing, its slots filled from ``slots`` (strings, or functions of the generator; only the
        ones the frame uses are called). ``noisy=False``: never careless (for pieces joined to other text)."""
        options = [f for f in self.families if intent in f.frames]
        if not options:
            if self.phrasing in ("train", "heldout"):
                raise ValueError(f"no {self.phrasing} family has frames for {intent!r}")
            return Phrase(canonical, "classic")
        chosen = _pick(self.rng, options)
        if chosen.name == "classic":
            return Phrase(canonical, "classic")
        frame = _pick(self.rng, chosen.frames[intent])
        careless = self.noisy and noisy
        if careless and self.rng.random() < _TYPO_SHARE:
            frame = _typo(self.rng, frame)
        values = {}
        for _, name, _, _ in string.Formatter().parse(frame):
            if name and name not in values:
                value = slots[name]
                values[name] = value if isinstance(value, str) else value(self.rng)
        text = frame.format(**values)
        text = text[:1].upper() + text[1:] if frame.startswith("{") else text
        return Phrase(_careless(self.rng, text) if careless else text, chosen.name, values)
