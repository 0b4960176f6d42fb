"""The sandbox process of a user-written rule (see `forge_data_runtime.sandbox`): stdlib only, so it
starts in milliseconds; it confines itself before it compiles or runs any of the user's code."""

from __future__ import annotations

import json
import resource
import sys
from typing import Any

_BLOCKED = (
    "socket.",
    "subprocess.",
    "os.system",
    "os.exec",
    "os.posix_spawn",
    "os.spawn",
    "os.fork",
    "os.forkpty",
    "os.kill",
    "os.putenv",
    "os.unsetenv",
    "os.remove",
    "os.rename",
    "os.rmdir",
    "os.mkdir",
    "os.chmod",
    "os.chown",
    "os.link",
    "os.symlink",
    "os.truncate",
    "os.listdir",
    "os.scandir",
    "os.chdir",
    "shutil.",
    "ctypes.",
    "open",
    "import",
    "urllib.",
    "http.",
    "ftplib.",
    "smtplib.",
    "pty.",
    "webbrowser.",
    "sys.addaudithook",
    "sys.settrace",
    "sys.setprofile",
)
_CLONE_NEWNET = 0x40000000


def _leave_network() -> None:
    """A new network namespace without interfaces: no connection can leave (where the kernel lets us)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.unshare(_CLONE_NEWNET)
    except (OSError, AttributeError):
        pass  # not permitted here: the audit hook still refuses every socket


def _confine(cpu_s: int, memory_mb: int) -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))
    resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _leave_network()

    def refuse(event: str, _args: tuple[Any, ...]) -> None:
        if event.startswith(_BLOCKED):
            raise PermissionError(f"not allowed in a rule: {event}")

    sys.addaudithook(refuse)


def _child() -> None:
    import collections
    import datetime
    import hashlib
    import itertools
    import math
    import random
    import re
    import string
    import traceback
    import unicodedata

    cpu_s, memory_mb = int(sys.argv[1]), int(sys.argv[2])
    request = json.loads(sys.stdin.buffer.read())
    out = sys.stdout
    random.seed(request["seed"])
    modules = {
        "re": re,
        "math": math,
        "json": json,
        "unicodedata": unicodedata,
        "string": string,
        "collections": collections,
        "itertools": itertools,
        "datetime": datetime,
        "hashlib": hashlib,
        "random": random,
    }
    namespace: dict[str, Any] = {"__name__": "rule", **modules}
    expression, function, mode = request["expression"], request["function"], request["mode"]
    _confine(cpu_s, memory_mb)
    code = compile(expression or function, "<rule>", "eval" if expression else "exec", dont_inherit=True)
    index = 0  # the record being worked on, named when it fails
    try:
        if function is not None:
            exec(code, namespace)  # noqa: S102 (the user's rule, inside the sandbox)
            rule = namespace["rule"]
        results: list[Any] = []
        for index, record in enumerate(request["records"]):  # noqa: B007
            if function is not None:
                value = rule(record)
            else:
                value = eval(code, namespace, {**record, "record": record})  # noqa: S307 (sandboxed)
            if mode == "map":
                if value is not None and not isinstance(value, dict):
                    raise TypeError(f"a map rule returns a JSON object or None, not {type(value).__name__}")
                json.dumps(value)  # must be JSON
            else:
                value = bool(value)
            results.append(value)
        answer: dict[str, Any] = {"results": results}
    except Exception as error:
        frames = [f for f in traceback.extract_tb(error.__traceback__) if f.filename == "<rule>"]
        where = f" (line {frames[-1].lineno})" if frames and function is not None else ""
        answer = {"error": f"{type(error).__name__}: {error}{where}", "index": index}
    out.write(json.dumps(answer))
    out.flush()


if __name__ == "__main__":
    _child()
