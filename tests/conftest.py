"""Shared fixtures: the contract registry, the tiny data set, and (for integration) a real PostgreSQL."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from emulation.resources import engine
from pipeline.contracts import Registry, load_registry
from pipeline.settings import PROJECT_ROOT, Settings
from tests.fixtures.tiny import write_tiny

# The engines of `nox -s tests` run for seconds to minutes, where C2's compile threads cost more CPU than they save:
# compiled by C1 alone, Kafka starts on 2.8 CPU-s instead of 4.5, Cassandra on 7.0 instead of 11.1, the Flink job's
# plan on 8.8 instead of 14.4 (measured on 2 cores). The session asks for it (OLIST_TEST_C1=1); the fault, cluster
# and bench suites keep the engines' own JIT, and options set by hand are left as they are.
C1 = "-XX:TieredStopAtLevel=1"
if os.environ.get("OLIST_TEST_C1") == "1":
    from pipeline.settings import FlinkSettings, JvmSettings

    os.environ.setdefault("OLIST_JVM_OPTS", f"{JvmSettings.model_fields['jvm_opts'].default} {C1}")
    os.environ.setdefault("OLIST_FLINK_JVM_OPTS", f"{FlinkSettings.model_fields['jvm_opts'].default} {C1}".strip())


@contextlib.contextmanager
def running(service):
    """Start an emulated engine for a fixture; discard it (process and state) afterwards."""
    try:
        service.start()
        yield service
    finally:
        discard(service)


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny")


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings isolated from the demo's: own state folder, own data folder."""
    state = PROJECT_ROOT / ".state" / f"pytest-{os.getpid()}"
    settings = Settings(state_dir=state, data_dir=tmp_path_factory.mktemp("data"))
    yield settings
    from pipeline.platform import all_services

    for service in all_services(settings, on_demand=True).values():  # what tests started through the CLI
        discard(service)
    shutil.rmtree(state, ignore_errors=True)


def discard(service) -> None:
    """End a service whose state goes next: killed (no graceful stop to wait for), then destroyed where it can be.
    PostgreSQL keeps its fast shutdown: its cluster folder lies outside the state (under the system temp)."""
    if service.name != "postgres":
        kill_tree(service.pid())
    service.destroy() if hasattr(service, "destroy") else service.stop()


def kill_tree(pid: int | None) -> None:
    """SIGKILL a process and all its children: the state is deleted next, so a graceful stop (Flink's savepoint,
    Cassandra's drain, Kafka's controlled shutdown) would only cost the session a minute."""
    import psutil

    if pid is None:
        return
    with contextlib.suppress(psutil.NoSuchProcess):
        root = psutil.Process(pid)
        procs = [*root.children(recursive=True), root]
        for proc in procs:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(procs, timeout=10)


@pytest.fixture(scope="session")
def postgres(test_settings: Settings):
    """A real PostgreSQL cluster for the whole test session, destroyed at the end."""

    service = engine("postgres", test_settings)
    service.start()
    yield service
    service.destroy()


@pytest.fixture(scope="session")
def rehearsal():
    """The production topology on loopback (`nox -s cluster`), started once for the session, deleted after."""
    from emulation.rehearsal import Rehearsal

    cluster = Rehearsal(PROJECT_ROOT / ".state" / f"pytest-cluster-{os.getpid()}")
    try:
        report = cluster.start()
        engines = ", ".join(f"{e.name} {e.seconds:.0f} s {e.rss_mb:,.0f} MB" for e in report.engines)
        print(f"\nrehearsal cluster: {engines} (total {report.seconds:.0f} s, {report.rss_mb:,.0f} MB resident)")
        yield cluster
    finally:
        for service in cluster.services():
            discard(service)
        shutil.rmtree(cluster.state_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def s3(test_settings: Settings):
    """The settings' S3 emulator for the whole session (auto: LocalStack where Python 3.13 is found, else moto)."""

    service = engine("s3", test_settings)
    service.start()
    yield service
    service.stop()


@dataclass(frozen=True)
class OtherS3:
    """The emulator the settings did not choose, in a state folder of its own, and how to reach it by settings."""

    service: object
    settings: Settings  # test_settings with OLIST_S3_ENDPOINT_URL and the keys pointing at it
    env: dict[str, str]  # the same as environment variables, for the CLI


@pytest.fixture(scope="session")
def other_s3(s3, test_settings: Settings):
    from emulation.s3 import choose_emulator

    """None where the other is LocalStack and there is no Python 3.13 for it."""
    other = "moto" if s3.emulator.name == "localstack" else "localstack"
    if other == "localstack" and choose_emulator(test_settings.replace(s3_emulator="auto")).name != "localstack":
        yield None
        return
    service = engine("s3", test_settings.replace(state_dir=test_settings.state_dir / "other-s3", s3_emulator=other))
    url = service.start().extra["url"]
    key_id, secret = service.credentials()
    env = {"OLIST_S3_ENDPOINT_URL": url, "OLIST_S3_ACCESS_KEY_ID": key_id, "OLIST_S3_SECRET_ACCESS_KEY": secret}
    yield OtherS3(service, test_settings.replace(s3_endpoint_url=url, s3_access_key_id=key_id,
                                                 s3_secret_access_key=secret), env)
    service.stop()


S3_EMULATORS = ["localstack", "moto"]
# The engines backends (OLIST_ENGINES): PostgreSQL and S3 as local processes, or in containers.
ENGINES = ["processes", "containers"]


@dataclass(frozen=True)
class Containers:
    """The containers backend's PostgreSQL and S3 (LocalStack), for the session, in a state folder of their own."""

    postgres: object
    s3: object
    settings: Settings


def reap_crashed_sessions() -> None:
    """Remove the containers of test sessions that died before their teardown (their pid is gone): no reaper image
    runs here, so the labels are the cleanup."""
    import re

    import psutil

    from emulation.containers import STATE_LABEL, labelled, reap

    root = PROJECT_ROOT / ".state"
    for labels in labelled({}).values():
        state = labels.get(STATE_LABEL, "")
        match = re.fullmatch(re.escape(str(root.resolve())) + r"/pytest-(\d+)(/.*)?", state)
        if match and not psutil.pid_exists(int(match.group(1))):
            reap({STATE_LABEL: state})


@pytest.fixture(scope="session")
def containers(test_settings: Settings) -> Iterator[Containers]:
    """Skips, naming what is missing, where there is no container engine or no image (`nox -s images` makes both)."""
    from emulation.containers import engine_unavailable, stop_podman_service

    if why := engine_unavailable():
        pytest.skip(why)
    reap_crashed_sessions()
    settings = test_settings.replace(state_dir=test_settings.state_dir / "containers", engines="containers")

    pg, s3 = engine("postgres", settings), engine("s3", settings)
    try:
        pg.start()
        s3.start()
        yield Containers(pg, s3, settings)
    finally:
        for service in (s3, pg):
            service.destroy()
        stop_podman_service()


@dataclass(frozen=True)
class Engines:
    name: str
    postgres: object
    settings: Settings


@pytest.fixture(params=ENGINES)
def engines(request, test_settings: Settings) -> Engines:
    """Each engines backend in turn, as ``s3_location`` takes each S3 emulator: the processes' PostgreSQL (the
    session's), then the containers'."""
    if request.param == "processes":
        return Engines("processes", request.getfixturevalue("postgres"), test_settings)
    backend = request.getfixturevalue("containers")
    return Engines("containers", backend.postgres, backend.settings)


@pytest.fixture(params=[*S3_EMULATORS, "containers"])
def s3_location(request, test_settings: Settings):
    """The S3 location of each emulator in turn (as dlt parametrises destinations): the session's, then the other,
    then LocalStack in a container (the containers backend's)."""
    from emulation.s3 import choose_emulator
    from pipeline.storage import s3_location

    if request.param == "containers":
        return s3_location(request.getfixturevalue("containers").settings)
    s3 = request.getfixturevalue("s3")
    if s3.emulator.name == request.param:
        return s3_location(test_settings)
    other = request.getfixturevalue("other_s3")
    if other is None:
        pytest.skip(f"LocalStack: {choose_emulator(test_settings.replace(s3_emulator='auto')).why}")
    return dataclasses.replace(s3_location(other.settings), emulator=request.param)
