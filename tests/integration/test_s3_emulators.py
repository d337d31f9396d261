"""Both local S3 emulators, as the lanes use them: loopback only, the bucket made, conditional writes refused."""

from __future__ import annotations

import uuid

import botocore.exceptions
import psutil
import pytest

pytestmark = pytest.mark.integration


def test_each_emulator_listens_on_loopback_only(s3, other_s3):
    for service in (s3, *([other_s3.service] if other_s3 else [])):
        root = psutil.Process(service.pid())
        sockets = [c.laddr for p in (root, *root.children(recursive=True)) for c in p.net_connections("tcp")
                   if c.status == psutil.CONN_LISTEN]
        assert sockets and all(addr.ip == "127.0.0.1" for addr in sockets), (service.emulator.name, sockets)


def test_the_bucket_exists_and_a_second_create_only_write_is_refused(s3_location):
    client, key = s3_location.boto_client(), f"probe/{uuid.uuid4().hex}"
    client.put_object(Bucket=s3_location.bucket, Key=key, Body=b"first", IfNoneMatch="*")
    with pytest.raises(botocore.exceptions.ClientError) as err:
        client.put_object(Bucket=s3_location.bucket, Key=key, Body=b"second", IfNoneMatch="*")
    assert err.value.response["Error"]["Code"] == "PreconditionFailed"
    assert client.get_object(Bucket=s3_location.bucket, Key=key)["Body"].read() == b"first"

