"""Data contracts (ODCS v3): the one source of every table and topic schema, and of the speed lane's names."""

from pipeline.contracts.registry import (
    Column,
    CsvFormat,
    Dataset,
    Registry,
    StreamNames,
    load_registry,
    stream_names,
)

__all__ = ["Column", "CsvFormat", "Dataset", "Registry", "StreamNames", "load_registry", "stream_names"]
