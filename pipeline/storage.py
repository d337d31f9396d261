"""One S3 location for every client: boto3, Arrow's S3 filesystem, fsspec (DuckDB/dbt).

The endpoint is ``OLIST_S3_ENDPOINT_URL`` when set (LocalStack, MinIO, real AWS), else the local moto
server's; region, bucket and credentials come from the same settings (the local server's secret key is made
per deployment; unset keys on another endpoint leave it to AWS's own credential chain).
"""

from __future__ import annotations

from dataclasses import dataclass

import boto3
import pyarrow.fs as pafs

from pipeline.settings import Settings


@dataclass(frozen=True)
class S3Location:
    endpoint_url: str | None
    region: str
    bucket: str
    access_key_id: str | None
    secret_access_key: str | None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def path(self, key: str) -> str:
        """Bucket-relative path as Arrow's filesystem wants it (``bucket/key``)."""
        return f"{self.bucket}/{key.lstrip('/')}"

    def arrow_fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(
            access_key=self.access_key_id, secret_key=self.secret_access_key, region=self.region,
            endpoint_override=self.endpoint_url, allow_bucket_creation=False, connect_timeout=5, request_timeout=30,
        )

    def boto_client(self):
        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name=self.region,
                            aws_access_key_id=self.access_key_id, aws_secret_access_key=self.secret_access_key)


def s3_location(settings: Settings) -> S3Location:
    """The configured endpoint, or the running local one (an error if it is not running)."""
    url = settings.s3_endpoint_url
    key_id, secret = settings.s3_access_key_id, settings.s3_secret_access_key
    if url is None:
        from emulation.s3 import S3Service

        service = S3Service(settings)
        ep = service.endpoint()
        if ep is None or service.pid() is None:
            from emulation.service import ServiceError

            raise ServiceError("s3 is not running: start it with `olist up s3` (or set OLIST_S3_ENDPOINT_URL)")
        url, (key_id, secret) = ep.extra["url"], service.credentials()
    elif key_id is None or secret is None:
        key_id = secret = None  # a key pair or nothing: botocore and Arrow then take AWS's own credential chain
    return S3Location(url, settings.s3_region, settings.s3_bucket, key_id, secret)
