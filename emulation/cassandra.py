"""Apache Cassandra 5.0 as one local node on 127.0.0.1 (or as node n of a :class:`Ring` on 127.0.0.n, the
rehearsal's), run from the Maven Central jars (``cassandra-all``); a deployment's cluster is only used
(``OLIST_CASSANDRA_CONTACT_POINTS``).

The node's ``cassandra.yaml`` and ``logback.xml`` are generated in ``state/cassandra``: every address is
127.0.0.1, the CQL (native) and internode ports are chosen at first start and kept, data, commit log, hints,
saved caches and CDC live under ``state/cassandra/data``, and JMX is left off (no system property enables it,
so nothing else listens). One token, no bootstrap, no gossip settling: a cold start takes seconds (a ring's
joiners wait for gossip and stream their ranges). Clients
use the Python driver (``cassandra-driver``) with protocol v5; :meth:`CassandraService.session` opens one.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import socket
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from emulation.jvm import JvmArtifacts, JvmService, JvmSettings, java_command
from emulation.service import Endpoint, ServiceError, host_port, kept_secret
from pipeline.settings import Settings

if TYPE_CHECKING:
    from cassandra.cluster import Cluster, Session

MAIN = "org.apache.cassandra.service.CassandraDaemon"
PROTOCOL_VERSION = 5
CQL_PORT = 9042  # a deployment's nodes' CQL port when OLIST_CASSANDRA_PORT is 0

# The JPMS openings of Cassandra 5.0's conf/jvm17-server.options (its GC settings are left to jvm_opts).
JAVA17_OPTS = (
    "--add-exports java.base/jdk.internal.misc=ALL-UNNAMED",
    "--add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED",
    "--add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED",
    "--add-exports java.rmi/sun.rmi.server=ALL-UNNAMED",
    "--add-exports java.sql/java.sql=ALL-UNNAMED",
    "--add-exports java.base/java.lang.ref=ALL-UNNAMED",
    "--add-exports jdk.unsupported/sun.misc=ALL-UNNAMED",
    "--add-exports jdk.compiler/com.sun.tools.javac.file=ALL-UNNAMED",
    "--add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED",
    "--add-opens java.base/java.lang.module=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.loader=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.ref=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.reflect=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.math=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.module=ALL-UNNAMED",
    "--add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED",
    "--add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED",
    "--add-opens java.base/sun.nio.ch=ALL-UNNAMED",
    "--add-opens java.base/java.io=ALL-UNNAMED",
    "--add-opens java.base/java.lang.reflect=ALL-UNNAMED",
    "--add-opens jdk.compiler/com.sun.tools.javac=ALL-UNNAMED",
    "--add-opens java.base/java.lang=ALL-UNNAMED",
    "--add-opens java.base/java.util=ALL-UNNAMED",
)

# A small single node: one token, no bootstrap, small caches and memtables, no snapshots; hints kept.
NODE_CONF: dict[str, object] = {
    "cluster_name": "olist-local",
    "num_tokens": 1,
    "auto_bootstrap": False,
    "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
    "endpoint_snitch": "SimpleSnitch",
    "storage_compatibility_mode": "NONE",
    "start_native_transport": True,
    "authenticator": "PasswordAuthenticator",
    "authorizer": "CassandraAuthorizer",
    "role_manager": "CassandraRoleManager",
    # Logins read the role afresh: with the default 2 s caches the built-in superuser still logged in for about a
    # second after start() had locked it (a CI failure), and a changed password or a revoked login would lag too.
    # Permissions stay cached (every request checks them; a grant is made before its role connects).
    "credentials_validity": "0ms",
    "roles_validity": "0ms",
    "commitlog_sync": "periodic",
    "commitlog_sync_period": "10000ms",
    "commitlog_segment_size": "8MiB",
    "disk_failure_policy": "stop",
    "commit_failure_policy": "stop",
    "concurrent_reads": 8,
    "concurrent_writes": 8,
    "concurrent_counter_writes": 4,
    "concurrent_compactors": 1,
    "memtable_heap_space": "64MiB",
    "memtable_offheap_space": "64MiB",
    "key_cache_size": "8MiB",
    "file_cache_size": "32MiB",
    "dynamic_snitch": False,
    # a write a replica missed while down is replayed to it when it is back (within max_hint_window)
    "hinted_handoff_enabled": True,
    "max_hint_window": "3h",
    "incremental_backups": False,
    "snapshot_before_compaction": False,
    "auto_snapshot": False,
}
# Warnings only, plus the line saying where CQL listens (CassandraDaemon's INFO would log the whole classpath).
LOG_LEVELS = {"org.apache.cassandra": "WARN", "org.apache.cassandra.transport.PipelineConfigurator": "INFO",
              "org.apache.cassandra.service.StorageService": "INFO", "org.apache.cassandra.streaming": "INFO",
              "com.datastax": "WARN", "io.netty": "WARN"}


def write_logback(path: Path, levels: dict[str, str], root_level: str = "INFO") -> Path:
    """A logback config sending every line to stdout (which BackgroundProcess sends to the log file)."""
    loggers = "".join(f'  <logger name="{name}" level="{level}"/>\n' for name, level in sorted(levels.items()))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        '<configuration scan="false">\n'
        '  <appender name="OUT" class="ch.qos.logback.core.ConsoleAppender">\n'
        "    <encoder><pattern>[%date{ISO8601}] %level %msg \\(%logger{0}\\)%n</pattern></encoder>\n"
        "  </appender>\n"
        f"{loggers}"
        f'  <root level="{root_level}"><appender-ref ref="OUT"/></root>\n'
        "</configuration>\n")
    return path


def cluster(hosts: str | Sequence[str], port: int, timeout: float = 10.0, metadata: bool = True,
            credentials: tuple[str, str] | None = None, local_dc: str | None = None,
            consistency: str = "LOCAL_QUORUM") -> Cluster:
    """A driver ``Cluster`` on ``hosts`` (the contact points, one CQL ``port``): protocol v5, at ``consistency``,
    logged in as ``credentials`` (user, password). With ``local_dc`` requests go to that datacenter's replicas
    first (token aware); without, to the contact points only (one local node, checked as itself)."""
    from cassandra import ConsistencyLevel
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy, WhiteListRoundRobinPolicy

    hosts = [hosts] if isinstance(hosts, str) else list(hosts)
    policy = TokenAwarePolicy(DCAwareRoundRobinPolicy(local_dc)) if local_dc else WhiteListRoundRobinPolicy(hosts)
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=timeout,
                               consistency_level=ConsistencyLevel.name_to_value[consistency])
    auth = PlainTextAuthProvider(*credentials) if credentials else None
    return Cluster(hosts, port=port, protocol_version=PROTOCOL_VERSION, connect_timeout=timeout,
                   control_connection_timeout=timeout, execution_profiles={EXEC_PROFILE_DEFAULT: profile},
                   schema_metadata_enabled=metadata, token_metadata_enabled=metadata, auth_provider=auth)


@dataclass(frozen=True)
class Ring:
    """The nodes of a Cassandra cluster on loopback addresses (node n on 127.0.0.n; all of 127/8 is loopback), one
    CQL and one internode port for all, one evenly spaced token each; node 1 is the seed."""

    size: int
    port: int
    storage_port: int

    @staticmethod
    def address(node: int) -> str:
        return f"127.0.0.{node}"

    def token(self, node: int) -> str:
        return str(-(2**63) + (node - 1) * (2**64 // self.size))


# One role per component. The node's built-in superuser (cassandra/cassandra) is only used once, to create
# olist_admin, and is then locked (no login, a random password).
ROLES = {"admin": "olist_admin", "sink": "olist_sink", "reader": "olist_reader"}
BUILT_IN = ("cassandra", "cassandra")


def serving_grants(keyspace: str) -> list[str]:
    """The sink may read and write the serving keyspace; the reader (the dashboard, reconcile) may only read it."""
    return [f'GRANT {permission} ON KEYSPACE "{keyspace}" TO {ROLES[role]}'
            for permission, role in (("SELECT", "sink"), ("MODIFY", "sink"), ("SELECT", "reader"))]


class CassandraService(JvmService):
    """One Cassandra node; ``session()`` opens a CQL session, ``contact()`` is (host, port) for drivers."""

    name = "cassandra"
    process_name = "cassandra"
    config_name = "cassandra.yaml"
    stop_timeout = 60.0  # SIGTERM runs Cassandra's drain hook (memtables flushed, commit log closed)

    def __init__(self, settings: Settings, node: int | None = None, ring: Ring | None = None) -> None:
        self.node, self.ring = node, ring
        if ring is not None and node is not None:  # node n of a ring: state in cassandra-<n>, address 127.0.0.n
            self.name = f"cassandra-{node}"
        super().__init__(settings)

    @property
    def bind_address(self) -> str:
        return self.ring.address(self.node) if self.ring and self.node else self.settings.bind_host

    @property
    def joins_ring(self) -> bool:
        """A ring's node other than the seed: it bootstraps (streams its ranges from the others) at first start."""
        return bool(self.ring and self.node and self.node > 1)

    # -- Service interface ---------------------------------------------------------------------
    def configured(self) -> Endpoint | None:
        conf = self.settings.cassandra
        if not conf.contact_points:
            return None
        points = [host_port(h, conf.port or CQL_PORT) for h in conf.contact_points.split(",") if h.strip()]
        ports = {port for _, port in points}
        if len(ports) != 1:
            raise ServiceError(f"cassandra: OLIST_CASSANDRA_CONTACT_POINTS names ports {sorted(ports)}; the driver "
                               "reaches every node on one CQL port")
        return Endpoint(points[0][0], ports.pop(), {"contact_points": ",".join(h for h, _ in points)})

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"storage_port": str(saved["storage_port"]), "protocol_version": str(PROTOCOL_VERSION)}

    def contact(self) -> tuple[list[str], int]:
        """The contact points and the CQL port."""
        ep = self.endpoint()
        if ep is None:
            raise ServiceError("cassandra: not started yet (run `olist up cassandra`)")
        return ep.extra.get("contact_points", ep.host).split(","), ep.port

    def cluster(self, role: str, timeout: float = 10.0, metadata: bool = True) -> Cluster:
        """A driver ``Cluster`` on this deployment as ``role``, at the deployment's consistency for it (the sink's
        writes, everyone else's reads)."""
        return self._cluster(self.credentials(role), timeout, metadata, role)

    def _cluster(self, credentials: tuple[str, str], timeout: float, metadata: bool, role: str = "admin") -> Cluster:
        conf = self.settings.cassandra
        hosts, port = self.contact()
        consistency = conf.write_consistency if role == "sink" else conf.read_consistency
        if self.external:
            return cluster(hosts, port, timeout, metadata, credentials, conf.local_dc, consistency)
        # our own node, asked as itself (one of a ring at ONE: its health and roles, whatever its peers do)
        return cluster(hosts, port, timeout, metadata, credentials, consistency="ONE" if self.ring else consistency)

    def where(self) -> str:
        ep = self.endpoint()
        return f"CQL {ep.address}" if ep else "CQL"

    def health(self) -> bool:
        """The native port is open and a CQL query (``system.local``) answers with the release version."""
        ep = self.endpoint()
        if ep is None:
            return False
        if not self.external:  # our node's port first (cheap); a deployment's driver tries every contact point
            try:
                with socket.create_connection((ep.host, ep.port), timeout=1):
                    pass
            except OSError:
                return False
        built_in = () if self.external else (BUILT_IN,)
        for credentials in (self.credentials("admin"), *built_in):  # the built-in one before the first start ends
            try:
                with probing(), self._session(credentials, timeout=5, metadata=False) as session:
                    row = session.execute("SELECT release_version FROM system.local").one()
                return row is not None and bool(row.release_version)
            except Exception:  # any driver error means "not healthy yet" (or not these credentials)
                continue
        return False

    def start(self) -> Endpoint:
        endpoint = super().start()
        self._ensure_roles()
        return endpoint

    def command(self, artifacts: JvmArtifacts) -> list[str]:
        classpath = artifacts.classpath("cassandra")
        if self.ring is not None:
            ports = self.claim_ports(port=self.ring.port, storage_port=self.ring.storage_port)
        else:
            ports = self.claim_ports(port=self.settings.cassandra.port,
                                     storage_port=self.settings.cassandra.storage_port)
        self._write_config(ports["port"], ports["storage_port"])
        logback = write_logback(self.state_dir / "logback.xml", LOG_LEVELS)
        for folder in (self.state_dir / "triggers", self.state_dir / "logs"):
            folder.mkdir(parents=True, exist_ok=True)
        return java_command(MAIN, classpath, heap_mb=self.settings.cassandra.heap_mb,
                            settings=self._jvm_settings(classpath), tmp_dir=self._tmp_dir,
                            props=self._system_properties(logback))

    # -- clients -------------------------------------------------------------------------------
    def check_credentials(self) -> None:
        for role in ROLES:
            self.credentials(role)

    def credentials(self, role: str) -> tuple[str, str]:
        """(user, password) of one of :data:`ROLES`: the setting, else generated once and kept (0600)."""
        configured = getattr(self.settings.cassandra, f"{role}_password")
        if configured:
            return ROLES[role], configured
        if self.external:
            raise ServiceError(f"cassandra: OLIST_CASSANDRA_{role.upper()}_PASSWORD is not set; with "
                               "OLIST_CASSANDRA_CONTACT_POINTS every role's password comes from the settings")
        return ROLES[role], kept_secret(self.state_dir / "roles" / role)

    def session(self, keyspace: str | None = None, timeout: float = 10.0, metadata: bool = True,
                role: str = "admin") -> contextlib.AbstractContextManager[Session]:
        """A CQL session as ``role`` (``admin``, ``sink`` or ``reader``), closed on exit."""
        return self._session(self.credentials(role), keyspace, timeout, metadata, role)

    @contextlib.contextmanager
    def _session(self, credentials: tuple[str, str], keyspace: str | None = None, timeout: float = 10.0,
                 metadata: bool = True, role: str = "admin") -> Iterator[Session]:
        conn = self._cluster(credentials, timeout, metadata, role)
        try:
            yield conn.connect(keyspace)
        finally:
            conn.shutdown()

    # -- steps ---------------------------------------------------------------------------------
    def _ensure_roles(self) -> None:
        """olist_admin made once with the built-in superuser, which is then locked; the component roles made (or
        their passwords brought in line with the settings) by olist_admin. Idempotent; a password is only changed
        when it no longer logs in (Cassandra refuses changing one twice within 5 s)."""
        admin, admin_password = self.credentials("admin")
        if not self.logs_in((admin, admin_password)):  # a first start: only the built-in superuser exists
            if self.external:
                raise self.fail(f"{admin} cannot log in to the deployment's nodes at {self.where()}")
            with self._session(BUILT_IN, timeout=30, metadata=False) as session:
                session.execute(f"CREATE ROLE IF NOT EXISTS {admin} WITH SUPERUSER = true AND LOGIN = true "
                                "AND PASSWORD = %s", (admin_password,))
        with self.session(timeout=30, metadata=False) as session:
            if not self.external and self.logs_in(BUILT_IN):
                session.execute("ALTER ROLE cassandra WITH LOGIN = false AND PASSWORD = %s",
                                (secrets.token_urlsafe(24),))
            for role in ("sink", "reader"):
                name, password = self.credentials(role)
                if session.execute("SELECT role FROM system_auth.roles WHERE role = %s", (name,)).one() is None:
                    session.execute(f"CREATE ROLE {name} WITH LOGIN = true AND PASSWORD = %s", (password,))
                elif not self.logs_in((name, password)):
                    session.execute(f"ALTER ROLE {name} WITH PASSWORD = %s", (password,))

    def logs_in(self, credentials: tuple[str, str]) -> bool:
        """Whether ``credentials`` (user, password) open a session on this deployment now (a refusal is the answer
        "no", not logged)."""
        from cassandra.cluster import NoHostAvailable

        try:
            with probing(), self._session(credentials, timeout=10, metadata=False):
                return True
        except NoHostAvailable:
            return False

    def _write_config(self, port: int, storage_port: int) -> None:
        host = self.bind_address
        seed = self.ring.address(1) if self.ring else host
        data = self.data_dir
        ring = ({"initial_token": self.ring.token(self.node), "auto_bootstrap": self.joins_ring}
                if self.ring and self.node else {})
        conf = {
            **NODE_CONF,
            **ring,
            "listen_address": host,
            "rpc_address": host,
            "storage_port": storage_port,
            "native_transport_port": port,
            "seed_provider": [{"class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                               "parameters": [{"seeds": f"{seed}:{storage_port}"}]}],
            "data_file_directories": [str(data / "data")],
            "commitlog_directory": str(data / "commitlog"),
            "saved_caches_directory": str(data / "saved_caches"),
            "hints_directory": str(data / "hints"),
            "cdc_raw_directory": str(data / "cdc_raw"),
        }
        self._config_file.write_text("# Written by emulation/cassandra.py at every start.\n"
                                     + yaml.safe_dump(conf, sort_keys=False))

    def _system_properties(self, logback: Path) -> dict[str, str]:
        return {
            "cassandra.config": self._config_file.resolve().as_uri(),
            "cassandra.storagedir": str(self.data_dir),
            "cassandra.logdir": str(self.state_dir / "logs"),
            "cassandra.triggers_dir": str(self.state_dir / "triggers"),
            "cassandra-foreground": "yes",
            # the built-in superuser at once, not 10 s after start (the first start makes olist_admin with it)
            "cassandra.superuser_setup_delay_ms": "0",
            "logback.configurationFile": str(logback),
            # One node (or a ring's seed): nothing to wait for; a node joining a ring learns the ring by gossip
            # first (a few seconds, not the default 30), then streams its ranges.
            **({"cassandra.ring_delay_ms": "5000"} if self.joins_ring else
               {"cassandra.skip_wait_for_gossip_to_settle": "0", "cassandra.ring_delay_ms": "100"}),
            "jdk.attach.allowAttachSelf": "true",
            "io.netty.tryReflectionSetAccessible": "true",
            "io.netty.allocator.useCacheForAllThreads": "true",
            "io.netty.allocator.maxOrder": "11",
        }

    def _jvm_settings(self, classpath: str) -> JvmSettings:
        """The JVM options for Cassandra: everyone's jvm_opts, the Java 17 openings and jamm's agent."""
        extra = [opt for pair in JAVA17_OPTS for opt in pair.split()]
        jamm = [p for p in classpath.split(os.pathsep) if Path(p).name.startswith("jamm-")]
        if jamm:  # object sizes for memtable accounting; without it Cassandra guesses less precisely
            extra.append(f"-javaagent:{jamm[0]}")
        return self.jvm.model_copy(update={"jvm_opts": " ".join([self.jvm.jvm_opts, *extra])})


def split_statements(cql: str) -> list[str]:
    """The statements of a CQL script: ``--`` line comments dropped, split on ``;`` at line ends."""
    lines = [ln for ln in cql.splitlines() if not ln.strip().startswith("--")]
    parts = "\n".join(lines).split(";\n")
    return [p.strip().rstrip(";").strip() for p in parts if p.strip().rstrip(";").strip()]


_quiet = logging.getLogger("cassandra")
_quiet.addHandler(logging.NullHandler())


class _Probes(logging.Filter):
    """Drops the driver's records made by a thread while it probes (:func:`probing`). A probe's login may well be
    refused (olist_admin before the first start made it, the built-in superuser once it is locked, any role while
    the node comes up), and the driver logs every refusal as a warning and an error with a traceback ("Bad
    credentials"). Other threads' records, and this thread's outside a probe, pass."""

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        return record.thread not in self.threads


_PROBES = _Probes()
for _name in ("cassandra.cluster", "cassandra.connection", "cassandra.pool"):
    logging.getLogger(_name).addFilter(_PROBES)


@contextlib.contextmanager
def probing() -> Iterator[None]:
    """Within, the driver logs nothing from this thread: its connection failures are answers, not errors."""
    me = threading.get_ident()
    outer = me in _PROBES.threads
    _PROBES.threads.add(me)
    try:
        yield
    finally:
        if not outer:
            _PROBES.threads.discard(me)
