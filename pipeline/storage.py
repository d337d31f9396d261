"""One S3 location for every client: boto3 (through ``localstack-client`` on LocalStack), Arrow's S3 filesystem,
fsspec (DuckDB/dbt).

The endpoint is ``OLIST_S3_ENDPOINT_URL`` when set (MinIO, real AWS), else the local emulator's (LocalStack or
moto); region, bucket and credentials come from the same settings (the local server's secret key is made
per deployment; unset keys on another endpoint leave it to AWS's own credential chain).
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow.fs as pafs

from emulation.resources import engine
from pipeline.settings import Settings


@dataclass(frozen=True)
class S3Location:
    endpoint_url: str | None
    region: str
    bucket: str
    access_key_id: str | None
    secret_access_key: str | None
    emulator: str | None = None  # localstack | moto for the local emulator, None elsewhere

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
        from emulation.s3 import s3_client

        return s3_client(self.endpoint_url, self.region, self.access_key_id, self.secret_access_key, self.emulator)


def s3_location(settings: Settings) -> S3Location:
    """The configured endpoint, or the running local one (an error if it is not running)."""

    service = engine("s3", settings)
    url, emulator = settings.s3_endpoint_url, None
    if url is None:
        ep = service.endpoint()
        if ep is None or service.pid() is None:
            from emulation.service import ServiceError

            raise ServiceError("s3 is not running: start it with `olist up s3` (or set OLIST_S3_ENDPOINT_URL)")
        url, emulator = ep.extra["url"], ep.extra["emulator"]
    # the service's keys; elsewhere a key pair or nothing: botocore and Arrow then take AWS's own credential chain
    key_id, secret = service.credentials()
    return S3Location(url, settings.s3_region, settings.s3_bucket, key_id or None, secret or None, emulator)
