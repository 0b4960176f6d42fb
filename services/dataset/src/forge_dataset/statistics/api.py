"""Route of a version's statistics."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from forge_dataset.routing import CanDatasetRead, Deps
from forge_dataset.statistics import service
from forge_dataset.statistics.domain import summary

router = APIRouter(prefix="/datasets/{dataset_id}/versions/{version_id}/stats", tags=["statistics"])


class FileStatsView(BaseModel):
    name: str
    records: int
    size_bytes: int
    fields: dict[str, Any]


class StatsView(BaseModel):
    """Counts, sizes and, per top-level field, coverage, JSON types, string lengths and the most common
    values with their share (the label distribution; `distinct_values: null` past 100 distinct)."""

    version_id: str
    state: str
    records: int
    size_bytes: int
    file_count: int
    fields: dict[str, Any] = Field(description="The whole version's, by field name.")
    files: list[FileStatsView]


@router.get("")
async def version_stats(
    dataset_id: str,
    version_id: str,
    deps: Deps,
    caller: CanDatasetRead,
    top: Annotated[int, Query(ge=1, le=100, description="Most common values listed per field.")] = 20,
) -> StatsView:
    found, per_file, merged = await service.version_stats(deps, caller, dataset_id, version_id)
    return StatsView(
        version_id=found.id,
        state=found.state,
        records=merged.records,
        size_bytes=sum(f.size_bytes for f, _ in per_file),
        file_count=len(per_file),
        fields=summary(merged, top),
        files=[
            FileStatsView(name=f.name, records=s.records, size_bytes=f.size_bytes, fields=summary(s, top))
            for f, s in per_file
        ],
    )
