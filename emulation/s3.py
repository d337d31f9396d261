"""An S3-compatible endpoint: moto's server on 127.0.0.1, buckets created at start.

moto keeps objects in memory: stopping the service empties the buckets (ingestion then starts again
with a full copy, since its state lives in the manifests beside the data). To use LocalStack or real
AWS instead, set ``OLIST_S3_ENDPOINT_URL`` (and credentials); this service is then not started.
"""

from __future__ import annotations

import sys

import boto3
import botocore.exceptions
from botocore.config import Config

from emulation.process import ProcessService
from emulation.service import Endpoint, free_port, kept_secret


class S3Service(ProcessService):
    """moto's S3 server as a local process."""

    name = "s3"

    process_name = "moto"

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": f"http://{saved['host']}:{saved['port']}"}

    def credentials(self) -> tuple[str, str]:
        """This deployment's keys: the settings', the secret else generated at first start and kept (0600)."""
        secret = self.settings.s3_secret_access_key or kept_secret(self.state_dir / "secret_access_key")
        return self.settings.s3_access_key_id or "olist", secret

    def client(self):
        ep = self.endpoint()
        key_id, secret = self.credentials()
        return boto3.client(
            "s3", endpoint_url=ep.extra["url"] if ep else None, region_name=self.settings.s3_region,
            aws_access_key_id=key_id, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10),
        )

    def health(self) -> bool:
        try:
            self.client().list_buckets()
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def start(self) -> Endpoint:
        if self.pid() is None:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            port = self.settings.s3_port or free_port(self.settings.bind_host)
            self._save_endpoint(host=self.settings.bind_host, port=port)
            self.process.start([sys.executable, "-m", "moto.server", "-H", self.settings.bind_host, "-p", str(port)])
        self.wait_ready("moto server")
        self.ensure_buckets()
        ep = self.endpoint()
        assert ep is not None
        return ep

    def ensure_buckets(self) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in (self.settings.s3_bucket,):
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

