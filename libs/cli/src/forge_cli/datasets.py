"""`forge datasets`: create datasets, upload and publish versions, preview, statistics, split and diff,
through the gateway as the signed-in user (`forge login`), with progress bars for uploads and tasks.

A version is named by its id or by one of the dataset's aliases (`latest`, `golden`).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import typer
from forge_sdk import ApiError, Datasets, Service
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from forge_cli.userapi import (
    CliError,
    JsonOption,
    TenantOption,
    console,
    print_json,
    read_document,
    run,
    service,
)

app = typer.Typer(
    help="Datasets: versions, uploads, previews, statistics, splits, diffs and sharing.", no_args_is_help=True
)
UrlsArgument = typer.Argument(None, help="http(s) URLs of files (each named by the URL's last part).")
FilesArgument = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="Files of any kind.")


def _api(tenant: str | None) -> Service:
    """The dataset service as the signed-in user (`forge login`), acting in `tenant`."""
    return service(tenant, "dataset")


def _follow(api: Service, dataset_id: str, task: dict[str, Any], what: str) -> Any:
    """Follow a dataset task to its end with a progress bar (progress and the service's ETA)."""
    with Progress(
        TextColumn(f"{what} [dim]{{task.fields[phase]}}[/]"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}%"),
        TextColumn("[dim]ETA {task.fields[eta]}[/]"),
        console=console,
        transient=False,
    ) as bar:
        shown = bar.add_task(what, total=1.0, phase=task["state"], eta="-")

        def show(seen: dict[str, Any]) -> None:
            eta = seen.get("eta_s")
            phase = seen.get("progress_detail", {}).get("phase") or seen["state"]
            bar.update(
                shown, completed=seen["progress"], phase=phase, eta="-" if eta is None else f"{eta:.0f}s"
            )

        return Datasets(api).follow(dataset_id, task, on_progress=show)


@app.command("list")
def list_datasets(tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """The datasets of your tenant."""

    def command() -> None:
        api = _api(tenant)
        found = api.get("/datasets")
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "modality", "secrecy", "versions")
        for item in found:
            table.add_row(
                item["id"], item["name"], item["modality"], item["secrecy"], str(item["version_count"])
            )
        console.print(table)

    run(command)


@app.command("create")
def create(
    name: str,
    modality: str = typer.Option("text", help="text, image, audio or video."),
    secrecy: str = typer.Option("internal", help="public, internal, confidential or secret."),
    licence: str = typer.Option("proprietary"),
    description: str = typer.Option(""),
    tenant: str = TenantOption,
) -> None:
    """Create a dataset; prints its id."""

    def command() -> None:
        api = _api(tenant)
        body = {
            "name": name,
            "modality": modality,
            "secrecy": secrecy,
            "licence": licence,
            "source": "upload",
            "description": description,
        }
        created = api.post("/datasets", json=body)
        console.print(created["id"])

    run(command)


@app.command("upload")
def upload(
    dataset_id: str,
    files: list[Path] = FilesArgument,
    publish: bool = typer.Option(True, help="Publish the version once every file is up."),
    expand: bool = typer.Option(
        False, "--expand", help="Expand archives (.zip, .tar, .tar.gz) into their files (a task)."
    ),
    prefix: str = typer.Option("", help="With --expand: put the archive's files under this folder."),
    tenant: str = TenantOption,
) -> None:
    """Upload files of any kind (JSONL, CSV, Parquet, images, audio, video, archives) as a new version,
    streamed with a progress bar, and publish it."""

    def command() -> None:
        api = _api(tenant)
        version = api.post(f"/datasets/{dataset_id}/versions")
        expanding: list[dict[str, Any]] = []
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        ) as progress:
            for path in files:
                shown = progress.add_task(path.name, total=path.stat().st_size)
                params = {"expand": "true", "prefix": prefix} if expand and _is_archive(path) else None
                answer = Datasets(api).upload_file(
                    dataset_id,
                    version["id"],
                    path,
                    params=params,
                    on_progress=functools.partial(progress.advance, shown),
                )
                if params is not None:
                    expanding.append(answer)
        for task in expanding:
            _follow(api, dataset_id, task, f"expanding {task['parameters']['archive']}")
        if publish:
            version = api.post(f"/datasets/{dataset_id}/versions/{version['id']}/publish")
        else:
            version = api.get(f"/datasets/{dataset_id}/versions/{version['id']}")
        _print_version(version)

    run(command)


def _is_archive(path: Path) -> bool:
    return path.name.lower().endswith((".zip", ".tar", ".tar.gz", ".tgz"))


def _print_version(version: dict[str, Any]) -> None:
    console.print(
        f"version {version['number']} [bold]{version['id']}[/] {version['state']}: "
        f"{version['item_count']} records, {len(version.get('files') or [])} files, "
        f"{version['size_bytes']} bytes",
        highlight=False,
    )


def _connection_id(api: Service, ref: str) -> str:
    """A connection id from its id or its name."""
    for found in api.get("/connections"):
        if ref in (found["id"], found["name"]):
            return str(found["id"])
    raise ApiError(404, f"connection {ref!r} does not exist (`forge datasets connections list`)", "Not found")


def _source(
    api: Service,
    urls: list[str],
    s3: str | None,
    sql: str | None,
    hdfs: str | None,
    prefix: str,
    include: str | None,
    query: str | None,
    shard_rows: int | None,
    hdfs_path: str | None,
    hdfs_user: str,
) -> dict[str, Any]:
    chosen = [
        name for name, given in (("URLs", urls), ("--s3", s3), ("--sql", sql), ("--hdfs", hdfs)) if given
    ]
    if len(chosen) != 1:
        raise CliError("name one source: http(s) URLs, --s3 CONNECTION, --sql CONNECTION or --hdfs URL")
    if s3:
        source: dict[str, Any] = {"type": "s3", "connection_id": _connection_id(api, s3)}
        source["prefix"] = prefix
        if include:
            source["include"] = include
        return source
    if sql:
        if not query:
            raise CliError("--sql needs --query 'SELECT ...'")
        source = {"type": "sql", "connection_id": _connection_id(api, sql), "query": query}
        if shard_rows:
            source["shard_rows"] = shard_rows
        return source
    if hdfs:
        if not hdfs_path:
            raise CliError("--hdfs needs --path /folder/or/file")
        source = {"type": "webhdfs", "url": hdfs, "path": hdfs_path, "user": hdfs_user}
        if include:
            source["include"] = include
        return source
    files = [{"url": url, "name": url.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]} for url in urls]
    return {"type": "link", "files": files}


@app.command("import")
def import_data(
    dataset_id: str,
    urls: list[str] = UrlsArgument,
    s3: str = typer.Option(None, "--s3", help="Import the objects of this S3 connection (id or name)."),
    sql: str = typer.Option(None, "--sql", help="Import a query's rows from this SQL connection."),
    hdfs: str = typer.Option(None, "--hdfs", help="Import from this WebHDFS address (http://namenode:9870)."),
    prefix: str = typer.Option("", help="--s3: only keys under this prefix."),
    include: str = typer.Option(None, help="--s3/--hdfs: only names matching this glob (`*.jsonl`)."),
    query: str = typer.Option(None, help="--sql: one SELECT statement."),
    shard_rows: int = typer.Option(None, help="--sql: rows per Parquet shard."),
    path: str = typer.Option(None, "--path", help="--hdfs: the folder or file to import."),
    user: str = typer.Option("forge", "--user", help="--hdfs: read as this HDFS user."),
    tenant: str = TenantOption,
) -> None:
    """Import files from http(s) links, an S3 bucket, a SQL query or HDFS into a new published version
    (a background task, followed with a progress bar)."""

    def command() -> None:
        api = _api(tenant)
        source = _source(api, urls, s3, sql, hdfs, prefix, include, query, shard_rows, path, user)
        task = api.post(f"/datasets/{dataset_id}/imports", json={"source": source})
        done = _follow(api, dataset_id, task, "importing")
        version = api.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}")
        _print_version(version)

    run(command)


@app.command("versions")
def versions(dataset_id: str, tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """The dataset's versions."""

    def command() -> None:
        api = _api(tenant)
        found = api.get(f"/datasets/{dataset_id}/versions")
        if json_output:
            print_json(found)
            return
        table = Table("number", "id", "state", "records", "bytes", "operation")
        for v in found:
            table.add_row(
                str(v["number"]),
                v["id"],
                v["state"],
                str(v["item_count"]),
                str(v["size_bytes"]),
                v["operation"] or "-",
            )
        console.print(table)

    run(command)


@app.command("preview")
def preview(
    dataset_id: str,
    version: str = typer.Argument(..., help="A version id or alias."),
    limit: int = typer.Option(10, min=1, max=100),
    tenant: str = TenantOption,
) -> None:
    """The first records of a version, one JSON object per line."""

    def command() -> None:
        api = _api(tenant)
        version_id = Datasets(api).version_id(dataset_id, version)
        shown = api.get(f"/datasets/{dataset_id}/versions/{version_id}/preview", params={"limit": limit})
        for record in shown["records"]:
            console.print(json.dumps(record, ensure_ascii=False), highlight=False, soft_wrap=True)
        if shown.get("note"):
            console.print(f"[dim]{shown['note']}[/]")

    run(command)


@app.command("stats")
def stats(
    dataset_id: str,
    version: str = typer.Argument(..., help="A version id or alias."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """A version's statistics: records, sizes and per field coverage and value distribution."""

    def command() -> None:
        api = _api(tenant)
        version_id = Datasets(api).version_id(dataset_id, version)
        found = api.get(f"/datasets/{dataset_id}/versions/{version_id}/stats")
        if json_output:
            print_json(found)
            return
        console.print(
            f"{found['records']} records, {found['size_bytes']} bytes in {found['file_count']} file(s)"
        )
        table = Table("field", "present", "missing", "types", "top values")
        for name, field in found["fields"].items():
            top = ", ".join(f"{json.dumps(v['value'])} {v['share']:.0%}" for v in field.get("values", [])[:5])
            table.add_row(
                name,
                str(field["present"]),
                str(field["missing"]),
                ", ".join(field["types"]),
                top or f"[dim]{'many' if field['distinct_values'] is None else '-'}[/]",
            )
        console.print(table)

    run(command)


@app.command("split")
def split(
    dataset_id: str,
    version: str = typer.Argument(..., help="A version id or alias."),
    ratios: str = typer.Option(None, help="train,validation,test fractions, e.g. 0.8,0.1,0.1."),
    folds: int = typer.Option(None, min=2, max=100, help="k-fold instead of ratios."),
    seed: int = typer.Option(0, min=0),
    stratify_by: str = typer.Option(None, help="Keep this field's proportions in every output."),
    group_by: str = typer.Option(None, help="Keep records with the same value of this field together."),
    tenant: str = TenantOption,
) -> None:
    """Split a version (a background task, followed with a progress bar); prints the output version."""

    def command() -> None:
        api = _api(tenant)
        version_id = Datasets(api).version_id(dataset_id, version)
        body: dict[str, Any] = {"seed": seed, "stratify_by": stratify_by, "group_by": group_by}
        if ratios:
            try:
                train, validation, test = (float(part) for part in ratios.split(","))
            except ValueError:
                raise CliError("--ratios takes three numbers: train,validation,test") from None
            body["ratios"] = {"train": train, "validation": validation, "test": test}
        if folds:
            body["folds"] = folds
        task = api.post(f"/datasets/{dataset_id}/versions/{version_id}/split", json=body)
        done = _follow(api, dataset_id, task, "splitting")
        output = api.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}")
        parts = ", ".join(f"{name} {count}" for name, count in output["splits"].items())
        console.print(f"version {output['number']} [bold]{output['id']}[/]: {parts}", highlight=False)

    run(command)


@app.command("convert")
def convert(
    dataset_id: str,
    version: str = typer.Argument(..., help="A version id or alias."),
    compression: str = typer.Option("zstd", help="zstd, snappy, gzip or none."),
    row_group_rows: int = typer.Option(65_536, min=1_000, max=1_048_576, help="Rows per Parquet row group."),
    tenant: str = TenantOption,
) -> None:
    """Write a version's JSONL and CSV records as Parquet into a new version (followed with a progress
    bar); prints the output version and each file's new name and size."""

    def command() -> None:
        api = _api(tenant)
        version_id = Datasets(api).version_id(dataset_id, version)
        body = {"compression": compression, "row_group_rows": row_group_rows}
        task = api.post(f"/datasets/{dataset_id}/versions/{version_id}/convert", json=body)
        done = _follow(api, dataset_id, task, "converting")
        output = api.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}")
        console.print(f"version {output['number']} [bold]{output['id']}[/]", highlight=False)
        written = set(done["result"]["files"].values())
        for file in output["files"]:
            if file["name"] in written:
                console.print(f"  {file['name']}  {file['record_count']} records, {file['size_bytes']} bytes")

    run(command)


PipelineOption = typer.Option(
    ...,
    exists=True,
    dir_okay=False,
    help='A JSON (or YAML) file: {"ops": [{"op": "strip_html"}, ...], "seed": 0}.',
)


@app.command("process")
def process(
    dataset_id: str,
    version: str = typer.Argument(..., help="A version id or alias."),
    pipeline: Path = PipelineOption,
    project: str = typer.Option(..., help="The scheduler project whose quota the run uses."),
    cpus: int = typer.Option(1, min=1, max=256, help="Cores for the run (Ray's CPUs)."),
    tenant: str = TenantOption,
) -> None:
    """Run a pipeline of cleaning and dedup operators over a version (followed with a progress bar);
    prints the output version and what each operator dropped and changed."""

    def command() -> None:
        declared = read_document(pipeline)
        api = _api(tenant)
        version_id = Datasets(api).version_id(dataset_id, version)
        body = {**declared, "project_id": project, "resources": {"cpu_cores": cpus}}
        task = api.post(f"/datasets/{dataset_id}/versions/{version_id}/process", json=body)
        done = _follow(api, dataset_id, task, "processing")
        output = api.get(f"/datasets/{dataset_id}/versions/{done['output_version_id']}")
        stats = done["stats"]
        console.print(
            f"version {output['number']} [bold]{output['id']}[/]: {stats['records_out']} of "
            f"{stats['records_in']} records kept",
            highlight=False,
        )
        table = Table("#", "operator", "dropped", "changed", "top reason")
        for op in done["result"]["ops"]:
            reason = next(iter(op["reasons"]), "")
            table.add_row(str(op["position"]), op["op"], str(op["dropped"]), str(op["changed"]), reason)
        console.print(table)

    run(command)


@app.command("diff")
def diff(
    dataset_id: str,
    base: str = typer.Argument(..., help="The older version (id or alias)."),
    version: str = typer.Argument(..., help="The newer version (id or alias)."),
    key: str = typer.Option(None, help="The field identifying a record; default: compare by content."),
    show: int = typer.Option(0, min=0, max=500, help="Also print this many records of each kind of change."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """Diff two versions, record by record (a background task, followed with a progress bar)."""

    def command() -> None:
        api = _api(tenant)
        body = {
            "base_version_id": Datasets(api).version_id(dataset_id, base),
            "version_id": Datasets(api).version_id(dataset_id, version),
            "key": key,
        }
        started = api.post(f"/datasets/{dataset_id}/diffs", json=body)
        _follow(api, dataset_id, started["task"], "diffing")
        view = api.get(f"/datasets/{dataset_id}/diffs/{started['task']['id']}")
        changes: dict[str, list[Any]] = {}
        for change in ("added", "removed", "changed") if show else ():
            page = api.get(
                f"/datasets/{dataset_id}/diffs/{started['task']['id']}/changes",
                params={"change": change, "limit": show},
            )
            changes[change] = page["records"]
        if json_output:
            print_json({**view, "changes": changes})
            return
        summary = view["summary"]
        console.print(
            f"[green]+{summary['added']}[/] [red]-{summary['removed']}[/] [yellow]~{summary['changed']}[/] "
            f"={summary['unchanged']} ({summary['base_records']} -> {summary['records']} records)"
        )
        for file in view["files"]:
            if file["change"] != "unchanged":
                console.print(f"  file {file['name']}: {file['change']}", highlight=False)
        for change, records in changes.items():
            for record in records:
                console.print(
                    f"{change}: {json.dumps(record, ensure_ascii=False)}", highlight=False, soft_wrap=True
                )

    run(command)


@app.command("share")
def share(
    dataset_id: str,
    to: str = typer.Option(..., "--to", help="The tenant to share with (another tenant)."),
    version: str = typer.Option(None, "--version", help="Share this version only (id or alias)."),
    access: str = typer.Option("read", help="read, or read+derive (its versions may name yours parent)."),
    tenant: str = TenantOption,
) -> None:
    """Share a dataset (every published version, or one) with another tenant; prints the grant id.
    (`--tenant` is the tenant you act in, as everywhere; `--to` the one you share with.)"""

    def command() -> None:
        api = _api(tenant)
        body: dict[str, Any] = {"grantee_tenant": to, "access": access}
        if version:
            body["version_id"] = Datasets(api).version_id(dataset_id, version)
        created = api.post(f"/datasets/{dataset_id}/grants", json=body)
        console.print(created["id"])

    run(command)


@app.command("grants")
def grants(
    dataset_id: str,
    revoked: bool = typer.Option(False, "--revoked", help="Also list revoked grants."),
    tenant: str = TenantOption,
    json_output: bool = JsonOption,
) -> None:
    """The tenants a dataset of yours is shared with."""

    def command() -> None:
        api = _api(tenant)
        found = api.get(f"/datasets/{dataset_id}/grants", params={"revoked": revoked})
        if json_output:
            print_json(found)
            return
        table = Table("id", "tenant", "version", "access", "granted by", "revoked")
        for g in found:
            table.add_row(
                g["id"],
                g["grantee_tenant"],
                g["version_id"] or "all",
                g["access"],
                g["granted_by"] or "-",
                g["revoked_at"] or "-",
            )
        console.print(table)

    run(command)


@app.command("revoke")
def revoke(
    dataset_id: str,
    grant_id: str,
    reason: str = typer.Option(None, help="Why (audited)."),
    tenant: str = TenantOption,
) -> None:
    """Revoke a grant: the other tenant's next read of the dataset fails."""

    def command() -> None:
        api = _api(tenant)
        body = {"reason": reason} if reason else None
        api.delete(f"/datasets/{dataset_id}/grants/{grant_id}", json=body)
        console.print(f"grant {grant_id} revoked")

    run(command)


@app.command("shared")
def shared(tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """Datasets other tenants shared with yours."""

    def command() -> None:
        api = _api(tenant)
        found = api.get("/shared-datasets")
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "owner", "secrecy", "versions", "access")
        for item in found:
            scope = ", ".join(f"{g['access']} {g['version_id'] or 'all'}" for g in item["grants"])
            table.add_row(
                item["id"],
                item["name"],
                item["owner_tenant"],
                item["secrecy"],
                str(item["version_count"]),
                scope,
            )
        console.print(table)

    run(command)


connections_app = typer.Typer(
    help="Connections to your own S3 buckets and SQL databases, for imports (secrets are never shown).",
    no_args_is_help=True,
)
app.add_typer(connections_app, name="connections")
SecretOption = typer.Option(
    ...,
    prompt=True,
    hide_input=True,
    envvar="FORGE_CONNECTION_SECRET",
    help="The S3 secret key or the SQL password (asked for unless FORGE_CONNECTION_SECRET is set).",
)


@connections_app.command("add")
def add_connection(
    name: str,
    kind: str = typer.Option(..., "--kind", help="s3, postgres or mysql."),
    endpoint: str = typer.Option(None, help="s3: the endpoint URL."),
    bucket: str = typer.Option(None, help="s3: the bucket."),
    region: str = typer.Option(None, help="s3: the region."),
    access_key: str = typer.Option(None, "--access-key", help="s3: the access key id."),
    host: str = typer.Option(None, help="postgres/mysql: the host."),
    port: int = typer.Option(None, help="postgres/mysql: the port (default per kind)."),
    database: str = typer.Option(None, help="postgres/mysql: the database."),
    username: str = typer.Option(None, help="postgres/mysql: the user."),
    secret: str = SecretOption,
    tenant: str = TenantOption,
) -> None:
    """Register a connection (the service connects with it first); prints its id."""

    def command() -> None:
        api = _api(tenant)
        fields = {
            "endpoint": endpoint,
            "bucket": bucket,
            "region": region,
            "access_key": access_key,
            "host": host,
            "port": port,
            "database": database,
            "username": username,
        }
        body = {
            "name": name,
            "kind": kind,
            "secret": secret,
            **{k: v for k, v in fields.items() if v is not None},
        }
        created = api.post("/connections", json=body)
        console.print(created["id"])

    run(command)


@connections_app.command("list")
def list_connections(tenant: str = TenantOption, json_output: bool = JsonOption) -> None:
    """Your tenant's connections (without their secrets)."""

    def command() -> None:
        api = _api(tenant)
        found = api.get("/connections")
        if json_output:
            print_json(found)
            return
        table = Table("id", "name", "kind", "where", "user / key", "secret", "verified")
        for c in found:
            where = (
                f"{c['endpoint']} {c['bucket']}"
                if c["kind"] == "s3"
                else f"{c['host']}:{c['port']}/{c['database']}"
            )
            table.add_row(
                c["id"],
                c["name"],
                c["kind"],
                where,
                c.get("access_key") or c.get("username") or "-",
                "set" if c["secret_set"] else "-",
                c["verified_at"] or "-",
            )
        console.print(table)

    run(command)


@connections_app.command("rm")
def remove_connection(connection: str, tenant: str = TenantOption) -> None:
    """Remove a connection (by id or name) and its secret."""

    def command() -> None:
        api = _api(tenant)
        found = _connection_id(api, connection)
        api.delete(f"/connections/{found}")
        console.print(f"connection {connection} removed")

    run(command)
