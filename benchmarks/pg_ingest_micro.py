"""Sequential `Ingestor.ingest_many` latency on a durable throwaway PostgreSQL cluster.

Batches of B deliveries with one new alert each, N batches after 100 of warm-up; prints the
mean time per batch. Debian's PostgreSQL binaries, as the tests find them
(tests/support/postgres.py). Run from the repository root:

    .venv/bin/python benchmarks/pg_ingest_micro.py --batch 4 --batches 1500
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "service" / "src")]

from aiops_analyzer.schemas import Alert  # noqa: E402
from aiops_analyzer.store.database import Database  # noqa: E402
from aiops_analyzer.store.ingest import Ingestor  # noqa: E402
from aiops_analyzer.store.records import Delivery  # noqa: E402

from tests.support.postgres import PostgresServer, require_server  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="deliveries per batch")
    parser.add_argument("--batches", type=int, default=1500, help="batches measured")
    args = parser.parse_args()
    server = PostgresServer(require_server(), durable=True).start()
    try:
        db = Database(server.create_database())
        db.migrate()
        ingestor = Ingestor(db)
        counter = itertools.count()

        def batch() -> list[Delivery]:
            return [
                Delivery(
                    "bench",
                    "firing",
                    "group",
                    0,
                    [
                        Alert(
                            fingerprint=f"f{next(counter)}",
                            status="firing",
                            labels={"alertname": "Bench", "instance": "a:1"},
                            starts_at=datetime.now(UTC),
                        )
                    ],
                )
                for _ in range(args.batch)
            ]

        for _ in range(100):
            ingestor.ingest_many(batch())
        started = time.perf_counter()
        for _ in range(args.batches):
            ingestor.ingest_many(batch())
        elapsed = time.perf_counter() - started
        per_batch = elapsed / args.batches * 1000
        rate = args.batches * args.batch / elapsed
        print(f"batch of {args.batch}: {per_batch:.3f} ms per batch, {rate:.0f} deliveries/s")
        db.dispose()
    finally:
        server.stop()


if __name__ == "__main__":
    main()
