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
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from emulation.process import BackgroundProcess
from emulation.service import Endpoint, Service, free_port
from pipeline.settings import Settings


class S3Service(Service):
    """moto's S3 server as a local process."""

    name = "s3"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir)
        self.settings = settings
        self.process = BackgroundProcess(self.state_dir / "moto.pid", self.state_dir / "moto.log")

    @property
    def log_path(self):
        return self.process.log_path


    def endpoint(self) -> Endpoint | None:
        saved = self._saved_endpoint()
        if saved is None:
            return None
        return Endpoint(saved["host"], int(saved["port"]), {"url": f"http://{saved['host']}:{saved['port']}"})

    def pid(self) -> int | None:
        return self.process.pid()

    def client(self):
        ep = self.endpoint()
        return boto3.client(
            "s3", endpoint_url=ep.extra["url"] if ep else None, region_name=self.settings.s3_region,
            aws_access_key_id=self.settings.s3_access_key_id,
            aws_secret_access_key=self.settings.s3_secret_access_key,
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
        self._wait_healthy()
        self.ensure_buckets()
        ep = self.endpoint()
        assert ep is not None
        return ep

    def _wait_healthy(self) -> None:
        @retry(stop=stop_after_delay(self.settings.service_start_timeout), wait=wait_fixed(0.2),
               retry=retry_if_exception_type(AssertionError), reraise=True)
        def ping() -> None:
            assert self.process.pid() is not None, "exited"
            assert self.health(), "not answering"

        try:
            ping()
        except AssertionError as exc:
            raise self.fail(f"moto server {exc} on {self.endpoint()}") from None

    def ensure_buckets(self) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in (self.settings.s3_bucket,):
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)

    def stop(self) -> None:
        self.process.stop()
