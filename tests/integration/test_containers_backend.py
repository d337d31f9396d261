"""The containers backend (OLIST_ENGINES=containers): loopback only, label cleanup after a killed run, restarts,
a taken port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import psycopg
import pytest

from emulation.containers import STATE_LABEL, PostgresContainerService, S3ContainerService, labelled, reap
from emulation.postgres import PostgresService
from emulation.registry import all_services
from emulation.resources import engine
from emulation.service import ServiceError
from pipeline.settings import PROJECT_ROOT

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module", autouse=True)
def engine_and_images():
    from emulation.containers import engine_unavailable

    if why := engine_unavailable():
        pytest.skip(why)


def test_the_settings_choose_the_backend_for_every_caller(containers, test_settings):
    services = all_services(containers.settings)
    assert isinstance(services["postgres"], PostgresContainerService)
    assert isinstance(services["s3"], S3ContainerService)
    assert type(engine("postgres", test_settings)) is PostgresService


def test_containers_publish_on_loopback_only_and_keep_the_password_out_of_their_environment(containers):
    for service in (containers.postgres, containers.s3):
        info = service.inspect()
        bindings = [b for port in info["HostConfig"]["PortBindings"].values() for b in port or []]
        assert bindings and all(b["HostIp"] == "127.0.0.1" for b in bindings), bindings
        assert info["HostConfig"]["NetworkMode"] in ("slirp4netns", "default", "bridge")
        if service.engine.kind == "podman":
            assert info["HostConfig"]["NetworkMode"] == "slirp4netns"  # no bridge: the host's network is untouched
        ep = service.endpoint()
        listeners = {c.laddr.ip for c in psutil.net_connections("tcp") if c.status == psutil.CONN_LISTEN
                     and c.laddr.port == ep.port}
        assert listeners == {"127.0.0.1"}, listeners
        assert service.status().healthy and service.status().pid is not None
    env = containers.postgres.inspect()["Config"]["Env"]
    assert not any(e.startswith("POSTGRES_PASSWORD=") for e in env)
    assert all(containers.postgres.admin_password() not in e for e in env)


def test_the_pipeline_role_is_no_superuser_in_the_container_either(containers):
    with psycopg.connect(containers.postgres.conninfo(), autocommit=True) as conn:
        assert conn.execute("select rolsuper, rolcreaterole, rolcreatedb from pg_roles "
                            "where rolname = current_user").fetchone() == (False, False, False)
        assert conn.execute("show wal_level").fetchone() == ("logical",)


def test_a_killed_runs_containers_are_removed_by_label(test_settings):
    """A run killed with SIGKILL leaves its container (no reaper image here) but not its podman service (it dies
    with the run); reap() by the state folder's label removes the container."""
    state = test_settings.state_dir / "killed-run"
    code = ("from emulation.resources import engine\nfrom pipeline.settings import Settings\n"
            "engine('postgres', Settings()).start()\nprint('up', flush=True)\nimport time\ntime.sleep(600)\n")
    env = {**os.environ, "OLIST_STATE_DIR": str(state), "OLIST_ENGINES": "containers"}
    run = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, env=env, cwd=PROJECT_ROOT)
    try:
        assert run.stdout.readline().strip() == "up"
        service_procs = [p for p in psutil.Process(run.pid).children(recursive=True) if "podman" in p.name()]
        os.kill(run.pid, signal.SIGKILL)
        run.wait(10)
        left = labelled({STATE_LABEL: str(state.resolve())}, test_settings)
        assert len(left) == 1, left
        _, alive = psutil.wait_procs(service_procs, timeout=10)
        assert not alive, "the killed run's podman service outlived it"
        assert reap({STATE_LABEL: str(state.resolve())}, test_settings) == list(left)
        assert labelled({STATE_LABEL: str(state.resolve())}, test_settings) == {}
    finally:
        if run.poll() is None:
            run.kill()
        reap({STATE_LABEL: str(state.resolve())}, test_settings)


def test_stop_then_start_keeps_data_and_port(test_settings):
    svc = engine("postgres", test_settings.replace(state_dir=test_settings.state_dir / "restart", engines="containers"))
    try:
        first = svc.start()
        with psycopg.connect(svc.conninfo(), autocommit=True) as conn:
            conn.execute("create table kept (x int); insert into kept values (42)")
        svc.stop()
        assert svc.status().running is False and svc.pid() is None
        svc.stop()  # stopping a stopped service is a no-op
        started = time.monotonic()
        assert svc.start() == first
        restart = time.monotonic() - started
        with psycopg.connect(svc.conninfo()) as conn:
            assert conn.execute("select x from kept").fetchone() == (42,)
        assert "database system is ready" in svc.logs(200)
        print(f"\ncontainer restart to healthy: {restart:.1f} s")
    finally:
        svc.destroy()
    assert svc.container() is None


def test_a_taken_port_is_one_error_and_leaves_no_container(test_settings):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        settings = test_settings.replace(state_dir=test_settings.state_dir / "busy", engines="containers",
                                         pg_port=busy.getsockname()[1], service_start_timeout=20)
        svc = engine("postgres", settings)
        try:
            with pytest.raises(ServiceError, match="address already in use"):
                svc.start()
            assert svc.container() is None
        finally:
            svc.destroy()
