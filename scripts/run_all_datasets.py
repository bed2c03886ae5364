"""Runs the full pipeline, without options beyond a time budget, on every CSV file in a
directory (default ../shared/datasets), and prints one line per file: whether it finished,
the task and target it chose, the test metric, and the time taken. A file the pipeline
refuses (for example one with no usable feature) is shown with its error message.

    cargo build -p xtask && python3 scripts/run_all_datasets.py --budget-secs 20
"""

import argparse
import json
import pathlib
import subprocess
import time

REPO = pathlib.Path(__file__).resolve().parent.parent


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dir", default=str(REPO.parent / "shared" / "datasets"))
    p.add_argument("--budget-secs", type=float, default=20.0)
    p.add_argument("--xtask", default=str(REPO / "target/debug/xtask"))
    p.add_argument("--out", default=str(REPO / "runs/all-datasets.json"))
    a = p.parse_args()
    rows = []
    # A fresh directory per invocation: the pipeline never overwrites a run.
    base = REPO / "runs" / f"all-datasets-{int(time.time())}"
    for f in sorted(pathlib.Path(a.dir).glob("*.csv")):
        out = base / f.stem
        t0 = time.time()
        proc = subprocess.run(
            [a.xtask, "run", "--data", str(f), "--budget-secs", str(a.budget_secs),
             "--out", str(out)],
            cwd=REPO, capture_output=True, text=True,
        )
        secs = time.time() - t0
        row = {"file": f.name, "exit": proc.returncode, "secs": round(secs, 1)}
        if proc.returncode == 0:
            model = json.loads((out / "model/model.json").read_text())
            profile = json.loads((out / "data/profile.json").read_text())
            row.update(target=profile["target"], task=profile["task"],
                       test=model["test_metric"])
            shown = f"target {row['target']}, {row['task']}, test {model['test_metric']['name']} " \
                    f"{model['test_metric']['value']:.4f}"
        else:
            lines = [l for l in proc.stderr.strip().splitlines() if l.strip()]
            row["error"] = lines[-1] if lines else "(no message)"
            shown = "error: " + row["error"]
        rows.append(row)
        print(f"{f.name:45} exit {proc.returncode}  {secs:6.1f} s  {shown}", flush=True)
    pathlib.Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    pathlib.Path(a.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
