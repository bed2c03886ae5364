"""Peer side of `cargo xtask bench monitor`: generates the benchmark tables, and runs
Evidently's data-drift preset on them.

    bench_monitor.py generate --rows 1000000 --out DIR
        A seeded table of 50 columns split in two halves, DIR/reference.parquet and
        DIR/current.parquet: 35 numbers (normal with varied means and scales; 10 with 5%
        missing) and 15 categories (2 to 200 levels; 3 with 2% missing). In the current half
        5 numbers move (by 0.05 to 0.25 standard deviations) and 2 categories change their
        mix, so there is drift to find.

    bench_monitor.py evidently --reference R --current C --out REPORT.json
        Reads both files with pandas, runs Evidently's Report([DataDriftPreset()]) (its default
        tests per column type and size), writes the result as JSON. Prints one JSON line:
        seconds per phase, peak resident memory (ru_maxrss), drifted columns.
"""

import argparse
import json
import resource
import time

NUMERIC = 35
CATEGORICAL = 15


def generate(rows, out):
    import pathlib

    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    half = rows // 2
    cols = {}
    for k in range(NUMERIC):
        scale = 1 + k % 5
        x = rng.normal(k, scale, rows)
        if k < 5:
            x[half:] += (0.05 + 0.05 * k) * scale
        if k % 4 == 1 and k < 40:
            x[rng.random(rows) < 0.05] = np.nan
        cols[f"num_{k}"] = x
    levels = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 30, 50, 80, 100, 200]
    for k, n in enumerate(levels):
        names = np.array([f"c{k}_{i}" for i in range(n)], dtype=object)
        weights = 1.0 / np.arange(1, n + 1)
        p = weights / weights.sum()
        v = names[rng.choice(n, size=rows, p=p)]
        if k < 2:
            q = p[::-1].copy()
            v[half:] = names[rng.choice(n, size=rows - half, p=(p + q) / (p + q).sum())]
        if k % 5 == 2:
            v[rng.random(rows) < 0.02] = None
        cols[f"cat_{k}"] = v
    df = pd.DataFrame(cols)
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df.iloc[:half].to_parquet(out / "reference.parquet", index=False)
    df.iloc[half:].to_parquet(out / "current.parquet", index=False)


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def evidently(reference, current, out):
    import pandas as pd
    from evidently import Report
    from evidently.presets import DataDriftPreset

    seconds = {}
    t0 = time.perf_counter()
    ref = pd.read_parquet(reference)
    cur = pd.read_parquet(current)
    seconds["read"] = time.perf_counter() - t0
    t = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(current_data=cur, reference_data=ref)
    result = snapshot.dict()
    seconds["drift_report"] = time.perf_counter() - t
    t = time.perf_counter()
    with open(out, "w") as f:
        json.dump(result, f, default=str)
    seconds["write"] = time.perf_counter() - t
    seconds["total"] = time.perf_counter() - t0
    drifted, methods = None, {}
    for metric in result.get("metrics", []):
        name = str(metric.get("metric_name", ""))
        if name.startswith("DriftedColumnsCount"):
            drifted = int(metric["value"]["count"])
        elif name.startswith("ValueDrift(column="):
            method = name.split("method=")[1].split(",threshold")[0]
            methods[method] = methods.get(method, 0) + 1
    print(json.dumps({
        "seconds": seconds,
        "peak_rss_mib": peak_rss_mib(),
        "columns": len(ref.columns),
        "drifted_columns": drifted,
        "methods": methods,
        "version": __import__("evidently").__version__,
    }))


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, default=1_000_000)
    g.add_argument("--out", required=True)
    e = sub.add_parser("evidently")
    e.add_argument("--reference", required=True)
    e.add_argument("--current", required=True)
    e.add_argument("--out", required=True)
    args = parser.parse_args()
    if args.cmd == "generate":
        generate(args.rows, args.out)
    else:
        evidently(args.reference, args.current, args.out)


if __name__ == "__main__":
    main()
