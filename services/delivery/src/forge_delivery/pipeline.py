"""Running an order: created → packaging → packaged → publishing → delivered, or failed.

`run_order` drives an order from whatever state it is in, so a retried activity or a resumed order
continues where it stopped (every step rewrites the same bytes to the same places). The bundle's
manifest and checksums are written last, and `forge.delivery.model.delivered.v1` is emitted only once
every file is in place; a failed or cancelled order removes the objects (and staging folder) it wrote.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aioboto3
from botocore.exceptions import BotoCoreError, ClientError
from forge_contracts.activities.delivery import InferenceConfig, ModelCardInfo
from forge_contracts.events.delivery import BundleFile
from forge_contracts.state_machines import IllegalTransition
from forge_kit import observability
from forge_kit.db import Database
from forge_kit.errors import ForgeError

from forge_delivery import service, storage
from forge_delivery.domain import (
    CHECKSUMS,
    INFERENCE_CONFIG,
    MACHINE,
    MANIFEST,
    README,
    WEIGHTS_INDEX,
    MissingSourceFiles,
    ModelIdentity,
    bundle_file,
    check_weights_index,
    parse_s3_uri,
    render_checksums,
    render_inference_config,
    render_manifest,
    render_model_card,
    select_source_files,
)
from forge_delivery.registry import Registry
from forge_delivery.service import OrderInterrupted
from forge_delivery.settings import DeliverySettings
from forge_delivery.tables import DeliveryOrder

ProgressCallback = Callable[[dict[str, object]], None]


@dataclass
class OrderContext:
    """What running an order needs: the database, the settings, an S3 session and the registry."""

    db: Database
    settings: DeliverySettings
    s3_session: aioboto3.Session
    registry: Registry

    def s3(self) -> Any:
        """An async S3 client context manager."""
        return storage.s3_client(self.settings, self.s3_session)


def describe(error: BaseException) -> str:
    """An error message for the user (the order's `error`)."""
    if isinstance(error, MissingSourceFiles):
        return str(error)
    if isinstance(error, ForgeError):
        return error.detail
    if isinstance(error, ClientError):
        details = error.response.get("Error", {})
        operation = getattr(error, "operation_name", "request")
        return f"object storage refused {operation}: {details.get('Code', '?')} {details.get('Message', '')}"
    if isinstance(error, BotoCoreError):
        return f"object storage unreachable: {error}"
    return f"{type(error).__name__}: {error}"


def _identity(order: DeliveryOrder) -> ModelIdentity:
    return ModelIdentity(
        order_id=order.id,
        tenant_id=order.tenant_id,
        model_id=order.model_id,
        model_name=order.model_name,
        model_version=order.model_version,
        model_version_id=order.model_version_id,
        format=order.format,
    )


def shared_folder(settings: DeliverySettings, order: DeliveryOrder) -> Path | None:
    if not order.mirror or settings.delivery_shared_dir is None:
        return None
    return settings.delivery_shared_dir / order.tenant_id / order.model_name / str(order.model_version)


class _Progress:
    """Counts files and bytes of one stage and stores them on the order (checking it is still wanted)."""

    def __init__(
        self,
        ctx: OrderContext,
        order_id: str,
        state: str,
        *,
        files_total: int,
        bytes_total: int,
        report: ProgressCallback | None,
    ) -> None:
        self.ctx, self.order_id, self.state, self.report = ctx, order_id, state, report
        self.files_total, self.bytes_total = files_total, bytes_total
        self.files_done = self.bytes_done = 0
        self.written: list[str] = []

    async def save(self) -> None:
        await service.record_progress(
            self.ctx.db,
            self.order_id,
            state=self.state,
            files_done=self.files_done,
            files_total=self.files_total,
            bytes_done=self.bytes_done,
            bytes_total=self.bytes_total,
            written_keys=self.written if self.state == "packaging" else None,
        )
        if self.report is not None:
            self.report(
                {
                    "stage": self.state,
                    "files_done": self.files_done,
                    "files_total": self.files_total,
                    "bytes_done": self.bytes_done,
                    "bytes_total": self.bytes_total,
                }
            )

    async def writing(self, key: str) -> None:
        """Before writing `key`: remember it (for cleanup) and check the order was not cancelled."""
        self.written.append(key)
        await self.save()

    async def done(self, file: BundleFile) -> None:
        self.files_done += 1
        self.bytes_done += file.size_bytes
        await self.save()


async def _pack(ctx: OrderContext, order: DeliveryOrder, report: ProgressCallback | None) -> list[BundleFile]:
    source = parse_s3_uri(order.source_uri)
    bundle = parse_s3_uri(order.bundle_uri)
    identity = _identity(order)
    card = ModelCardInfo.model_validate(order.card)
    inference = InferenceConfig.model_validate(order.inference)
    async with ctx.s3() as s3:
        available = await storage.list_files(s3, source)
        names = select_source_files(source.uri, available)
        if WEIGHTS_INDEX in names:
            index = json.loads(await storage.read_object(s3, source, WEIGHTS_INDEX))
            check_weights_index(index, names, source.uri)
        weights = [name for name in names if name.endswith(".safetensors")]
        generated = {
            README: render_model_card(identity, card, inference, weights).encode(),
            INFERENCE_CONFIG: render_inference_config(identity, inference, weights).encode(),
        }
        progress = _Progress(
            ctx,
            order.id,
            "packaging",
            files_total=len(names) + len(generated) + 2,
            bytes_total=sum(available[name] for name in names) + sum(map(len, generated.values())),
            report=report,
        )
        await progress.save()
        await storage.ensure_bucket(s3, bundle.bucket)
        files: list[BundleFile] = []
        for name in names:
            await progress.writing(bundle.key(name))
            await storage.copy_object(s3, source, bundle, name)
            file = await storage.hash_object(s3, bundle, name)
            if file.size_bytes != available[name]:
                raise ValueError(
                    f"{name} changed while it was copied ({available[name]} -> {file.size_bytes} bytes)"
                )
            files.append(file)
            await progress.done(file)

        async def write(name: str, data: bytes, content_type: str) -> None:
            await progress.writing(bundle.key(name))
            await storage.put_object(s3, bundle, name, data, content_type)
            files.append(bundle_file(name, data))
            if name in (MANIFEST, CHECKSUMS):  # their size is known only now
                progress.bytes_total += len(data)
            await progress.done(files[-1])

        await write(README, generated[README], "text/markdown; charset=utf-8")
        await write(INFERENCE_CONFIG, generated[INFERENCE_CONFIG], "application/yaml")
        # Last: the manifest (every file so far), then the checksums (every file but itself).
        await write(
            MANIFEST, render_manifest(identity, files, datetime.now(UTC)).encode(), "application/json"
        )
        await write(CHECKSUMS, render_checksums(files).encode(), "text/plain; charset=utf-8")
    return files


async def _publish(ctx: OrderContext, order: DeliveryOrder, report: ProgressCallback | None) -> DeliveryOrder:
    final = shared_folder(ctx.settings, order)
    if final is None:
        return await service.deliver(ctx.db, order.id, shared_path=None)
    files = [BundleFile.model_validate(f) for f in order.files]
    bundle = parse_s3_uri(order.bundle_uri)
    staging = storage.staging_dir(final, order.id)
    progress = _Progress(
        ctx,
        order.id,
        "publishing",
        files_total=len(files),
        bytes_total=sum(f.size_bytes for f in files),
        report=report,
    )
    await asyncio.to_thread(storage.remove_tree, staging)
    async with ctx.s3() as s3:
        for file in files:
            await progress.save()
            await storage.download_verified(s3, bundle, file, staging)
            await progress.done(file)

    async def put_in_place() -> None:
        await asyncio.to_thread(storage.swap_into_place, staging, final, order.id)

    return await service.deliver(ctx.db, order.id, shared_path=str(final), before_commit=put_in_place)


async def _clean_up(ctx: OrderContext, order_id: str) -> None:
    """Remove what a failed or cancelled order wrote; a delivered or live order is left alone."""
    order = await service.order_by_id(ctx.db, order_id)
    if order.state not in ("failed", "cancelled"):
        return
    log = observability.logger(component="delivery", order_id=order_id)
    try:
        if order.written_keys:
            async with ctx.s3() as s3:
                await storage.delete_keys(s3, parse_s3_uri(order.bundle_uri).bucket, order.written_keys)
        if (final := shared_folder(ctx.settings, order)) is not None:
            await asyncio.to_thread(storage.remove_tree, storage.staging_dir(final, order.id))
    except Exception as error:
        # The order's outcome stands; leftovers have no manifest, so nothing can mistake them for a bundle.
        log.exception("delivery.cleanup_failed", error=repr(error))


async def _still_deliverable(ctx: OrderContext, order: DeliveryOrder) -> None:
    """Ask the registry again before packing: the version may have been deprecated or archived since the
    order was created (NotDeliverable or NotFound then fail the order with the registry's reason)."""
    version = await ctx.registry.deliverable(order.tenant_id, order.model_version_id, order.created_by)
    if version.artifact_uri != order.source_uri:
        raise ValueError(
            f"model version {order.model_version_id}'s artifact is now {version.artifact_uri}, "
            f"not {order.source_uri} as when the order was created"
        )


async def run_order(
    ctx: OrderContext, order_id: str, report: ProgressCallback | None = None
) -> DeliveryOrder:
    """Drive the order to a terminal state (or leave it to whoever moved it on meanwhile)."""
    log = observability.logger(component="delivery", order_id=order_id)
    try:
        order = await service.order_by_id(ctx.db, order_id)
        if order.state == "created":
            await _still_deliverable(ctx, order)
            order = await service.start_packaging(ctx.db, order_id)
        if order.state == "packaging":
            files = await _pack(ctx, order, report)
            order = await service.finish_packaging(ctx.db, order_id, files)
        if order.state == "packaged":
            order = await service.start_publishing(ctx.db, order_id)
        if order.state == "publishing":
            order = await _publish(ctx, order, report)
        return order
    except (OrderInterrupted, IllegalTransition) as interrupted:
        # Cancelled meanwhile, or another runner moved the order on: not a failure of this order.
        log.info("delivery.interrupted", reason=str(interrupted))
        await _clean_up(ctx, order_id)
        return await service.order_by_id(ctx.db, order_id)
    except Exception as error:
        log.exception("delivery.failed", error=repr(error))
        order = await service.fail_order(ctx.db, order_id, describe(error))
        await _clean_up(ctx, order_id)
        return order


class OrderRunner:
    """Runs orders in the background of the HTTP service, one task per order."""

    def __init__(self, ctx: OrderContext) -> None:
        self.ctx = ctx
        self._tasks: dict[str, asyncio.Task[DeliveryOrder]] = {}

    def launch(self, order_id: str) -> None:
        if (task := self._tasks.get(order_id)) is not None and not task.done():
            return
        task = asyncio.create_task(run_order(self.ctx, order_id), name=f"delivery-order-{order_id}")
        self._tasks[order_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(order_id, None))

    async def resume_stale(self) -> list[str]:
        """Orders whose runner died with an earlier process continue here."""
        stale = await service.stale_orders(self.ctx.db, self.ctx.settings.resume_stale_after_s)
        for order_id in stale:
            self.launch(order_id)
        return stale

    async def stop(self) -> None:
        """Stop running orders; they stay in their state and are resumed by a later start."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def is_finished(order: DeliveryOrder) -> bool:
    return MACHINE.is_terminal(order.state)
