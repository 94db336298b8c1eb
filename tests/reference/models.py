"""Reference values for sql/harmonic.sql and sql/mann_kendall.sql, with numpy.

Reads per-pixel series {"pixel": [[t, v], ...]} (t in decimal years since 1970,
sorted by t) from argv[1] and writes, per pixel, the harmonic model (k = 1,
numpy.linalg.lstsq on [1, t, cos 2 pi t, sin 2 pi t]) and the Mann-Kendall
test (Hipel & McLeod, as pymannkendall.original_test) and the OLS trend
(numpy.polyfit) to argv[2].
Run by the integration tests with the venv scripts/test.sh creates.
"""
import json
import math
import sys

import numpy as np


def harmonic(t, v):
    x = np.column_stack([np.ones_like(t), t, np.cos(2 * np.pi * t), np.sin(2 * np.pi * t)])
    n, p = x.shape
    if n < p or np.linalg.matrix_rank(x) < p:
        return None
    coef, *_ = np.linalg.lstsq(x, v, rcond=None)
    sse = float(np.sum((v - x @ coef) ** 2))
    sst = float(np.sum((v - v.mean()) ** 2))
    return {
        "coefficients": coef.tolist(),
        "rmse": math.sqrt(sse / (n - p)) if n > p else None,
        "r2": 1.0 - sse / sst if sst > 0 else None,
        "n": n,
    }


def mann_kendall(v):
    n = len(v)
    s = int(sum(np.sign(v[j] - v[i]) for i in range(n - 1) for j in range(i + 1, n)))
    _, counts = np.unique(v, return_counts=True)
    var_s = (n * (n - 1) * (2 * n + 5) - float(np.sum(counts * (counts - 1) * (2 * counts + 5)))) / 18.0
    if s > 0:
        z = (s - 1) / math.sqrt(var_s)
    elif s < 0:
        z = (s + 1) / math.sqrt(var_s)
    else:
        z = 0.0
    return {"s": s, "tau": s / (0.5 * n * (n - 1)), "var_s": var_s, "z": z, "p_value": math.erfc(abs(z) / math.sqrt(2)), "n": n}


def main():
    series = json.load(open(sys.argv[1]))
    out = {}
    for pixel, pts in series.items():
        a = np.array(pts, dtype=float)
        t, v = a[:, 0], a[:, 1]
        out[pixel] = {
            "harmonic": harmonic(t, v),
            "mk": mann_kendall(v) if len(v) >= 3 else None,
            # OLS trend: numpy.polyfit slope and intercept (years since 1970).
            "trend": np.polyfit(t, v, 1).tolist() if len(v) >= 2 and np.ptp(t) > 0 else None,
        }
    json.dump(out, open(sys.argv[2], "w"))


if __name__ == "__main__":
    main()
