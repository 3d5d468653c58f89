"""The built-in text the bootstrap tokenizer learns from: English-like sentences, dialogue, arithmetic and code,
generated from a seed so that the same seed always yields the same corpus (and so the same tokenizer)."""

from __future__ import annotations

import random
from collections.abc import Iterator

SUBJECTS = (
    "the model",
    "a worker",
    "the registry",
    "our team",
    "the gateway",
    "a student",
    "the river",
    "my friend",
    "the engine",
    "a small robot",
    "the city",
    "the old library",
    "a careful engineer",
    "the morning train",
    "the garden",
    "a quiet cat",
    "the market",
    "the teacher",
    "a young pilot",
    "the storm",
)
VERBS = (
    "reads",
    "writes",
    "builds",
    "signs",
    "watches",
    "carries",
    "follows",
    "teaches",
    "measures",
    "repairs",
    "finds",
    "opens",
    "crosses",
    "paints",
    "answers",
    "counts",
    "visits",
    "trains",
    "checks",
    "remembers",
)
OBJECTS = (
    "a long letter",
    "the dataset",
    "every adapter",
    "a new bridge",
    "the blue door",
    "three apples",
    "the last question",
    "a bright lamp",
    "the mountain road",
    "a heavy box",
    "the secret map",
    "seven stones",
    "the checkpoint",
    "a warm coat",
    "the evening news",
    "a paper boat",
    "the broken clock",
    "an open window",
)
PLACES = (
    "in the morning",
    "after lunch",
    "near the station",
    "before the rain",
    "at the harbour",
    "on monday",
    "under the bridge",
    "during the winter",
    "beside the lake",
    "at midnight",
    "in the kitchen",
    "on the hill",
)
TOPICS = (
    "weather",
    "music",
    "history",
    "cooking",
    "travel",
    "science",
    "sport",
    "gardening",
    "poetry",
    "machines",
    "astronomy",
    "painting",
    "languages",
    "mathematics",
    "oceans",
    "forests",
)
CODE = (
    "def add(a, b):\n    return a + b\n",
    "for i in range(10):\n    print(i * i)\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n",
    "import json\ndata = json.loads(text)\nprint(data['name'])\n",
    "if value is None:\n    raise ValueError('missing value')\n",
    "SELECT name, count(*) FROM artifacts GROUP BY name ORDER BY name;\n",
)
_SYLLABLES = (
    "ka",
    "lo",
    "mi",
    "ne",
    "ra",
    "to",
    "vu",
    "shi",
    "den",
    "bar",
    "qua",
    "tor",
    "lin",
    "mer",
    "zo",
    "fa",
    "gri",
    "pel",
    "sun",
    "wex",
    "dra",
    "ol",
    "ix",
    "ume",
    "ber",
    "cal",
    "tis",
    "ven",
    "hor",
    "ply",
)


def sentences(seed: int, count: int = 30_000) -> Iterator[str]:
    """`count` lines of varied text; every call with the same seed yields the same lines."""
    rng = random.Random(seed)
    # Invented names give BPE enough distinct pieces to fill a vocabulary of several thousand merges.
    names = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 4))).capitalize() for _ in range(3000)]
    for i in range(count):
        kind = i % 6
        if kind == 0:
            yield (
                f"{rng.choice(SUBJECTS).capitalize()} {rng.choice(VERBS)} {rng.choice(OBJECTS)} "
                f"{rng.choice(PLACES)}, and {rng.choice(names)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}."
            )
        elif kind == 1:
            a, b = rng.randint(0, 999), rng.randint(0, 999)
            yield f"Question: what is {a} plus {b}? Answer: {a + b}. Question: what is {a} times 2? Answer: {2 * a}."
        elif kind == 2:
            yield (
                f"<|user|>\nTell me about {rng.choice(TOPICS)}, {rng.choice(names)}.</s>\n"
                f"<|assistant|>\n{rng.choice(names)} says that {rng.choice(SUBJECTS)} {rng.choice(VERBS)} "
                f"{rng.choice(OBJECTS)}.</s>"
            )
        elif kind == 3:
            yield rng.choice(CODE).replace("value", rng.choice(names).lower())
        elif kind == 4:
            yield " ".join(rng.choice(names) for _ in range(rng.randint(4, 12))) + "."
        else:
            yield (
                f"On {rng.randint(1, 28)}/{rng.randint(1, 12)}/{rng.randint(1990, 2030)} the {rng.choice(TOPICS)} "
                f"club met {rng.choice(PLACES)}; {rng.randint(2, 90)} people came and {rng.choice(names)} spoke."
            )
