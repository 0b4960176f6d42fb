"""Compute backends: where an admitted allocation's workers actually run.

The scheduler decides *whether* a gang may run (domain.py); a backend decides *where* and runs it.
`ComputeBackend` is the interface; `LocalBackend` runs a gang as local processes. A `volcano` backend
(a Volcano `batch.volcano.sh/v1alpha1 Job` with `minAvailable = gang_size`, one Queue per project) is
meant to implement the same interface later.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import signal
import socket
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

JobState = Literal["running", "succeeded", "failed"]

# What a worker inherits from the service's environment: enough to find programs and write files,
# never the service's own settings or credentials.
_INHERITED_ENV = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


class BackendError(Exception):
    """The backend could not start the job (e.g. the program does not exist)."""


@dataclass(frozen=True)
class LocalJobSpec:
    """One gang to run: `gang_size` workers, each running `argv`."""

    job_id: str
    argv: list[str]
    gang_size: int
    log_dir: Path
    env: Mapping[str, str] = field(default_factory=dict)
    working_dir: Path | None = None
    max_address_space_bytes: int | None = None
    max_cpu_time_s: int | None = None


@dataclass(frozen=True)
class JobHandle:
    """What a backend returns for a started job; enough to find it again (and its logs) later."""

    backend: str
    ref: str
    log_dir: Path
    nodes: tuple[str, ...] = ()


@dataclass(frozen=True)
class JobStatus:
    state: JobState
    exit_codes: tuple[int | None, ...]
    """Per worker rank; None while that worker runs."""

    @property
    def exit_code(self) -> int | None:
        """The first non-zero exit code, else 0 once all ended, else None."""
        if self.state == "running":
            return None
        return next((code for code in self.exit_codes if code), 0)


@dataclass(frozen=True)
class WorkerLog:
    rank: int
    path: Path
    lines: list[str]


class ComputeBackend(ABC):
    """Runs gangs of workers somewhere."""

    name: str

    @abstractmethod
    async def start(self, job: LocalJobSpec) -> JobHandle:
        """Start every worker of the gang, or none (raises BackendError)."""

    @abstractmethod
    async def status(self, handle: JobHandle) -> JobStatus:
        """Where the job stands now."""

    @abstractmethod
    async def wait(self, handle: JobHandle) -> JobStatus:
        """Return once every worker has ended."""

    @abstractmethod
    async def logs(self, handle: JobHandle, tail: int) -> list[WorkerLog]:
        """The last `tail` lines of each worker's output."""

    @abstractmethod
    async def stop(self, handle: JobHandle) -> JobStatus:
        """Stop every worker (terminate, then kill after a grace period)."""


def log_path(log_dir: Path, rank: int) -> Path:
    return log_dir / f"worker-{rank}.log"


def tail_lines(path: Path, count: int) -> list[str]:
    """The last `count` lines of a text file (empty if it does not exist)."""
    if count <= 0 or not path.exists():
        return []
    with path.open("rb") as file:
        size = file.seek(0, os.SEEK_END)
        block = min(size, max(4096, count * 512))
        file.seek(size - block)
        data = file.read()
    lines = data.decode(errors="replace").splitlines()
    return list(deque(lines, maxlen=count))


def _limits(address_space: int | None, cpu_time: int | None) -> Callable[[], None] | None:
    if address_space is None and cpu_time is None:
        return None

    def apply() -> None:  # runs in the child between fork and exec
        if address_space is not None:
            resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
        if cpu_time is not None:
            # SIGXCPU at the soft limit (a catchable warning), SIGKILL one second later
            resource.setrlimit(resource.RLIMIT_CPU, (cpu_time, cpu_time + 1))

    return apply


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class _LocalJob:
    processes: list[asyncio.subprocess.Process]
    supervisor: asyncio.Task[JobStatus]


class LocalBackend(ComputeBackend):
    """Runs each worker of a gang as a local process in its own session (process group), with output
    (stdout and stderr together) in `<log_dir>/worker-<rank>.log`. When one worker fails, the others are
    stopped, as torchrun does. The environment carries `FORGE_WORKER_RANK`, `FORGE_WORLD_SIZE` and the
    variables torch.distributed reads (`RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`).
    """

    name = "local"

    def __init__(self, *, stop_grace_s: float = 5.0) -> None:
        self.stop_grace_s = stop_grace_s
        self._jobs: dict[str, _LocalJob] = {}
        self.node = socket.gethostname()

    def knows(self, ref: str) -> bool:
        """Whether this process started (and still supervises or remembers) the job."""
        return ref in self._jobs

    async def start(self, job: LocalJobSpec) -> JobHandle:
        if job.job_id in self._jobs:
            raise BackendError(f"job {job.job_id} was already started")
        job.log_dir.mkdir(parents=True, exist_ok=True)
        working_dir = job.working_dir or job.log_dir
        if not working_dir.is_dir():
            raise BackendError(f"working directory {working_dir} does not exist")
        base = {name: os.environ[name] for name in _INHERITED_ENV if name in os.environ}
        port = _free_port()
        processes: list[asyncio.subprocess.Process] = []
        try:
            for rank in range(job.gang_size):
                env = {
                    **base,
                    **job.env,
                    "FORGE_JOB_ID": job.job_id,
                    "FORGE_WORKER_RANK": str(rank),
                    "FORGE_WORLD_SIZE": str(job.gang_size),
                    "RANK": str(rank),
                    "LOCAL_RANK": str(rank),
                    "WORLD_SIZE": str(job.gang_size),
                    "MASTER_ADDR": "127.0.0.1",
                    "MASTER_PORT": str(port),
                    "PYTHONUNBUFFERED": "1",
                }
                with log_path(job.log_dir, rank).open("ab") as log:
                    processes.append(
                        await asyncio.create_subprocess_exec(
                            *job.argv,
                            stdin=asyncio.subprocess.DEVNULL,
                            stdout=log,
                            stderr=asyncio.subprocess.STDOUT,
                            env=env,
                            cwd=working_dir,
                            start_new_session=True,
                            preexec_fn=_limits(job.max_address_space_bytes, job.max_cpu_time_s),
                        )
                    )
        except OSError as error:
            await self._terminate(processes)
            raise BackendError(f"cannot start {job.argv[0]!r}: {error.strerror or error}") from error
        supervisor = asyncio.create_task(self._supervise(processes), name=f"local-job-{job.job_id}")
        self._jobs[job.job_id] = _LocalJob(processes, supervisor)
        return JobHandle(self.name, job.job_id, job.log_dir, (self.node,))

    async def _supervise(self, processes: list[asyncio.subprocess.Process]) -> JobStatus:
        waits = {asyncio.ensure_future(p.wait()): p for p in processes}
        pending = set(waits)
        while pending:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if any(task.result() != 0 for task in done) and pending:
                await self._terminate([waits[task] for task in pending])
        return self._status(processes)

    @staticmethod
    def _status(processes: list[asyncio.subprocess.Process]) -> JobStatus:
        codes = tuple(p.returncode for p in processes)
        if any(code is None for code in codes):
            return JobStatus("running", codes)
        return JobStatus("succeeded" if all(code == 0 for code in codes) else "failed", codes)

    async def _terminate(self, processes: list[asyncio.subprocess.Process]) -> None:
        """SIGTERM each process group, SIGKILL what is left after the grace period."""
        alive = [p for p in processes if p.returncode is None]
        for process in alive:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in alive)), self.stop_grace_s)
        except TimeoutError:
            for process in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
            await asyncio.gather(*(p.wait() for p in alive))

    def _job(self, handle: JobHandle) -> _LocalJob:
        try:
            return self._jobs[handle.ref]
        except KeyError:
            raise BackendError(f"job {handle.ref} is not known to this process") from None

    async def status(self, handle: JobHandle) -> JobStatus:
        return self._status(self._job(handle).processes)

    async def wait(self, handle: JobHandle) -> JobStatus:
        return await asyncio.shield(self._job(handle).supervisor)

    async def logs(self, handle: JobHandle, tail: int) -> list[WorkerLog]:
        paths = sorted(handle.log_dir.glob("worker-*.log"), key=lambda p: int(p.stem.split("-")[1]))
        return [
            WorkerLog(int(path.stem.split("-")[1]), path, await asyncio.to_thread(tail_lines, path, tail))
            for path in paths
        ]

    async def stop(self, handle: JobHandle) -> JobStatus:
        job = self._job(handle)
        await self._terminate(job.processes)
        return await asyncio.shield(job.supervisor)

    async def discard(self, handle: JobHandle) -> None:
        """Stop a job and forget it (its start could not be recorded)."""
        job = self._jobs.pop(handle.ref, None)
        if job is not None:
            await self._terminate(job.processes)
            with contextlib.suppress(Exception):
                await job.supervisor

    def forget(self, handle: JobHandle) -> None:
        """Drop an ended job from memory (its logs stay on disk)."""
        job = self._jobs.get(handle.ref)
        if job is not None and job.supervisor.done():
            del self._jobs[handle.ref]

    async def stop_all(self) -> None:
        """Stop every job this process runs (at shutdown: local workers must not outlive the service)."""
        for job in list(self._jobs.values()):
            await self._terminate(job.processes)
            with contextlib.suppress(Exception):
                await job.supervisor
