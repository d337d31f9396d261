"""The containers backend (``OLIST_ENGINES=containers``): PostgreSQL and S3 (LocalStack) in containers, started through
testcontainers, behind the same services as the process backend, so the CLI, the demo and the tests do not change.

``emulation.resources.engine`` gives :class:`PostgresContainerService` and :class:`S3ContainerService` when
``settings.engines`` is ``containers``, so every caller gets the backend the settings choose. Kafka, Connect and
Cassandra have no image here: they stay processes on either backend.

The engine: ``DOCKER_HOST`` when set, else a Docker engine on ``/var/run/docker.sock``, else podman. With podman, a
private ``podman system service`` runs for as long as the Python process that needs it (its socket under the state
folder; it ends with that process, even a killed one), configured by files written at run time under
``~/.cache/olist-lambda/containers`` (never /etc): runc, cgroupfs, rlimits at the hard limits, overlay storage,
slirp4netns networking and no CNI plugins (a bridge request fails instead of rewriting iptables).

Every container publishes on ``settings.bind_host`` (127.0.0.1) only, on a port chosen like the processes' (the
setting, else the last one, else a free one), and carries the labels ``olist.project``, ``olist.state`` (the state
folder), ``olist.service`` and ``olist.run`` (the pid that made it). testcontainers' reaper (Ryuk) is off: its image
cannot be pulled here, and the services outlive the command that starts them; :func:`reap` removes a crashed run's
containers by label instead. A container is named after its state folder, so a later command adopts it; ``stop``
keeps it (and its data: PostgreSQL's cluster; LocalStack keeps objects in memory, like the process), ``destroy``
removes it.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import hashlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emulation.postgres import SERVER_CONF, PostgresService
from emulation.s3 import Emulator, S3Service
from emulation.service import Endpoint, ServiceError, tail, write_private
from pipeline.settings import Settings, cache_root

PROJECT_LABEL = "olist.project"
PROJECT = "olist-lambda"
STATE_LABEL, SERVICE_LABEL, RUN_LABEL = "olist.state", "olist.service", "olist.run"


def short_digest(path: Path) -> str:
    """12 hex digits naming a path, for names that must stay short (a socket, a container, podman's run root)."""
    return hashlib.sha1(str(path).encode()).hexdigest()[:12]


# -- podman, configured privately ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PodmanPaths:
    root: Path

    @property
    def conf_dir(self) -> Path:
        return self.root / "conf"

    @property
    def storage(self) -> Path:
        return self.root / "storage"

    @property
    def runroot(self) -> Path:
        """Podman's run-time state (locks, mounts), one per storage: two storages must never share one."""
        return Path(tempfile.gettempdir()) / f"olist-containers-run-{short_digest(self.storage.resolve())}"

    @property
    def no_cni(self) -> Path:
        return self.root / "no-cni-plugins"


def podman_paths() -> PodmanPaths:
    return PodmanPaths(cache_root() / "containers")


def _hard_limits() -> tuple[int, int]:
    import resource

    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = int(Path("/proc/sys/kernel/pid_max").read_text())
    return (nofile if nofile != resource.RLIM_INFINITY else 1 << 20), nproc


def podman_env() -> dict[str, str]:
    """The environment podman runs with: our containers.conf, storage.conf and registries.conf (rewritten each time
    so they follow this machine's limits)."""
    paths = podman_paths()
    for folder in (paths.conf_dir, paths.storage, paths.runroot, paths.no_cni):
        folder.mkdir(parents=True, exist_ok=True)
    nofile, nproc = _hard_limits()
    files = {
        "containers.conf": f"""# Written by emulation/containers.py; edits are overwritten.
[containers]
# The machine withholds CAP_SYS_RESOURCE: podman's default rlimits (above the hard limits) would fail.
default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]
netns = "slirp4netns"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
[network]
network_backend = "cni"
cni_plugin_dirs = ["{paths.no_cni}"]
""",
        "storage.conf": f"""# Written by emulation/containers.py; edits are overwritten.
[storage]
driver = "overlay"
graphroot = "{paths.storage}"
runroot = "{paths.runroot}"
""",
        "registries.conf": "# Written by emulation/containers.py: no registry is searched for short names.\n"
                           "unqualified-search-registries = []\n",
    }
    for name, text in files.items():
        path = paths.conf_dir / name
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return {**os.environ, "CONTAINERS_CONF": str(paths.conf_dir / "containers.conf"),
            "CONTAINERS_STORAGE_CONF": str(paths.conf_dir / "storage.conf"),
            "CONTAINERS_REGISTRIES_CONF": str(paths.conf_dir / "registries.conf")}


def podman_command() -> list[str]:
    """The ``podman`` binary (run it with :func:`podman_env`)."""
    binary = shutil.which("podman")
    if binary is None:
        raise ServiceError("containers: no podman and no Docker engine: run `nox -s images` (it installs podman as "
                           "root) or set DOCKER_HOST")
    return [binary]


class _PodmanService:
    """``podman system service`` on a private socket for as long as this process lives (PR_SET_PDEATHSIG: the kernel
    ends it when this process dies, even by SIGKILL; atexit ends it on a normal exit)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.socket: Path | None = None

    def url(self, state_dir: Path) -> str:
        if self.proc is not None and self.proc.poll() is None and self.socket is not None and self.socket.exists():
            return f"unix://{self.socket}"
        sock = state_dir / "podman" / f"api-{os.getpid()}.sock"
        if len(str(sock)) > 100:  # AF_UNIX paths are at most 107 bytes
            sock = Path(tempfile.gettempdir()) / f"olist-podman-{short_digest(sock)}.sock"
        self.stop()  # one whose socket went with its state folder
        sock.parent.mkdir(parents=True, exist_ok=True)
        sock.unlink(missing_ok=True)
        log = (state_dir / "podman" / "service.log").open("ab")
        self.proc = subprocess.Popen([*podman_command(), "system", "service", "--time=0", f"unix://{sock}"],
                                     stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                     env=podman_env(), preexec_fn=_die_with_parent)
        log.close()
        self.socket = sock
        deadline = time.monotonic() + 30
        while not sock.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise ServiceError(f"containers: podman system service did not start:\n"
                                   f"{tail(state_dir / 'podman' / 'service.log')}")
            time.sleep(0.05)
        atexit.register(self.stop)
        return f"unix://{sock}"

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.socket is not None:
            self.socket.unlink(missing_ok=True)
        self.proc = self.socket = None


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


_PODMAN = _PodmanService()


def stop_podman_service() -> None:
    """End this process's podman service, if it started one (the containers go on running)."""
    _PODMAN.stop()


# -- the engine ------------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Engine:
    """Where the container API is: ``kind`` docker (DOCKER_HOST, the Docker socket) or podman (our private service)."""

    kind: str
    why: str
    url: str | None = None  # None: our podman service, started on first use

    def docker_host(self, state_dir: Path) -> str:
        return self.url or _PODMAN.url(state_dir)

    def client(self, state_dir: Path):
        """A docker SDK client of the engine (one per API server: podman's is restarted when its socket goes)."""
        url = self.docker_host(state_dir)
        return _client(url, _PODMAN.proc.pid if self.url is None and _PODMAN.proc else None)


@functools.lru_cache(maxsize=4)
def _client(url: str, server_pid: int | None):
    try:
        import docker
        import testcontainers  # noqa: F401 (the containers are made through it)
    except ImportError:
        raise ServiceError("containers: testcontainers is not installed: pip install -e '.[containers]'") from None
    return docker.DockerClient(base_url=url, timeout=120)


def _answers(socket_path: Path) -> bool:
    import socket

    with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(str(socket_path))
        sock.sendall(b"GET /_ping HTTP/1.0\r\n\r\n")
        return b"200" in sock.recv(64)
    return False


def find_engine() -> Engine:
    """DOCKER_HOST, else a Docker engine answering on /var/run/docker.sock, else podman (installed by `nox -s
    images`); a ServiceError naming what is missing otherwise."""
    if host := os.environ.get("DOCKER_HOST"):
        return Engine("docker", "DOCKER_HOST", host)
    if _answers(Path("/var/run/docker.sock")):
        return Engine("docker", "the Docker engine on /var/run/docker.sock", "unix:///var/run/docker.sock")
    if shutil.which("podman"):
        return Engine("podman", f"podman (no Docker engine; storage {podman_paths().storage})")
    raise ServiceError("containers: no container engine: DOCKER_HOST is unset, nothing answers on "
                       "/var/run/docker.sock and there is no podman (`nox -s images` installs it, as root)")


def engine_unavailable() -> str | None:
    """Why the containers backend cannot run here (no engine, or no image for PostgreSQL or S3), else None."""
    try:
        engine = find_engine()
    except ServiceError as exc:
        return str(exc)
    if engine.kind != "podman":
        return None
    from emulation.images import LOCAL_IMAGES, image_exists

    absent = [s.tag for s in LOCAL_IMAGES.values() if not image_exists(s.tag) and not image_exists(s.equivalent_of)]
    return f"containers: no image {', '.join(absent)} in podman's storage: run `nox -s images`" if absent else None


def choose_image(settings: Settings, field: str, client) -> tuple[str, str]:
    """The image of ``field`` (``postgres_image``, ``localstack_image``) and why: the setting's; left at its default
    (the official image) and absent from the engine, the equivalent `nox -s images` built when that is present
    (this machine: no registry); else the official name, which the engine pulls."""
    import docker.errors

    from emulation.images import LOCAL_IMAGES

    wanted = getattr(settings, field)
    default = type(settings).model_fields[field].default

    def present(tag: str) -> bool:
        try:
            client.images.get(tag)
            return True
        except docker.errors.ImageNotFound:
            return False

    if wanted != default or present(wanted):
        return wanted, f"OLIST_{field.upper()}"
    local = next(s.tag for s in LOCAL_IMAGES.values() if s.equivalent_of == default)
    if present(local):
        return local, f"for {wanted}, built by `nox -s images`"
    return wanted, f"OLIST_{field.upper()} (pulled by the engine)"


def _project_containers(labels: Mapping[str, str], settings: Settings | None) -> list:
    """This project's containers (running or not) carrying all ``labels``."""
    from pipeline.settings import get_settings

    client = find_engine().client((settings or get_settings()).state_dir)
    wanted = {PROJECT_LABEL: PROJECT, **labels}
    return client.containers.list(all=True, filters={"label": [f"{k}={v}" for k, v in wanted.items()]})


def reap(labels: Mapping[str, str], settings: Settings | None = None) -> list[str]:
    """Remove (forcibly, with their anonymous volumes) every container of this project carrying all ``labels``
    (``{"olist.state": "/path/.state/pytest-123"}``): what a crashed run left. Returns their names."""
    removed = []
    for container in _project_containers(labels, settings):
        with contextlib.suppress(Exception):  # gone meanwhile
            container.remove(force=True, v=True)
            removed.append(container.name)
    return removed


def labelled(labels: Mapping[str, str], settings: Settings | None = None) -> dict[str, dict[str, str]]:
    """This project's containers carrying all ``labels``: each one's name and labels."""
    return {c.name: c.labels for c in _project_containers(labels, settings)}


# -- a service in a container ----------------------------------------------------------------------------------------
class ContainerService:
    """The container half of a service (mixed in before the process service it replaces, whose credentials,
    endpoint details and health checks it keeps): find, create, adopt, stop and remove the service's container."""

    name: str
    settings: Settings
    state_dir: Path
    image_field: str  # the settings' field naming the image
    port_field: str  # the settings' field naming the published port (0: kept or free, as the processes')
    container_port: int
    stop_timeout = 30  # seconds a stop waits before the engine kills the container

    # -- the service's lifecycle, the same for every container ----------------------------------------------------
    def start(self) -> Endpoint:
        if self.container() is None:
            self.before_create()
        ep = self.run_container()
        self.wait_until(self.health, self.name)
        self.when_healthy()
        return ep

    def before_create(self) -> None:
        """Write what a new container mounts (the first start only)."""

    def when_healthy(self) -> None:
        """Make what clients need in the engine (a database, buckets) once it answers."""

    def stop(self) -> None:
        self.stop_container(timeout=self.stop_timeout)

    def destroy(self) -> None:
        """Remove the container (and its data) and the state."""
        self.remove_container()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    # -- the engine and the container ----------------------------------------------------------------------------
    @functools.cached_property
    def engine(self) -> Engine:
        return find_engine()

    @property
    def api(self):
        """The engine's API (a docker SDK client); not ``client``, which is the S3 service's boto3 client."""
        return self.engine.client(self.settings.state_dir)

    @property
    def container_name(self) -> str:
        return f"olist-{self.name}-{short_digest(self.settings.state_dir.resolve())}"

    def labels(self) -> dict[str, str]:
        return {PROJECT_LABEL: PROJECT, STATE_LABEL: str(self.settings.state_dir.resolve()), SERVICE_LABEL: self.name,
                RUN_LABEL: str(os.getpid())}

    def container(self):
        """The service's container (running or stopped), or None."""
        import docker.errors

        try:
            return self.api.containers.get(self.container_name)
        except docker.errors.NotFound:
            return None

    def inspect(self) -> dict[str, Any] | None:
        found = self.container()
        return None if found is None else found.attrs

    @property
    def log_path(self) -> Path:
        return self.state_dir / "container.log"

    def logs(self, lines: int = 30) -> str:
        """The container's output (also copied to :attr:`log_path`)."""
        found = None
        with contextlib.suppress(ServiceError, OSError):
            found = self.container()
        if found is None:
            return tail(self.log_path, lines)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.write_bytes(found.logs(stdout=True, stderr=True))
        return tail(self.log_path, lines)

    def pid(self) -> int | None:
        """The container's main process on this machine (PostgreSQL's postmaster, LocalStack's Python), or None."""
        try:
            info = self.inspect()
        except ServiceError:
            return None
        if info is None or not info["State"].get("Running"):
            return None
        return int(info["State"].get("Pid") or 0) or None

    def detail(self) -> str:
        saved = self._saved_endpoint() or {}
        image, why = saved.get("image", "?"), saved.get("image_why", "?")
        return f"{image} ({why}), {self.engine.kind} container {self.container_name}"

    # -- lifecycle -----------------------------------------------------------------------------------------------
    def container_env(self) -> dict[str, str]:
        return {}

    def container_command(self) -> list[str] | None:
        return None

    def container_mounts(self) -> list[tuple[Path, str]]:
        """(host file, path in the container) pairs, mounted read-only."""
        return []

    def run_container(self) -> Endpoint:
        """Adopt the running container, restart a stopped one (same port, same data), or create it."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        found = self.container()
        if found is not None and found.status == "running":
            return self._require_endpoint()
        if found is not None:
            try:
                found.start()
            except Exception as exc:
                raise self.fail(f"container {self.container_name} did not restart: {exc}") from None
            return self._require_endpoint()
        return self._create()

    def _create(self) -> Endpoint:
        from testcontainers.core.config import testcontainers_config
        from testcontainers.core.container import DockerContainer

        testcontainers_config.ryuk_disabled = True  # see the module's docstring: labels and reap() instead
        host = self.settings.bind_host
        port = self._keep_ports(host, port=getattr(self.settings, self.port_field))["port"]
        image, why = choose_image(self.settings, self.image_field, self.api)
        url = self.engine.docker_host(self.settings.state_dir)
        container = (DockerContainer(image, docker_client_kw={"environment": {"DOCKER_HOST": url}})
                     .with_name(self.container_name)
                     .with_envs(**self.container_env())
                     .with_kwargs(labels=self.labels(), **self._network_kwargs()))
        container.ports[f"{self.container_port}/tcp"] = (host, port)  # the docker SDK's form: loopback only
        if command := self.container_command():
            container = container.with_command(command)
        for source, target in self.container_mounts():
            container = container.with_volume_mapping(str(source), target, "ro")
        self._save_endpoint(host=host, port=port, image=image, image_why=why, engine=self.engine.why,
                            **self.endpoint_fields())
        try:
            container.start()
        except Exception as exc:
            self.remove_container()  # a created one that cannot run (its port taken, say) is made afresh next time
            raise self.fail(f"container {self.container_name} from {image} did not start: {exc}") from None
        return self._require_endpoint()

    def endpoint_fields(self) -> dict[str, str]:
        return {}

    def _network_kwargs(self) -> dict[str, Any]:
        """slirp4netns on podman (a user-mode network: no bridge, no iptables); the engine's default on Docker."""
        version = self.api.version()
        if any("podman" in c.get("Name", "").lower() for c in version.get("Components", [])):
            return {"network_mode": "slirp4netns"}
        return {}

    def stop_container(self, timeout: int = 30) -> None:
        with contextlib.suppress(ServiceError):
            found = self.container()
            if found is not None and found.status == "running":
                found.stop(timeout=timeout)

    def remove_container(self) -> None:
        with contextlib.suppress(ServiceError):
            found = self.container()
            if found is not None:
                found.remove(force=True, v=True)

    def wait_until(self, healthy, what: str) -> None:
        deadline = time.monotonic() + self.settings.service_start_timeout
        while not healthy():
            info = self.inspect()
            if info is None or not info["State"].get("Running"):
                raise self.fail(f"container {self.container_name} exited "
                                f"({info['State'].get('ExitCode') if info else 'removed'})")
            if time.monotonic() > deadline:
                raise self.fail(f"{what} not answering on {self.where()} after "
                                f"{self.settings.service_start_timeout:.0f}s")
            time.sleep(0.2)


# Who may connect to the containerised cluster: its socket is inside the container (trust there, as the official
# image's); over TCP (the published loopback port) passwords only, and no physical replication for anyone.
CONTAINER_HBA = """# Written by emulation/containers.py at every container creation.
local   all          all                     trust
host    replication  all        all          reject
host    all          all        all          scram-sha-256
"""


class PostgresContainerService(ContainerService, PostgresService):
    """PostgreSQL 15 in a container: the official image's entrypoint makes the superuser (its password from a file
    mounted read-only, never in the container's environment), then the same roles and database as the process."""

    image_field, port_field, container_port = "postgres_image", "pg_port", 5432
    stop_timeout = 60  # PostgreSQL's shutdown checkpoint

    @property
    def secret_file(self) -> Path:
        return self.state_dir / "container" / "admin_password"

    @property
    def hba_file(self) -> Path:
        return self.state_dir / "container" / "pg_hba.conf"

    def container_env(self) -> dict[str, str]:
        return {"POSTGRES_USER": self.settings.pg_admin_user,
                "POSTGRES_PASSWORD_FILE": "/run/secrets/pg_admin_password",
                "POSTGRES_INITDB_ARGS": "--encoding=UTF8 --locale=C.UTF-8"}

    def container_mounts(self) -> list[tuple[Path, str]]:
        return [(self.secret_file, "/run/secrets/pg_admin_password"), (self.hba_file, "/etc/olist/pg_hba.conf")]

    def container_command(self) -> list[str]:
        conf = {k: v.strip("'") for k, v in SERVER_CONF.items() if k not in ("port", "unix_socket_directories")}
        conf |= {"listen_addresses": "*", "hba_file": "/etc/olist/pg_hba.conf",
                 "wal_writer_delay": f"{self.settings.pg_wal_writer_delay_ms}ms"}
        return ["postgres", *(arg for k, v in conf.items() for arg in ("-c", f"{k}={v}"))]

    def before_create(self) -> None:
        write_private(self.secret_file, self.admin_password() + "\n")
        self.hba_file.write_text(CONTAINER_HBA)
        self.hba_file.chmod(0o644)

    def when_healthy(self) -> None:
        self._ensure_database()


class S3ContainerService(ContainerService, S3Service):
    """LocalStack's S3 in a container; objects in memory, as the process's (a stop empties the buckets)."""

    image_field, port_field, container_port = "localstack_image", "s3_port", 4566
    stop_timeout = 10

    @functools.cached_property
    def emulator(self) -> Emulator:
        if self.external:
            return Emulator("external", "OLIST_S3_ENDPOINT_URL")
        return Emulator("localstack", "OLIST_ENGINES=containers")

    def endpoint_fields(self) -> dict[str, str]:
        return {"emulator": "localstack", "why": "OLIST_ENGINES=containers"}

    def container_env(self) -> dict[str, str]:
        return {"SERVICES": "s3", "DNS_ADDRESS": "0", "DISABLE_EVENTS": "1", "SKIP_SSL_CERT_DOWNLOAD": "1"}

    def when_healthy(self) -> None:
        self.ensure_buckets()
