"""`forge datasets`, as a user runs it: signed in with `forge login`, against the dataset service
started as a process by `forge up`: create, upload (a progress bar), versions by id and by alias,
statistics, a split and a diff followed with progress bars, and the API's errors as a red line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from forge_cli.services import Platform
from forge_cli.stack import Stack
from forge_kit.stack_env import read_env_file

from tests.identity import as_user


def _forge(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "forge_cli.main", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**env, "COLUMNS": "200"},
        check=False,
    )


@pytest.fixture
def signed_in(stack: Stack, directory: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    """alice signed in by `forge login`, and the dataset service running as `forge up` runs it (its
    callers resolved by the tests' directory, which knows alice in acme)."""
    dict(as_user("alice", "acme"))  # alice exists in the identity provider (created on first use)
    env = {
        **os.environ,
        "FORGE_CREDENTIALS": str(tmp_path / "credentials.json"),
        "FORGE_PASSWORD": read_env_file(stack.env_file)["FORGE_DEMO_PASSWORD"],
        "FORGE_TENANT": "acme",
    }
    login = _forge("login", "--username", "alice", env=env)
    assert login.returncode == 0, login.stdout + login.stderr
    platform = Platform(stack, only=["dataset"])
    already_running = {s.name for s in platform.services if s.running()}
    platform.up()
    try:
        yield env
    finally:
        for service in platform.services:
            if service.name not in already_running:
                service.stop()


def test_a_user_uploads_versions_then_splits_and_diffs_them_from_the_cli(
    signed_in: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in
    first = tmp_path / "train.jsonl"
    first.write_text("".join(json.dumps({"id": i, "label": ["a", "b"][i % 2]}) + "\n" for i in range(200)))
    second = tmp_path / "v2" / "train.jsonl"
    second.parent.mkdir()
    second.write_text(
        "".join(
            json.dumps({"id": i, "label": "a" if i == 15 else ["a", "b"][i % 2]}) + "\n"
            for i in range(10, 210)
        )
    )

    created = _forge("datasets", "create", f"cli-{uuid.uuid4().hex[:8]}", env=env)
    assert created.returncode == 0, created.stdout + created.stderr
    dataset_id = created.stdout.strip()
    v1 = _forge("datasets", "upload", dataset_id, str(first), env=env)
    v2 = _forge("datasets", "upload", dataset_id, str(second), env=env)
    assert v1.returncode == 0 and v2.returncode == 0, v1.stdout + v1.stderr + v2.stdout + v2.stderr
    assert "version 1" in v1.stdout and "published: 200 records" in v1.stdout
    assert "train.jsonl" in v1.stdout  # the upload's progress bar
    v1_id = v1.stdout.split()[v1.stdout.split().index("1") + 1]

    listed = _forge("datasets", "versions", dataset_id, "--json", env=env)
    assert [v["number"] for v in json.loads(listed.stdout)] == [1, 2]
    stats = _forge("datasets", "stats", dataset_id, "latest", "--json", env=env)
    assert json.loads(stats.stdout)["fields"]["label"]["values"][0]["count"] == 101  # v2: 100 a + the edit

    diff = _forge("datasets", "diff", dataset_id, v1_id, "latest", "--key", "id", "--show", "1", env=env)
    assert diff.returncode == 0, diff.stdout + diff.stderr
    assert "+10 -10 ~1 =189 (200 -> 200 records)" in diff.stdout
    assert "diffing" in diff.stdout and "100.0%" in diff.stdout  # the task's progress bar, to the end
    assert 'changed: {"after": {"id": 15, "label": "a"}' in diff.stdout

    split = _forge(
        "datasets",
        "split",
        dataset_id,
        "latest",
        "--folds",
        "4",
        "--seed",
        "1",
        "--stratify-by",
        "label",
        env=env,
    )
    assert split.returncode == 0, split.stdout + split.stderr
    assert "version 3" in split.stdout and "fold-1 50, fold-2 50, fold-3 50, fold-4 50" in split.stdout

    preview = _forge("datasets", "preview", dataset_id, v1_id, "--limit", "2", env=env)
    assert [json.loads(line)["id"] for line in preview.stdout.splitlines()] == [0, 1]
    refused = _forge("datasets", "split", dataset_id, "golden", "--folds", "2", env=env)
    assert refused.returncode == 1 and "version 'golden'" in refused.stdout
    loopback = _forge("datasets", "import", dataset_id, "http://127.0.0.1:9/x.jsonl", env=env)
    assert loopback.returncode == 1 and "422" in loopback.stdout and "not a public address" in loopback.stdout
