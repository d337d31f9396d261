"""A deployment is where each engine runs: the local emulators (the default: each found through the endpoint file
it wrote at start) or endpoints the settings name, like dagster's resources: ``OLIST_PG_DSN``,
``OLIST_KAFKA_BOOTSTRAP_SERVERS``, ``OLIST_CONNECT_URLS``, ``OLIST_CASSANDRA_CONTACT_POINTS``,
``OLIST_S3_ENDPOINT_URL`` (and Flink's ``OLIST_FLINK_REST_URL``), each with its credentials. An engine the
settings name is used, never started, stopped or deleted here; :func:`emulation.resources.engine` is where that
choice is made, once. (Snowflake is named by ``SNOWFLAKE_*`` for the promotion; unset, fakesnow stands in.)

:func:`deployment_of` turns running local engines into such settings (every endpoint and password named, a state
folder of its own), so a suite, a rehearsal cluster or another checkout can run the platform on them by settings
alone.
"""

from __future__ import annotations

from pathlib import Path

from emulation.cassandra import ROLES
from emulation.connect import secrets_dir
from emulation.kafka import PRINCIPALS
from emulation.resources import engine
from pipeline.settings import Settings

ENGINES = ("postgres", "kafka", "connect", "cassandra", "s3")


def external_engines(settings: Settings) -> list[str]:
    """The engines these settings name (the others are the local emulators)."""
    from emulation.registry import all_services

    return [name for name, service in all_services(settings, on_demand=True).items() if service.external]


def deployment_of(local: Settings, state_dir: Path, engines: tuple[str, ...] = ENGINES) -> Settings:
    """Settings naming the running local ``engines`` of ``local`` by endpoint and password, with ``state_dir`` as
    the platform's own state folder (which then holds no endpoint file of theirs)."""
    changes: dict[str, object] = {"state_dir": state_dir}
    if "postgres" in engines:
        pg = engine("postgres", local)
        ep = pg.endpoint()
        assert ep is not None, "postgres has not started"
        changes |= {"pg_dsn": f"host={ep.host} port={ep.port} dbname={ep.extra['dbname']}",
                    "pg_password": pg.password(), "pg_admin_password": pg.admin_password(),
                    "pg_cdc_password": pg.cdc_password()}
    if "kafka" in engines:
        kafka = engine("kafka", local)
        changes["kafka"] = {"bootstrap_servers": kafka.bootstrap_servers(),
                            **{f"{p}_password": kafka.credentials(p)[1] for p in PRINCIPALS}}
    if "connect" in engines:
        connect = engine("connect", local)
        changes["connect"] = {"urls": ",".join(connect.urls), "rest_password": connect.rest_credentials()[1],
                              "secrets_dir": secrets_dir(local)}
    if "cassandra" in engines:
        cassandra = engine("cassandra", local)
        hosts, port = cassandra.contact()
        changes["cassandra"] = {"contact_points": ",".join(hosts), "port": port,
                                **{f"{r}_password": cassandra.credentials(r)[1] for r in ROLES}}
    if "s3" in engines and local.s3_endpoint_url is None:
        s3 = engine("s3", local)
        ep = s3.endpoint()
        assert ep is not None, "s3 has not started"
        key_id, secret = s3.credentials()
        changes |= {"s3_endpoint_url": ep.extra["url"], "s3_access_key_id": key_id, "s3_secret_access_key": secret}
    return local.replace(**changes)
