#!/usr/bin/env python3
"""Makes scipy-extra.jsonl: more reference results from SciPy, aimed at the
paths the shared golden file touches lightly — exact Mann-Whitney with one
small and one larger sample, forced exact with ties, exact Wilcoxon deep in
the tails (where SciPy computes 1 − a sum), the permutation path with ties
and zeros under every zero method, and metric-like data (values on a grid
of 1/n, as accuracies are).

Not run by CI. Made with:
    python3 -m venv /tmp/sp && /tmp/sp/bin/pip install "scipy==1.17.*"
    /tmp/sp/bin/python make_extra_golden.py > scipy-extra.jsonl
"""

import json
import random
import sys

import scipy
from scipy import stats


def emit(out, test, x, y, res, **opts):
    out.write(json.dumps({"test": test, "x": x, "y": y, **opts,
                          "statistic": float(res.statistic), "pvalue": float(res.pvalue),
                          "scipy": scipy.__version__}) + "\n")


def main():
    rng = random.Random(20261126)
    out = sys.stdout
    alternatives = ["two-sided", "less", "greater"]
    for i in range(120):
        kind = i % 4
        if kind == 0:   # exact MWU, small vs larger sample, no ties
            n1, n2 = rng.randint(1, 8), rng.randint(1, 40)
            pool = rng.sample(range(1000), n1 + n2)
            x, y = [p / 7 for p in pool[:n1]], [p / 7 + rng.choice([0, 30]) for p in pool[n1:]]
            method = rng.choice(["auto", "exact"])
        elif kind == 1:  # ties: forced exact or asymptotic
            n1, n2 = rng.randint(2, 12), rng.randint(2, 12)
            x = [rng.randint(0, 5) * 0.25 for _ in range(n1)]
            y = [rng.randint(0, 6) * 0.25 for _ in range(n2)]
            method = rng.choice(["exact", "asymptotic", "auto"])
        elif kind == 2:  # metric-like: accuracies of 30 runs on a 360-example test set
            x = [round(rng.gauss(0.9, 0.01) * 360) / 360 for _ in range(30)]
            y = [round(rng.gauss(0.9 + rng.choice([0, 0.01]), 0.01) * 360) / 360 for _ in range(30)]
            method = "auto"
        else:            # large asymptotic, far tail
            x = [rng.gauss(0, 1) for _ in range(rng.randint(30, 200))]
            y = [rng.gauss(rng.choice([0, 1.5]), 1) for _ in range(rng.randint(30, 200))]
            method = "asymptotic"
        alt = rng.choice(alternatives)
        cont = rng.choice([True, False])
        res = stats.mannwhitneyu(x, y, use_continuity=cont, alternative=alt, method=method)
        emit(out, "mannwhitneyu", x, y, res, alternative=alt, method=method, use_continuity=cont)
    for i in range(160):
        kind = i % 4
        if kind == 0:   # exact, no ties, strong shifts for tiny p-values
            n = rng.randint(5, 50)
            shift = rng.choice([0.0, 0.5, 3.0])
            x = [rng.gauss(shift, 1) for _ in range(n)]
            y = [0.0] * n
            method = "auto"
        elif kind == 1:  # permutation path: ties and zeros, n <= 13
            n = rng.randint(2, 13)
            x = [rng.randint(-3, 3) * 0.5 for _ in range(n)]
            y = [0.0] * n
            if all(v == 0 for v in x):
                x[0] = 1.0
            method = "auto"
        elif kind == 2:  # forced exact with ties/zeros
            n = rng.randint(3, 30)
            x = [rng.randint(-4, 6) for _ in range(n)]
            y = [0.0] * n
            if all(v == 0 for v in x):
                x[0] = 2.0
            method = "exact"
        else:            # asymptotic with ties and zeros
            n = rng.randint(14, 120)
            x = [rng.randint(-5, 8) / 10 for _ in range(n)]
            y = [rng.randint(-5, 5) / 10 for _ in range(n)]
            method = rng.choice(["auto", "asymptotic"])
        x = [float(v) for v in x]
        alt = rng.choice(alternatives)
        zm = rng.choice(["wilcox", "pratt", "zsplit"])
        corr = rng.choice([True, False])
        d = [a - b for a, b in zip(x, y)]
        if zm == "wilcox" and all(v == 0 for v in d):
            continue
        res = stats.wilcoxon(x, y, zero_method=zm, correction=corr, alternative=alt, method=method)
        if res.pvalue != res.pvalue:  # SciPy's NaN cases are errors for us, tested separately
            continue
        emit(out, "wilcoxon", x, y, res, alternative=alt, method=method, zero_method=zm, correction=corr)


if __name__ == "__main__":
    main()
