"""The production topology on loopback (`nox -s cluster`), from the same artifacts as the local emulators: three
KRaft Kafka nodes (every topic on 3 replicas, min ISR 2), two Connect workers in distributed mode with exactly-once
source support, a Flink session cluster (a JobManager and two TaskManagers; the job is submitted with `flink run`),
three Cassandra nodes on 127.0.0.1/.2/.3 (the serving keyspace on 3 replicas, QUORUM reads and writes, hinted
handoff on), PostgreSQL, and S3.

The platform runs on it by settings alone: :meth:`Rehearsal.deployment` names every engine by endpoint and
password, as a production deployment would (``OLIST_KAFKA_BOOTSTRAP_SERVERS`` ...); nothing of the platform reads
the rehearsal's state folder. Passwords are generated once and kept (0600) in the rehearsal's folder; ports are
chosen at first start and kept, so a restarted node is found where it was.

Recovery settings, chosen for a 2-core machine (each documented where it is set): Kafka brokers are fenced 6 s after
their last heartbeat (``emulation.kafka.CLUSTER_CONF``), a dead Connect worker's task moves after 10 s
(``settings.connect.scheduled_rebalance_max_delay_ms``; Connect's default waits 5 minutes), Flink's heartbeats
every 2 s with a 30 s timeout (``emulation.flink_session``: a dead TaskManager is noticed from its refused
connection at once; the timeout only covers a silent one, and shorter ones fail healthy jobs on 2 cores).
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from emulation.cassandra import ROLES, CassandraService, Ring
from emulation.connect import ConnectService
from emulation.flink_session import SessionCluster
from emulation.kafka import PRINCIPALS, KafkaService, Quorum, new_cluster_id
from emulation.postgres import PostgresService
from emulation.resources import engine
from emulation.s3 import S3Service
from emulation.service import Service, free_port, port_is_free, write_private
from pipeline.progress import SILENT, Progress
from pipeline.settings import LOCAL_DC, Settings, replication_cql

KAFKA_NODES, CONNECT_WORKERS, CASSANDRA_NODES = 3, 2, 3
REPLICAS, MIN_ISR = 3, 2


@dataclass(frozen=True)
class EngineStart:
    """One engine of the rehearsal: how long its start took and its processes' resident memory."""

    name: str
    seconds: float
    rss_mb: float


@dataclass
class RehearsalReport:
    """What `nox -s cluster` prints: each engine's start-up and memory, and the whole's."""

    engines: list[EngineStart] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(e.seconds for e in self.engines)

    @property
    def rss_mb(self) -> float:
        return sum(e.rss_mb for e in self.engines)


def rss_mb(service: Service) -> float:
    """The resident memory of a service's process and its children."""
    pid = service.pid()
    if pid is None:
        return 0.0
    with contextlib.suppress(psutil.Error):
        root = psutil.Process(pid)
        return sum(p.memory_info().rss for p in [root, *root.children(recursive=True)]) / 2**20
    return 0.0


class Rehearsal:
    """The loopback cluster under ``state_dir``: start, stop, its nodes by name, and the deployment to run on it."""

    def __init__(self, state_dir: Path, base: Settings | None = None) -> None:
        self.state_dir = state_dir
        self.base = base or Settings()
        self._topology = self._load_topology()
        self.quorum = Quorum(self._topology["cluster_id"],
                             {int(n): tuple(p) for n, p in self._topology["kafka"].items()})
        self.ring = Ring(CASSANDRA_NODES, *self._topology["cassandra"])

    # -- what runs ---------------------------------------------------------------------------------
    @property
    def passwords(self) -> dict[str, str]:
        return self._topology["passwords"]

    def engine_settings(self) -> Settings:
        """The settings the rehearsal's own engines are started with (the platform never sees these)."""
        pw = self.passwords
        return self.base.replace(
            state_dir=self.state_dir, pg_password=pw["pg"], pg_admin_password=pw["pg_admin"],
            pg_cdc_password=pw["pg_cdc"],
            kafka={**{f"{p}_password": pw[f"kafka_{p}"] for p in PRINCIPALS}, "replication_factor": REPLICAS,
                   "min_insync_replicas": MIN_ISR},
            connect={"rest_password": pw["connect_rest"], "exactly_once_source": True},
            cassandra={**{f"{r}_password": pw[f"cassandra_{r}"] for r in ROLES}, "heap_mb": 512},
            jvm={"jvm_start_timeout": 300.0})

    def kafka_nodes(self) -> list[KafkaService]:
        return [engine("kafka", self.engine_settings(), n, self.quorum) for n in sorted(self.quorum.ports)]

    def connect_workers(self) -> list[ConnectService]:
        workers = self.engine_settings().replace(kafka={"bootstrap_servers": self.bootstrap})
        return [engine("connect", workers, n) for n in range(1, CONNECT_WORKERS + 1)]

    def cassandra_nodes(self) -> list[CassandraService]:
        return [engine("cassandra", self.engine_settings(), n, self.ring) for n in range(1, CASSANDRA_NODES + 1)]

    def postgres(self) -> PostgresService:
        return engine("postgres", self.engine_settings())

    def s3(self) -> S3Service:
        return engine("s3", self.engine_settings())

    def flink_cluster(self) -> SessionCluster:
        return SessionCluster(self.engine_settings())

    def services(self) -> list[Service]:
        return [self.postgres(), self.s3(), *self.kafka_nodes(), *self.connect_workers(),
                *self.flink_cluster().services(), *self.cassandra_nodes()]

    def node(self, name: str) -> Service:
        """One of :meth:`services` by name (``kafka-2``, ``connect-1``, ``cassandra-3`` ...)."""
        found = {s.name: s for s in self.services()}
        if name not in found:
            raise KeyError(f"no {name!r} in the rehearsal; it has {', '.join(found)}")
        return found[name]

    def kafka_controller(self) -> int:
        """The node id of the active KRaft controller: the newest leader the voters' quorum-state files record."""
        leaders = []
        for node in self.kafka_nodes():
            with contextlib.suppress(OSError, ValueError, KeyError):
                state = json.loads((node.data_dir / "__cluster_metadata-0" / "quorum-state").read_text())
                leaders.append((int(state["leaderEpoch"]), int(state["leaderId"])))
        if not leaders or max(leaders)[1] < 0:
            raise RuntimeError("no KRaft controller leads the quorum")
        return max(leaders)[1]

    @property
    def bootstrap(self) -> str:
        return self.quorum.bootstrap(self.base.bind_host)

    def deployment(self) -> Settings:
        """The platform's settings on this cluster: every engine named by endpoint and password, a state folder of
        the platform's own."""
        pw, pg = self.passwords, self.postgres().endpoint()
        s3 = self.s3()
        s3_ep = s3.endpoint()
        assert pg is not None and s3_ep is not None, "the rehearsal has not started"
        key_id, secret = s3.credentials()
        urls = ",".join(w.url for w in self.connect_workers())
        flink = self.flink_cluster().url
        assert flink is not None, "the Flink session cluster has not started"
        return self.base.replace(
            state_dir=self.state_dir / "platform",
            pg_dsn=f"host={pg.host} port={pg.port} dbname={pg.extra['dbname']}", pg_password=pw["pg"],
            pg_admin_password=pw["pg_admin"], pg_cdc_password=pw["pg_cdc"],
            s3_endpoint_url=s3_ep.extra["url"], s3_access_key_id=key_id, s3_secret_access_key=secret,
            kafka={"bootstrap_servers": self.bootstrap, "replication_factor": REPLICAS,
                   "min_insync_replicas": MIN_ISR, **{f"{p}_password": pw[f"kafka_{p}"] for p in PRINCIPALS}},
            connect={"urls": urls, "rest_password": pw["connect_rest"], "exactly_once_source": True,
                     "secrets_dir": self.state_dir / "secrets"},
            cassandra={"contact_points": ",".join(self.ring.address(n) for n in range(1, CASSANDRA_NODES + 1)),
                       "port": self.ring.port, "local_dc": LOCAL_DC, "replication_factor": REPLICAS,
                       "write_consistency": "QUORUM", "read_consistency": "QUORUM",
                       **{f"{r}_password": pw[f"cassandra_{r}"] for r in ROLES}},
            flink={"mode": "session", "rest_url": flink})

    # -- start and stop ------------------------------------------------------------------------
    def start(self, progress: Progress = SILENT) -> RehearsalReport:
        """Start every engine (the ones running are adopted) and wait until each is healthy."""
        report = RehearsalReport()

        def timed(what: str, services: list[Service], start: Callable[[], None]) -> None:
            progress.update(f"cluster {what}", description=f"starting {what}", total=None)
            t0 = time.perf_counter()
            start()
            seconds = time.perf_counter() - t0
            report.engines.append(EngineStart(what, seconds, sum(rss_mb(s) for s in services)))
            progress.update(f"cluster {what}", description=f"{what} up", total=1, completed=1)

        pg, s3 = self.postgres(), self.s3()
        timed("postgres", [pg], pg.start)
        timed("s3", [s3], s3.start)
        nodes = self.kafka_nodes()
        timed(f"kafka x{len(nodes)}", nodes, lambda: _together([n.start for n in nodes]))  # a quorum: all at once
        workers = self.connect_workers()
        timed(f"connect x{len(workers)}", workers, lambda: _together([w.start for w in workers]))
        flink = self.flink_cluster()
        timed(f"flink jobmanager + {len(flink.taskmanagers)} taskmanagers", flink.services(), flink.start)
        ring = self.cassandra_nodes()
        timed(f"cassandra x{len(ring)}", ring, lambda: self._start_ring(ring))
        return report

    def stop(self) -> None:
        """Stop every engine (each keeps its data)."""
        for service in reversed(self.services()):
            service.stop()

    def destroy(self) -> None:
        """Stop every engine and delete the rehearsal's folder."""
        import shutil

        for service in reversed(self.services()):
            destroy = getattr(service, "destroy", None)
            destroy() if destroy else service.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _start_ring(self, ring: list[CassandraService]) -> None:
        """The seed first; its roles' table then on every node (so a login needs no one node); then the others
        one at a time, each streaming its ranges as it joins."""
        seed, *joiners = ring
        seed.start()
        with seed.session(timeout=30, metadata=False) as session:
            session.execute(f"ALTER KEYSPACE system_auth WITH replication = {replication_cql({LOCAL_DC: REPLICAS})}",
                            timeout=60)
        for node in joiners:
            node.start()

    # -- the topology file ---------------------------------------------------------------------
    def _load_topology(self) -> dict:
        path = self.state_dir / "topology.json"
        if path.exists():
            return json.loads(path.read_text())
        host, taken = self.base.bind_host, set()

        def port(*hosts: str) -> int:
            while True:
                candidate = free_port(host)
                if candidate not in taken and all(port_is_free(h, candidate) for h in hosts):
                    taken.add(candidate)
                    return candidate

        addresses = [Ring.address(n) for n in range(1, CASSANDRA_NODES + 1)]
        names = ["pg", "pg_admin", "pg_cdc", "connect_rest", *(f"kafka_{p}" for p in PRINCIPALS),
                 *(f"cassandra_{r}" for r in ROLES)]
        topology = {"cluster_id": new_cluster_id(),
                    "kafka": {n: [port(), port()] for n in range(1, KAFKA_NODES + 1)},
                    "cassandra": [port(*addresses), port(*addresses)],
                    "passwords": {name: secrets.token_urlsafe(18) for name in names}}
        write_private(path, json.dumps(topology))
        return json.loads(path.read_text())


def _together(starts: list[Callable[[], object]]) -> None:
    """Run the starts at once (a KRaft quorum elects no leader until most of its voters are up)."""
    with ThreadPoolExecutor(len(starts)) as pool:
        for future in [pool.submit(start) for start in starts]:
            future.result()
