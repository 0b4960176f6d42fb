"""The stack's own lifecycle, on a second stack with its own ports and state folder.

`up` twice is harmless, a crashed server is reported by `status` with its log tail and restarted by
the next `up`, and `down` leaves no process behind.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from forge_cli.stack import Ports, Stack, _alive
from forge_kit.stack_env import load_stack_settings


@pytest.fixture(scope="module")
def spare_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    home = tmp_path_factory.mktemp("spare-stack")
    home.chmod(0o755)
    ports = Ports(
        pg=15532,
        kafka=19192,
        kafka_controller=19193,
        temporal=17333,
        temporal_ui=18333,
        temporal_http=17343,
        temporal_metrics=17334,
        minio=19100,
        minio_console=19101,
        ldap=18489,
        keycloak=18180,
        keycloak_management=18190,
        gateway=18100,
        gateway_admin=18109,
        console=18110,
    )
    stack = Stack(home=home, ports=ports)
    stack.up()
    yield stack
    stack.down()


def test_up_twice_is_harmless_and_keeps_the_same_processes(spare_stack: Stack) -> None:
    before = spare_stack.pids()
    took = spare_stack.up()
    assert spare_stack.pids() == before
    assert set(took.values()) == {0.0}
    assert all(s.state == "running" for s in spare_stack.status())


def test_env_file_points_at_this_stacks_servers(spare_stack: Stack, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FORGE_PG_PORT", raising=False)  # the environment overrides the file by design
    settings = load_stack_settings(spare_stack.env_file)
    assert settings.pg_port == 15532
    assert settings.kafka_bootstrap == "127.0.0.1:19192"
    assert settings.temporal_ui_url == "http://127.0.0.1:18333"
    assert settings.s3_endpoint == "http://127.0.0.1:19100"
    assert oct(spare_stack.env_file.stat().st_mode & 0o777) == "0o600"


def test_a_crashed_server_is_reported_with_its_log_and_restarted_by_up(spare_stack: Stack) -> None:
    kafka = next(s for s in spare_stack.servers if s.name == "kafka")
    pid = kafka.pid()
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    _wait_dead(pid, kafka.process_marker)

    status = {s.name: s for s in spare_stack.status()}["kafka"]
    assert status.state == "crashed"
    assert "Kafka Server started" in status.log_tail or "kafka" in status.log_tail.lower()

    spare_stack.up()
    assert {s.name: s.state for s in spare_stack.status()}["kafka"] == "running"
    assert kafka.pid() != pid


def test_down_stops_every_process(spare_stack: Stack) -> None:
    pids = {s.name: (s.pid(), s.process_marker) for s in spare_stack.servers}
    spare_stack.down()
    for name, (pid, token) in pids.items():
        assert pid is not None, name
        assert not _alive(pid, token), f"{name} (pid {pid}) still alive after down"
    assert all(s.state == "stopped" for s in spare_stack.status())
    spare_stack.up()  # the module fixture stops it again at the end


def _wait_dead(pid: int, token: str) -> None:
    import time

    deadline = time.monotonic() + 10
    while _alive(pid, token) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid, token)


def test_state_lives_under_one_folder(spare_stack: Stack) -> None:
    names = {p.name for p in Path(spare_stack.home).iterdir()}
    assert {"postgres", "kafka", "temporal", "minio", "ldap", "keycloak", "logs", "stack.env"} <= names
