"""Feature engineering (DP-3): fit a scikit-learn transformer on a version's records, or load one fitted
before, and write every record with its feature vector, on Ray Data.

Fitting reads the first `fit_records` records on the driver (a transformer is fitted on one machine);
the fitted pipeline (a `ColumnTransformer` of the extraction steps, then the refining steps) is saved
with joblib as the run's artifact, with a summary (dimensions, feature names, what each step kept).
Applying downloads an artifact through its pre-signed link and checks its sha256 before loading it.
Either way the transform runs in Ray tasks, a batch of records at a time, the fitted pipeline shared
through Ray's object store; the records keep their order and gain `output_field`.
"""

from __future__ import annotations

import contextlib
import hashlib
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from forge_contracts.features import (
    FeaturesSpec,
    Hashing,
    ImageEmbedding,
    KBest,
    Numeric,
    OneHot,
    Pca,
    Scale,
    Tfidf,
    TransformerSpec,
    Variance,
)

from forge_data_runtime.augment import Unusable, decode_image
from forge_data_runtime.engine import (
    PipelineFailed,
    Shard,
    output_name,
    plan,
    read_shard,
    shard_batches,
    start_ray,
)
from forge_data_runtime.links import read_link
from forge_data_runtime.models import Models

Emit = Any
MISSING = "<missing>"
_FITTED: dict[str, Any] = {}
"""The fitted pipeline per object ref, in each Ray worker: deserialised once, not per batch."""


MAX_IMAGE_BYTES = 256 * 1024 * 1024


class Embeddings:
    """Image embeddings of the records, by the registered models the steps name (loaded once per process);
    an image that is missing or does not decode is a vector of zeros."""

    def __init__(self, spec: FeaturesSpec) -> None:
        self.media = spec.media
        self.models = Models(spec.models, spec.work_dir)
        self.missing = 0

    def __call__(self, step: ImageEmbedding, records: list[dict[str, Any]]) -> np.ndarray:
        encoder = self.models.image_encoder(step.model)
        images: list[np.ndarray | None] = []
        for record in records:
            name = record.get(step.field)
            found = self.media.get(name) if isinstance(name, str) else None
            try:
                if found is None or not found.media_type.startswith("image/"):
                    raise Unusable("not an image of the version")
                images.append(decode_image(read_link(found.url, MAX_IMAGE_BYTES)))
            except Exception:
                images.append(None)
                self.missing += 1
        present = [k for k, image in enumerate(images) if image is not None]
        vectors: np.ndarray | None = None
        for start in range(0, len(present), step.batch_size):
            chunk = present[start : start + step.batch_size]
            encoded = encoder([images[k] for k in chunk])
            if vectors is None:
                vectors = np.zeros((len(records), encoded.shape[1]))
            vectors[chunk] = encoded
        if vectors is None:  # no image in these records: the width from a blank one
            width = encoder([np.zeros((8, 8, 3), dtype=np.uint8)]).shape[1]
            vectors = np.zeros((len(records), width))
        return vectors


def embedding_columns(number: int, width: int) -> list[str]:
    return [f"image{number}_{k}" for k in range(width)]


def _frame(records: list[dict[str, Any]], spec: TransformerSpec, embed: Embeddings | None = None) -> Any:
    """The records as a DataFrame of the fields the steps read, typed for them (image embeddings as
    columns `image<step>_<k>`)."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for number, step in enumerate(spec.extract):
        if isinstance(step, ImageEmbedding):
            if embed is None:
                raise PipelineFailed("image embeddings need the run's models")
            vectors = embed(step, records)
            for column, values in zip(embedding_columns(number, vectors.shape[1]), vectors.T, strict=True):
                columns[column] = values
        elif isinstance(step, Tfidf | Hashing):
            columns[step.field] = [
                r.get(step.field) if isinstance(r.get(step.field), str) else "" for r in records
            ]
        elif isinstance(step, Numeric):
            for name in step.fields:
                columns[name] = pd.to_numeric(
                    pd.Series([r.get(name) for r in records], dtype=object), errors="coerce"
                )
        else:
            for name in step.fields:
                columns[name] = [MISSING if r.get(name) is None else str(r.get(name)) for r in records]
    frame = pd.DataFrame(columns)
    for step in spec.extract:
        if isinstance(step, Numeric):
            frame[step.fields] = frame[step.fields].fillna(0.0).astype(float)
    return frame


def build(spec: TransformerSpec, widths: dict[int, int] | None = None) -> Any:
    """The unfitted pipeline; `widths`: the size of each image embedding step's block."""
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.feature_extraction.text import HashingVectorizer, TfidfVectorizer
    from sklearn.feature_selection import SelectKBest, VarianceThreshold, chi2, f_classif, mutual_info_classif
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, RobustScaler, StandardScaler

    parts: list[tuple[str, Any, Any]] = []
    for number, step in enumerate(spec.extract):
        name = f"{number}_{step.step}"
        if isinstance(step, Tfidf):
            vectorizer = TfidfVectorizer(
                max_features=step.max_features,
                ngram_range=(1, step.ngram_max),
                min_df=step.min_df,
                lowercase=step.lowercase,
            )
            parts.append((name, vectorizer, step.field))
        elif isinstance(step, Hashing):
            hashing = HashingVectorizer(
                n_features=step.features, ngram_range=(1, step.ngram_max), lowercase=step.lowercase
            )
            parts.append((name, hashing, step.field))
        elif isinstance(step, Numeric):
            parts.append((name, "passthrough", list(step.fields)))
        elif isinstance(step, OneHot):
            encoder = OneHotEncoder(handle_unknown="infrequent_if_exist", max_categories=step.max_categories)
            parts.append((name, encoder, list(step.fields)))
        elif isinstance(step, ImageEmbedding):
            parts.append((name, "passthrough", embedding_columns(number, (widths or {})[number])))
    steps: list[tuple[str, Any]] = [("extract", ColumnTransformer(parts, sparse_threshold=0.0))]
    scores = {"f_classif": f_classif, "chi2": chi2, "mutual_info": mutual_info_classif}
    for number, refine in enumerate(spec.refine):
        name = f"{number}_{refine.step}"
        if isinstance(refine, Scale):
            scaler = {"standard": StandardScaler, "minmax": MinMaxScaler, "robust": RobustScaler}[
                refine.method
            ]
            steps.append((name, scaler()))
        elif isinstance(refine, Pca):
            steps.append((name, PCA(n_components=refine.components, random_state=0)))
        elif isinstance(refine, Variance):
            steps.append((name, VarianceThreshold(refine.threshold)))
        elif isinstance(refine, KBest):
            steps.append((name, SelectKBest(scores[refine.score], k=refine.k)))
    return Pipeline(steps)


def summary(pipeline: Any, dimensions: int) -> dict[str, Any]:
    """What the fitted transformer is: its output size, feature names where known, each step's figures."""
    steps: list[dict[str, Any]] = []
    extract = pipeline.named_steps["extract"]
    for name, fitted, _ in extract.transformers_:
        entry: dict[str, Any] = {"step": name.split("_", 1)[1]}
        if hasattr(fitted, "vocabulary_"):
            entry["vocabulary"] = len(fitted.vocabulary_)
        if hasattr(fitted, "categories_"):
            entry["categories"] = [len(c) for c in fitted.categories_]
        steps.append(entry)
    for name, fitted in pipeline.steps[1:]:
        entry = {"step": name.split("_", 1)[1]}
        if hasattr(fitted, "explained_variance_ratio_"):
            entry["explained_variance"] = round(float(np.sum(fitted.explained_variance_ratio_)), 6)
        if hasattr(fitted, "get_support"):
            entry["kept"] = int(np.sum(fitted.get_support()))
        steps.append(entry)
    names: list[str] = []
    with contextlib.suppress(Exception):
        names = [str(n) for n in pipeline.get_feature_names_out()][:10_000]
    return {"dimensions": dimensions, "steps": steps, "feature_names": names}


def _records(spec: FeaturesSpec, shards: list[Shard], limit: int) -> Iterator[dict[str, Any]]:
    taken = 0
    for shard in shards:
        for _, line in read_shard(shard, spec.inputs[shard.file]):
            if taken >= limit:
                return
            record = orjson.loads(line)
            yield record if isinstance(record, dict) else {}
            taken += 1


def _fit(spec: FeaturesSpec, shards: list[Shard], emit: Emit) -> tuple[Any, dict[str, Any]]:
    transformer = spec.transformer
    records = list(_records(spec, shards, transformer.fit_records))
    if not records:
        raise PipelineFailed("the version has no records to fit on")
    embed = Embeddings(spec)
    frame = _frame(records, transformer, embed)
    widths = {
        n: sum(1 for c in frame.columns if c.startswith(f"image{n}_"))
        for n, step in enumerate(transformer.extract)
        if isinstance(step, ImageEmbedding)
    }
    target = None
    if transformer.label is not None:
        target = np.asarray(
            [MISSING if r.get(transformer.label) is None else str(r.get(transformer.label)) for r in records]
        )
        if len(set(target.tolist())) < 2:
            raise PipelineFailed(
                f"the label {transformer.label!r} has fewer than two classes in the fitted records"
            )
    pipeline = build(transformer, widths)
    started = time.monotonic()
    try:
        fitted = pipeline.fit(frame, target)
        dimensions = int(fitted.transform(frame.iloc[:1]).shape[1])
    except ValueError as error:
        raise PipelineFailed(f"the transformer cannot be fitted on this version: {error}") from None
    emit(
        {"kind": "log", "message": f"fitted on {len(records)} records in {time.monotonic() - started:.1f} s"}
    )
    described = {**summary(fitted, dimensions), "fitted_records": len(records)}
    if widths:
        described["images_missing"] = embed.missing
    return fitted, described


def _load(spec: FeaturesSpec) -> Any:
    import joblib

    if spec.artifact_url is None or spec.artifact_sha256 is None:
        raise PipelineFailed("applying a transformer needs its artifact")
    answer = urllib.request.urlopen(spec.artifact_url, timeout=300)  # noqa: S310 (a pre-signed link)
    data = answer.read()
    if hashlib.sha256(data).hexdigest() != spec.artifact_sha256:
        raise PipelineFailed("the transformer's artifact does not match its recorded sha256")
    path = Path(spec.work_dir) / "transformer.joblib"
    path.write_bytes(data)
    return joblib.load(path)


class _Transform:
    def __init__(self, fitted: Any, spec: FeaturesSpec, shards: list[Shard]) -> None:
        self.fitted, self.features, self.shards = fitted, spec, shards
        self.spec, self.inputs = spec.transformer, spec.inputs
        self.embed: Embeddings | None = None

    def read(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for index in batch["shard"]:
            shard = self.shards[int(index)]
            for ids, lines in shard_batches(shard, self.inputs[shard.file]):
                yield {"_rid": np.asarray(ids, dtype=np.int64), "_json": np.asarray(lines, dtype=object)}

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        import ray

        fitted = self.fitted
        if isinstance(fitted, ray.ObjectRef):
            key = fitted.hex()
            if key not in _FITTED:
                _FITTED[key] = ray.get(fitted)
            fitted = _FITTED[key]
        records = [orjson.loads(line) for line in batch["_json"]]
        if not records:
            return batch
        if self.embed is None and any(isinstance(s, ImageEmbedding) for s in self.spec.extract):
            self.embed = Embeddings(self.features)
        vectors = fitted.transform(_frame(records, self.spec, self.embed))
        out = []
        for record, vector in zip(records, np.asarray(vectors, dtype=np.float64), strict=True):
            record[self.spec.output_field] = [round(float(v), 8) for v in vector]
            out.append(orjson.dumps(record))
        return {"_rid": batch["_rid"], "_json": np.asarray(out, dtype=object)}


def run_features(spec: FeaturesSpec, emit: Emit) -> dict[str, Any]:
    import joblib

    shards = plan(spec.inputs, spec.shard_bytes)
    out = Path(spec.output_dir)
    (out / "records").mkdir(parents=True, exist_ok=True)
    if spec.mode == "fit":
        fitted, described = _fit(spec, shards, emit)
        joblib.dump(fitted, out / "transformer.joblib")
    else:
        fitted, described = _load(spec), {}
    total = max(sum(f.records for f in spec.inputs), 1)
    with start_ray(spec.ray, emit) as ray:
        import ray.data

        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True
        context.enable_progress_bars = False
        transform = _Transform(ray.put(fitted), spec, shards)
        ds = ray.data.from_items(
            [{"shard": s.index} for s in shards], override_num_blocks=max(len(shards), 1)
        )
        ds = ds.map_batches(transform.read, batch_size=1, batch_format="numpy")
        ds = ds.map_batches(transform, batch_format="numpy", batch_size=spec.batch_rows)
        names = [output_name(f.name) for f in spec.inputs]
        sinks: dict[int, Any] = {}
        written = [0] * len(spec.inputs)
        done, reported = 0, time.monotonic()
        try:
            for batch in ds.iter_batches(batch_format="numpy", batch_size=4096):
                for rid, line in zip(batch["_rid"].tolist(), batch["_json"], strict=True):
                    file = shards[rid >> 32].file
                    if file not in sinks:
                        path = out / "records" / names[file]
                        path.parent.mkdir(parents=True, exist_ok=True)
                        sinks[file] = path.open("wb")
                    sinks[file].write(line + b"\n")
                    written[file] += 1
                done += len(batch["_rid"])
                if time.monotonic() - reported >= 1.0:
                    reported = time.monotonic()
                    emit(
                        {
                            "kind": "progress",
                            "phase": "transforming",
                            "progress": round(0.9 * done / total, 4),
                            "records_done": done,
                            "records_total": total,
                        }
                    )
        except ValueError as error:
            raise PipelineFailed(f"the transformer cannot be applied to this version: {error}") from None
        finally:
            for sink in sinks.values():
                sink.close()
    for number, name in enumerate(names):
        if not written[number]:
            (out / "records" / name).touch()
    return {
        "records": done,
        "files": [
            {"source": f.name, "output": names[n], "records": written[n]} for n, f in enumerate(spec.inputs)
        ],
        "transformer": described,
    }


__all__ = ["build", "run_features", "summary"]
