"""The durable store: deliveries and analysis jobs, keyed (fingerprint, status, startsAt)."""

from aiops_analyzer.store.repository import AlertRecord, IngestResult, Job, Store

__all__ = ["AlertRecord", "IngestResult", "Job", "Store"]
