"""Who may do what to a labeling task, as users holding only the roles in question in a tenant of their
own: annotators take tasks for themselves and work only on their own, reviews are recorded as the
signed-in reviewer, and nobody reviews their own annotation."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from tests.identity import Caller, as_user, grant
from tests.services.labeling.conftest import Services
from tests.services.labeling.test_labeling_service import REVIEWS, post, project


@dataclass(frozen=True)
class Team:
    """A fresh tenant: a lead who sets the project up, two annotators, a reviewer, and one person who
    both annotates and reviews."""

    tenant: str
    lead: Caller
    annotator: Caller
    other_annotator: Caller
    reviewer: Caller
    annotator_reviewer: Caller


@pytest.fixture(scope="module")
def team(directory: str) -> Team:
    tenant = f"lb-{uuid.uuid4().hex[:8]}"
    roles = {
        "lb-lead": ["tenant-admin"],
        "lb-annotator": ["annotator"],
        "lb-annotator2": ["annotator"],
        "lb-reviewer": ["reviewer"],
        "lb-annotator-reviewer": ["annotator", "reviewer"],
    }
    for user, granted in roles.items():
        grant(directory, tenant, user, granted)
    people = [as_user(user, tenant) for user in roles]
    return Team(tenant, *people)


async def one_task(svc: Services, team: Team) -> str:
    _, task_ids = await project(svc, REVIEWS[:1], owner=team.lead)
    return task_ids[0]


async def submitted_by(svc: Services, annotator: Caller, task_id: str) -> None:
    await post(svc, f"/tasks/{task_id}/assign", annotator)
    await post(svc, f"/tasks/{task_id}/start", annotator)
    await post(svc, f"/tasks/{task_id}/annotations", annotator, {"label": "positive"})


async def state_of(svc: Services, team: Team, task_id: str) -> dict[str, Any]:
    response = await svc.labeling.get(f"/tasks/{task_id}", headers=team.lead)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def forbidden(response: Any) -> bool:
    return bool(
        response.status_code == 403 and response.headers["content-type"] == "application/problem+json"
    )


async def call(svc: Services, path: str, headers: Mapping[str, str], body: Any = None) -> Any:
    return await svc.labeling.post(path, json=body, headers=headers)


async def test_an_annotator_assigns_a_task_to_themselves(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)

    assigned = await post(services, f"/tasks/{task_id}/assign", team.annotator)

    assert assigned["state"] == "assigned" and assigned["assignee"] == "lb-annotator"


async def test_an_annotator_cannot_assign_a_task_to_someone_else(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)

    refused = await call(services, f"/tasks/{task_id}/assign", team.annotator, {"assignee": "lb-annotator2"})

    assert forbidden(refused), refused.text
    after = await state_of(services, team, task_id)
    assert after["state"] == "open" and after["assignee"] is None and after["sequence"] == 1


async def test_a_project_manager_hands_a_task_to_an_annotator(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)

    assigned = await post(services, f"/tasks/{task_id}/assign-to", team.lead, {"assignee": "lb-annotator"})
    by_annotator = await call(
        services, f"/tasks/{task_id}/assign-to", team.annotator, {"assignee": "lb-annotator"}
    )

    assert assigned["state"] == "assigned" and assigned["assignee"] == "lb-annotator"
    assert forbidden(by_annotator), by_annotator.text


async def test_a_task_is_handed_only_to_an_annotator_of_the_tenant(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)

    refused = {
        who: await call(services, f"/tasks/{task_id}/assign-to", team.lead, {"assignee": who})
        for who in ("lb-reviewer", "eve", "nobody-at-all")  # a reviewer only; another tenant's; unknown
    }

    for who, response in refused.items():
        assert response.status_code == 422, (who, response.text)
        assert response.json()["detail"] == f"assignee: {who} is not an annotator in tenant {team.tenant}"
    after = await state_of(services, team, task_id)
    assert after["state"] == "open" and after["assignee"] is None and after["sequence"] == 1


async def test_only_the_assignee_starts_and_submits_a_task(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)
    await post(services, f"/tasks/{task_id}/assign-to", team.lead, {"assignee": "lb-annotator"})

    started_by_other = await call(services, f"/tasks/{task_id}/start", team.other_annotator)
    await post(services, f"/tasks/{task_id}/start", team.annotator)
    submitted_by_other = await call(
        services, f"/tasks/{task_id}/annotations", team.other_annotator, {"label": "negative"}
    )

    assert forbidden(started_by_other), started_by_other.text
    assert forbidden(submitted_by_other), submitted_by_other.text
    after = await state_of(services, team, task_id)
    assert after["state"] == "in_progress" and after["annotations"] == []
    own = await post(services, f"/tasks/{task_id}/annotations", team.annotator, {"label": "positive"})
    assert own["annotator"] == "lb-annotator"


async def test_a_review_is_recorded_as_the_signed_in_reviewer(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)
    await submitted_by(services, team.annotator, task_id)

    as_another = await call(services, f"/tasks/{task_id}/accept", team.reviewer, {"reviewer": "lb-lead"})
    reject_as_another = await call(
        services, f"/tasks/{task_id}/reject", team.reviewer, {"reviewer": "lb-lead", "reason": "no"}
    )
    assert forbidden(as_another), as_another.text
    assert forbidden(reject_as_another), reject_as_another.text
    assert (await state_of(services, team, task_id))["state"] == "submitted"

    await post(services, f"/tasks/{task_id}/accept", team.reviewer)

    after = await state_of(services, team, task_id)
    assert after["state"] == "accepted"
    assert [(a["review"], a["reviewer"]) for a in after["annotations"]] == [("accepted", "lb-reviewer")]


async def test_an_annotator_cannot_review_their_own_annotation(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)
    await submitted_by(services, team.annotator_reviewer, task_id)

    accepted = await call(services, f"/tasks/{task_id}/accept", team.annotator_reviewer)
    rejected = await call(
        services, f"/tasks/{task_id}/reject", team.annotator_reviewer, {"reason": "second thoughts"}
    )

    assert forbidden(accepted), accepted.text
    assert forbidden(rejected), rejected.text
    after = await state_of(services, team, task_id)
    assert after["state"] == "submitted" and after["annotations"][0]["review"] is None
    await post(services, f"/tasks/{task_id}/accept", team.reviewer)  # somebody else may


async def test_an_annotator_alone_may_not_review(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)
    await submitted_by(services, team.annotator, task_id)

    accepted = await call(services, f"/tasks/{task_id}/accept", team.other_annotator)

    assert forbidden(accepted), accepted.text
    assert (await state_of(services, team, task_id))["state"] == "submitted"


async def test_the_annotator_reworks_a_rejected_annotation_and_the_reviewer_may_not(
    services: Services, team: Team
) -> None:
    task_id = await one_task(services, team)
    await submitted_by(services, team.annotator, task_id)
    await post(services, f"/tasks/{task_id}/reject", team.reviewer, {"reason": "it reads negative"})

    by_reviewer = await call(services, f"/tasks/{task_id}/rework", team.reviewer)
    by_other_annotator = await call(services, f"/tasks/{task_id}/rework", team.other_annotator)
    reworked = await post(services, f"/tasks/{task_id}/rework", team.annotator)

    assert forbidden(by_reviewer), by_reviewer.text
    assert forbidden(by_other_annotator), by_other_annotator.text
    assert reworked["state"] == "in_progress" and reworked["assignee"] == "lb-annotator"


async def test_an_annotator_cannot_skip_someone_elses_task(services: Services, team: Team) -> None:
    task_id = await one_task(services, team)
    await post(services, f"/tasks/{task_id}/assign", team.annotator)

    refused = await call(services, f"/tasks/{task_id}/skip", team.other_annotator, {"reason": "hard"})

    assert forbidden(refused), refused.text
    assert (await state_of(services, team, task_id))["state"] == "assigned"
