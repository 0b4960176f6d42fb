"""The training service's rules without I/O: an evaluation's verdict against its thresholds, and which
object URIs a caller may name for a tenant."""

from __future__ import annotations

import pytest
from forge_training.domain import ForeignObject, check_own_dataset_file, check_own_model, judge

METRICS = {"perplexity": 41.2, "bleu": 12.5, "rouge1": 0.41}


def test_an_evaluation_passes_when_every_bound_is_met() -> None:
    assert judge(METRICS, {"perplexity": {"max": 50}, "bleu": {"min": 5, "max": 100}}) == (True, [])


def test_an_evaluation_fails_naming_each_bound_it_misses_and_each_metric_it_lacks() -> None:
    passed, failed = judge(
        METRICS, {"perplexity": {"max": 30}, "bleu": {"min": 20}, "exact_match": {"min": 0}}
    )

    assert passed is False
    assert failed == [
        "bleu 12.5 < 20",
        "exact_match missing from the evaluation's metrics",
        "perplexity 41.2 > 30",
    ]


@pytest.mark.parametrize(
    "uri",
    [
        "s3://forge-training/globex/01956a00/merged/",  # another tenant's outputs
        "s3://forge-models/acme/base/",  # another bucket, whatever its keys say
        "s3://forge-training/acme",  # not under the prefix
        "s3://forge-training/acmeco/x/merged/",  # a tenant whose name starts like acme's
        "s3://forge-training/acme/../globex/x/merged/",
    ],
)
def test_a_model_uri_outside_the_tenants_training_outputs_is_refused(uri: str) -> None:
    with pytest.raises(ForeignObject):
        check_own_model(uri, "acme", "forge-training")


def test_the_tenants_own_training_output_is_accepted() -> None:
    location = check_own_model("s3://forge-training/acme/01956a00/merged/", "acme", "forge-training")

    assert (location.bucket, location.key) == ("forge-training", "acme/01956a00/merged/")


@pytest.mark.parametrize(
    "key",
    [
        "tenants/globex/blobs/sha256/ab/abcd",
        "tenants/acme/../globex/blobs/sha256/ab/abcd",
        "tenants/acmeco/blobs/sha256/ab/abcd",
        "datasets/v1/test.jsonl",
    ],
)
def test_a_test_file_outside_the_tenants_dataset_files_is_refused(key: str) -> None:
    with pytest.raises(ForeignObject):
        check_own_dataset_file("forge-datasets", key, "acme")
