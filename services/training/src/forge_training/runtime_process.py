"""The training runtime as a child process: `python -m forge_training_runtime train --spec spec.json`,
read one JSON object per stdout line. The service never imports the runtime (nor torch)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

RUNTIME_MODULE = "forge_training_runtime"
_LINE_LIMIT = 4 * 1024 * 1024
_STOP_GRACE_S = 5.0


class RuntimeProcess:
    """One run of the runtime; `stop()` kills it (and is safe to call when it already ended)."""

    def __init__(self, command: str, spec_file: Path, stderr_file: Path) -> None:
        self.command = command
        self.spec_file = spec_file
        self.stderr_file = stderr_file
        self._process: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with self.stderr_file.open("wb") as stderr:
            self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                RUNTIME_MODULE,
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
