"""`Idempotency-Key` on creating POSTs: a client that lost the answer sends the request again with the same
key and gets the first outcome instead of a second resource (the SDK sends one per logical request and
keeps it across its retries). A key names one request: the same key with another body is a 422.

    async def create(body: Body, caller: ..., idempotency_key: IdempotencyKey = None) -> View:
        fingerprint = request_fingerprint(body)
"""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Annotated

from fastapi import Header
from pydantic import BaseModel

IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="idempotency-key",
        min_length=1,
        max_length=200,
        pattern=r"^[\x21-\x7e]+$",
        description="The same key with the same request returns the first outcome (200); with another "
        "request, 422.",
    ),
]

_NAMESPACE = uuid.UUID("9b5f4d1e-3f0c-4e7a-9a43-6a1f0c2d7e11")


def request_fingerprint(request: BaseModel) -> str:
    """What a request asks for (defaults filled in, key order irrelevant), to tell a repeat from a reuse."""
    canonical = json.dumps(request.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def keyed_id(tenant: str, actor: str, kind: str, key: str) -> str:
    """A stable id for what `key` creates (a UUID): a repeat of the request names the same resource, so a
    store that refuses a second one with that id (a workflow id, a primary key) makes the create once."""
    return str(uuid.uuid5(_NAMESPACE, f"{tenant}\x00{actor}\x00{kind}\x00{key}"))
