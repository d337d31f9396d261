"""Emulation's engines, by name, in start order. It knows nothing of the pipeline: the platform's whole service map
(these and the pipeline's own supervised programs) is ``pipeline.platform``'s, which passes its programs here."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping

from emulation.resources import engine
from emulation.service import Service
from pipeline.settings import Settings, get_settings

_DEFAULT = ("postgres", "s3")
DEFAULT_SERVICES = _DEFAULT
"""What `olist up` starts with no names, in start order."""

_ON_DEMAND: dict[str, str | None] = {  # name -> "module:class" imported only when built; None: an engine, built as
    "kafka": None,                      # emulation.resources chooses (process, container or the deployment's)
    "connect": None,
    "cassandra": None,
    # runs the caller's supervised programs (restarted after a failure), which follow it: `down` stops them first
    "supervisor": "emulation.supervisor:SupervisorService",
    "snowflake": "emulation.snowflake:FakesnowService",
    "dashboard": "emulation.dashboard:DashboardService",
}
ON_DEMAND_SERVICES = tuple(_ON_DEMAND)
"""Emulation's engines started by name (`olist up NAME`) or by the command needing them, in start order (the
platform's, with its supervised programs: ``pipeline.platform.ON_DEMAND_SERVICES``)."""

# A supervised program of the caller: "module:class" (imported only when built) or a factory, given the settings.
Program = str | Callable[[Settings], Service]


def on_demand_names(programs: Mapping[str, Program] | None = None) -> tuple[str, ...]:
    """The on-demand services' names in start order, ``programs`` right after the supervisor that runs them."""
    if taken := sorted(set(programs or {}) & {*_DEFAULT, *_ON_DEMAND}):
        raise ValueError(f"supervised programs named like engines: {', '.join(taken)}")
    names: list[str] = []
    for name in _ON_DEMAND:
        names += [name, *(programs or {})] if name == "supervisor" else [name]
    return tuple(names)


def _build(name: str, target: Program | None, settings: Settings) -> Service:
    if target is None:
        return engine(name, settings)
    if isinstance(target, str):
        module, cls = target.split(":")
        return getattr(importlib.import_module(module), cls)(settings)
    return target(settings)


def all_services(settings: Settings | None = None, on_demand: bool = False,
                 programs: Mapping[str, Program] | None = None) -> dict[str, Service]:
    """The services `olist up` starts; with ``on_demand`` also those started by name or by the command
    needing them (Kafka, Connect and Cassandra: `olist up kafka connect cassandra`; the supervisor and the caller's
    supervised ``programs``; the Snowflake stand-in: `olist promote`; the dashboards: `olist dashboard
    --background`), so `down` and `status` cover them too."""
    settings = settings or get_settings()
    services: dict[str, Service] = {name: engine(name, settings) for name in _DEFAULT}
    if on_demand:
        targets = {**_ON_DEMAND, **(programs or {})}
        services |= {name: _build(name, targets[name], settings) for name in on_demand_names(programs)}
    return services


def get_service(name: str, settings: Settings | None = None,
                programs: Mapping[str, Program] | None = None) -> Service:
    services = all_services(settings, on_demand=True, programs=programs)
    if name not in services:
        raise KeyError(f"unknown service {name!r}; known: {', '.join(services)}")
    return services[name]
