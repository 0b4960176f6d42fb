"""User-written rules, run in a sandbox process: `python -I -m forge_data_runtime.rule_child <cpu_s> <mb>`.

The parent (`RuleRunner`, inside a Ray task) sends the rule and a batch of records as JSON on stdin and
reads the results on stdout. Before any user code runs, the child caps its CPU time (`RLIMIT_CPU`: a loop
is killed by SIGXCPU), its memory (`RLIMIT_AS`), its file writes (`RLIMIT_FSIZE` 0) and open files, leaves
the network (a new, empty network namespace where the kernel allows it), and installs an audit hook that
refuses sockets, processes, file opens, `ctypes` and imports from then on. The rule sees only the
modules imported here (`re`, `math`, `json`, `unicodedata`, `string`, `collections`, `itertools`,
`datetime`, `hashlib`, `random` seeded per batch). A rule that raises, returns something else than asked,
or runs out of time or memory fails the batch with a message naming the record.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from forge_contracts.processing import Rule

Record = dict[str, Any]
CHUNK = 256
"""Records sent to one sandbox process (its CPU limit holds per chunk)."""
_STARTUP_S = 10.0


class RuleFailed(Exception):
    """The user's rule could not be applied; the message says why and on which record. `template` names
    the records as `{0}`, `{1}` (`records`), so the driver can name them again once it knows where each
    is in its file."""

    def __init__(self, template: str, *records: Any) -> None:
        self.template = template
        self.records = records
        super().__init__(template.format(*records))

    def named(self, *names: str) -> str:
        return self.template.format(*names)


def _literal(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class RuleRunner:
    """A rule's results for batches of records, each chunk in a fresh sandbox process."""

    def __init__(self, params: Rule, position: int, seed: int) -> None:
        self.params = params
        self.position = position
        self.seed = seed

    def _label(self) -> str:
        """The operator, as text for a `RuleFailed` template."""
        return _literal(f"op {self.position + 1} (rule {self.params.name!r})")

    def run(self, records: list[Record], names: list[Any]) -> list[Any]:
        """Per record: a bool (filter) or a record or None (map). `names` label records in errors."""
        results: list[Any] = []
        for start in range(0, len(records), CHUNK):
            chunk = records[start : start + CHUNK]
            results.extend(self._run_chunk(chunk, names[start : start + CHUNK], start))
        return results

    def _run_chunk(self, records: list[Record], names: list[Any], offset: int) -> list[Any]:
        p = self.params
        payload = json.dumps(
            {
                "expression": p.expression,
                "function": p.function,
                "mode": p.mode,
                "seed": self.seed + offset,
                "records": records,
            }
        ).encode()
        cpu_s = max(1, int(p.timeout_s + 0.999))
        argv = [sys.executable, "-I", "-m", "forge_data_runtime.rule_child", str(cpu_s), str(p.memory_mb)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        try:
            done = subprocess.run(
                argv,
                input=payload,
                capture_output=True,
                timeout=p.timeout_s * 2 + _STARTUP_S,
                env=env,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise RuleFailed(
                f"{self._label()} did not finish within {p.timeout_s:g} s on records {{0}}..{{1}} "
                "(an endless loop or a blocking call?)",
                names[0],
                names[-1],
            ) from None
        if done.returncode == -24 or done.returncode == 152:  # SIGXCPU
            raise RuleFailed(
                f"{self._label()} used up its {p.timeout_s:g} s of CPU on records {{0}}..{{1}} "
                "(an endless loop?)",
                names[0],
                names[-1],
            )
        try:
            answer = json.loads(done.stdout or b"{}")
        except ValueError:
            answer = {}
        understood = isinstance(answer, dict) and ("results" in answer or "error" in answer)
        if done.returncode != 0 or not understood:
            tail = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            if "MemoryError" in tail[0] or done.returncode in (-9, 137):
                raise RuleFailed(f"{self._label()} ran out of its {p.memory_mb} MB of memory")
            raise RuleFailed(f"{self._label()} failed (exit {done.returncode}): {_literal(tail[0][:500])}")
        if "error" in answer:
            index = int(answer.get("index", 0))
            error = _literal(str(answer["error"])[:1000])
            raise RuleFailed(f"{self._label()} on record {{0}}: {error}", names[index])
        results: list[Any] = answer["results"]
        return results


__all__ = ["RuleFailed", "RuleRunner"]
