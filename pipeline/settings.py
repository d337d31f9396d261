"""One settings model for the whole platform, fed by ``OLIST_*`` environment variables (and ``SNOWFLAKE_*``).

Every default works on a fresh machine with nothing configured: services bind to 127.0.0.1 on free ports and
keep their data under the project's ``.state`` folder. The engines' settings are sections of the one model
(``settings.kafka``, ``settings.connect``, ``settings.cassandra``, ``settings.flink``, ``settings.jvm``,
``settings.snowflake``), each read from its own variables (``OLIST_KAFKA_PORT`` is ``settings.kafka.port``).
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_root() -> Path:
    """``~/.cache/olist-lambda`` (or under ``XDG_CACHE_HOME``): jars and the Flink venv, shared by every clone."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "olist-lambda"


# A configured password goes into JAAS lines, Java properties files and SCRAM arguments as is: letters, digits and
# _ - . ~ only (what the generated ones are made of), 12 or more.
PASSWORD = r"^[A-Za-z0-9_.~-]{12,}$"


# Cassandra's consistency levels, by the driver's names.
Consistency = Literal["ONE", "TWO", "THREE", "QUORUM", "ALL", "LOCAL_QUORUM", "EACH_QUORUM", "LOCAL_ONE"]

# The datacenter Cassandra's SimpleSnitch puts a local node in (the local node's, the rehearsal's ring's, and the
# default of ``cassandra.local_dc``); a deployment's comes from its settings.
LOCAL_DC = "datacenter1"


def replication_cql(replication: Mapping[str, int]) -> str:
    """A keyspace's ``replication`` map: NetworkTopologyStrategy, replicas per datacenter (here, beside LOCAL_DC, so
    the engines (emulation/rehearsal.py) and the serving keyspace's DDL (pipeline.contracts) write it alike)."""
    return "{'class': 'NetworkTopologyStrategy'" + "".join(f", '{dc}': {n}" for dc, n in replication.items()) + "}"


def password(description: str) -> Any:
    """An optional password setting (unset: generated at first start and kept 0600 in the state folder)."""
    return Field(None, pattern=PASSWORD, description=description)


def _section(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, env_file=".env", extra="ignore", hide_input_in_errors=True)


class JvmSettings(BaseSettings):
    """The JVM engines' jars, launcher and options (``OLIST_JVM_CACHE_DIR``, ``OLIST_KAFKA_VERSION`` ...)."""

    model_config = _section("OLIST_")

    jvm_cache_dir: Path = Field(default_factory=lambda: cache_root() / "jvm", description="Jars fetched by Maven.")
    java_bin: str = Field("java", description="The java launcher (Java 17+).")
    mvn_bin: str = Field("mvn", description="The Maven launcher used to fetch the jars once.")
    kafka_version: str | None = Field(None, description="Unset: the pom's pin (4.3.1).")
    debezium_version: str | None = Field(None, description="Unset: the pom's pin (3.6.1.Final).")
    cassandra_version: str | None = Field(None, description="Unset: the pom's pin (5.0.9).")
    jvm_fetch_timeout: float = Field(1200.0, description="Seconds a cold Maven fetch may take.")
    jvm_start_timeout: float = Field(120.0, description="Seconds a JVM engine may take to become healthy.")
    jvm_opts: str = Field("-XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError",
                          description="Extra JVM options for every engine (small footprint; die rather than limp).")


class KafkaSettings(BaseSettings):
    """The local KRaft broker (``OLIST_KAFKA_*``)."""

    model_config = _section("OLIST_KAFKA_")

    bootstrap_servers: str | None = Field(None, description="An existing cluster (host:port,...), used but never "
                                          "started here; its principals' passwords must then be set. Unset: the "
                                          "local broker.")
    security_protocol: Literal["SASL_PLAINTEXT", "SASL_SSL"] = Field("SASL_PLAINTEXT", description="Clients' "
                                                                      "protocol (SASL_SSL: TLS to the brokers).")
    ssl_ca_location: Path | None = Field(None, description="With SASL_SSL: the CA bundle (PEM) the brokers' "
                                         "certificates are checked against; unset: the system's.")
    replication_factor: int | None = Field(None, ge=1, description="Replicas of every topic the platform creates "
                                           "(the contracts give partitions and config), Connect's internal topics "
                                           "too; unset: 1 on the local broker, the cluster's default on a "
                                           "deployment's.")
    min_insync_replicas: int | None = Field(None, ge=1, description="min.insync.replicas of those topics (with "
                                            "acks=all, the replicas a write must reach); unset: the broker's.")
    port: int = Field(0, ge=0, lt=65536, description="Broker listener; 0 picks a free port at first start.")
    controller_port: int = Field(0, ge=0, lt=65536, description="KRaft controller; 0 picks a free port.")
    heap_mb: int = Field(384, ge=128, description="Broker heap, -Xmx (-Xms is half).")
    retention_ms: int = Field(6 * 3600 * 1000, ge=60_000, description="Default retention of topics without one.")
    # SASL/SCRAM on the listener and ACLs, one principal per component; unset passwords are generated at first
    # start and kept in the broker's state folder (0600). admin is a super user (topics, ACLs, tests, checks).
    sasl_mechanism: Literal["SCRAM-SHA-512", "SCRAM-SHA-256"] = Field("SCRAM-SHA-512", description="Clients' SASL.")
    broker_password: str | None = password("olist_broker: inter-broker and controller traffic.")
    admin_password: str | None = password("olist_admin: a super user for the platform's own checks.")
    connect_password: str | None = password("olist_connect: the Connect worker (CDC topic).")
    flink_password: str | None = password("olist_flink: reads the raw topic, writes the windowed.")
    sink_password: str | None = password("olist_sink: reads the windowed topics.")
    archive_password: str | None = password("olist_archive: reads the raw topic.")


class ConnectSettings(BaseSettings):
    """The Kafka Connect worker running Debezium (``OLIST_CONNECT_*``)."""

    model_config = _section("OLIST_CONNECT_")

    urls: str | None = Field(None, description="An existing Connect cluster's REST URL(s), comma-separated (the first "
                             "that answers is used); never started here. Unset: the local worker.")
    secrets_dir: Path | None = Field(None, description="The folder the workers' file config provider may read, on "
                                     "their machines: the CDC password is written there. Unset: <state_dir>/secrets "
                                     "(the local worker's).")
    port: int = Field(0, ge=0, lt=65536, description="REST port; 0 picks a free port.")
    heap_mb: int = Field(512, ge=128, description="Worker heap, -Xmx (-Xms is half).")
    rest_user: str = Field("olist_admin", description="Basic authentication on the REST API.")
    rest_password: str | None = password("Unset: generated at first start, kept (0600).")
    # The CDC records' producer and the worker's offset commits (cost levers, measured by bench_streaming_cost).
    # Measured together: Connect 0.79x and Kafka 0.67x the CPU per change at 1,500/s, CDC lag p99 unchanged.
    linger_ms: int = Field(50, ge=0, description="producer.linger.ms of the CDC records (Kafka 4's default: 5).")
    batch_size: int = Field(262_144, ge=1024, description="producer.batch.size in bytes (Kafka's default: 16,384).")
    offset_flush_interval_ms: int = Field(10_000, ge=100, description="How often source offsets (and so the "
                                          "replication slot's confirmed position) are committed (default: 60,000).")
    exactly_once_source: bool = Field(False, description="Exactly-once source support on the workers "
                                      "(exactly.once.source.support) and required by the CDC connector: its records "
                                      "and offsets are committed in one Kafka transaction, so a worker killed "
                                      "mid-stream duplicates nothing for read_committed consumers.")
    scheduled_rebalance_max_delay_ms: int = Field(10_000, ge=0, description="How long a dead worker's connectors "
                                                  "and tasks wait before moving to a live worker (Connect's "
                                                  "default: 300,000 = 5 minutes of no CDC).")


class CassandraSettings(BaseSettings):
    """The local Cassandra node (``OLIST_CASSANDRA_*``)."""

    model_config = _section("OLIST_CASSANDRA_")

    contact_points: str | None = Field(None, description="An existing cluster's nodes (host[:port],...), used but "
                                       "never started here; its roles' passwords must then be set. Unset: the "
                                       "local node.")
    local_dc: str = Field(LOCAL_DC, description="The driver's local datacenter (requests go to its nodes "
                          "first) and where the keyspace's replicas are placed.")
    replication_factor: int = Field(1, ge=1, description="Replicas of the serving keyspace in local_dc "
                                    "(NetworkTopologyStrategy); an existing keyspace is altered to match.")
    write_consistency: Consistency = Field("LOCAL_QUORUM", description="Consistency of the sink's writes.")
    read_consistency: Consistency = Field("LOCAL_QUORUM", description="Consistency of the dashboard's and reconcile's "
                                  "reads (with the writes' at QUORUM, a read sees every acknowledged write).")
    port: int = Field(0, ge=0, lt=65536, description="CQL native port; 0 picks a free port at first start.")
    storage_port: int = Field(0, ge=0, lt=65536, description="Internode port; 0 picks a free one.")
    heap_mb: int = Field(640, ge=256, description="Heap, -Xmx (-Xms is half).")
    # Password authentication and role-based authorisation, one role per component; unset: generated at first
    # start and kept in the node's state folder (0600).
    admin_password: str | None = password("olist_admin: creates the keyspace and grants.")
    sink_password: str | None = password("olist_sink: writes (and reads) the serving tables.")
    reader_password: str | None = password("olist_reader: the dashboard and reconcile read.")


class FlinkSettings(BaseSettings):
    """The Flink job (``OLIST_FLINK_*``): the one place its defaults are declared; the job takes them as arguments."""

    model_config = _section("OLIST_FLINK_")

    venv_base: Path = Field(default_factory=cache_root, description="Where flink-venv-<hash> is created.")
    python: str = Field(sys.executable, description="Interpreter the venv is made from (3.9..3.12).")
    window_seconds: float = Field(10.0, gt=0, description="Tumbling window size.")
    watermark_delay_seconds: float = Field(2.0, ge=0, description="Bounded out-of-orderness of commit times.")
    checkpoint_interval_seconds: float = Field(2.0, gt=0, description="Results are committed on checkpoints.")
    group_id: str = Field("olist-flink-payments", description="Consumer group prefix of the job (one per source).")
    startup_mode: str = Field("earliest-offset", description="Where the job starts reading the CDC topic.")
    state_ttl: str = Field("7 d", description="Idle state retention: a payment unchanged this long leaves the job's "
                           "state (the raw topic and the serving tables keep 7 days too); 0 keeps every key.")
    transaction_timeout_ms: int = Field(600_000, description="At most the broker's transaction.max.timeout.ms.")
    parallelism: int = Field(1, ge=1, description="Default parallelism of the job's operators.")
    mini_batch_latency_ms: int = Field(0, ge=0, description="0: off (measured: it does not pay here). Else the "
                                       "operators buffer changes this long and emit each key once (two-phase).")
    restart_attempts: int = Field(-1, ge=-1, description="Restarts after a failure: -1 unbounded (exponential "
                                  "backoff 1 s .. 30 s), 0 none, N at most N.")
    transactional_id_prefix: str = Field("olist-flink-payments", description="Stable across starts, so a new run "
                                         "aborts the open Kafka transactions of a dead one.")
    rest_port: int = Field(0, ge=0, lt=65536, description="Mini-cluster REST port; 0 picks a free one.")
    jvm_opts: str = Field("", description="Options of the job's JVM (PyFlink's JVM_ARGS); empty: PyFlink's defaults "
                          "(G1, a quarter of the machine's memory as heap).")
    venv_timeout: float = Field(1800.0, description="Seconds creating the venv may take (a cold download).")
    start_timeout: float = Field(180.0, description="Seconds the job may take to reach RUNNING.")
    # Where the job runs: its own mini-cluster, or a session cluster it is submitted to with `flink run`.
    mode: Literal["local", "session"] = Field("local", description="local: the job on a mini-cluster in its own "
                                              "process; session: submitted with `flink run` to rest_url.")
    rest_url: str | None = Field(None, pattern=r"^http://[^/]+:\d+/?$", description="The session cluster's REST "
                                 "URL (http://host:port); required with mode session.")
    # The local session cluster (emulation/flink_session.py): a JobManager and TaskManagers on bind_host.
    taskmanagers: int = Field(2, ge=1, description="TaskManagers of the local session cluster (flink-tm-1 ...).")
    task_slots: int = Field(2, ge=1, description="Slots per TaskManager: 2, so one TaskManager can run the whole "
                            "job (parallelism 1 or 2) when the other dies.")
    jobmanager_port: int = Field(0, ge=0, lt=65536, description="The local JobManager's REST port; 0 picks a free "
                                 "one at first start (kept).")
    jobmanager_rpc_port: int = Field(0, ge=0, lt=65536, description="Its RPC port (TaskManagers register there); 0 "
                                     "picks a free one (kept).")
    jobmanager_memory_mb: int = Field(768, ge=768, description="jobmanager.memory.process.size of the local "
                                      "JobManager: 256 MB metaspace, 192 MB overhead, 128 MB off-heap, the rest heap.")
    taskmanager_memory_mb: int = Field(1024, ge=896, description="taskmanager.memory.process.size of each local "
                                       "TaskManager; the task heap (the job's state, heap backend) is what metaspace, "
                                       "overhead, framework, network and managed memory leave: 192 MB at 1024.")

    def model_post_init(self, context: Any) -> None:
        if self.mode == "session" and not self.rest_url:
            raise ValueError("OLIST_FLINK_MODE=session needs OLIST_FLINK_REST_URL (the session cluster's REST URL)")


class SnowflakeSettings(BaseSettings):
    """The standard ``SNOWFLAKE_*`` variables (the same ones dbt's profile reads); unset account: fakesnow."""

    model_config = SettingsConfigDict(env_prefix="SNOWFLAKE_", extra="ignore", hide_input_in_errors=True)

    account: str | None = None
    user: str | None = None
    password: str | None = None
    role: str | None = None
    warehouse: str | None = None
    database: str = "OLIST"
    host: str | None = None
    port: int | None = None
    protocol: str | None = None
    # copy_into: COPY INTO from an external stage over the bucket (real Snowflake); stage: the committed files PUT
    # to an internal stage, then COPY INTO from it (fakesnow, which cannot reach S3; or an account without one)
    bronze_load: Literal["copy_into", "stage"] = "copy_into"
    # COPY INTO reads the bucket through a storage integration the account admin made (CREATE STORAGE
    # INTEGRATION ... STORAGE_ALLOWED_LOCATIONS = ('s3://<bucket>/')): no key ever goes into SQL text.
    storage_integration: str | None = None


class Settings(BaseSettings):
    """Ports, folders, credentials and scale; override any field with ``OLIST_<FIELD>``, a section's with its
    own prefix (``OLIST_KAFKA_HEAP_MB``)."""

    model_config = SettingsConfigDict(env_prefix="OLIST_", env_file=".env", extra="ignore",
                                      hide_input_in_errors=True)  # never a password in an error

    state_dir: Path = Field(PROJECT_ROOT / ".state", description="Runtime state of local services.")
    data_dir: Path = Field(PROJECT_ROOT / "data" / "sample", description="Where the CSV files are read.")
    scale: float = Field(0.02, gt=0, le=5, description="Generator scale; 1.0 = the full Olist data set.")
    seed: int = Field(42, description="Generator seed; same seed, same bytes.")

    bind_host: str = Field("127.0.0.1", description="Every local service binds here only.")
    pg_dsn: str | None = Field(None, description="An existing server (``host=H port=P dbname=D``, no password: "
                               "OLIST_PG_PASSWORD, OLIST_PG_ADMIN_PASSWORD and OLIST_PG_CDC_PASSWORD must then be "
                               "set), used but never started here. Unset: the local one.")
    pg_port: int = Field(0, ge=0, lt=65536, description="0 picks a free port at first start.")
    pg_database: str = "olist"
    pg_schema: str = "olist"
    pg_user: str = Field("olist", description="The pipeline's role: owns the database and its schema, no superuser.")
    pg_password: str | None = password("Unset: a random one is made at first start.")
    pg_admin_user: str = Field("olist_admin", description="The cluster's superuser: roles and replication slots only.")
    pg_admin_password: str | None = password("Unset: a random one is made at first start.")
    pg_cdc_password: str | None = password("The CDC role's (olist_cdc); unset: a random one made at first use.")
    pg_os_user: str = Field("postgres", description="Unprivileged OS user that runs PostgreSQL as root.")
    pg_bin_dir: Path | None = Field(None, description="Unset: the newest /usr/lib/postgresql/*/bin.")
    pg_wal_writer_delay_ms: int = Field(10, ge=1, le=10_000, description="How often the WAL writer flushes "
                                        "async commits, so the walsender (CDC) sees them (PostgreSQL's default: 200; "
                                        "10 cut CDC lag p99 from 274 to 110 ms at no measurable CPU).")

    s3_endpoint_url: str | None = Field(None, description="Unset: the local emulator (olist up s3).")
    s3_emulator: Literal["auto", "localstack", "moto"] = Field(
        "auto", description="The local S3 emulator: localstack, moto, or auto (LocalStack where a Python 3.13 "
        "interpreter is found, else moto, saying why).")
    localstack_python: Path | None = Field(None, description="The Python 3.13 interpreter LocalStack's own venv is "
                                           "made from; unset: python3.13 on PATH, then pyenv's 3.13.")
    s3_port: int = Field(0, ge=0, lt=65536, description="Local S3 port; 0 picks a free one.")
    s3_region: str = "us-east-1"
    s3_bucket: str = "olist-lake"
    # Per-deployment keys. With the local emulator an unset secret is generated at first start and kept in its
    # state folder (0600); with OLIST_S3_ENDPOINT_URL unset keys leave it to AWS's own credential chain.
    s3_access_key_id: str | None = Field(None, description="Access key id (unset: olist locally, AWS's chain "
                                         "elsewhere).")
    s3_secret_access_key: str | None = Field(None, description="Secret key; see above.")
    bronze_prefix: str = "bronze"
    raw_prefix: str = Field("raw", description="Key prefix of the raw archive of the CDC topic.")
    duckdb_path: Path | None = Field(None, description="DuckDB warehouse; unset: <state_dir>/warehouse/olist.duckdb.")
    dashboard_target: Literal["duckdb", "snowflake"] = Field(
        "duckdb", description="Warehouse the BI views read: duckdb (the local file) or snowflake (SNOWFLAKE_*).")

    service_start_timeout: float = 60.0

    # Where PostgreSQL and S3 run (emulation/containers.py): local processes, or containers through testcontainers.
    engines: Literal["processes", "containers"] = Field(
        "processes", description="processes: PostgreSQL and the S3 emulator as local processes; containers: in "
        "containers (a Docker engine, else podman), behind the same services. Kafka, Connect and Cassandra stay "
        "processes either way.")
    postgres_image: str = Field("postgres:15.18-bookworm", description="PostgreSQL's image with engines=containers. "
                                "Left unset and absent from the engine, the equivalent `nox -s images` built is used.")
    localstack_image: str = Field("localstack/localstack:4.13.1", description="LocalStack's image (S3) with "
                                  "engines=containers; the same rule.")

    stream_rate: float = Field(300.0, gt=0, description="Demo: payment-row changes per second the simulator commits.")
    stream_seconds: float = Field(60.0, gt=0, description="Demo: how long the simulator runs.")
    stream_seed: int = Field(7, description="Demo: the simulator's seed.")

    jvm: JvmSettings = Field(default_factory=JvmSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    connect: ConnectSettings = Field(default_factory=ConnectSettings)
    cassandra: CassandraSettings = Field(default_factory=CassandraSettings)
    flink: FlinkSettings = Field(default_factory=FlinkSettings)
    snowflake: SnowflakeSettings = Field(default_factory=SnowflakeSettings)

    @property
    def quarantine_table(self) -> str:
        return "load_quarantine"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file."""
        return self.duckdb_path or self.state_dir / "warehouse" / "olist.duckdb"

    def dbt_target_dir(self, target: str = "duckdb") -> Path:
        """dbt's target folder (manifest, compiled SQL, run results, the lineage docs) for ``target``: one per state
        folder, so two deployments (or two test workers) from one clone never write each other's."""
        return self.state_dir / "dbt" / f"target-{target}"

    def replace(self, **changes: Any) -> Settings:
        """A copy with fields changed; a dict for a section changes only the fields it names
        (``settings.replace(flink={"window_seconds": 2})``)."""
        update = {}
        for name, value in changes.items():
            current = getattr(self, name)
            if isinstance(value, dict) and isinstance(current, BaseSettings):
                value = current.model_validate(current.model_dump() | value)  # validated: 2 becomes 2.0
            update[name] = value
        return self.model_validate(self.model_dump() | update)


@functools.cache
def get_settings() -> Settings:
    return Settings()


def settings_problem(exc: ValidationError) -> str | None:
    """One line naming each environment variable a settings model refused and why (never its value: it may be a
    secret); None when ``exc`` is not a settings model's."""
    model = globals().get(exc.title)
    if not (isinstance(model, type) and issubclass(model, BaseSettings)):
        return None
    prefix = model.model_config.get("env_prefix", "")
    refused = [f"{prefix}{'_'.join(str(p) for p in e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
    return "settings: " + "; ".join(refused)
