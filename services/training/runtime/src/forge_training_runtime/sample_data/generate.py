"""Regenerate `instructions.jsonl`: short synthetic alpaca records a tiny model can learn in a minute.

Run `python -m forge_training_runtime.sample_data.generate` to rewrite the file; the output is fixed
by the seed, so the committed file and the script always agree.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT_FILE = Path(__file__).with_name("instructions.jsonl")

CAPITALS = {
    "France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Norway": "Oslo", "Sweden": "Stockholm",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin", "Hungary": "Budapest",
    "Egypt": "Cairo", "Kenya": "Nairobi", "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi",
    "Peru": "Lima", "Chile": "Santiago", "Cuba": "Havana", "Canada": "Ottawa", "Russia": "Moscow",
    "Turkey": "Ankara", "Iran": "Tehran", "Iraq": "Baghdad", "Thailand": "Bangkok", "Vietnam": "Hanoi",
    "Argentina": "Buenos Aires", "Mexico": "Mexico City", "Belgium": "Brussels",
}  # fmt: skip
POSITIVE_WORDS = ["loved", "enjoyed", "liked", "adored", "appreciated"]
NEGATIVE_WORDS = ["hated", "disliked", "regretted", "despised", "resented"]
SUBJECTS = ["the movie", "the food", "the service", "the book", "the hotel", "the concert", "the game"]
ANTONYMS = {
    "hot": "cold", "big": "small", "fast": "slow", "happy": "sad", "light": "dark", "up": "down",
    "open": "closed", "early": "late", "full": "empty", "hard": "soft", "old": "new", "rich": "poor",
    "strong": "weak", "wet": "dry", "high": "low", "long": "short", "loud": "quiet", "near": "far",
    "thick": "thin", "young": "old",
}  # fmt: skip
WORDS = [
    "apple", "river", "stone", "cloud", "tiger", "green", "house", "music", "paper", "light",
    "bread", "chair", "plant", "water", "night", "smile", "train", "sugar", "piano", "ocean",
]  # fmt: skip


def sentiment_records(rng: random.Random) -> list[dict[str, str]]:
    """Sentiment with two fixed labels, decided by one verb."""
    records = []
    for label, verbs in (("positive", POSITIVE_WORDS), ("negative", NEGATIVE_WORDS)):
        for verb in verbs:
            for subject in SUBJECTS:
                records.append(_record("Classify the sentiment as positive or negative.",
                                       f"I {verb} {subject}.", label))  # fmt: skip
    return rng.sample(records, 60)


def capital_records() -> list[dict[str, str]]:
    """Capital-of-country facts, asked in three ways; one wants a sentence, which gives BLEU n-grams."""
    records = []
    for country, capital in CAPITALS.items():
        records.append(_record("What is the capital of the country?", country, capital))
        records.append(_record(f"Name the capital city of {country}.", "", capital))
        records.append(_record("Answer in a full sentence: what is the capital of the country?", country,
                               f"The capital of {country} is {capital}."))  # fmt: skip
    return records


def arithmetic_records(rng: random.Random) -> list[dict[str, str]]:
    """Additions of small numbers."""
    pairs = [(rng.randint(0, 20), rng.randint(0, 20)) for _ in range(60)]
    return [_record("Add the two numbers.", f"{a} + {b}", str(a + b)) for a, b in pairs]


def reversal_records() -> list[dict[str, str]]:
    """Words spelt backwards."""
    return [_record("Reverse the word.", word, word[::-1]) for word in WORDS]


def antonym_records() -> list[dict[str, str]]:
    """Opposites, asked in two ways."""
    records = []
    for word, opposite in ANTONYMS.items():
        records.append(_record("Give the opposite of the word.", word, opposite))
        records.append(_record(f"What is the opposite of {word}?", "", opposite))
    return records


def _record(instruction: str, input_text: str, output: str) -> dict[str, str]:
    return {"instruction": instruction, "input": input_text, "output": output}


def generate(seed: int = 7) -> list[dict[str, str]]:
    """All records, shuffled with `seed`."""
    rng = random.Random(seed)
    records = [
        *sentiment_records(rng),
        *capital_records(),
        *arithmetic_records(rng),
        *reversal_records(),
        *antonym_records(),
    ]
    rng.shuffle(records)
    return records


def main() -> None:
    """Write the records to OUT_FILE, one JSON object per line."""
    lines = [json.dumps(record, ensure_ascii=False) for record in generate()]
    OUT_FILE.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(lines)} records to {OUT_FILE}")


if __name__ == "__main__":
    main()
