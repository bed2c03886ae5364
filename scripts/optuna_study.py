"""Python Optuna's side of the study-storage checks (the oracle for autodl's journal format).

  dump   --storage S --study NAME        one JSON line per trial, as optuna.load_study sees it
  check  --study NAME FILE...            loads each journal file; prints `FILE trials complete`
  start  --storage S --study NAME --trials N --seed K
                                         a Branin study run by Optuna's own TPESampler (params
                                         x in [-5, 10], y in [0, 15]), then one enqueued trial

S is a journal file path or redis://HOST:PORT[/DB][?prefix=P] (Optuna's JournalRedisBackend).
"""

import argparse
import json
import math
import os
import sys
import warnings

os.environ.setdefault("DO_NOT_TRACK", "1")
warnings.filterwarnings("ignore")

import optuna  # noqa: E402
from optuna.storages import JournalStorage  # noqa: E402
from optuna.storages.journal import JournalFileBackend, JournalRedisBackend  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)


def storage(spec):
    if spec.startswith("redis://"):
        url, _, query = spec.partition("?")
        prefix = ""
        for pair in filter(None, query.split("&")):
            key, _, value = pair.partition("=")
            if key == "prefix":
                prefix = value
        return JournalStorage(JournalRedisBackend(url, prefix=prefix))
    return JournalStorage(JournalFileBackend(spec))


def dump(args):
    study = optuna.load_study(study_name=args.study, storage=storage(args.storage))
    for t in study.trials:
        print(json.dumps({
            "number": t.number,
            "state": t.state.name,
            "values": t.values,
            "params": t.params,
        }, sort_keys=True))


def check(args):
    for path in args.files:
        study = optuna.load_study(study_name=args.study, storage=storage(path))
        trials = study.trials
        complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        print(path, len(trials), len(complete))


def branin(trial):
    x = trial.suggest_float("x", -5.0, 10.0)
    y = trial.suggest_float("y", 0.0, 15.0)
    b, c, r, s, t = 5.1 / (4 * math.pi ** 2), 5 / math.pi, 6.0, 10.0, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - r) ** 2 + s * (1 - t) * math.cos(x) + s


def start(args):
    study = optuna.create_study(
        study_name=args.study,
        storage=storage(args.storage),
        sampler=optuna.samplers.TPESampler(seed=args.seed),
    )
    study.optimize(branin, n_trials=args.trials)
    study.enqueue_trial({"x": 3.0})
    print(json.dumps({"trials": len(study.trials), "best": study.best_value}))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("dump")
    d.add_argument("--storage", required=True)
    d.add_argument("--study", required=True)
    c = sub.add_parser("check")
    c.add_argument("--study", required=True)
    c.add_argument("files", nargs="+")
    s = sub.add_parser("start")
    s.add_argument("--storage", required=True)
    s.add_argument("--study", required=True)
    s.add_argument("--trials", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    {"dump": dump, "check": check, "start": start}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
