"""The lake on S3 as both lanes see it: where a dataset both lanes use keeps its files, and the manifests that
commit them.

The speed lane writes the raw topic's archive (``pipeline.speed.archive``); the batch lane reads it as a bronze
table (``pipeline.batch.ingest.read``): both through :class:`ArchiveLayout`, so neither lane imports the other.
"""

from pipeline.lake.archive import ArchivedFile, ArchiveLayout, Gap

__all__ = ["ArchiveLayout", "ArchivedFile", "Gap"]
