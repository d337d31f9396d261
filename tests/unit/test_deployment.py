"""A deployment named by settings: every engine reached at the endpoints given, nothing needing a local process id
or endpoint file, nothing of the deployment's ever stopped or deleted, and a missing password a one-line error
naming its variable."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from emulation.deployment import external_engines
from emulation.kafka import PRINCIPALS
from emulation.resources import engine
from emulation.service import ServiceError, free_port
from pipeline import platform
from pipeline.settings import Settings

PASSWORD = "p4ssword-of-the-deployment"


@pytest.fixture
def deployment(tmp_path: Path) -> Settings:
    """Every engine named, at ports nobody listens on, with every password given; an empty state folder."""
    closed = free_port()
    return Settings(state_dir=tmp_path / "state").replace(
        pg_dsn=f"host=127.0.0.1 port={closed} dbname=shop", pg_password=PASSWORD, pg_admin_password=PASSWORD,
        pg_cdc_password=PASSWORD,
        kafka={"bootstrap_servers": f"127.0.0.1:{closed},127.0.0.2:{closed}",
               **{f"{p}_password": PASSWORD for p in PRINCIPALS}},
        connect={"urls": f"http://127.0.0.1:{closed}", "rest_password": PASSWORD},
        cassandra={"contact_points": "127.0.0.1,127.0.0.2,127.0.0.3", "local_dc": "dc1", "write_consistency": "QUORUM",
                   "read_consistency": "LOCAL_ONE", "admin_password": PASSWORD, "sink_password": PASSWORD,
                   "reader_password": PASSWORD})


def test_every_engine_is_reached_where_the_settings_say_without_a_process_or_endpoint_file(deployment):
    pg, kafka = engine("postgres", deployment), engine("kafka", deployment)
    connect, cassandra = engine("connect", deployment), engine("cassandra", deployment)
    assert sorted(external_engines(deployment)) == ["cassandra", "connect", "kafka", "postgres"]
    for service in (pg, kafka, connect, cassandra):
        assert service.available() and service.pid() is None
    assert "dbname=shop" in pg.conninfo() and f"password={PASSWORD}" in pg.conninfo()
    assert kafka.client_config("flink")["bootstrap.servers"] == deployment.kafka.bootstrap_servers
    assert cassandra.contact() == (["127.0.0.1", "127.0.0.2", "127.0.0.3"], 9042)
    assert not deployment.state_dir.exists(), "nothing of the deployment's is written to the state folder"


def test_the_drivers_take_the_datacenter_and_the_consistency_of_each_role(deployment):
    from cassandra import ConsistencyLevel
    from cassandra.cluster import EXEC_PROFILE_DEFAULT

    cassandra = engine("cassandra", deployment)
    for role, level in (("sink", ConsistencyLevel.QUORUM), ("reader", ConsistencyLevel.LOCAL_ONE)):
        cluster = cassandra.cluster(role, metadata=False)
        profile = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT]
        assert cluster.contact_points == ["127.0.0.1", "127.0.0.2", "127.0.0.3"]
        assert profile.consistency_level == level
        assert profile.load_balancing_policy._child_policy.local_dc == "dc1"


def test_kafka_clients_speak_tls_with_the_deployments_ca(deployment, tmp_path):
    ca = tmp_path / "ca.pem"
    tls = deployment.replace(kafka={"security_protocol": "SASL_SSL", "ssl_ca_location": ca})
    kafka = engine("kafka", tls)
    assert kafka.security("sink") | {"sasl.password": "-"} == {
        "security.protocol": "SASL_SSL", "sasl.mechanisms": "SCRAM-SHA-512", "sasl.username": "olist_sink",
        "sasl.password": "-", "ssl.ca.location": str(ca)}
    java = kafka.java_security("flink")
    assert java["security.protocol"] == "SASL_SSL" and java["ssl.truststore.location"] == str(ca)
    assert java["ssl.truststore.type"] == "PEM"


@pytest.mark.parametrize(("section", "field", "variable", "call"), [
    ("kafka", "sink_password", "OLIST_KAFKA_SINK_PASSWORD", lambda s: engine("kafka", s).client_config("sink")),
    ("connect", "rest_password", "OLIST_CONNECT_REST_PASSWORD", lambda s: engine("connect", s).rest_credentials()),
    ("cassandra", "reader_password", "OLIST_CASSANDRA_READER_PASSWORD",
     lambda s: engine("cassandra", s).credentials("reader")),
    (None, "pg_cdc_password", "OLIST_PG_CDC_PASSWORD", lambda s: engine("postgres", s).cdc_password()),
])
def test_a_deployment_without_a_password_is_one_line_naming_its_variable(deployment, section, field, variable, call):
    unset = deployment.replace(**({section: {field: None}} if section else {field: None}))
    with pytest.raises(ServiceError) as caught:
        call(unset)
    assert variable in str(caught.value) and "\n" not in str(caught.value)
    assert not unset.state_dir.exists(), "no password is made up for someone else's engine"


@pytest.mark.parametrize(("dsn", "message"), [
    ("host=db password=oops", "OLIST_PG_PASSWORD"),
    ("host=db user=someone", "OLIST_PG_USER"),
    ("host=db1,db2 port=5432,5432", "one host and port"),
    ("dbname=shop", "one host and port"),
])
def test_a_dsn_naming_credentials_or_several_hosts_is_refused(deployment, dsn, message):
    with pytest.raises(ServiceError, match=message):
        engine("postgres", deployment.replace(pg_dsn=dsn)).endpoint()


def test_the_dsns_own_options_reach_every_connection_and_the_connector(deployment):
    import psycopg

    from pipeline.speed.cdc.connector import connector_config

    tls = deployment.replace(pg_dsn="host=db.example port=6432 dbname=shop sslmode=verify-full sslrootcert=/ca.pem")
    pg = engine("postgres", tls)
    for conninfo in (pg.conninfo(), pg.admin_conninfo()):
        parsed = psycopg.conninfo.conninfo_to_dict(conninfo)
        assert (parsed["host"], parsed["port"], parsed["sslmode"], parsed["sslrootcert"]) == (
            "db.example", "6432", "verify-full", "/ca.pem")
    config = connector_config(pg, tls.replace(connect={"secrets_dir": tls.state_dir / "secrets"}))
    assert (config["database.sslmode"], config["database.sslrootcert"]) == ("verify-full", "/ca.pem")


def test_contact_points_may_name_their_one_port(deployment):
    named = engine("cassandra", deployment.replace(cassandra={"contact_points": "10.0.0.1:9142, 10.0.0.2:9142"}))
    assert named.contact() == (["10.0.0.1", "10.0.0.2"], 9142)
    with pytest.raises(ServiceError, match="one CQL port"):
        engine("cassandra", deployment.replace(cassandra={"contact_points": "10.0.0.1:9142,10.0.0.2"})).contact()


def test_a_deployments_topics_take_the_clusters_defaults_unless_the_settings_say(deployment):
    assert engine("kafka", deployment).replication_factor() == -1, "the cluster's default.replication.factor"
    assert engine("kafka", deployment)._min_isr() == {}, "the broker's min.insync.replicas"
    told = engine("kafka", deployment.replace(kafka={"replication_factor": 3, "min_insync_replicas": 2}))
    assert (told.replication_factor(), told._min_isr()) == (3, {"min.insync.replicas": "2"})
    assert engine("kafka", Settings()).replication_factor() == 1, "our own broker has one node"


def test_a_missing_password_is_said_at_start_not_after_a_timeout(deployment):
    import time

    unset = deployment.replace(kafka={"admin_password": None}, service_start_timeout=30)
    started = time.monotonic()
    with pytest.raises(ServiceError, match="OLIST_KAFKA_ADMIN_PASSWORD"):
        engine("kafka", unset).start()
    assert time.monotonic() - started < 5


def test_a_deployments_connect_needs_the_workers_secrets_folder(deployment):
    from emulation.connect import secrets_dir

    with pytest.raises(ServiceError, match="OLIST_CONNECT_SECRETS_DIR"):
        secrets_dir(deployment)


def test_down_and_purge_leave_the_deployments_engines_alone(deployment):
    report = platform.down(deployment, purge=True)
    assert {"postgres", "kafka", "connect", "cassandra"} <= set(report.external)
    assert not {"postgres", "kafka", "connect", "cassandra"} & set(report.stopped)


def test_an_unreachable_engine_of_the_deployment_fails_start_naming_where(deployment):
    with pytest.raises(ServiceError, match=r"the deployment's postgres at 127\.0\.0\.1:\d+ is not answering"):
        engine("postgres", deployment.replace(service_start_timeout=1)).start()


@pytest.fixture
def worker() -> Iterator[str]:
    """A stand-in for a Connect worker's REST root (only to see which URL a call reaches)."""

    class Root(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"version": "4.3.1"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Root)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_a_call_to_connect_goes_to_the_next_worker_when_one_is_down(deployment, worker):
    down = f"http://127.0.0.1:{free_port()}"
    connect = engine("connect", deployment.replace(connect={"urls": f"{down}, {worker}/"}))
    assert connect.urls == [down, worker]
    assert connect._call("GET", "/") == (200, {"version": "4.3.1"})


def test_a_superuser_name_single_user_mode_cannot_quote_is_refused_in_one_line(tmp_path):
    """The repair of a cluster without the settings' superuser writes the name into a statement: anything but a plain
    identifier is refused, naming it, before any program runs on the cluster."""
    pg = engine("postgres", Settings(state_dir=tmp_path, pg_admin_user="admin'; drop"))
    with pytest.raises(ServiceError) as err:
        pg._set_admin(tmp_path / "no-binaries-here")  # a program run from here would fail otherwise
    assert str(err.value).splitlines()[0] == "postgres: the superuser's name \"admin'; drop\" is not a plain identifier"
