"""A small corpus of English prose with one planted problem per record kind, shared by the processing
tests: markup, personal data, a short text, an exact and a near duplicate, German text, a keyword."""

from __future__ import annotations

import random
from typing import Any

NOUNS = (
    "river harbour market garden library station village museum bridge forest valley orchard theatre "
    "workshop kitchen mountain island factory school hospital"
).split()
ADJECTIVES = "quiet ancient busy narrow bright careful gentle patient steady curious distant modern".split()
VERBS = "walked returned travelled listened waited worked studied painted wandered rested".split()


def prose(seed: int) -> str:
    """A paragraph of plain English that passes the quality heuristics."""
    rng = random.Random(seed)

    def a() -> str:
        return rng.choice(ADJECTIVES)

    def n() -> str:
        return rng.choice(NOUNS)

    def v() -> str:
        return rng.choice(VERBS)

    templates = (
        lambda: f"The {a()} {n()} {v()} with the {a()} {n()} and found a {n()} near the {n()}.",
        lambda: f"Every morning a {a()} traveller {v()} past the {n()}, because the {n()} was {a()}.",
        lambda: f"In the {n()} they {v()} for hours, and nobody asked why the {a()} {n()} had changed.",
        lambda: f"Later that year the {n()} became {a()} again, so people {v()} to the {a()} {n()}.",
        lambda: f"She remembered how the {a()} {n()} looked when her friends {v()} beside the {n()}.",
    )
    return " ".join(sentence() for sentence in rng.sample(templates, len(templates)))


def near_copy(text: str, changed: int, seed: int) -> str:
    """`text` with `changed` words replaced."""
    rng = random.Random(seed)
    words = text.split(" ")
    for position in rng.sample(range(len(words)), changed):
        words[position] = "zebra"
    return " ".join(words)


GERMAN = (
    "Der alte Fluss fliesst langsam durch das stille Dorf und die Kinder spielen jeden Tag am Ufer. "
    "Im Sommer kommen viele Menschen aus der Stadt, um die frische Luft und die Ruhe zu geniessen. "
    "Am Abend sitzen die Nachbarn zusammen und erzaehlen Geschichten aus vergangenen Zeiten."
)


def corpus() -> tuple[list[dict[str, Any]], dict[str, int]]:
    """40 records (`id` = position, 1-based) and where the planted ones are."""
    records = [{"id": i + 1, "text": prose(i)} for i in range(40)]
    planted = {"html": 3, "pii": 6, "short": 9, "exact": 14, "near": 22, "german": 27, "keyword": 33}
    records[2]["text"] = f"<div><p>{prose(2)}</p><script>track()</script><p>Second &amp; last.</p></div>"
    records[5]["text"] = prose(5) + " Write to bob.smith@example.com or call +86 138 0013 8000 today."
    records[8]["text"] = "Thanks, ok."
    records[13]["text"] = "  " + records[0]["text"].replace(" ", "   ", 3) + "  "  # equal once normalised
    records[21]["text"] = near_copy(records[10]["text"], 2, seed=7)
    records[26]["text"] = GERMAN
    records[32]["text"] = prose(32) + " This mentions the forbidden-word once."
    return records, planted
