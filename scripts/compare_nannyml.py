"""autodl's chunked drift analysis and label-free accuracy estimate beside NannyML's, on the
same chunks of the same data.

Usage (with a Python that has nannyml, e.g. a venv made by `pip install nannyml statsmodels`):

    NML_DISABLE_USAGE_LOGGING=1 python scripts/compare_nannyml.py \\
        --reference REF.csv --analysis ANALYSIS.csv --labels GT.csv \\
        --columns a,b,c --target y --proba y_pred_proba --pred y_pred \\
        --id id --timestamp timestamp --chunk-size 5000

It runs `cargo xtask monitor --reference REF --data ANALYSIS --chunk-size N ...` (our KS or
chi-square per column, Benjamini–Hochberg across columns, alpha 0.05; CBPE-style accuracy
estimate calibrated on the reference), then NannyML's UnivariateDriftCalculator (KS for
continuous and chi-square for categorical columns, and Jensen–Shannon for both, with
NannyML's default thresholds) and CBPE (accuracy) on the same chunks. It prints, per chunk, the
columns each flags, a cell-by-cell agreement count, and the accuracy estimates beside the
realised accuracy from the labels. With --out it also writes the comparison as JSON.
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import nannyml as nml
import pandas as pd

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ours(args, out):
    cmd = ["cargo", "xtask", "monitor", "--reference", args.reference, "--data", args.analysis,
           "--columns", args.columns, "--chunk-size", str(args.chunk_size),
           "--timestamp", args.timestamp, "--proba", args.proba, "--pred", args.pred,
           "--target", args.target,
           "--labels", args.labels, "--id", args.id, "--out", out]
    subprocess.run(cmd, cwd=REPO, check=True, stdout=subprocess.DEVNULL)
    with open(out) as f:
        return json.load(f)


def main():
    p = argparse.ArgumentParser()
    for name in ("reference", "analysis", "labels", "columns", "target", "proba", "pred",
                 "id", "timestamp"):
        p.add_argument(f"--{name}", required=True)
    p.add_argument("--chunk-size", type=int, default=5000)
    p.add_argument("--out")
    args = p.parse_args()
    columns = args.columns.split(",")

    with tempfile.TemporaryDirectory() as tmp:
        mine = ours(args, os.path.join(tmp, "ours.json"))

    reference = pd.read_csv(args.reference)
    analysis = pd.read_csv(args.analysis)
    # Realised accuracy of the data's own predictions, joined to the labels here with pandas,
    # as a check of autodl's join.
    joined = analysis[[args.id, args.pred]].merge(pd.read_csv(args.labels)[[args.id, args.target]],
                                                  on=args.id, how="left")
    calc = nml.UnivariateDriftCalculator(
        column_names=columns, timestamp_column_name=args.timestamp,
        chunk_size=args.chunk_size,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon"],
        categorical_methods=["chi2", "jensen_shannon"])
    calc.fit(reference)
    drift = calc.calculate(analysis).filter(period="analysis").to_df()
    cbpe = nml.CBPE(y_pred_proba=args.proba, y_pred=args.pred, y_true=args.target,
                    timestamp_column_name=args.timestamp, metrics=["accuracy"],
                    chunk_size=args.chunk_size, problem_type="classification_binary")
    cbpe.fit(reference)
    estimated = cbpe.estimate(analysis).filter(period="analysis").to_df()

    def flagged(row, tests):
        return sorted(c for c in columns for t in tests
                      if (c, t, "alert") in row.index and bool(row[(c, t, "alert")]))

    rows = []
    cells = {"both": 0, "only autodl": 0, "only NannyML": 0, "neither": 0}
    cells_js = dict.fromkeys(cells, 0)
    print(f"chunks of {args.chunk_size} rows; NannyML {nml.__version__}\n")
    print("| chunk | autodl (KS / chi2, BH) | NannyML KS / chi2 | NannyML Jensen-Shannon |"
          " accuracy: realised | autodl estimate | NannyML CBPE |")
    print("|---:|---|---|---|---:|---:|---:|")
    for k, chunk in enumerate(mine["chunks"]):
        row = drift.iloc[k]
        assert int(row[("chunk", "chunk", "start_index")]) == chunk["first_row"], "chunks differ"
        a = sorted(chunk["report"]["drifted_columns"])
        n_test = flagged(row, ["kolmogorov_smirnov", "chi2"])
        n_js = flagged(row, ["jensen_shannon"])
        for c in columns:
            for n_set, tally in ((n_test, cells), (n_js, cells_js)):
                key = ("both" if c in a and c in n_set else "only autodl" if c in a
                       else "only NannyML" if c in n_set else "neither")
                tally[key] += 1
        perf = chunk["performance"]
        part = joined.iloc[chunk["first_row"]:chunk["first_row"] + chunk["rows"]].dropna()
        realised_pd = float((part[args.pred] == part[args.target]).mean())
        if abs(realised_pd - perf["realised"]) > 1e-12:
            print(f"chunk {k}: realised accuracy {perf['realised']} (autodl) vs {realised_pd} "
                  "(pandas)")
        nml_est = float(estimated.iloc[k][("accuracy", "value")])
        rows.append({"chunk": k, "autodl": a, "nannyml_test": n_test, "nannyml_js": n_js,
                     "realised": perf["realised"], "autodl_estimate": perf["estimated"],
                     "nannyml_estimate": nml_est})
        print(f"| {k} | {', '.join(a) or '–'} | {', '.join(n_test) or '–'} | "
              f"{', '.join(n_js) or '–'} | {perf['realised']:.4f} | {perf['estimated']:.4f} | "
              f"{nml_est:.4f} |")
    total = len(columns) * len(rows)
    print(f"\ncolumn × chunk cells ({total}): autodl against NannyML's KS / chi2: {cells}")
    print(f"autodl against NannyML's Jensen-Shannon: {cells_js}")
    err_ours = sum(abs(r["autodl_estimate"] - r["realised"]) for r in rows) / len(rows)
    err_nml = sum(abs(r["nannyml_estimate"] - r["realised"]) for r in rows) / len(rows)
    print(f"mean |estimate - realised| accuracy: autodl {err_ours:.4f}, NannyML CBPE {err_nml:.4f}")
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"chunks": rows, "cells_test": cells, "cells_js": cells_js,
                       "mae_autodl": err_ours, "mae_nannyml": err_nml,
                       "nannyml": nml.__version__}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
