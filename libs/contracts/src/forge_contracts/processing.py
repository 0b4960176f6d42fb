"""Data-processing pipelines (DP-1): a list of operators with their parameters, declared as data.

The dataset service validates a pipeline when it is asked for (an unknown operator or a bad parameter is
a 422 naming the operator's position) and records it with the task, so a run can be repeated from its
record; the data runtime (`forge_data_runtime`, run as a scheduler workload on Ray) executes it. Each
operator keeps, changes or drops records and counts what it did; a drop always carries the operator and
the reason into the task's report.

| op | does |
|---|---|
| `strip_html` | replaces markup in text fields by its text (scripts and styles dropped, entities decoded) |
| `normalize` | Unicode normal form, control characters removed, whitespace collapsed, optional lower case |
| `language` | detects the language of a text field (model in its wheel); keeps the listed languages |
| `quality` | Gopher/C4 heuristics: words, word length, symbols, bullets, ellipses, stop words, repetition |
| `keywords` | drops records that contain a listed keyword |
| `pii` | finds e-mail addresses, phone numbers, ID numbers and IP addresses; masks them or drops the record |
| `exact_dedup` | keeps the first record of each group with identical (optionally normalised) fields |
| `near_dedup` | MinHash-LSH over word shingles; keeps the first record of each near-duplicate cluster |
| `rule` | a user-written Python expression or function, run in a sandbox (no network; CPU, memory capped) |
| `augment_*` | augmented copies of text, images, audio, video (DP-2, `forge_contracts.augmentation`) |

Records keep their source's identity through the run: every output record is traced to the source record
it came from (and, for an augmented copy, the operator and seed that made it).
"""

from __future__ import annotations

import ast
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from forge_contracts.augmentation import (
    AUGMENT_OPS,
    MEDIA_OPS,
    AugmentAudio,
    AugmentImage,
    AugmentText,
    AugmentVideo,
    models_named,
)
from forge_contracts.registered import ModelFiles, RegisteredModel

FieldName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
"""A top-level field of the records (a JSON object's key)."""


class _Op(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class StripHtml(_Op):
    """Replace markup in the fields by its text: tags removed, `script`/`style` content dropped, entities
    decoded, block elements turned into line breaks."""

    op: Literal["strip_html"]
    fields: list[FieldName] = Field(default_factory=lambda: ["text"], min_length=1, max_length=50)
    drop_empty: bool = Field(default=True, description="Drop a record whose fields are all empty after.")


class Normalize(_Op):
    """Unicode normalisation of the fields, control characters removed, whitespace collapsed."""

    op: Literal["normalize"]
    fields: list[FieldName] = Field(default_factory=lambda: ["text"], min_length=1, max_length=50)
    form: Literal["NFC", "NFKC", "NFD", "NFKD"] = "NFKC"
    collapse_whitespace: bool = Field(
        default=True, description="Runs of spaces and tabs become one space; of blank lines, one blank line."
    )
    strip_control: bool = Field(default=True, description="Remove control and zero-width characters.")
    lowercase: bool = False


LanguageCode = Annotated[str, StringConstraints(pattern=r"^[a-z]{2,3}$")]


class Language(_Op):
    """Detect the language of `field` (ISO 639-1 codes, 97 languages); keep records in `keep` (all when
    empty) detected with at least `min_confidence`; write the code into `annotate` if given."""

    op: Literal["language"]
    field: FieldName = "text"
    keep: list[LanguageCode] = Field(default_factory=list, max_length=100)
    min_confidence: float = Field(default=0.0, ge=0.0, le=1.0)
    annotate: FieldName | None = Field(default="language", description="Field to write the language into.")


ENGLISH_STOP_WORDS = ("the", "be", "to", "of", "and", "that", "have", "with")
"""Gopher's stop words: a document of real prose has at least two of them."""


TopNgram = Literal["2", "3", "4"]
DuplicateNgram = Literal["5", "6", "7", "8", "9", "10"]


def _top_ngram_defaults() -> dict[TopNgram, float]:
    return {"2": 0.2, "3": 0.18, "4": 0.16}


def _duplicate_ngram_defaults() -> dict[DuplicateNgram, float]:
    return {"5": 0.15, "6": 0.14, "7": 0.13, "8": 0.12, "9": 0.11, "10": 0.10}


class Quality(_Op):
    """Gopher (Rae et al. 2021) and C4 (Raffel et al. 2020) quality heuristics on `field`; each threshold
    can be changed, and `null` turns that check off. A record failing a check is dropped with the check's
    name and measured value as its reason."""

    op: Literal["quality"]
    field: FieldName = "text"
    min_words: int | None = Field(default=50, ge=0)
    max_words: int | None = Field(default=100_000, ge=1)
    min_mean_word_length: float | None = Field(default=3.0, ge=0)
    max_mean_word_length: float | None = Field(default=10.0, ge=0)
    max_symbol_word_ratio: float | None = Field(default=0.1, ge=0, description="`#` and `...` per word.")
    max_bullet_lines_ratio: float | None = Field(default=0.9, ge=0, le=1)
    max_ellipsis_lines_ratio: float | None = Field(default=0.3, ge=0, le=1)
    min_alpha_words_ratio: float | None = Field(
        default=0.8, ge=0, le=1, description="Words with at least one letter."
    )
    stop_words: list[str] = Field(default_factory=lambda: list(ENGLISH_STOP_WORDS), max_length=10_000)
    min_stop_words: int | None = Field(default=2, ge=0)
    max_duplicate_lines_ratio: float | None = Field(default=0.3, ge=0, le=1)
    max_top_ngram_ratio: dict[TopNgram, float] = Field(
        default_factory=_top_ngram_defaults,
        description="Share of characters in the most frequent word n-gram, per n.",
    )
    max_duplicate_ngram_ratio: dict[DuplicateNgram, float] = Field(
        default_factory=_duplicate_ngram_defaults,
        description="Share of characters in word n-grams that occur more than once, per n.",
    )
    min_terminal_punctuation_lines_ratio: float | None = Field(
        default=None, ge=0, le=1, description="C4: lines ending in . ! ? or a closing quote."
    )
    forbid_lorem_ipsum: bool = Field(default=True, description="C4: drop text containing 'lorem ipsum'.")
    forbid_curly_bracket: bool = Field(default=False, description="C4: drop text containing `{` (code).")


class Keywords(_Op):
    """Drop records whose fields contain any keyword (case-insensitive; whole words with `whole_words`)."""

    op: Literal["keywords"]
    fields: list[FieldName] = Field(default_factory=lambda: ["text"], min_length=1, max_length=50)
    keywords: list[Annotated[str, StringConstraints(min_length=1, max_length=200)]] = Field(
        min_length=1, max_length=100_000
    )
    whole_words: bool = True


PiiKind = Literal["email", "phone", "id_number", "ip_address"]


def _all_pii() -> list[PiiKind]:
    return ["email", "phone", "id_number", "ip_address"]


class Pii(_Op):
    """Find personal data in the fields: e-mail addresses, phone numbers (international and Chinese
    mobile), ID numbers (Chinese resident ID with a valid check digit, US SSN) and IPv4 addresses; mask
    each (`[EMAIL]`, `[PHONE]`, `[ID]`, `[IP]`) or drop the record."""

    op: Literal["pii"]
    fields: list[FieldName] = Field(default_factory=lambda: ["text"], min_length=1, max_length=50)
    kinds: list[PiiKind] = Field(default_factory=_all_pii, min_length=1)
    action: Literal["mask", "drop"] = "mask"


class ExactDedup(_Op):
    """Keep the first record of each group whose `fields` are equal (the whole record when empty); with
    `normalize`, text is compared lower-cased with whitespace collapsed."""

    op: Literal["exact_dedup"]
    fields: list[FieldName] = Field(default_factory=list, max_length=50)
    normalize: bool = False


class NearDedup(_Op):
    """MinHash-LSH near-duplicate removal on `field`: word shingles of `ngram` words; records sharing one
    of `bands` bands of `rows` MinHash values are candidates, and with `threshold` a candidate pair counts
    only if its Jaccard similarity, estimated from `signature` MinHash values (the first `bands x rows`
    of them are banded), reaches it. Each cluster of connected records keeps its first record. The
    defaults favour recall in the banding (a pair at 0.7 is a candidate with probability 0.97) and
    precision in the confirmation (the estimate's standard error at 0.7 is 0.03)."""

    op: Literal["near_dedup"]
    field: FieldName = "text"
    ngram: int = Field(default=5, ge=1, le=32, description="Words per shingle.")
    bands: int = Field(default=20, ge=1, le=512)
    rows: int = Field(default=5, ge=1, le=64, description="MinHash values per band.")
    signature: int | None = Field(
        default=256, ge=1, le=1024, description="MinHash values per record (default: bands x rows)."
    )
    threshold: float | None = Field(default=0.7, gt=0, le=1, description="Jaccard similarity to confirm.")
    lowercase: bool = True

    @property
    def permutations(self) -> int:
        """MinHash values computed per record."""
        return max(self.bands * self.rows, self.signature or 0)

    @model_validator(mode="after")
    def _bounded(self) -> NearDedup:
        if self.bands * self.rows > 1024:
            raise ValueError(f"bands x rows is {self.bands * self.rows}; at most 1024")
        if self.signature is not None and self.signature < self.bands * self.rows:
            raise ValueError(
                f"signature ({self.signature}) must hold bands x rows ({self.bands * self.rows}) values"
            )
        return self


class Rule(_Op):
    """A user-written rule in Python, run in the task's sandbox: no network, no files, no processes,
    `timeout_s` of CPU per batch and `memory_mb` of memory. `expression` sees the record as `record` (and
    its fields as names); `function` source defines `def rule(record)`. With `mode: filter` a true result
    keeps the record; with `mode: map` the result (a JSON object) replaces it and `None` drops it."""

    op: Literal["rule"]
    name: Annotated[str, StringConstraints(min_length=1, max_length=100)] = "rule"
    expression: Annotated[str, StringConstraints(min_length=1, max_length=10_000)] | None = None
    function: Annotated[str, StringConstraints(min_length=1, max_length=100_000)] | None = None
    mode: Literal["filter", "map"] = "filter"
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    memory_mb: int = Field(default=512, ge=64, le=16_384)

    @model_validator(mode="after")
    def _compiles(self) -> Rule:
        if (self.expression is None) == (self.function is None):
            raise ValueError("give exactly one of expression or function")
        try:
            if self.expression is not None:
                compile(self.expression, f"<{self.name}>", "eval", dont_inherit=True)
            else:
                tree = ast.parse(self.function or "", f"<{self.name}>")
                if not any(isinstance(n, ast.FunctionDef) and n.name == "rule" for n in tree.body):
                    raise ValueError("the function source must define `def rule(record)`")
        except SyntaxError as error:
            raise ValueError(f"not valid Python: {error.msg} (line {error.lineno})") from None
        return self


Op = Annotated[
    StripHtml
    | Normalize
    | Language
    | Quality
    | Keywords
    | Pii
    | ExactDedup
    | NearDedup
    | Rule
    | AugmentText
    | AugmentImage
    | AugmentAudio
    | AugmentVideo,
    Field(discriminator="op"),
]
OP_NAMES: tuple[str, ...] = (
    "strip_html",
    "normalize",
    "language",
    "quality",
    "keywords",
    "pii",
    "exact_dedup",
    "near_dedup",
    "rule",
    "augment_text",
    "augment_image",
    "augment_audio",
    "augment_video",
)
GLOBAL_OPS = frozenset({"exact_dedup", "near_dedup"})
"""Operators that see every record before any passes on (the others work a record at a time)."""


class Pipeline(_Op):
    """The operators, applied in order."""

    ops: list[Op] = Field(min_length=1, max_length=50)
    seed: int = Field(default=0, ge=0, le=2**31 - 1, description="Seeds hashing, sampling and augmentation.")

    @model_validator(mode="after")
    def _dedup_before_augmenting(self) -> Pipeline:
        augmented = None
        for position, op in enumerate(self.ops, start=1):
            if op.op in AUGMENT_OPS and augmented is None:
                augmented = position
            if op.op in GLOBAL_OPS and augmented is not None:
                raise ValueError(
                    f"op {position} ({op.op}) comes after op {augmented} ({self.ops[augmented - 1].op}): "
                    "deduplicate before augmenting (augmented copies are near duplicates by design)"
                )
        return self

    @property
    def models(self) -> list[RegisteredModel]:
        """The registry's models its operators read."""
        return models_named(list(self.ops))

    @property
    def media_modalities(self) -> set[str]:
        """The kinds of media file the pipeline's operators read."""
        return {MEDIA_OPS[op.op] for op in self.ops if op.op in MEDIA_OPS}


class InputFile(_Op):
    """A record file the runtime reads (through a pre-signed URL: it holds no storage credentials)."""

    name: str
    format: Literal["jsonl", "csv", "parquet"]
    url: str
    size_bytes: int = Field(ge=0)
    records: int = Field(ge=0)


class RaySettings(_Op):
    """Where the pipeline runs: a Ray cluster's address (`ray://...` or `host:port`), or an embedded Ray
    started by the runtime with `num_cpus` (the scheduler's allocation) and a bounded object store."""

    address: str | None = None
    num_cpus: int = Field(default=1, ge=1, le=1024)
    object_store_bytes: int = Field(default=256 * 1024 * 1024, ge=78 * 1024 * 1024)
    temp_dir: str = Field(description="Ray's session folder (short: it holds Unix sockets).")


class MediaInput(_Op):
    """A media file of the version an augmentation reads (through a pre-signed URL)."""

    url: str
    media_type: str
    size_bytes: int = Field(ge=0)


class ProcessSpec(_Op):
    """What the dataset service hands the data runtime (`python -m forge_data_runtime process`)."""

    pipeline: Pipeline
    inputs: list[InputFile] = Field(min_length=1)
    output_dir: str = Field(
        description="Kept records go to records/<name>.jsonl, new media files under media/, dropped records "
        "to dropped.jsonl, each output record's source to lineage.jsonl."
    )
    work_dir: str = Field(description="Scratch space (near-dedup spills its keys here).")
    media: dict[str, MediaInput] = Field(
        default_factory=dict,
        description="The version's media files the augmentation operators read, by name.",
    )
    models: dict[str, ModelFiles] = Field(
        default_factory=dict,
        description="The registry's models the operators read, by `RegisteredModel.key`.",
    )
    ray: RaySettings
    shard_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    batch_rows: int = Field(default=1024, ge=1, le=1_000_000)


def fields_named(op: BaseModel) -> list[str]:
    """The record fields an operator reads."""
    named: list[str] = []
    for attribute in ("fields", "field"):
        value = getattr(op, attribute, None)
        if isinstance(value, str):
            named.append(value)
        elif isinstance(value, list):
            named.extend(value)
    return named


__all__ = [
    "GLOBAL_OPS",
    "OP_NAMES",
    "ExactDedup",
    "InputFile",
    "Keywords",
    "Language",
    "MediaInput",
    "NearDedup",
    "Normalize",
    "Op",
    "Pii",
    "Pipeline",
    "ProcessSpec",
    "Quality",
    "RaySettings",
    "Rule",
    "StripHtml",
    "fields_named",
]
