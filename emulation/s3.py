"""An S3-compatible endpoint on 127.0.0.1, buckets created at start: LocalStack or moto's server.

``OLIST_S3_EMULATOR`` chooses: ``localstack`` (in a venv of its own made from a Python 3.13 interpreter, the only
one ``localstack-core`` runs on), ``moto``, or ``auto`` (the default: LocalStack where a 3.13 interpreter is found,
else moto, and the start says why). Both keep objects in memory: stopping the service empties the buckets
(ingestion then copies everything again, since its state lives in the manifests beside the data). To use MinIO or
real AWS instead, set ``OLIST_S3_ENDPOINT_URL`` (and credentials); this service is then not started.
"""

from __future__ import annotations

import functools
import sys
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import boto3
import botocore.exceptions
from botocore.config import Config

from emulation.process import ProcessService
from emulation.service import Endpoint, ServiceError, free_port, kept_secret
from emulation.venvs import ensure_venv, find_python
from pipeline.settings import PROJECT_ROOT, Settings, cache_root

LOCALSTACK_REQUIREMENTS = PROJECT_ROOT / "requirements" / "localstack.txt"
LOCALSTACK_PYTHON = (3, 13)


@dataclass(frozen=True)
class Emulator:
    """Which S3 emulator runs, and why (a fallback to moto names what was missing)."""

    name: str  # localstack | moto
    why: str
    python: str | None = None  # the interpreter LocalStack's venv is made from


@functools.lru_cache(maxsize=8)
def _python313(configured: Path | None) -> tuple[str | None, str]:
    return find_python(LOCALSTACK_PYTHON, configured)


def choose_emulator(settings: Settings) -> Emulator:
    """The emulator the settings ask for; ``auto`` falls back to moto, with the reason, without a 3.13 Python."""
    if settings.s3_emulator == "moto":
        return Emulator("moto", "OLIST_S3_EMULATOR=moto")
    python, missing = _python313(settings.localstack_python)
    if python is not None:
        return Emulator("localstack", f"OLIST_S3_EMULATOR={settings.s3_emulator}; Python 3.13 at {python}", python)
    if settings.s3_emulator == "localstack":
        raise ServiceError(f"s3: OLIST_S3_EMULATOR=localstack needs Python 3.13, and there is {missing}: "
                           "set OLIST_LOCALSTACK_PYTHON to one")
    return Emulator("moto", f"fell back to moto: LocalStack needs Python 3.13, and there is {missing} "
                            "(set OLIST_LOCALSTACK_PYTHON to one)")


def localstack_environment(host: str, port: int, root: Path) -> dict[str, str]:
    """LocalStack as one loopback S3 endpoint that calls nobody."""
    return {
        "SERVICES": "s3",
        "GATEWAY_LISTEN": f"{host}:{port}",
        "GATEWAY_SERVER": "hypercorn",  # its default (twisted) binds every interface whatever GATEWAY_LISTEN says
        "DNS_ADDRESS": "0",  # no DNS server (it would listen on port 53 of every interface)
        "OVERRIDE_IN_DOCKER": "0", "FILESYSTEM_ROOT": str(root), "TMPDIR": str(root / "tmp"),
        "DISABLE_EVENTS": "1", "SKIP_SSL_CERT_DOWNLOAD": "1",  # no analytics, no certificate download
    }


def s3_client(endpoint_url: str | None, region: str, key_id: str | None, secret: str | None,
              emulator: str | None = None, config: Config | None = None):
    """A boto3 S3 client; on LocalStack its session comes from ``localstack-client`` (pointed at our endpoint)."""
    if emulator == "localstack" and endpoint_url:
        from localstack_client.session import Session

        session = Session(aws_access_key_id=key_id, aws_secret_access_key=secret, region_name=region,
                          localstack_host=urllib.parse.urlsplit(endpoint_url).netloc)
        return session.client("s3", config=config)
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, aws_access_key_id=key_id,
                        aws_secret_access_key=secret, config=config)


class S3Service(ProcessService):
    """The local S3 emulator as a process of ours."""

    name = "s3"

    process_name = "server"

    def configured(self) -> Endpoint | None:
        url = self.settings.s3_endpoint_url
        if not url:
            return None
        parsed = urllib.parse.urlsplit(url)
        return Endpoint(parsed.hostname or "", parsed.port or (443 if parsed.scheme == "https" else 80),
                        {"url": url, "emulator": "external", "why": "OLIST_S3_ENDPOINT_URL"})

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": f"http://{saved['host']}:{saved['port']}", "emulator": saved.get("emulator", "moto"),
                "why": saved.get("why", "")}

    @functools.cached_property
    def emulator(self) -> Emulator:
        """The running emulator (what its last start recorded), else the one the settings choose."""
        if self.external:
            return Emulator("external", "OLIST_S3_ENDPOINT_URL")
        ep = self.endpoint()
        if ep is not None and self.pid() is not None:
            return Emulator(ep.extra["emulator"], ep.extra["why"])
        return choose_emulator(self.settings)

    def detail(self) -> str:
        ep = self.endpoint()
        return f"{ep.extra['emulator']} ({ep.extra['why']})" if ep and self.pid() else ""

    def credentials(self) -> tuple[str, str]:
        """This deployment's keys: the settings', the secret else generated at first start and kept (0600). On
        another endpoint a key pair or nothing ("", ""): unset keys leave it to AWS's own credential chain (every
        client, ``pipeline.storage`` too, takes them from here)."""
        if self.external:
            key_id, secret = self.settings.s3_access_key_id, self.settings.s3_secret_access_key
            return (key_id, secret) if key_id is not None and secret is not None else ("", "")
        secret = self.settings.s3_secret_access_key or kept_secret(self.state_dir / "secret_access_key")
        return self.settings.s3_access_key_id or "olist", secret

    def client(self):
        ep = self.endpoint()
        key_id, secret = self.credentials()
        return s3_client(ep.extra["url"] if ep else None, self.settings.s3_region, key_id or None, secret or None,
                         ep.extra["emulator"] if ep else None,
                         config=Config(retries={"max_attempts": 2}, connect_timeout=2, read_timeout=10))

    def health(self) -> bool:
        try:
            if self.external:  # the deployment's bucket answers (listing every bucket may not be allowed)
                self.client().head_bucket(Bucket=self.settings.s3_bucket)
            else:
                self.client().list_buckets()
            return True
        except (botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError):
            return False

    def start(self) -> Endpoint:
        if self.pid() is None:
            self.__dict__.pop("emulator", None)  # choose afresh: the settings may have changed since
            emulator, host = self.emulator, self.settings.bind_host
            self.state_dir.mkdir(parents=True, exist_ok=True)
            port = self.settings.s3_port or free_port(host)
            if emulator.name == "localstack":
                python = ensure_venv("localstack", LOCALSTACK_REQUIREMENTS, base=cache_root(), python=emulator.python,
                                     check="import localstack.runtime.main")
                root = self.state_dir / "localstack"
                (root / "tmp").mkdir(parents=True, exist_ok=True)
                cmd, env = [str(python), "-m", "localstack.runtime.main"], localstack_environment(host, port, root)
            else:
                cmd, env = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)], None
            self._save_endpoint(host=host, port=port, emulator=emulator.name, why=emulator.why)
            self.process.start(cmd, env=env)
        self.wait_ready(f"{self.emulator.name} server")
        self.ensure_buckets()
        ep = self.endpoint()
        assert ep is not None
        return ep

    def stop(self) -> None:
        self.process.stop(timeout=10)

    def ensure_buckets(self) -> None:
        client = self.client()
        existing = {b["Name"] for b in client.list_buckets().get("Buckets", [])}
        for bucket in (self.settings.s3_bucket,):
            if bucket not in existing:
                client.create_bucket(Bucket=bucket)
