"""Rules of training and evaluation jobs, without I/O: the state machines, where a job's objects live,
and how a job's settings become the training runtime's spec (`forge_training_runtime.specs.TrainSpec`
and `EvaluateSpec`, as JSON: the service never imports the runtime)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from forge_contracts.state_machines import MACHINES, StateMachine

MACHINE: StateMachine = MACHINES["training_job"]
EVALUATION_MACHINE: StateMachine = MACHINES["evaluation_job"]
BACKEND = "local"
"""Where jobs run until the scheduler places them (the runtime process on the worker's machine)."""
LOCAL_QUEUE = "local"

_S3_URI = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])(?:/(?P<key>.*))?$")


class InvalidUri(ValueError):
    """Not an `s3://bucket/key` URI."""


@dataclass(frozen=True)
class ObjectLocation:
    """A bucket and a key (or a key prefix)."""

    bucket: str
    key: str

    @property
    def uri(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def parse_s3_uri(uri: str) -> ObjectLocation:
    """`s3://bucket/some/key` -> ObjectLocation("bucket", "some/key")."""
    match = _S3_URI.match(uri)
    if match is None:
        raise InvalidUri(f"not an s3://bucket/key URI: {uri!r}")
    return ObjectLocation(match["bucket"], match["key"] or "")


def as_prefix(key: str) -> str:
    """A key prefix ending in `/` (or empty for the whole bucket)."""
    return key if not key or key.endswith("/") else key + "/"


@dataclass(frozen=True)
class JobLayout:
    """Where one job's outputs go in the training bucket: `<tenant>/<job id>/...`."""

    bucket: str
    tenant: str
    job_id: str

    @property
    def root(self) -> str:
        return f"{self.tenant}/{self.job_id}/"

    def checkpoint(self, step: int) -> ObjectLocation:
        return ObjectLocation(self.bucket, f"{self.root}checkpoints/step-{step}/")

    @property
    def adapter(self) -> ObjectLocation:
        return ObjectLocation(self.bucket, f"{self.root}adapter/")

    @property
    def merged(self) -> ObjectLocation:
        return ObjectLocation(self.bucket, f"{self.root}merged/")


@dataclass(frozen=True)
class RunPaths:
    """The local files of one run attempt."""

    base_model_dir: Path
    train_file: Path
    validation_file: Path | None
    out_dir: Path

    @classmethod
    def under(cls, work_dir: Path, *, has_validation: bool) -> RunPaths:
        return cls(
            base_model_dir=work_dir / "base",
            train_file=work_dir / "data" / "train.jsonl",
            validation_file=work_dir / "data" / "validation.jsonl" if has_validation else None,
            out_dir=work_dir / "out",
        )

    def checkpoint_dir(self, step: int) -> Path:
        return self.out_dir / "checkpoints" / f"step-{step}"


def runtime_spec(
    *,
    paths: RunPaths,
    data_format: str,
    hyperparameters: dict[str, Any],
    lora: dict[str, Any],
    resume: bool,
    threads: int | None = None,
) -> dict[str, Any]:
    """The runtime's `train` spec for a job's settings (field names are TrainSpec's)."""
    spec: dict[str, Any] = {
        "base_model_dir": str(paths.base_model_dir),
        "train_file": str(paths.train_file),
        "out_dir": str(paths.out_dir),
        "data_format": data_format,
        "lora": dict(lora),
        "resume": resume,
        **{name: value for name, value in hyperparameters.items() if value is not None},
    }
    if paths.validation_file is not None:
        spec["validation_file"] = str(paths.validation_file)
    if threads is not None:
        spec["num_threads"] = threads
    return spec


def percent(step: int, total_steps: int | None) -> float | None:
    """Progress in percent, one decimal; None while the total is unknown."""
    if not total_steps:
        return None
    return round(min(100.0, 100.0 * step / total_steps), 1)


def error_message(runtime_error: dict[str, Any] | None, stderr_tail: str, exit_code: int | None) -> str:
    """What to tell the user about a failed run: the runtime's own error line when it wrote one."""
    if runtime_error:
        kind = runtime_error.get("error_type") or "Error"
        return f"{kind}: {runtime_error.get('message') or 'the training runtime failed'}"[:4000]
    tail = stderr_tail.strip().splitlines()[-1:] if stderr_tail.strip() else []
    detail = f": {tail[0]}" if tail else ""
    return f"the training runtime exited with status {exit_code}{detail}"[:4000]


# --- evaluation jobs ------------------------------------------------------------------------------

EVALUATION_METRICS = ("perplexity", "mean_nll", "bleu", "rouge1", "rouge2", "rougeL", "exact_match")
"""The runtime's corpus metrics an evaluation keeps (`EvaluationMetrics`, minus the record count)."""


@dataclass(frozen=True)
class EvaluationLayout:
    """Where one evaluation's outputs go in the training bucket: `<tenant>/evaluations/<id>/...`."""

    bucket: str
    tenant: str
    evaluation_id: str

    @property
    def root(self) -> str:
        return f"{self.tenant}/evaluations/{self.evaluation_id}/"

    @property
    def records(self) -> ObjectLocation:
        return ObjectLocation(self.bucket, f"{self.root}records.jsonl")

    @property
    def report(self) -> ObjectLocation:
        return ObjectLocation(self.bucket, f"{self.root}report.json")


@dataclass(frozen=True)
class EvaluationPaths:
    """The local files of one evaluation attempt."""

    model_dir: Path
    test_file: Path
    records_file: Path
    report_file: Path

    @classmethod
    def under(cls, work_dir: Path) -> EvaluationPaths:
        return cls(
            model_dir=work_dir / "model",
            test_file=work_dir / "data" / "test.jsonl",
            records_file=work_dir / "out" / "records.jsonl",
            report_file=work_dir / "out" / "report.json",
        )


def evaluate_spec(
    *,
    paths: EvaluationPaths,
    data_format: str,
    max_new_tokens: int,
    max_records: int | None,
    threads: int | None = None,
) -> dict[str, Any]:
    """The runtime's `evaluate` spec (field names are EvaluateSpec's)."""
    spec: dict[str, Any] = {
        "model_dir": str(paths.model_dir),
        "test_file": str(paths.test_file),
        "records_file": str(paths.records_file),
        "data_format": data_format,
        "max_new_tokens": max_new_tokens,
    }
    if max_records is not None:
        spec["max_records"] = max_records
    if threads is not None:
        spec["num_threads"] = threads
    return spec


def evaluation_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The metrics of the runtime's `evaluate` result; a value that is not a finite number (a
    perplexity over no scorable reference) is left out rather than stored as NaN."""
    metrics = result.get("metrics") or {}
    kept: dict[str, float] = {}
    for name in EVALUATION_METRICS:
        value = metrics.get(name)
        if isinstance(value, int | float) and math.isfinite(value):
            kept[name] = float(value)
    return kept


NOT_JUDGED = (
    "no thresholds were given, so the evaluation passed no verdict (the registry's release gate judges it)"
)
"""Why an evaluation without thresholds has no `passed`."""


def judge(
    metrics: Mapping[str, float], thresholds: Mapping[str, Mapping[str, float | None]]
) -> tuple[bool, list[str]]:
    """Whether `metrics` meet every bound (`{"perplexity": {"max": 50}}`) and the checks that failed; a
    metric the evaluation did not compute fails its check."""
    failed: list[str] = []
    for name in sorted(thresholds):
        bound, value = thresholds[name], metrics.get(name)
        if value is None or not math.isfinite(value):
            failed.append(f"{name} missing from the evaluation's metrics")
            continue
        low, high = bound.get("min"), bound.get("max")
        if low is not None and value < low:
            failed.append(f"{name} {value:g} < {low:g}")
        if high is not None and value > high:
            failed.append(f"{name} {value:g} > {high:g}")
    return not failed, failed


class ForeignObject(ValueError):
    """An object URI outside what the tenant may read."""


def dataset_partition(tenant: str) -> str:
    """The key prefix of a tenant's files in the dataset service's bucket (`forge_dataset.domain`)."""
    return f"tenants/{tenant}/"


def check_own_model(uri: str, tenant: str, training_bucket: str) -> ObjectLocation:
    """A model URI a caller gave (the evaluation activity's `model_uri`): it must be one of the tenant's
    own training outputs, `s3://<training bucket>/<tenant>/...`, never a path of another tenant's."""
    location = parse_s3_uri(uri)
    inside = location.key.startswith(f"{tenant}/") and ".." not in location.key.split("/")
    if location.bucket != training_bucket or not inside:
        raise ForeignObject(
            f"{uri} is not one of tenant {tenant}'s training outputs (s3://{training_bucket}/{tenant}/...)"
        )
    return location


def check_own_dataset_file(bucket: str, key: str, tenant: str) -> ObjectLocation:
    """A test file a caller gave (the evaluation activity's `test_bucket`/`test_key`): it must be in the
    tenant's own partition of the dataset files, `tenants/<tenant>/...`."""
    if not key.startswith(dataset_partition(tenant)) or ".." in key.split("/"):
        raise ForeignObject(f"s3://{bucket}/{key} is not one of tenant {tenant}'s dataset files")
    return ObjectLocation(bucket, key)
