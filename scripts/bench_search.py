"""Optuna side of `cargo xtask bench search`: Optuna's TPE on a standard test function or on
the NAS table (six categorical cell edges; the objective is read from --objective, a JSON
file that maps every cell's code to its loss, minus the validation accuracy).

Runs TPESampler with Optuna's defaults (10 random start-up trials, 24 candidates; since
Optuna 4.9 the parameters are always modelled jointly)
for each seed and prints one JSON line: the best-so-far regret after every trial, per
seed, and the sampler's overhead per trial (all of Optuna's time per trial, including the
study bookkeeping and the suggest calls, minus the function's arithmetic).
"""

import argparse
import json
import math
import time

import optuna

BRANIN_MIN = 0.397887
HARTMANN6_MIN = -3.32237

A = [
    [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
    [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
    [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
    [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
]
P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]
ALPHA = [1.0, 1.2, 3.0, 3.2]


def branin_params(trial):
    return [trial.suggest_float("x", -5.0, 10.0), trial.suggest_float("y", 0.0, 15.0)]


def branin(v):
    x, y = v
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


def hartmann6_params(trial):
    return [trial.suggest_float(f"x{i}", 0.0, 1.0) for i in range(6)]


def hartmann6(xs):
    return -sum(
        ALPHA[i] * math.exp(-sum(A[i][j] * (xs[j] - P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


OPS = ["none", "skip", "conv", "pool"]
EDGES = ["01", "02", "12", "03", "13", "23"]


def nas_params(trial):
    return [trial.suggest_categorical(f"cell.edge{e}", OPS) for e in EDGES]


def nas_code(ops):
    """NAS-Bench-201's string form of a cell, as autodl writes it."""
    a, b, c, d, e, f = ops
    return f"|{a}~0|+|{b}~0|{c}~1|+|{d}~0|{e}~1|{f}~2|"


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--function", choices=["branin", "hartmann6", "nas_table"], required=True)
    p.add_argument("--objective", help="the NAS table's losses by cell code (JSON)")
    p.add_argument("--trials", type=int, required=True)
    p.add_argument("--seeds", type=int, required=True)
    a = p.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if a.function == "nas_table":
        with open(a.objective) as fh:
            table = json.load(fh)
        losses = table["losses"]
        params, f, optimum = nas_params, lambda ops: losses[nas_code(ops)], table["optimum"]
    elif a.function == "branin":
        params, f, optimum = branin_params, branin, BRANIN_MIN
    else:
        params, f, optimum = hartmann6_params, hartmann6, HARTMANN6_MIN

    curves, overheads = [], []
    for seed in range(a.seeds):
        inside = 0.0

        def objective(trial):
            # The suggest calls are the sampler's work; only the arithmetic is the objective's.
            nonlocal inside
            values = params(trial)
            t0 = time.perf_counter()
            v = f(values)
            inside += time.perf_counter() - t0
            return v

        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=a.trials)
        total = time.perf_counter() - t0
        overheads.append((total - inside) / a.trials)
        best, curve = math.inf, []
        for t in study.trials:
            best = min(best, t.value)
            curve.append(best - optimum)
        curves.append(curve)
    print(
        json.dumps(
            {
                "optuna": optuna.__version__,
                "curves": curves,
                "overhead_secs_per_trial": sum(overheads) / len(overheads),
            }
        )
    )


if __name__ == "__main__":
    main()
