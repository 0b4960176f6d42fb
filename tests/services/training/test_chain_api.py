"""The chain's API under sign-in: who may approve a release (release approvers, in their own name only),
and what a chain may start from (the tenant's own dataset version and hub base model, at the base model's
own location). None of these needs a chain to run: each is refused before one would start."""

from __future__ import annotations

import json
import os
import uuid
from typing import Any

import pytest

from tests.identity import as_user, grant
from tests.services.training.conftest import ACME, GLOBEX, Catalogue, TrainingService

CHAIN = "01956c00-0000-7000-8000-000000000001"
RECORDS = b"".join(
    json.dumps({"instruction": f"Say {word}.", "input": "", "output": word}).encode() + b"\n"
    for word in ("yes", "no", "maybe")
)


async def test_only_a_release_approver_approves_and_only_in_their_own_name(training: TrainingService) -> None:
    carol = as_user("carol", "acme")  # a release approver of acme
    engineer = f"frank-{uuid.uuid4().hex[:6]}"
    directory = os.environ["FORGE_DIRECTORY_URL"]
    grant(directory, "acme", engineer, ["ml-engineer"])  # may run training, not approve releases
    path = f"/chains/{CHAIN}/approve-release"

    in_her_name = await training.http.post(path, json={"approved_by": "alice", "reason": "ok"}, headers=carol)
    not_an_approver = await training.http.post(path, json={"reason": "ok"}, headers=as_user(engineer, "acme"))
    no_such_chain = await training.http.post(path, json={"reason": "ok"}, headers=carol)

    assert in_her_name.status_code == 403, in_her_name.text
    assert "in the name of" in in_her_name.json()["detail"]
    assert not_an_approver.status_code == 403, not_an_approver.text
    assert no_such_chain.status_code == 404, no_such_chain.text
    cancel = await training.http.post(f"/chains/{CHAIN}/cancel", json={"reason": "x"}, headers=ACME)
    assert cancel.status_code == 404


async def _published(catalogue: Catalogue, headers: dict[str, str]) -> dict[str, str]:
    files = {"train.jsonl": RECORDS, "validation.jsonl": RECORDS, "test.jsonl": RECORDS}
    version = await catalogue.publish(headers, files)
    return {"dataset_id": version.dataset_id, "dataset_version_id": version.version_id}


def _chain(dataset: dict[str, str], base_model_id: str, **changes: Any) -> dict[str, Any]:
    return {
        **dataset,
        "base_model_id": base_model_id,
        "model_project_id": "01956900-aaaa-7bbb-8ccc-000000000001",
        "scheduler_project_id": "01956900-aaaa-7bbb-8ccc-0000000000aa",
        "gate": {"perplexity": {"max": 100}},
        "model_name": "tiny",
        "card": {"description": "a test", "intended_use": "tests", "limitations": "none"},
        **changes,
    }


async def test_a_chain_starts_only_from_the_tenants_own_dataset_and_base_model_where_the_hub_has_it(
    training: TrainingService, catalogue: Catalogue
) -> None:
    ours = await _published(catalogue, ACME)
    theirs = await _published(catalogue, GLOBEX)
    name = uuid.uuid4().hex[:8]
    our_model = await catalogue.register_base_model(ACME, f"s3://{catalogue.bucket}/tenants/acme/hub/{name}/")
    their_model = await catalogue.register_base_model(
        GLOBEX, f"s3://{catalogue.bucket}/tenants/globex/hub/{name}/"
    )

    for body, status in (
        (_chain(theirs, our_model), 404),
        (_chain(ours, their_model), 404),
        (_chain(ours, our_model, base_model_uri="s3://forge-training/globex/job/merged/"), 422),
    ):
        response = await training.http.post("/chains", json=body, headers=ACME)

        assert response.status_code == status, (body, response.text)


@pytest.mark.parametrize(
    "changes",
    [
        {"cpu_millis": 2**62},  # past what the scheduler admits
        {"cpu_millis": True},  # not an integer
        {"memory_bytes": 2**70},
        {"eval_max_records": 0},
        {"eval_max_new_tokens": 5000},
        {"approval_timeout_s": 1e300},
        {"scheduler_project_id": "a\x00b"},
        {"model_project_id": "not-an-id"},
    ],
)
async def test_a_chain_out_of_bounds_is_refused_before_any_workflow_starts(
    training: TrainingService, changes: dict[str, Any]
) -> None:
    body = _chain(
        {"dataset_id": str(uuid.uuid4()), "dataset_version_id": str(uuid.uuid4())}, str(uuid.uuid4())
    )
    response = await training.http.post("/chains", json={**body, **changes}, headers=ACME)

    assert response.status_code == 422, response.text
    field = next(iter(changes))
    assert response.json()["errors"][0]["location"] == f"body.{field}"
