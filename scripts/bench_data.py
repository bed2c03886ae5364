"""Peer side of `cargo xtask bench data`: generates the benchmark table, and does the data
stage's work with pandas + scikit-learn.

    bench_data.py generate --rows 1000000 --out table.parquet
        A seeded table of 50 columns: 30 numbers (10 with 5% missing, a few extreme
        outliers), 12 categories (2 to 1,000 levels, 4 with 2% missing), 4 dates as text
        (one with times of day, 1% missing), 3 booleans, and a binary target `y`.

    bench_data.py pandas --file table.parquet --target y
        Reads the file with pandas, profiles every column (type, missing share, distinct
        count, numeric summary and quartiles, top categories), splits 70/15/15 stratified,
        expands the dates (days, month, weekday, hour on the circle), fits a ColumnTransformer
        on the training split (SimpleImputer(median, add_indicator) + StandardScaler for
        numbers, SimpleImputer(most_frequent) + OneHotEncoder(handle_unknown="ignore") for
        categories) and transforms the three splits. Prints one JSON line: seconds per phase
        and peak resident memory (ru_maxrss).
"""

import argparse
import json
import resource
import time


def generate(rows: int, out: str) -> None:
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    cols = {}
    for k in range(30):
        x = rng.normal(k, 1 + k % 5, rows)
        if k % 6 == 0:
            x[rng.random(rows) < 0.0005] *= 1000  # data-entry slips
        if k < 10:
            x[rng.random(rows) < 0.05] = np.nan
        cols[f"num_{k}"] = x
    levels = [2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 100, 1000]
    for k, n in enumerate(levels):
        names = np.array([f"c{k}_{i}" for i in range(n)], dtype=object)
        # Zipf-like shares, so that some categories are rare.
        p = 1.0 / np.arange(1, n + 1)
        v = names[rng.choice(n, rows, p=p / p.sum())]
        if k < 4:
            v[rng.random(rows) < 0.02] = None
        cols[f"cat_{k}"] = v
    base = np.datetime64("2015-01-01T00:00:00")
    for k in range(4):
        seconds = rng.integers(0, 8 * 365 * 86400, rows)
        t = base + seconds.astype("timedelta64[s]")
        fmt = "%Y-%m-%d %H:%M:%S" if k == 3 else "%Y-%m-%d"
        s = pd.Series(t).dt.strftime(fmt).astype(object)
        s[rng.random(rows) < 0.01] = None
        cols[f"date_{k}"] = s.values
    for k in range(3):
        cols[f"flag_{k}"] = rng.random(rows) < 0.3 + 0.2 * k
    logit = 0.8 * (cols["num_1"] - 1) / 2 + np.where(cols["cat_0"] == "c0_0", 0.7, -0.3)
    logit = np.nan_to_num(logit) + rng.normal(0, 1, rows)
    cols["y"] = (logit > 0).astype(np.int64)
    pd.DataFrame(cols).to_parquet(out, index=False)


def pandas_side(path: str, target: str) -> None:
    import numpy as np
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    times = {}
    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    times["read"] = time.perf_counter() - t0

    t = time.perf_counter()
    profile = {}
    for c in df.columns:
        s = df[c]
        entry = {"dtype": str(s.dtype), "missing": float(s.isna().mean()), "distinct": int(s.nunique())}
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            q = s.quantile([0.25, 0.5, 0.75])
            iqr = q[0.75] - q[0.25]
            entry.update(min=float(s.min()), max=float(s.max()), mean=float(s.mean()),
                         std=float(s.std()),
                         outliers=int(((s < q[0.25] - 3 * iqr) | (s > q[0.75] + 3 * iqr)).sum()))
        else:
            entry["top"] = {str(k): int(v) for k, v in s.value_counts().head(10).items()}
        profile[c] = entry
    times["profile"] = time.perf_counter() - t

    t = time.perf_counter()
    y = df[target]
    x = df.drop(columns=[target])
    x_train, x_rest, y_train, y_rest = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    x_valid, x_test, y_valid, y_test = train_test_split(x_rest, y_rest, test_size=0.5, stratify=y_rest, random_state=0)
    date_cols = [c for c in x.columns if c.startswith("date_")]
    cat_cols = [c for c in x.columns if x[c].dtype == object or str(x[c].dtype).startswith("str")]
    cat_cols = [c for c in cat_cols if c not in date_cols]

    def expand_dates(frame):
        frame = frame.copy()
        tau = 2 * np.pi
        for c in date_cols:
            d = pd.to_datetime(frame[c], errors="coerce", format="mixed")
            days = (d - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
            frame[f"{c}:days"] = days
            frame[f"{c}:month_sin"] = np.sin(tau * (d.dt.month - 1) / 12)
            frame[f"{c}:month_cos"] = np.cos(tau * (d.dt.month - 1) / 12)
            frame[f"{c}:weekday_sin"] = np.sin(tau * d.dt.day_of_week / 7)
            frame[f"{c}:weekday_cos"] = np.cos(tau * d.dt.day_of_week / 7)
            frame[f"{c}:hour_sin"] = np.sin(tau * d.dt.hour / 24)
            frame[f"{c}:hour_cos"] = np.cos(tau * d.dt.hour / 24)
            frame = frame.drop(columns=[c])
        return frame

    x_train, x_valid, x_test = (expand_dates(f) for f in (x_train, x_valid, x_test))
    num_cols = [c for c in x_train.columns if c not in cat_cols]
    ct = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True)),
                          ("scale", StandardScaler())]), num_cols),
        ("cat", Pipeline([("impute", SimpleImputer(strategy="most_frequent")),
                          ("onehot", OneHotEncoder(handle_unknown="ignore"))]), cat_cols),
    ])
    ct.fit(x_train)
    out = [ct.transform(f) for f in (x_train, x_valid, x_test)]
    times["split_fit_transform"] = time.perf_counter() - t
    times["total"] = time.perf_counter() - t0
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({
        "seconds": times,
        "peak_rss_mib": peak_mib,
        "features": int(out[0].shape[1]),
        "rows": [int(o.shape[0]) for o in out],
        "pandas": pd.__version__,
        "sklearn": __import__("sklearn").__version__,
    }))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--rows", type=int, required=True)
    g.add_argument("--out", required=True)
    w = sub.add_parser("pandas")
    w.add_argument("--file", required=True)
    w.add_argument("--target", required=True)
    a = p.parse_args()
    if a.cmd == "generate":
        generate(a.rows, a.out)
    else:
        pandas_side(a.file, a.target)


if __name__ == "__main__":
    main()
