"""Evaluation jobs end to end (EV-1, EV-2, EV-4, EV-5): the API, the Temporal workflow, the training
runtime's `evaluate` as a child process on the tiny base model, MinIO and the events on Kafka."""

from __future__ import annotations

import json
import uuid
from typing import Any

from forge_contracts.activities.training import EvaluationRequest
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings
from forge_training import service
from forge_training.activities import EvaluationActivities
from forge_training.schemas import TrainingSpec
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from tests.services.training.conftest import ACME, GLOBEX, EventLog, Inputs, TrainingService
from tests.waiting import eventually


def evaluation_body(inputs: Inputs, **overrides: Any) -> dict[str, Any]:
    """A quick evaluation of the tiny base model of the hub: 8 test records, 8 new tokens each."""
    body: dict[str, Any] = {
        "model": {"base_model_id": inputs.base_model_id},
        "test_set": {
            "dataset_id": inputs.data.dataset_id,
            "version_id": inputs.data.version_id,
            "file": "test.jsonl",
        },
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


async def _registered_version(inputs: Inputs, artifact_uri: str) -> str:
    """A model version of a new registry project whose artifact is `artifact_uri` (an import)."""
    registry = inputs.catalogue.registry
    project = await registry.post(
        "/model-projects", json={"name": f"eval-{uuid.uuid4().hex[:8]}"}, headers=ACME
    )
    assert project.status_code == 201, project.text
    version = await registry.post(
        f"/model-projects/{project.json()['id']}/versions", json={"artifact_uri": artifact_uri}, headers=ACME
    )
    assert version.status_code == 201, version.text
    version_id: str = version.json()["id"]
    return version_id


def _test_file(inputs: Inputs) -> tuple[str, str]:
    """The bucket and key of the sample test file, as the dataset service stored it (acme's files)."""
    return inputs.bucket, inputs.data.keys["test.jsonl"]


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
    assert report["test_set"]["dataset_version_id"] == inputs.data.version_id
    assert (
        job["model"]["base_model_id"] == inputs.base_model_id and job["model"]["uri"] == inputs.base_model_uri
    )
    bucket, key = _test_file(inputs)
    assert job["test_set"] == {
        "dataset_id": inputs.data.dataset_id,
        "dataset_version_id": inputs.data.version_id,
        "file": "test.jsonl",
        "uri": f"s3://{bucket}/{key}",
    }
    assert (job["thresholds"], job["passed"], job["failed_checks"]) == (None, None, [])  # nothing judged
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
    assert published[0].data["dataset_version_ids"] == [inputs.data.version_id]  # the real test set
    succeeded = published[-1].data
    assert succeeded["report_uri"] == job["report_uri"] and succeeded["outputs_uri"] == job["records_uri"]
    assert succeeded["metrics"] == job["metrics"]
    # A base model is no registered model version, and no thresholds were given: the event says so rather
    # than naming a made-up version or claiming a verdict it never computed.
    assert all("model_version_id" not in event.data for event in published)
    assert "passed" not in succeeded and "no thresholds were given" in succeeded["not_judged_reason"]


async def test_an_evaluation_with_thresholds_passes_or_fails_by_its_metrics(
    training: TrainingService, inputs: Inputs, events: EventLog
) -> None:
    version_id = await _registered_version(inputs, inputs.base_model_uri)
    thresholds = {"perplexity": {"min": 1.0}, "bleu": {"min": 101}}  # BLEU never exceeds 100
    created = await _create(
        training,
        evaluation_body(
            inputs, model={"base_model_id": None, "model_version_id": version_id}, thresholds=thresholds
        ),
    )

    job = await _wait_state(training, created["id"], "succeeded")

    assert job["model"]["model_version_id"] == version_id and job["model"]["uri"] == inputs.base_model_uri
    assert job["thresholds"] == thresholds and job["passed"] is False
    assert len(job["failed_checks"]) == 1 and job["failed_checks"][0].startswith("bleu ")
    published = await events.of(job["id"], 4)
    assert all(event.data["model_version_id"] == version_id for event in published)  # a real Forge id
    assert published[0].data["thresholds"] == {"perplexity": 1.0, "bleu": 101.0}
    succeeded = published[-1].data
    assert succeeded["passed"] is False and succeeded["failed_checks"] == job["failed_checks"]
    assert succeeded.get("not_judged_reason") is None


async def _own_training_output(
    training: TrainingService, inputs: Inputs, stack_settings: StackSettings
) -> str:
    """The tiny model copied where acme's training outputs go (as a chain's training job leaves it)."""
    prefix = f"acme/{uuid.uuid4()}/merged/"
    source = inputs.base_model_uri.removeprefix(f"s3://{inputs.bucket}/")
    async with s3_client(stack_settings) as s3:
        listing = await s3.list_objects_v2(Bucket=inputs.bucket, Prefix=source)
        for item in listing["Contents"]:
            name = item["Key"][len(source) :]
            await s3.copy_object(
                Bucket=training.bucket,
                Key=prefix + name,
                CopySource={"Bucket": inputs.bucket, "Key": item["Key"]},
            )
    return f"s3://{training.bucket}/{prefix}"


async def test_the_evaluation_activity_creates_its_job_once_per_request_key(
    training: TrainingService, inputs: Inputs, stack_settings: StackSettings
) -> None:
    activities = EvaluationActivities(training.deps)
    model_uri = await _own_training_output(training, inputs, stack_settings)
    bucket, key = _test_file(inputs)
    request = EvaluationRequest(
        tenant_id="acme",
        request_key="chain-42:evaluate",
        model_uri=model_uri,
        test_bucket=bucket,
        test_key=key,
        data_format="alpaca",
        max_new_tokens=8,
        max_records=8,
        thresholds={"perplexity": {"min": 1.0}},
    )
    first = await ActivityEnvironment().run(activities.run_evaluation, request)

    again = await ActivityEnvironment().run(activities.run_evaluation, request)

    assert again == first
    _assert_valid_metrics(first.metrics)
    assert first.passed is True and first.failed_checks == []
    listed = (await training.http.get("/evaluation-jobs", headers=ACME)).json()["items"]
    assert [job["id"] for job in listed] == [first.evaluation_job_id]
    [job] = listed
    assert job["state"] == "succeeded" and job["sequence"] == 4
    assert job["progress"]["attempt"] == 1  # the second call did not run the evaluation again
    assert job["report_uri"] == first.report_uri and job["records_uri"] == first.records_uri


async def _model_gone(training: TrainingService, inputs: Inputs) -> str:
    """A model version whose artifact is not (or no longer) in object storage."""
    return await _registered_version(inputs, f"s3://{training.bucket}/acme/{uuid.uuid4()}/merged/")


async def test_an_evaluation_whose_model_is_missing_fails_clearly_and_cannot_be_cancelled(
    training: TrainingService, inputs: Inputs, events: EventLog
) -> None:
    body = evaluation_body(
        inputs, model={"base_model_id": None, "model_version_id": await _model_gone(training, inputs)}
    )
    created = await _create(training, body)

    job = await _wait_state(training, created["id"], "failed")

    assert job["error"] == f"input missing: nothing under {job['model']['uri']}"
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
    training: TrainingService, inputs: Inputs, stack_settings: StackSettings
) -> None:
    request = EvaluationRequest(
        tenant_id="acme",
        request_key="chain-43:evaluate",
        model_uri=await _own_training_output(training, inputs, stack_settings),
        test_bucket=inputs.bucket,
        test_key="tenants/acme/datasets/v1/absent.jsonl",
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


async def test_the_evaluation_activity_refuses_objects_outside_the_tenants_own_storage(
    training: TrainingService, inputs: Inputs, stack_settings: StackSettings
) -> None:
    activities = EvaluationActivities(training.deps)
    own_model = await _own_training_output(training, inputs, stack_settings)
    bucket, key = _test_file(inputs)
    their_key = inputs.theirs.keys["test.jsonl"]  # globex's file, in the same dataset bucket
    for model_uri, test_key, what in (
        (own_model, their_key, "dataset files"),
        (inputs.base_model_uri, key, "training outputs"),  # not where acme's training outputs are
        (own_model.replace("/acme/", "/globex/"), key, "training outputs"),
    ):
        request = EvaluationRequest(
            tenant_id="acme",
            request_key=f"chain-{uuid.uuid4().hex[:6]}:evaluate",
            model_uri=model_uri,
            test_bucket=bucket,
            test_key=test_key,
        )
        try:
            await ActivityEnvironment().run(activities.run_evaluation, request)
        except ApplicationError as error:
            assert error.non_retryable and error.type == "InvalidEvaluationRequest", error
            assert what in str(error), str(error)
        else:
            raise AssertionError(f"the evaluation of {model_uri} on {test_key} should have been refused")
    assert (await training.http.get("/evaluation-jobs", headers=ACME)).json()["items"] == []


async def test_an_evaluation_naming_another_tenants_resources_is_not_found_and_not_created(
    training: TrainingService, inputs: Inputs
) -> None:
    theirs = {"dataset_id": inputs.theirs.dataset_id, "version_id": inputs.theirs.version_id}
    their_job = await service.create_job(  # recorded only: it need not run to have an id
        training.deps.db,
        "globex",
        "bob",
        TrainingSpec(name="theirs", project_id="01956900-aaaa-7bbb-8ccc-000000000001"),
        service.JobInputs(
            base_model_uri=inputs.base_model_uri,
            dataset_version_id=inputs.theirs.version_id,
            bucket=inputs.bucket,
            train_key=inputs.theirs.keys["train.jsonl"],
        ),
    )
    for change in (
        {"test_set": theirs},
        {"model": {"base_model_id": inputs.their_base_model_id}},
        {"model": {"base_model_id": None, "training_job_id": their_job.id}},
    ):
        response = await training.http.post(
            "/evaluation-jobs", json=evaluation_body(inputs, **change), headers=ACME
        )

        assert response.status_code == 404, (change, response.text)
    assert (await training.http.get("/evaluation-jobs", headers=ACME)).json()["items"] == []


async def test_another_tenants_evaluation_is_not_found(training: TrainingService, inputs: Inputs) -> None:
    body = evaluation_body(
        inputs, model={"base_model_id": None, "model_version_id": await _model_gone(training, inputs)}
    )
    created = await _create(training, body)  # fails fast: no model to download
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
    ({"model": {"uri": "s3://forge-training/globex/job/merged/"}}, "model.uri"),  # no object URIs
    ({"model": {"model_version_id": "v1"}}, "model.model_version_id"),
    ({"model": {"training_job_id": "01956a00-3c4d-7e5f-8a6b-7c8d9e0f1a2b"}}, "exactly one"),
    ({"test_set": {"bucket": "forge-datasets"}}, "test_set.bucket"),
    ({"test_set": {"file": "../test.jsonl"}}, "test_set.file"),
    ({"data_format": "csv"}, "data_format"),
    ({"max_new_tokens": 0}, "max_new_tokens"),
    ({"max_records": 0}, "max_records"),
    ({"max_recordz": 3}, "max_recordz"),
    ({"thresholds": {"bleu": {}}}, "thresholds.bleu"),
    ({"thresholds": {"bleu": {"min": 5, "max": 1}}}, "thresholds.bleu"),
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
    assert without_tenant.status_code == 401  # no bearer token
    listed = await training.http.get("/evaluation-jobs", headers=ACME)
    assert listed.json()["items"] == []
