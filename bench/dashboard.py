"""Dashboard and chart-page scale benchmark (issue 4).

Seeds two demo clinics in a fresh database, a small one (the baseline, 50 patients) and a
large one (5,000 patients), each with a year of weekly history, then measures in the same
run: SQL statements and render time of the dashboard and of a patient's chart page in each
clinic, and the JavaScript bytes a phone downloads for a chart page.

    python bench/dashboard.py                                   # SQLite, in a temp folder
    python bench/dashboard.py --database-url postgresql://postgres@127.0.0.1:5432/test

On PostgreSQL it works in a schema of its own, dropped at the end. Figures are printed;
the last lines say whether the issue's targets hold.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import create_engine, func, make_url, select, text  # noqa: E402

from outcomes import create_app, demo, migrate  # noqa: E402
from outcomes.config import normalise_database_url  # noqa: E402
from outcomes.extensions import db  # noqa: E402
from outcomes.models import Assessment, AssessmentAnswer, Patient  # noqa: E402
from tests.helpers import statements  # noqa: E402  (the tests' one statement counter)

TODAY = dt.date(2026, 11, 2)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="PostgreSQL URL (default: a temporary SQLite)")
    parser.add_argument("--small", type=int, default=50)
    parser.add_argument("--large", type=int, default=5000)
    parser.add_argument("--weeks", type=int, default=52)
    parser.add_argument("--repeat", type=int, default=15, help="timed requests per page")
    args = parser.parse_args()
    if args.small < 1 or args.large < args.small or not 2 <= args.weeks <= 104:
        parser.error("need 1 <= --small <= --large and 2 <= --weeks <= 104")

    url, cleanup = fresh_database(args.database_url)
    try:
        return run(url, args)
    finally:
        cleanup()


def fresh_database(given: str | None):
    if not given:
        folder = tempfile.TemporaryDirectory(prefix="outcomes-bench-")
        url = f"sqlite:///{folder.name}/bench.sqlite3"
        engine = create_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        return url, folder.cleanup
    schema = f"outcomes_bench_{os.getpid()}"
    base = make_url(normalise_database_url(given))
    admin = create_engine(base)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    scoped = base.update_query_dict({"options": f"-csearch_path={schema}"})
    engine = create_engine(scoped)
    migrate.upgrade(engine)
    engine.dispose()

    def drop() -> None:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()

    return scoped.render_as_string(hide_password=False), drop


def run(url: str, args: argparse.Namespace) -> int:
    app = create_app({
        "OUTCOMES_ENV": "development", "TESTING": False, "SECRET_KEY": "bench-" + "x" * 40,
        "DATABASE_URL": url, "WTF_CSRF_ENABLED": False, "RATELIMIT_ENABLED": False,
        "SESSION_COOKIE_SECURE": False,
    })
    backend = make_url(url).get_backend_name()
    print(f"Outcomes dashboard benchmark on {backend}: {args.small} and {args.large} patients, "
          f"{args.weeks} weeks of history each")
    clinics = {"small": args.small, "large": args.large}
    with app.app_context():
        for name, patients in clinics.items():
            started = time.perf_counter()
            summary = demo.seed_demo(db.session, patients=patients, weeks=args.weeks, seed=7,
                                     today=TODAY, clinic_name=f"Bench {name}",
                                     email_domain=f"{name}.bench.example",
                                     full_histories=True)
            db.session.commit()
            print(f"  seeded {name:<5}: {summary.patients} patients, {summary.assessments:,} "
                  f"assessments in {time.perf_counter() - started:.0f} s")
        total = db.session.scalar(select(func.count(Assessment.id)))
        answers = db.session.scalar(select(func.count()).select_from(AssessmentAnswer))
        print(f"  database: {total:,} assessments, {answers:,} item answers")

    results = {}
    for name in clinics:
        client = app.test_client()
        client.post("/login", data={"email": f"dr.rivera@{name}.bench.example",
                                    "password": demo.CLINICIAN_PASSWORD})
        with app.app_context():
            patient_id = db.session.scalar(
                select(Patient.id).join(Patient.clinic).where(
                    Patient.clinic.has(name=f"Bench {name}"), Patient.identifier == "MRN-100002"))
        results[name] = {
            "dashboard": measure(app, client, "/clinic/patients", args.repeat),
            "dashboard page 2": measure(app, client, "/clinic/patients?page=2&sort=pcl5_change",
                                        args.repeat),
            "chart page": measure(app, client, f"/clinic/patients/{patient_id}", args.repeat),
        }

    print(f"\n{'page':<18} {'clinic':<6} {'statements':>10} {'median ms':>10} {'p90 ms':>8}")
    for name, pages in results.items():
        for page, (count, times) in pages.items():
            print(f"{page:<18} {name:<6} {count:>10} {statistics.median(times):>10.1f} "
                  f"{percentile(times, 0.9):>8.1f}")

    ok = True
    print()
    for page in ("dashboard", "dashboard page 2", "chart page"):
        small_count, small_times = results["small"][page]
        large_count, large_times = results["large"][page]
        ratio = statistics.median(large_times) / statistics.median(small_times)
        same = small_count == large_count
        print(f"{page}: statements {small_count} vs {large_count} "
              f"({'same' if same else 'DIFFERENT'}); render time ratio large/small {ratio:.2f}")
        if page.startswith("dashboard"):
            ok &= same and ratio <= 2.0
    print_javascript(app)
    print(f"\nTargets (same statements, render within 2x at {args.large} vs {args.small}): "
          f"{'HOLD' if ok else 'MISSED'}")
    return 0 if ok else 1


def measure(app, client, path: str, repeat: int) -> tuple[int, list[float]]:
    """Statements of one request, and the wall time of ``repeat`` more (after a warm-up)."""
    with statements(app) as seen:
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        assert client.get(path).status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return len(seen), times


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def print_javascript(app) -> None:
    """The JavaScript a phone downloads for a patient's chart page, raw and compressed."""
    client = app.test_client()
    client.post("/login", data={"email": "patient2@small.bench.example",
                                "password": demo.PATIENT_PASSWORD})
    html = client.get("/me/").data.decode()
    print("\nJavaScript on the patient's chart page:")
    raw_total = sent_total = 0
    for src in re.findall(r'<script src="([^"]+)"', html):
        raw = len(client.get(src).data)
        encoded = client.get(src, headers={"Accept-Encoding": "br, gzip"})
        sent = len(encoded.data)
        raw_total += raw
        sent_total += sent
        print(f"  {src.split('?')[0]:<34} {raw:>10,} bytes, {sent:>9,} sent "
              f"({encoded.headers.get('Content-Encoding', 'identity')}, "
              f"{encoded.headers.get('Cache-Control', '')})")
    print(f"  total                              {raw_total:>10,} bytes, {sent_total:>9,} sent")


if __name__ == "__main__":
    sys.exit(main())
