"""Process-wide torch settings: thread count, device choice and seeding."""

from __future__ import annotations

import os
import random
from typing import Literal

import torch

DeviceChoice = Literal["auto", "cpu", "cuda"]

_interop_configured = False


def usable_cpu_count() -> int:
    """CPUs this process may run on (respects cgroup/affinity limits, unlike os.cpu_count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def configure_threads(num_threads: int | None = None) -> int:
    """Use one intra-op thread per usable CPU; more threads than cores only adds contention."""
    global _interop_configured
    threads = num_threads or usable_cpu_count()
    torch.set_num_threads(threads)
    if not _interop_configured:
        # Tiny models gain nothing from inter-op parallelism; it may only be set once per process.
        try:
            torch.set_num_interop_threads(1)
        except RuntimeError:
            pass
        _interop_configured = True
    return threads


def select_device(choice: DeviceChoice = "auto") -> torch.device:
    """CUDA when asked for or available under "auto", else CPU."""
    if choice == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was requested but CUDA is not available")
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    return torch.device("cuda")


def seed_everything(seed: int) -> None:
    """Seed Python and torch (CPU and CUDA) so a run with the same spec repeats itself."""
    random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
