"""Prints the scipy reference values asserted in autodl-monitor/src/stats.rs.

Run with the oracle venv: `$(scripts/oracle-venv.sh) autodl-monitor/tests/scipy_golden.py`.
"""
import scipy
from scipy import special, stats

print("scipy", scipy.__version__)
for x in (0.5, 10.0, 123.4):
    print(f"gammaln({x}) = {special.gammaln(x)!r}")
for s, k in ((3.84, 1), (20.0, 7), (0.5, 3), (150.0, 100)):
    print(f"chi2.sf({s}, {k}) = {stats.chi2.sf(s, k)!r}")
for x in (0.5, 1.0, 1.36, 2.5):
    print(f"kolmogorov({x}) = {special.kolmogorov(x)!r}")
chi = stats.chi2_contingency([[10, 20, 30], [20, 20, 10]], correction=False)
print(f"chi2_contingency = {chi.statistic!r} {chi.pvalue!r} {chi.dof}")
print("ks_2samp asymp =", stats.ks_2samp([1, 2, 2, 3], [2, 3, 3, 4, 5], method="asymp"))
print("false_discovery_control =", list(stats.false_discovery_control([0.01, 0.04, 0.03, 0.5])))
