"""JVM engines: their jars fetched once from Maven into a cache, and Java main classes run as background processes.

The jars come from ``emulation/jvm/pom.xml`` (one Maven profile per classpath) and are copied into
``<jvm_cache_dir>/<hash of the pom and version overrides>``: outside the work tree, shared by every clone,
test state folder and ``olist down --purge``, so a second fetch finds the ``.complete`` marker and runs nothing.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from emulation.process import BackgroundProcess, ProcessService
from emulation.service import Endpoint, Service, ServiceError
from pipeline.settings import JvmSettings, Settings

POM = Path(__file__).resolve().parent / "jvm" / "pom.xml"
PROFILES = ("kafka", "connect", "debezium-postgres", "flink", "cassandra")
MARKER = ".complete"


# -- fetching ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JvmArtifacts:
    """A completed fetch: one folder of jars per pom profile."""

    root: Path

    def lib(self, profile: str) -> Path:
        return _destination(self.root, profile)

    def classpath(self, profile: str) -> str:
        jars = sorted(self.lib(profile).glob("*.jar"))
        if not jars:
            raise ServiceError(f"jvm: no jars for profile {profile!r} under {self.root}")
        return os.pathsep.join(str(j) for j in jars)

    @property
    def plugin_path(self) -> Path:
        """Connect's ``plugin.path``: one sub-folder per connector plugin."""
        return self.root / "plugins"


def _overrides(settings: JvmSettings) -> dict[str, str]:
    props = {"kafka.version": settings.kafka_version, "debezium.version": settings.debezium_version,
             "cassandra.version": settings.cassandra_version}
    return {k: v for k, v in props.items() if v}


def cache_key(pom: Path = POM, overrides: Mapping[str, str] | None = None) -> str:
    digest = hashlib.sha256(pom.read_bytes())
    digest.update(json.dumps(dict(sorted((overrides or {}).items()))).encode())
    digest.update(json.dumps(PROFILES).encode())  # a profile added to PROFILES alone also needs a fetch
    return digest.hexdigest()[:16]


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _destination(root: Path, profile: str) -> Path:
    # Connectors go to plugin.path in a folder of their own; engines get a flat folder of jars.
    return root / "plugins" / "debezium-connector-postgres" if profile == "debezium-postgres" else root / profile


def fetch(settings: JvmSettings | None = None, pom: Path = POM) -> JvmArtifacts:
    """The jars of every profile of ``pom``, copied by Maven on first call and reused after (idempotent)."""
    settings = settings or JvmSettings()
    overrides = _overrides(settings)
    root = settings.jvm_cache_dir / cache_key(pom, overrides)
    if (root / MARKER).exists():
        return JvmArtifacts(root)
    with _locked(settings.jvm_cache_dir / f"{root.name}.lock"):
        if (root / MARKER).exists():  # another process finished it while we waited
            return JvmArtifacts(root)
        mvn = shutil.which(settings.mvn_bin)
        if mvn is None:
            raise ServiceError(f"jvm: Maven ({settings.mvn_bin!r}) is not on PATH; install Debian's maven package")
        work = root.with_name(f"{root.name}.partial")
        shutil.rmtree(work, ignore_errors=True)
        started = time.monotonic()
        for profile in PROFILES:
            cmd = [mvn, "-q", "-B", "-f", str(pom), "-P", profile, "dependency:copy-dependencies",
                   f"-DoutputDirectory={_destination(work, profile)}", *(f"-D{k}={v}" for k, v in overrides.items())]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True, timeout=settings.jvm_fetch_timeout,
                                      stdin=subprocess.DEVNULL, check=False)
            except subprocess.TimeoutExpired as exc:
                raise ServiceError(f"jvm: Maven fetch of profile {profile!r} took over {exc.timeout:.0f}s") from exc
            if proc.returncode != 0:
                out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
                raise ServiceError(f"jvm: Maven could not fetch profile {profile!r} of {pom} "
                                   f"(exit {proc.returncode}):\n{out}")
        info = {"pom": str(pom), "overrides": overrides, "seconds": round(time.monotonic() - started, 1),
                "jars": {p: len(list(_destination(work, p).glob("*.jar"))) for p in PROFILES}}
        (work / MARKER).write_text(json.dumps(info, indent=2) + "\n")
        shutil.rmtree(root, ignore_errors=True)
        work.rename(root)
    return JvmArtifacts(root)


# -- running -------------------------------------------------------------------------------------


def write_log4j2(path: Path, levels: Mapping[str, str] | None = None, root_level: str = "INFO") -> Path:
    """A log4j2 config sending every line to stdout (which BackgroundProcess sends to the log file)."""
    lines = [
        "status = warn",
        "appender.out.type = Console",
        "appender.out.name = OUT",
        "appender.out.target = SYSTEM_OUT",
        "appender.out.layout.type = PatternLayout",
        "appender.out.layout.pattern = [%d{ISO8601}] %p %m (%c{1})%n",
        f"rootLogger.level = {root_level}",
        "rootLogger.appenderRef.out.ref = OUT",
    ]
    for i, (logger, level) in enumerate(sorted((levels or {}).items())):
        lines += [f"logger.l{i}.name = {logger}", f"logger.l{i}.level = {level}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def java_command(main_class: str, classpath: str, args: Sequence[str] = (), *, heap_mb: int = 256,
                 settings: JvmSettings | None = None, log4j2: Path | None = None,
                 tmp_dir: Path | None = None, props: Mapping[str, str] | None = None) -> list[str]:
    """The ``java`` command line for ``main_class``: bounded heap, IPv4, log4j2 config and temp dir in state."""
    settings = settings or JvmSettings()
    java = shutil.which(settings.java_bin)
    if java is None:
        raise ServiceError(f"jvm: java ({settings.java_bin!r}) is not on PATH; install a Java 17+ runtime")
    system = {"java.awt.headless": "true", "java.net.preferIPv4Stack": "true", **(props or {})}
    if log4j2:
        # Keep logging while the engine's own shutdown hooks run (log4j2's hook would stop it first).
        system |= {"log4j2.configurationFile": str(log4j2), "log4j2.shutdownHookEnabled": "false"}
    if tmp_dir:
        system["java.io.tmpdir"] = str(tmp_dir)
    return [java, f"-Xms{max(64, heap_mb // 2)}m", f"-Xmx{heap_mb}m", *settings.jvm_opts.split(),
            *(f"-D{k}={v}" for k, v in system.items()), "-cp", classpath, main_class, *args]


def run_java(cmd: Sequence[str], timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run a short-lived Java tool in the foreground (e.g. Kafka's storage format)."""
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, check=False)


def wait_healthy(service: Service, process: BackgroundProcess, started: float, timeout: float, what: str) -> None:
    """Poll ``service.health()`` until it answers; fail fast with the log tail when the JVM exits."""
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.pid() is None:
            code = process.exit_code()
            cause = root_cause(process.log_path)
            raise service.fail(f"the JVM exited{'' if code is None else f' with code {code}'} while starting"
                               + (f" ({cause})" if cause else ""))
        if service.health():
            return
        time.sleep(0.3)
    raise service.fail(f"not answering on {what} after {timeout:.0f}s")


def root_cause(log_path: Path) -> str:
    """The innermost ``Caused by:`` (else the first ERROR line) logged since the JVM's last start, or ''."""
    if not log_path.exists():
        return ""
    text = log_path.read_text(errors="replace")
    lines = text[text.rfind("\n=== "):].splitlines()
    causes = [ln.strip().removeprefix("Caused by: ") for ln in lines if ln.startswith("Caused by: ")]
    errors = [ln.strip() for ln in lines if " ERROR " in ln or " FATAL " in ln]
    if causes:
        return causes[-1][:300]
    return errors[0][:300] if errors else ""


class JvmService(ProcessService):
    """A JVM engine of ours: its jars from the Maven cache, data and config under its state folder, started
    with :func:`java_command` and healthy once :meth:`health` answers (the JVM's root cause if it exits)."""

    config_name = "server.properties"
    stop_timeout = 30.0

    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.jvm = settings.jvm

    @property
    def data_dir(self) -> Path:
        return self.state_dir / "data"

    @property
    def _config_file(self) -> Path:
        return self.state_dir / self.config_name

    @property
    def _tmp_dir(self) -> Path:
        return self.state_dir / "tmp"

    def claim_ports(self, extra: dict[str, str] | None = None, **configured: int) -> dict[str, int]:
        """This start's ports (each the configured one, else the last start's while free, else a new one),
        saved with the bind host (and ``extra``) as the endpoint every later command reads."""
        ports = self._keep_ports(self.bind_address, **configured)
        self._save_endpoint(host=self.bind_address, **ports, **(extra or {}))
        return ports

    @property
    def bind_address(self) -> str:
        """The address the engine listens on (the settings' bind host unless it is one of a cluster's nodes)."""
        return self.settings.bind_host

    def preflight(self) -> None:
        """Checks before a cold start (an engine it needs is up); raise :meth:`fail` to refuse."""

    def command(self, artifacts: JvmArtifacts) -> list[str]:
        """Write the engine's config for this start and return its ``java`` command line."""
        raise NotImplementedError

    @property
    def start_timeout(self) -> float:
        return self.jvm.jvm_start_timeout

    def start(self) -> Endpoint:
        if self.pid() is not None:  # adopt the running engine (give it the usual time to answer)
            if not self.health():
                wait_healthy(self, self.process, time.monotonic(), self.jvm.jvm_start_timeout, self.where())
            return self._require_endpoint()
        self.preflight()
        artifacts = fetch(self.jvm)
        self._tmp_dir.mkdir(parents=True, exist_ok=True)
        cmd = self.command(artifacts)
        started = time.monotonic()
        self.process.start(cmd, cwd=self.state_dir)
        wait_healthy(self, self.process, started, self.jvm.jvm_start_timeout, self.where())
        return self._require_endpoint()

    def stop(self) -> None:
        self.process.stop(timeout=self.stop_timeout)

    def destroy(self) -> None:
        """Stop and delete the engine's data and state (tests and `olist down --purge`)."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)
