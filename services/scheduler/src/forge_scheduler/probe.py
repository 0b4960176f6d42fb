"""The `gang-probe` workload: `python -m forge_scheduler.probe --params <file>`, one process per worker.

It prints `<message> from <rank> of <world size>`, holds for `hold_s` seconds (sleeping, or spinning on
a CPU when `busy`; a file named `proceed` in its working directory, the job's folder, ends the hold
early), then exits with `exit_code`. The scheduler writes the parameters file from the validated
`GangProbeParams`; only the standard library is imported, so a worker starts in milliseconds.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

PROCEED = "proceed"
_POLL_S = 0.05


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] != "--params":
        print("usage: python -m forge_scheduler.probe --params <file>", file=sys.stderr)
        return 2
    params = json.loads(Path(args[1]).read_text(encoding="utf-8"))
    rank, world = os.environ.get("FORGE_WORKER_RANK", "0"), os.environ.get("FORGE_WORLD_SIZE", "1")
    print(f"{params['message']} from {rank} of {world}", flush=True)
    hold_s = float(params["hold_s"])
    if hold_s > 0:
        print(f"holding for {hold_s:g}s (pid {os.getpid()})", flush=True)
        _hold(hold_s, busy=bool(params["busy"]))
    return int(params["exit_code"])


def _hold(seconds: float, *, busy: bool) -> None:
    deadline = time.monotonic() + seconds
    gate = Path(PROCEED)
    while time.monotonic() < deadline and not gate.exists():
        if busy:
            spin_until = time.monotonic() + _POLL_S
            while time.monotonic() < spin_until:
                pass
        else:
            time.sleep(min(_POLL_S, max(0.0, deadline - time.monotonic())))


if __name__ == "__main__":
    sys.exit(main())
