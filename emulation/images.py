"""The containers backend's images built on this machine (`nox -s images`), where no image registry is reachable.

Steps, each skipped when its result is there: podman and its helpers from apt (as root), a Debian bookworm minbase
rootfs (debootstrap, from the mirror the host's apt sources name, read at run time) imported as
``localhost/olist-debian:bookworm``, then one image per engine from ``emulation/images/<name>/Containerfile``
(``podman build --network=host``: the build reaches the mirror and the Python index the way the host does, and
changes no network configuration). The images are equivalents of the official ones the settings name
(``postgres_image``, ``localstack_image``): the backend uses them when those are left at their defaults and are not
in the engine (see :func:`emulation.containers.choose_image`). Only PostgreSQL and LocalStack (S3): Kafka and
Cassandra have no image here and stay processes.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from emulation.containers import find_engine, podman_command, podman_env, podman_paths
from emulation.service import ServiceError
from pipeline.settings import PROJECT_ROOT

IMAGES_DIR = Path(__file__).parent / "images"
BASE_IMAGE = "localhost/olist-debian:bookworm"
SUITE = "bookworm"
# Debian packages the backend needs on a machine without a Docker engine, by the binary that proves each.
HOST_PACKAGES = {"podman": "podman", "runc": "runc", "fuse-overlayfs": "fuse-overlayfs", "slirp4netns": "slirp4netns",
                 "catatonit": "catatonit", "debootstrap": "debootstrap", "uidmap": "newuidmap"}


@dataclass(frozen=True)
class ImageSpec:
    """One locally built image: its tag, the official image it stands in for, its build folder and extra files."""

    name: str
    tag: str
    equivalent_of: str
    extra_files: tuple[Path, ...] = ()

    @property
    def context(self) -> Path:
        return IMAGES_DIR / self.name


LOCAL_IMAGES = {
    "postgres": ImageSpec("postgres", "localhost/olist-postgres:15", "postgres:15.18-bookworm"),
    "localstack": ImageSpec("localstack", "localhost/olist-localstack:4.13.1", "localstack/localstack:4.13.1",
                            (PROJECT_ROOT / "requirements" / "localstack-image.txt",)),
}


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    skipped: bool
    detail: str = ""


@dataclass
class ImagesReport:
    """What `nox -s images` did, step by step, and where podman keeps the images."""

    storage: Path
    steps: list[Step] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def lines(self) -> list[str]:
        rows = [f"{s.name:<34} {'cached' if s.skipped else f'{s.seconds:6.1f} s':>9}  {s.detail}" for s in self.steps]
        return [*rows, f"{'total':<34} {self.seconds:6.1f} s  (podman storage: {self.storage})"]


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror of the host's apt sources that serves ``bookworm`` main (one-line or deb822 format)."""
    files = [sources / "sources.list", *sorted((sources / "sources.list.d").glob("*.list")),
             *sorted((sources / "sources.list.d").glob("*.sources"))]
    for path in files:
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        if path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
                if "deb" in fields.get("Types", "").split() and SUITE in fields.get("Suites", "").split() \
                        and "main" in fields.get("Components", "").split() and fields.get("Enabled", "yes") != "no":
                    return fields["URIs"].split()[0]
        for line in text.splitlines():
            words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
            if len(words) >= 4 and words[0] == "deb" and words[2] == SUITE and "main" in words[3:]:
                return words[1]
    raise ServiceError(f"images: no apt source for Debian {SUITE} main under {sources} (debootstrap needs a mirror)")


def _run(cmd: list[str], what: str, timeout: float, stdin=subprocess.DEVNULL, **kwargs) -> str:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=stdin, check=False, **kwargs)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
        raise ServiceError(f"images: {what} exited {proc.returncode}:\n{tail}")
    return proc.stdout


def missing_host_packages() -> list[str]:
    return [pkg for pkg, binary in HOST_PACKAGES.items() if shutil.which(binary) is None]


def ensure_host_packages() -> Step:
    started, missing = time.monotonic(), missing_host_packages()
    if not missing:
        return Step("host packages (apt)", 0.0, True)
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise ServiceError(f"images: missing {' '.join(missing)}: install them with your package manager (as root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    _run(["apt-get", "update", "-qq"], "apt-get update", 600, env=env)
    _run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *HOST_PACKAGES], "apt-get install", 1200,
         env=env)
    return Step("host packages (apt)", time.monotonic() - started, False, " ".join(missing))


def image_exists(tag: str) -> bool:
    return subprocess.run([*podman_command(), "image", "exists", tag], capture_output=True, env=podman_env(),
                          check=False).returncode == 0


def ensure_base() -> Step:
    """``localhost/olist-debian:bookworm``: a debootstrapped minbase rootfs, imported."""
    if image_exists(BASE_IMAGE):
        return Step(BASE_IMAGE, 0.0, True)
    started, mirror = time.monotonic(), apt_mirror()
    work = Path(tempfile.mkdtemp(prefix="olist-rootfs-", dir=podman_paths().root))
    try:
        rootfs = work / "rootfs"
        _run(["debootstrap", "--variant=minbase", SUITE, str(rootfs), mirror], "debootstrap", 1800)
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
        _run([*podman_command(), "import", "-", BASE_IMAGE], "podman import", 600, stdin=tar.stdout, env=podman_env())
        tar.wait()
    finally:
        _unmount_under(work)  # a failed debootstrap may leave its /proc and /sys mounted in the rootfs
        shutil.rmtree(work, ignore_errors=True)
    return Step(BASE_IMAGE, time.monotonic() - started, False, f"debootstrap --variant=minbase {SUITE}")


def _unmount_under(folder: Path) -> None:
    prefix = str(folder.resolve()) + "/"
    mounts = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    for mount in sorted((m for m in mounts if m.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount], capture_output=True, check=False)


def host_ca_bundle() -> Path:
    bundles = (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), "/etc/ssl/certs/ca-certificates.crt")
    for candidate in bundles:
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise ServiceError("images: no CA bundle on the host (PIP_CERT, SSL_CERT_FILE, /etc/ssl/certs/ca-certificates.crt)")


def build(spec: ImageSpec) -> Step:
    """``podman build`` of one image from a copy of its folder (plus its extra files and the host's CA bundle)."""
    if image_exists(spec.tag):
        return Step(spec.tag, 0.0, True, f"for {spec.equivalent_of}")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"olist-build-{spec.name}-", dir=podman_paths().root) as tmp:
        context = Path(tmp) / "context"
        shutil.copytree(spec.context, context)
        for extra in spec.extra_files:
            shutil.copy(extra, context / ("requirements.txt" if extra.suffix == ".txt" else extra.name))
        shutil.copy(host_ca_bundle(), context / "host-ca.crt")
        _run([*podman_command(), "build", "--network=host", "--pull=never", "-t", spec.tag,
              "--label", f"olist.equivalent-of={spec.equivalent_of}", str(context)], f"podman build {spec.tag}", 1800,
             env=podman_env())
    return Step(spec.tag, time.monotonic() - started, False, f"for {spec.equivalent_of}")


def build_images(progress: Callable[[str], None] | None = None) -> ImagesReport:
    """Every step above, in order (none with a Docker engine: it pulls the official images); ``progress`` is told
    each step's name before it runs."""
    say = progress or (lambda _: None)
    report = ImagesReport(podman_paths().storage)
    with contextlib.suppress(ServiceError):
        if (engine := find_engine()).kind == "docker":
            report.steps.append(Step("images", 0.0, True, f"{engine.why}: the official images are pulled"))
            return report
    say("host packages")
    report.steps.append(ensure_host_packages())
    say(f"{BASE_IMAGE} (debootstrap)")
    report.steps.append(ensure_base())
    for spec in LOCAL_IMAGES.values():
        say(spec.tag)
        report.steps.append(build(spec))
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m emulation.images [--if-possible]` (what `nox -s images` runs): every step, with a spinner, then the
    report. ``--if-possible``: a machine that cannot build them (not root, no apt) is told why and the command
    succeeds; the containers backend's tests then skip, saying so."""
    import sys

    from rich.console import Console

    if_possible = "--if-possible" in (sys.argv[1:] if argv is None else argv)
    console = Console()
    try:
        with console.status("images") as status:
            report = build_images(lambda step: status.update(f"images: {step}"))
    except ServiceError as exc:
        if not if_possible:
            raise
        console.print(f"containers backend images not built ({exc}); its tests will skip", highlight=False)
        return 0
    for line in report.lines():
        console.print(line, highlight=False, soft_wrap=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
