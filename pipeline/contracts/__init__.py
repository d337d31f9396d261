"""Data contracts (ODCS v3): the one source of every table and topic schema."""

from pipeline.contracts.registry import Column, CsvFormat, Dataset, Registry, load_registry

__all__ = ["Column", "CsvFormat", "Dataset", "Registry", "load_registry"]
