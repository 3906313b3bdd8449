"""CSV export benchmark (issue 5, item 5): the `responses` export of a million item rows
(or, with ``--kind scores``, the `scores` export of the same history: one row per record, each
with its reference from services.baseline).

Seeds a demo clinic with a year of history for enough patients to pass one million answered
items, starts the app in a serving process of its own (gunicorn, one worker, on 127.0.0.1),
signs in as a clinician and downloads the `responses` export through the real HTTP path (form,
CSRF, streaming). It reports the rows per second and the serving process's peak memory
(VmHWM), and in the same run the database's own CSV dump of the same rows (`sqlite3 -csv`, or
`psql \\copy`) with the ratio between the two.

    python bench/exports.py                                   # SQLite, in a temp folder
    python bench/exports.py --database-url postgresql://postgres@127.0.0.1:5432/test
    python bench/exports.py --kind scores --patients 50 --weeks 12     # a short run

On PostgreSQL it works in a schema of its own, dropped at the end. Figures are printed; the
last lines say whether the serving process stayed under 150 MB during the export (its peak
is reset after sign-in, whose argon2id password check takes 64 MiB by design, and both are
printed).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import http.cookiejar
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dashboard import fresh_database  # noqa: E402  (bench/ is the script's folder)
from sqlalchemy import func, make_url, select  # noqa: E402

from outcomes import create_app, demo  # noqa: E402
from outcomes.extensions import db  # noqa: E402
from outcomes.models import Assessment, AssessmentAnswer  # noqa: E402

TODAY = dt.date(2026, 11, 2)
CLINIC = "Bench exports"
DOMAIN = "exports.bench.example"
TARGET_ROWS = 1_000_000
MEMORY_LIMIT_MB = 150
#: The same rows as each export, as the database itself can give them: the stored columns
#: (labels, LOINC codes and references come from the instrument definitions and
#: services.baseline, not the database).
DUMP_QUERIES = {"responses": """
SELECT p.identifier, p.display_name, a.id, a.instrument_key, a.instrument_version,
       a.administered_at, a.submitted_at, a.source, u.role, u.email, x.item_number, x.value
FROM assessment_answer x
JOIN assessment a ON a.id = x.assessment_id
JOIN patient p ON p.id = a.patient_id
JOIN users u ON u.id = a.entered_by_id
JOIN clinic c ON c.id = p.clinic_id
WHERE c.name = 'Bench exports'
ORDER BY a.id, x.item_number
""", "scores": """
SELECT p.identifier, p.display_name, a.id, a.instrument_key, a.instrument_version,
       a.administered_at, a.submitted_at, a.source, u.role, u.email, a.scorable, a.total,
       a.prorated, a.band, a.above_cutpoint, a.provisional_diagnosis, a.subscales, a.flags,
       a.missing_items, a.amends_id, a.amendment_reason
FROM assessment a
JOIN patient p ON p.id = a.patient_id
JOIN users u ON u.id = a.entered_by_id
JOIN clinic c ON c.id = p.clinic_id
WHERE c.name = 'Bench exports'
ORDER BY p.id, a.id
"""}
#: What one row of each export is, in the database.
ROW_MODELS = {"responses": AssessmentAnswer, "scores": Assessment}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a temporary SQLite)")
    parser.add_argument("--patients", type=int, default=700,
                        help="demo patients (700 with --weeks 52 give about 1.06 million rows)")
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--kind", choices=sorted(DUMP_QUERIES), default="responses",
                        help="the export to measure (default: responses)")
    args = parser.parse_args()
    if args.patients < 1 or not 2 <= args.weeks <= 104:
        parser.error("need --patients >= 1 and 2 <= --weeks <= 104")
    url, cleanup = fresh_database(args.database_url)
    try:
        return run(url, args)
    finally:
        cleanup()


def run(url: str, args: argparse.Namespace) -> int:
    backend = make_url(url).get_backend_name()
    rows = seed(url, args)
    print(f"Outcomes {args.kind} export benchmark on {backend}: {rows:,} rows "
          f"({args.patients} patients, {args.weeks} weeks)")
    if args.kind == "responses" and rows < TARGET_ROWS:
        print(f"  fewer than {TARGET_ROWS:,} rows: raise --patients")

    with tempfile.TemporaryDirectory(prefix="outcomes-export-bench-") as folder:
        server = Server(url)
        try:
            exported, seconds, baseline_mb, peak_mb = server.export(
                args.kind, Path(folder) / "export.csv")
        finally:
            server.stop()
        dumped, dump_seconds, how = database_dump(url, DUMP_QUERIES[args.kind],
                                                  Path(folder) / "dump.csv")

    export_rate, dump_rate = exported / seconds, dumped / dump_seconds
    print(f"\n{'':<34} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    print(f"{'HTTP export (gunicorn, 1 worker)':<34} {exported:>10,} {seconds:>8.1f} "
          f"{export_rate:>10,.0f}")
    print(f"{how:<34} {dumped:>10,} {dump_seconds:>8.1f} {dump_rate:>10,.0f}")
    print(f"ratio export / database dump: {export_rate / dump_rate:.2f}")
    print(f"serving process peak memory (VmHWM): {baseline_mb:.0f} MB from start through "
          f"sign-in, {peak_mb:.0f} MB during the export")
    ok = peak_mb < MEMORY_LIMIT_MB and exported == rows == dumped
    print(f"\nTarget (all {rows:,} rows; the serving process under {MEMORY_LIMIT_MB} MB "
          f"during the export): {'HOLDS' if ok else 'MISSED'}")
    if baseline_mb >= MEMORY_LIMIT_MB:
        print(f"  (its peak before the export, {baseline_mb:.0f} MB, is sign-in: argon2id "
              "takes 64 MiB per password check, whatever is exported)")
    return 0 if ok else 1


def seed(url: str, args: argparse.Namespace) -> int:
    app = create_app({"OUTCOMES_ENV": "development", "SECRET_KEY": "bench-" + "x" * 40,
                      "DATABASE_URL": url, "TESTING": False})
    with app.app_context():
        started = time.perf_counter()
        demo.seed_demo(db.session, patients=args.patients, weeks=args.weeks, seed=11,
                       today=TODAY, clinic_name=CLINIC, email_domain=DOMAIN,
                       full_histories=True)
        db.session.commit()
        rows = db.session.scalar(select(func.count()).select_from(ROW_MODELS[args.kind]))
        print(f"  seeded in {time.perf_counter() - started:.0f} s")
        db.engine.dispose()
    return rows


class Server:
    """The app served by gunicorn in a process of its own, as in production."""

    def __init__(self, url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        environment = {**os.environ, "DATABASE_URL": url, "OUTCOMES_ENV": "development",
                       "SECRET_KEY": "bench-" + "y" * 40, "INSECURE_COOKIES": "1"}
        # gthread: the worker keeps telling the master it is alive while one thread streams.
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{self.port}",
             "--workers", "1", "--worker-class", "gthread", "--threads", "2",
             "--timeout", "600", "--log-level", "warning", "wsgi:app"],
            cwd=ROOT, env=environment)
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
        self._wait_until_up()

    def _wait_until_up(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if self.opener.open(self.base + "/healthz", timeout=5).status == 200:
                    return
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("the server did not start")

    def worker_pid(self) -> int:
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return int(children.read_text().split()[0])

    def export(self, kind: str, target: Path) -> tuple[int, float, float, float]:
        """Sign in, post the export form for ``kind``, stream the file to ``target``: data
        rows, seconds,
        the worker's peak memory (VmHWM, MB) up to sign-in, and its peak during the export."""
        self.post("/login", {"email": f"dr.rivera@{DOMAIN}",
                             "password": demo.CLINICIAN_PASSWORD})
        form = {"kind": kind, "date_from": "", "date_to": "", "patient": "",
                "instrument": ""}
        worker = self.worker_pid()
        baseline = peak_memory_mb(worker)
        # Start the high-water mark afresh (Linux: "5" resets VmHWM), so the peak below is
        # the export's, not sign-in's (argon2id takes 64 MiB by design).
        Path(f"/proc/{worker}/clear_refs").write_text("5")
        started = time.perf_counter()
        with self.post("/exports/", form) as response, target.open("wb") as file:
            assert response.headers["Content-Type"].startswith("text/csv"), response.headers
            shutil.copyfileobj(response, file, 1 << 16)
        seconds = time.perf_counter() - started
        return count_lines(target) - 1, seconds, baseline, peak_memory_mb(worker)

    def post(self, path: str, fields: dict[str, str]):
        page = self.opener.open(self.base + path).read().decode()
        token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
        body = urllib.parse.urlencode({**fields, "csrf_token": token}).encode()
        return self.opener.open(urllib.request.Request(self.base + path, data=body))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def peak_memory_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(r"VmHWM:\s+(\d+) kB", status).group(1)) / 1024


def database_dump(url: str, dump_query: str, target: Path) -> tuple[int, float, str]:
    """The database's own CSV dump of the same rows: data rows, seconds, and what did it."""
    parsed = make_url(url)
    started = time.perf_counter()
    if parsed.get_backend_name() == "sqlite":
        if shutil.which("sqlite3"):
            with target.open("wb") as file:
                subprocess.run(["sqlite3", "-csv", "-header", parsed.database, dump_query],
                               stdout=file, check=True)
            how = "sqlite3 -csv (CLI)"
        else:
            how = "Python sqlite3 module + csv (no CLI)"
            _python_sqlite_dump(parsed.database, dump_query, target)
    else:
        schema = parsed.query["options"].split("search_path=")[1]
        conninfo = parsed.set(drivername="postgresql", query={}).render_as_string(
            hide_password=False)
        query = " ".join(dump_query.split())
        subprocess.run(["psql", conninfo, "-q", "-c",
                        f"\\copy ({query}) to '{target}' with (format csv, header)"],
                       env={**os.environ, "PGOPTIONS": f"-csearch_path={schema}"}, check=True)
        how = "psql \\copy"
    seconds = time.perf_counter() - started
    return count_lines(target) - 1, seconds, how


def count_lines(path: Path) -> int:
    """Line ends in a CSV file (none of these rows has a line break inside a cell). Counting
    LF alone: a CR LF pair can be split between two reads."""
    with path.open("rb") as file:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: file.read(1 << 20), b""))


def _python_sqlite_dump(path: str, dump_query: str, target: Path) -> None:
    with sqlite3.connect(path) as connection, target.open("w", newline="") as file:
        cursor = connection.execute(dump_query)
        writer = csv.writer(file)
        writer.writerow([column[0] for column in cursor.description])
        writer.writerows(cursor)


if __name__ == "__main__":
    sys.exit(main())
