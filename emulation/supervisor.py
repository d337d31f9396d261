"""supervisord (the ``supervisor`` package) keeping the speed lane's long-running pieces alive.

The Flink job, the Cassandra sink, the raw archive and the CDC watchdog run as supervisord programs: a piece that
dies (a crash, a ``kill -9``) is started again, with backoff while it keeps failing to start, and ``olist status``
shows how often each was restarted. supervisord listens on a Unix socket under the state folder only (no TCP
port), and runs in the foreground of its own background process (pid file, log) like every engine here.

The supervisor knows no program of its own: a :class:`SupervisedService` registers its program (its command and how
long it may take to stop) in ``programs/NAME.conf``, included by the config, when it starts, so adding a program is
adding its service. The command is ``python -m RUNNER NAME --settings FILE``: the settings the service was started
with are written beside the config (mode 0600), so a restarted piece runs with exactly them.
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

STOP_WAIT = 30  # seconds a program may take to stop, unless its service says otherwise


@dataclass(frozen=True)
class ProgramInfo:
    name: str
    state: str  # RUNNING, STARTING, BACKOFF, STOPPED, EXITED, FATAL ...
    pid: int | None
    restarts: int  # starts after the first since the service was started


class SupervisorService(ProcessService):
    """One supervisord per state folder, for the programs its services register."""

    name = "supervisor"
    process_name = "supervisord"

    @property
    def socket(self) -> Path:
        return self.state_dir / "supervisor.sock"

    @property
    def settings_file(self) -> Path:
        return self.state_dir / "settings.json"

    @property
    def programs_dir(self) -> Path:
        return self.state_dir / "programs"

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
        self.process.stop(timeout=self._longest_stop_wait() + 10)
        self.socket.unlink(missing_ok=True)

    def _longest_stop_wait(self) -> int:
        waits = [int(line.split("=", 1)[1]) for conf in self.programs_dir.glob("*.conf")
                 for line in conf.read_text().splitlines() if line.startswith("stopwaitsecs=")]
        return max([STOP_WAIT, *waits])

    # -- programs ------------------------------------------------------------------------------
    def start_program(self, program: str, runner: str, stop_wait: int = STOP_WAIT) -> None:
        """Start ``program`` (``python -m runner program --settings FILE``), registered first if supervisord does not
        know it as it is now."""
        self.start()
        self._write_settings()  # a program started later runs with the settings of its own start
        self._register(program, runner, stop_wait)
        (self.state_dir / f"{program}.starts").write_text("0")
        try:
            self.rpc().startProcess(program, False)
        except xmlrpc.client.Fault as exc:
            if "ALREADY_STARTED" not in exc.faultString:
                raise ServiceError(f"supervisor: could not start {program}: {exc.faultString}") from None

    def _register(self, program: str, runner: str, stop_wait: int) -> None:
        """Write the program's section and have supervisord take it (as `supervisorctl update` does, for this one)."""
        conf = self.programs_dir / f"{program}.conf"
        text = self._program_text(program, runner, stop_wait)
        known = any(p.name == program for p in self.programs())
        if known and conf.exists() and conf.read_text() == text:
            return
        self.programs_dir.mkdir(parents=True, exist_ok=True)
        conf.write_text(text)
        rpc = self.rpc()
        [[added, changed, _removed]] = rpc.reloadConfig()
        if program in changed:
            with contextlib.suppress(xmlrpc.client.Fault):
                rpc.stopProcessGroup(program, True)
            rpc.removeProcessGroup(program)
        if program in added or program in changed:
            rpc.addProcessGroup(program)

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

    def running(self) -> list[str]:
        """The programs running now (or starting, or backing off to start again)."""
        return [p.name for p in self.programs() if p.state in ("RUNNING", "STARTING", "BACKOFF")]

    def _config_text(self) -> str:
        lines = [self._release, "[supervisord]", f"logfile={self.state_dir / 'supervisord.events.log'}",
                 "logfile_maxbytes=5MB", f"pidfile={self.state_dir / 'supervisord.internal.pid'}",
                 "nodaemon=true", "loglevel=info", f"childlogdir={self.state_dir}", "",
                 "[unix_http_server]", f"file={self.socket}", "chmod=0700", "",
                 "[rpcinterface:supervisor]",
                 "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
                 "[supervisorctl]", f"serverurl=unix://{self.socket}", "",
                 "[include]", f"files={self.programs_dir}/*.conf", ""]
        return "\n".join(lines)

    def _program_text(self, program: str, runner: str, stop_wait: int) -> str:
        # the program runs the code of the release that wrote it (its folder first on the path), whatever the
        # environment supervisord itself was started with
        env = (f"PYTHONUNBUFFERED=\"1\",PATH=\"{os.environ.get('PATH', '')}\","
               f"PYTHONPATH=\"{PROJECT_ROOT}\"")
        command = f"{sys.executable} -m {runner} {program} --settings {self.settings_file}"
        return "\n".join([
            f"[program:{program}]", f"command={command}", f"directory={self.state_dir}",
            "autostart=false", "autorestart=true", "startsecs=2", "startretries=1000000",
            # TERM to the program alone (the Flink job then takes its savepoint before its JVM goes); KILL, after the
            # wait, to its whole process group
            "stopsignal=TERM", f"stopwaitsecs={stop_wait}", "stopasgroup=false",
            "killasgroup=true", "redirect_stderr=true", f"stdout_logfile={self.program_log(program)}",
            "stdout_logfile_maxbytes=20MB", f"environment={env}", ""])


class SupervisedService(Service):
    """A long-running piece run by :class:`SupervisorService`: started, stopped and inspected through it. Its program
    is ``python -m {runner} {program} --settings FILE``."""

    program = "program"
    runner = ""  # the module the supervisor runs (the caller's: emulation knows none)
    stop_wait = STOP_WAIT

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

    def start_program(self) -> None:
        if not self.runner:
            raise ServiceError(f"{self.name}: no runner module names what the supervisor runs")
        self.supervisor.start_program(self.program, self.runner, self.stop_wait)

    def start(self) -> Endpoint:
        self.start_program()
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
