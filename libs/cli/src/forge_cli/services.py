"""The six Forge services as local processes, next to the stack: started by `forge up`, health-checked on
`/readyz`, stopped by `forge down`. Each runs `forge_<name>.app:main` (uvicorn) on its own port, reads the
stack's env file, and logs to `.forge/logs/<name>.log`."""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Sequence

import httpx
from forge_kit.stack_env import SERVICES

from forge_cli.stack import HOST, DetachedServer, Stack, StackError, log_tail, port_from_env, port_open

BASE_PORTS = {
    "dataset": 18101,
    "labeling": 18102,
    "training": 18103,
    "registry": 18104,
    "scheduler": 18105,
    "delivery": 18106,
}


def service_port(service: str) -> int:
    """The service's HTTP port (FORGE_<SERVICE>_PORT moves it)."""
    return port_from_env(service.upper(), BASE_PORTS[service])


def is_built(service: str) -> bool:
    """Whether the service's package has its composition root (`forge_<name>.app`)."""
    return importlib.util.find_spec(f"forge_{service}.app") is not None


class ServiceProcess(DetachedServer):
    """One Forge service run as `python -c 'from forge_<name>.app import main; main()'`."""

    start_timeout_s = 60.0

    def __init__(self, stack: Stack, service: str, *, instance: str | None = None) -> None:
        # `instance` names the pid and log files: a second process of the same service (a test's, say)
        # must not take over the pid file of the one `forge up` started.
        self.service = service
        self.name = instance or service
        self.process_marker = f"forge_{service}.app"
        super().__init__(stack)
        self.port = service_port(service)

    def endpoints(self) -> dict[str, str]:
        return {"http": f"http://{HOST}:{self.port}"}

    def prepare(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)

    def launch(self) -> None:
        # Only called when our process is not running: a listener on the port is someone else's (an
        # instance whose pid file was lost, another checkout's platform), and health checks against it
        # would lie.
        if port_open(self.port):
            raise StackError(
                f"port {self.port} for service {self.service} is already in use by another process; stop it "
                f"or move this service with FORGE_{self.service.upper()}_PORT"
            )
        super().launch()

    def argv(self) -> list[str]:
        return [sys.executable, "-c", f"from forge_{self.service}.app import main; main()"]

    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FORGE_ENV_FILE": str(self.stack.env_file),
            "FORGE_HTTP_HOST": HOST,
            "FORGE_HTTP_PORT": str(self.port),
        }

    def healthy(self) -> bool:
        try:
            return httpx.get(f"http://{HOST}:{self.port}/readyz", timeout=3).status_code == 200
        except httpx.HTTPError:
            return False


class Platform:
    """The stack plus every built service."""

    def __init__(self, stack: Stack | None = None, only: Sequence[str] | None = None) -> None:
        self.stack = stack or Stack()
        wanted = [name for name in SERVICES if only is None or name in only]
        self.services = [ServiceProcess(self.stack, name) for name in wanted if is_built(name)]
        self.missing = [name for name in wanted if not is_built(name)]

    def up(self) -> None:
        """Stack first (services need it), then every service not already healthy."""
        self.stack.up()
        waiting = []
        for service in self.services:
            if service.running() and service.healthy():
                continue
            if service.running():
                service.stop()
            service.prepare()
            service.launch()
            waiting.append(service)
        for service in waiting:
            self._wait_ready(service)
        self.stack.write_env_file(
            {f"FORGE_{s.name.upper()}_URL": s.endpoints()["http"] for s in self.services}
        )

    def _wait_ready(self, service: ServiceProcess) -> None:
        deadline = time.monotonic() + service.start_timeout_s
        while time.monotonic() < deadline:
            if not service.running():
                raise StackError(
                    f"service {service.name} exited while starting ({service.log_path}); log tail:\n"
                    f"{log_tail(service.log_path)}"
                )
            if service.healthy():
                return
            time.sleep(0.3)
        raise StackError(
            f"service {service.name} not ready after {service.start_timeout_s:.0f}s; see {service.log_path}"
        )

    def down(self) -> None:
        """Services first (they drain into the stack), then the stack."""
        for service in reversed(self.services):
            service.stop()
        self.stack.down()
