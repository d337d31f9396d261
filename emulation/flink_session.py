"""A standalone Flink session cluster on 127.0.0.1: one JobManager (``flink-jm``) and N TaskManagers (``flink-tm-1``,
``flink-tm-2`` ...), each a service of its own (state folder, config, log, pid file), which the job is submitted to
with ``flink run`` (``OLIST_FLINK_MODE=session``, see emulation/flink.py).

Flink 2.2.1 comes from the Flink venv's ``pyflink`` package (``bin/jobmanager.sh``, ``bin/taskmanager.sh``,
``lib/flink-dist-2.2.1.jar``; Flink's distribution is not on Maven Central). Each node gets a FLINK_HOME of its own
under its state folder, since the scripts derive FLINK_HOME from where ``bin/`` lies: ``bin/`` copied, ``lib/`` and
``opt/`` real folders with a symlink per jar (a symlinked ``lib/`` is not searched: NoClassDefFoundError
ProcessMemorySpec), ``conf/config.yaml`` and a console-only log4j config written at every start. The scripts run in
the foreground (``start-foreground`` execs ``flink-console.sh``, which execs ``java``: one pid throughout), so
:class:`BackgroundProcess` holds the JVM and its log.

A standalone cluster restarts no dead TaskManager: with 2 slots each, the survivor takes the whole job (its restart
strategy is the job's own) from its newest checkpoint.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import yaml

from emulation.jvm import wait_healthy, write_log4j2
from emulation.process import ProcessService
from emulation.service import Endpoint, ServiceError
from pipeline.settings import FlinkSettings, Settings

# A TaskManager killed -9 is found by its failed heartbeat RPCs (heartbeat.rpc-failure-threshold, 2 in a row): at a
# 2 s interval the JobManager knows within a few seconds (at Flink's 10 s default, ~20 s) and restarts the job on the
# spare slots. The timeout only catches a peer that is up but silent: 30 s (Flink: 50 s), since on 2 cores a busy JVM
# (a checkpoint, a GC, the planner of a `flink run`) misses seconds of heartbeats, and a short timeout would then
# fail a healthy job.
HEARTBEAT = {"heartbeat.interval": "2 s", "heartbeat.timeout": "30 s"}
# The job keeps its state on the heap (hashmap backend): managed memory (RocksDB, batch operators) stays small.
MANAGED_MEMORY = "64m"
LOG_LEVELS = {"org.apache.flink.runtime.checkpoint.CheckpointCoordinator": "WARN"}  # a line per checkpoint otherwise
CLIENT_LOG_LEVELS = {"org.apache.flink.client.program.rest.RestClusterClient": "INFO"}  # not the planner's chatter
ENDED = ("FINISHED", "CANCELED", "FAILED", "SUSPENDED")  # a job in none of these still runs (or will again)
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# -- the distribution ----------------------------------------------------------------------------


def pyflink_dir(flink: FlinkSettings) -> Path:
    """The Flink venv's ``pyflink`` package (made on first call): Flink's scripts, jars and default config."""
    from emulation.flink import ensure_venv

    venv = ensure_venv(flink).parent.parent
    found = sorted(venv.glob("lib/python*/site-packages/pyflink/bin/jobmanager.sh"))
    if not found:
        raise ServiceError(f"flink-session: no pyflink/bin/jobmanager.sh in {venv}")
    return found[-1].parent.parent


def distribution_java_opts(pyflink: Path) -> str:
    """``env.java.opts.all`` of the distribution's own config: the ``--add-opens`` Flink needs on Java 17."""
    shipped = yaml.safe_load((pyflink / "conf" / "config.yaml").read_text())
    return str(shipped["env"]["java"]["opts"]["all"])


def write_flink_home(home: Path, pyflink: Path) -> Path:
    """A FLINK_HOME of our own (rebuilt at every start, so it follows the venv): ``bin/`` copied, a symlink per jar in
    real ``lib/`` and ``opt/`` folders, an empty ``plugins/``; ``conf/`` is the caller's."""
    for folder in ("bin", "lib", "opt", "plugins"):
        shutil.rmtree(home / folder, ignore_errors=True)
    shutil.copytree(pyflink / "bin", home / "bin")
    for folder in ("lib", "opt"):
        (home / folder).mkdir(parents=True)
        for jar in sorted((pyflink / folder).glob("*.jar")):
            (home / folder / jar.name).symlink_to(jar)
    (home / "plugins").mkdir()
    (home / "conf").mkdir(exist_ok=True)
    return home


def write_config(conf_dir: Path, config: dict[str, str]) -> Path:
    """``config.yaml`` (flat keys) in ``conf_dir``."""
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=True, width=10_000))
    return conf_dir


def rest(url: str, path: str, method: str = "GET", body: dict | None = None, timeout: float = 3) -> Any:
    """A call of a Flink REST API: its JSON answer, or None when it does not answer (or refuses)."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url.rstrip("/") + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    try:
        with _NO_PROXY.open(request, timeout=timeout) as resp:
            return json.loads(resp.read() or b"{}")
    except (OSError, ValueError, urllib.error.URLError):
        return None


def job_state(url: str, jid: str) -> str | None:
    """Job ``jid``'s state (RUNNING, RESTARTING, FINISHED ...), None when the cluster does not know it."""
    return (rest(url, f"/jobs/{jid}") or {}).get("state")


def stop_job(url: str, jid: str, savepoint_dir: Path, timeout: float = 60) -> str | None:
    """Stop job ``jid`` with a canonical savepoint in ``savepoint_dir`` through REST (as ``flink stop`` does) and
    wait until it has ended; the savepoint's location, or None when there was none (the job then cancelled)."""
    target = {"targetDirectory": savepoint_dir.resolve().as_uri(), "drain": False, "formatType": "CANONICAL"}
    trigger = rest(url, f"/jobs/{jid}/stop", "POST", target) or {}
    deadline, location, done = time.monotonic() + timeout, None, False
    while "request-id" in trigger and not done and time.monotonic() < deadline:
        answer = rest(url, f"/jobs/{jid}/savepoints/{trigger['request-id']}") or {}
        done = answer.get("status", {}).get("id") == "COMPLETED"  # with a location, or a failure cause
        location = answer.get("operation", {}).get("location") if done else None
        time.sleep(0.5)
    if location is None:
        rest(url, f"/jobs/{jid}?mode=cancel", "PATCH")
    while job_state(url, jid) not in (None, *ENDED) and time.monotonic() < deadline + 30:
        time.sleep(0.5)
    return location


def job_taskmanagers(url: str, jid: str) -> set[str]:
    """The ids (resource ids: ``flink-tm-N``) of the TaskManagers running a task of job ``jid``."""
    job = rest(url, f"/jobs/{jid}") or {}
    found = set()
    for vertex in job.get("vertices", []):
        for sub in (rest(url, f"/jobs/{jid}/vertices/{vertex['id']}") or {}).get("subtasks", []):
            if sub.get("status") == "RUNNING" and sub.get("taskmanager-id"):
                found.add(sub["taskmanager-id"])
    return found


# -- the nodes -----------------------------------------------------------------------------------


class SessionNode(ProcessService):
    """One JVM of the session cluster, run by Flink's own script in the foreground from its FLINK_HOME.

    The pid file records the command's last argument as what the process must still run (``_identity``): a
    dynamic property naming the node's temp folder (``-D io.tmp.dirs=<state>/tmp``), which stays on the command
    line from the script through ``flink-console.sh`` to the ``java`` they exec, and names no other process."""

    role = process_name = "jobmanager"  # its script (bin/<role>.sh), pid file and log
    stop_timeout = 30.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.flink = settings.flink

    @property
    def home(self) -> Path:
        return self.state_dir / "home"

    @property
    def tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    def config(self, pyflink: Path) -> dict[str, str]:
        """This node's config.yaml (every socket on the bind host, the memory, the heartbeats)."""
        host, jm = self.settings.bind_host, self.jobmanager_endpoint()
        opts = f"{self.settings.jvm.jvm_opts} -Djava.net.preferIPv4Stack=true -Djava.io.tmpdir={self.tmp_dir}"
        return {
            "env.java.opts.all": distribution_java_opts(pyflink),
            f"env.java.opts.{self.role}": opts,
            "env.log.dir": str(self.state_dir / "log"), "env.pid.dir": str(self.state_dir / "pid"),
            "jobmanager.bind-host": host, "jobmanager.rpc.address": host, "jobmanager.rpc.port": str(jm["rpc_port"]),
            "rest.bind-address": host, "rest.address": host, "rest.port": str(jm["port"]),
            "taskmanager.bind-host": host, "taskmanager.host": host,
            "jobmanager.memory.process.size": f"{self.flink.jobmanager_memory_mb}m",
            "taskmanager.memory.process.size": f"{self.flink.taskmanager_memory_mb}m",
            "taskmanager.memory.managed.size": MANAGED_MEMORY,
            "taskmanager.numberOfTaskSlots": str(self.flink.task_slots),
            "jobmanager.execution.failover-strategy": "region",
            "web.tmpdir": str(self.tmp_dir), "web.submit.enable": "false",  # jobs come as job graphs, not jars
            **HEARTBEAT,
        }

    def jobmanager_endpoint(self) -> dict[str, str]:
        """The JobManager's host, REST port and RPC port, as its endpoint file records them."""
        raise NotImplementedError

    def dynamic_properties(self) -> list[str]:
        """``-D key=value`` arguments of this node (the last one is its identity, see the class)."""
        return ["-D", f"io.tmp.dirs={self.tmp_dir}"]

    def start(self) -> Endpoint:
        started = self.launch()
        wait_healthy(self, self.process, started, self.settings.jvm.jvm_start_timeout, self.where())
        return self._require_endpoint()

    def launch(self) -> float:
        """Start the JVM unless it runs (adopted then), without waiting for it to answer; when (monotonic)."""
        if self.pid() is not None:
            return time.monotonic()
        self.preflight()
        pyflink = pyflink_dir(self.flink)
        write_flink_home(self.home, pyflink)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        write_config(self.home / "conf", self.config(pyflink))
        write_log4j2(self.home / "conf" / "log4j-console.properties", LOG_LEVELS)
        # The scripts read these from the environment first: ours, whatever the caller's says.
        env = {"FLINK_CONF_DIR": str(self.home / "conf"), "FLINK_LIB_DIR": str(self.home / "lib"),
               "FLINK_OPT_DIR": str(self.home / "opt"), "FLINK_PLUGINS_DIR": str(self.home / "plugins"),
               "FLINK_LOG_DIR": str(self.state_dir / "log"), "FLINK_PID_DIR": str(self.state_dir / "pid"),
               "JVM_ARGS": ""}
        started = time.monotonic()
        self.process.start([str(self.home / "bin" / f"{self.role}.sh"), "start-foreground", *self.dynamic_properties()],
                           env=env, cwd=self.state_dir)
        return started

    def preflight(self) -> None:
        """Checks before a cold start; raise :meth:`fail` to refuse."""

    def stop(self) -> None:
        """SIGTERM (Flink's shutdown hooks run), SIGKILL after ``stop_timeout``."""
        self.process.stop(timeout=self.stop_timeout)

    def destroy(self) -> None:
        """Stop and delete the node's state (home, config, logs, temp files)."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def rss_mb(self) -> float | None:
        """The JVM's resident memory in MB (None when it does not run)."""
        return self.process.rss_mb()


class JobManagerService(SessionNode):
    """The session cluster's JobManager (``flink-jm``): REST API and RPC port chosen at first start and kept;
    healthy when REST ``/overview`` answers."""

    name = "flink-jm"

    def jobmanager_endpoint(self) -> dict[str, str]:
        return self._saved_endpoint() or {}

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"url": f"http://{saved['host']}:{saved['port']}", "rpc_port": str(saved["rpc_port"])}

    @property
    def url(self) -> str | None:
        """The REST URL (``OLIST_FLINK_REST_URL`` of the job), once started."""
        ep = self.endpoint()
        return ep.extra["url"] if ep else None

    def preflight(self) -> None:
        ports = self._keep_ports(self.settings.bind_host, port=self.flink.jobmanager_port,
                                 rpc_port=self.flink.jobmanager_rpc_port)
        self._save_endpoint(host=self.settings.bind_host, **ports)

    def health(self) -> bool:
        return self.url is not None and "flink-version" in (rest(self.url, "/overview") or {})

    def overview(self) -> dict[str, Any]:
        """REST ``/overview``: TaskManagers, slots (total, available), jobs by state; {} when not answering."""
        return (rest(self.url, "/overview") if self.url else None) or {}


class TaskManagerService(SessionNode):
    """TaskManager ``flink-tm-<index>`` of the session cluster: its resource id is its name, its RPC and data
    ports chosen at first start and kept; healthy when the JobManager lists it in REST ``/taskmanagers``."""

    role = process_name = "taskmanager"

    def __init__(self, settings: Settings, index: int) -> None:
        self.name = f"flink-tm-{index}"
        super().__init__(settings)
        self.jobmanager = JobManagerService(settings)

    def jobmanager_endpoint(self) -> dict[str, str]:
        return self.jobmanager._saved_endpoint() or {}

    def config(self, pyflink: Path) -> dict[str, str]:
        saved = self._saved_endpoint() or {}
        return {**super().config(pyflink), "taskmanager.rpc.port": str(saved["port"]),
                "taskmanager.data.port": str(saved["data_port"])}

    def dynamic_properties(self) -> list[str]:
        return ["-D", f"taskmanager.resource-id={self.name}", *super().dynamic_properties()]

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        return {"data_port": str(saved["data_port"]), "resource_id": self.name}

    def preflight(self) -> None:
        if not self.jobmanager.health():
            raise self.fail("the JobManager is not answering; start it first")
        ports = self._keep_ports(self.settings.bind_host, port=0, data_port=0)
        self._save_endpoint(host=self.settings.bind_host, **ports)

    def health(self) -> bool:
        url = self.jobmanager.url
        registered = (rest(url, "/taskmanagers") or {}).get("taskmanagers", []) if url else []
        return any(tm.get("id") == self.name for tm in registered)


class SessionCluster:
    """The JobManager and ``settings.flink.taskmanagers`` TaskManagers, started and stopped together."""

    def __init__(self, settings: Settings) -> None:
        self.jobmanager = JobManagerService(settings)
        self.taskmanagers = [TaskManagerService(settings, i) for i in range(1, settings.flink.taskmanagers + 1)]

    def services(self) -> list[SessionNode]:
        return [self.jobmanager, *self.taskmanagers]

    @property
    def url(self) -> str | None:
        return self.jobmanager.url

    def taskmanager(self, resource_id: str) -> TaskManagerService:
        return next(tm for tm in self.taskmanagers if tm.name == resource_id)

    def start(self) -> str:
        """Start every node not running: the JobManager, then the TaskManagers side by side; the REST URL."""
        self.jobmanager.start()
        launched = [(tm, tm.launch()) for tm in self.taskmanagers]
        for tm, started in launched:
            wait_healthy(tm, tm.process, started, tm.settings.jvm.jvm_start_timeout, tm.where())
        return str(self.url)

    def stop(self) -> None:
        for node in reversed(self.services()):
            node.stop()

    def destroy(self) -> None:
        for node in reversed(self.services()):
            node.destroy()


# -- the attached `flink run` client -------------------------------------------------------------


def client_environment(flink: FlinkSettings, conf_dir: Path) -> dict[str, str]:
    """What ``pyflink/bin/flink`` needs in its environment: a conf folder of its own (the distribution's Java
    options, logging to stdout) and no log file in the venv; the job's JVM options as today (JVM_ARGS)."""
    pyflink = pyflink_dir(flink)
    write_config(conf_dir, {"env.java.opts.all": distribution_java_opts(pyflink)})
    write_log4j2(conf_dir / "log4j-cli.properties", CLIENT_LOG_LEVELS, root_level="WARN")  # the submission only
    env = {"FLINK_CONF_DIR": str(conf_dir), "FLINK_LOG_DIR": str(conf_dir.parent),
           "FLINK_LIB_DIR": str(pyflink / "lib"), "FLINK_OPT_DIR": str(pyflink / "opt"),
           "FLINK_PLUGINS_DIR": str(pyflink / "plugins")}
    return env | ({"JVM_ARGS": flink.jvm_opts} if flink.jvm_opts else {})


def _die_with_parent() -> None:
    """In the client, before exec: SIGKILL when the wrapper dies (prctl PR_SET_PDEATHSIG), so a wrapper killed -9
    leaves no client behind (the job's Python driver, the client's child, ends with it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)


def driver(client: psutil.Process, script: Path) -> psutil.Process | None:
    """The job's Python driver: the client's descendant running ``script`` (PythonDriver starts it)."""
    with contextlib.suppress(psutil.Error):
        for proc in client.children(recursive=True):
            with contextlib.suppress(psutil.Error):
                if str(script) in proc.cmdline():
                    return proc
    return None


def attach(script: Path, command: Sequence[str]) -> int:
    """Run an attached ``flink run`` and pass SIGTERM and SIGINT to the job's Python driver, not to the client.

    The client's JVM ends on SIGTERM at once, closing the gateway its Python driver talks through: the job's
    stop-with-savepoint could not be sent and the job would run on without a client. So the supervisor's program is
    this wrapper; the driver takes its savepoint through the live client and exits, and the client after it. Before
    the driver runs (the client still starting), the signal goes to the client, which has submitted nothing yet."""
    client = subprocess.Popen(list(command), preexec_fn=_die_with_parent)  # this process has one thread

    def forward(signum: int, _frame: object) -> None:
        with contextlib.suppress(psutil.Error, ProcessLookupError):  # the client may have ended just now
            target = driver(psutil.Process(client.pid), script)
            os.kill(target.pid if target else client.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return client.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m emulation.flink_session", description=attach.__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("attach", help="run `flink run ...` attached, SIGTERM to the job's driver")
    run.add_argument("script", type=Path, help="the job's Python file (as passed to flink run -py)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="the `flink run` command line")
    args = parser.parse_args(argv)
    return attach(args.script, args.command)


if __name__ == "__main__":
    sys.exit(main())
