"""supervisord (the ``supervisor`` package) keeping the speed lane's long-running pieces alive.

The Flink job, the Cassandra sink, the raw archive and the CDC watchdog run as supervisord programs: a piece that
dies (a crash, a ``kill -9``) is started again, with backoff while it keeps failing to start, and ``olist status``
shows how often each was restarted. supervisord listens on a Unix socket under the state folder only (no TCP
port), and runs in the foreground of its own background process (pid file, log) like every engine here.

Each program is ``python -m pipeline.speed.run NAME --settings FILE``: the settings the service was started with
are written beside the config (mode 0600), so a restarted piece runs with exactly them.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulation.process import ProcessService
from emulation.service import Endpoint, Service, ServiceError, ServiceStatus, tail, write_private
from pipeline.settings import PROJECT_ROOT, Settings

PROGRAMS = ("flink", "serve", "archive", "watchdog")  # every piece supervisord knows, started on demand
STOP_WAIT = {"flink": 90}  # seconds a program may take to stop (the Flink job takes a savepoint)


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL ...
    pid: int | None
    restarts: int  # starts after the first since the service was started


class SupervisorService(ProcessService):
    """One supervisord per state folder, for the programs of :data:`PROGRAMS`."""

    name = "supervisor"
    process_name = "supervisord"

    @property
    def socket(self) -> Path:
        return self.state_dir / "supervisor.sock"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.json"

    @property
    def _config_file(self) -> Path:
        return self.state_dir / "supervisord.conf"

    def program_log(self, program: str) -> Path:
        return self.state_dir / f"{program}.log"

    def endpoint(self) -> Endpoint | None:
        return Endpoint("unix", 0, {"socket": str(self.socket)}) if self.socket.exists() else None

    def rpc(self) -> Any:
        from supervisor.xmlrpc import SupervisorTransport

        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport).supervisor

    def health(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.rpc().getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def start(self) -> Endpoint:
        if self.pid() is not None:
            self.wait_ready("supervisord")
            return self._require_endpoint()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._write_settings()
        self._write_config()
        self.socket.unlink(missing_ok=True)
        self.process.start([sys.executable, "-m", "supervisor.supervisord", "-n", "-c", str(self._config_file)],
                           cwd=self.state_dir)
        self.wait_ready("supervisord")
        return self._require_endpoint()

    def stop(self) -> None:
        if self.pid() is not None and self.health():
            with contextlib.suppress(OSError, xmlrpc.client.Error):
                self.rpc().stopAllProcesses(True)
        self.process.stop(timeout=max(STOP_WAIT.values()) + 10)
        self.socket.unlink(missing_ok=True)

    # -- programs ------------------------------------------------------------------------------
    def start_program(self, program: str) -> None:
        self.start()
        self._write_settings()  # a program started later runs with the settings of its own start
        (self.state_dir / f"{program}.starts").write_text("0")
        try:
            self.rpc().startProcess(program, False)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise ServiceError(f"supervisor: could not start {program}: {exc.faultString}") from None

    def stop_program(self, program: str) -> None:
        if self.pid() is None:
            return
        with contextlib.suppress(xmlrpc.client.Fault):
            self.rpc().stopProcess(program, True)
        if not any(p.state in ("RUNNING", "STARTING", "BACKOFF") for p in self.programs()):
            self.stop()  # the last program stopped: nothing left to supervise

    def programs(self) -> list[ProgramInfo]:
        if self.pid() is None or not self.health():
            return []
        return [self._info(p) for p in self.rpc().getAllProcessInfo()]

    def program(self, program: str) -> ProgramInfo | None:
        if self.pid() is None:
            return None
        try:
            return self._info(self.rpc().getProcessInfo(program))
        except (OSError, xmlrpc.client.Error):
            return None

    def _info(self, raw: dict) -> ProgramInfo:
        starts = self.state_dir / f"{raw['name']}.starts"
        count = int(starts.read_text() or 0) if starts.exists() else 0
        return ProgramInfo(raw["name"], raw["statename"], raw["pid"] or None, max(0, count - 1))

    def record_start(self, program: str) -> None:
        """Called by a program as it starts: one more start (the first is not a restart)."""
        path = self.state_dir / f"{program}.starts"
        path.parent.mkdir(parents=True, exist_ok=True)
        count = int(path.read_text() or 0) if path.exists() else 0
        path.write_text(str(count + 1))

    # -- files ---------------------------------------------------------------------------------
    def _write_settings(self) -> None:
        write_private(self.settings_file, self.settings.model_dump_json())  # configured passwords are in it

    def _write_config(self) -> None:
        self._config_file.write_text(self._config_text())

    @property
    def current(self) -> bool:
        """Whether the running supervisord's config is the one this release writes: its programs run this release's
        code (an earlier release, or a clone in another folder, wrote another one)."""
        written = self._config_file.read_text().splitlines() if self._config_file.exists() else []
        return written[:1] == [self._release]

    @property
    def _release(self) -> str:
        """The config's first line: which code its programs run (the project folder, the Python)."""
        return f"; release: {PROJECT_ROOT} {sys.executable}"

    def restart(self) -> list[str]:
        """Restart supervisord on this release's config, and with it the programs that ran (each stopped as `stop`
        stops it: the Flink job with a savepoint, which it resumes from); returns their names."""
        running = [p.name for p in self.programs() if p.state in ("RUNNING", "STARTING", "BACKOFF")]
        self.stop()
        for program in running:
            self.start_program(program)
        return running

    def _config_text(self) -> str:
        lines = [self._release, "[supervisord]", f"logfile={self.state_dir / 'supervisord.events.log'}",
                 "logfile_maxbytes=5MB", f"pidfile={self.state_dir / 'supervisord.internal.pid'}",
                 "nodaemon=true", "loglevel=info", f"childlogdir={self.state_dir}", "",
                 "[unix_http_server]", f"file={self.socket}", "chmod=0700", "",
                 "[rpcinterface:supervisor]",
                 "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
                 "[supervisorctl]", f"serverurl=unix://{self.socket}", ""]
        # the programs run the code of the release that wrote this (its folder first on the path), whatever the
        # environment supervisord itself was started with
        env = (f"PYTHONUNBUFFERED=\"1\",PATH=\"{os.environ.get('PATH', '')}\","
               f"PYTHONPATH=\"{PROJECT_ROOT}\"")
        for program in PROGRAMS:
            command = f"{sys.executable} -m pipeline.speed.run {program} --settings {self.settings_file}"
            lines += [f"[program:{program}]", f"command={command}", f"directory={self.state_dir}",
                      "autostart=false", "autorestart=true", "startsecs=2", "startretries=1000000",
                      # TERM to the program alone (the Flink job then takes its savepoint before its JVM goes);
                      # KILL, after the wait, to its whole process group
                      "stopsignal=TERM", f"stopwaitsecs={STOP_WAIT.get(program, 30)}", "stopasgroup=false",
                      "killasgroup=true", "redirect_stderr=true", f"stdout_logfile={self.program_log(program)}",
                      "stdout_logfile_maxbytes=20MB", f"environment={env}", ""]
        return "\n".join(lines)


class SupervisedService(Service):
    """A speed-lane piece run by :class:`SupervisorService`: started, stopped and inspected through it."""

    program = "program"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir)
        self.settings = settings
        self.supervisor = SupervisorService(settings)

    @property
    def log_path(self) -> Path:
        return self.supervisor.program_log(self.program)

    def logs(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    def pid(self) -> int | None:
        info = self.supervisor.program(self.program)
        return info.pid if info and info.state == "RUNNING" else None

    def restarts(self) -> int:
        info = self.supervisor.program(self.program)
        return info.restarts if info else 0

    def status(self) -> ServiceStatus:
        base = super().status()
        info = self.supervisor.program(self.program)
        detail = f"{info.state.lower()}, restarted {info.restarts}x" if info else ""
        return ServiceStatus(base.name, base.running, base.healthy, base.endpoint, base.pid, detail)

    def start(self) -> Endpoint:
        self.supervisor.start_program(self.program)
        self.wait_healthy()
        return self._require_endpoint()

    def wait_healthy(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (timeout or self.settings.service_start_timeout)
        while time.monotonic() < deadline:
            if self.health():
                return
            info = self.supervisor.program(self.program)
            if info and info.state == "FATAL":
                raise self.fail("supervisord gave up starting it")
            time.sleep(0.3)
        raise self.fail(f"not healthy after {timeout or self.settings.service_start_timeout:.0f}s")

    def stop(self) -> None:
        self.supervisor.stop_program(self.program)
