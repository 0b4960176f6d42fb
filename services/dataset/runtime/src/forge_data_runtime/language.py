"""Language identification with py3langid (langid.py's naive Bayes model over byte n-grams, 97
languages; the model ships inside the wheel, nothing is downloaded)."""

from __future__ import annotations

from functools import cache
from typing import Any

from forge_contracts.processing import Language

Record = dict[str, Any]
SAMPLE_CHARS = 2000
"""The detector reads the first this many characters of a text: enough for a confident answer."""


@cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def detect(text: str) -> tuple[str, float]:
    """The most likely language (ISO 639-1) and its probability."""
    language, probability = _identifier().classify(text[:SAMPLE_CHARS])
    return str(language), float(probability)


class LanguageFilter:
    def __init__(self, params: Language) -> None:
        self.params = params
        self.keep = frozenset(params.keep)
        _identifier()

    def apply(self, record: Record) -> str | None:
        p = self.params
        value = record.get(p.field)
        if not isinstance(value, str) or not value.strip():
            return None
        language, probability = detect(value)
        if p.annotate is not None:
            record[p.annotate] = language
        if self.keep and language not in self.keep:
            return f"language {language} ({probability:.2f}) not in {sorted(self.keep)}"
        if probability < p.min_confidence:
            return f"language {language} detected with {probability:.2f} < min_confidence {p.min_confidence}"
        return None


__all__ = ["LanguageFilter", "detect"]
