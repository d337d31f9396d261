"""Apache Kafka 4.x as one KRaft node (broker and controller in one JVM) on 127.0.0.1, or as one node of a
:class:`Quorum` (the rehearsal's three); a deployment's cluster is only used (``OLIST_KAFKA_BOOTSTRAP_SERVERS``).

Storage is formatted once with a cluster id kept in ``state/kafka/cluster_id`` (a quorum's is shared); ports are
chosen at first start and kept. Topics are never auto-created; the internal offsets and transaction topics have
one replica per node (min ISR from the settings), so consumer groups and transactions work on a single node.

Authentication is on: the client listener takes SASL/SCRAM only, the controller listener SASL/PLAIN for the
broker's own principal; the StandardAuthorizer denies whatever no ACL allows. Every component has its own
principal (``olist_connect``, ``olist_flink``, ...; grants in ``pipeline/speed/access.py``), its password
generated at first start and kept in ``state/kafka/principals/`` (0600) unless the settings give one. The
admin's and the broker's SCRAM credentials are written into the storage when it is formatted (the format
tool reads them from a 0600 argument file, never from its command line); the components' are upserted and
the grants applied at every start.
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
from emulation.service import Endpoint, ServiceError, host_port, kept_secret, write_private
from pipeline.settings import Settings

MAIN = "kafka.Kafka"
STORAGE_TOOL = "kafka.tools.StorageTool"
NODE_ID = 1

# One node (a cluster's nodes override the replication): every internal topic on one replica, few partitions.
BROKER_CONF = {
    "process.roles": "broker,controller",
    "controller.listener.names": "CONTROLLER",
    "inter.broker.listener.name": "BROKER",
    "listener.security.protocol.map": "BROKER:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
    "sasl.mechanism.controller.protocol": "PLAIN",
    "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
    "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
    "allow.everyone.if.no.acl.found": "false",
    "auto.create.topics.enable": "false",
    "num.partitions": "1",
    "offsets.topic.num.partitions": "4",
    "transaction.state.log.num.partitions": "4",
    "group.initial.rebalance.delay.ms": "0",
    "log.segment.bytes": str(16 * 2**20),
    "log.retention.bytes": str(256 * 2**20),
    "log.retention.check.interval.ms": "60000",
    "num.network.threads": "2",
    "num.io.threads": "2",
    "num.recovery.threads.per.data.dir": "1",
    "background.threads": "2",
}
# A cluster's nodes (a Quorum) notice a dead peer fast: a broker is fenced 6 s after its last heartbeat (Kafka's
# default: 9 s), so producers stall less when a partition leader dies.
CLUSTER_CONF = {"broker.heartbeat.interval.ms": "1000", "broker.session.timeout.ms": "6000"}
PRINCIPALS = ("broker", "admin", "connect", "flink", "sink", "archive")
SUPER_USERS = ("broker", "admin")
COMPONENTS = tuple(p for p in PRINCIPALS if p not in SUPER_USERS)  # the principals that get grants
SCRAM_MODULE = "org.apache.kafka.common.security.scram.ScramLoginModule"
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"
LOG_LEVELS = {"kafka": "WARN", "org.apache.kafka": "WARN", "state.change.logger": "WARN",
              "kafka.server.KafkaRaftServer": "INFO", "kafka.server.BrokerServer": "INFO"}


@dataclass(frozen=True)
class Quorum:
    """The combined broker-and-controller nodes of a KRaft cluster on one host: node id -> (broker port, controller
    port), and the cluster id every node's storage is formatted with."""

    cluster_id: str
    ports: Mapping[int, tuple[int, int]]

    def voters(self, host: str) -> str:
        return ",".join(f"{node}@{host}:{cport}" for node, (_, cport) in sorted(self.ports.items()))

    def bootstrap(self, host: str) -> str:
        return ",".join(f"{host}:{port}" for _, (port, _) in sorted(self.ports.items()))


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


def kafka_user(principal: str) -> str:
    """The SCRAM user of a principal (``flink`` -> ``olist_flink``); ACLs name it ``User:olist_flink``."""
    return f"olist_{principal}"


class KafkaService(JvmService):
    """A one-node KRaft Kafka broker, or node ``node_id`` of a ``quorum`` (state in ``kafka-<id>``);
    ``bootstrap_servers()`` is what clients need."""

    name = "kafka"
    process_name = "kafka"

    def __init__(self, settings: Settings, node_id: int = NODE_ID, quorum: Quorum | None = None) -> None:
        self.node_id, self.quorum = node_id, quorum
        if quorum is not None:
            self.name = f"kafka-{node_id}"
        super().__init__(settings)

    # -- Service interface ---------------------------------------------------------------------
    def configured(self) -> Endpoint | None:
        servers = self.settings.kafka.bootstrap_servers
        if not servers:
            return None
        host, port = host_port(servers.split(",")[0], 9092)
        return Endpoint(host, port, {"bootstrap_servers": servers})

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"controller_port": str(saved["controller_port"]), "cluster_id": self.cluster_id()}

    def bootstrap_servers(self) -> str:
        ep = self.endpoint()
        if ep is None:
            raise ServiceError("kafka: not started yet (run `olist up kafka`)")
        return ep.extra.get("bootstrap_servers", ep.address)

    def where(self) -> str:
        return self.bootstrap_servers() if self.endpoint() else self.name

    def start(self) -> Endpoint:
        endpoint = super().start()
        self.ensure_access()
        return endpoint

    def cluster_id(self) -> str:
        if self.quorum is not None:
            return self.quorum.cluster_id
        path = self.state_dir / "cluster_id"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(new_cluster_id() + "\n")
        return path.read_text().strip()

    def health(self) -> bool:
        """A real metadata request answered: by this node (ours), or by any broker of the deployment's."""
        if self.endpoint() is None:
            return False
        try:
            md = self.admin().list_topics(timeout=3)
        except (KafkaException, ServiceError):
            return False
        return bool(md.brokers) if self.external else self.node_id in md.brokers

    def command(self, artifacts: JvmArtifacts) -> list[str]:
        classpath = artifacts.classpath("kafka")
        if self.quorum is not None:
            port, cport = self.quorum.ports[self.node_id]
            ports = self.claim_ports(port=port, controller_port=cport)
        else:
            ports = self.claim_ports(port=self.settings.kafka.port, controller_port=self.settings.kafka.controller_port)
        self._write_config(ports["port"], ports["controller_port"])
        log4j2 = write_log4j2(self.state_dir / "log4j2.properties", LOG_LEVELS)
        if not (self.data_dir / "meta.properties").exists():
            self._format(classpath, log4j2)
        elif not self._scram_marker.exists():
            raise self.fail(f"the storage in {self.data_dir} was formatted before authentication was on and has no "
                            "SCRAM users; delete it with `olist down --purge` and start again")
        return java_command(MAIN, classpath, [str(self._config_file)], heap_mb=self.settings.kafka.heap_mb,
                            settings=self.jvm, log4j2=log4j2, tmp_dir=self._tmp_dir)

    # -- principals ----------------------------------------------------------------------------
    def check_credentials(self) -> None:
        for principal in ("admin", *COMPONENTS):
            self.credentials(principal)

    def credentials(self, principal: str) -> tuple[str, str]:
        """(user, password) of one of :data:`PRINCIPALS`: the setting, else generated once and kept (0600)."""
        if principal not in PRINCIPALS:
            raise ServiceError(f"kafka: no principal {principal!r} (one of {', '.join(PRINCIPALS)})")
        configured = getattr(self.settings.kafka, f"{principal}_password")
        if configured:
            return kafka_user(principal), configured
        if self.external:
            raise ServiceError(f"kafka: OLIST_KAFKA_{principal.upper()}_PASSWORD is not set; with "
                               "OLIST_KAFKA_BOOTSTRAP_SERVERS every principal's password comes from the settings")
        return kafka_user(principal), kept_secret(self.state_dir / "principals" / principal)

    def security(self, principal: str) -> dict[str, str]:
        """The client security settings of ``principal`` in librdkafka's keys."""
        user, password = self.credentials(principal)
        conf = self.settings.kafka
        tls = {"ssl.ca.location": str(conf.ssl_ca_location)} if conf.ssl_ca_location else {}
        return {"security.protocol": conf.security_protocol, "sasl.mechanisms": conf.sasl_mechanism,
                "sasl.username": user, "sasl.password": password, **tls}

    def java_security(self, principal: str, login_module: str = SCRAM_MODULE) -> dict[str, str]:
        """The same in the Java client's keys (``login_module`` differs where the client is shaded)."""
        user, password = self.credentials(principal)
        conf = self.settings.kafka
        tls = ({"ssl.truststore.type": "PEM", "ssl.truststore.location": str(conf.ssl_ca_location)}
               if conf.ssl_ca_location else {})
        return {"security.protocol": conf.security_protocol, "sasl.mechanism": conf.sasl_mechanism,
                "sasl.jaas.config": f'{login_module} required username="{user}" password="{password}";', **tls}

    def ensure_access(self) -> None:
        """Upsert the components' SCRAM credentials, and grant the Connect worker its own internal topics and group
        (what the worker needs to start). Every other grant, and the revoking of any grant not in
        ``pipeline/speed/access.py``, is the provisioning layer's (``pipeline/provision/kafka.py``)."""
        from confluent_kafka.admin import (
            AclBinding,
            AclOperation,
            AclPermissionType,
            ResourcePatternType,
            ResourceType,
            ScramCredentialInfo,
            ScramMechanism,
            UserScramCredentialUpsertion,
        )

        from emulation.connect import GROUP_ID, TOPICS

        admin = self.admin()
        mechanism = ScramMechanism[self.settings.kafka.sasl_mechanism.replace("-", "_")]
        upserts = [UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), password.encode())
                   for user, password in (self.credentials(p) for p in COMPONENTS)]
        for user, future in admin.alter_user_scram_credentials(upserts).items():
            try:
                future.result()
            except KafkaException as exc:
                raise self.fail(f"could not set the SCRAM credentials of {user}: {exc.args[0]}") from exc
        worker = f"User:{kafka_user('connect')}"
        literal, allow = ResourcePatternType.LITERAL, AclPermissionType.ALLOW
        bindings = [AclBinding(ResourceType.TOPIC, topic, literal, worker, "*", AclOperation[op], allow)
                    for topic in sorted(TOPICS.values())
                    for op in ("READ", "WRITE", "DESCRIBE", "DESCRIBE_CONFIGS", "CREATE")]
        bindings += [AclBinding(ResourceType.GROUP, GROUP_ID, literal, worker, "*", AclOperation[op], allow)
                     for op in ("READ", "DESCRIBE")]
        if self.settings.connect.exactly_once_source:  # the leader's and each task's transactional producer
            bindings += [AclBinding(ResourceType.TRANSACTIONAL_ID, prefix, ResourcePatternType.PREFIXED, worker, "*",
                                    AclOperation[op], allow)
                         for prefix in (f"connect-cluster-{GROUP_ID}", GROUP_ID) for op in ("WRITE", "DESCRIBE")]
        for future in admin.create_acls(bindings, request_timeout=30).values():
            future.result()

    # -- clients -------------------------------------------------------------------------------
    def client_config(self, principal: str = "admin", **extra: object) -> dict[str, object]:
        """confluent-kafka config for this broker as ``principal`` (librdkafka's own logging silenced); the
        default is the admin super user, for the platform's checks and the tests."""
        return {"bootstrap.servers": self.bootstrap_servers(), "logger": _quiet, **self.security(principal), **extra}

    def admin(self) -> AdminClient:
        return AdminClient(self.client_config())

    def create_topics(self, specs: Iterable[TopicSpec | Mapping[str, object]], timeout: float = 30) -> list[str]:
        """Create the topics that do not exist yet, with the deployment's replication factor and min ISR; returns
        the names created."""
        topics = [TopicSpec(**s) if isinstance(s, Mapping) else s for s in specs]  # a TopicSpec, or one in kind
        if not topics:
            return []
        admin = self.admin()
        existing = set(admin.list_topics(timeout=timeout).topics)
        wanted = [t for t in topics if t.name not in existing]
        if not wanted:
            return []
        new = [NewTopic(t.name, num_partitions=t.partitions, replication_factor=self.replication_factor(),
                        config=self._min_isr() | {k: str(v) for k, v in t.config.items()}) for t in wanted]
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

    def replication_factor(self) -> int:
        """The deployment's replicas of a topic: the setting, else 1 on our broker, -1 (the cluster's
        default.replication.factor) on a deployment's."""
        return self.settings.kafka.replication_factor or (-1 if self.external else 1)

    def _min_isr(self) -> dict[str, str]:
        isr = self.settings.kafka.min_insync_replicas
        return {"min.insync.replicas": str(isr)} if isr else {}

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
    @property
    def _scram_marker(self) -> Path:
        return self.data_dir / "olist-scram-bootstrapped"

    def _write_config(self, port: int, cport: int) -> None:
        host = self.settings.bind_host
        mechanism = self.settings.kafka.sasl_mechanism
        broker, secret = self.credentials("broker")
        voters = self.quorum.voters(host) if self.quorum else f"{self.node_id}@{host}:{cport}"
        replicas = str(len(self.quorum.ports) if self.quorum else 1)
        isr = str(self.settings.kafka.min_insync_replicas or 1)
        conf = {
            **BROKER_CONF,
            "node.id": str(self.node_id),
            "listeners": f"BROKER://{host}:{port},CONTROLLER://{host}:{cport}",
            "advertised.listeners": f"BROKER://{host}:{port}",
            "controller.quorum.voters": voters,
            # the internal topics on every node, writes acknowledged by min ISR of them
            **dict.fromkeys(("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                             "share.coordinator.state.topic.replication.factor"), replicas),
            **dict.fromkeys(("transaction.state.log.min.isr", "share.coordinator.state.topic.min.isr",
                             "min.insync.replicas"), isr),
            "default.replication.factor": str(self.settings.kafka.replication_factor or 1),
            **(CLUSTER_CONF if self.quorum else {}),
            "sasl.enabled.mechanisms": mechanism,
            "sasl.mechanism.inter.broker.protocol": mechanism,
            f"listener.name.broker.{mechanism.lower()}.sasl.jaas.config":
                f'{SCRAM_MODULE} required username="{broker}" password="{secret}";',
            "listener.name.controller.plain.sasl.jaas.config":
                f'{PLAIN_MODULE} required username="{broker}" password="{secret}" user_{broker}="{secret}";',
            "super.users": ";".join(f"User:{kafka_user(p)}" for p in SUPER_USERS),
            "log.dirs": str(self.data_dir),
            "log.retention.ms": str(self.settings.kafka.retention_ms),
        }
        write_private(self._config_file, "".join(f"{k}={v}\n" for k, v in conf.items()))

    def _format(self, classpath: str, log4j2: Path) -> None:
        """Format the storage with the cluster id and the super users' SCRAM credentials (``java @file``: the
        credentials are in a 0600 argument file, deleted after, not on a command line)."""
        mechanism = self.settings.kafka.sasl_mechanism
        scram = [f"{mechanism}=[name={user},password={password}]"
                 for user, password in (self.credentials(p) for p in SUPER_USERS)]
        args = ["format", "-t", self.cluster_id(), "-c", str(self._config_file), "--ignore-formatted",
                *(a for s in scram for a in ("--add-scram", s))]
        cmd = java_command(STORAGE_TOOL, classpath, args, heap_mb=256, settings=self.jvm, log4j2=log4j2,
                           tmp_dir=self._tmp_dir)
        split = cmd.index("-cp")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._scram_marker.touch()  # before: a format cut short is then retried, not refused as predating SCRAM
        argfile = self._tmp_dir / "format.args"
        write_private(argfile, "\n".join(f'"{a}"' for a in cmd[split:]) + "\n")
        try:
            proc = run_java([*cmd[:split], f"@{argfile}"], timeout=self.jvm.jvm_start_timeout)
        finally:
            argfile.unlink(missing_ok=True)
        with self.log_path.open("a") as log:
            log.write(proc.stdout + proc.stderr)
        if proc.returncode != 0:
            raise self.fail(f"formatting the storage in {self.data_dir} exited {proc.returncode}")


_quiet = logging.getLogger("olist.kafka.librdkafka")
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False
_quiet.setLevel(logging.CRITICAL)
