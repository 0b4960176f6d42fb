"""MinIO: the S3 API with multipart upload and ranged reads, through aioboto3."""

from __future__ import annotations

import hashlib
import os

from forge_kit.objects import s3_client
from forge_kit.stack_env import StackSettings

PART_BYTES = 5 * 1024 * 1024  # S3's minimum size for every part but the last


async def test_multipart_upload_then_ranged_get(stack_settings: StackSettings, s3_bucket: str) -> None:
    parts = [os.urandom(PART_BYTES), os.urandom(PART_BYTES), os.urandom(1234)]
    whole = b"".join(parts)
    async with s3_client(stack_settings) as s3:
        upload = await s3.create_multipart_upload(Bucket=s3_bucket, Key="blob.bin")
        etags = []
        for number, body in enumerate(parts, start=1):
            part = await s3.upload_part(
                Bucket=s3_bucket, Key="blob.bin", UploadId=upload["UploadId"], PartNumber=number, Body=body
            )
            etags.append({"ETag": part["ETag"], "PartNumber": number})
        await s3.complete_multipart_upload(
            Bucket=s3_bucket, Key="blob.bin", UploadId=upload["UploadId"], MultipartUpload={"Parts": etags}
        )

        head = await s3.head_object(Bucket=s3_bucket, Key="blob.bin")
        start, end = PART_BYTES - 10, PART_BYTES + 9  # spans the boundary of parts 1 and 2
        ranged = await s3.get_object(Bucket=s3_bucket, Key="blob.bin", Range=f"bytes={start}-{end}")
        chunk = await ranged["Body"].read()
        full = await s3.get_object(Bucket=s3_bucket, Key="blob.bin")
        downloaded = await full["Body"].read()

    assert head["ContentLength"] == len(whole)
    assert head["ETag"].strip('"').endswith("-3")  # a real multipart object of three parts
    assert chunk == whole[start : end + 1]
    assert hashlib.sha256(downloaded).digest() == hashlib.sha256(whole).digest()
