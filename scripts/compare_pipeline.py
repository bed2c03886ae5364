"""The full pipeline with two search strategies at the same wall-clock budget.

For each dataset and seed, runs `xtask run --strategy A` and `xtask run --strategy B` at the
same time (each trains on one thread, and the machine has two cores, so both see the same
load), then prints every run's validation and test accuracy and trial count, and the means
over seeds. Raw numbers go to runs/compare-pipeline.json.

    cargo build -p xtask && python3 scripts/compare_pipeline.py --strategies evolution random
"""

import argparse
import json
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


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--strategies", nargs=2, default=["evolution", "random"])
    p.add_argument("--seeds", nargs="+", type=int, default=[1, 2, 3])
    p.add_argument("--budget-secs", type=float, default=120.0)
    p.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    p.add_argument("--xtask", default=str(REPO / "target/debug/xtask"))
    p.add_argument("--out", default=str(REPO / "runs/compare-pipeline.json"))
    a = p.parse_args()

    results = []
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

    print(f"\nmeans over seeds {a.seeds}, {a.budget_secs:.0f} s each:")
    print("| dataset | strategy | validation | test | trials |")
    print("|---|---|---:|---:|---:|")
    for dataset in a.datasets:
        for strategy in a.strategies:
            rows = [r for r in results if r["dataset"] == dataset and r["strategy"] == strategy]
            mean = lambda k: statistics.mean(r[k] for r in rows)
            print(
                f"| {dataset} | {strategy} | {mean('valid'):.4f} | {mean('test'):.4f} "
                f"| {mean('trials'):.1f} |"
            )
    pathlib.Path(a.out).write_text(json.dumps(results, indent=1))
    print(f"raw results: {a.out}")


if __name__ == "__main__":
    main()
