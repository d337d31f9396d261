"""Every emulated service, by name, in start order."""

from __future__ import annotations

from emulation.postgres import PostgresService
from emulation.s3 import S3Service
from emulation.service import Service
from pipeline.settings import Settings, get_settings


def all_services(settings: Settings | None = None, on_demand: bool = False) -> dict[str, Service]:
    """The services `olist up` starts; with ``on_demand`` also those started by name or by the command
    needing them (Kafka, Connect and Cassandra: `olist up kafka connect cassandra`; the Flink job, the sink, the
    archive and the CDC watchdog, supervised: `olist up flink serve archive watchdog`; the Snowflake stand-in:
    `olist promote`; the dashboards: `olist dashboard --background`), so `down` and `status` cover them too."""
    settings = settings or get_settings()
    services: dict[str, Service] = {"postgres": PostgresService(settings), "s3": S3Service(settings)}
    if on_demand:
        from emulation.cassandra import CassandraService
        from emulation.connect import ConnectService
        from emulation.dashboard import DashboardService
        from emulation.flink import FlinkJobService
        from emulation.kafka import KafkaService
        from emulation.snowflake import FakesnowService
        from emulation.supervisor import SupervisorService
        from pipeline.speed.services import ArchiveService, SinkService, WatchdogService

        services["kafka"] = KafkaService(settings)
        services["connect"] = ConnectService(settings)
        services["cassandra"] = CassandraService(settings)
        # the speed lane's own pieces, supervised (restarted after a failure); `down` stops them before the engines
        services["supervisor"] = SupervisorService(settings)
        services["flink"] = FlinkJobService(settings)
        services["serve"] = SinkService(settings)
        services["archive"] = ArchiveService(settings)
        services["watchdog"] = WatchdogService(settings)
        services["snowflake"] = FakesnowService(settings)
        services["dashboard"] = DashboardService(settings)
    return services


def get_service(name: str, settings: Settings | None = None) -> Service:
    services = all_services(settings, on_demand=True)
    if name not in services:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(services)}")
    return services[name]
