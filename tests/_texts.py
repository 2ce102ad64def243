"""Small review-like texts the tests write: sentiment words hidden among filler words."""

from __future__ import annotations

import csv
import random
from pathlib import Path

POSITIVE = ["great", "wonderful", "excellent", "loved", "superb", "fun", "brilliant", "moving"]
NEGATIVE = ["awful", "boring", "terrible", "hated", "dull", "weak", "poor", "tedious"]
FILLER = [
    *("the", "movie", "was", "a", "story", "with", "actors"),
    *("and", "music", "plot", "scenes", "film", "it", "this"),
]


def write_reviews(path: Path, rows: int = 300, *, empty_rows: int = 0, seed: int = 0) -> Path:
    """A CSV with columns `text` and `label` ("pos"/"neg"); the first `empty_rows` texts
    are empty."""
    rng = random.Random(seed)
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for i in range(rows):
            label = rng.choice(["pos", "neg"])
            cue = POSITIVE if label == "pos" else NEGATIVE
            words = rng.choices(FILLER, k=rng.randint(4, 40)) + rng.choices(cue, k=2)
            rng.shuffle(words)
            writer.writerow(["" if i < empty_rows else " ".join(words), label])
    return path
