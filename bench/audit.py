"""Audit chain benchmark (issue 8, item 4): what `audit verify` and `audit checkpoint` cost.

Writes N audit rows through the app's own writer (keyed, chained, committed 1,000 at a
time), then times a full verification, the first checkpoint (which verifies every row) and
a checkpoint after one more row (which verifies only that row). As a floor, in the same run,
the same rows read with the database driver alone (no decoding, no hashing).

    python bench/audit.py                                     # SQLite, in a temp folder
    python bench/audit.py --rows 50000 --database-url postgresql://postgres@127.0.0.1:5432/test

On PostgreSQL it works in a schema of its own, dropped at the end.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import fresh_database  # noqa: E402  (bench/ is the script's folder)
from sqlalchemy import text  # noqa: E402

from outcomes import create_app  # noqa: E402
from outcomes.extensions import db  # noqa: E402
from outcomes.services import audit  # noqa: E402
from outcomes.services.audit import SYSTEM  # noqa: E402


def timed(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


def run(url: str, rows: int) -> None:
    app = create_app({"OUTCOMES_ENV": "development", "TESTING": False,
                      "SECRET_KEY": "bench-" + "x" * 40, "DATABASE_URL": url,
                      "AUDIT_KEYS": "bench:" + "k" * 40})
    with app.app_context(), tempfile.TemporaryDirectory() as folder:
        for start in range(0, rows, 1000):
            for n in range(start, min(start + 1000, rows)):
                audit.record(db.session, SYSTEM, "patient.view", object_type="patient",
                             object_id=n % 500, details={"n": n})
            db.session.commit()
        keys, path = audit.audit_keys(), f"{folder}/checkpoints.jsonl"
        verification, verify = timed(lambda: audit.verify_chain(db.session, keys))
        assert not verification.findings and verification.rows == rows
        db.session.rollback()
        _, floor = timed(lambda: db.session.connection().exec_driver_sql(
            "SELECT * FROM audit_event ORDER BY id").fetchall())
        db.session.rollback()
        _, first = timed(lambda: audit.write_checkpoint(db.session, keys, path))
        db.session.rollback()
        audit.record(db.session, SYSTEM, "patient.view")
        db.session.commit()
        _, next_one = timed(lambda: audit.write_checkpoint(db.session, keys, path))
        db.session.rollback()
        assert db.session.scalar(text("SELECT count(*) FROM audit_event")) == rows + 1
    print(f"{rows:,} rows on {url.split(':')[0]}")
    print(f"  audit verify:          {verify:6.2f} s  ({rows / verify:,.0f} rows/s)")
    print(f"  floor (driver read):   {floor:6.2f} s  (verify = {verify / floor:.1f} x the floor)")
    print(f"  first checkpoint:      {first:6.2f} s  (verifies every row)")
    print(f"  next checkpoint:       {next_one * 1000:6.0f} ms (one new row)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="PostgreSQL URL (default: SQLite in a temp folder)")
    args = parser.parse_args()
    url, cleanup = fresh_database(args.database_url)
    try:
        run(url, args.rows)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
