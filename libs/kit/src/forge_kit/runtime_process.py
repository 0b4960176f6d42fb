"""A runtime as a child process: `python -m <module> <command> --spec spec.json`, read one JSON object
per stdout line. A service never imports its runtime (nor torch, nor Ray): the training runtime
(`forge_training_runtime`: train, evaluate) and the data runtime (`forge_data_runtime`: process) run
this way.

`run_runtime` is the whole run (spec file, start, events, exit, kill on cancellation); `RuntimeProcess`
is the process itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_LINE_LIMIT = 4 * 1024 * 1024
_STOP_GRACE_S = 5.0


class RuntimeProcess:
    """One run of the runtime; `stop()` kills it (and is safe to call when it already ended)."""

    def __init__(
        self,
        module: str,
        command: str,
        spec_file: Path,
        stderr_file: Path,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.module = module
        self.env = env
        self.command = command
        self.spec_file = spec_file
        self.stderr_file = stderr_file
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        env = {**(os.environ if self.env is None else self.env), "PYTHONUNBUFFERED": "1"}
        with self.stderr_file.open("wb") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.module,
                self.command,
                "--spec",
                str(self.spec_file),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
                stdin=asyncio.subprocess.DEVNULL,
                env=env,
                limit=_LINE_LIMIT,
                start_new_session=True,  # a signal to the worker's group does not reach it directly
            )

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """The runtime's events in order; a line that is not a JSON object becomes a warning log."""
        if self._process is None or self._process.stdout is None:
            raise RuntimeError("the runtime process was not started")
        while line := await self._process.stdout.readline():
            text = line.decode("utf-8", errors="replace").strip()
            if not text:
                continue
            try:
                event = json.loads(text)
            except json.JSONDecodeError:
                event = None
            yield event if isinstance(event, dict) else {"kind": "log", "level": "warning", "message": text}

    async def wait(self) -> int:
        if self._process is None:
            raise RuntimeError("the runtime process was not started")
        return await self._process.wait()

    async def stop(self) -> None:
        """Terminate the process (then kill it after a grace period) and reap it."""
        process = self._process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), _STOP_GRACE_S)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()

    def stderr_tail(self, chars: int = 2000) -> str:
        try:
            data = self.stderr_file.read_bytes()
        except OSError:
            return ""
        return data[-chars:].decode("utf-8", errors="replace")


@dataclass(frozen=True)
class RuntimeRun:
    """How one run of the runtime ended: its exit status, its `result` or `error` line, stderr's end."""

    exit_code: int
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    stderr_tail: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and self.result is not None


async def run_runtime(
    module: str,
    command: str,
    spec: dict[str, Any],
    work_dir: Path,
    *,
    on_start: Callable[[RuntimeProcess], Awaitable[None]] | None = None,
    on_event: Callable[[dict[str, Any]], Awaitable[None]] | None = None,
    env: Mapping[str, str] | None = None,
) -> RuntimeRun:
    """Write `spec` into `work_dir`, run `module`'s `command` on it and hand every event to `on_event` as
    it comes. The process never outlives the call: cancellation (or any error) kills it. `env`: the
    process's whole environment (default: the caller's)."""
    spec_file = work_dir / f"{command}.spec.json"
    spec_file.write_text(json.dumps(spec), encoding="utf-8")
    process = RuntimeProcess(module, command, spec_file, work_dir / f"{command}.stderr", env)
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    try:
        await process.start()
        if on_start is not None:
            await on_start(process)
        async for event in process.events():
            kind = event.get("kind")
            if kind == "result":
                result = event.get("result") or {}
            elif kind == "error":
                error = event
            if on_event is not None:
                await on_event(event)
        exit_code = await process.wait()
    finally:
        await process.stop()
    return RuntimeRun(exit_code=exit_code, result=result, error=error, stderr_tail=process.stderr_tail())
