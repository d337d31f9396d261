"""The Flink job submitted with ``flink run`` to a standalone session cluster (emulation/flink_session.py: a JobManager
and two TaskManagers on 127.0.0.1) on a real Kafka broker: the windows exactly the reference's
(tests/reference/windows.py), also across a TaskManager killed -9 under the job (the survivor takes it from its
checkpoint, same job id) and a stop with a savepoint and a start that resumes from it."""

from __future__ import annotations

import ipaddress
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest

from emulation.flink_session import SessionCluster, job_taskmanagers
from emulation.kafka import KafkaService
from emulation.resources import engine
from pipeline.platform import status as platform_status
from pipeline.settings import Settings
from pipeline.speed.services import FlinkService
from tests.conftest import discard, running
from tests.integration.test_flink_job import NAMES, SINKS, assert_same, produce, results, scenario, shifted
from tests.reference.windows import Windows, compute

pytestmark = pytest.mark.integration
WINDOW_MS, DELAY_MS = 10_000, 2_000  # the settings' defaults, as the scenario's comments assume


@pytest.fixture(scope="module")
def lane(test_settings) -> Settings:
    """A state folder of its own: Kafka, the session cluster and the job service under it."""
    return test_settings.replace(state_dir=test_settings.state_dir / f"flink-session-{os.getpid()}",
                                 flink={"checkpoint_interval_seconds": 1})


@pytest.fixture(scope="module")
def kafka(lane) -> Iterator[KafkaService]:
    with running(engine("kafka", lane)) as svc:
        yield svc


@pytest.fixture(scope="module")
def cluster(lane) -> Iterator[SessionCluster]:
    cluster = SessionCluster(lane)
    try:
        started = time.monotonic()
        cluster.start()
        print(f"\nflink session: JobManager + {len(cluster.taskmanagers)} TaskManagers up in "
              f"{time.monotonic() - started:.1f}s at {cluster.url}")
        yield cluster
    finally:
        for node in reversed(cluster.services()):
            discard(node)


@dataclass
class SessionJob:
    service: FlinkService
    settings: Settings
    fed: list[dict | None] = field(default_factory=list)  # every event produced to the raw topic, in order

    def feed(self, kafka: KafkaService, events: list[dict | None]) -> None:
        produce(kafka, NAMES.raw, events)
        self.fed.extend(events)


@pytest.fixture(scope="module")
def job(lane, kafka, cluster) -> Iterator[SessionJob]:
    """The job service in session mode, pointed at the cluster's REST URL (started by the first test)."""
    settings = lane.replace(flink={"mode": "session", "rest_url": cluster.url})
    service = FlinkService(settings)  # creates the lane's topics before the job starts
    try:
        yield SessionJob(service, settings)
    finally:
        discard(service)  # killed, then destroyed: the job it left on the cluster is stopped


def windows_become(kafka: KafkaService, want: Windows, timeout: float = 90) -> Windows:
    """The windowed and late topics, once they hold ``want`` (or as they are after ``timeout``)."""
    deadline, topics = time.monotonic() + timeout, {t: t for t in SINKS}
    while (got := results(kafka, topics)) != want and time.monotonic() < deadline:
        time.sleep(1)
    return got


def running_again(job: SessionJob, jid: str, dead: str, timeout: float = 120) -> float:
    """Seconds until job ``jid`` is RUNNING with every task running, on TaskManagers other than ``dead``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        found = job.service.running_job()
        hosts = job_taskmanagers(job.settings.flink.rest_url, jid) if found and found["jid"] == jid else set()
        if hosts and dead not in hosts:
            return time.monotonic() - started
        time.sleep(0.2)
    raise AssertionError(f"job {jid} not RUNNING again {timeout:.0f}s after the kill:\n{job.service.logs()}")


def listeners(pids: list[int]) -> list[tuple[str, str, int]]:
    """(process, address, port) of every listening TCP socket of these processes and their children."""
    found = []
    for proc in (p for pid in pids for p in [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]):
        found += [(proc.name(), c.laddr.ip, c.laddr.port) for c in proc.net_connections("tcp")
                  if c.status == psutil.CONN_LISTEN]
    return found


def test_the_job_survives_a_taskmanager_killed_under_it_exactly_once(kafka, cluster, job):
    service = job.service
    started = time.monotonic()
    service.start()
    startup = time.monotonic() - started
    assert service.status().healthy
    jid = service.running_job()["jid"]
    assert service.job_status()["job_id"] == jid and service.job_status()["rest_url"] == cluster.url
    assert platform_status(job.settings).flink_job["jid"] == jid, "`olist status` sees the job on the cluster"
    client = psutil.Process(service.pid())
    assert not any("TaskManagerRunner" in " ".join(p.cmdline()) for p in client.children(recursive=True)), \
        "the job runs on the cluster, not in the supervised client"
    sockets = listeners([client.pid, *(node.pid() for node in cluster.services())])
    assert len(sockets) >= 10 and all(ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
                                      for _, ip, _ in sockets), sockets

    events = scenario()
    job.feed(kafka, events[:4])
    first = compute(job.fed, WINDOW_MS, DELAY_MS)
    assert_same(windows_become(kafka, first), first)

    memory = {node.name: node.rss_mb() for node in cluster.services()}
    (victim,) = job_taskmanagers(cluster.url, jid)
    node = cluster.taskmanager(victim)
    os.kill(node.pid(), signal.SIGKILL)
    job.feed(kafka, events[4:])  # while the job has no TaskManager to run on
    stall = running_again(job, jid, victim)
    want = compute(job.fed, WINDOW_MS, DELAY_MS)
    assert want.late and want.aggregated
    assert_same(windows_become(kafka, want), want)
    assert service.running_job()["jid"] == jid and service.restarts() == 0, "the cluster recovered it, not a resubmit"

    node.start()  # a standalone cluster restarts no TaskManager: ours does, under its old resource id
    assert cluster.jobmanager.overview()["taskmanagers"] == len(cluster.taskmanagers)
    print(f"\nflink session: job RUNNING {startup:.1f}s after start; {victim} killed -9: RUNNING again on the other "
          f"TaskManager {stall:.1f}s later; RSS MB {', '.join(f'{k} {v:.0f}' for k, v in memory.items())}, "
          f"`flink run` and its driver {sum(p.memory_info().rss for p in client.children(recursive=True)) / 2**20:.0f}")


def test_a_stopped_job_resumes_from_its_savepoint(kafka, cluster, job):
    service = job.service
    if service.running_job() is None:
        service.start()
    stopped_jid = service.running_job()["jid"]
    service.stop()
    savepoint = service.job_status()["savepoint"]
    assert service.job_status()["state"] == "STOPPED" and savepoint
    assert cluster.jobmanager.overview()["jobs-running"] == 0, "stopping the service stops its job on the cluster"

    job.feed(kafka, shifted(scenario(), 1))  # while it is stopped
    service.start()
    resumed = service.job_status()
    assert resumed["job_id"] != stopped_jid
    assert Path(resumed["restored_from"]).name == savepoint.rsplit("/", 1)[-1], "resumed from the stop's savepoint"
    want = compute(job.fed, WINDOW_MS, DELAY_MS)
    assert_same(windows_become(kafka, want), want)
