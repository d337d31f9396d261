"""The engines both lanes use, reached the same way: a running engine's client, or a one-line error naming the
command that starts it (so neither lane imports the other for it)."""

from __future__ import annotations

from emulation.postgres import PostgresService
from emulation.resources import engine
from emulation.service import ServiceError
from pipeline.settings import Settings


def running_postgres(settings: Settings) -> PostgresService:
    pg = engine("postgres", settings)
    if not pg.available():
        raise ServiceError("postgres is not running: start it with `olist up`")
    return pg
