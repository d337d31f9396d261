"""Kafka Connect as a distributed worker on 127.0.0.1 (one, or the rehearsal's two: ``connect-<n>``), with the
Debezium PostgreSQL connector on its plugin.path; a deployment's workers are only used (``OLIST_CONNECT_URLS``).

The workers keep connector configs, offsets and status in three Kafka topics they create (with the deployment's
replication factor), so connectors survive a worker restart. It talks to Kafka as its own SCRAM principal
(``olist_connect``). Its REST API asks for basic authentication (Kafka's BasicAuthSecurityRestExtension, one
user in a 0600 file) and is reached with the standard library's urllib, with proxies disabled (loopback).
"""

from __future__ import annotations

import base64
import functools
import json
import shutil
import string
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from emulation.jvm import JvmArtifacts, JvmService, java_command, write_log4j2
from emulation.resources import engine
from emulation.service import Endpoint, ServiceError, kept_secret, write_private
from pipeline.settings import Settings

MAIN = "org.apache.kafka.connect.cli.ConnectDistributed"
DEBEZIUM_POSTGRES = "io.debezium.connector.postgresql.PostgresConnector"
GROUP_ID = "olist-connect"
TOPICS = {"config": f"{GROUP_ID}-configs", "offset": f"{GROUP_ID}-offsets", "status": f"{GROUP_ID}-status"}
JSON_CONVERTER = "org.apache.kafka.connect.json.JsonConverter"

WORKER_CONF = {
    "group.id": GROUP_ID,
    "key.converter": JSON_CONVERTER,
    "value.converter": JSON_CONVERTER,
    "key.converter.schemas.enable": "false",
    "value.converter.schemas.enable": "false",
    "config.storage.topic": TOPICS["config"],
    "offset.storage.topic": TOPICS["offset"],
    "status.storage.topic": TOPICS["status"],
    "offset.storage.partitions": "1",
    "status.storage.partitions": "1",
    "plugin.discovery": "service_load",
    "topic.creation.enable": "true",
    # Connector configs reference their secrets (${file:PATH:KEY}); the worker reads them when a task starts, so
    # neither the REST API nor the config topic ever holds one.
    "config.providers": "file",
    "config.providers.file.class": "org.apache.kafka.common.config.provider.FileConfigProvider",
    "rest.extension.classes": "org.apache.kafka.connect.rest.basic.auth.extension.BasicAuthSecurityRestExtension",
}
# The worker's three topics take the deployment's replication factor (settings.kafka.replication_factor).
INTERNAL_REPLICATION = ("config.storage.replication.factor", "offset.storage.replication.factor",
                        "status.storage.replication.factor")
REST_LOGIN_MODULE = "org.apache.kafka.connect.rest.basic.auth.extension.PropertyFileLoginModule"
LOG_LEVELS = {"org.apache.kafka": "WARN", "org.reflections": "ERROR", "org.eclipse.jetty": "WARN",
              "org.glassfish": "WARN", "org.apache.kafka.connect.runtime.Connect": "INFO",
              "org.apache.kafka.connect.runtime.WorkerSourceTask": "INFO", "io.debezium": "INFO"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def secrets_dir(settings: Settings) -> Path:
    """The one folder the worker's file config provider may read: connector secrets, one properties file each
    (made, 0700, on first use: the worker refuses to start without it). A deployment's workers name theirs."""
    if settings.connect.urls and settings.connect.secrets_dir is None:
        raise ServiceError("connect: OLIST_CONNECT_SECRETS_DIR is not set; with OLIST_CONNECT_URLS the CDC password "
                           "goes to the folder the workers' file config provider reads, which only the deployment "
                           "knows")
    folder = settings.connect.secrets_dir or settings.state_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    return folder


class _Retry(Exception):
    """A REST answer worth retrying (rebalance in progress, worker not reachable yet)."""


def load_connector_config(path: Path, **values: object) -> dict[str, Any]:
    """A connector config from a JSON file whose string values hold ``${name}`` placeholders, filled in.

    Connect's own ``${provider:path:key}`` references are left alone; any other unknown placeholder fails.
    """
    raw = json.loads(path.read_text())
    text = {k: str(v) for k, v in values.items()}

    def fill(value: Any) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value
        try:
            return string.Template(value).substitute(text)
        except KeyError as exc:
            raise ServiceError(f"connect: {path.name} needs a value for ${{{exc.args[0]}}}") from exc
        except ValueError:  # a ${provider:path:key} reference for the worker to resolve
            return value

    return {k: fill(v) for k, v in raw.items()}


class ConnectService(JvmService):
    """A Kafka Connect distributed worker; ``register`` and friends wrap its REST API."""

    name = "connect"
    process_name = "connect"
    config_name = "worker.properties"

    def __init__(self, settings: Settings, worker: int | None = None) -> None:
        if worker is not None:  # one of a cluster's workers (state in connect-<n>; its own REST port)
            self.name = f"connect-{worker}"
        self.worker = worker
        super().__init__(settings)
        self.kafka = engine("kafka", settings)

    # -- Service interface ---------------------------------------------------------------------
    def configured(self) -> Endpoint | None:
        if not self.settings.connect.urls:
            return None
        urls = [u.strip().rstrip("/") for u in self.settings.connect.urls.split(",") if u.strip()]
        parsed = urllib.parse.urlsplit(urls[0])
        return Endpoint(parsed.hostname or "", parsed.port or 8083, {"url": urls[0], "urls": ",".join(urls)})

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": f"http://{saved['host']}:{saved['port']}", "bootstrap_servers": saved["bootstrap"]}

    @property
    def url(self) -> str:
        """The REST URL (of a cluster: the first; a call that cannot reach it tries the others)."""
        return self.urls[0]

    @property
    def urls(self) -> list[str]:
        ep = self.endpoint()
        if ep is None:
            raise ServiceError("connect: not started yet (run `olist up connect`)")
        return ep.extra.get("urls", ep.extra["url"]).split(",")

    def where(self) -> str:
        return self.url

    def health(self) -> bool:
        """GET /health says the worker finished starting (its internal topics exist, it joined its group;
        the REST port answers before that) and GET /connector-plugins lists the Debezium connector."""
        if self.endpoint() is None:
            return False
        try:
            code, body = self._call("GET", "/health", timeout=3)
        except (OSError, ValueError):
            return False
        return code == 200 and (body or {}).get("status") == "healthy" and DEBEZIUM_POSTGRES in self._plugin_classes()

    def preflight(self) -> None:
        if not self.kafka.health():
            ep = self.kafka.endpoint()
            raise self.fail(f"Kafka is not answering{f' at {ep.address}' if ep else ''}; start it first "
                            "(`olist up kafka`)")

    def check_credentials(self) -> None:
        self.rest_credentials()

    def rest_credentials(self) -> tuple[str, str]:
        """(user, password) of the REST API: the settings', else generated at first start and kept (0600)."""
        conf = self.settings.connect
        if conf.rest_password is None and self.external:
            raise ServiceError("connect: OLIST_CONNECT_REST_PASSWORD is not set; with OLIST_CONNECT_URLS the REST "
                               "password comes from the settings")
        return conf.rest_user, conf.rest_password or kept_secret(self.state_dir / "rest" / "password")

    def command(self, artifacts: JvmArtifacts) -> list[str]:
        bootstrap = self.kafka.bootstrap_servers()
        wanted = self.settings.connect.port if self.worker is None else 0
        port = self.claim_ports({"bootstrap": bootstrap}, port=wanted)["port"]
        host = self.settings.bind_host
        security = self.kafka.java_security("connect")
        replicas = str(self.kafka.replication_factor())
        conf = {**WORKER_CONF, **dict.fromkeys(INTERNAL_REPLICATION, replicas),
                "bootstrap.servers": bootstrap, "listeners": f"http://{host}:{port}",
                "rest.advertised.host.name": host, "rest.advertised.port": str(port),
                "plugin.path": str(artifacts.plugin_path),
                "config.providers.file.param.allowed.paths": str(secrets_dir(self.settings)),
                "offset.flush.interval.ms": str(self.settings.connect.offset_flush_interval_ms),
                "producer.linger.ms": str(self.settings.connect.linger_ms),
                "producer.batch.size": str(self.settings.connect.batch_size),
                "scheduled.rebalance.max.delay.ms": str(self.settings.connect.scheduled_rebalance_max_delay_ms),
                **({"exactly.once.source.support": "enabled"} if self.settings.connect.exactly_once_source else {}),
                # the worker's own clients, and the producers, consumers and admins it makes for connectors
                **{f"{prefix}{k}": v for prefix in ("", "producer.", "consumer.", "admin.")
                   for k, v in security.items()}}
        write_private(self._config_file, "".join(f"{k}={v}\n" for k, v in conf.items()))
        log4j2 = write_log4j2(self.state_dir / "log4j2.properties", LOG_LEVELS)
        return java_command(MAIN, artifacts.classpath("connect"), [str(self._config_file)],
                            heap_mb=self.settings.connect.heap_mb, settings=self.jvm, log4j2=log4j2,
                            tmp_dir=self._tmp_dir, props={"java.security.auth.login.config": str(self._rest_jaas())})

    @functools.cached_property
    def _authorization(self) -> str:
        """The basic-auth header of every REST call (read once, not per call: health checks poll)."""
        return "Basic " + base64.b64encode(":".join(self.rest_credentials()).encode()).decode()

    def _rest_jaas(self) -> Path:
        """The REST API's JAAS login: one user, in a properties file (both 0600)."""
        user, password = self.rest_credentials()
        users = self.state_dir / "rest" / "users.properties"
        write_private(users, f"{user}={password}\n")
        jaas = self.state_dir / "rest" / "jaas.conf"
        write_private(jaas, f'KafkaConnect {{\n  {REST_LOGIN_MODULE} required file="{users}";\n}};\n')
        return jaas

    def destroy(self) -> None:
        """Stop, drop the worker's topics when Kafka still answers, and delete the state."""
        self.stop()
        if self.kafka.health():
            self.kafka.delete_topics(TOPICS.values())
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- REST helpers --------------------------------------------------------------------------
    def plugins(self) -> list[dict[str, Any]]:
        return self._ok("GET", "/connector-plugins")

    def connectors(self) -> list[str]:
        return self._ok("GET", "/connectors")

    def validate(self, config: Mapping[str, Any], name: str = "validation") -> list[str]:
        """Connect's validation of a connector config: one ``key: error`` line per problem (empty when valid)."""
        body = {"name": name, **_strings(config)}
        if "connector.class" not in body:
            raise ServiceError("connect: a connector config needs connector.class")
        payload = self._ok("PUT", f"/connector-plugins/{_q(body['connector.class'])}/config/validate", body)
        return [f"{v['name']}: {err}" for c in payload.get("configs", []) if (v := c.get("value"))
                for err in v.get("errors") or []]

    def register(self, name: str, config: Mapping[str, Any]) -> dict[str, Any]:
        """Create or update connector ``name`` (PUT /connectors/{name}/config; idempotent).

        The config is validated first: Connect 4.3 answers an invalid Debezium config with a bare HTTP 500
        (a NullPointerException in its error report), so the reasons are taken from the validate endpoint.
        """
        errors = self.validate(config, name)
        if errors:
            raise ServiceError(f"connect: connector {name!r} config is invalid: " + "; ".join(errors))
        return self._ok("PUT", f"/connectors/{_q(name)}/config", _strings(config), accept=(200, 201))

    def connector_config(self, name: str) -> dict[str, str]:
        """The registered connector's config (GET /connectors/{name}/config)."""
        return self._ok("GET", f"/connectors/{_q(name)}/config")

    def connector_status(self, name: str) -> dict[str, Any] | None:
        """The connector's status (connector and task states), or None when it does not exist."""
        code, payload = self._retrying("GET", f"/connectors/{_q(name)}/status")
        if code == 404:
            return None
        if code != 200:
            raise self.fail(f"GET status of {name!r} answered {code}: {_message(payload)}")
        return payload

    def wait_running(self, name: str, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until the connector and all its tasks are RUNNING; a FAILED one raises with its trace."""
        deadline = time.monotonic() + timeout
        status: dict[str, Any] | None = None
        while time.monotonic() < deadline:
            status = self.connector_status(name)
            if status:
                states = [status["connector"], *status.get("tasks", [])]
                failed = [s for s in states if s.get("state") == "FAILED"]
                if failed:
                    trace = "\n".join(str(failed[0].get("trace", "")).splitlines()[:12])
                    raise self.fail(f"connector {name!r} FAILED:\n{trace}")
                if status.get("tasks") and all(s.get("state") == "RUNNING" for s in states):
                    return status
            time.sleep(0.5)
        raise self.fail(f"connector {name!r} not RUNNING after {timeout:.0f}s: {status}")

    def stop_connector(self, name: str, timeout: float = 60.0) -> None:
        """Stop connector ``name`` (its tasks end, its config and offsets stay); wait until it reports STOPPED."""
        code, payload = self._retrying("PUT", f"/connectors/{_q(name)}/stop")
        if code == 404:
            return
        if code not in (200, 202, 204):
            raise self.fail(f"PUT stop of {name!r} answered {code}: {_message(payload)}")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            status = self.connector_status(name)
            if status is None or (status["connector"]["state"] == "STOPPED" and not status.get("tasks")):
                return
            time.sleep(0.5)
        raise self.fail(f"connector {name!r} not STOPPED after {timeout:.0f}s")

    def reset_offsets(self, name: str) -> None:
        """Forget where a stopped connector was (Connect's offsets API): its next start begins from scratch."""
        code, payload = self._retrying("DELETE", f"/connectors/{_q(name)}/offsets")
        if code not in (200, 404):
            raise self.fail(f"DELETE offsets of {name!r} answered {code}: {_message(payload)}")

    def offsets(self, name: str) -> list[dict[str, Any]]:
        """The connector's committed source offsets (partition and offset maps), [] when it has none."""
        code, payload = self._retrying("GET", f"/connectors/{_q(name)}/offsets")
        return payload.get("offsets", []) if code == 200 and isinstance(payload, dict) else []

    def restart_failed(self, name: str) -> None:
        """Restart the connector's FAILED instance and tasks (Connect leaves a failed task failed)."""
        code, payload = self._retrying("POST", f"/connectors/{_q(name)}/restart?includeTasks=true&onlyFailed=true")
        if code not in (200, 202, 204, 404):
            raise self.fail(f"POST restart of {name!r} answered {code}: {_message(payload)}")

    def delete(self, name: str) -> None:
        """Delete connector ``name``; deleting a missing one is a no-op."""
        code, payload = self._retrying("DELETE", f"/connectors/{_q(name)}")
        if code not in (200, 204, 404):
            raise self.fail(f"DELETE {name!r} answered {code}: {_message(payload)}")

    # -- plumbing ------------------------------------------------------------------------------
    def _plugin_classes(self) -> set[str]:
        try:
            code, plugins = self._call("GET", "/connector-plugins", timeout=3)
        except (OSError, ValueError):
            return set()
        return {p.get("class") for p in plugins if isinstance(p, dict)} if code == 200 else set()

    def _call(self, method: str, path: str, body: object = None, timeout: float = 30) -> tuple[int, Any]:
        """One REST call to the first worker that can be reached (any worker forwards to the leader)."""
        *others, last = self.urls
        for url in others:
            try:
                return self._call_one(url, method, path, body, timeout)
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                continue
        return self._call_one(last, method, path, body, timeout)

    def _call_one(self, url: str, method: str, path: str, body: object, timeout: float) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", "Accept": "application/json",
                                              "Authorization": self._authorization})
        try:
            with _NO_PROXY.open(req, timeout=timeout) as resp:
                raw = resp.read()
                return resp.status, json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                return exc.code, json.loads(raw) if raw else None
            except ValueError:
                return exc.code, raw.decode(errors="replace")

    def _retrying(self, method: str, path: str, body: object = None) -> tuple[int, Any]:
        """One REST call, retried while the worker rebalances (409) or is briefly unreachable."""

        @retry(stop=stop_after_delay(60), wait=wait_fixed(0.5), retry=retry_if_exception_type(_Retry), reraise=True)
        def attempt() -> tuple[int, Any]:
            try:
                code, payload = self._call(method, path, body)
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                raise _Retry(str(exc)) from exc
            if code == 409:
                raise _Retry(_message(payload))
            return code, payload

        try:
            return attempt()
        except _Retry as exc:
            raise self.fail(f"{method} {path} kept failing: {exc}") from exc

    def _ok(self, method: str, path: str, body: object = None, accept: tuple[int, ...] = (200,)) -> Any:
        code, payload = self._retrying(method, path, body)
        if code not in accept:
            raise ServiceError(f"connect: {method} {path} answered {code}: {_message(payload)}")
        return payload


def _q(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _strings(config: Mapping[str, Any]) -> dict[str, str]:
    """Connect wants every config value as a string (booleans as ``true``/``false``)."""
    return {k: v if isinstance(v, str) else json.dumps(v) if isinstance(v, bool) else str(v) for k, v in config.items()}


def _message(payload: Any) -> str:
    if isinstance(payload, dict) and "message" in payload:
        return str(payload["message"])
    return str(payload)
