"""The one interface every emulated engine implements."""

from __future__ import annotations

import abc
import contextlib
import json
import os
import secrets
import socket
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path


class ServiceError(RuntimeError):
    """A service failed to start, stop or answer; the message says why and shows its log tail."""



def kept_secret(path: Path) -> str:
    """A password generated at first use and kept in ``path`` (readable by its owner only)."""
    if not path.exists():
        fresh = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
        write_private(fresh, secrets.token_urlsafe(18))
        with contextlib.suppress(FileExistsError):  # another process made it first: keep theirs
            os.link(fresh, path)
        fresh.unlink()
    return path.read_text().strip()


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by its owner only (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(0o600)
    path.chmod(0o600)
    path.write_text(text)

@dataclass(frozen=True)
class Endpoint:
    """How clients reach a running service."""

    host: str
    port: int
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    running: bool
    healthy: bool
    endpoint: Endpoint | None
    pid: int | None
    detail: str = ""


def host_port(address: str, default_port: int) -> tuple[str, int]:
    """``host:port`` (or a bare host, on ``default_port``) as (host, port)."""
    host, sep, port = address.strip().rpartition(":")
    return (host, int(port)) if sep else (address.strip(), default_port)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on ``host:port`` (so a kept port can be reused)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as servers bind: TIME_WAIT is no obstacle
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, or a note that it does not exist."""
    if not path.exists():
        return f"(no log at {path})"
    with path.open(encoding="utf-8", errors="replace") as fh:
        return "".join(deque(fh, maxlen=lines))


class Service(abc.ABC):
    """Start, stop and inspect one engine: a local one of ours (state under ``state_dir/<name>``), or the
    deployment's (``configured()``), which is only used and inspected."""

    name: str = "service"

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir / self.name

    @abc.abstractmethod
    def start(self) -> Endpoint:
        """Start (or adopt the already running) service and wait until it is healthy."""

    @abc.abstractmethod
    def stop(self) -> None:
        """Stop cleanly; a stopped service stays stopped."""

    def configured(self) -> Endpoint | None:
        """The deployment's endpoint when the settings name one: an engine run elsewhere, which this platform uses
        but never starts, stops or deletes. None (the default): the local emulator, ours to run."""
        return None

    @property
    def external(self) -> bool:
        """Whether the settings name this engine's endpoint (then ``emulation.resources`` gives the deployment's
        lifecycle; credentials come from the settings alone)."""
        return self.configured() is not None

    @property
    def start_timeout(self) -> float:
        """How long ``start`` waits for the engine to answer."""
        return float(self.settings.service_start_timeout)

    def available(self) -> bool:
        """Whether clients may use it now: our local process runs (the deployment's always may)."""
        return self.pid() is not None

    def endpoint(self) -> Endpoint | None:
        """Where clients reach the service: the deployment's endpoint, else the local one's endpoint file (written
        at start), or None before its first start."""
        if (configured := self.configured()) is not None:
            return configured
        saved = self._saved_endpoint()
        if saved is None:
            return None
        return Endpoint(saved["host"], int(saved["port"]), self.endpoint_extra(saved))

    def endpoint_extra(self, saved: dict) -> dict[str, str]:
        """What clients need besides the host and port (URLs, credentials), from the saved endpoint fields."""
        return {}

    @abc.abstractmethod
    def pid(self) -> int | None:
        """The running server's process id, or None."""

    @abc.abstractmethod
    def health(self) -> bool:
        """True when the service answers a real request."""

    @property
    @abc.abstractmethod
    def log_path(self) -> Path: ...

    def logs(self, lines: int = 30) -> str:
        return tail(self.log_path, lines)

    @property
    def _endpoint_file(self) -> Path:
        """Where a started service records how to reach it, for every later command to read."""
        return self.state_dir / "endpoint.json"

    def _saved_endpoint(self) -> dict | None:
        return json.loads(self._endpoint_file.read_text()) if self._endpoint_file.exists() else None

    def _save_endpoint(self, **fields: object) -> None:
        self._endpoint_file.parent.mkdir(parents=True, exist_ok=True)
        self._endpoint_file.write_text(json.dumps(fields))

    def _require_endpoint(self) -> Endpoint:
        ep = self.endpoint()
        if ep is None:
            raise self.fail("no endpoint file after start")
        return ep

    def _keep_ports(self, host: str, **configured: int) -> dict[str, int]:
        """A port per name: the configured one (non-zero), else the one saved at the last start while it is
        still free (clients keep their address across restarts), else a new free one; never twice the same."""
        saved = self._saved_endpoint() or {}
        chosen: dict[str, int] = {}
        for key, wanted in configured.items():
            previous = int(saved.get(key, 0))
            if wanted:
                port = wanted
            elif previous and previous not in chosen.values() and port_is_free(host, previous):
                port = previous
            else:
                port = free_port(host)
                while port in chosen.values():
                    port = free_port(host)
            chosen[key] = port
        return chosen

    def detail(self) -> str:
        """What a person should know about the running service beyond its endpoint (which emulator, and why)."""
        return ""

    def external_start(self, timeout: float) -> Endpoint:
        """``start`` of an engine the deployment names: wait until it answers (it is not ours to start); a password
        the deployment must give and does not is said at once (one line naming its variable), not as a timeout."""
        self.check_credentials()
        deadline = time.monotonic() + timeout
        while not self.health():
            if time.monotonic() > deadline:
                raise ServiceError(f"{self.name}: the deployment's {self.name} at {self.where()} is not answering "
                                   f"after {timeout:.0f}s")
            time.sleep(0.5)
        return self._require_endpoint()

    def check_credentials(self) -> None:  # noqa: B027 (a hook: most engines need no check)
        """Raise :class:`ServiceError` naming the setting when a credential clients need is missing."""

    def where(self) -> str:
        """What clients talk to (for messages)."""
        ep = self.endpoint()
        return ep.address if ep else self.name

    def status(self) -> ServiceStatus:
        pid = self.pid()
        healthy = pid is not None and self.health()
        return ServiceStatus(self.name, pid is not None, healthy, self.endpoint(), pid, self.detail())

    def fail(self, why: str) -> ServiceError:
        return ServiceError(f"{self.name}: {why}\n--- last lines of {self.log_path} ---\n{self.logs()}")
