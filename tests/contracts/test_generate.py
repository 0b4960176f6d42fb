"""The generator: checked-in docs match the code, breaking changes are refused, hand-written text is kept."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from forge_contracts.asyncapi import asyncapi_document, to_yaml
from forge_contracts.catalogue import BEGIN, END
from forge_contracts.events import EVENT_TYPES
from forge_contracts.generate import find_root, main

REPO = Path(__file__).resolve().parents[2]
SCHEMA = Path("docs/events/schemas/forge.training.job.succeeded.v1.json")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """An empty repository (libs/ and pyproject.toml) with the event docs generated into it."""
    (tmp_path / "libs").mkdir()
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    assert main(["--root", str(tmp_path)]) == 0
    return tmp_path


def test_checked_in_schemas_match_the_code() -> None:
    assert main(["--check", "--root", str(REPO)]) == 0


def test_the_generator_runs_as_a_module_in_check_mode() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "forge_contracts.generate", "--check"],
        cwd=REPO / "libs" / "contracts",
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


def test_the_repository_root_is_found_from_a_subdirectory() -> None:
    assert find_root(REPO / "libs" / "contracts" / "src") == REPO


def test_every_event_type_gets_a_json_schema(repo: Path) -> None:
    written = {path.name.removesuffix(".json") for path in (repo / "docs/events/schemas").glob("*.json")}
    schema = json.loads((repo / SCHEMA).read_text())

    assert written == set(EVENT_TYPES)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["x-forge-event-type"] == "forge.training.job.succeeded.v1"


def test_check_mode_fails_when_a_file_is_out_of_date_and_writes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stale = (repo / "docs/asyncapi.yaml").read_text().replace("Forge events", "Old events")
    (repo / "docs/asyncapi.yaml").write_text(stale)

    assert main(["--check", "--root", str(repo)]) == 1
    assert (repo / "docs/asyncapi.yaml").read_text() == stale
    assert "docs/asyncapi.yaml" in capsys.readouterr().err


def test_the_generator_refuses_a_breaking_change_and_writes_nothing(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    published = json.loads((repo / SCHEMA).read_text())
    published["properties"]["tokens_seen"] = {"type": "integer"}  # a field the code no longer has
    (repo / SCHEMA).write_text(json.dumps(published))
    (repo / "docs/asyncapi.yaml").unlink()

    assert main(["--root", str(repo)]) == 2
    error = capsys.readouterr().err
    assert "forge.training.job.succeeded.v1: property 'tokens_seen' was removed" in error
    assert ".v2" in error
    assert json.loads((repo / SCHEMA).read_text()) == published
    assert not (repo / "docs/asyncapi.yaml").exists()


def test_check_mode_also_refuses_a_breaking_change(repo: Path) -> None:
    published = json.loads((repo / SCHEMA).read_text())
    published["properties"]["duration_s"] = {"type": "string"}
    (repo / SCHEMA).write_text(json.dumps(published))

    assert main(["--check", "--root", str(repo)]) == 2


def test_adding_an_optional_field_regenerates_quietly(repo: Path) -> None:
    current = json.loads((repo / SCHEMA).read_text())
    del current["properties"]["checkpoint_uri"]  # as if the code had just added this optional field
    (repo / SCHEMA).write_text(json.dumps(current))

    assert main(["--root", str(repo)]) == 0
    assert "checkpoint_uri" in json.loads((repo / SCHEMA).read_text())["properties"]


def test_removing_an_event_type_is_refused(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (repo / "docs/events/schemas/forge.training.job.vanished.v1.json").write_text("{}")

    assert main(["--root", str(repo)]) == 2
    assert "forge.training.job.vanished.v1: the event type was removed" in capsys.readouterr().err


def test_the_hand_written_part_of_the_events_page_is_kept(repo: Path) -> None:
    page = repo / "docs/events.md"
    page.write_text(f"# Our events\n\nHand-written.\n\n{BEGIN}\nstale catalogue\n{END}\n\nFooter.\n")

    assert main(["--root", str(repo)]) == 0
    text = page.read_text()
    assert text.startswith("# Our events\n\nHand-written.\n\n")
    assert text.endswith(f"{END}\n\nFooter.\n")
    assert "stale catalogue" not in text
    assert "##### `forge.delivery.model.delivered.v1`" in text


def test_a_new_events_page_explains_the_wire_format(repo: Path) -> None:
    text = (repo / "docs/events.md").read_text()

    for topic in (
        "binary mode",
        "ce_id",
        "traceparent",
        "ce_sequence",
        "at-least-once",
        "forge.<service>.events",
    ):
        assert topic.lower() in text.lower()


def test_the_asyncapi_document_has_a_channel_per_topic_and_a_message_per_event_type() -> None:
    document = asyncapi_document()
    channels = document["channels"]

    assert document["asyncapi"] == "3.0.0"
    assert {channel["address"] for channel in channels.values()} == {
        f"forge.{service}.events"
        for service in ("dataset", "labeling", "training", "registry", "scheduler", "delivery", "audit")
    }
    names = {message["name"] for message in document["components"]["messages"].values()}
    assert names == set(EVENT_TYPES)
    assert sum(len(channel["messages"]) for channel in channels.values()) == len(EVENT_TYPES)


def test_every_reference_in_the_asyncapi_document_resolves() -> None:
    document = asyncapi_document()

    for ref in _refs(document):
        node = document
        for part in ref.removeprefix("#/").split("/"):
            node = node[part]


def test_the_asyncapi_yaml_reads_back_as_the_document() -> None:
    document = asyncapi_document()

    assert yaml.safe_load(to_yaml(document)) == document


def test_asyncapi_messages_describe_the_cloudevents_headers_and_key() -> None:
    message = asyncapi_document()["components"]["messages"]["ModelDelivered"]
    (example,) = message["examples"]

    assert message["name"] == "forge.delivery.model.delivered.v1"
    assert message["bindings"]["kafka"]["key"]["type"] == "string"
    assert example["headers"]["ce_type"] == "forge.delivery.model.delivered.v1"
    assert example["headers"]["ce_subject"] == example["payload"]["order_id"]


def _refs(node: object) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [ref for value in node.values() for ref in _refs(value)]
    if isinstance(node, list):
        return [ref for value in node for ref in _refs(value)]
    return []
