"""The registry end to end on the real stack: model projects, base models, versions with lineage, and the
release gate (a failed evaluation blocks release and delivery unless an approver overrides it, audited).
Evaluation results and delivery marks come only from Forge's services; the gate's verdict is the
registry's own."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from typing import Any

import httpx
from forge_contracts.activities.registry import EvaluationOutcome, MarkDelivered, RegisterVersion
from forge_contracts.envelope import uuid7
from forge_kit.objects import s3_client

from tests.identity import as_service, as_user
from tests.services.registry.chain import GateChain
from tests.services.registry.conftest import EventReader, Registry

HASH = "ab" * 32
GATE = {"perplexity": {"max": 50}, "bleu": {"min": 5}}
GOOD = {"perplexity": 12.5, "bleu": 9.0}
BAD = {"perplexity": 80.0, "bleu": 2.0}


def h(tenant: str, user: str = "alice") -> dict[str, str]:
    return as_user(user, tenant)


def svc(tenant: str, for_user: str = "alice") -> dict[str, str]:
    """The training service (evaluation results, delivery marks), working for `for_user`."""
    return as_service("training", tenant, on_behalf_of=for_user)


async def make_project(http: httpx.AsyncClient, tenant: str, **extra: Any) -> dict[str, Any]:
    body = {"name": f"qwen-{uuid.uuid4().hex[:6]}", "desc": "support bot", "gate": GATE, **extra}
    response = await http.post("/model-projects", json=body, headers=h(tenant))
    assert response.status_code == 201, response.text
    return response.json()


async def make_version(http: httpx.AsyncClient, tenant: str, project_id: str, **extra: Any) -> dict[str, Any]:
    body = {
        "artifact_uri": f"s3://forge-models/tenants/{tenant}/run/final/",
        "training_job_id": uuid7(),
        "dataset_versions": [{"id": uuid7(), "content_hash": HASH}],
        "hyperparameters": {"lr": 0.0002, "lora_rank": 8},
        "metrics": {"eval_loss": 0.54},
        **extra,
    }
    response = await http.post(f"/model-projects/{project_id}/versions", json=body, headers=h(tenant))
    assert response.status_code == 201, response.text
    return response.json()


def path(version: dict[str, Any], action: str = "") -> str:
    base = f"/model-projects/{version['project_id']}/versions/{version['id']}"
    return f"{base}/{action}" if action else base


async def evaluate(
    http: httpx.AsyncClient, tenant: str, version: dict[str, Any], metrics: dict[str, float]
) -> httpx.Response:
    evaluation_id = await start(http, tenant, version)
    return await http.post(
        path(version, "evaluation/result"),
        json={
            "evaluation_id": evaluation_id,
            "metrics": metrics,
            "report": {"samples": [{"input": "hi", "output": "hello"}]},
        },
        headers=svc(tenant),
    )


async def start(http: httpx.AsyncClient, tenant: str, version: dict[str, Any]) -> str:
    evaluation_id = uuid7()
    started = await http.post(
        path(version, "evaluation/start"), json={"evaluation_id": evaluation_id}, headers=svc(tenant)
    )
    assert started.status_code == 200, started.text
    return evaluation_id


async def passed_version(http: httpx.AsyncClient, tenant: str, project_id: str) -> dict[str, Any]:
    """A version of `project_id` whose evaluation passed the gate (ready to release)."""
    version = await make_version(http, tenant, project_id)
    result = await evaluate(http, tenant, version, GOOD)
    assert result.status_code == 200 and result.json()["passed"] is True, result.text
    return version


async def test_a_passing_evaluation_releases_and_delivers_with_one_event_per_change(
    registry: Registry, tenant: str, events: EventReader
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    assert (version["version"], version["state"], version["sequence"]) == (1, "registered", 1)

    result = await evaluate(http, tenant, version, GOOD)
    assert result.status_code == 200, result.text
    assert result.json()["passed"] is True
    assert result.json()["report"]["samples"][0]["output"] == "hello"
    released = await http.post(path(version, "release"), json={"alias": "production"}, headers=h(tenant))
    assert released.status_code == 200, released.text
    assert released.json()["state"] == "released" and "production" in released.json()["tags"]
    order = {"delivery_order_id": uuid7(), "bundle_uri": "s3://forge-bundles/acme/qwen/1/"}
    delivered = await http.post(path(version, "mark-delivered"), json=order, headers=svc(tenant))
    assert delivered.status_code == 200, delivered.text
    assert delivered.json()["state"] == "delivered"

    detail = (await http.get(f"/model-projects/{project['id']}", headers=h(tenant))).json()
    assert detail["versions"][0]["state"] == "delivered"
    assert detail["versions"][0]["evaluation_passed"] is True
    assert detail["status"]["latest_delivered_version"] == 1

    seen = await events.of([version["id"]], count=5)
    assert [e.type.split(".")[3] for e in seen] == [
        "registered",
        "evaluation_started",
        "evaluation_passed",
        "released",
        "delivered",
    ]
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]
    assert all(e.tenantid == tenant and e.data["actor"] == "alice" for e in seen)
    report_uri = seen[2].data["report_uri"]
    assert report_uri.startswith(f"s3://{registry.bucket}/{tenant}/")
    async with s3_client(registry.stack) as s3:
        stored = await s3.get_object(Bucket=registry.bucket, Key=report_uri.split("/", 3)[3])
        report = json.loads(await stored["Body"].read())
    assert report["passed"] is True and report["thresholds"] == GATE


async def test_a_failed_evaluation_blocks_release_and_delivery(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])

    result = await evaluate(http, tenant, version, BAD)
    assert result.json()["passed"] is False
    assert result.json()["failed_checks"] == ["bleu 2 < 5", "perplexity 80 > 50"]

    release = await http.post(path(version, "release"), json={}, headers=h(tenant))
    assert release.status_code == 409
    assert release.json()["current_state"] == "evaluation_failed"
    assert "override_release" in release.json()["allowed"]
    order = {"delivery_order_id": uuid7(), "bundle_uri": "s3://forge-bundles/acme/qwen/1/"}
    delivery = await http.post(path(version, "mark-delivered"), json=order, headers=svc(tenant))
    assert delivery.status_code == 409
    after = (await http.get(path(version), headers=h(tenant))).json()
    assert (after["state"], after["sequence"], after["delivery_order_id"]) == ("evaluation_failed", 3, None)


async def test_an_override_needs_a_reason_and_is_audited_with_the_signed_in_approver(
    registry: Registry, tenant: str, events: EventReader
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    await evaluate(http, tenant, version, BAD)

    no_reason = await http.post(path(version, "override-release"), json={}, headers=h(tenant, "bob"))
    assert no_reason.status_code == 409
    assert "reason" in no_reason.json()["detail"]
    blank = await http.post(
        path(version, "override-release"), json={"reason": "  "}, headers=h(tenant, "bob")
    )
    assert blank.status_code == 409
    assert (await http.get(path(version), headers=h(tenant))).json()["state"] == "evaluation_failed"

    body = {"reason": "gap within noise; tracked in RISK-42"}
    overridden = await http.post(path(version, "override-release"), json=body, headers=h(tenant, "bob"))
    assert overridden.status_code == 200, overridden.text
    assert overridden.json()["state"] == "released"

    trail = (await http.get(path(version, "audit"), headers=h(tenant))).json()
    override = [entry for entry in trail if entry["action"] == "override_release"]
    assert len(override) == 1
    assert override[0]["approved_by"] == "bob" and override[0]["actor"] == "bob"
    assert override[0]["reason"] == body["reason"] and override[0]["at"]
    assert override[0]["details"]["failed_checks"] == ["bleu 2 < 5", "perplexity 80 > 50"]
    seen = await events.of([version["id"]], count=4)
    last = seen[-1]
    assert last.type == "forge.registry.version.release_overridden.v1"
    assert (last.data["approved_by"], last.data["reason"]) == ("bob", body["reason"])
    assert [e.sequence for e in seen] == [1, 2, 3, 4]


async def test_nobody_approves_an_override_in_another_persons_name(
    registry: Registry, tenant: str, engineer: str
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    await evaluate(http, tenant, version, BAD)

    in_erins_name = await http.post(
        path(version, "override-release"),
        json={"approved_by": "erin", "reason": "erin said so"},
        headers=h(tenant, "alice"),
    )
    assert in_erins_name.status_code == 403
    assert "erin" in in_erins_name.json()["detail"]
    not_an_approver = await http.post(
        path(version, "override-release"), json={"reason": "ship it"}, headers=h(tenant, engineer)
    )
    assert not_an_approver.status_code == 403
    after = (await http.get(path(version), headers=h(tenant))).json()
    assert (after["state"], after["sequence"]) == ("evaluation_failed", 3)
    assert [e["action"] for e in (await http.get(path(version, "audit"), headers=h(tenant))).json()] == [
        "register",
        "start_evaluation",
        "fail_evaluation",
    ]
    in_own_name = await http.post(
        path(version, "override-release"),
        json={"approved_by": "alice", "reason": "within noise"},
        headers=h(tenant, "alice"),
    )
    assert in_own_name.status_code == 200, in_own_name.text


async def test_evaluation_results_and_delivery_marks_come_only_from_forges_services(
    registry: Registry, tenant: str
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    as_admin = h(tenant)  # a tenant admin holds every user role there is, and none of these

    by_user = await http.post(
        path(version, "evaluation/start"), json={"evaluation_id": uuid7()}, headers=as_admin
    )
    assert by_user.status_code == 403
    evaluation_id = await start(http, tenant, version)
    for action, body in [
        ("evaluation/result", {"evaluation_id": evaluation_id, "metrics": GOOD}),
        ("evaluation/abort", {"reason": "mine now"}),
    ]:
        refused = await http.post(path(version, action), json=body, headers=as_admin)
        assert refused.status_code == 403, action
    assert (await evaluate_as_service(http, tenant, version, evaluation_id, GOOD)).status_code == 200
    await http.post(path(version, "release"), json={}, headers=as_admin)
    order = {"delivery_order_id": uuid7(), "bundle_uri": "s3://forge-bundles/acme/qwen/1/"}
    mark = await http.post(path(version, "mark-delivered"), json=order, headers=as_admin)
    assert mark.status_code == 403
    after = (await http.get(path(version), headers=as_admin)).json()
    assert (after["state"], after["delivery_order_id"]) == ("released", None)


async def evaluate_as_service(
    http: httpx.AsyncClient,
    tenant: str,
    version: dict[str, Any],
    evaluation_id: str,
    metrics: dict[str, float],
) -> httpx.Response:
    return await http.post(
        path(version, "evaluation/result"),
        json={"evaluation_id": evaluation_id, "metrics": metrics},
        headers=svc(tenant),
    )


async def test_only_project_and_tenant_admins_set_the_gate(
    registry: Registry, tenant: str, engineer: str
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    gate = f"/model-projects/{project['id']}/gate"

    refused = await http.put(gate, json={"gate": {"bleu": {"min": 0}}}, headers=h(tenant, engineer))
    assert refused.status_code == 403
    assert (await http.get(f"/model-projects/{project['id']}", headers=h(tenant))).json()["gate"] == GATE
    changed = await http.put(gate, json={"gate": {"bleu": {"min": 7}}}, headers=h(tenant))
    assert changed.status_code == 200, changed.text
    assert changed.json()["gate"] == {"bleu": {"min": 7.0}}


async def test_the_verdict_is_the_registrys_and_a_result_cannot_loosen_the_gate(
    registry: Registry, tenant: str
) -> None:
    http = registry.http
    project = await make_project(http, tenant)

    claimed = await make_version(http, tenant, project["id"])
    evaluation_id = await start(http, tenant, claimed)
    says_passed = await http.post(
        path(claimed, "evaluation/result"),
        json={"evaluation_id": evaluation_id, "metrics": BAD, "passed": True},
        headers=svc(tenant),
    )
    assert says_passed.status_code == 422  # `passed` is not part of a result
    assert "passed" in says_passed.json()["detail"]
    judged = await evaluate_as_service(http, tenant, claimed, evaluation_id, BAD)
    assert judged.json()["passed"] is False

    loosened = await make_version(http, tenant, project["id"])
    lax = {"perplexity": {"max": 1000}, "bleu": {"min": 0}}
    result = await http.post(
        path(loosened, "evaluation/result"),
        json={"evaluation_id": await start(http, tenant, loosened), "metrics": BAD, "thresholds": lax},
        headers=svc(tenant),
    )
    assert result.status_code == 200, result.text
    assert result.json()["passed"] is False
    assert result.json()["failed_checks"] == ["bleu 2 < 5", "perplexity 80 > 50"]

    tightened = await make_version(http, tenant, project["id"])
    stricter = {"bleu": {"min": 10}, "rougeL": {"min": 0.3}}
    result = await http.post(
        path(tightened, "evaluation/result"),
        json={"evaluation_id": await start(http, tenant, tightened), "metrics": GOOD, "thresholds": stricter},
        headers=svc(tenant),
    )
    assert result.json()["passed"] is False
    assert result.json()["failed_checks"] == ["bleu 9 < 10", "rougeL missing from the evaluation's metrics"]
    assert result.json()["thresholds"] == {
        "bleu": {"min": 10.0},
        "perplexity": {"max": 50.0},
        "rougeL": {"min": 0.3},
    }


async def test_concurrent_results_of_one_evaluation_store_one_and_refuse_the_others(
    registry: Registry, tenant: str, events: EventReader
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    evaluation_id = await start(http, tenant, version)
    posted = [GOOD if i % 2 else BAD for i in range(30)]

    responses = await asyncio.gather(
        *(evaluate_as_service(http, tenant, version, evaluation_id, metrics) for metrics in posted)
    )

    stored = (await http.get(path(version, "evaluations"), headers=h(tenant))).json()
    assert len(stored) == 1 and stored[0]["id"] == evaluation_id
    winner = stored[0]["metrics"]
    outcomes = Counter(
        (r.status_code, metrics == winner) for r, metrics in zip(responses, posted, strict=True)
    )
    assert outcomes == {(200, True): 15, (409, False): 15}, [r.text for r in responses]
    assert all(r.json() == stored[0] for r in responses if r.status_code == 200)
    assert "recorded already" in next(r for r in responses if r.status_code == 409).json()["detail"]
    after = (await http.get(path(version), headers=h(tenant))).json()
    assert after["state"] == ("evaluation_passed" if winner == GOOD else "evaluation_failed")
    assert after["sequence"] == 3
    seen = await events.of([version["id"]], count=3)
    assert [e.sequence for e in seen] == [1, 2, 3]
    async with s3_client(registry.stack) as s3:
        report = await s3.get_object(Bucket=registry.bucket, Key=stored[0]["report_uri"].split("/", 3)[3])
        assert json.loads(await report["Body"].read())["metrics"] == winner
    again = await evaluate_as_service(http, tenant, version, evaluation_id, winner)
    assert again.status_code == 200 and again.json() == stored[0]


async def test_an_alias_moves_to_exactly_one_of_concurrent_releases(registry: Registry, tenant: str) -> None:
    http = registry.http
    for trial in range(8):
        project = await make_project(http, tenant)
        candidates = [await passed_version(http, tenant, project["id"]) for _ in range(3)]

        releases = await asyncio.gather(
            *(http.post(path(v, "release"), json={"alias": "prod"}, headers=h(tenant)) for v in candidates)
        )

        assert [r.status_code for r in releases] == [200, 200, 200], [r.text for r in releases]
        holders = (
            await http.get(
                f"/model-projects/{project['id']}/versions", params={"tag": "prod"}, headers=h(tenant)
            )
        ).json()
        assert len(holders) == 1, f"trial {trial}: prod is held by versions {[v['version'] for v in holders]}"


async def test_deprecating_and_reinstating_rolls_back_to_an_older_version(
    registry: Registry, tenant: str
) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    first = await make_version(http, tenant, project["id"])
    second = await make_version(http, tenant, project["id"])
    assert second["version"] == 2
    for version in (first, second):
        await evaluate(http, tenant, version, GOOD)
        await http.post(path(version, "release"), json={"alias": "production"}, headers=h(tenant))
    replaced = {"reason": "replaced by version 2", "replaced_by_version_id": second["id"]}
    assert (await http.post(path(first, "deprecate"), json=replaced, headers=h(tenant))).json()[
        "state"
    ] == "deprecated"

    back = {"reason": "version 2 raised P99 latency", "rolled_back_from_version_id": second["id"]}
    reinstated = await http.post(path(first, "reinstate"), json=back, headers=h(tenant))
    assert reinstated.status_code == 200, reinstated.text
    assert reinstated.json()["state"] == "released"
    production = (
        await http.get(
            "/model-versions", params={"tag": "production", "project_id": project["id"]}, headers=h(tenant)
        )
    ).json()
    assert [v["version"] for v in production] == [2]  # the alias moved to the newest release


async def test_two_versions_compare_on_metrics_and_parameters(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    a = await make_version(
        http, tenant, project["id"], metrics={"eval_loss": 0.6}, hyperparameters={"lr": 0.001}
    )
    b = await make_version(
        http, tenant, project["id"], metrics={"eval_loss": 0.4}, hyperparameters={"lr": 0.0005}
    )
    await evaluate(http, tenant, a, BAD)
    await evaluate(http, tenant, b, GOOD)

    response = await http.get(
        f"/model-projects/{project['id']}/versions/compare",
        params={"a": "1", "b": b["id"]},
        headers=h(tenant),
    )
    assert response.status_code == 200, response.text
    diff = response.json()
    assert (diff["a"]["version"], diff["b"]["version"]) == (1, 2)
    assert (
        diff["metrics"]["eval_loss"]["delta"] == -0.2
        or abs(diff["metrics"]["eval_loss"]["delta"] + 0.2) < 1e-9
    )
    assert diff["evaluation_metrics"]["bleu"] == {"a": 2.0, "b": 9.0, "delta": 7.0}
    assert diff["hyperparameters"]["lr"] == {"a": 0.001, "b": 0.0005, "same": False}
    assert len(diff["datasets"]["only_a"]) == 1 and diff["datasets"]["common"] == []


async def test_tags_and_search_find_versions_by_tag_and_state(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    a = await make_version(http, tenant, project["id"])
    await make_version(http, tenant, project["id"])
    tagged = await http.put(path(a, "tags"), json={"tags": ["candidate", "zh"]}, headers=h(tenant))
    assert tagged.status_code == 200 and tagged.json()["tags"] == ["candidate", "zh"]

    mine = {"project_id": project["id"]}
    found = (await http.get("/model-versions", params={"tag": "candidate", **mine}, headers=h(tenant))).json()
    assert [v["id"] for v in found] == [a["id"]]
    registered = (
        await http.get("/model-versions", params={"state": "registered", **mine}, headers=h(tenant))
    ).json()
    assert len(registered) == 2
    bad_state = await http.get("/model-versions", params={"state": "shipped"}, headers=h(tenant))
    assert bad_state.status_code == 400 and "shipped" in bad_state.json()["detail"]


async def test_another_tenant_sees_nothing_and_gets_404(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])
    other = h("globex", "bob")  # bob is a member of both tenants, acting in globex

    assert (await http.get(f"/model-projects/{project['id']}", headers=other)).status_code == 404
    assert (await http.get(path(version), headers=other)).status_code == 404
    started = await http.post(
        path(version, "evaluation/start"), json={"evaluation_id": uuid7()}, headers=svc("globex")
    )
    assert started.status_code == 404
    assert (await http.get("/model-projects", headers=other)).json() == []
    assert (await http.get("/model-versions", headers=other)).json() == []
    register = await http.post(
        f"/model-projects/{project['id']}/versions",
        json={"artifact_uri": "s3://forge-models/x/"},
        headers=other,
    )
    assert register.status_code == 404
    assert (await http.get(path(version), headers=h(tenant))).json()["state"] == "registered"


async def test_an_illegal_transition_is_409_and_changes_nothing(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"])

    early = await http.post(path(version, "evaluation/result"), json={"metrics": GOOD}, headers=svc(tenant))
    assert early.status_code == 409
    release = await http.post(path(version, "release"), headers=h(tenant))
    assert release.status_code == 409
    assert release.json()["current_state"] == "registered"
    after = (await http.get(path(version), headers=h(tenant))).json()
    assert (after["state"], after["sequence"]) == ("registered", 1)
    assert [e["action"] for e in (await http.get(path(version, "audit"), headers=h(tenant))).json()] == [
        "register"
    ]


async def test_bad_input_is_422_naming_the_field(registry: Registry, tenant: str) -> None:
    http = registry.http
    project = await make_project(http, tenant)
    bad_uri = await http.post(
        f"/model-projects/{project['id']}/versions",
        json={"artifact_uri": "file:///models/run"},
        headers=h(tenant),
    )
    assert bad_uri.status_code == 422
    assert bad_uri.json()["errors"][0]["location"] == "body.artifact_uri"
    bad_gate = await http.post("/model-projects", json={"name": "x", "gate": {"bleu": {}}}, headers=h(tenant))
    assert bad_gate.status_code == 422 and "gate" in bad_gate.json()["detail"]
    no_tenant = await http.get("/model-projects")
    assert no_tenant.status_code == 401  # no bearer token
    bad_base = await http.post(
        "/base-models",
        json={
            "name": "tiny",
            "version": "1",
            "uri": f"s3://forge-models/tenants/{tenant}/base/",
            "architecture": "llama",
            "parameter_count": 0,
        },
        headers=h(tenant),
    )
    assert bad_base.status_code == 422 and "parameter_count" in bad_base.json()["detail"]


async def test_base_models_are_registered_and_referenced_by_versions(registry: Registry, tenant: str) -> None:
    http = registry.http
    name = f"tiny-llama-{uuid.uuid4().hex[:6]}"
    body = {
        "name": name,
        "version": "1.0",
        "uri": f"s3://forge-models/tenants/{tenant}/base/tiny-llama/",
        "architecture": "LlamaForCausalLM",
        "parameter_count": 7_241_732_096,  # a 7B model: past INTEGER
        "intended_use": "tests and demos",
        "licence": "apache-2.0",
    }
    created = await http.post("/base-models", json=body, headers=h(tenant))
    assert created.status_code == 201, created.text
    again = await http.post("/base-models", json=body, headers=h(tenant))
    assert again.status_code == 409
    listed = (await http.get("/base-models", params={"name": name}, headers=h(tenant))).json()
    assert [(m["name"], m["parameter_count"]) for m in listed] == [(name, 7_241_732_096)]

    project = await make_project(http, tenant)
    version = await make_version(http, tenant, project["id"], base_model_id=created.json()["id"])
    assert version["base_model_id"] == created.json()["id"]
    unknown = await http.post(
        f"/model-projects/{project['id']}/versions",
        json={"artifact_uri": f"s3://forge-models/tenants/{tenant}/x/", "base_model_id": uuid7()},
        headers=h(tenant),
    )
    assert unknown.status_code == 400 and "base_model_id" in unknown.json()["detail"]


async def test_model_files_outside_the_tenants_own_areas_are_refused_and_nothing_is_registered(
    registry: Registry, tenant: str
) -> None:
    """The registry's URIs are read with the services' own credentials (training downloads a base model,
    delivery packs a version): naming another tenant's files must not register anything."""
    http = registry.http
    project = await make_project(http, tenant)
    foreign = [
        "s3://forge-models/tenants/globex/base/secret/",  # another tenant's models
        "s3://forge-training/globex/job-1/merged/",  # another tenant's training outputs
        f"s3://forge-models/tenants/{tenant}/../globex/secret/",  # out of the area by `..`
        f"s3://forge-models/tenants/{tenant}x/secret/",  # a tenant whose id starts like ours
        "s3://forge-dataset/tenants/globex/blobs/",  # a bucket that holds no models
        f"s3://forge-models/tenants/{tenant}/",  # the area itself, not a model in it
    ]
    for uri in foreign:
        base = await http.post(
            "/base-models",
            json={
                "name": f"b-{uuid.uuid4().hex[:6]}",
                "version": "1",
                "uri": uri,
                "architecture": "llama",
                "parameter_count": 10,
            },
            headers=h(tenant),
        )
        assert base.status_code == 422, (uri, base.text)
        assert "model areas" in base.json()["detail"]
        version = await http.post(
            f"/model-projects/{project['id']}/versions", json={"artifact_uri": uri}, headers=h(tenant)
        )
        assert version.status_code == 422, (uri, version.text)
        assert version.json()["detail"].startswith("artifact_uri:")
    stored = (await http.get("/base-models", headers=h(tenant))).json()
    assert not {m["uri"] for m in stored} & set(foreign)
    listed = await http.get(f"/model-projects/{project['id']}/versions", headers=h(tenant))
    assert listed.json() == []
    own = await make_version(http, tenant, project["id"])  # the tenant's own area is fine
    assert own["artifact_uri"] == f"s3://forge-models/tenants/{tenant}/run/final/"


async def test_the_gate_activities_in_a_workflow_refuse_release_and_delivery_of_a_failed_version(
    registry: Registry, tenant: str
) -> None:
    project = await make_project(registry.http, tenant)
    steps = await _chain(registry, tenant, project["id"], BAD)
    assert steps == [
        "registered 1 created=True",
        "evaluation passed=False may_release=False",
        "release refused ReleaseBlocked",
        "delivery refused IllegalTransition",
    ]


async def test_the_gate_activities_in_a_workflow_release_and_deliver_once_however_often_retried(
    registry: Registry, tenant: str, events: EventReader
) -> None:
    project = await make_project(registry.http, tenant)
    job, evaluation, order = uuid7(), uuid7(), uuid7()
    first = await _chain(registry, tenant, project["id"], GOOD, job=job, evaluation=evaluation, order=order)
    again = await _chain(registry, tenant, project["id"], GOOD, job=job, evaluation=evaluation, order=order)
    assert first == [
        "registered 1 created=True",
        "evaluation passed=True may_release=True",
        "release released",
        "delivery delivered",
    ]
    # The second run finds everything done: no new version, evaluation, release or delivery.
    assert again == [
        "registered 1 created=False",
        "evaluation passed=True may_release=False",
        "release delivered",
        "delivery delivered",
    ]
    versions = (
        await registry.http.get(f"/model-projects/{project['id']}/versions", headers=h(tenant))
    ).json()
    assert len(versions) == 1
    seen = await events.of([versions[0]["id"]], count=5)
    assert [e.sequence for e in seen] == [1, 2, 3, 4, 5]


async def _chain(
    registry: Registry,
    tenant: str,
    project_id: str,
    metrics: dict[str, float],
    *,
    job: str | None = None,
    evaluation: str | None = None,
    order: str | None = None,
) -> list[str]:
    placeholder = uuid7()
    register = RegisterVersion(
        tenant_id=tenant,
        project_id=project_id,
        training_job_id=job or uuid7(),
        artifact_uri=f"s3://forge-models/tenants/{tenant}/run/final/",
        actor="service:training",
    )
    outcome = EvaluationOutcome(
        tenant_id=tenant, version_id=placeholder, evaluation_id=evaluation or uuid7(), metrics=metrics
    )
    delivery = MarkDelivered(
        tenant_id=tenant,
        version_id=placeholder,
        delivery_order_id=order or uuid7(),
        bundle_uri="s3://forge-bundles/acme/qwen/1/",
    )
    assert registry.runtime.temporal is not None
    return await registry.runtime.temporal.execute_workflow(
        GateChain.run,
        args=[register, outcome, delivery],
        id=f"registry-test-{uuid7()}",
        task_queue=registry.runtime.task_queue,
        result_type=list[str],
    )
