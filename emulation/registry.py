"""Every emulated service, by name, in start order."""

from __future__ import annotations

from emulation.postgres import PostgresService
from emulation.service import Service
from pipeline.settings import Settings, get_settings


def all_services(settings: Settings | None = None) -> dict[str, Service]:
    settings = settings or get_settings()
    return {"postgres": PostgresService(settings)}


def get_service(name: str, settings: Settings | None = None) -> Service:
    services = all_services(settings)
    if name not in services:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(services)}")
    return services[name]
