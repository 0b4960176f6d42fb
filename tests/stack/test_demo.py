"""`forge demo`, the README's first command once tools are installed: on the running stack it starts the
six services as processes, runs the chain with a line per stage and a training progress bar, and prints
where the delivered bundle is; the bundle is really there, with its checksum manifest."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys

from forge_cli.services import Platform
from forge_cli.stack import Stack
from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings, read_env_file

from tests.chain.test_model_chain import DELIVERED_TIMELINE


async def test_forge_demo_runs_the_chain_and_prints_where_the_delivered_bundle_is(
    stack: Stack, stack_settings: StackSettings
) -> None:
    platform = Platform(stack)
    already_running = {service.name for service in platform.services if service.running()}
    try:
        result = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "forge_cli.main", "demo", "--max-steps", "8"],
            capture_output=True,
            text=True,
            timeout=900,
            # The platform `forge demo` starts is its own: its scheduler is its directory, not the tests'.
            env={**{k: v for k, v in os.environ.items() if k != "FORGE_DIRECTORY_URL"}, "COLUMNS": "300"},
            check=False,
        )
    finally:
        # Services this test started stop again: later tests run their own workers on the same queues.
        for service in platform.services:
            if service.name not in already_running:
                service.stop()
    out = result.stdout
    assert result.returncode == 0, out[-4000:] + result.stderr[-4000:]

    assert re.search(r"signed in as demo in tenant demo", out), out
    assert re.findall(r"stage: (\w+)", out) == DELIVERED_TIMELINE
    assert re.search(r"training .* 8/8 loss \d+\.\d{3}", out), out  # the bar reached the last step
    assert re.search(r"registering .*perplexity \d", out)
    ui = re.search(r"Temporal UI: (http://\S+/workflows/model-chain%3Ademo%3A\S+)", out)
    assert ui is not None, out

    console = re.search(r"Web console: (http://\S+/) - sign in as demo with the password (\S+)", out)
    assert console is not None, out
    assert console.group(2) == read_env_file(stack.env_file)["FORGE_DEMO_PASSWORD"]

    delivered = re.search(r"delivered model version (\S+): (s3://\S+)", out)
    assert delivered is not None, out
    bucket, _, prefix = delivered.group(2).removeprefix("s3://").partition("/")
    async with s3_client(stack_settings) as s3:
        listed = await s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
    names = {item["Key"].removeprefix(prefix) for item in listed.get("Contents", [])}
    assert {"model.safetensors", "config.json", "README.md", "inference_config.yaml"} <= names
    assert "checksums.sha256" in names, names
