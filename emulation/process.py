"""A long-running local process, detached from the caller, with its pid file and log kept in state."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil
from tenacity import retry, retry_if_exception_type, stop_after_delay, wait_fixed

from emulation.service import Service, ServiceError, tail
from pipeline.settings import Settings


def _boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def _start_stamp(proc: psutil.Process) -> dict[str, object]:
    """When ``proc`` started: the boot and the seconds since it (psutil's create_time is the wall clock's, which a
    step moves: after a VM fork's 17 s jump every engine looked dead), and that wall-clock time as well."""
    created = proc.create_time()
    return {"boot": _boot_id(), "since_boot": round(created - psutil.boot_time(), 2), "created": created}


def _same_start(saved: Mapping[str, object], now: Mapping[str, object]) -> bool:
    """Whether a pid file's start stamp is this process's (a file from before the boot stamp: by wall clock)."""
    if "since_boot" in saved:
        return saved["boot"] == now["boot"] and abs(float(saved["since_boot"]) - float(now["since_boot"])) < 0.05
    return abs(float(saved["created"]) - float(now["created"])) < 1


class BackgroundProcess:
    """One long-running engine process: started in its own session, output to ``log_path``, found again by
    its pid file from any later command.

    The pid file records the pid, the process's start (the boot it ran in and the time since that boot, which no
    clock step moves) and what it runs (a JVM's main class, a Python module), so a reused pid is never mistaken
    for the engine.
    """

    def __init__(self, pid_file: Path, log_path: Path) -> None:
        self.pid_file = pid_file
        self.log_path = log_path
        self._popen: subprocess.Popen[bytes] | None = None

    def start(self, cmd: Sequence[str], env: Mapping[str, str] | None = None, cwd: Path | None = None) -> int:
        if self.pid() is not None:
            raise ServiceError(f"{self.pid_file.stem}: already running (pid {self.pid()}, {self.pid_file})")
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        main = _identity(cmd)
        with self.log_path.open("ab") as log:
            log.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting {main}\n".encode())
            log.flush()
            self._popen = subprocess.Popen(
                list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, cwd=cwd or self.pid_file.parent, env={**os.environ, **(env or {})},
            )
        started = _start_stamp(psutil.Process(self._popen.pid))
        self.pid_file.write_text(json.dumps({"pid": self._popen.pid, **started, "main": main}))
        return self._popen.pid

    def pid(self) -> int | None:
        """The pid while the recorded process still runs, else None (and a dead child is reaped). The pid file
        decides, not this object's own child: after another command restarted the engine, this object's child
        is dead but the engine runs, and must still be found (and stopped)."""
        if self._popen is not None:
            self._popen.poll()  # reap our own child if it ended
        try:
            saved = json.loads(self.pid_file.read_text())
            proc = psutil.Process(int(saved["pid"]))
            if proc.status() == psutil.STATUS_ZOMBIE:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(proc.pid, os.WNOHANG)
                return None
            cmdline = proc.cmdline()  # briefly empty while a java launcher re-executes itself
            if _same_start(saved, _start_stamp(proc)) and (not cmdline or saved["main"] in cmdline):
                return proc.pid
        except (OSError, ValueError, KeyError, TypeError, psutil.Error):
            pass
        return None

    def exit_code(self) -> int | None:
        """The exit code of a process this object started and that has ended, else None."""
        return None if self._popen is None else self._popen.poll()

    def rss_mb(self) -> float | None:
        pid = self.pid()
        with contextlib.suppress(psutil.Error):
            return psutil.Process(pid).memory_info().rss / 2**20 if pid else None
        return None

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (a JVM runs its shutdown hooks), wait up to ``timeout``, then SIGKILL."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc = psutil.Process(pid)
                proc.send_signal(signal.SIGTERM)
                _, alive = psutil.wait_procs([proc], timeout=timeout)
                for left in alive:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        left.kill()
                psutil.wait_procs(alive, timeout=10)
        if self._popen is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1)
        self.pid_file.unlink(missing_ok=True)

    def logs(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)


def _identity(cmd: Sequence[str]) -> str:
    """What a command runs: the module of ``python -m module``, the main class of ``java -cp CP Main``."""
    args = list(cmd)
    if "-m" in args[:-1]:
        return args[args.index("-m") + 1]
    for i, arg in enumerate(args[:-1]):
        if arg in ("-cp", "-classpath", "--class-path"):
            return args[i + 2] if i + 2 < len(args) else args[-1]
    return args[-1]


class ProcessService(Service):
    """A service that is one local process of ours: its pid file, log, endpoint and readiness wait."""

    process_name = "service"

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings.state_dir)
        self.settings = settings
        self.process = BackgroundProcess(self.state_dir / f"{self.process_name}.pid",
                                         self.state_dir / f"{self.process_name}.log")

    @property
    def log_path(self) -> Path:
        return self.process.log_path

    def pid(self) -> int | None:
        return self.process.pid()

    def stop(self) -> None:
        self.process.stop()

    def wait_ready(self, what: str) -> None:
        """Wait until the process answers :meth:`health`; fail fast, with its log, if it exits."""

        @retry(stop=stop_after_delay(self.settings.service_start_timeout), wait=wait_fixed(0.2),
               retry=retry_if_exception_type(AssertionError), reraise=True)
        def ping() -> None:
            assert self.process.pid() is not None, "exited"
            assert self.health(), "not answering"

        try:
            ping()
        except AssertionError as exc:
            raise self.fail(f"{what} {exc} on {self.endpoint()}") from None
