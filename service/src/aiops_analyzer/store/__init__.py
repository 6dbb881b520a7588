"""The durable store: deliveries and analysis jobs, keyed (fingerprint, status, startsAt).

SQLite (one process, the default) or PostgreSQL (any number of analyzer processes sharing one
queue, jobs leased).
"""

from aiops_analyzer.store.records import (
    AnalysisRecord,
    Delivery,
    IngestResult,
    Job,
    JobInfo,
    JobState,
    Outcome,
    utcnow,
)
from aiops_analyzer.store.repository import Store

__all__ = [
    "AnalysisRecord",
    "Delivery",
    "IngestResult",
    "Job",
    "JobInfo",
    "JobState",
    "Outcome",
    "Store",
    "utcnow",
]
