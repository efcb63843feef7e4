#!/usr/bin/python3
"""Training recipe for the Forewarn `turbofan-rul` model (NASA C-MAPSS FD001, remaining useful life).

Run from the repository root with Debian's Python (scikit-learn 1.2, onnx 1.12, numpy):

    /usr/bin/python3 models/turbofan-rul/train.py \
        [--data ../shared/data/cmapss/train_FD001.txt] \
        [--out-dir models/turbofan-rul] [--split-dir build/turbofan-rul] [--jobs 2] [--compare-nn]

Input: `train_FD001.txt` of NASA's C-MAPSS data (never copied into the repository): 100 simulated turbofan
engines run to failure, one whitespace-separated line per engine and cycle, 26 fields: unit, cycle, three
operational settings, sensors s1..s21.

What it does, in order:

1. Splits the 100 engines (whole engines, never cycles) into 80 train / 20 holdout with a fixed seed and writes,
   line for line in the original format, to `<split-dir>/`:
     - `train_FD001_split.txt`: the 80 train engines;
     - `holdout_full_FD001.txt` + `holdout_full_RUL_FD001.txt`: the 20 holdout engines run to failure (true RUL
       0 at the last cycle of each);
     - `holdout_FD001.txt` + `holdout_RUL_FD001.txt`: the same 20 engines truncated at a seeded random cut point,
       with their true RUL, in the format of the official `test_FD001.txt` / `RUL_FD001.txt`. The cut is drawn
       so that the true RUL is uniform in [7, min(145, length - 31)]: the official FD001 test RULs run from 7
       to 145 and its shortest trajectory has 31 cycles.
2. Checks which sensors are constant on the train engines (at most two distinct values) and drops them: s1, s5,
   s6, s10, s16, s18, s19 in FD001. The 14 others are the inputs. The operational settings are not used (FD001
   has one operating condition; the settings are noise around it).
3. The model input is a window of the last 30 cycles of the 14 raw sensors, [N, 30, 14], oldest cycle first.
   An engine with fewer than 30 cycles is padded at the start by repeating its first cycle. Training uses every
   cycle of every train engine (cycles 1..29 padded), target = min(RUL, 125) (piecewise-linear RUL).
   The graph computes, in float64: z-scores (mean and standard deviation of every train-engine cycle), a health
   index (the first principal component of the z-scores), and for each of the 14 sensors and the health index
   the mean over the 30 cycles, the mean over the last 10 and the least-squares slope over the 30: 45 features.
4. Chooses the feature set (with or without the health index) and the HistGradientBoostingRegressor
   hyperparameters by 5-fold cross-validation over the 80 train engines (folds of whole engines, normalisation
   and health index refitted per fold). The criterion mimics the official test: RMSE against the true
   (uncapped) RUL over every cut point of the validation engines with true RUL in [7, 145] and length >= 31.
   The holdout is not looked at.
5. Refits on all train engines, exports `model.onnx` (opset 13 feature graph + ai.onnx.ml TreeEnsembleRegressor
   + Relu) by hand with onnx.helper, and checks it against scikit-learn with a numpy re-implementation of the
   graph and with onnxruntime-node on every holdout window.
6. Scores the holdout, writes `golden.json`, `manifest.json` and `<split-dir>/cv_results.json`. The manifest's
   `outputs.interval` is the 90% split-conformal interval of cv_protocol.py (5 more fits, one per fold of the 100
   engines); cv_protocol.py measures its coverage.
7. With --compare-nn (needs Debian's python3-torch): the same cross-validation for two small PyTorch networks on
   the z-scored windows (a GRU and a temporal CNN, 3 seeds averaged), written to `<split-dir>/nn_comparison.json`.
   Not used by the shipped model; it documents why gradient boosting was chosen.

Deterministic: every random choice is seeded and every fit is single-threaded, so the result does not depend on
--jobs; reruns give a byte-identical model.onnx, manifest.json and golden.json.

Data attribution: A. Saxena, K. Goebel, D. Simon, N. Eklund, "Damage Propagation Modeling for Aircraft Engine
Run-to-Failure Simulation", PHM 2008; NASA Prognostics Center of Excellence Data Set Repository (C-MAPSS).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from itertools import product as iproduct

import numpy as np
import onnx
import sklearn
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import HistGradientBoostingRegressor
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from recipe_common import dump_json, hgb_baseline, hgb_pin, hgb_predictors, hgb_tree_nodes, onnx_tree_ensemble_raw, sha256  # noqa: E402

try:  # joblib ships with scikit-learn
    from joblib import Parallel, delayed
except ImportError:  # pragma: no cover
    from sklearn.utils._joblib import Parallel, delayed  # type: ignore

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

VERSION = "1.0.0"
SEED = 42
N_HOLDOUT = 20
WINDOW = 30
RECENT = 10  # the "recent level" feature averages the last RECENT cycles of the window
RUL_CAP = 125
CV_FOLDS = 5
OFFICIAL_RUL_RANGE = (7, 145)  # true RULs of the official FD001 test set
OFFICIAL_MIN_LENGTH = 31  # shortest official FD001 test trajectory
ALERT_RUL = 30  # manifest threshold: at risk when predicted RUL <= 30 cycles
PARITY_TOLERANCE = 1e-3  # cycles
INTERVAL_LEVEL = 0.9  # the calibrated RUL interval in the manifest (outputs.interval)

# Cross-validated grid (max_iter through staged predictions).
GRID_FEATURE_SETS = ["sensors", "sensors+health_index"]
GRID_LEARNING_RATE = [0.02, 0.05, 0.1]
GRID_MAX_DEPTH = [3, 5]
GRID_MIN_SAMPLES_LEAF = [20, 100]
GRID_MAX_ITER = [50, 100, 200, 300, 600]
FIXED_PARAMS = {"max_leaf_nodes": None, "l2_regularization": 0.0, "max_bins": 255, "early_stopping": False}

N_COLUMNS = 26
SETTINGS = ["os1", "os2", "os3"]
SENSORS = [f"s{i}" for i in range(1, 22)]
COLUMN_NAMES = ["unit", "cycle"] + SETTINGS + SENSORS
EXPECTED_CONSTANT = ["s1", "s5", "s6", "s10", "s16", "s18", "s19"]

# Saxena et al. 2008, table 2: symbol, description, unit.
SENSOR_INFO = {
    "s1": ("T2", "Total temperature at fan inlet", "degR"),
    "s2": ("T24", "Total temperature at LPC outlet", "degR"),
    "s3": ("T30", "Total temperature at HPC outlet", "degR"),
    "s4": ("T50", "Total temperature at LPT outlet", "degR"),
    "s5": ("P2", "Pressure at fan inlet", "psia"),
    "s6": ("P15", "Total pressure in bypass-duct", "psia"),
    "s7": ("P30", "Total pressure at HPC outlet", "psia"),
    "s8": ("Nf", "Physical fan speed", "rpm"),
    "s9": ("Nc", "Physical core speed", "rpm"),
    "s10": ("epr", "Engine pressure ratio (P50/P2)", "ratio"),
    "s11": ("Ps30", "Static pressure at HPC outlet", "psia"),
    "s12": ("phi", "Ratio of fuel flow to Ps30", "pps/psi"),
    "s13": ("NRf", "Corrected fan speed", "rpm"),
    "s14": ("NRc", "Corrected core speed", "rpm"),
    "s15": ("BPR", "Bypass ratio", "ratio"),
    "s16": ("farB", "Burner fuel-air ratio", "ratio"),
    "s17": ("htBleed", "Bleed enthalpy", "unitless"),
    "s18": ("Nf_dmd", "Demanded fan speed", "rpm"),
    "s19": ("PCNfR_dmd", "Demanded corrected fan speed", "rpm"),
    "s20": ("W31", "HPT coolant bleed", "lbm/s"),
    "s21": ("W32", "LPT coolant bleed", "lbm/s"),
}

# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


class Engine:
    """One engine's trajectory: its original text lines and the parsed [cycles, 26] float64 array."""

    def __init__(self, unit: int, lines: list[str], values: np.ndarray):
        self.unit = unit
        self.lines = lines
        self.values = values

    def __len__(self):
        return len(self.lines)


def read_cmapss(path: str) -> list[Engine]:
    with open(path, "r", encoding="ascii") as f:
        text = f.read()
    engines: list[Engine] = []
    cur_lines: list[str] = []
    cur_vals: list[list[float]] = []
    cur_unit = None
    for n, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != N_COLUMNS:
            raise ValueError(f"{path}:{n}: {len(fields)} fields, expected {N_COLUMNS}")
        vals = [float(v) for v in fields]
        unit = int(vals[0])
        if unit != cur_unit:
            if cur_unit is not None:
                engines.append(Engine(cur_unit, cur_lines, np.array(cur_vals)))
            if any(e.unit == unit for e in engines):
                raise ValueError(f"{path}:{n}: engine {unit} is not contiguous")
            cur_unit, cur_lines, cur_vals = unit, [], []
        if int(vals[1]) != len(cur_lines) + 1:
            raise ValueError(f"{path}:{n}: engine {unit} cycle {int(vals[1])}, expected {len(cur_lines) + 1}")
        cur_lines.append(line)
        cur_vals.append(vals)
    if cur_unit is not None:
        engines.append(Engine(cur_unit, cur_lines, np.array(cur_vals)))
    return engines


def read_extra_labels(path: str, sensors: list[str], first_unit: int) -> list[Engine]:
    """The confirmed failures of a `forewarn central export-labels` file, renumbered from first_unit.

    C-MAPSS text has no label column: PATH.json (the export's sidecar) says which unit is which episode. A confirmed
    failure is taken as run to failure at its last exported cycle (the reading at the alert the technician confirmed),
    which is how the recipe reads every train engine. A false alarm says only that the true RUL was above the alert
    threshold, a censored target this regression cannot use: those units are counted and left out."""
    engines = read_cmapss(path)
    with open(path + ".json", "r", encoding="utf-8") as f:
        episodes = json.load(f)["episodes"]
    positive = {e["unit"] for e in episodes if e.get("positive") and "unit" in e}
    out = []
    for e in engines:
        if e.unit not in positive:
            continue
        idx = [COLUMN_NAMES.index(s) for s in sensors]
        if not np.all(np.isfinite(e.values[:, idx])):
            raise SystemExit(f"{path}: unit {e.unit} lacks a model input")
        e.values[:, 0] = first_unit + len(out)
        out.append(Engine(first_unit + len(out), e.lines, e.values))
    print(f"[extra] {path}: {len(out)} confirmed failures added to the train engines; "
          f"{len(engines) - len(out)} false alarms left out (no RUL target)")
    return out


def write_engines(path: str, engines: list[Engine], keep: dict | None = None) -> None:
    """Writes the engines' original lines; keep[unit] = number of leading cycles to write (default: all)."""
    with open(path, "w", encoding="ascii", newline="") as f:
        for e in engines:
            n = len(e) if keep is None else keep[e.unit]
            for line in e.lines[:n]:
                f.write(line + "\n")


def write_rul(path: str, ruls: list[int]) -> None:
    with open(path, "w", encoding="ascii", newline="") as f:
        for r in ruls:
            f.write(f"{int(r)}\n")


def constant_sensors(engines: list[Engine]) -> list[str]:
    allv = np.concatenate([e.values for e in engines])
    return [s for s in SENSORS if len(np.unique(allv[:, COLUMN_NAMES.index(s)])) <= 2]


def sensor_matrix(e: Engine, features: list[str]) -> np.ndarray:
    """[cycles, F] raw sensor values as float32 (what the agent feeds)."""
    idx = [COLUMN_NAMES.index(s) for s in features]
    return e.values[:, idx].astype(np.float32)


def windows(x: np.ndarray, ends: np.ndarray | None = None) -> np.ndarray:
    """Windows of WINDOW cycles ending at each cycle in `ends` (1-based; default every cycle), oldest first.

    Cycles before the first are the first cycle repeated (pad "repeat-first")."""
    padded = np.concatenate([np.repeat(x[:1], WINDOW - 1, axis=0), x], axis=0)
    if ends is None:
        ends = np.arange(1, len(x) + 1)
    return np.stack([padded[t - 1 : t - 1 + WINDOW] for t in ends]).astype(np.float32)


def engine_windows(engines: list[Engine], features: list[str]):
    """All windows of all engines with (unit, end cycle, true RUL) per window."""
    X, units, ends, rul = [], [], [], []
    for e in engines:
        x = sensor_matrix(e, features)
        L = len(x)
        X.append(windows(x))
        units.append(np.full(L, e.unit))
        ends.append(np.arange(1, L + 1))
        rul.append(L - np.arange(1, L + 1))
    return np.concatenate(X), np.concatenate(units), np.concatenate(ends), np.concatenate(rul).astype(np.float64)


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def nasa_score(pred, true) -> float:
    d = np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)
    return float(np.sum(np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)))


def rul_report(pred, true, per_engine_units=None) -> dict:
    pred = np.asarray(pred, dtype=np.float64)
    true = np.asarray(true, dtype=np.float64)
    d = pred - true
    out = {
        "engines" if per_engine_units is not None else "windows": int(len(d)),
        "rmse": round(float(np.sqrt(np.mean(d ** 2))), 4),
        "nasaScore": round(nasa_score(pred, true), 4),
        "meanError": round(float(np.mean(d)), 4),
        "mae": round(float(np.mean(np.abs(d))), 4),
        "errorPercentiles": {k: round(float(np.percentile(d, q)), 2) for k, q in
                             (("min", 0), ("p10", 10), ("p25", 25), ("median", 50), ("p75", 75), ("p90", 90), ("max", 100))},
        "absErrorWithin10": int(np.sum(np.abs(d) <= 10)),
        "absErrorWithin20": int(np.sum(np.abs(d) <= 20)),
        "late": int(np.sum(d > 0)),
    }
    if per_engine_units is not None:
        out["perEngine"] = [{"unit": int(u), "predicted": round(float(p), 2), "true": int(t), "error": round(float(p - t), 2)}
                            for u, p, t in zip(per_engine_units, pred, true)]
    return out


def bootstrap_rmse(pred, true, n: int = 10000) -> list:
    """95% percentile interval of the RMSE over engines resampled with replacement (seeded)."""
    d2 = (np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)) ** 2
    idx = np.random.default_rng(SEED).integers(0, len(d2), size=(n, len(d2)))
    r = np.sqrt(d2[idx].mean(axis=1))
    return [round(float(np.percentile(r, 2.5)), 2), round(float(np.percentile(r, 97.5)), 2)]


def official_like_mask(ends, rul) -> np.ndarray:
    """Cut points the official test set could contain: length >= 31 cycles, true RUL in [7, 145]."""
    return (ends >= OFFICIAL_MIN_LENGTH) & (rul >= OFFICIAL_RUL_RANGE[0]) & (rul <= OFFICIAL_RUL_RANGE[1])


def alert_report(pred, rul) -> dict:
    """Predicted RUL <= ALERT_RUL as an alert for true RUL <= ALERT_RUL, over every window."""
    alert = np.asarray(pred) <= ALERT_RUL
    due = np.asarray(rul) <= ALERT_RUL
    tp = int(np.sum(alert & due))
    fp = int(np.sum(alert & ~due))
    fn = int(np.sum(~alert & due))
    return {
        "alertAtPredictedRul": ALERT_RUL,
        "windows": int(len(alert)),
        "due": int(due.sum()),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
        "alertsWithTrueRulAbove60": int(np.sum(alert & (np.asarray(rul) > 60))),
    }


def alert_lead_times(pred, units, ends, rul, hold) -> dict:
    """Per holdout engine run to failure: the true RUL at the first cycle where predicted RUL <= ALERT_RUL."""
    out = []
    for e in hold:
        sel = np.flatnonzero(units == e.unit)
        hit = sel[np.asarray(pred)[sel] <= ALERT_RUL]
        out.append({"unit": e.unit, "firstAlertCycle": int(ends[hit[0]]) if len(hit) else None,
                    "trueRulAtFirstAlert": int(rul[hit[0]]) if len(hit) else None})
    lead = np.array([o["trueRulAtFirstAlert"] for o in out if o["trueRulAtFirstAlert"] is not None], dtype=np.float64)
    return {
        "alertAtPredictedRul": ALERT_RUL,
        "engines": len(out),
        "alerted": int(len(lead)),
        "trueRulAtFirstAlert": {"min": int(lead.min()), "median": float(np.median(lead)), "max": int(lead.max())} if len(lead) else None,
        "firstAlertWithTrueRulAbove60": int(np.sum(lead > 60)),
        "firstAlertWithTrueRulBelow10": int(np.sum(lead < 10)),
        "perEngine": out,
    }


# --------------------------------------------------------------------------------------
# Window features (computed in float64, like the graph, then rounded to float32 for the trees)
# --------------------------------------------------------------------------------------


TIME_CENTRED = np.arange(WINDOW, dtype=np.float64) - (WINDOW - 1) / 2.0
SLOPE_WEIGHTS = TIME_CENTRED / np.sum(TIME_CENTRED ** 2)  # least-squares slope per cycle = sum(w_t * x_t)


class WindowFeatures:
    """z-score normalisation, health index and the per-window summaries, fitted on training engines only."""

    def __init__(self, sensors: list[str], use_health_index: bool):
        self.sensors = sensors
        self.use_health_index = use_health_index

    def fit(self, rows: np.ndarray, rul: np.ndarray) -> "WindowFeatures":
        """rows: [n, F] raw float32 sensor values of every cycle of the training engines; rul: their true RUL."""
        x = rows.astype(np.float64)
        self.mean = x.mean(axis=0)
        self.std = x.std(axis=0)
        z = (x - self.mean) / self.std
        # Health index: first principal component of the z-scores, oriented to grow towards failure.
        w, v = np.linalg.eigh(np.cov(z, rowvar=False))
        hi = v[:, np.argmax(w)]
        if z[rul <= 10].mean(axis=0) @ hi < 0:
            hi = -hi
        self.hi = hi
        self.hi_explained = float(w.max() / w.sum())
        return self

    @property
    def channels(self) -> list[str]:
        return self.sensors + (["health_index"] if self.use_health_index else [])

    @property
    def names(self) -> list[str]:
        return ([f"{c}_mean{WINDOW}" for c in self.channels] + [f"{c}_mean{RECENT}" for c in self.channels]
                + [f"{c}_slope{WINDOW}" for c in self.channels])

    def transform(self, X: np.ndarray) -> np.ndarray:
        """X: [n, WINDOW, F] raw float32 windows -> [n, 3 * channels] float32 features, operation by operation as the graph."""
        z = (X.astype(np.float32).astype(np.float64) - self.mean) / self.std
        if self.use_health_index:
            z = np.concatenate([z, (z @ self.hi.reshape(-1, 1))], axis=2)
        level = z.mean(axis=1)
        recent = z[:, WINDOW - RECENT:, :].mean(axis=1)
        slope = (z * SLOPE_WEIGHTS.reshape(1, -1, 1)).sum(axis=1)
        return np.concatenate([level, recent, slope], axis=1).astype(np.float32)


# --------------------------------------------------------------------------------------
# Gradient boosting
# --------------------------------------------------------------------------------------


def make_reg(params: dict) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(loss="squared_error", random_state=SEED, **FIXED_PARAMS, **params)


def fit_reg(F: np.ndarray, y: np.ndarray, params: dict) -> HistGradientBoostingRegressor:
    with threadpool_limits(limits=1):
        return make_reg(params).fit(F.astype(np.float64), y)


def predict_reg(reg, F: np.ndarray) -> np.ndarray:
    """The model's RUL: the ensemble's prediction clamped at 0 (the graph's Relu)."""
    with threadpool_limits(limits=1):
        return np.maximum(reg.predict(F.astype(np.float64)), 0.0)


def _cv_job(Ftr, ytr, Fva, params):
    with threadpool_limits(limits=1):
        reg = make_reg({**params, "max_iter": max(GRID_MAX_ITER)}).fit(Ftr.astype(np.float64), ytr)
        out = {}
        for i, p in enumerate(reg.staged_predict(Fva.astype(np.float64)), start=1):
            if i in GRID_MAX_ITER:
                out[i] = np.maximum(p, 0.0)
    return out


def engine_folds(units: np.ndarray) -> list[np.ndarray]:
    order = np.random.default_rng(SEED).permutation(np.unique(units))
    return [np.sort(order[k::CV_FOLDS]) for k in range(CV_FOLDS)]


def rmse(p, t) -> float:
    return float(np.sqrt(np.mean((np.asarray(p) - np.asarray(t)) ** 2)))


def cv_metrics(P, units, ends, rul, fold_masks) -> dict:
    official = official_like_mask(ends, rul)
    last = np.zeros(len(P), dtype=bool)
    for u in np.unique(units):
        last[np.flatnonzero(units == u)[-1]] = True
    return {
        "officialLikeRmse": round(rmse(P[official], rul[official]), 4),
        "officialLikeNasaScorePer100Engines": round(nasa_score(P[official], rul[official]) / official.sum() * 100, 2),
        "officialLikeRmsePerFold": [round(rmse(P[m & official], rul[m & official]), 4) for m in fold_masks],
        "officialLikeRmseCappedTruth": round(rmse(P[official], np.minimum(rul[official], RUL_CAP)), 4),
        "lastCycleRmse": round(rmse(P[last], rul[last]), 4),
        "allWindowsCappedRmse": round(rmse(P, np.minimum(rul, RUL_CAP)), 4),
    }


def cross_validate(X, units, ends, rul, sensors, jobs):
    folds = engine_folds(units)
    fold_masks = [np.isin(units, f) for f in folds]
    tasks, meta = [], []
    for k, va in enumerate(fold_masks):
        tr = ~va
        last_rows = X[tr][:, -1, :]  # every training cycle once (each window ends at one cycle)
        for fs in GRID_FEATURE_SETS:
            wf = WindowFeatures(sensors, fs.endswith("health_index")).fit(last_rows, rul[tr])
            Ftr, Fva = wf.transform(X[tr]), wf.transform(X[va])
            ytr = np.minimum(rul[tr], RUL_CAP)
            for lr, depth, leaf in iproduct(GRID_LEARNING_RATE, GRID_MAX_DEPTH, GRID_MIN_SAMPLES_LEAF):
                params = {"learning_rate": lr, "max_depth": depth, "min_samples_leaf": leaf}
                tasks.append(delayed(_cv_job)(Ftr, ytr, Fva, params))
                meta.append((k, fs, lr, depth, leaf))
    results = Parallel(n_jobs=jobs)(tasks)
    oof: dict = {}
    for (k, fs, lr, depth, leaf), staged in zip(meta, results):
        for n, p in staged.items():
            arr = oof.setdefault((fs, lr, depth, leaf, n), np.full(len(X), np.nan))
            arr[fold_masks[k]] = p
    table = []
    for (fs, lr, depth, leaf, n), P in oof.items():
        assert not np.isnan(P).any()
        table.append({"featureSet": fs, "learning_rate": lr, "max_depth": depth, "min_samples_leaf": leaf, "max_iter": n,
                      **cv_metrics(P, units, ends, rul, fold_masks), "size": n * 2 ** depth})
    # Lowest official-like RMSE; ties (within 1e-4) go to the smaller model.
    table.sort(key=lambda r: (round(r["officialLikeRmse"], 4), r["size"], r["featureSet"]))
    return table, [f.tolist() for f in folds], int(official_like_mask(ends, rul).sum())


# --------------------------------------------------------------------------------------
# Optional comparison with small neural networks (PyTorch)
# --------------------------------------------------------------------------------------

NN_SEEDS = [0, 1, 2]
NN_EPOCHS = [10, 20, 40]
NN_BATCH = 256
NN_LEARNING_RATE = 1e-3
NN_DESCRIPTIONS = {
    "gru": "GRU(14->32, 1 layer) over the 30 cycles, last hidden state, Linear(32->1), x125",
    "cnn": "temporal CNN: depthwise Conv1d(14->56, k9, groups 14)+tanh, Conv1d(56->16, k1)+tanh, flatten (16x30), "
           "Dropout(0.5), Linear(480->64)+tanh, Linear(64->1), x125",
}


def _nn_job(arch, seed, Ztr, ytr, Zva):
    import torch
    from torch import nn

    class GRU(nn.Module):
        def __init__(self, f):
            super().__init__()
            self.gru = nn.GRU(f, 32, 1, batch_first=True)
            self.out = nn.Linear(32, 1)

        def forward(self, z):
            y, _ = self.gru(z)
            return self.out(y[:, -1]) * float(RUL_CAP)

    class CNN(nn.Module):
        def __init__(self, f):
            super().__init__()
            self.dw = nn.Conv1d(f, 4 * f, 9, padding=4, groups=f)
            self.pw = nn.Conv1d(4 * f, 16, 1)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(16 * WINDOW, 64), nn.Tanh(), nn.Linear(64, 1))

        def forward(self, z):
            return self.head(torch.tanh(self.pw(torch.tanh(self.dw(z.transpose(1, 2)))))) * float(RUL_CAP)

    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(seed)
    net = {"gru": GRU, "cnn": CNN}[arch](Ztr.shape[2])
    opt = torch.optim.Adam(net.parameters(), lr=NN_LEARNING_RATE)
    gen = torch.Generator().manual_seed(seed)
    Zt, yt = torch.from_numpy(np.array(Ztr)), torch.from_numpy(ytr.astype(np.float32)).reshape(-1, 1)  # joblib may pass read-only memmaps
    out = {}
    for epoch in range(1, max(NN_EPOCHS) + 1):
        net.train()
        perm = torch.randperm(len(Zt), generator=gen)
        for i in range(0, len(perm), NN_BATCH):
            b = perm[i : i + NN_BATCH]
            opt.zero_grad()
            torch.mean((net(Zt[b]) - yt[b]) ** 2).backward()
            opt.step()
        if epoch in NN_EPOCHS:
            net.eval()
            with torch.no_grad():
                out[epoch] = net(torch.from_numpy(np.array(Zva))).numpy()[:, 0].astype(np.float64)
    return out


def nn_comparison(X, units, ends, rul, sensors, jobs) -> dict:
    folds = engine_folds(units)
    fold_masks = [np.isin(units, f) for f in folds]
    tasks, meta = [], []
    for k, va in enumerate(fold_masks):
        tr = ~va
        wf = WindowFeatures(sensors, False).fit(X[tr][:, -1, :], rul[tr])
        norm = lambda W: ((W.astype(np.float64) - wf.mean) / wf.std).astype(np.float32)  # noqa: E731
        Ztr, Zva = norm(X[tr]), norm(X[va])
        for arch, seed in iproduct(NN_DESCRIPTIONS, NN_SEEDS):
            tasks.append(delayed(_nn_job)(arch, seed, Ztr, np.minimum(rul[tr], RUL_CAP), Zva))
            meta.append((k, arch, seed))
    results = Parallel(n_jobs=jobs)(tasks)
    oof: dict = {}
    for (k, arch, seed), staged in zip(meta, results):
        for e, p in staged.items():
            oof.setdefault((arch, seed, e), np.full(len(X), np.nan))[fold_masks[k]] = p
    table = []
    official = official_like_mask(ends, rul)
    for arch, e in iproduct(NN_DESCRIPTIONS, NN_EPOCHS):
        ens = np.maximum(np.mean([oof[(arch, s, e)] for s in NN_SEEDS], axis=0), 0.0)
        table.append({"arch": arch, "epochs": e, "seedsAveraged": NN_SEEDS, **cv_metrics(ens, units, ends, rul, fold_masks),
                      "officialLikeRmseSingleSeeds": [round(rmse(np.maximum(oof[(arch, s, e)], 0)[official], rul[official]), 4) for s in NN_SEEDS]})
    import torch
    return {"scheme": "same folds and criterion as cv_results.json; z-scored windows; Adam lr 1e-3, batch 256, MSE on min(RUL, 125)",
            "architectures": NN_DESCRIPTIONS, "torch": torch.__version__, "table": table}


# --------------------------------------------------------------------------------------
# ONNX export (by hand), numpy re-implementation, onnxruntime-node parity
# --------------------------------------------------------------------------------------


def build_onnx(reg, wf: WindowFeatures) -> onnx.ModelProto:
    D, F = TensorProto.DOUBLE, TensorProto.FLOAT
    n = len(wf.sensors)
    inits = [
        numpy_helper.from_array(wf.mean.astype(np.float64), "train_mean"),
        numpy_helper.from_array(wf.std.astype(np.float64), "train_std"),
        numpy_helper.from_array(SLOPE_WEIGHTS.reshape(-1, 1).astype(np.float64), "slope_weights"),
        numpy_helper.from_array(np.array([WINDOW - RECENT], dtype=np.int64), "recent_start"),
        numpy_helper.from_array(np.array([WINDOW], dtype=np.int64), "recent_end"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "time_axis"),
    ]
    nodes = [
        helper.make_node("Cast", ["X"], ["X_double"], to=D, name="to_double"),
        helper.make_node("Sub", ["X_double", "train_mean"], ["centred"], name="centre"),
        helper.make_node("Div", ["centred", "train_std"], ["z"], name="z_score"),
    ]
    series = "z"
    if wf.use_health_index:
        inits.append(numpy_helper.from_array(wf.hi.reshape(-1, 1).astype(np.float64), "health_index_weights"))
        nodes += [
            helper.make_node("MatMul", ["z", "health_index_weights"], ["health_index"], name="health_index"),
            helper.make_node("Concat", ["z", "health_index"], ["series"], axis=2, name="series"),
        ]
        series = "series"
    nodes += [
        helper.make_node("ReduceMean", [series], ["level"], axes=[1], keepdims=0, name=f"mean{WINDOW}"),
        helper.make_node("Slice", [series, "recent_start", "recent_end", "time_axis"], ["recent_cycles"], name="recent_cycles"),
        helper.make_node("ReduceMean", ["recent_cycles"], ["recent"], axes=[1], keepdims=0, name=f"mean{RECENT}"),
        helper.make_node("Mul", [series, "slope_weights"], ["weighted"], name="slope_terms"),
        helper.make_node("ReduceSum", ["weighted", "time_axis"], ["slope"], keepdims=0, name=f"slope{WINDOW}"),
        helper.make_node("Concat", ["level", "recent", "slope"], ["features_double"], axis=1, name="features"),
        helper.make_node("Cast", ["features_double"], ["features"], to=F, name="to_float"),
        helper.make_node(
            "TreeEnsembleRegressor", ["features"], ["raw_rul"], domain="ai.onnx.ml", name="gradient_boosting",
            n_targets=1, aggregate_function="SUM", post_transform="NONE",
            base_values=[float(np.float32(hgb_baseline(reg)))], **hgb_tree_nodes(reg),
        ),
        helper.make_node("Relu", ["raw_rul"], ["rul"], name="clamp_at_zero"),
    ]
    graph = helper.make_graph(
        nodes, "turbofan_rul",
        [helper.make_tensor_value_info("X", F, ["N", WINDOW, n])],
        [helper.make_tensor_value_info("rul", F, ["N", 1])],
        initializer=inits,
    )
    graph.doc_string = (
        f"X [N, {WINDOW}, {n}]: the last {WINDOW} cycles (oldest first) of the raw sensors {' '.join(wf.sensors)}. "
        f"In float64: z = (X - train_mean) / train_std; {'health_index = z . health_index_weights; ' if wf.use_health_index else ''}"
        f"per channel the mean over the {WINDOW} cycles, the mean over the last {RECENT} and the least-squares slope per cycle; "
        "cast to float32; gradient-boosted trees; rul [N, 1] = max(0, sum) in cycles."
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="forewarn-train.py",
        producer_version=VERSION,
        doc_string="Forewarn turbofan-rul model (NASA C-MAPSS FD001). Output rul = remaining useful life in cycles.",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_onnx_predict(model: onnx.ModelProto, F: np.ndarray) -> np.ndarray:
    """Evaluates the exported tree ensemble from its ONNX attributes on float32 features, plus the Relu."""
    return np.maximum(onnx_tree_ensemble_raw(model, F), 0.0)


NODE_SCRIPT = r"""
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const [,, ortPath, modelPath, inputPath] = process.argv;
const require = createRequire(import.meta.url);
const ort = require(ortPath);
const windows = JSON.parse(readFileSync(inputPath, 'utf8'));
const [n, t, f] = [windows.length, windows[0].length, windows[0][0].length];
const data = Float32Array.from(windows.flat(2));
const session = await ort.InferenceSession.create(modelPath, { intraOpNumThreads: 1, interOpNumThreads: 1 });
const out = await session.run({ X: new ort.Tensor('float32', data, [n, t, f]) });
process.stdout.write(JSON.stringify({ rul: Array.from(out.rul.data), dims: out.rul.dims, type: out.rul.type }));
"""


def onnxruntime_node_rul(model_path: str, X: np.ndarray, repo_root: str, tmp_dir: str):
    """Runs windows X [n, 30, F] through onnxruntime-node; None when node/onnxruntime-node is unavailable.

    (recipe_common.onnxruntime_node_predict feeds [rows, width] and reads 'probability'; this model takes a window.)"""
    node = shutil.which("node")
    ort_dir = os.path.join(repo_root, "node_modules", "onnxruntime-node")
    if node is None or not os.path.isdir(ort_dir):
        return None
    os.makedirs(tmp_dir, exist_ok=True)
    script = os.path.join(tmp_dir, "parity_rul.mjs")
    inputs = os.path.join(tmp_dir, "parity_rul_windows.json")
    with open(script, "w") as f:
        f.write(NODE_SCRIPT)
    with open(inputs, "w") as f:
        json.dump(X.astype(np.float64).tolist(), f)
    res = subprocess.run([node, script, ort_dir, os.path.abspath(model_path), inputs], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"onnxruntime-node parity run failed:\n{res.stderr}")
    out = json.loads(res.stdout)
    assert out["type"] == "float32" and out["dims"] == [len(X), 1], out["dims"]
    return np.array(out["rul"], dtype=np.float64)


# --------------------------------------------------------------------------------------
# Output files
# --------------------------------------------------------------------------------------


def dump_golden(obj) -> str:
    """dump_json, with every innermost list (one cycle of a window) on one line whatever its length."""
    text = dump_json(obj)
    return re.sub(
        r"\[\s*\n\s*([-0-9.eE+, \n]*?)\s*\n\s*\]",
        lambda m: "[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]",
        text,
    )


def padded_range(lo: float, hi: float) -> list:
    """Training min/max widened by 25% of the span on each side, rounded outwards to a tenth of the span's order."""
    pad = 0.25 * (hi - lo)
    step = 10 ** math.floor(math.log10(hi - lo)) / 10
    nd = max(0, -int(math.floor(math.log10(step))))
    return [round(math.floor((lo - pad) / step) * step, nd), round(math.ceil((hi + pad) / step) * step, nd)]


def decimals_of(engines, column: int) -> int:
    return max(len(f.split(".")[1]) if "." in f else 0 for e in engines for f in (e.lines[0].split()[column],))


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(repo_root, "..", "shared", "data", "cmapss", "train_FD001.txt"))
    ap.add_argument("--out-dir", default=os.path.join(repo_root, "models", "turbofan-rul"))
    ap.add_argument("--split-dir", default=os.path.join(repo_root, "build", "turbofan-rul"))
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8), help="parallel CV fits (each single-threaded)")
    ap.add_argument("--compare-nn", action="store_true", help="also cross-validate two small PyTorch networks (python3-torch)")
    ap.add_argument("--skip-node-parity", action="store_true", help="do not run the onnxruntime-node parity check")
    ap.add_argument("--extra-labels", action="append", default=[], metavar="FILE",
                    help="units from `forewarn central export-labels --model turbofan-rul` (C-MAPSS text + FILE.json): the "
                    "confirmed failures join the train engines, after the split, as run to failure at their last cycle (repeatable)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if sklearn.__version__ != "1.2.1":
        print(f"[warn] scikit-learn {sklearn.__version__}: the export reads the private HistGradientBoosting predictors, "
              "checked against 1.2.1; the parity checks below must pass", file=sys.stderr)

    # ---- 1. split --------------------------------------------------------------------
    engines = read_cmapss(args.data)
    assert len(engines) == 100, len(engines)
    rng = np.random.default_rng(SEED)
    hold_units = set(int(u) for u in rng.choice(np.array([e.unit for e in engines]), N_HOLDOUT, replace=False))
    train = [e for e in engines if e.unit not in hold_units]
    hold = [e for e in engines if e.unit in hold_units]
    keep, true_rul = {}, []
    for e in hold:  # truncation mimicking the official test set
        r = int(rng.integers(OFFICIAL_RUL_RANGE[0], min(OFFICIAL_RUL_RANGE[1], len(e) - OFFICIAL_MIN_LENGTH) + 1))
        keep[e.unit] = len(e) - r
        true_rul.append(r)
    os.makedirs(args.split_dir, exist_ok=True)
    write_engines(os.path.join(args.split_dir, "train_FD001_split.txt"), train)
    write_engines(os.path.join(args.split_dir, "holdout_full_FD001.txt"), hold)
    write_rul(os.path.join(args.split_dir, "holdout_full_RUL_FD001.txt"), [0] * len(hold))
    write_engines(os.path.join(args.split_dir, "holdout_FD001.txt"), hold, keep)
    write_rul(os.path.join(args.split_dir, "holdout_RUL_FD001.txt"), true_rul)
    print(f"[split] {len(engines)} engines -> train {len(train)} ({sum(map(len, train))} cycles), "
          f"holdout {len(hold)} ({sum(map(len, hold))} cycles): units {sorted(hold_units)}")
    print(f"[split] truncated holdout: lengths {[keep[e.unit] for e in hold]}, true RUL {true_rul}")

    # ---- 2. inputs ---------------------------------------------------------------------
    const = constant_sensors(train)
    if const != EXPECTED_CONSTANT:
        raise SystemExit(f"constant sensors on the train engines are {const}, expected {EXPECTED_CONSTANT}")
    sensors = [s for s in SENSORS if s not in const]
    for extra_path in args.extra_labels:
        train += read_extra_labels(extra_path, sensors, first_unit=max(e.unit for e in engines + train) + 1)
    X_tr, u_tr, end_tr, rul_tr = engine_windows(train, sensors)
    print(f"[inputs] dropped constant {const}; {len(sensors)} sensors {sensors}; train windows {X_tr.shape} "
          f"({int(np.sum(end_tr < WINDOW))} padded)")

    # ---- 3. cross-validation on the train engines ------------------------------------------
    table, folds, n_official = cross_validate(X_tr, u_tr, end_tr, rul_tr, sensors, args.jobs)
    best = table[0]
    print(f"[cv] {len(table)} configurations in {time.time() - t0:.0f}s; top 5 by official-like OOF RMSE:")
    for r in table[:5]:
        print("   ", {k: r[k] for k in ("featureSet", "learning_rate", "max_depth", "min_samples_leaf", "max_iter",
                                          "officialLikeRmse", "lastCycleRmse", "allWindowsCappedRmse")})
    for fs in GRID_FEATURE_SETS:
        b = next(r for r in table if r["featureSet"] == fs)
        print(f"[cv] best with feature set {fs}: official-like RMSE {b['officialLikeRmse']}")
    with open(os.path.join(args.split_dir, "cv_results.json"), "w") as f:
        f.write(dump_json({"folds": folds, "officialLikeCutPoints": n_official, "table": table}) + "\n")
    if args.compare_nn:
        t1 = time.time()
        nn = nn_comparison(X_tr, u_tr, end_tr, rul_tr, sensors, args.jobs)
        with open(os.path.join(args.split_dir, "nn_comparison.json"), "w") as f:
            f.write(dump_json(nn) + "\n")
        print(f"[nn] {time.time() - t1:.0f}s")
        for r in nn["table"]:
            print("   ", {k: r[k] for k in ("arch", "epochs", "officialLikeRmse", "officialLikeRmseSingleSeeds", "lastCycleRmse", "allWindowsCappedRmse")})

    # ---- 4. final fit -----------------------------------------------------------------
    hyper = {k: best[k] for k in ("learning_rate", "max_depth", "min_samples_leaf", "max_iter")}
    wf = WindowFeatures(sensors, best["featureSet"].endswith("health_index")).fit(X_tr[:, -1, :], rul_tr)
    F_tr = wf.transform(X_tr)
    reg = fit_reg(F_tr, np.minimum(rul_tr, RUL_CAP), hyper)
    with threadpool_limits(limits=1):
        hgb_pin(reg, F_tr[:2000], reg.predict(F_tr[:2000].astype(np.float64)))

    # ---- 5. export + parity ------------------------------------------------------------
    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, "model.onnx")
    model = build_onnx(reg, wf)
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    n_nodes = len(hgb_tree_nodes(reg)["nodes_nodeids"])
    X_ho, u_ho, end_ho, rul_ho = engine_windows(hold, sensors)
    F_ho = wf.transform(X_ho)
    p_ho = predict_reg(reg, F_ho)
    d_np = float(np.max(np.abs(numpy_onnx_predict(model, F_ho) - p_ho)))
    print(f"[parity] numpy evaluation of the exported trees vs scikit-learn on {len(X_ho)} holdout windows: max |d| = {d_np:.3g} cycles")
    if d_np > PARITY_TOLERANCE:
        raise SystemExit("parity check (numpy) failed")
    parity = {"tolerance": PARITY_TOLERANCE, "unit": "cycles", "holdoutWindows": int(len(X_ho)), "numpyMaxAbsDiff": d_np}
    if not args.skip_node_parity:
        ort_ho = onnxruntime_node_rul(model_path, X_ho, repo_root, os.path.join(args.split_dir, "parity"))
        if ort_ho is None:
            print("[parity] node / onnxruntime-node not found: onnxruntime check skipped", file=sys.stderr)
        else:
            d = float(np.max(np.abs(ort_ho - p_ho)))
            parity["onnxruntimeMaxAbsDiff"] = d
            print(f"[parity] onnxruntime-node (raw windows in) vs scikit-learn: max |d| = {d:.3g} cycles")
            if d > PARITY_TOLERANCE:
                raise SystemExit("parity check (onnxruntime-node) failed")

    # ---- 6. holdout evaluation (reported, never used for choices) ------------------------------
    last_idx = np.array([np.flatnonzero(u_ho == e.unit)[-1] for e in hold])
    cut_idx = np.array([np.flatnonzero((u_ho == e.unit) & (end_ho == keep[e.unit]))[0] for e in hold])
    assert np.array_equal(rul_ho[cut_idx], np.array(true_rul, dtype=np.float64))
    official = official_like_mask(end_ho, rul_ho)
    units_order = [e.unit for e in hold]
    holdout = {
        "truncated": {"data": "build/turbofan-rul/holdout_FD001.txt", "rul": "build/turbofan-rul/holdout_RUL_FD001.txt",
                      **rul_report(p_ho[cut_idx], rul_ho[cut_idx], units_order),
                      "rmseBootstrap95": bootstrap_rmse(p_ho[cut_idx], rul_ho[cut_idx])},
        "lastCycle": {"data": "build/turbofan-rul/holdout_full_FD001.txt", "rul": "build/turbofan-rul/holdout_full_RUL_FD001.txt",
                      **rul_report(p_ho[last_idx], rul_ho[last_idx], units_order)},
        "allOfficialLikeCutPoints": {
            "description": "every cut point of the 20 holdout engines with length >= 31 and true RUL in [7, 145], against the true (uncapped) RUL",
            **rul_report(p_ho[official], rul_ho[official]),
            "nasaScorePer100Engines": round(nasa_score(p_ho[official], rul_ho[official]) / official.sum() * 100, 2),
            "rmseCappedTruth": round(rmse(p_ho[official], np.minimum(rul_ho[official], RUL_CAP)), 4),
        },
        "allWindowsCapped": {
            "description": "every cycle of the 20 holdout engines (padded windows included), against min(RUL, 125)",
            **rul_report(p_ho, np.minimum(rul_ho, RUL_CAP)),
        },
        "alert": alert_report(p_ho, rul_ho),
        "alertLeadTime": alert_lead_times(p_ho, u_ho, end_ho, rul_ho, hold),
    }
    print(f"[holdout] truncated: RMSE 95% bootstrap interval over engines {holdout['truncated']['rmseBootstrap95']}")
    for k in ("truncated", "lastCycle", "allOfficialLikeCutPoints", "allWindowsCapped"):
        h = holdout[k]
        print(f"[holdout] {k}: n {h.get('engines', h.get('windows'))}, RMSE {h['rmse']}, NASA score {h['nasaScore']}, "
              f"mean error {h['meanError']}, MAE {h['mae']}")
    print(f"[holdout] alert: {holdout['alert']}")
    print(f"[holdout] lead time: { {k: v for k, v in holdout['alertLeadTime'].items() if k != 'perEngine'} }")

    # ---- golden windows ------------------------------------------------------------------
    g_X, g_notes = [], []
    order = np.argsort(p_ho[cut_idx], kind="stable")
    for q in (0.0, 0.25, 0.5, 0.75, 1.0):
        i = int(order[min(int(q * (len(order) - 1)), len(order) - 1)])
        g_X.append(X_ho[cut_idx[i]])
        g_notes.append(f"holdout engine {hold[i].unit} truncated at cycle {keep[hold[i].unit]} (true RUL {true_rul[i]}), "
                       f"{int(q * 100)}th percentile of predicted RUL among the truncated engines")
    for i in (0, 1):
        g_X.append(X_ho[last_idx[i]])
        g_notes.append(f"holdout engine {hold[i].unit}, last cycle {len(hold[i])} (true RUL 0)")
    e0 = hold[0]
    for t in (1, 10):
        g_X.append(windows(sensor_matrix(e0, sensors), np.array([t]))[0])
        g_notes.append(f"holdout engine {e0.unit}, first {t} cycle(s) only: padded at the start by repeating cycle 1")
    med = np.median(X_tr[:, -1, :].astype(np.float64), axis=0)
    g_X.append(np.repeat(med.reshape(1, -1), WINDOW, axis=0).astype(np.float32))
    g_notes.append("synthetic: every cycle at the training median (the manifest baselines)")
    g_X = np.stack(g_X).astype(np.float32)
    g_p = predict_reg(reg, wf.transform(g_X))
    if not args.skip_node_parity:
        ort_g = onnxruntime_node_rul(model_path, g_X, repo_root, os.path.join(args.split_dir, "parity"))
        if ort_g is not None:
            gd = float(np.max(np.abs(ort_g - g_p)))
            parity["goldenMaxAbsDiff"] = gd
            print(f"[parity] golden windows: max |d| = {gd:.3g} cycles")
            if gd > PARITY_TOLERANCE:
                raise SystemExit("parity check (golden windows) failed")
    golden = {
        "model": "turbofan-rul",
        "description": f"Raw input windows (X [N, {WINDOW}, {len(sensors)}]: {WINDOW} cycles, oldest first, of the sensors in 'columns') "
                       "and scikit-learn's predicted RUL in cycles; model.onnx must match within tolerance (cycles).",
        "columns": sensors,
        "inputs": [[[float(v) for v in row] for row in w] for w in g_X.astype(np.float64).tolist()],
        "rul": [float(p) for p in g_p],
        "tolerance": PARITY_TOLERANCE,
        "notes": g_notes,
    }
    with open(os.path.join(args.out_dir, "golden.json"), "w") as f:
        f.write(dump_golden(golden) + "\n")

    # ---- manifest --------------------------------------------------------------------------
    raw_tr = X_tr[:, -1, :].astype(np.float64)
    lo, hi = raw_tr.min(axis=0), raw_tr.max(axis=0)
    feats = []
    for j, s in enumerate(sensors):
        sym, desc, unit = SENSOR_INFO[s]
        col = COLUMN_NAMES.index(s)
        feats.append({
            "name": s,
            "signal": f"cmapss.{s}",
            "column": str(col),
            "unit": unit,
            "range": padded_range(float(lo[j]), float(hi[j])),
            "baseline": round(float(med[j]), decimals_of(train, col)),
            "description": f"C-MAPSS sensor {s} ({sym}): {desc}. column = its 0-based field index in a C-MAPSS line",
        })
    cv_summary = {
        "scheme": f"{CV_FOLDS}-fold over the {len(train)} train engines (whole engines; numpy default_rng({SEED}) permutation); "
                  "normalisation and health index refitted on each fold's training engines",
        "criterion": "RMSE of the out-of-fold predictions against the true (uncapped) RUL over every cut point with length >= 31 and "
                     f"true RUL in [7, 145] ({n_official} cut points); ties to the smaller model",
        "grid": {"featureSet": GRID_FEATURE_SETS, "learning_rate": GRID_LEARNING_RATE, "max_depth": GRID_MAX_DEPTH,
                 "min_samples_leaf": GRID_MIN_SAMPLES_LEAF, "max_iter": GRID_MAX_ITER},
        "chosen": best,
        "bestPerFeatureSet": {fs: next(r for r in table if r["featureSet"] == fs) for fs in GRID_FEATURE_SETS},
        "table": "build/turbofan-rul/cv_results.json",
    }
    # ---- 7. calibrated interval (issue #18): split-conformal on engines held out from training, see cv_protocol.py ----
    import cv_protocol  # noqa: E402  (beside this file; imports this recipe as a module)

    def fit_chosen(X, rul, units, seed, sensors):
        wf_k = WindowFeatures(sensors, best["featureSet"].endswith("health_index")).fit(X[:, -1, :], rul)
        reg_k = fit_reg(wf_k.transform(X), np.minimum(rul, RUL_CAP), hyper)
        return lambda Xq: predict_reg(reg_k, wf_k.transform(Xq))

    interval = cv_protocol.manifest_interval(engines, sensors, fit_chosen, INTERVAL_LEVEL)
    print(f"[interval] {INTERVAL_LEVEL:.0%} offsets per predicted-RUL bin: {interval['bins']}")
    manifest = {
        "schemaVersion": 1,
        "name": "turbofan-rul",
        "version": VERSION,
        "task": "regression",
        "description": f"Remaining useful life, in cycles, of a turbofan engine from the last {WINDOW} cycles of {len(sensors)} sensors "
                       "(trained on NASA C-MAPSS FD001: one operating condition, one fault mode, HPC degradation).",
        "file": "model.onnx",
        "sha256": sha256(model_path),
        "inputs": {
            "tensor": "X",
            "dtype": "float32",
            "window": {"length": WINDOW, "order": "cycle", "pad": "repeat-first"},
            "features": feats,
        },
        "outputs": {
            "tensor": "rul",
            "kind": "rul",
            "meaning": f"Predicted remaining useful life in cycles, >= 0. Trained on RUL capped at {RUL_CAP}: values near {RUL_CAP} and above "
                       f"mean 'no visible degradation yet'. At risk when rul <= threshold ({ALERT_RUL} cycles).",
            "threshold": ALERT_RUL,
            "interval": interval,
        },
        "preprocessing": (
            f"X has shape [N, {WINDOW}, {len(sensors)}]: per engine, its last {WINDOW} cycles in cycle order (oldest first, the latest cycle "
            f"at index {WINDOW - 1}), each cycle the raw sensor values in features order; no scaling. An engine with fewer than {WINDOW} "
            "cycles is padded at the start by repeating its first cycle (pad 'repeat-first'). The graph computes in float64: "
            "z = (x - training mean) / training standard deviation per sensor"
            + ("; health_index = first principal component of z (weights in the graph)" if wf.use_health_index else "")
            + f"; per channel the mean over the {WINDOW} cycles, the mean over the last {RECENT} cycles and the least-squares slope "
            "per cycle; these features go, as float32, into a gradient-boosted tree ensemble. rul [N, 1] = max(0, ensemble output)."
        ),
        "training": {
            "data": "NASA C-MAPSS FD001 train_FD001.txt (100 engines run to failure; one operating condition, one fault mode: HPC "
                    "degradation). A. Saxena, K. Goebel, D. Simon, N. Eklund, Damage Propagation Modeling for Aircraft Engine "
                    "Run-to-Failure Simulation, PHM 2008; NASA Prognostics Center of Excellence Data Set Repository",
            "engines": len(train),
            "cycles": int(sum(map(len, train))),
            "windows": int(len(X_tr)),
            "paddedWindows": int(np.sum(end_tr < WINDOW)),
            "split": f"whole engines: {len(train)} train / {len(hold)} holdout (numpy default_rng({SEED}).choice of {N_HOLDOUT} units); "
                     "the holdout is used only for the reported metrics",
            "holdoutUnits": sorted(hold_units),
            "target": f"min(RUL, {RUL_CAP}) at every cycle (piecewise-linear RUL), RUL = last cycle - cycle",
            "droppedConstantSensors": const,
            "normalisation": "z-score with the mean and population standard deviation of every cycle of the train engines, inside the graph",
            "healthIndex": {"used": wf.use_health_index, "weights": [round(float(v), 6) for v in wf.hi],
                            "explainedVariance": round(wf.hi_explained, 4)},
            "seed": SEED,
            "recipe": "/usr/bin/python3 models/turbofan-rul/train.py",
            "algorithm": f"scikit-learn HistGradientBoostingRegressor (squared error, {hyper['max_iter']} trees, depth <= {hyper['max_depth']}) on "
                         f"{len(wf.names)} window features, exported as ONNX (opset 13 feature graph + ai.onnx.ml TreeEnsembleRegressor, "
                         f"{n_nodes} nodes, + Relu)",
            "hyperparameters": {**hyper, **FIXED_PARAMS, "loss": "squared_error", "random_state": SEED},
            "treeFeatures": wf.names,
            "software": {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__, "numpy": np.__version__, "onnx": onnx.__version__},
        },
        "metrics": {
            "cv": cv_summary,
            "recipe": {"holdout": holdout, "parity": parity,
                       "source": "train.py (scikit-learn predictions on the holdout engines; model.onnx checked against them)"},
        },
    }
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        f.write(dump_json(manifest) + "\n")
    print(f"[done] model.onnx {os.path.getsize(model_path)} bytes, {n_nodes} nodes, sha256 {manifest['sha256']}, {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
