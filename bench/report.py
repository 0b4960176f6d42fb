"""Writing a benchmark's results into docs/benchmarks.md: each benchmark owns one section between
`<!-- <key>:begin -->` and `<!-- <key>:end -->` markers, replaced on every run (stamped with the date and
the script), or added under its heading and introduction the first time."""

from __future__ import annotations

import time
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"


def write_section(key: str, script: str, body: str, *, heading: str, intro: str = "") -> None:
    """Replace the section `key` of docs/benchmarks.md with `body` (measured now by `script`)."""
    begin, end = f"<!-- {key}:begin -->", f"<!-- {key}:end -->"
    text = DOC.read_text()
    block = (
        f"{begin}\nMeasured {time.strftime('%Y-%m-%d')} by `make bench` (`bench/{script}`).\n\n{body}{end}"
    )
    if begin not in text:
        DOC.write_text(text.rstrip("\n") + f"\n\n{heading}\n\n{intro}{block}\n")
        return
    head, _, rest = text.partition(begin)
    _, _, tail = rest.partition(end)
    DOC.write_text(f"{head}{block}{tail}")


__all__ = ["write_section"]
