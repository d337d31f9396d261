"""Apache Kafka 4.x as one KRaft node (broker and controller in one JVM) on 127.0.0.1.

Storage is formatted once with a cluster id kept in ``state/kafka/cluster_id``; ports are chosen at first
start and kept. Topics are never auto-created; the internal offsets and transaction topics have replication
factor 1 and min ISR 1, so consumer groups and transactions work on the single node.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, NewTopic

from emulation.jvm import JvmArtifacts, JvmService, java_command, run_java, write_log4j2
from emulation.service import ServiceError

MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1

# One node: every internal topic on one replica, few partitions, quiet logs.
BROKER_CONF = {
    "process.roles": "broker,controller",
    "node.id": str(NODE_ID),
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "PLAINTEXT",
    "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "default.replication.factor": "1",
    "min.insync.replicas": "1",
    "offsets.topic.replication.factor": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.replication.factor": "1",
    "transaction.state.log.min.isr": "1",
    "transaction.state.log.num.partitions": "4",
    "share.coordinator.state.topic.replication.factor": "1",
    "share.coordinator.state.topic.min.isr": "1",
    "group.initial.rebalance.delay.ms": "0",
    "log.segment.bytes": str(16 * 2**20),
    "log.retention.bytes": str(256 * 2**20),
    "log.retention.check.interval.ms": "60000",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "background.threads": "2",
}
LOG_LEVELS = {"kafka": "WARN", "org.apache.kafka": "WARN", "state.change.logger": "WARN",
              "kafka.server.KafkaRaftServer": "INFO", "kafka.server.BrokerServer": "INFO"}


@dataclass(frozen=True)
class TopicSpec:
    """A topic to create: name, partitions and topic-level config (e.g. ``{"cleanup.policy": "compact"}``)."""

    name: str
    partitions: int = 1
    config: Mapping[str, str] = field(default_factory=dict)


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
        if not cid.startswith("-"):
            return cid


class KafkaService(JvmService):
    """A one-node KRaft Kafka broker; ``bootstrap_servers()`` is what clients need."""

    name = "kafka"
    process_name = "kafka"

    # -- Service interface ---------------------------------------------------------------------
    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"controller_port": str(saved["controller_port"]), "cluster_id": self.cluster_id()}

    def bootstrap_servers(self) -> str:
        ep = self.endpoint()
        if ep is None:
            raise ServiceError("kafka: not started yet (run `olist up kafka`)")
        return ep.address

    def cluster_id(self) -> str:
        path = self.state_dir / "cluster_id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def health(self) -> bool:
        """A real metadata request answered by our broker."""
        if self.endpoint() is None:
            return False
        try:
            md = self.admin().list_topics(timeout=3)
        except KafkaException:
            return False
        return NODE_ID in md.brokers

    def command(self, artifacts: JvmArtifacts) -> list[str]:
        classpath = artifacts.classpath("kafka")
        ports = self.claim_ports(port=self.settings.kafka.port, controller_port=self.settings.kafka.controller_port)
        self._write_config(ports["port"], ports["controller_port"])
        log4j2 = write_log4j2(self.state_dir / "log4j2.properties", LOG_LEVELS)
        if not (self.data_dir / "meta.properties").exists():
            self._format(classpath, log4j2)
        return java_command(MAIN, classpath, [str(self._config_file)], heap_mb=self.settings.kafka.heap_mb,
                            settings=self.jvm, log4j2=log4j2, tmp_dir=self._tmp_dir)

    # -- clients -------------------------------------------------------------------------------
    def client_config(self, **extra: object) -> dict[str, object]:
        """Base confluent-kafka config for this broker (librdkafka's own logging silenced)."""
        return {"bootstrap.servers": self.bootstrap_servers(), "logger": _quiet, **extra}

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config())

    def create_topics(self, specs: Iterable[TopicSpec | Mapping[str, object]], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet (replication factor 1); returns the names created."""
        topics = [s if isinstance(s, TopicSpec) else TopicSpec(**s) for s in specs]  # type: ignore[arg-type]
        if not topics:
            return []
        admin = self.admin()
        existing = set(admin.list_topics(timeout=timeout).topics)
        wanted = [t for t in topics if t.name not in existing]
        if not wanted:
            return []
        new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=1,
                        config={k: str(v) for k, v in t.config.items()}) for t in wanted]
        created = []
        for name, future in admin.create_topics(new, operation_timeout=timeout, request_timeout=timeout).items():
            try:
                future.result()
                created.append(name)
            except KafkaException as exc:
                err = exc.args[0]
                if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
                    raise ServiceError(f"kafka: could not create topic {name!r}: {err}") from exc
        return created

    def topic_config(self, name: str, timeout: float = 30) -> dict[str, str]:
        """The topic's effective configuration (topic overrides and broker defaults)."""
        from confluent_kafka.admin import ConfigResource

        admin = self.admin()
        resource = ConfigResource(ConfigResource.Type.TOPIC, name)
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout)
        return {k: v.value for k, v in entries.items()}

    def delete_topics(self, names: Iterable[str], timeout: float = 30) -> None:
        names = list(names)
        if not names:
            return
        admin = self.admin()  # keep the client alive until every future is done
        for name, future in admin.delete_topics(names, operation_timeout=timeout).items():
            try:
                future.result()
            except KafkaException as exc:
                err = exc.args[0]
                if not (isinstance(err, KafkaError) and err.code() == KafkaError.UNKNOWN_TOPIC_OR_PART):
                    raise ServiceError(f"kafka: could not delete topic {name!r}: {err}") from exc

    # -- steps ---------------------------------------------------------------------------------
    def _write_config(self, port: int, cport: int) -> None:
        host = self.settings.bind_host
        conf = {
            **BROKER_CONF,
            "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"PLAINTEXT://{host}:{port}",
            "controller.quorum.voters": f"{NODE_ID}@{host}:{cport}",
            "log.dirs": str(self.data_dir),
            "log.retention.ms": str(self.settings.kafka.retention_ms),
        }
        self._config_file.write_text("".join(f"{k}={v}\n" for k, v in conf.items()))

    def _format(self, classpath: str, log4j2: Path) -> None:
        cmd = java_command(STORAGE_TOOL, classpath, ["format", "-t", self.cluster_id(), "-c", str(self._config_file),
                                                     "--ignore-formatted"],
                           heap_mb=256, settings=self.jvm, log4j2=log4j2, tmp_dir=self._tmp_dir)
        proc = run_java(cmd, timeout=self.jvm.jvm_start_timeout)
        with self.log_path.open("a") as log:
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise self.fail(f"formatting the storage in {self.data_dir} exited {proc.returncode}")


_quiet = logging.getLogger("olist.kafka.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
_quiet.setLevel(logging.CRITICAL)
