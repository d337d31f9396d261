"""Generate the nine Olist CSV files at any scale, faithful in format, keys and shape.

``generate(scale, seed, out_dir)`` writes the files the contracts name, in their exact text format,
and returns rows and bytes per file. Same scale and seed give byte-identical files.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.batch.generator import columns as C
from pipeline.batch.generator.catalog import build_products, build_sellers, translation_frame
from pipeline.batch.generator.counts import FULL_ROWS, scaled, table_rows
from pipeline.batch.generator.csv_format import column_policies, write_table
from pipeline.batch.generator.geography import FULL_PREFIXES, build_geolocation, build_places
from pipeline.batch.generator.orders import build_orders
from pipeline.batch.generator.reviews import build_reviews
from pipeline.contracts.registry import CsvFormat, load_registry

__all__ = ["FULL_ROWS", "FileStats", "GenerateResult", "build_frames", "generate", "table_rows"]

MIN_SCALE = 0.001
MAX_PREFIXES = 40_000  # beyond scale ~2 the country runs out of zip prefixes; rows per prefix grow instead
BATCH_ROWS = 50_000

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class FileStats:
    """One written file."""

    path: Path
    rows: int
    bytes: int


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` wrote, keyed by table name in write order."""

    files: dict[str, FileStats]
    elapsed_seconds: float
    scale: float
    seed: int

    @property
    def total_rows(self) -> int:
        return sum(f.rows for f in self.files.values())

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for f in self.files.values())

    @property
    def rows_per_second(self) -> float:
        return self.total_rows / self.elapsed_seconds if self.elapsed_seconds > 0 else float("inf")


def build_frames(scale: float, seed: int) -> dict[str, C.Frame]:
    """All nine tables in memory (numpy columns), keyed by table name."""
    if not scale >= MIN_SCALE:
        raise ValueError(f"scale must be at least {MIN_SCALE}, got {scale}")
    rows = table_rows(scale)
    rng_places, rng_catalog, rng_orders, rng_reviews = np.random.default_rng(seed).spawn(4)
    places = build_places(rng_places, min(MAX_PREFIXES, scaled(FULL_PREFIXES, scale, 1)))
    geolocation = build_geolocation(rng_places, places, rows["geolocation"], scale)
    sellers = build_sellers(rng_catalog, places, rows["sellers"], scale)
    products = build_products(rng_catalog, sellers, rows["products"], scale)
    orders = build_orders(rng_orders, places, sellers, products, rows, scale)
    reviews = build_reviews(rng_reviews, orders, rows["order_reviews"], scale)
    frames = [geolocation, sellers.frame, products.frame, translation_frame(), *orders.frames.values()]
    return {f.name: f for f in [*frames, reviews]}


def generate(scale: float, seed: int, out_dir: Path, progress: Progress | None = None) -> GenerateResult:
    """Write the nine Olist CSV files for ``scale`` (1.0 = the full data set) and ``seed`` into ``out_dir``.

    ``progress(table, rows_done, rows_total)`` is called before and after every batch written.
    """
    started = time.perf_counter()
    frames = build_frames(scale, seed)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, FileStats] = {}
    for dataset in load_registry().source_tables():
        frame = frames[dataset.name]
        fmt = dataset.csv_format or CsvFormat()
        path = out_dir / (dataset.source_file or f"{dataset.name}.csv")
        total = frame.n_rows
        if progress is not None:
            progress(dataset.name, 0, total)

        def report(done: int, name: str = dataset.name, total: int = total) -> None:
            if progress is not None:
                progress(name, done, total)

        stats = write_table(
            path,
            dataset.column_names,
            frame.batches(dataset.column_names, BATCH_ROWS),
            fmt,
            column_policies(dataset.columns, fmt),
            on_batch=report,
        )
        files[dataset.name] = FileStats(path=path, rows=stats.rows, bytes=stats.bytes)
    return GenerateResult(files=files, elapsed_seconds=time.perf_counter() - started, scale=scale, seed=seed)
