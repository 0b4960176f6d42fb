"""`forge datasets`, as a user runs it: signed in with `forge login`, against the dataset service
started as a process by `forge up`: create, upload (a progress bar), versions by id and by alias,
statistics, a split and a diff followed with progress bars, and the API's errors as a red line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import httpx
import pytest
from forge_cli.services import Platform, ServiceProcess
from forge_cli.stack import Stack
from forge_kit.stack_env import load_stack_settings, read_env_file

from tests.harness import free_port
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
    platform = Platform(stack, only=["dataset", "scheduler"])  # the scheduler: processing
    already_running = {s.name for s in platform.services if s.running()}
    platform.up()
    try:
        yield env
    finally:
        for service in platform.services:
            if service.name not in already_running:
                service.stop()


def test_a_user_cleans_a_version_with_a_pipeline_from_the_cli(
    signed_in: dict[str, str], stack: Stack, tmp_path: Path
) -> None:
    env = signed_in
    gateway = f"{load_stack_settings(stack.env_file).gateway_url}/api/scheduler"
    project = httpx.post(
        f"{gateway}/projects", json={"name": f"cli-{uuid.uuid4().hex[:8]}"}, headers=as_user("alice", "acme")
    )
    assert project.status_code == 201, project.text
    quota = {"cpu_millis": 1000, "memory_bytes": 4 * 1024**3, "accelerators": {}}
    set_quota = httpx.put(
        f"{gateway}/projects/{project.json()['id']}/quota", json=quota, headers=as_user("ada", "acme")
    )
    assert set_quota.status_code == 200, set_quota.text
    records = tmp_path / "web.jsonl"
    texts = ["<p>Hello <b>there</b>, friend.</p>", "Hello there, friend.", "Call 13800138000 now."]
    records.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
    pipeline = tmp_path / "clean.json"
    pipeline.write_text(
        json.dumps({"ops": [{"op": "strip_html"}, {"op": "pii"}, {"op": "exact_dedup", "fields": ["text"]}]})
    )

    created = _forge("datasets", "create", f"cli-{uuid.uuid4().hex[:8]}", env=env)
    dataset_id = created.stdout.strip()
    uploaded = _forge("datasets", "upload", dataset_id, str(records), env=env)
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    processed = _forge(
        "datasets", "process", dataset_id, "latest", "--pipeline", str(pipeline),
        "--project", project.json()["id"], env=env,
    )  # fmt: skip
    assert processed.returncode == 0, processed.stdout + processed.stderr
    assert "processing" in processed.stdout and "100.0%" in processed.stdout  # the task's progress bar
    assert "version 2" in processed.stdout and "2 of 3 records kept" in processed.stdout
    assert re.search(r"3\s+.\s+exact_dedup\s+.\s+1\s+.\s+0\s+.\s+exact duplicate", processed.stdout)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"ops": [{"op": "shuffle"}]}))
    project_id = project.json()["id"]
    refused = _forge(
        "datasets", "process", dataset_id, "latest", "--pipeline", str(bad), "--project", project_id, env=env
    )  # fmt: skip
    assert refused.returncode == 3 and "shuffle" in refused.stderr  # 3: Forge refused it (422)


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
    converted = _forge("datasets", "convert", dataset_id, v1_id, env=env)
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert "version 4" in converted.stdout and "train.parquet  200 records" in converted.stdout

    preview = _forge("datasets", "preview", dataset_id, v1_id, "--limit", "2", env=env)
    assert [json.loads(line)["id"] for line in preview.stdout.splitlines()] == [0, 1]
    refused = _forge("datasets", "split", dataset_id, "golden", "--folds", "2", env=env)
    assert refused.returncode == 3 and "404" in refused.stderr and "version 'golden'" in refused.stderr
    loopback = _forge("datasets", "import", dataset_id, "http://127.0.0.1:9/x.jsonl", env=env)
    assert loopback.returncode == 3 and "422" in loopback.stderr and "not a public address" in loopback.stderr


@pytest.fixture
def importing(
    stack: Stack, signed_in: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[dict[str, str]]:
    """A dataset service of the test's own, allowed to import from loopback (the stack's MinIO, as an
    admin allows a lab mirror), with the CLI pointed at it."""
    port = free_port()
    name = f"cli-imports-{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv("FORGE_DATASET_PORT", str(port))
    monkeypatch.setenv("FORGE_TASK_QUEUE", f"forge-dataset-{name}")
    monkeypatch.setenv("FORGE_IMPORT_ALLOWED_NETWORKS", '["127.0.0.0/8"]')
    service = ServiceProcess(stack, "dataset", instance=name)
    service.prepare()
    service.launch()
    try:
        deadline = time.monotonic() + 90
        while not service.healthy():
            assert service.running() and time.monotonic() < deadline, service.log_path.read_text()[-3000:]
            time.sleep(0.3)
        yield {**signed_in, "FORGE_DATASET_URL": service.endpoints()["http"]}
    finally:
        service.stop()


@pytest.fixture
def source_bucket(stack: Stack) -> Iterator[tuple[Any, str]]:
    settings = load_stack_settings(stack.env_file)
    s3 = boto3.client(
        "s3",
        endpoint_url=settings.s3_endpoint,
        aws_access_key_id=settings.s3_access_key,
        aws_secret_access_key=settings.s3_secret_key.get_secret_value(),
        region_name=settings.s3_region,
    )
    bucket = f"cli-src-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    try:
        yield s3, bucket
    finally:
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            s3.delete_object(Bucket=bucket, Key=item["Key"])
        s3.delete_bucket(Bucket=bucket)


def test_a_user_registers_an_s3_connection_and_imports_from_it_from_the_cli(
    importing: dict[str, str], source_bucket: tuple[Any, str], stack: Stack
) -> None:
    s3, bucket = source_bucket
    rows = "".join(json.dumps({"id": i, "text": f"row {i}"}) + "\n" for i in range(120))
    s3.put_object(Bucket=bucket, Key="corpus/train.jsonl", Body=rows.encode())
    s3.put_object(Bucket=bucket, Key="corpus/notes.md", Body=b"# not records")
    settings = load_stack_settings(stack.env_file)
    secret = settings.s3_secret_key.get_secret_value()
    name = f"lake-{uuid.uuid4().hex[:6]}"
    s3_options = [
        "--kind",
        "s3",
        "--endpoint",
        settings.s3_endpoint,
        "--bucket",
        bucket,
        "--region",
        settings.s3_region,
        "--access-key",
        settings.s3_access_key,
    ]
    env = importing

    wrong = _forge(
        "datasets",
        "connections",
        "add",
        f"{name}-bad",
        *s3_options,
        env={**env, "FORGE_CONNECTION_SECRET": "nope"},
    )
    assert wrong.returncode == 3 and "422" in wrong.stderr, wrong.stdout + wrong.stderr
    added = _forge(
        "datasets", "connections", "add", name, *s3_options, env={**env, "FORGE_CONNECTION_SECRET": secret}
    )
    assert added.returncode == 0, added.stdout + added.stderr
    listed = _forge("datasets", "connections", "list", env=env)
    assert name in listed.stdout and f"{name}-bad" not in listed.stdout
    assert secret not in listed.stdout and " set " in listed.stdout

    dataset_id = _forge("datasets", "create", f"cli-s3-{uuid.uuid4().hex[:8]}", env=env).stdout.strip()
    imported = _forge(
        "datasets", "import", dataset_id, "--s3", name, "--prefix", "corpus/", "--include", "*.jsonl", env=env
    )
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert "importing" in imported.stdout and "100.0%" in imported.stdout  # the task's progress bar
    assert "published: 120 records, 1 files" in imported.stdout
    version = json.loads(_forge("datasets", "versions", dataset_id, "--json", env=env).stdout)[0]
    assert version["source"] == "s3"

    two_sources = _forge(
        "datasets", "import", dataset_id, "--s3", name, "https://example.org/a.jsonl", env=env
    )
    assert two_sources.returncode == 2 and "name one source" in two_sources.stderr  # a usage error
    removed = _forge("datasets", "connections", "rm", name, env=env)
    assert removed.returncode == 0, removed.stdout + removed.stderr
    gone = _forge("datasets", "import", dataset_id, "--s3", name, env=env)
    assert gone.returncode == 3 and f"connection {name!r} does not exist" in gone.stderr


def test_a_user_uploads_media_and_an_archive_expanded_then_shares_the_dataset_from_the_cli(
    signed_in: dict[str, str], tmp_path: Path
) -> None:
    env = signed_in
    image = tmp_path / "cat.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("a/one.txt", "one")
        zipped.writestr("a/two.txt", "two")
        zipped.writestr("__MACOSX/._one.txt", "junk")
    dataset_id = _forge(
        "datasets", "create", f"cli-media-{uuid.uuid4().hex[:8]}", "--modality", "image", env=env
    )
    dataset_id = dataset_id.stdout.strip()

    uploaded = _forge(
        "datasets", "upload", dataset_id, str(image), str(archive), "--expand", "--prefix", "extra", env=env
    )
    assert uploaded.returncode == 0, uploaded.stdout + uploaded.stderr
    assert "expanding more.zip" in uploaded.stdout and "published: 0 records, 3 files" in uploaded.stdout
    assert "cat.png" in uploaded.stdout  # the upload's progress bar

    shared = _forge("datasets", "share", dataset_id, "--to", "globex", env=env)
    assert shared.returncode == 0, shared.stdout + shared.stderr
    grant_id = shared.stdout.strip()
    grants = _forge("datasets", "grants", dataset_id, "--json", env=env)
    assert [(g["id"], g["grantee_tenant"], g["access"]) for g in json.loads(grants.stdout)] == [
        (grant_id, "globex", "read")
    ]
    revoked = _forge("datasets", "revoke", dataset_id, grant_id, "--reason", "test over", env=env)
    assert revoked.returncode == 0 and f"grant {grant_id} revoked" in revoked.stdout
    assert json.loads(_forge("datasets", "grants", dataset_id, "--json", env=env).stdout) == []
