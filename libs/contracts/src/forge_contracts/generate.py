"""Generate the checked-in event docs from the payload models, refusing breaking changes.

`python -m forge_contracts.generate` (`make schemas`) writes, under the repository root:
- `docs/events/schemas/<event_type>.json`: the JSON Schema (draft 2020-12) of each payload;
- `docs/asyncapi.yaml`: the AsyncAPI 3.0 document of every topic;
- the catalogue of `docs/events.md`, between `<!-- catalogue:begin -->` and `<!-- catalogue:end -->`.

Before replacing an event type's schema it compares the checked-in one with the new one: a breaking
change (see `forge_contracts.compatibility`) or a removed event type writes nothing and exits 2.
`--check` writes nothing either, and exits 1 when a file is out of date (CI runs it).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from forge_contracts.asyncapi import asyncapi_document, to_yaml
from forge_contracts.catalogue import events_page
from forge_contracts.compatibility import breaking_changes
from forge_contracts.schemas import event_schema, payload_models

SCHEMAS_DIR = Path("docs/events/schemas")
ASYNCAPI = Path("docs/asyncapi.yaml")
EVENTS_PAGE = Path("docs/events.md")

__all__ = ["Plan", "breaking_changes", "find_root", "main", "plan"]


@dataclass
class Plan:
    """What generation would do: files to write (path relative to the root -> content) and what breaks."""

    writes: dict[Path, str] = field(default_factory=dict)
    breaking: list[str] = field(default_factory=list)


def find_root(start: Path | None = None) -> Path:
    """The repository root: the nearest directory up from `start` (or here) with libs/ and pyproject.toml."""
    for origin in [start] if start else [Path.cwd(), Path(__file__).resolve()]:
        for directory in [origin, *origin.parents]:
            if (directory / "libs").is_dir() and (directory / "pyproject.toml").is_file():
                return directory
    raise FileNotFoundError("no repository root (a directory with libs/ and pyproject.toml) above here")


def plan(root: Path) -> Plan:
    """Compare every generated file with what is checked in under `root`."""
    result = Plan()
    wanted = {SCHEMAS_DIR / f"{model.event_type}.json": event_schema(model) for model in payload_models()}
    for path, schema in wanted.items():
        _plan_schema(root, path, schema, result)
    for stale in sorted((root / SCHEMAS_DIR).glob("*.json")):
        if stale.relative_to(root) not in wanted:
            result.breaking.append(f"{stale.stem}: the event type was removed; consumers may still need it")
    _plan_file(root, ASYNCAPI, to_yaml(asyncapi_document()), result)
    page = root / EVENTS_PAGE
    _plan_file(root, EVENTS_PAGE, events_page(page.read_text() if page.exists() else None), result)
    return result


def _plan_schema(root: Path, path: Path, schema: dict[str, object], result: Plan) -> None:
    content = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    current = root / path
    if current.exists():
        event_type = path.name.removesuffix(".json")
        old = json.loads(current.read_text())
        result.breaking += [f"{event_type}: {problem}" for problem in breaking_changes(old, schema)]
    _plan_file(root, path, content, result)


def _plan_file(root: Path, path: Path, content: str, result: Plan) -> None:
    current = root / path
    if not current.exists() or current.read_text() != content:
        result.writes[path] = content


def main(argv: Sequence[str] | None = None) -> int:
    """Run the generator; returns the exit status (0 done or up to date, 1 out of date, 2 breaking)."""
    parser = argparse.ArgumentParser(
        prog="python -m forge_contracts.generate", description=(__doc__ or "").split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="write nothing; fail if anything would change")
    parser.add_argument("--root", type=Path, help="repository root (default: found from here)")
    args = parser.parse_args(argv)
    root = args.root.resolve() if args.root else find_root()
    result = plan(root)
    if result.breaking:
        _report_breaking(result.breaking)
        return 2
    if args.check:
        return _report_check(result)
    for path, content in result.writes.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(content, encoding="utf-8")
        print(f"wrote {path}")
    print(f"event docs up to date ({len(result.writes)} file(s) written)")
    return 0


def _report_breaking(problems: list[str]) -> None:
    print("refusing to change published event types (nothing written):", file=sys.stderr)
    for problem in problems:
        print(f"  - {problem}", file=sys.stderr)
    print(
        "Within a version only optional fields may be added. Keep the old type as it is and publish a new "
        "type instead (e.g. `forge.<service>.<entity>.<event>.v2`), alongside it while consumers move over.",
        file=sys.stderr,
    )


def _report_check(result: Plan) -> int:
    if not result.writes:
        print("event docs up to date")
        return 0
    print("event docs are out of date; run `make schemas`:", file=sys.stderr)
    for path in result.writes:
        print(f"  - {path}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
