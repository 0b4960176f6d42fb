"""How an import reports its progress (pure: a recording stand-in for the task's context)."""

from __future__ import annotations

from typing import Any

import pytest
from forge_dataset.imports.service import Progress
from forge_dataset.imports.sources import Listing


class Reports:
    def __init__(self) -> None:
        self.seen: list[tuple[float, dict[str, Any]]] = []

    async def report(self, progress: float, *, force: bool = False, **detail: Any) -> None:
        self.seen.append((progress, detail))


async def test_a_listed_source_reports_progress_by_bytes_of_the_whole_import() -> None:
    ctx = Reports()
    progress = Progress(ctx)  # type: ignore[arg-type]
    progress.listed(Listing(files=2, bytes=400))

    await progress.advance(100, 100)  # the first file, whole
    progress.file_done()
    await progress.advance(150, 300)  # half the second

    assert [round(p / 0.95, 4) for p, _ in ctx.seen] == [0.25, 0.625]
    assert ctx.seen[-1][1] == {
        "phase": "downloading",
        "bytes_done": 250,
        "bytes_total": 400,
        "files_done": 1,
        "files_total": 2,
    }


@pytest.mark.parametrize(("listing", "expected"), [(Listing(files=4), [0.125, 0.3125]), (None, [0.0, 0.0])])
async def test_without_sizes_progress_counts_files_and_the_current_files_share(
    listing: Listing | None, expected: list[float]
) -> None:
    ctx = Reports()
    progress = Progress(ctx)  # type: ignore[arg-type]
    progress.listed(listing)

    await progress.advance(50, 100)
    progress.file_done()
    await progress.advance(25, 100)  # the second file's own share, not the bytes of both

    assert [round(p / 0.95, 4) for p, _ in ctx.seen] == expected
