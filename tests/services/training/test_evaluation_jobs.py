"""Evaluation jobs end to end (EV-1, EV-2, EV-4, EV-5): the API, the Temporal workflow, the training
runtime's `evaluate` as a child process on the tiny base model, MinIO and the events on Kafka."""

from __future__ import annotations

import json
from typing import Any

from forge_contracts.activities.training import EvaluationRequest
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_training.activities import EvaluationActivities
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.services.training.conftest import ACME, GLOBEX, EventLog, Inputs, TrainingService
from tests.waiting import eventually

MODEL_VERSION = "01956a80-5555-7666-8777-888899990000"


def evaluation_body(inputs: Inputs, **overrides: Any) -> dict[str, Any]:
    """A quick evaluation of the tiny base model: 8 test records, 8 new tokens each."""
    body: dict[str, Any] = {
        "model": {"uri": inputs.base_model_uri, "model_version_id": MODEL_VERSION},
        "test_set": {"bucket": inputs.bucket, "key": inputs.test_key},
        "data_format": "alpaca",
        "max_new_tokens": 8,
        "max_records": 8,
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(body.get(key), dict):
            body[key] = {**body[key], **value}
        else:
            body[key] = value
    return body


async def _create(training: TrainingService, body: dict[str, Any]) -> dict[str, Any]:
    response = await training.http.post("/evaluation-jobs", json=body, headers=ACME)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def _wait_state(training: TrainingService, evaluation_id: str, state: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await training.http.get(f"/evaluation-jobs/{evaluation_id}", headers=ACME)
        assert response.status_code == 200, response.text
        job: dict[str, Any] = response.json()
        assert job["state"] not in {"failed", "cancelled"} - {state}, job
        return job if job["state"] == state else None

    found: dict[str, Any] = await eventually(
        probe, timeout_s=60, interval_s=0.2, what=f"evaluation {evaluation_id} {state}"
    )
    return found


async def _object(stack_settings: StackSettings, uri: str) -> bytes:
    bucket, key = uri.removeprefix("s3://").split("/", 1)
    async with s3_client(stack_settings) as s3:
        response = await s3.get_object(Bucket=bucket, Key=key)
        data: bytes = await response["Body"].read()
    return data


def _assert_valid_metrics(metrics: dict[str, float]) -> None:
    assert {"perplexity", "bleu", "rouge1", "rouge2", "rougeL", "exact_match"} <= set(metrics), metrics
    assert metrics["perplexity"] >= 1.0
    assert 0.0 <= metrics["bleu"] <= 100.0
    for name in ("rouge1", "rouge2", "rougeL", "exact_match"):
        assert 0.0 <= metrics[name] <= 1.0, (name, metrics[name])


async def test_an_evaluation_job_scores_the_model_and_keeps_its_records_and_report(
    training: TrainingService, inputs: Inputs, events: EventLog, stack_settings: StackSettings
) -> None:
    created = await _create(training, evaluation_body(inputs))
    assert created["state"] == "pending"

    job = await _wait_state(training, created["id"], "succeeded")

    _assert_valid_metrics(job["metrics"])
    assert job["record_count"] == 8 and job["progress"]["phase"] == "done"
    prefix = f"s3://{training.bucket}/acme/evaluations/{job['id']}/"
    assert job["records_uri"] == prefix + "records.jsonl" and job["report_uri"] == prefix + "report.json"
    page = await training.http.get(
        f"/evaluation-jobs/{job['id']}/records", params={"limit": 100}, headers=ACME
    )
    assert page.status_code == 200, page.text
    records = page.json()["records"]
    assert len(records) == 8 and page.json()["total"] == 8 and page.json()["next_offset"] is None
    assert [r["seq"] for r in records] == list(range(1, 9))
    assert all(r["prompt"].strip() and r["reference"].strip() for r in records)
    assert all("### Response:" in r["prompt"] for r in records)
    first = await training.http.get(
        f"/evaluation-jobs/{job['id']}/records", params={"limit": 3}, headers=ACME
    )
    assert [r["seq"] for r in first.json()["records"]] == [1, 2, 3] and first.json()["next_offset"] == 3
    report = json.loads(await _object(stack_settings, job["report_uri"]))
    assert report["metrics"] == job["metrics"] and report["counts"] == {"records": 8}
    assert report["config"]["max_new_tokens"] == 8 and report["model"]["uri"] == inputs.base_model_uri
    kept = (await _object(stack_settings, job["records_uri"])).decode().splitlines()
    assert [json.loads(line) for line in kept] == [
        {key: r[key] for key in ("prompt", "reference", "prediction")} for r in records
    ]

    published = await events.of(job["id"], 4)
    assert [(e.type, e.sequence) for e in published] == [
        ("forge.training.eval.created.v1", 1),
        ("forge.training.eval.queued.v1", 2),
        ("forge.training.eval.started.v1", 3),
        ("forge.training.eval.succeeded.v1", 4),
    ]
    succeeded = published[-1].data
    assert succeeded["model_version_id"] == MODEL_VERSION
    assert succeeded["report_uri"] == job["report_uri"] and succeeded["outputs_uri"] == job["records_uri"]
    assert succeeded["metrics"] == job["metrics"]


async def test_the_evaluation_activity_creates_its_job_once_per_request_key(
    training: TrainingService, inputs: Inputs
) -> None:
    activities = EvaluationActivities(training.deps)
    request = EvaluationRequest(
        tenant_id="acme",
        request_key="chain-42:evaluate",
        model_uri=inputs.base_model_uri,
        test_bucket=inputs.bucket,
        test_key=inputs.test_key,
        data_format="alpaca",
        max_new_tokens=8,
        max_records=8,
    )
    first = await ActivityEnvironment().run(activities.run_evaluation, request)

    again = await ActivityEnvironment().run(activities.run_evaluation, request)

    assert again == first
    _assert_valid_metrics(first.metrics)
    listed = (await training.http.get("/evaluation-jobs", headers=ACME)).json()["items"]
    assert [job["id"] for job in listed] == [first.evaluation_job_id]
    [job] = listed
    assert job["state"] == "succeeded" and job["sequence"] == 4
    assert job["progress"]["attempt"] == 1  # the second call did not run the evaluation again
    assert job["report_uri"] == first.report_uri and job["records_uri"] == first.records_uri


async def test_an_evaluation_whose_test_file_is_missing_fails_clearly_and_cannot_be_cancelled(
    training: TrainingService, inputs: Inputs, events: EventLog
) -> None:
    created = await _create(training, evaluation_body(inputs, test_set={"key": "datasets/v1/nope.jsonl"}))

    job = await _wait_state(training, created["id"], "failed")

    assert job["error"] == f"input missing: s3://{inputs.bucket}/datasets/v1/nope.jsonl does not exist"
    assert job["metrics"] == {} and job["records_uri"] is None
    published = await events.of(job["id"], 4)
    assert [(e.type.split(".")[3], e.sequence) for e in published] == [
        ("created", 1),
        ("queued", 2),
        ("started", 3),
        ("failed", 4),
    ]
    assert published[-1].data["error"] == job["error"]
    refused = await training.http.post(f"/evaluation-jobs/{job['id']}/cancel", headers=ACME)
    assert refused.status_code == 409
    assert refused.headers["content-type"].startswith("application/problem+json")
    after = (await training.http.get(f"/evaluation-jobs/{job['id']}", headers=ACME)).json()
    assert after["state"] == "failed" and after["sequence"] == 4
    assert [e.sequence for e in await events.of(job["id"], 4)] == [1, 2, 3, 4]


async def test_the_evaluation_activity_reports_a_missing_test_file_as_a_non_retryable_error(
    training: TrainingService, inputs: Inputs
) -> None:
    request = EvaluationRequest(
        tenant_id="acme",
        request_key="chain-43:evaluate",
        model_uri=inputs.base_model_uri,
        test_bucket=inputs.bucket,
        test_key="datasets/v1/absent.jsonl",
    )
    activities = EvaluationActivities(training.deps)

    try:
        await ActivityEnvironment().run(activities.run_evaluation, request)
    except ApplicationError as error:
        assert error.non_retryable
        assert "datasets/v1/absent.jsonl does not exist" in str(error)
    else:
        raise AssertionError("the evaluation should have failed")
    [job] = (await training.http.get("/evaluation-jobs", headers=ACME)).json()["items"]
    assert job["state"] == "failed" and "absent.jsonl does not exist" in job["error"]


async def test_another_tenants_evaluation_is_not_found(training: TrainingService, inputs: Inputs) -> None:
    created = await _create(training, evaluation_body(inputs, test_set={"key": "datasets/v1/absent.jsonl"}))
    evaluation_id = created["id"]

    for path in (f"/evaluation-jobs/{evaluation_id}", f"/evaluation-jobs/{evaluation_id}/records"):
        response = await training.http.get(path, headers=GLOBEX)
        assert response.status_code == 404, path
        assert response.headers["content-type"].startswith("application/problem+json")
    cancel = await training.http.post(f"/evaluation-jobs/{evaluation_id}/cancel", headers=GLOBEX)
    assert cancel.status_code == 404
    theirs = await training.http.get("/evaluation-jobs", headers=GLOBEX)
    assert theirs.json()["items"] == []
    ours = await training.http.get("/evaluation-jobs", headers=ACME)
    assert [job["id"] for job in ours.json()["items"]] == [evaluation_id]


BAD_INPUT = [
    ({"model": {"uri": "/local/model"}}, "model.uri"),
    ({"model": {"model_version_id": "v1"}}, "model.model_version_id"),
    ({"test_set": {"bucket": "Not_A_Bucket"}}, "test_set.bucket"),
    ({"test_set": {"key": ""}}, "test_set.key"),
    ({"data_format": "csv"}, "data_format"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_records": 0}, "max_records"),
    ({"max_recordz": 3}, "max_recordz"),
]


async def test_bad_evaluation_input_is_refused_naming_the_field_and_nothing_is_created(
    training: TrainingService, inputs: Inputs
) -> None:
    for change, field in BAD_INPUT:
        response = await training.http.post(
            "/evaluation-jobs", json=evaluation_body(inputs, **change), headers=ACME
        )

        assert response.status_code == 422, (change, response.text)
        assert field in response.json()["detail"], (change, response.json()["detail"])
    without_tenant = await training.http.post("/evaluation-jobs", json=evaluation_body(inputs))
    assert without_tenant.status_code == 422 and "x-forge-tenant" in without_tenant.json()["detail"]
    listed = await training.http.get("/evaluation-jobs", headers=ACME)
    assert listed.json()["items"] == []
