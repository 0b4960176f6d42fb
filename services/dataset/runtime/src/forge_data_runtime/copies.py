"""An augmentation operator as a stage: each kept row is followed by its augmented copies (rows of the
same source record, `_copy` naming which copy, `_aug` the operator and seed of each augmentation behind
it), and the original stays or is dropped as "replaced by its copies". A record whose text or media cannot
be augmented (no text, a name that is not a media file of the version, a file that does not decode) is kept
as it is, uncopied, with a note the report counts as skipped. Media copies travel in the row (`_media`),
so the driver writes them wherever Ray ran them.
"""

from __future__ import annotations

import random
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import orjson
import xxhash
from forge_contracts.augmentation import MEDIA_OPS, AugmentAudio, AugmentImage, AugmentText, AugmentVideo
from forge_contracts.processing import MediaInput
from forge_contracts.registered import ModelFiles

from forge_data_runtime import augment
from forge_data_runtime.links import read_link
from forge_data_runtime.models import Models
from forge_data_runtime.stages import COLUMNS, SAMPLES_PER_BATCH, Batch, clip, pack_media, unpack_media

MAX_MEDIA_BYTES = 2 * 1024**3
DTYPES = {"_rid": np.int64, "_drop": np.int16, "_dup": np.int64, "_chg": np.uint64}
MEDIA_SUFFIX = {"augment_audio": ".wav", "augment_video": ".mp4"}


def copy_seed(seed: int, position: int, rid: int, copy: str) -> int:
    """The seed of one copy: from the pipeline's seed, the operator, the source record and the copy."""
    return xxhash.xxh64_intdigest(f"{seed}:{position}:{rid}:{copy}") & 0x7FFFFFFF


def media_copy_name(name: str, rid: int, copy: str, suffix: str) -> str:
    """`img/cat.png` -> `img/cat.aug-<12 hex>.png`: unique per source record and copy, the same every run."""
    path = PurePosixPath(name)
    token = xxhash.xxh64_hexdigest(f"{name}:{rid}:{copy}")[:12]
    return str(path.with_name(f"{path.stem}.aug-{token}{suffix}"))


class AugmentStage:
    """One augmentation operator at `position`, built once per Ray worker."""

    def __init__(
        self,
        op: AugmentText | AugmentImage | AugmentAudio | AugmentVideo,
        position: int,
        seed: int,
        media: dict[str, MediaInput],
        models: dict[str, ModelFiles] | None = None,
        work_dir: str | None = None,
    ) -> None:
        self.op, self.position, self.seed = op, position, seed
        self.modality = MEDIA_OPS.get(op.op)
        self.media = media if self.modality else {}
        self.text = (
            augment.TextAugmenter(op, Models(models or {}, work_dir)) if isinstance(op, AugmentText) else None
        )

    def __call__(self, batch: Batch) -> Batch:
        out: dict[str, list[Any]] = {c: [] for c in COLUMNS}
        sampled = 0
        for i in range(len(batch["_rid"])):
            row = {c: batch[c][i] for c in COLUMNS}
            if row["_drop"] >= 0:
                _append(out, row)
                continue
            record = orjson.loads(row["_json"])
            try:
                made = self._copies(record, row)
            except augment.Unusable as why:
                notes = orjson.loads(row["_notes"]) if row["_notes"] else []
                notes.append({"op": self.position, "skipped": f"{why}"[:300]})
                _append(out, {**row, "_notes": orjson.dumps(notes)})
                continue
            if self.op.keep_original:
                _append(out, row)
            else:
                replaced = f"replaced by its {len(made)} augmented copies"
                _append(out, {**row, "_drop": self.position, "_why": replaced})
            for copy, new, chain, files in made:
                note = b""
                if sampled < SAMPLES_PER_BATCH:
                    field = self.op.field
                    note = orjson.dumps(
                        [
                            {
                                "op": self.position,
                                "variant": copy,
                                "before": {field: clip(record.get(field))},
                                "after": {field: clip(new.get(field))},
                            }
                        ]
                    )
                    sampled += 1
                _append(
                    out,
                    {
                        **row,
                        "_json": orjson.dumps(new),
                        "_notes": note,
                        "_copy": copy,
                        "_aug": orjson.dumps(chain),
                        "_media": pack_media(files),
                    },
                )
        return {c: np.asarray(v, dtype=DTYPES.get(c, object)) for c, v in out.items()}

    def _copies(
        self, record: dict[str, Any], row: dict[str, Any]
    ) -> list[tuple[str, dict[str, Any], list[dict[str, Any]], dict[str, bytes]]]:
        """(copy, record, augmentations behind it, media files it names that the run made) per copy."""
        value = record.get(self.op.field)
        if not isinstance(value, str) or not value:
            raise augment.Unusable(f"field {self.op.field!r} holds no {'text' if self.text else 'file name'}")
        made_before = unpack_media(row["_media"]) if row["_media"] else {}
        chain = orjson.loads(row["_aug"]) if row["_aug"] else []
        rid = int(row["_rid"])
        source = self._source(value, made_before)
        made = []
        for k in range(1, self.op.copies + 1):
            copy = f"{row['_copy']}.{k}" if row["_copy"] else str(k)
            seed = copy_seed(self.seed, self.position, rid, copy)
            new = dict(record)
            files = {n: d for n, d in made_before.items() if n in _names(new)}
            if self.text is not None:
                new[self.op.field] = self.text(value, random.Random(seed))
            else:
                name = media_copy_name(
                    value, rid, copy, MEDIA_SUFFIX.get(self.op.op) or augment.image_suffix(value)
                )
                files.pop(value, None)
                files[name] = self._augment(source, value, seed)
                new[self.op.field] = name
            made.append((copy, new, [*chain, {"op": self.position + 1, "index": k, "seed": seed}], files))
        return made

    def _source(self, name: str, made_before: dict[str, bytes]) -> bytes:
        if self.text is not None:
            return b""
        if name in made_before:  # a copy an earlier operator made
            return made_before[name]
        found = self.media.get(name)
        if found is None or not found.media_type.startswith(f"{self.modality}/"):
            raise augment.Unusable(f"{name} is not {_an(self.modality)} file of the version")
        if found.size_bytes > MAX_MEDIA_BYTES:
            raise augment.Unusable(f"{name} is larger than {MAX_MEDIA_BYTES} bytes")
        return read_link(found.url, MAX_MEDIA_BYTES)

    def _augment(self, data: bytes, name: str, seed: int) -> bytes:
        op = self.op
        try:
            if isinstance(op, AugmentImage):
                return augment.augment_image(data, name, op.transforms, seed)
            if isinstance(op, AugmentAudio):
                return augment.augment_audio(data, name, op.transforms, seed)
            if isinstance(op, AugmentVideo):
                return augment.augment_video(data, name, op, seed)
        except augment.Unusable as why:
            raise augment.Unusable(f"{name}: {why}") from None
        raise TypeError(op.op)


def _names(record: dict[str, Any]) -> set[str]:
    return {v for v in record.values() if isinstance(v, str)}


def _an(modality: str | None) -> str:
    return f"an {modality}" if modality in ("image", "audio") else f"a {modality}"


def _append(out: dict[str, list[Any]], row: dict[str, Any]) -> None:
    for column in COLUMNS:
        out[column].append(row[column])


__all__ = ["AugmentStage", "copy_seed", "media_copy_name"]
