"""What `forge jobs|models|chains` exit with, so scripts can tell outcomes apart (pure: the services are an
httpx mock transport behind the SDK): 0 done, 1 the job or chain ended failed/blocked/cancelled, 2 a usage
error, 3 Forge refused the request (its problem printed) or cannot be reached, 4 not signed in."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from forge_cli.main import app
from forge_sdk import Forge
from typer.testing import CliRunner

Handler = Callable[[httpx.Request], httpx.Response]
runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("forge_sdk.jobs.time.sleep", lambda _: None)
    monkeypatch.setattr("forge_sdk.chains.time.sleep", lambda _: None)


@pytest.fixture
def serve(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Handler], None]]:
    """Make the signed-in platform one whose services all answer with `handler`."""
    forges: list[Forge] = []

    def install(handler: Handler) -> None:
        forge = Forge({"authorization": "Bearer t"}, gateway="http://forge")
        for name in ("training", "registry", "dataset"):
            forge._clients[name] = httpx.Client(
                base_url=f"http://forge/api/{name}", transport=httpx.MockTransport(handler)
            )
        forges.append(forge)
        monkeypatch.setattr(Forge, "signed_in", classmethod(lambda cls, tenant=None, **_: forge))

    yield install
    for forge in forges:
        forge.close()


def _job(state: str, error: str | None = None) -> dict[str, Any]:
    return {
        "id": "j",
        "name": "lora",
        "state": state,
        "progress": {"step": 3, "total_steps": 3, "percent": 100.0, "eta_s": None},
        "latest_metrics": {"train_loss": 1.5},
        "outputs": {"model_uri": None, "adapter_uri": None},
        "error": error,
        "dataset_version_id": "v",
    }


def _chain(stage: str, workflow: str) -> dict[str, Any]:
    return {
        "chain_id": "c",
        "workflow_id": "model-chain:demo:c",
        "workflow_status": workflow,
        "temporal_ui": "http://ui/c",
        "status": {
            "stage": stage,
            "stages": [{"stage": stage, "at": "2026-01-01T00:00:00Z"}],
            "error": "oom",
        },
    }


def _logs(request: httpx.Request) -> httpx.Response | None:
    if request.url.path.endswith("/logs"):
        return httpx.Response(200, json={"job_id": "j", "lines": [], "next_after": 0})
    return None


def test_not_signed_in_exits_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORGE_CREDENTIALS", str(tmp_path / "nobody.json"))

    result = runner.invoke(app, ["jobs", "list"])

    assert result.exit_code == 4 and "forge login" in result.stderr


def test_a_session_forge_no_longer_accepts_exits_4(serve: Callable[[Handler], None]) -> None:
    serve(lambda _: httpx.Response(401, json={"status": 401, "title": "Unauthorized", "detail": "expired"}))

    result = runner.invoke(app, ["models", "projects"])

    assert result.exit_code == 4 and "forge login" in result.stderr


def test_a_refused_request_exits_3_with_the_problems_status_title_and_detail(
    serve: Callable[[Handler], None],
) -> None:
    problem = {"status": 403, "title": "Forbidden", "detail": "vic may not registry.approve in tenant demo"}
    serve(lambda _: httpx.Response(403, json=problem))

    result = runner.invoke(app, ["chains", "approve", "c", "--reason", "fine"])

    assert result.exit_code == 3
    assert "403 Forbidden: vic may not registry.approve in tenant demo" in result.stderr


def test_forge_out_of_reach_exits_3(serve: Callable[[Handler], None]) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    serve(refuse)

    result = runner.invoke(app, ["jobs", "show", "j"])

    assert result.exit_code == 3 and "cannot reach Forge" in result.stderr


def test_a_followed_job_that_fails_exits_1_and_one_that_succeeds_0(serve: Callable[[Handler], None]) -> None:
    serve(lambda request: _logs(request) or httpx.Response(200, json=_job("failed", "ValueError: bad data")))
    failed = runner.invoke(app, ["jobs", "logs", "j", "--follow"])
    assert failed.exit_code == 1 and "training job j failed: ValueError: bad data" in failed.stderr

    serve(lambda request: _logs(request) or httpx.Response(200, json=_job("succeeded")))
    done = runner.invoke(app, ["jobs", "logs", "j", "-f"])
    assert done.exit_code == 0, done.output
    assert "3/3" in done.stdout and "succeeded" in done.stdout


@pytest.mark.parametrize(
    ("stage", "workflow", "code"),
    [
        ("delivered", "COMPLETED", 0),
        ("failed", "FAILED", 1),
        ("blocked", "COMPLETED", 1),
        ("cancelled", "CANCELED", 1),
    ],
)
def test_a_followed_chain_exits_0_when_delivered_and_1_when_it_stops(
    serve: Callable[[Handler], None], stage: str, workflow: str, code: int
) -> None:
    serve(lambda _: httpx.Response(200, json=_chain(stage, workflow)))

    result = runner.invoke(app, ["chains", "follow", "c"])

    assert result.exit_code == code, result.output
    if code:
        assert f"stopped at '{stage}'" in result.stderr
    else:
        assert "delivered" in result.stdout


def test_usage_errors_exit_2(serve: Callable[[Handler], None], tmp_path: Path) -> None:
    serve(lambda _: httpx.Response(500))
    config = tmp_path / "job.yaml"
    config.write_text("name: [unclosed")
    listed = tmp_path / "job.json"
    listed.write_text("[1, 2]")

    assert runner.invoke(app, ["jobs", "submit", str(config)]).exit_code == 2  # not YAML
    assert runner.invoke(app, ["jobs", "submit", str(listed)]).exit_code == 2  # not one object
    assert runner.invoke(app, ["jobs", "submit", str(tmp_path / "missing.json")]).exit_code == 2
    assert runner.invoke(app, ["chains", "approve", "c"]).exit_code == 2  # --reason is required
    assert runner.invoke(app, ["models", "compare", "p", "1"]).exit_code == 2


def test_a_yaml_config_is_submitted_as_its_mapping(serve: Callable[[Handler], None], tmp_path: Path) -> None:
    sent: list[bytes] = []

    def training(request: httpx.Request) -> httpx.Response:
        sent.append(request.read())
        return httpx.Response(201, json=_job("pending"))

    serve(training)
    config = tmp_path / "job.yaml"
    config.write_text("name: lora\nhyperparameters:\n  max_steps: 3\n")

    result = runner.invoke(app, ["jobs", "submit", str(config)])

    assert result.exit_code == 0 and result.stdout.strip() == "j"
    assert sent == [b'{"name":"lora","hyperparameters":{"max_steps":3}}']
