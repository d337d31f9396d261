"""Tools whose pins clash with the project's, each in a virtualenv of its own: made once (``uv venv`` + ``uv pip
install``, else ``python -m venv`` + pip) under ``<base>/<name>-venv-<hash of its requirements>`` and reused
after, outside the work tree like the JVM jars. PyFlink (apache-beam pins protobuf and numpy) and
datacontract-cli (it pins typer below the CLI's) live there."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from emulation.jvm import _locked
from emulation.service import ServiceError

MARKER = ".complete"


def venv_dir(name: str, requirements: Path, base: Path) -> Path:
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:16]
    return base / f"{name}-venv-{digest}"


def _uv() -> list[str] | None:
    if found := shutil.which("uv"):
        return [found]
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        if subprocess.run([sys.executable, "-m", "uv", "--version"], capture_output=True, timeout=30).returncode == 0:
            return [sys.executable, "-m", "uv"]
    return None


def run_step(name: str, cmd: list[str], timeout: float) -> None:
    """Run one step of making a venv; a failure raises with the command's last lines."""
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise ServiceError(f"{name}: {' '.join(cmd[:4])} ... took over {exc.timeout:.0f}s") from exc
    if proc.returncode != 0:
        out = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-20:])
        raise ServiceError(f"{name}: {' '.join(cmd[:4])} ... exited {proc.returncode}:\n{out}")


def ensure_venv(name: str, requirements: Path, *, base: Path, python: str = sys.executable, timeout: float = 1800,
                check: str = "pass") -> Path:
    """The python of tool ``name``'s venv, created on first call (idempotent, safe across processes); ``check``
    is Python code the new venv must run (an import) before it counts as made."""
    root = venv_dir(name, requirements, base)
    interpreter = root / "bin" / "python"
    if (root / MARKER).exists():
        return interpreter
    with _locked(root.with_name(f"{root.name}.lock")):
        if (root / MARKER).exists():
            return interpreter
        shutil.rmtree(root, ignore_errors=True)  # a venv is not relocatable: build it in place
        started = time.monotonic()
        if uv := _uv():
            run_step(name, [*uv, "venv", "-q", "--python", python, str(root)], 300)
            run_step(name, [*uv, "pip", "install", "-q", "--python", str(interpreter), "-r", str(requirements)],
                     timeout)
        else:
            run_step(name, [python, "-m", "venv", str(root)], 300)
            run_step(name, [str(interpreter), "-m", "pip", "install", "-q", "-r", str(requirements)], timeout)
        run_step(name, [str(interpreter), "-c", check], 120)
        info = {"requirements": str(requirements), "seconds": round(time.monotonic() - started, 1)}
        (root / MARKER).write_text(json.dumps(info) + "\n")
    return interpreter


def find_python(version: tuple[int, int], configured: Path | None = None) -> tuple[str | None, str]:
    """An interpreter of ``version`` (the configured one, else ``pythonX.Y`` on PATH, else pyenv's) and, when
    none is found, where it looked ("none at ..."); a pyenv shim that answers for another version does not count."""
    name = f"python{version[0]}.{version[1]}"
    if configured is not None:
        candidates = [str(configured)]
    else:
        pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
        candidates = [c for c in (shutil.which(name), *sorted(map(str, pyenv.glob(f"{name[6:]}*/bin/{name}")),
                                                               reverse=True)) if c]
    probe = f"import sys; print(sys.version_info[:2] == {version!r}, sys.executable)"
    for candidate in candidates:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([candidate, "-c", probe], capture_output=True, text=True, timeout=30, check=False)
            answer = out.stdout.split()
            if out.returncode == 0 and answer[:1] == ["True"]:
                return answer[1], ""
    return None, f"none at {configured}" if configured is not None else f"none on PATH or under {pyenv}"
