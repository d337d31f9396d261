"""Shared fixtures: the contract registry, the tiny data set, and (for integration) a real PostgreSQL."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.contracts import Registry, load_registry
from pipeline.settings import PROJECT_ROOT, Settings
from tests.fixtures.tiny import write_tiny


@contextlib.contextmanager
def running(service):
    """Start an emulated engine for a fixture; destroy it (process and state) afterwards."""
    try:
        service.start()
        yield service
    finally:
        service.destroy() if hasattr(service, "destroy") else service.stop()


@pytest.fixture(scope="session")
def registry() -> Registry:
    return load_registry()


@pytest.fixture
def tiny_dir(tmp_path: Path) -> Path:
    return write_tiny(tmp_path / "tiny")


@pytest.fixture(scope="session")
def test_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    """Settings isolated from the demo's: own state folder, own data folder."""
    state = PROJECT_ROOT / ".state" / f"pytest-{os.getpid()}"
    settings = Settings(state_dir=state, data_dir=tmp_path_factory.mktemp("data"))
    yield settings
    from emulation.registry import all_services

    for service in all_services(settings, on_demand=True).values():
        service.stop()  # whatever a test started through the CLI (e.g. fakesnow by `olist promote`)
    shutil.rmtree(state, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres(test_settings: Settings):
    """A real PostgreSQL cluster for the whole test session, destroyed at the end."""
    from emulation.postgres import PostgresService

    service = PostgresService(test_settings)
    service.start()
    yield service
    service.destroy()


@pytest.fixture(scope="session")
def s3(test_settings: Settings):
    """A real S3 endpoint (moto's server) for the whole test session."""
    from emulation.s3 import S3Service

    service = S3Service(test_settings)
    service.start()
    yield service
    service.stop()


@pytest.fixture
def s3_location(s3, test_settings: Settings):
    from pipeline.storage import s3_location

    return s3_location(test_settings)
