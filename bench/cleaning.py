"""Cleaning throughput: Forge's cleaning operators against data-juicer's equivalents, where they overlap.

The corpus is generated on local disk as JSONL (`{"id", "text"}`): documents of 20-200 words drawn from
5 000 letter-only pseudo-words and common English words, of which 30 % are wrapped in HTML (paragraphs,
bold, links, a script), 20 % carry an e-mail address, 30 % odd Unicode and white space (full-width
letters, no-break and zero-width spaces, runs of blanks), 10 % are short (under 20 words), 5 % repeat one
sentence and 5 % are mostly symbols.

Each side runs in its own fresh process over the same documents, one core, one thread, in batches of
1 000 documents (data-juicer's batched operators' way); the time is the operators' own work (reading the
corpus and building the operators excluded), the best of 3 passes:
- **data-juicer** 1.6.1 (PyPI `py-data-juicer`, in a virtual environment of its own under the tool cache,
  as its dependencies do not fit the platform's): `clean_html_mapper`; `fix_unicode_mapper` then
  `whitespace_normalization_mapper`; `clean_email_mapper`; `words_num_filter` (min 20),
  `special_characters_filter` (defaults) and `word_repetition_filter` (10-grams, at most 0.5) as one
  filter stage (stats computed, then decided);
- **forge**: the data runtime's operators as its Ray tasks call them: `strip_html`; `normalize` (NFKC,
  controls and zero-width characters out, white space collapsed); `pii` with `kinds: [email]`; `quality`
  with only its overlapping checks on (min 20 words, `max_symbol_word_ratio` 0.1, 10-gram duplicate
  share at most 0.5).
The two sides' filters measure symbols and repetition differently; the agreement column is the share of
documents both keep or both drop.

Prints a Markdown table; `--write` also replaces the cleaning section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import write_section

DOCUMENTS = 20_000
BATCH = 1000
PASSES = 3
DATA_JUICER = "py-data-juicer==1.6.1"
DJ_EXTRAS = ("aiohttp", "selectolax", "ftfy")
"""Packages data-juicer's operators load lazily (it would install them itself at first use)."""
PAIRS = ("html", "normalize", "email", "quality")
NAMES = {
    "html": "HTML to text",
    "normalize": "Unicode and white-space normalisation",
    "email": "E-mail masking",
    "quality": "Quality filter (words, special characters, repetition)",
}
COMMON = "the be to of and a in that have it for not on with he as you do at this but his by from".split()


def generate(path: Path, documents: int) -> None:
    rng = random.Random(documents)
    vocabulary = COMMON * 20 + [
        "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9))) for _ in range(5000)
    ]
    with path.open("w") as out:
        for i in range(documents):
            kind = rng.random()
            words = rng.choices(vocabulary, k=rng.randint(20, 200) if kind > 0.10 else rng.randint(3, 15))
            sentences = [" ".join(words[k : k + 12]).capitalize() + "." for k in range(0, len(words), 12)]
            if 0.10 <= kind < 0.15:
                sentences = [sentences[0]] * 12
            text = " ".join(sentences)
            if 0.15 <= kind < 0.20:
                text = " ".join(rng.choice("#$%&*@!~^") * rng.randint(2, 6) for _ in range(60))
            if rng.random() < 0.20:
                text += f" Write to {rng.choice(words)}.{i}@example.org for more."
            if rng.random() < 0.30:
                text = text.replace(" ", rng.choice(["  ", "\u00a0", " \u200b", "\t "]), rng.randint(3, 30))
                text = "\uff21\uff22\uff23 " + text
            if rng.random() < 0.30:
                text = (
                    f"<html><head><style>p {{color: red}}</style></head><body><p>{text}</p>"
                    f"<p><b>{rng.choice(words)}</b> <a href='https://x.org/{i}'>link</a></p>"
                    "<script>track();</script></body></html>"
                )
            out.write(json.dumps({"id": i, "text": text}) + "\n")


def _texts(corpus: Path) -> list[str]:
    return [json.loads(line)["text"] for line in corpus.read_text().splitlines()]


def _best(passes: int, run: Any) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(passes):
        started = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - started)
    return best, result


def run_forge(corpus: Path) -> dict[str, Any]:
    from forge_contracts.processing import Normalize, Pii, Quality, StripHtml
    from forge_data_runtime.text import HtmlStripper, Normalizer, PiiFilter, QualityFilter

    texts = _texts(corpus)
    ops = {
        "html": [HtmlStripper(StripHtml(op="strip_html", drop_empty=False))],
        "normalize": [Normalizer(Normalize(op="normalize"))],
        "email": [PiiFilter(Pii(op="pii", kinds=["email"]))],
        "quality": [
            QualityFilter(
                Quality(
                    op="quality",
                    min_words=20,
                    max_words=None,
                    min_mean_word_length=None,
                    max_mean_word_length=None,
                    max_symbol_word_ratio=0.1,
                    max_bullet_lines_ratio=None,
                    max_ellipsis_lines_ratio=None,
                    min_alpha_words_ratio=None,
                    min_stop_words=None,
                    max_duplicate_lines_ratio=None,
                    max_top_ngram_ratio={},
                    max_duplicate_ngram_ratio={"10": 0.5},
                    forbid_lorem_ipsum=False,
                )
            )
        ],
    }
    out: dict[str, Any] = {}
    for pair, chain in ops.items():

        def run(chain: list[Any] = chain) -> list[bool]:
            kept: list[bool] = []
            for start in range(0, len(texts), BATCH):
                for text in texts[start : start + BATCH]:
                    record = {"text": text}
                    kept.append(all(op.apply(record) is None for op in chain))
            return kept

        seconds, kept = _best(PASSES, run)
        out[pair] = {"seconds": seconds, "kept": kept if pair == "quality" else None}
    return out


def run_data_juicer(corpus: Path) -> dict[str, Any]:
    from data_juicer.ops.filter import SpecialCharactersFilter, WordRepetitionFilter, WordsNumFilter
    from data_juicer.ops.mapper import (
        CleanEmailMapper,
        CleanHtmlMapper,
        FixUnicodeMapper,
        WhitespaceNormalizationMapper,
    )
    from data_juicer.utils.constant import Fields

    texts = _texts(corpus)
    mappers = {
        "html": [CleanHtmlMapper()],
        "normalize": [FixUnicodeMapper(), WhitespaceNormalizationMapper()],
        "email": [CleanEmailMapper()],
    }
    filters = [WordsNumFilter(min_num=20), SpecialCharactersFilter(), WordRepetitionFilter(rep_len=10)]
    out: dict[str, Any] = {}
    for pair, chain in mappers.items():

        def run(chain: list[Any] = chain) -> None:
            for start in range(0, len(texts), BATCH):
                batch = {"text": texts[start : start + BATCH]}
                for op in chain:
                    batch = op.process_batched(batch)

        seconds, _ = _best(PASSES, run)
        out[pair] = {"seconds": seconds, "kept": None}

    def decide() -> list[bool]:
        kept: list[bool] = []
        for start in range(0, len(texts), BATCH):
            chunk = texts[start : start + BATCH]
            keep = [True] * len(chunk)
            for op in filters:
                batch = {"text": chunk, Fields.stats: [{} for _ in chunk]}
                batch = op.compute_stats_batched(batch)
                keep = [k and bool(d) for k, d in zip(keep, op.process_batched(batch), strict=True)]
            kept += keep
        return kept

    seconds, kept = _best(PASSES, decide)
    out["quality"] = {"seconds": seconds, "kept": kept}
    return out


def _cache() -> Path:
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return root / "forge" / "bench" / DATA_JUICER.replace("==", "-")


def data_juicer_python() -> Path:
    """data-juicer's own virtual environment (made once, kept in the tool cache)."""
    venv = _cache()
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        subprocess.run(["uv", "venv", "-q", "-p", "3.11", str(venv)], check=True)
        subprocess.run(
            ["uv", "pip", "install", "-q", "-p", str(python), DATA_JUICER, *DJ_EXTRAS],
            check=True,
            timeout=1800,
        )
        (venv / ".complete").touch()
    return python


def _child(python: str | Path, side: str, corpus: Path) -> dict[str, Any]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    command = [str(python), __file__, "--child", side, str(corpus)]
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(documents: int, forge: dict[str, Any], baseline: dict[str, Any]) -> str:
    lines = [
        "| operators | data-juicer docs/s | forge docs/s | forge / data-juicer | decisions agree |",
        "|---|---:|---:|---:|---:|",
    ]
    for pair in PAIRS:
        ours, theirs = documents / forge[pair]["seconds"], documents / baseline[pair]["seconds"]
        agree = "-"
        if forge[pair]["kept"] is not None:
            same = sum(a == b for a, b in zip(forge[pair]["kept"], baseline[pair]["kept"], strict=True))
            agree = f"{100 * same / documents:.1f} %"
        lines.append(f"| {NAMES[pair]} | {theirs:,.0f} | {ours:,.0f} | {ours / theirs:.2f}x | {agree} |")
    kept_ours = sum(forge["quality"]["kept"])
    kept_theirs = sum(baseline["quality"]["kept"])
    return (
        "\n".join(lines)
        + f"\n\n{documents:,} documents, one core each, best of {PASSES} passes; the quality filters keep "
        f"{kept_ours:,} (forge) and {kept_theirs:,} (data-juicer) documents. Load average "
        f"{os.getloadavg()[0]:.1f} after the run, on {os.cpu_count()} cores.\n"
    )


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        side, corpus = sys.argv[2], Path(sys.argv[3])
        result = run_forge(corpus) if side == "forge" else run_data_juicer(corpus)
        print(json.dumps(result))
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--documents", type=int, default=DOCUMENTS)
    parser.add_argument("--write", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args()
    python = data_juicer_python()
    with tempfile.TemporaryDirectory(prefix="cleaning-bench-") as folder:
        corpus = Path(folder) / "corpus.jsonl"
        generate(corpus, args.documents)
        baseline = _child(python, "data-juicer", corpus)
        forge = _child(sys.executable, "forge", corpus)
    section = table(args.documents, forge, baseline)
    print(section)
    if args.write:
        write_section(
            "cleaning",
            "cleaning.py",
            section,
            heading="## Data processing: cleaning throughput against data-juicer (`bench/cleaning.py`)",
            intro=(
                "Target (issue 9): cleaning throughput per core against data-juicer's equivalent operators\n"
                "where they overlap. Method: the docstring of `bench/cleaning.py`.\n\n"
            ),
        )


if __name__ == "__main__":
    main()
