"""Model areas: the URIs a tenant may register as model files (read later with the services' own
credentials) are inside its own areas only, whatever tricks the path plays."""

from __future__ import annotations

import pytest
from forge_kit.errors import Unprocessable
from forge_kit.objects import DEFAULT_MODEL_AREAS, check_tenant_area


@pytest.mark.parametrize(
    "uri",
    [
        "s3://forge-models/tenants/acme/base/tiny-llama/",
        "s3://forge-models/tenants/acme/imported/model.safetensors",
        "s3://forge-training/acme/01956a00/merged/",
    ],
)
def test_a_uri_in_the_tenants_own_area_is_accepted(uri: str) -> None:
    assert check_tenant_area(uri, "acme", DEFAULT_MODEL_AREAS) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "s3://forge-models/tenants/globex/base/",  # another tenant's area
        "s3://forge-training/globex/acme/merged/",  # our id deeper in another tenant's path
        "s3://forge-models/tenants/acmecorp/base/",  # a tenant id that starts like ours
        "s3://forge-models/tenants/acme/../globex/base/",  # `..` out of the area
        "s3://forge-models/tenants/acme/./base/",
        "s3://forge-models/tenants/acme//base/",
        "s3://forge-models/tenants/acme/a\\..\\b/",
        "s3://forge-models/tenants/acme/",  # the area itself
        "s3://forge-dataset/tenants/acme/blobs/",  # not a model area
        "s3://forge-models/acme/base/",
        "https://forge-models/tenants/acme/base/",
        "tenants/acme/base/",
    ],
)
def test_a_uri_outside_the_tenants_areas_is_a_422_naming_them(uri: str) -> None:
    with pytest.raises(Unprocessable) as refused:
        check_tenant_area(uri, "acme", DEFAULT_MODEL_AREAS, what="artifact_uri")
    assert refused.value.detail.startswith(f"artifact_uri: {uri} is not in one of tenant acme's model areas")
    assert "s3://forge-models/tenants/acme/" in refused.value.detail


def test_an_area_may_give_each_tenant_a_bucket_or_glob_its_bucket() -> None:
    per_tenant = ["s3://models-{tenant}/"]
    assert check_tenant_area("s3://models-acme/x/", "acme", per_tenant)
    with pytest.raises(Unprocessable):
        check_tenant_area("s3://models-globex/x/", "acme", per_tenant)
    globbed = ["s3://test-*/{tenant}/"]
    assert check_tenant_area("s3://test-1234/acme/x/", "acme", globbed)
    with pytest.raises(Unprocessable):
        check_tenant_area("s3://prod/acme/x/", "acme", globbed)
