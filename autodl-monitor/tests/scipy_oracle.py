"""scipy's answers for the cases autodl-monitor/tests/scipy_oracle.rs generates.

Usage: python scipy_oracle.py CASES.json

Each case is {"kind": "ks", "a": [...], "b": [...]} (scipy.stats.ks_2samp, method "auto"),
{"kind": "chi2", "r": [...], "c": [...]} (scipy.stats.chi2_contingency of the 2 × k table,
defaults), {"kind": "wasserstein", "a", "b"} (scipy.stats.wasserstein_distance) or
{"kind": "js", "p", "q"} (scipy.spatial.distance.jensenshannon, natural log and base 2),
{"kind": "kstwo", "n", "x": [...]} (scipy.stats.kstwo.sf), {"kind": "smirnov", "n", "x"}
(scipy.special.smirnov), {"kind": "page_hinkley" | "ddm", "values"} (river's detectors with
their defaults: the indices at which each reports a change) or
{"kind": "isotonic", "scores", "labels", "at"} (scikit-learn's
IsotonicRegression(out_of_bounds="clip") fitted on scores and labels, evaluated at `at`).
Prints one JSON list with one list of numbers per case, then scipy's version on stderr.
"""
import json
import sys

import scipy
from scipy import stats
from scipy.spatial.distance import jensenshannon

out = []
for c in json.load(open(sys.argv[1])):
    kind = c["kind"]
    if kind == "ks":
        r = stats.ks_2samp(c["a"], c["b"])
        out.append([float(r.statistic), float(r.pvalue)])
    elif kind == "chi2":
        r = stats.chi2_contingency([c["r"], c["c"]])
        out.append([float(r.statistic), float(r.pvalue), int(r.dof)])
    elif kind == "wasserstein":
        out.append([float(stats.wasserstein_distance(c["a"], c["b"]))])
    elif kind == "js":
        out.append([float(jensenshannon(c["p"], c["q"])),
                    float(jensenshannon(c["p"], c["q"], base=2))])
    elif kind == "kstwo":
        out.append([float(stats.kstwo.sf(x, c["n"])) for x in c["x"]])
    elif kind == "smirnov":
        from scipy import special
        out.append([float(special.smirnov(c["n"], x)) for x in c["x"]])
    elif kind in ("page_hinkley", "ddm"):
        from river import drift
        det = drift.PageHinkley() if kind == "page_hinkley" else drift.binary.DDM()
        found = []
        for i, x in enumerate(c["values"]):
            det.update(x)
            if det.drift_detected:
                found.append(float(i))
        out.append(found)
    elif kind == "isotonic":
        from sklearn.isotonic import IsotonicRegression
        iso = IsotonicRegression(out_of_bounds="clip").fit(c["scores"], c["labels"])
        out.append([float(v) for v in iso.predict(c["at"])])
    else:
        sys.exit(f"unknown case kind {kind}")
print(json.dumps(out))
print("scipy", scipy.__version__, file=sys.stderr)
