"""A deployment's engines, chosen in this one place (as dagster's resources are): for each engine the settings pick
the local process (the default), its container (``OLIST_ENGINES=containers``: PostgreSQL and S3), or the endpoint
they name (``OLIST_PG_DSN``, ``OLIST_KAFKA_BOOTSTRAP_SERVERS`` ...: see :mod:`emulation.deployment`), which is used
and inspected but never started, stopped or deleted. Every caller gets its engine from :func:`engine`; no service
decides its own class, and no service's lifecycle asks whether it is the deployment's."""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING, Any, Literal, overload

from emulation.service import Endpoint, Service, ServiceStatus

if TYPE_CHECKING:
    from emulation.cassandra import CassandraService
    from emulation.connect import ConnectService
    from emulation.kafka import KafkaService
    from emulation.postgres import PostgresService
    from emulation.s3 import S3Service
    from pipeline.settings import Settings

ENGINES: dict[str, str] = {  # name -> "module:class" of the local process, imported only when built
    "postgres": "emulation.postgres:PostgresService",
    "s3": "emulation.s3:S3Service",
    "kafka": "emulation.kafka:KafkaService",
    "connect": "emulation.connect:ConnectService",
    "cassandra": "emulation.cassandra:CassandraService",
}
CONTAINERS: dict[str, str] = {  # what OLIST_ENGINES=containers runs instead
    "postgres": "emulation.containers:PostgresContainerService",
    "s3": "emulation.containers:S3ContainerService",
}


class Deployed:
    """The lifecycle of an engine the deployment runs: ``start`` waits until it answers, ``stop`` and ``destroy``
    leave it alone, and it has no process of ours (mixed in before the engine's class, whose clients it keeps)."""

    external = True

    def start(self: Any) -> Endpoint:
        return self.external_start(self.start_timeout)

    def stop(self) -> None:
        """Not ours to stop."""

    def destroy(self) -> None:
        """Not ours to delete."""

    def pid(self) -> int | None:
        return None

    def available(self) -> bool:
        return True

    def status(self: Any) -> ServiceStatus:
        healthy = self.health()
        return ServiceStatus(self.name, healthy, healthy, self.endpoint(), None, "external (the deployment's)")


@functools.cache
def _load(target: str) -> type[Service]:
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


@functools.cache
def _deployed(cls: type[Service]) -> type[Service]:
    return type(f"Deployed{cls.__name__}", (Deployed, cls), {"__doc__": f"The deployment's {cls.name}."})


def engine_class(name: str, settings: Settings) -> type[Service]:
    """The local class of engine ``name`` under these settings (the process's, or its container's)."""
    if name not in ENGINES:
        raise KeyError(f"unknown engine {name!r}; known: {', '.join(ENGINES)}")
    table = CONTAINERS if settings.engines == "containers" and name in CONTAINERS else ENGINES
    return _load(table[name])


@overload
def engine(name: Literal["postgres"], settings: Settings, **kwargs: Any) -> PostgresService: ...
@overload
def engine(name: Literal["s3"], settings: Settings, **kwargs: Any) -> S3Service: ...
@overload
def engine(name: Literal["kafka"], settings: Settings, *args: Any, **kwargs: Any) -> KafkaService: ...
@overload
def engine(name: Literal["connect"], settings: Settings, *args: Any, **kwargs: Any) -> ConnectService: ...
@overload
def engine(name: Literal["cassandra"], settings: Settings, *args: Any, **kwargs: Any) -> CassandraService: ...
def engine(name: str, settings: Settings, *args: Any, **kwargs: Any) -> Service:
    """Engine ``name`` of the deployment these settings describe (``args``: a cluster node's number and its peers)."""
    cls = engine_class(name, settings)
    local = cls(settings, *args, **kwargs)  # type: ignore[call-arg]
    return local if local.configured() is None else _deployed(cls)(settings, *args, **kwargs)  # type: ignore[call-arg]
