"""The platform's services as a whole: emulation's engines and the pipeline's own supervised programs, in one map;
start them, stop them, and say how each is doing (typed reports)."""

from __future__ import annotations

import ipaddress
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emulation import registry
from emulation.resources import engine
from emulation.service import Service, ServiceStatus
from pipeline.progress import SILENT, Progress
from pipeline.settings import Settings

# The pipeline's own long-running pieces, supervised (restarted after a failure) by emulation's supervisor: by name in
# start order, each "module:class" imported only when built. The one place they are registered: emulation's registry
# puts them right after the supervisor (so `down` stops them before it and the engines), each service registers its
# program with the supervisor as it starts, and pipeline/speed/run.py runs the service's ``run``.
PROGRAMS = {
    "flink": "pipeline.speed.services:FlinkService",
    "serve": "pipeline.speed.services:SinkService",
    "archive": "pipeline.speed.services:ArchiveService",
    "watchdog": "pipeline.speed.services:WatchdogService",
}
DEFAULT_SERVICES = registry.DEFAULT_SERVICES
"""What `olist up` starts with no names, in start order."""
ON_DEMAND_SERVICES = registry.on_demand_names(PROGRAMS)
"""The services started by name (`olist up NAME`) or by the command needing them, in start order."""


def all_services(settings: Settings | None = None, on_demand: bool = False) -> dict[str, Service]:
    """Every service of the platform by name in start order: emulation's engines (with ``on_demand`` also those
    started by name or by the command needing them) and the pipeline's supervised :data:`PROGRAMS`."""
    return registry.all_services(settings, on_demand, PROGRAMS)


def get_service(name: str, settings: Settings | None = None) -> Service:
    return registry.get_service(name, settings, PROGRAMS)


@dataclass(frozen=True)
class Started:
    name: str
    address: str
    seconds: float
    detail: str = ""  # which emulator runs, and why (a fallback says what was missing)


def up(settings: Settings, names: list[str] | None = None, progress: Progress = SILENT) -> list[Started]:
    """Start the named services (default: PostgreSQL and S3) and wait until each is healthy."""
    chosen = [get_service(n, settings) for n in names] if names else list(all_services(settings).values())
    started = []
    for svc in chosen:
        progress.update(f"up {svc.name}", description=f"starting {svc.name}", total=None)
        t0 = time.perf_counter()
        ep = svc.start()
        started.append(Started(svc.name, ep.address, time.perf_counter() - t0, svc.detail()))
        progress.update(f"up {svc.name}", description=f"{svc.name} up", total=1, completed=1)
    return started


def start_dashboard(settings: Settings, port: int = 0) -> str:
    """The dashboards as a background service (`olist down` stops it); returns their URL."""
    from emulation.dashboard import DashboardService

    service = DashboardService(settings, port)
    service.start()
    return str(service.url)


@dataclass
class DownReport:
    stopped: list[str]
    purged: bool
    external: list[str] = field(default_factory=list)  # the deployment's engines: never stopped or purged here


def down(settings: Settings, purge: bool = False) -> DownReport:
    """Stop every local engine; with ``purge`` delete their state. The CDC connector's offsets (in Kafka) and its
    replication slot (in PostgreSQL) are kept, so the next start resumes streaming where it stopped and changes
    made meanwhile arrive as the events they were; ``purge`` deletes both together. Engines the deployment names
    (``OLIST_KAFKA_BOOTSTRAP_SERVERS`` ...) are left as they are."""
    report = DownReport([], purge)
    services = all_services(settings, on_demand=True)
    if purge and services["postgres"].external != services["connect"].external:
        from pipeline.speed import cdc

        cdc.stop(settings)  # one of the two is the deployment's: end the offsets and the slot together here
    for svc in reversed(list(services.values())):
        if svc.external:
            report.external.append(svc.name)
        elif purge and hasattr(svc, "destroy"):
            svc.destroy()
            report.stopped.append(svc.name)
        else:
            svc.stop()
            report.stopped.append(svc.name)
    return report


@dataclass
class StatusReport:
    services: list[tuple[ServiceStatus, Path]]  # each service's status and its log
    connector: dict[str, Any] | None = None  # Connect's status of the CDC connector
    flink_job: dict[str, Any] | None = None  # the Flink job's overview (state, tasks, id)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Listener:
    """A listening socket of a service's process tree."""

    service: str
    pid: int
    process: str
    address: str
    port: int

    @property
    def loopback(self) -> bool:
        return ipaddress.ip_address(self.address.removeprefix("::ffff:")).is_loopback


def listeners(settings: Settings) -> list[Listener]:
    """Every listening TCP socket of every running service: the engine and all its children (a JVM a Python
    launcher started, the Python of PyFlink), so a socket nobody asked for is seen too. A process belongs to the
    nearest service above it (the Flink job's JVM to ``flink``, not to the supervisor that runs the job)."""
    import psutil

    roots = {pid: svc.name for svc in all_services(settings, on_demand=True).values()
             if (pid := svc.pid()) is not None and psutil.pid_exists(pid)}
    found = []
    for root in roots:
        for proc in [psutil.Process(root), *psutil.Process(root).children(recursive=True)]:
            try:
                owner = next(roots[p.pid] for p in [proc, *proc.parents()] if p.pid in roots)
                if owner != roots[root]:
                    continue  # seen under its own service
                conns, name = proc.net_connections(kind="tcp"), proc.name()
            except (psutil.NoSuchProcess, psutil.AccessDenied, StopIteration):
                continue
            found += [Listener(owner, proc.pid, name, c.laddr.ip, c.laddr.port)
                      for c in conns if c.status == psutil.CONN_LISTEN]
    return found


def secrets(settings: Settings) -> dict[str, str]:
    """Every credential of the platform (configured or generated), by who holds it: what must appear in no
    process's arguments and no log."""
    from emulation.cassandra import ROLES
    from emulation.kafka import PRINCIPALS
    from pipeline.speed.cdc.connector import cdc_password

    pg, kafka, cassandra = engine("postgres", settings), engine("kafka", settings), engine("cassandra", settings)
    found = {"postgres superuser": pg.admin_password(), "postgres pipeline role": pg.password(),
             "postgres cdc role": cdc_password(settings),
             "connect rest": engine("connect", settings).rest_credentials()[1],
             "s3 secret key": engine("s3", settings).credentials()[1]}
    found |= {f"kafka {p}": kafka.credentials(p)[1] for p in PRINCIPALS}
    found |= {f"cassandra {r}": cassandra.credentials(r)[1] for r in ROLES}
    return {who: secret for who, secret in found.items() if secret}  # AWS's own chain: no key of ours


def status(settings: Settings) -> StatusReport:
    from pipeline.speed import cdc

    report = StatusReport([(svc.status(), svc.log_path) for svc in all_services(settings, on_demand=True).values()])
    report.connector = cdc.status(settings)
    flink = get_service("flink", settings)
    if flink.pid() is not None:
        report.flink_job = flink.running_job() or flink.job_status() or {"state": "starting"}
    return report
