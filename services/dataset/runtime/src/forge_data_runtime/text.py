"""The record-at-a-time cleaning operators on text: markup, Unicode, keywords, personal data, quality.

Each is a class built once from its parameters (`forge_contracts.processing`) whose `apply(record)`
changes the record in place and returns `None` to keep it, or returns the reason to drop it. A field
that is missing or not a string is left alone (a quality or language check passes it on unchanged).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from typing import Any

from forge_contracts.processing import Keywords, Normalize, Pii, Quality, StripHtml

Record = dict[str, Any]


def _texts(record: Record, fields: Iterable[str]) -> Iterable[tuple[str, str]]:
    for name in fields:
        value = record.get(name)
        if isinstance(value, str):
            yield name, value


# Block elements end a line of text; the parser only sees their text nodes, so a line break is put after
# each closing tag (and <br>) first.
_BLOCK_END = re.compile(  # starts with a literal `<`, so the engine skips to each one
    r"(?i)<(?:br\s*/?|/(?:p|div|li|h[1-6]|tr|td|th|title|section|article|header|footer|blockquote|pre|"
    r"table|ul|ol|dd|dt|figcaption|nav|aside|main)\s*)>"
)
_MARKUP = re.compile(r"<[A-Za-z!/?]|&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")


def _line_break_after(found: re.Match[str]) -> str:
    return found.group(0) + "\n"


class HtmlStripper:
    def __init__(self, params: StripHtml) -> None:
        from selectolax.lexbor import LexborHTMLParser

        self.params = params
        self._parser = LexborHTMLParser

    def text(self, value: str) -> str:
        if ("<" not in value and "&" not in value) or not _MARKUP.search(value):
            return value
        tree = self._parser(_BLOCK_END.sub(_line_break_after, value))
        tree.strip_tags(["script", "style", "noscript", "template", "head"])
        root = tree.body or tree.root
        text = root.text(separator="") if root is not None else ""
        # lines trimmed, blank ones dropped (a regex over every blank is several times slower)
        return "\n".join(line for line in (part.strip(" \t") for part in text.split("\n")) if line).strip()

    def apply(self, record: Record) -> str | None:
        seen = False
        for name, value in list(_texts(record, self.params.fields)):
            seen = True
            record[name] = self.text(value)
        if seen and self.params.drop_empty:
            if not any(value.strip() for _, value in _texts(record, self.params.fields)):
                return "no text left after removing markup"
        return None


_CONTROL = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200f\u2028\u2029\u202a-\u202e\u2060-\u2064\ufeff]"
)
_SPACES = re.compile(r"[^\S\n]+")
_MANY_BLANK_LINES = re.compile(r"\n[^\S\n]*\n(?:[^\S\n]*\n)+")


class Normalizer:
    def __init__(self, params: Normalize) -> None:
        self.params = params

    def text(self, value: str) -> str:
        p = self.params
        value = unicodedata.normalize(p.form, value)
        if p.strip_control:
            value = _CONTROL.sub("", value.replace("\r\n", "\n").replace("\r", "\n"))
        if p.collapse_whitespace:
            value = _MANY_BLANK_LINES.sub("\n\n", value)
            value = "\n".join(_SPACES.sub(" ", line).strip() for line in value.split("\n")).strip()
        if p.lowercase:
            value = value.lower()
        return value

    def apply(self, record: Record) -> str | None:
        for name, value in list(_texts(record, self.params.fields)):
            record[name] = self.text(value)
        return None


_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")


class KeywordFilter:
    def __init__(self, params: Keywords) -> None:
        self.params = params
        words = sorted(set(params.keywords), key=len, reverse=True)
        parts = []
        for word in words:
            escaped = re.escape(word)
            # A CJK keyword has no word boundaries around it: it is found anywhere.
            if params.whole_words and not _CJK.search(word):
                escaped = rf"(?<!\w){escaped}(?!\w)"
            parts.append(escaped)
        self.pattern = re.compile("|".join(parts), re.IGNORECASE)

    def apply(self, record: Record) -> str | None:
        for name, value in _texts(record, self.params.fields):
            found = self.pattern.search(value)
            if found is not None:
                return f"keyword {found.group(0)!r} in {name}"
        return None


_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def resident_id_valid(number: str) -> bool:
    """A Chinese resident ID (GB 11643): 17 digits and an ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit():
        return False
    total = sum(int(digit) * weight for digit, weight in zip(number[:17], _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11] == number[17].upper()


_PII: dict[str, tuple[re.Pattern[str], str]] = {
    "email": (
        re.compile(
            r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}"
        ),
        "[EMAIL]",
    ),
    "id_number": (re.compile(r"(?<![\dA-Za-z])(?:\d{17}[\dXx]|\d{3}-\d{2}-\d{4})(?![\dA-Za-z])"), "[ID]"),
    "phone": (
        re.compile(
            r"(?<![\w+])(?:"
            r"(?:\+?86[ -]?)?1[3-9]\d(?:[ -]?\d{4}){2}"  # Chinese mobile
            r"|\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}(?:[ .-]?\d{2,4}){1,4}"  # international
            r"|\(?\d{3}\)?[ .-]\d{3}[ .-]\d{4}"  # North American
            r")(?!\d)"
        ),
        "[PHONE]",
    ),
    "ip_address": (
        re.compile(
            r"(?<![\d.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\d.])"
        ),
        "[IP]",
    ),
}
PII_ORDER = ("email", "id_number", "phone", "ip_address")
"""ID numbers before phone numbers: an ID holds runs of digits a phone pattern would otherwise take."""


class PiiFilter:
    def __init__(self, params: Pii) -> None:
        self.params = params
        self.kinds = [kind for kind in PII_ORDER if kind in params.kinds]

    def _replace(self, kind: str, found: re.Match[str]) -> str:
        text = found.group(0)
        if kind == "id_number" and len(text) == 18 and not resident_id_valid(text):
            return text  # 18 digits that are not an ID (an order number ...)
        return _PII[kind][1]

    def scrub(self, value: str) -> tuple[str, list[str]]:
        """The text with each finding masked, and the kinds found."""
        found: list[str] = []
        for kind in self.kinds:
            pattern = _PII[kind][0]

            def mask(match: re.Match[str], kind: str = kind) -> str:
                replaced = self._replace(kind, match)
                if replaced != match.group(0):
                    found.append(kind)
                return replaced

            value = pattern.sub(mask, value)
        return value, found

    def apply(self, record: Record) -> str | None:
        for name, value in list(_texts(record, self.params.fields)):
            scrubbed, found = self.scrub(value)
            if found and self.params.action == "drop":
                return f"personal data ({', '.join(sorted(set(found)))}) in {name}"
            record[name] = scrubbed
        return None


_WORD = re.compile(r"\w+(?:[-']\w+)*|[^\w\s]+")
_HAS_ALPHA = re.compile(r"[^\W\d_]")
_BULLETS = ("•", "●", "○", "▪", "■", "□", "-", "*", "‣", "\u2043", "◦")
_TERMINAL = (".", "!", "?", '"', "'", "”", "’", "。", "！", "？")  # noqa: RUF001 (typographic quotes)


def _top_ngram_share(words: list[str], n: int) -> float:
    grams = Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))
    if not grams:
        return 0.0
    gram, count = grams.most_common(1)[0]
    if count <= 1:
        return 0.0
    return sum(len(w) for w in gram) * count / max(sum(len(w) for w in words), 1)


def _duplicate_ngram_share(words: list[str], n: int) -> float:
    """Share of characters inside word n-grams that occur more than once (each character counted once)."""
    if len(words) < n:
        return 0.0
    seen: set[tuple[str, ...]] = set()
    covered = [False] * len(words)
    for i in range(len(words) - n + 1):
        gram = tuple(words[i : i + n])
        if gram in seen:
            for j in range(i, i + n):
                covered[j] = True
        else:
            seen.add(gram)
    total = sum(len(w) for w in words)
    return sum(len(w) for w, dup in zip(words, covered, strict=True) if dup) / max(total, 1)


class QualityFilter:
    def __init__(self, params: Quality) -> None:
        self.params = params
        self.stop_words = frozenset(w.lower() for w in params.stop_words)

    def check(self, text: str) -> str | None:
        """The first failed check as `name value` (None when the text passes)."""
        p = self.params
        lowered = text.lower()
        if p.forbid_lorem_ipsum and "lorem ipsum" in lowered:
            return "contains 'lorem ipsum'"
        if p.forbid_curly_bracket and "{" in text:
            return "contains a curly bracket"
        tokens = _WORD.findall(text)
        words = [w for w in tokens if _HAS_ALPHA.search(w) or w.isdigit()]
        n = len(words)
        if p.min_words is not None and n < p.min_words:
            return f"{n} words < min_words {p.min_words}"
        if p.max_words is not None and n > p.max_words:
            return f"{n} words > max_words {p.max_words}"
        if n:
            mean = sum(len(w) for w in words) / n
            if p.min_mean_word_length is not None and mean < p.min_mean_word_length:
                return f"mean word length {mean:.2f} < {p.min_mean_word_length}"
            if p.max_mean_word_length is not None and mean > p.max_mean_word_length:
                return f"mean word length {mean:.2f} > {p.max_mean_word_length}"
            if p.max_symbol_word_ratio is not None:
                symbols = text.count("#") + text.count("...") + text.count("…")
                if symbols / n > p.max_symbol_word_ratio:
                    return f"symbol/word ratio {symbols / n:.3f} > {p.max_symbol_word_ratio}"
            if p.min_alpha_words_ratio is not None:
                alpha = sum(1 for w in words if _HAS_ALPHA.search(w)) / n
                if alpha < p.min_alpha_words_ratio:
                    return f"alphabetic word ratio {alpha:.3f} < {p.min_alpha_words_ratio}"
            if p.min_stop_words is not None and self.stop_words:
                stop = sum(1 for w in words if w.lower() in self.stop_words)
                if stop < p.min_stop_words:
                    return f"{stop} stop words < min_stop_words {p.min_stop_words}"
        lines = [line.strip() for line in text.split("\n") if line.strip()]
        if lines:
            if p.max_bullet_lines_ratio is not None:
                bullets = sum(1 for line in lines if line.startswith(_BULLETS)) / len(lines)
                if bullets > p.max_bullet_lines_ratio:
                    return f"bullet line ratio {bullets:.3f} > {p.max_bullet_lines_ratio}"
            if p.max_ellipsis_lines_ratio is not None:
                ellipses = sum(1 for line in lines if line.endswith(("...", "…"))) / len(lines)
                if ellipses > p.max_ellipsis_lines_ratio:
                    return f"ellipsis line ratio {ellipses:.3f} > {p.max_ellipsis_lines_ratio}"
            if p.max_duplicate_lines_ratio is not None and len(lines) > 1:
                duplicates = len(lines) - len(set(lines))
                if duplicates / len(lines) > p.max_duplicate_lines_ratio:
                    share = duplicates / len(lines)
                    return f"duplicate line ratio {share:.3f} > {p.max_duplicate_lines_ratio}"
            if p.min_terminal_punctuation_lines_ratio is not None:
                ended = sum(1 for line in lines if line.endswith(_TERMINAL)) / len(lines)
                floor = p.min_terminal_punctuation_lines_ratio
                if ended < floor:
                    return f"terminal punctuation line ratio {ended:.3f} < {floor}"
        lowered_words = [w.lower() for w in words]
        for size, limit in sorted(p.max_top_ngram_ratio.items(), key=lambda item: int(item[0])):
            share = _top_ngram_share(lowered_words, int(size))
            if share > limit:
                return f"top {size}-gram share {share:.3f} > {limit}"
        for size, limit in sorted(p.max_duplicate_ngram_ratio.items(), key=lambda item: int(item[0])):
            share = _duplicate_ngram_share(lowered_words, int(size))
            if share > limit:
                return f"duplicate {size}-gram share {share:.3f} > {limit}"
        return None

    def apply(self, record: Record) -> str | None:
        value = record.get(self.params.field)
        if not isinstance(value, str):
            return None
        failed = self.check(value)
        return None if failed is None else f"quality: {failed}"


__all__ = [
    "HtmlStripper",
    "KeywordFilter",
    "Normalizer",
    "PiiFilter",
    "QualityFilter",
    "Record",
    "resident_id_valid",
]
