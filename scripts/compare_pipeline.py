"""The full pipeline with two search strategies at the same wall-clock budget.

For each dataset and seed, runs `xtask run --strategy A` and `xtask run --strategy B` at the
same time (each trains on one thread, and the machine has two cores, so both see the same
load), then prints every run's validation and test accuracy and trial count, and the means
over seeds. Raw numbers go to runs/compare-pipeline.json.

Both runs of a seed split the data alike, so their test rows are the same rows: each run's
exported model predicts them (`xtask predict`), and the rows only one of the two gets right are
counted, pooled over seeds, with an exact McNemar test of whether the two are equally accurate.
With a few hundred test rows per seed, a difference in mean test accuracy of one or two rows
is well within chance; the test says how far.

    cargo build -p xtask && python3 scripts/compare_pipeline.py --strategies evolution random

Results of several invocations (say seeds 1-3 and then 4-6) can be pooled without running
anything: `python3 scripts/compare_pipeline.py --pool a.json b.json` prints the same tables over
all their seeds. A dataset's seed may appear in only one of the files.
"""

import argparse
import collections
import csv
import json
import math
import pathlib
import statistics
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent
DATASETS = {
    "digits": [],
    "mnist1d": [
        "--data", "datasets/mnist1d_train.csv",
        "--test", "datasets/mnist1d_test.csv",
        "--target", "label",
    ],
}


def test_rows(xtask: str, run: pathlib.Path) -> list[tuple[str, str]]:
    """(label, prediction) of every test row, from the run's exported model."""
    out = run / "test-predictions.csv"
    subprocess.run(
        [xtask, "predict", "--run", str(run), "--data", str(run / "data/test_raw.parquet"),
         "--out", str(out)],
        cwd=REPO, check=True, capture_output=True,
    )
    with open(out, newline="") as f:
        rows = list(csv.reader(f))
    return [(r[0], r[1]) for r in rows[1:]]


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: b and c discordant pairs, Binomial(b + c, 1/2)."""
    n = b + c
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(b, c) + 1)) / 2**n
    return min(1.0, 2 * tail)


def main() -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--strategies", nargs=2, default=["evolution", "random"],
                   help="the two `xtask run --strategy` values to compare (default: %(default)s)")
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3],
                   help="one pair of runs per seed (default: %(default)s)")
    p.add_argument("--budget-secs", type=float, default=120.0,
                   help="each run's search budget in seconds (default: %(default)s)")
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS),
                   help="default: all")
    p.add_argument("--xtask", default=str(REPO / "target/debug/xtask"),
                   help="the xtask binary to run (default: the repository's debug build)")
    p.add_argument("--out", default=str(REPO / "runs/compare-pipeline.json"),
                   help="where the raw results go (default: runs/compare-pipeline.json)")
    p.add_argument("--pool", nargs="+", metavar="JSON",
                   help="print the tables over the raw results of earlier runs instead of running")
    a = p.parse_args()
    if a.pool:
        pool(a.pool)
        return

    results = []
    # Per dataset and seed: rows only the first strategy got right, only the second, neither.
    paired = []
    for dataset in a.datasets:
        for seed in a.seeds:
            procs = {}
            for strategy in a.strategies:
                out = REPO / "runs" / f"compare-{dataset}-{strategy}-{seed}"
                cmd = [
                    a.xtask, "run", *DATASETS[dataset],
                    "--strategy", strategy,
                    "--seed", str(seed),
                    "--budget-secs", str(a.budget_secs),
                    "--out", str(out),
                ]
                out.parent.mkdir(parents=True, exist_ok=True)
                log = open(f"{out}.log", "w")
                procs[strategy] = (subprocess.Popen(cmd, cwd=REPO, stdout=log, stderr=log), out)
            for strategy, (proc, out) in procs.items():
                if proc.wait() != 0:
                    sys.exit(f"{dataset} seed {seed} {strategy} failed; see {out}.log")
                model = json.loads((out / "model/model.json").read_text())
                trials = json.loads((out / "search/trials.json").read_text())
                row = {
                    "dataset": dataset,
                    "seed": seed,
                    "strategy": strategy,
                    "valid": model["valid_metric"]["value"],
                    "test": model["test_metric"]["value"],
                    "trials": len(trials["trials"]),
                }
                results.append(row)
                print(
                    f"{dataset:8} seed {seed} {strategy:10} valid {row['valid']:.4f} "
                    f"test {row['test']:.4f} ({row['trials']} trials)",
                    flush=True,
                )
            if model["test_metric"]["name"] == "accuracy":
                first, second = (test_rows(a.xtask, procs[s][1]) for s in a.strategies)
                if [y for y, _ in first] != [y for y, _ in second]:
                    sys.exit(f"{dataset} seed {seed}: the two runs' test rows differ")
                # (first right, second right) per row.
                right = collections.Counter(
                    (p == y, q == y) for (y, p), (_, q) in zip(first, second)
                )
                paired.append({
                    "dataset": dataset,
                    "seed": seed,
                    "only_first": right[True, False],
                    "only_second": right[False, True],
                    "neither": right[False, False],
                    "rows": len(first),
                })

    summarize(results, paired, a.strategies, f"over seeds {a.seeds}, {a.budget_secs:.0f} s each")
    pathlib.Path(a.out).write_text(json.dumps(
        {"strategies": a.strategies, "budget_secs": a.budget_secs, "runs": results,
         "paired": paired},
        indent=1,
    ))
    print(f"raw results: {a.out}")


def summarize(results: list[dict], paired: list[dict], strategies: list[str], what: str) -> None:
    """Means per dataset and strategy, and the pooled paired count of test rows."""
    datasets = list(dict.fromkeys(r["dataset"] for r in results))
    print(f"\nmeans {what}:")
    print("| dataset | strategy | seeds | validation | test | trials |")
    print("|---|---|---:|---:|---:|---:|")
    for dataset in datasets:
        for strategy in strategies:
            rows = [r for r in results if r["dataset"] == dataset and r["strategy"] == strategy]
            mean = lambda k: statistics.mean(r[k] for r in rows)
            print(
                f"| {dataset} | {strategy} | {len(rows)} | {mean('valid'):.4f} "
                f"| {mean('test'):.4f} | {mean('trials'):.1f} |"
            )
    if paired:
        first, second = strategies
        print(f"\ntest rows only one strategy gets right, summed {what}:")
        print(f"| dataset | rows | only {first} | only {second} | neither | exact McNemar p |")
        print("|---|---:|---:|---:|---:|---:|")
        for dataset in datasets:
            rows = [r for r in paired if r["dataset"] == dataset]
            if not rows:
                continue
            total = lambda k: sum(r[k] for r in rows)
            b, c = total("only_first"), total("only_second")
            print(
                f"| {dataset} | {total('rows')} | {b} | {c} | {total('neither')} "
                f"| {mcnemar_exact(b, c):.2g} |"
            )


def pool(files: list[str]) -> None:
    """Prints the tables over the runs of several raw results files."""
    results, paired, strategies, seen, budgets = [], [], None, {}, {}
    for name in files:
        try:
            raw = json.loads(pathlib.Path(name).read_text())
            runs, pairs = raw["runs"], raw["paired"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            sys.exit(f"{name}: not a raw results file of this script ({e})")
        # Files written before the order was recorded: the strategies in order of appearance.
        order = raw.get("strategies") or list(dict.fromkeys(r["strategy"] for r in runs))
        if len(order) != 2:
            sys.exit(f"{name}: expected two strategies, found {order}")
        if strategies is None:
            strategies = order
        elif order != strategies:
            sys.exit(f"{name}: compares {order}, the first file {strategies}; "
                     "the paired counts would not line up")
        # Files written before the budget was recorded cannot be checked.
        if raw.get("budget_secs") is not None:
            budgets[name] = raw["budget_secs"]
        if len(set(budgets.values())) > 1:
            sys.exit(f"the files ran at different budgets ({budgets}); pool one budget at a time")
        for r in runs:
            key = (r["dataset"], r["seed"], r["strategy"])
            if key in seen:
                sys.exit(f"{r['dataset']} seed {r['seed']} ({r['strategy']}) is in both "
                         f"{seen[key]} and {name}; pool each seed once")
            seen[key] = name
        results += runs
        paired += pairs
    summarize(results, paired, strategies, f"over the seeds of {len(files)} files")


if __name__ == "__main__":
    main()
