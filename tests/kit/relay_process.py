"""Runs an outbox relay as its own process, for fault tests:

    python -m tests.kit.relay_process DSN BOOTSTRAP SERVICE [--kill-after-publish]

With --kill-after-publish the process SIGKILLs itself after the broker acknowledged its first batch and
before that batch is marked sent: the worst moment for a relay to die.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from collections.abc import Sequence

from forge_kit import observability
from forge_kit.relay import OutboxRelay


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn")
    parser.add_argument("bootstrap")
    parser.add_argument("service")
    parser.add_argument("--kill-after-publish", action="store_true")
    args = parser.parse_args()
    observability.configure(f"{args.service}-relay")

    async def die(acked: Sequence[int]) -> None:
        if acked:
            print(f"published {len(acked)} events; dying before marking them sent", flush=True)
            os.kill(os.getpid(), signal.SIGKILL)

    relay = OutboxRelay(
        args.dsn, args.bootstrap, service=args.service, after_publish=die if args.kill_after_publish else None
    )
    await relay.run()


if __name__ == "__main__":
    asyncio.run(main())
