"""A long-running local process, detached from the caller, with its pid file and log kept in state."""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path

import psutil


class BackgroundProcess:
    """Start a command in its own session with output to a log; find it again by its pid file."""

    def __init__(self, state_dir: Path, name: str) -> None:
        self.pid_file = state_dir / f"{name}.pid"
        self.log_path = state_dir / f"{name}.log"

    def start(self, cmd: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> int:
        self.pid_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            proc = subprocess.Popen(
                list(cmd), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env={**os.environ, **(env or {})}, cwd=cwd,
            )
        self.pid_file.write_text(f"{proc.pid}\n{' '.join(cmd)}\n")
        return proc.pid

    def pid(self) -> int | None:
        """The pid if that process still runs the recorded command, else None."""
        try:
            pid_text, cmd = self.pid_file.read_text().split("\n", 1)
            proc = psutil.Process(int(pid_text))
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            if " ".join(proc.cmdline()) == cmd.strip():
                return proc.pid
        except (OSError, ValueError, psutil.Error):
            pass
        return None

    def alive(self) -> bool:
        return self.pid() is not None

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM the process and its children, then SIGKILL what is left after ``timeout``."""
        pid = self.pid()
        if pid is not None:
            with contextlib.suppress(psutil.NoSuchProcess):
                parent = psutil.Process(pid)
                procs = [*parent.children(recursive=True), parent]
                for proc in procs:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        proc.terminate()
                _, alive = psutil.wait_procs(procs, timeout=timeout)
                for proc in alive:
                    with contextlib.suppress(psutil.NoSuchProcess):
                        proc.kill()
                psutil.wait_procs(alive, timeout=5)
        self.pid_file.unlink(missing_ok=True)
