"""Dataset aliases (DS-2): `latest` follows each publish, a user rolls it back to an older version (and the
next publish moves it forward again), names of the users' own point at published versions only, and
every move is one event on the dataset topic, in order per dataset."""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from forge_dataset.tables import Dataset

from tests.services.dataset.conftest import DatasetService, EventLog
from tests.services.dataset.test_dataset_service import (
    ACME,
    GLOBEX,
    create_dataset,
    create_version,
    jsonl,
    rows,
    upload,
)


async def _publish_new(svc: DatasetService, dataset_id: str, n: int) -> str:
    version_id = await create_version(svc, dataset_id)
    assert (await upload(svc, dataset_id, version_id, "train.jsonl", jsonl(rows(n)))).status_code == 200
    published = await svc.http.post(f"/datasets/{dataset_id}/versions/{version_id}/publish", headers=ACME)
    assert published.status_code == 200, published.text
    return version_id


async def _alias(svc: DatasetService, dataset_id: str, name: str, **headers: Any) -> Any:
    return await svc.http.get(f"/datasets/{dataset_id}/aliases/{name}", headers=headers or ACME)


async def _point(svc: DatasetService, dataset_id: str, name: str, version_id: str, **extra: Any) -> Any:
    body = {"version_id": version_id, **extra}
    return await svc.http.put(f"/datasets/{dataset_id}/aliases/{name}", json=body, headers=ACME)


async def test_latest_follows_each_publish_and_rolls_back_to_an_older_version(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    assert (await svc.http.get(f"/datasets/{dataset_id}/aliases", headers=ACME)).json() == []
    v1 = await _publish_new(svc, dataset_id, 3)
    assert (await _alias(svc, dataset_id, "latest")).json()["version_id"] == v1
    v2 = await _publish_new(svc, dataset_id, 4)
    assert (await _alias(svc, dataset_id, "latest")).json()["version_number"] == 2

    back = await _point(svc, dataset_id, "latest", v1, reason="version 2 has mislabelled records")
    assert back.status_code == 200, back.text
    assert (back.json()["version_id"], back.json()["moved_by"]) == (v1, "alice")
    again = await _point(svc, dataset_id, "latest", v1)  # where it is: nothing moves, no event
    assert again.json()["moved_at"] == back.json()["moved_at"]
    v3 = await _publish_new(svc, dataset_id, 5)
    assert (await _alias(svc, dataset_id, "latest")).json()["version_id"] == v3

    moved = [e for e in await events.of(dataset_id, 4) if e.type.startswith("forge.dataset.alias.")]
    assert [e.sequence for e in moved] == [1, 2, 3, 4]
    assert [(e.data["version_id"], e.data["previous_version_id"], e.data["rollback"]) for e in moved] == [
        (v1, None, False),
        (v2, v1, False),
        (v1, v2, True),
        (v3, v1, False),
    ]
    assert moved[2].data["reason"] == "version 2 has mislabelled records"
    assert moved[2].data["actor"] == "alice"


async def test_a_users_alias_names_a_published_version_of_the_same_dataset_only(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    v1 = await _publish_new(svc, dataset_id, 3)
    draft = await create_version(svc, dataset_id)
    other_dataset = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    elsewhere = await _publish_new(svc, other_dataset, 2)

    golden = await _point(svc, dataset_id, "golden", v1)
    to_draft = await _point(svc, dataset_id, "golden", draft)
    to_other_dataset = await _point(svc, dataset_id, "golden", elsewhere)
    bad_name = await _point(svc, dataset_id, "Not An Alias", v1)
    id_shaped = await _point(svc, dataset_id, "abcdef01-2345-4789-8abc-def012345678", v1)
    deprecated = await svc.http.post(f"/datasets/{dataset_id}/versions/{v1}/deprecate", headers=ACME)
    to_deprecated = await _point(svc, dataset_id, "eval", v1)

    assert golden.status_code == 200 and golden.json()["version_number"] == 1
    assert to_draft.status_code == 409 and "published" in to_draft.json()["detail"]
    assert to_other_dataset.status_code == 404
    assert bad_name.status_code == 422
    assert id_shaped.status_code == 422 and "version id" in id_shaped.json()["detail"]
    assert deprecated.status_code == 200 and to_deprecated.status_code == 409
    names = [a["name"] for a in (await svc.http.get(f"/datasets/{dataset_id}/aliases", headers=ACME)).json()]
    assert names == ["golden", "latest"]
    assert (await _alias(svc, dataset_id, "golden")).json()["version_state"] == "deprecated"


async def test_a_users_alias_is_removed_but_latest_is_not(dataset_service: DatasetService) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    v1 = await _publish_new(svc, dataset_id, 3)
    await _point(svc, dataset_id, "golden", v1)

    removed = await svc.http.request(
        "DELETE", f"/datasets/{dataset_id}/aliases/golden", json={"reason": "superseded"}, headers=ACME
    )
    latest = await svc.http.delete(f"/datasets/{dataset_id}/aliases/latest", headers=ACME)
    missing = await svc.http.delete(f"/datasets/{dataset_id}/aliases/golden", headers=ACME)

    assert removed.status_code == 204
    assert latest.status_code == 409
    assert missing.status_code == 404
    assert (await _alias(svc, dataset_id, "golden")).status_code == 404
    assert (await _alias(svc, dataset_id, "latest")).json()["version_id"] == v1


async def test_another_tenants_dataset_has_no_aliases_to_read_or_move(
    dataset_service: DatasetService,
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    v1 = await _publish_new(svc, dataset_id, 3)

    listed = await svc.http.get(f"/datasets/{dataset_id}/aliases", headers=GLOBEX)
    read = await svc.http.get(f"/datasets/{dataset_id}/aliases/latest", headers=GLOBEX)
    moved = await svc.http.put(
        f"/datasets/{dataset_id}/aliases/latest", json={"version_id": v1}, headers=GLOBEX
    )
    removed = await svc.http.delete(f"/datasets/{dataset_id}/aliases/latest", headers=GLOBEX)

    assert [r.status_code for r in (listed, read, moved, removed)] == [404, 404, 404, 404]
    assert (await _alias(svc, dataset_id, "latest")).json()["moved_by"] == "alice"


async def test_concurrent_moves_of_one_alias_apply_one_after_the_other(
    dataset_service: DatasetService, events: EventLog
) -> None:
    svc = dataset_service
    dataset_id = await create_dataset(svc, name=f"ds-{uuid.uuid4().hex[:8]}")
    versions = [await _publish_new(svc, dataset_id, n) for n in (2, 3, 4)]

    answers = await asyncio.gather(*(_point(svc, dataset_id, "pinned", versions[i % 3]) for i in range(12)))

    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    final = (await _alias(svc, dataset_id, "pinned")).json()["version_id"]
    async with svc.runtime.db.session() as session:
        owner = await session.get(Dataset, dataset_id)
    assert owner is not None
    moves_of_dataset = await events.of(dataset_id, owner.sequence)  # its alias events: one per move
    assert [e.sequence for e in moves_of_dataset] == list(range(1, owner.sequence + 1))
    pinned = [e for e in moves_of_dataset if e.data["alias"] == "pinned"]
    # Each move's `previous` is where the one before it left the alias: a chain, ending where it is now.
    assert pinned[0].data["previous_version_id"] is None
    for before, after in itertools.pairwise(pinned):
        assert after.data["previous_version_id"] == before.data["version_id"]
        assert after.data["version_id"] != before.data["version_id"]
    assert pinned[-1].data["version_id"] == final
