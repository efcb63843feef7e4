#!/usr/bin/python3
"""Training recipe for the Forewarn `disk-failure` model (Backblaze Drive Stats SMART data).

Run from the repository root with Debian's Python (sklearn 1.2, onnx 1.12, numpy):

    /usr/bin/python3 models/disk-failure/train.py \
        [--data-dir ../shared/data/smart] \
        [--out-dir models/disk-failure] [--split-dir build/disk-failure]

Input: the last observed day of every drive of two Seagate models in 2019 (Backblaze Drive Stats),
`ST8000DM002_last_day_raw.csv` and `ST8000NM0055_last_day_raw.csv` (never copied into the repository).
One row per drive; `failure` = 1 when that day is the drive's failure day.

What it does, in order:

1. Reads both files, splits the drives stratified on (drive model, failure) into train (80%) / holdout (20%)
   with a fixed seed and writes both, line for line in the Backblaze format, to `<split-dir>/{train,holdout}.csv`.
   Also writes `<split-dir>/holdout_missing_187_188_198.csv` (the holdout with those cells blank, as a vendor
   that does not report them would look) and the cross-model files under `<split-dir>/cross-model/`.
2. Audits the candidate SMART attributes on the train part (how often they are nonzero, how well each one alone
   ranks failures, and how much of that comes from the date of the snapshot rather than the drive's health).
3. Model inputs are four raw, vendor-neutral SMART counters (5, 187, 197, 198), float32, NaN = not reported.
   The ONNX graph derives the tree features itself (NaN-aware): reallocated sectors, reported uncorrectable
   errors, unreadable sectors = max(197, 198), sector damage = (1 + reallocated) * (1 + unreadable).
4. Training rows are augmented: every drive is seen twice, once as recorded and once as a vendor that does not
   report 187 (and, at random, not 198, 5 or 197), so that the model learns where a missing value should go.
5. Chooses HistGradientBoostingClassifier hyperparameters (monotonic increasing in every feature) by repeated
   stratified K-fold cross-validation on the train part only, maximising the partial ROC-AUC up to 1% false
   alarms, averaged over the drives as recorded and with 187/188/198 blanked. The operating threshold is the
   smallest probability (step 0.001) at which the pooled out-of-fold false-alarm rate is at most 1%.
   The holdout is not looked at for any choice.
6. Refits on the whole train part, exports `model.onnx` (ai.onnx.ml TreeEnsembleRegressor with
   nodes_missing_value_tracks_true + Sigmoid) built by hand with onnx.helper from `clf._predictors`, and checks
   that ONNX and sklearn agree within 1e-5 on every holdout row as recorded, with 187/188/198 blank and with
   random cells blank: with a numpy re-implementation of the graph and with onnxruntime-node.
7. Evaluates the holdout (through onnxruntime-node, as the agent would), runs the cross-model checks (train on one
   Seagate model, test on the other; their models go to `<split-dir>/cross-model/models/` so that
   `forewarn model eval --models-dir` can score them), writes `golden.json`, `manifest.json` and
   `<split-dir>/cv_results.json`.

Everything is seeded and single-threaded per fit; rerunning produces an identical model.onnx.
Attribution: Backblaze Drive Stats (https://www.backblaze.com/cloud-storage/resources/hard-drive-test-data).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from itertools import product as iproduct

import numpy as np
import onnx
import sklearn
from onnx import TensorProto, helper
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score, confusion_matrix, roc_auc_score, roc_curve
from sklearn.model_selection import RepeatedStratifiedKFold, StratifiedKFold, train_test_split
from threadpoolctl import threadpool_limits

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipe_common import (  # noqa: E402
    dump_json, hgb_baseline, hgb_pin, hgb_predictors, hgb_tree_nodes, json_rows, onnx_tree_ensemble_raw, onnxruntime_node_predict, sha256,
)

try:  # joblib ships with scikit-learn
    from joblib import Parallel, delayed
except ImportError:  # pragma: no cover
    from sklearn.utils._joblib import Parallel, delayed  # type: ignore

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

SEED = 42
VERSION = "1.0.0"
HOLDOUT_FRACTION = 0.2
CV_FOLDS = 5
CV_REPEATS = 2
PARITY_TOLERANCE = 1e-5
TARGET_FPR = 0.01  # operating point: about 1% false alarms
REPORT_FPRS = (0.01, 0.001)
THRESHOLD_STEP = 0.001

DRIVE_MODELS = ["ST8000DM002", "ST8000NM0055"]
LABEL_COLUMN = "failure"
DATE_COLUMN = "date"
MODEL_COLUMN = "model"

# Model inputs (raw SMART values, in this order). optional: every one may be NaN.
INPUTS = [
    {"name": "smart_5_raw", "signal": "smart.5.raw", "column": "smart_5_raw", "unit": "sectors",
     "description": "SMART 5 Reallocated Sectors Count, raw value: sectors the drive has retired and remapped to spares"},
    {"name": "smart_187_raw", "signal": "smart.187.raw", "column": "smart_187_raw", "unit": "errors",
     "description": "SMART 187 Reported Uncorrectable Errors, raw value: reads that ECC could not recover, reported to the host "
                    "(not reported by many HGST, Toshiba and WDC drives: feed NaN)"},
    {"name": "smart_197_raw", "signal": "smart.197.raw", "column": "smart_197_raw", "unit": "sectors",
     "description": "SMART 197 Current Pending Sector Count, raw value: unstable sectors waiting to be rewritten or remapped"},
    {"name": "smart_198_raw", "signal": "smart.198.raw", "column": "smart_198_raw", "unit": "sectors",
     "description": "SMART 198 Offline Uncorrectable Sector Count, raw value: sectors found unreadable by the offline scan "
                    "(identical to 197 on the Seagate training drives)"},
]
INPUT_COLUMNS = [f["column"] for f in INPUTS]
COUNT_RANGE = [0, 1_000_000_000]
# Tree features computed inside the graph (and by tree_features() below, in float32).
FEATURE_NAMES = ["reallocated_sectors", "reported_uncorrectable", "unreadable_sectors", "sector_damage"]
MONOTONIC = [1, 1, 1, 1]  # risk never falls when an error counter grows

# Training augmentation: a second copy of every training drive, as a vendor that does not report 187,
# with each of these attributes blanked independently with this probability.
AUGMENT_BLANK = {"smart_187_raw": 1.0, "smart_198_raw": 0.5, "smart_5_raw": 0.1, "smart_197_raw": 0.1}
# The "missing attributes" check: the cells other vendors most often lack.
MISSING_CHECK_COLUMNS = ["smart_187_raw", "smart_188_raw", "smart_198_raw"]

# Hyperparameter grid.
GRID_MAX_ITER = [50, 100, 200]
GRID_LEARNING_RATE = [0.05, 0.1]
GRID_MAX_DEPTH = [2, 3]
GRID_MIN_SAMPLES_LEAF = [20, 100]
FIXED_PARAMS = {"loss": "log_loss", "max_leaf_nodes": None, "l2_regularization": 0.0, "max_bins": 255,
                "early_stopping": False, "random_state": SEED}

# Attributes audited (all columns of the files) and the reason each one is or is not an input.
AUDIT_DATE_SPLIT = "2019-10-01"  # failures on or after this day are "Q4" failures

# Feature-set ablation at the chosen hyperparameters: extra raw attributes appended as tree features
# (with their monotonic constraint), or a switch turned off.
ABLATIONS = [
    ("chosen", {}),
    ("+ smart_199_raw (UDMA CRC errors)", {"extra": [("smart_199_raw", 1)]}),
    ("+ smart_188_raw (command timeouts)", {"extra": [("smart_188_raw", 1)]}),
    ("+ smart_194_raw (temperature)", {"extra": [("smart_194_raw", 0)]}),
    ("+ smart_9_raw (power-on hours)", {"extra": [("smart_9_raw", 0)]}),
    ("+ smart_12_raw, 4, 192 (power cycles, start/stops, retracts)", {"extra": [("smart_12_raw", 0), ("smart_4_raw", 0), ("smart_192_raw", 0)]}),
    ("without sector_damage", {"drop": ["sector_damage"]}),
    ("without augmentation", {"augment": False}),
    ("without monotonic constraints", {"monotonic": False}),
]

# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


class Drives:
    """Rows of one or more Backblaze files: raw lines (for writing splits) and parsed columns."""

    def __init__(self, header: str, lines: list[str]):
        self.header = header
        self.columns = header.split(",")
        self.lines = lines
        cells = [ln.split(",") for ln in lines]
        if any(len(c) != len(self.columns) for c in cells):
            raise ValueError("ragged CSV row")
        self.cells = cells
        col = {c: i for i, c in enumerate(self.columns)}
        self.col = col
        self.date = np.array([c[col[DATE_COLUMN]] for c in cells])
        self.model = np.array([c[col[MODEL_COLUMN]] for c in cells])
        self.y = np.array([int(c[col[LABEL_COLUMN]]) for c in cells], dtype=np.int64)
        self.smart = {}
        for name in self.columns:
            if name.startswith("smart_"):
                self.smart[name] = np.array([float(c[col[name]]) if c[col[name]].strip() else np.nan for c in cells])

    def __len__(self):
        return len(self.lines)

    def subset(self, idx) -> "Drives":
        return Drives(self.header, [self.lines[i] for i in idx])

    def raw(self, columns=INPUT_COLUMNS) -> np.ndarray:
        """Raw values [N, len(columns)] as the agent would feed them: float32 (held in float64), NaN = missing."""
        return np.stack([self.smart[c] for c in columns], axis=1).astype(np.float32).astype(np.float64)

    def write(self, path: str, blank: list[str] = ()) -> None:
        blank_idx = [self.col[c] for c in blank]
        with open(path, "w", newline="", encoding="utf-8") as f:
            f.write(self.header + "\n")
            for ln, cells in zip(self.lines, self.cells):
                if blank_idx:
                    cells = list(cells)
                    for i in blank_idx:
                        cells[i] = ""
                    ln = ",".join(cells)
                f.write(ln + "\n")


def read_drives(paths: list[str]) -> Drives:
    header = None
    lines: list[str] = []
    for p in paths:
        with open(p, "r", newline="", encoding="utf-8") as f:
            text = f.read()
        if '"' in text:
            raise ValueError(f"{p}: quoted CSV cells are not expected in Backblaze files")
        rows = text.splitlines()
        if header is None:
            header = rows[0]
        elif rows[0] != header:
            raise ValueError(f"{p}: header differs from {paths[0]}")
        lines += [ln for ln in rows[1:] if ln.strip()]
    return Drives(header, lines)


def read_extra_labels(path: str, train: Drives) -> Drives:
    """`train` with the rows exported by `forewarn central export-labels` appended (provenance in PATH.json)."""
    extra = read_drives([path])
    if extra.header != train.header:
        raise SystemExit(f"{path}: header differs from the training files' (export with this recipe's forewarn version)")
    print(f"[extra] {path}: {len(extra)} rows ({extra.y.sum()} labelled failures) added to the train part")
    return Drives(train.header, train.lines + extra.lines)


# --------------------------------------------------------------------------------------
# Features (float32, operation by operation as the ONNX graph computes them)
# --------------------------------------------------------------------------------------

F1 = np.float32(1.0)


def nan_max(a, b):
    """max(a, b) ignoring a NaN operand (NaN only when both are): Where(IsNaN(a), b, Where(IsNaN(b), a, Max(a, b)))."""
    with np.errstate(invalid="ignore"):
        return np.where(np.isnan(a), b, np.where(np.isnan(b), a, np.maximum(a, b))).astype(np.float32)


def tree_features(raw: np.ndarray) -> np.ndarray:
    """raw: [N, 4] smart_5, smart_187, smart_197, smart_198 (NaN = not reported). Returns [N, 4] float32."""
    x = np.asarray(raw, dtype=np.float64).astype(np.float32)
    s5, s187, s197, s198 = (x[:, i] for i in range(4))
    unreadable = nan_max(s197, s198)
    a = (s5 + F1).astype(np.float32)
    b = (unreadable + F1).astype(np.float32)
    prod = (a * b).astype(np.float32)
    # sector damage = (1 + reallocated) * (1 + unreadable) = exp(log1p(reallocated) + log1p(unreadable)); a
    # missing factor is left out, NaN only when both are missing. Trees only compare, so the log is not needed.
    damage = np.where(np.isnan(a), b, np.where(np.isnan(b), a, prod)).astype(np.float32)
    f = np.stack([s5, s187, unreadable, damage], axis=1).astype(np.float32)
    assert f.shape[1] == len(FEATURE_NAMES)
    return f


def variant_features(raw_all: dict, idx, opts: dict) -> tuple[np.ndarray, list[int]]:
    """Features of an ablation variant: the chosen features, minus `drop`, plus raw `extra` attributes."""
    f = tree_features(np.stack([raw_all[c][idx] for c in INPUT_COLUMNS], axis=1))
    keep = [i for i, n in enumerate(FEATURE_NAMES) if n not in opts.get("drop", [])]
    cols = [f[:, keep]]
    mono = [MONOTONIC[i] for i in keep]
    for name, m in opts.get("extra", []):
        cols.append(raw_all[name][idx].astype(np.float32).reshape(-1, 1))
        mono.append(m)
    return np.concatenate(cols, axis=1).astype(np.float32), mono


def augment(raw_cols: dict, y: np.ndarray, seed: int) -> tuple[dict, np.ndarray]:
    """Each drive twice: as recorded, and with each AUGMENT_BLANK column blanked with its probability.
    raw_cols: {column: values}. Draws happen in AUGMENT_BLANK order from one seeded generator (deterministic)."""
    rng = np.random.default_rng(seed)
    n = len(y)
    second = {c: v.copy() for c, v in raw_cols.items()}
    for c, p in AUGMENT_BLANK.items():
        second[c][rng.random(n) < p] = np.nan
    return {c: np.concatenate([raw_cols[c], second[c]]) for c in raw_cols}, np.concatenate([y, y])


def missing_view(raw_cols: dict) -> dict:
    out = dict(raw_cols)
    for c in MISSING_CHECK_COLUMNS:
        if c in out:
            out[c] = np.full_like(out[c], np.nan)
    return out


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def recall_at_fpr(y, p, fpr_max) -> dict:
    """Largest detection rate with alarm = p >= t whose false-alarm rate is <= fpr_max (ties count whole)."""
    fpr, tpr, thr = roc_curve(y, p, drop_intermediate=False)
    ok = np.flatnonzero(fpr <= fpr_max + 1e-12)
    k = ok[np.argmax(tpr[ok])]
    n_neg = int((y == 0).sum())
    return {"recall": round(float(tpr[k]), 4), "fpr": round(float(fpr[k]), 5),
            "falseAlarms": int(round(fpr[k] * n_neg)), "detected": int(round(tpr[k] * int(y.sum())))}


def at_threshold(y, p, thr) -> dict:
    pred = (p >= thr).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    prec = tp / (tp + fp) if tp + fp else 0.0
    rec = tp / (tp + fn) if tp + fn else 0.0
    return {
        "threshold": thr,
        "recall": round(float(rec), 4),
        "fpr": round(float(fp / (fp + tn)), 5),
        "precision": round(float(prec), 4),
        "f1": round(float(2 * prec * rec / (prec + rec)) if prec + rec else 0.0, 4),
        "confusionMatrix": {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)},
    }


def report(y, p, thr=None) -> dict:
    out = {
        "rows": int(len(y)),
        "failures": int(y.sum()),
        "recallAt1pctFpr": recall_at_fpr(y, p, 0.01),
        "recallAt0.1pctFpr": recall_at_fpr(y, p, 0.001),
        "prAuc": round(float(average_precision_score(y, p)), 4),
        "rocAuc": round(float(roc_auc_score(y, p)), 4),
    }
    if thr is not None:
        out["atThreshold"] = at_threshold(y, p, thr)
    return out


def partial_auc(y, p) -> float:
    """Standardised (McClish) partial ROC-AUC up to TARGET_FPR, as sklearn computes it."""
    return float(roc_auc_score(y, p, max_fpr=TARGET_FPR))


def choose_threshold(y_list, p_list) -> float:
    """Smallest threshold on a THRESHOLD_STEP grid whose pooled false-alarm rate is <= TARGET_FPR."""
    neg = np.concatenate([p[y == 0] for y, p in zip(y_list, p_list)])
    grid = np.round(np.arange(THRESHOLD_STEP, 1.0, THRESHOLD_STEP), 3)
    for t in grid:
        if np.count_nonzero(neg >= t) <= TARGET_FPR * len(neg):
            return float(t)
    return float(grid[-1])


# --------------------------------------------------------------------------------------
# Fitting and cross-validation
# --------------------------------------------------------------------------------------


def make_clf(params: dict, monotonic) -> HistGradientBoostingClassifier:
    return HistGradientBoostingClassifier(monotonic_cst=list(monotonic) if monotonic is not None else None,
                                          **params, **FIXED_PARAMS)


def fit(raw_all: dict, idx, y, params, seed, opts=None) -> HistGradientBoostingClassifier:
    """Fits on drives idx (augmented unless opts says otherwise), single-threaded so the result is reproducible."""
    opts = opts or {}
    cols = {c: v[idx] for c, v in raw_all.items()}
    yy = y
    if opts.get("augment", True):
        cols, yy = augment(cols, y, seed)
    X, mono = variant_features(cols, slice(None), opts)
    with threadpool_limits(limits=1):
        return make_clf(params, mono if opts.get("monotonic", True) else None).fit(X, yy)


def predict(clf, raw_all: dict, idx, opts=None) -> np.ndarray:
    X, _ = variant_features({c: v[idx] for c, v in raw_all.items()}, slice(None), opts or {})
    with threadpool_limits(limits=1):
        return clf.predict_proba(X)[:, 1]


def _cv_job(raw_all, y, tr, va, params, seed, opts):
    clf = fit(raw_all, tr, y[tr], params, seed, opts)
    return predict(clf, raw_all, va, opts), predict(clf, missing_view(raw_all), va, opts)


def cv_oof(raw_all, y, splits, params_list, n_jobs, opts_list=None):
    """Pooled out-of-fold predictions per repeat, as recorded and with MISSING_CHECK_COLUMNS blank."""
    opts_list = opts_list or [{}] * len(params_list)
    jobs = [(c, s) for c in range(len(params_list)) for s in range(len(splits))]
    res = Parallel(n_jobs=n_jobs)(
        delayed(_cv_job)(raw_all, y, splits[s][0], splits[s][1], params_list[c], SEED + s, opts_list[c]) for c, s in jobs)
    n_rep = len(splits) // CV_FOLDS
    out = [{"oof": [np.full(len(y), np.nan) for _ in range(n_rep)], "oofMissing": [np.full(len(y), np.nan) for _ in range(n_rep)]}
           for _ in params_list]
    for (c, s), (p, pm) in zip(jobs, res):
        va = splits[s][1]
        out[c]["oof"][s // CV_FOLDS][va] = p
        out[c]["oofMissing"][s // CV_FOLDS][va] = pm
    for o in out:
        assert not any(np.isnan(a).any() for a in o["oof"] + o["oofMissing"])
    return out


def summarise_oof(y, o) -> dict:
    reps = o["oof"]
    repm = o["oofMissing"]
    mean = lambda f, rs: float(np.mean([f(r) for r in rs]))
    return {
        "pAuc1pct": round(mean(lambda p: partial_auc(y, p), reps), 4),
        "pAuc1pctMissing": round(mean(lambda p: partial_auc(y, p), repm), 4),
        "recallAt1pctFpr": round(mean(lambda p: recall_at_fpr(y, p, 0.01)["recall"], reps), 4),
        "recallAt1pctFprMissing": round(mean(lambda p: recall_at_fpr(y, p, 0.01)["recall"], repm), 4),
        "recallAt0.1pctFpr": round(mean(lambda p: recall_at_fpr(y, p, 0.001)["recall"], reps), 4),
        "prAuc": round(mean(lambda p: average_precision_score(y, p), reps), 4),
        "rocAuc": round(mean(lambda p: roc_auc_score(y, p), reps), 4),
    }


# --------------------------------------------------------------------------------------
# Feature audit
# --------------------------------------------------------------------------------------

AUDIT_NOTES = {
    "smart_1_raw": "Seagate packs raw read error rate with operation counts: vendor-specific, not used",
    "smart_4_raw": "start/stop count: reflects fleet operation and the snapshot date, not health; not used",
    "smart_5_raw": "reallocated sectors: vendor-neutral count; input",
    "smart_7_raw": "Seagate packs seek errors with seek counts: vendor-specific, not used",
    "smart_9_raw": "power-on hours: confounded with the snapshot date (a failed drive is seen on its failure day, "
                   "a healthy one on 2019-12-31) and fleet-specific age; not used",
    "smart_12_raw": "power cycles: operational history and snapshot date, not health; not used",
    "smart_184_raw": "end-to-end errors: nonzero on almost no drive; not used",
    "smart_187_raw": "reported uncorrectable errors: vendor-neutral count, absent on many non-Seagate drives; input (optional, augmented)",
    "smart_188_raw": "command timeouts: Seagate's raw value packs three 16-bit counters, barely separates failures, absent elsewhere; not used",
    "smart_190_raw": "airflow temperature (Seagate-specific attribute); not used",
    "smart_191_raw": "G-sense errors: vendor-specific, environmental; not used",
    "smart_192_raw": "power-off retracts: operational history; not used",
    "smart_193_raw": "load cycles: operational history and snapshot date; not used",
    "smart_194_raw": "temperature: chassis/season dependent (failures are spread over 2019, healthy drives seen in December), "
                     "scale differs by vendor and some vendors pack min/max into the raw value; not used",
    "smart_195_raw": "Seagate-specific ECC counter (packed); not used",
    "smart_197_raw": "current pending sectors: vendor-neutral count; input",
    "smart_198_raw": "offline uncorrectable sectors: vendor-neutral count; input, combined with 197 as max(197, 198)",
    "smart_199_raw": "UDMA CRC errors: cable/backplane faults, not the media; adds nothing in CV; not used",
    "smart_240_raw": "head flying hours: like power-on hours, confounded with the snapshot date; not used",
    "smart_241_raw": "total LBAs written: workload and snapshot date; not used",
    "smart_242_raw": "total LBAs read: workload and snapshot date; not used",
}


def feature_audit(tr: Drives) -> dict:
    y = tr.y
    q4 = (y == 0) | (tr.date >= AUDIT_DATE_SPLIT)
    out = {}
    for c, v in tr.smart.items():
        ok = ~np.isnan(v)
        row = {
            "nonzeroHealthy": round(float(np.mean(v[ok & (y == 0)] > 0)), 4),
            "nonzeroFailed": round(float(np.mean(v[ok & (y == 1)] > 0)), 4),
            "medianHealthy": float(np.median(v[ok & (y == 0)])),
            "medianFailed": float(np.median(v[ok & (y == 1)])),
            "rocAucAlone": round(float(roc_auc_score(y[ok], v[ok])), 3),
            "rocAucAloneQ4FailuresOnly": round(float(roc_auc_score(y[ok & q4], v[ok & q4])), 3),
            "note": AUDIT_NOTES.get(c, ""),
        }
        out[c] = row
    s = tr.smart
    anyerr = (s["smart_5_raw"] > 0) | (s["smart_187_raw"] > 0) | (s["smart_197_raw"] > 0) | (s["smart_198_raw"] > 0)
    fail_dates = np.sort(tr.date[y == 1])
    return {
        "scope": "train part only",
        "rocAucNote": "ROC-AUC of the raw attribute alone (0.5 = no information, below 0.5 = lower in failed drives). "
                      f"The Q4 column keeps only failures on or after {AUDIT_DATE_SPLIT}, whose snapshot is close to the healthy drives' 2019-12-31",
        "snapshotDates": {
            "failedFirst": str(fail_dates[0]), "failedLast": str(fail_dates[-1]),
            "failedMedian": str(fail_dates[len(fail_dates) // 2]),
            "failedShareInQ4": round(float(np.mean(fail_dates >= AUDIT_DATE_SPLIT)), 4),
            "healthyOn20191231": round(float(np.mean(tr.date[y == 0] == "2019-12-31")), 4),
        },
        "smart197EqualsSmart198": bool(np.array_equal(s["smart_197_raw"], s["smart_198_raw"], equal_nan=True)),
        "smart188PackedRawValues": int(np.count_nonzero(s["smart_188_raw"] > 65535)),
        "anyOf5_187_197_198Nonzero": {
            "failed": round(float(np.mean(anyerr[y == 1])), 4),
            "healthy": round(float(np.mean(anyerr[y == 0])), 4),
            "note": "failures with all four counters at zero look exactly like most healthy drives: a ceiling on recall at low false-alarm rates",
        },
        "attributes": out,
    }


# --------------------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------------------


def build_onnx(clf: HistGradientBoostingClassifier, name: str, doc: str) -> onnx.ModelProto:
    F = TensorProto.FLOAT
    inits = [
        helper.make_tensor("split_sizes", TensorProto.INT64, [4], [1, 1, 1, 1]),
        helper.make_tensor("one", F, [], [1.0]),
    ]
    raw = ["smart_5", "smart_187", "smart_197", "smart_198"]
    a = hgb_tree_nodes(clf)
    nodes = [
        helper.make_node("Split", ["X", "split_sizes"], raw, axis=1, name="split_inputs"),
        # unreadable sectors = max(197, 198), ignoring a missing one
        helper.make_node("IsNaN", ["smart_197"], ["smart_197_missing"], name="smart_197_missing"),
        helper.make_node("IsNaN", ["smart_198"], ["smart_198_missing"], name="smart_198_missing"),
        helper.make_node("Max", ["smart_197", "smart_198"], ["max_197_198"], name="max_197_198"),
        helper.make_node("Where", ["smart_198_missing", "smart_197", "max_197_198"], ["unreadable_or_197"], name="unreadable_or_197"),
        helper.make_node("Where", ["smart_197_missing", "smart_198", "unreadable_or_197"], ["unreadable_sectors"], name="unreadable_sectors"),
        # sector damage = (1 + reallocated) * (1 + unreadable), ignoring a missing factor
        helper.make_node("Add", ["smart_5", "one"], ["reallocated_plus_1"], name="reallocated_plus_1"),
        helper.make_node("Add", ["unreadable_sectors", "one"], ["unreadable_plus_1"], name="unreadable_plus_1"),
        helper.make_node("Mul", ["reallocated_plus_1", "unreadable_plus_1"], ["damage_product"], name="damage_product"),
        helper.make_node("IsNaN", ["reallocated_plus_1"], ["reallocated_missing"], name="reallocated_missing"),
        helper.make_node("IsNaN", ["unreadable_plus_1"], ["unreadable_missing"], name="unreadable_missing"),
        helper.make_node("Where", ["unreadable_missing", "reallocated_plus_1", "damage_product"], ["damage_or_reallocated"], name="damage_or_reallocated"),
        helper.make_node("Where", ["reallocated_missing", "unreadable_plus_1", "damage_or_reallocated"], ["sector_damage"], name="sector_damage"),
        helper.make_node("Concat", ["smart_5", "smart_187", "unreadable_sectors", "sector_damage"], ["features"], axis=1, name="features"),
        helper.make_node(
            "TreeEnsembleRegressor",
            ["features"],
            ["logit"],
            domain="ai.onnx.ml",
            name="gradient_boosting",
            n_targets=1,
            aggregate_function="SUM",
            post_transform="NONE",
            base_values=[float(np.float32(hgb_baseline(clf)))],
            **a,
        ),
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="probability"),
    ]
    graph = helper.make_graph(
        nodes,
        name.replace("-", "_"),
        [helper.make_tensor_value_info("X", F, ["N", 4])],
        [helper.make_tensor_value_info("probability", F, ["N", 1]), helper.make_tensor_value_info("logit", F, ["N", 1])],
        initializer=inits,
    )
    graph.doc_string = (
        "X[:, 0..3] = raw SMART 5 (reallocated sectors), 187 (reported uncorrectable), 197 (current pending sectors), "
        "198 (offline uncorrectable); NaN = not reported. Derived in-graph: unreadable_sectors = max(197, 198) ignoring NaN, "
        "sector_damage = (1 + smart_5) * (1 + unreadable_sectors) ignoring a NaN factor."
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="forewarn-train.py",
        producer_version=VERSION,
        doc_string=doc,
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_onnx_predict(model: onnx.ModelProto, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluates the exported graph from its ONNX attributes (float32 features and thresholds, NaN tracking)."""
    out = onnx_tree_ensemble_raw(model, tree_features(raw))
    return 1.0 / (1.0 + np.exp(-out)), out


# --------------------------------------------------------------------------------------
# Golden rows
# --------------------------------------------------------------------------------------

NAN = float("nan")
# Synthetic drives: smart_5, smart_187, smart_197, smart_198 (NaN = not reported).
EDGE_CASES = [
    ([0, 0, 0, 0], "synthetic: clean drive, every counter zero"),
    ([NAN, NAN, NAN, NAN], "synthetic: nothing reported"),
    ([0, NAN, 0, 0], "synthetic: clean drive of a vendor without 187"),
    ([1, 0, 0, 0], "synthetic: one reallocated sector"),
    ([0, 1, 0, 0], "synthetic: one reported uncorrectable error"),
    ([0, 0, 8, 8], "synthetic: 8 pending sectors only"),
    ([0, NAN, 8, NAN], "synthetic: 8 pending sectors, vendor without 187 and 198"),
    ([100, 0, 0, 0], "synthetic: 100 reallocated sectors only"),
    ([2000, 0, 500, 500], "synthetic: many reallocated and pending sectors"),
    ([2000, NAN, 500, NAN], "synthetic: many reallocated and pending sectors, vendor without 187 and 198"),
    ([0, NAN, NAN, 24], "synthetic: vendor reporting 198 but not 197 (unreadable = 198)"),
    ([0, NAN, 0, 50], "synthetic: 198 above 197, as another vendor may report (unreadable = max)"),
    ([8, NAN, NAN, NAN], "synthetic: only reallocated sectors reported"),
    ([NAN, 5, NAN, NAN], "synthetic: only 187 reported"),
    ([1e9, 1e9, 1e9, 1e9], "synthetic: every counter at the top of the manifest range"),
]


def golden_rows(raw_hold: np.ndarray, y_hold: np.ndarray, p_hold: np.ndarray):
    """Deterministic selection of holdout drives (failures and healthy at score quantiles), plus the same drives with
    187/188/198 blank, plus synthetic cases. Returns (rows, notes)."""
    rows: list[list[float]] = []
    notes: list[str] = []
    order = np.argsort(p_hold, kind="stable")

    def distinct(idx):
        """First drive of every distinct input vector, in increasing predicted risk (NaN-safe comparison)."""
        seen, out = set(), []
        for i in idx:
            key = tuple(json_rows(raw_hold[i:i + 1])[0])
            if key not in seen:
                seen.add(key)
                out.append(i)
        return out

    fail = distinct([i for i in order if y_hold[i] == 1])
    ok = distinct([i for i in order if y_hold[i] == 0])
    picked_fail = []
    for q in (0.0, 0.25, 0.5, 0.75, 0.9, 1.0):
        i = fail[min(int(q * (len(fail) - 1)), len(fail) - 1)]
        if i not in picked_fail:
            picked_fail.append(i)
            rows.append(raw_hold[i].tolist())
            notes.append(f"holdout drive, failed, {int(q * 100)}th percentile of predicted risk among failures' distinct input rows")
    picked_ok = []
    for q in (0.0, 0.5, 0.9, 0.99, 1.0):
        i = ok[min(int(q * (len(ok) - 1)), len(ok) - 1)]
        if i not in picked_ok:
            picked_ok.append(i)
            rows.append(raw_hold[i].tolist())
            notes.append(f"holdout drive, healthy, {q * 100:g}th percentile of predicted risk among healthy drives' distinct input rows")
    for i in picked_fail[-3:] + picked_ok[-2:]:
        r = raw_hold[i].tolist()
        r[1] = NAN
        r[3] = NAN
        rows.append(r)
        notes.append(f"holdout drive ({'failed' if y_hold[i] else 'healthy'}) with 187 and 198 not reported (null)")
    for r, n in EDGE_CASES:
        rows.append([float(v) for v in r])
        notes.append(n)
    return rows, notes


# --------------------------------------------------------------------------------------
# Output helpers
# --------------------------------------------------------------------------------------


def manifest_features(baseline: dict) -> list:
    return [
        {**{k: f[k] for k in ("name", "signal", "column", "unit")}, "range": COUNT_RANGE, "baseline": baseline[f["name"]],
         "optional": True, "description": f["description"]}
        for f in INPUTS
    ]


PREPROCESSING = (
    "Feed the raw SMART values of one disk as one float32 row of X, in this order: smart_5_raw, smart_187_raw, "
    "smart_197_raw, smart_198_raw (the attributes' raw values, not the normalised 1-253 values); NaN for an attribute "
    "the disk does not report. No scaling. The graph derives, in float32: unreadable_sectors = max(smart_197_raw, "
    "smart_198_raw) ignoring a NaN operand; sector_damage = (1 + smart_5_raw) * (1 + unreadable_sectors) ignoring a NaN "
    "factor. Reallocated sectors, reported uncorrectable errors, unreadable sectors and sector damage go into a "
    "gradient-boosted tree ensemble (monotonic increasing in each; a NaN follows the branch learned for missing values) "
    "whose summed score (logit) passes through a sigmoid to give probability."
)


def write_model_dir(out_dir, model, name, description, meaning, threshold, baseline, training, metrics):
    os.makedirs(out_dir, exist_ok=True)
    model_path = os.path.join(out_dir, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    manifest = {
        "schemaVersion": 1,
        "name": name,
        "version": VERSION,
        "task": "classification",
        "description": description,
        "file": "model.onnx",
        "sha256": sha256(model_path),
        "inputs": {"tensor": "X", "dtype": "float32", "features": manifest_features(baseline)},
        "outputs": {"tensor": "probability", "kind": "probability", "meaning": meaning, "threshold": threshold},
        "preprocessing": PREPROCESSING,
        "label": {"column": LABEL_COLUMN, "positive": 1},
        "training": training,
        "metrics": metrics,
    }
    with open(os.path.join(out_dir, "manifest.json"), "w") as f:
        f.write(dump_json(manifest) + "\n")
    return model_path, manifest


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", default=os.path.join(repo_root, "..", "shared", "data", "smart"),
                    help="folder holding <MODEL>_last_day_raw.csv for both drive models")
    ap.add_argument("--data", nargs=2, metavar=("ST8000DM002_CSV", "ST8000NM0055_CSV"), help="the two files, instead of --data-dir")
    ap.add_argument("--out-dir", default=os.path.join(repo_root, "models", "disk-failure"))
    ap.add_argument("--split-dir", default=os.path.join(repo_root, "build", "disk-failure"))
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8), help="parallel CV fits")
    ap.add_argument("--skip-node-parity", action="store_true", help="do not run the onnxruntime-node parity check")
    ap.add_argument("--extra-labels", action="append", default=[], metavar="FILE",
                    help="rows from `forewarn central export-labels --model disk-failure` (this Backblaze header): appended to "
                    "the train part only, after the split, so that the holdout stays the model card's (repeatable)")
    args = ap.parse_args(argv)
    t0 = time.time()
    if not sklearn.__version__.startswith("1.2."):
        print(f"[warn] scikit-learn {sklearn.__version__}: the export reads HistGradientBoosting's private _predictors, "
              "checked against 1.2; the parity checks below must pass", file=sys.stderr)

    files = args.data or [os.path.join(args.data_dir, f"{m}_last_day_raw.csv") for m in DRIVE_MODELS]
    per_model = {m: read_drives([p]) for m, p in zip(DRIVE_MODELS, files)}
    for m, d in per_model.items():
        if set(d.model) != {m}:
            raise SystemExit(f"{m}: file holds other drive models {sorted(set(d.model))}")
        if len(set(d.cells[i][d.col['serial_number']] for i in range(len(d)))) != len(d):
            raise SystemExit(f"{m}: more than one row per drive")
    drives = read_drives(files)
    y_all = drives.y
    print(f"[data] {len(drives)} drives, {y_all.sum()} failures: " +
          ", ".join(f"{m} {len(d)} ({d.y.sum()} failures)" for m, d in per_model.items()))

    # ---- 1. split ------------------------------------------------------------------------
    strat = np.array([DRIVE_MODELS.index(m) for m in drives.model]) * 2 + y_all
    idx_train, idx_hold = train_test_split(np.arange(len(drives)), test_size=HOLDOUT_FRACTION, stratify=strat, random_state=SEED)
    idx_train, idx_hold = np.sort(idx_train), np.sort(idx_hold)
    tr, ho = drives.subset(idx_train), drives.subset(idx_hold)
    os.makedirs(args.split_dir, exist_ok=True)
    tr.write(os.path.join(args.split_dir, "train.csv"))
    ho.write(os.path.join(args.split_dir, "holdout.csv"))
    missing_csv = "holdout_missing_187_188_198.csv"
    ho.write(os.path.join(args.split_dir, missing_csv), blank=MISSING_CHECK_COLUMNS)
    xm_dir = os.path.join(args.split_dir, "cross-model")
    os.makedirs(xm_dir, exist_ok=True)
    for m, d in per_model.items():
        d.write(os.path.join(xm_dir, f"{m}.csv"))
    for extra_path in args.extra_labels:
        tr = read_extra_labels(extra_path, tr)
    split_counts = {
        part: {m: {"drives": int((d.model == m).sum()), "failures": int(d.y[d.model == m].sum())} for m in DRIVE_MODELS}
        for part, d in (("train", tr), ("holdout", ho))
    }
    print(f"[split] train {len(tr)} ({tr.y.sum()} failures), holdout {len(ho)} ({ho.y.sum()} failures): {split_counts}")

    # ---- 2. feature audit (train only) -----------------------------------------------------
    audit = feature_audit(tr)
    print(f"[audit] snapshot dates {audit['snapshotDates']}; 197==198 {audit['smart197EqualsSmart198']}; "
          f"packed 188 values {audit['smart188PackedRawValues']}; any of 5/187/197/198 nonzero {audit['anyOf5_187_197_198Nonzero']}")
    for c, r in audit["attributes"].items():
        print(f"    {c:14s} nonzero healthy {r['nonzeroHealthy']:.4f} failed {r['nonzeroFailed']:.4f}  "
              f"ROC-AUC alone {r['rocAucAlone']:.3f} (Q4 failures only {r['rocAucAloneQ4FailuresOnly']:.3f})")

    # ---- 3. CV model selection on train only -----------------------------------------------
    raw_tr_all = {c: tr.smart[c].astype(np.float32).astype(np.float64) for c in tr.smart}
    y_tr = tr.y
    strat_tr = strat[idx_train]
    splits = list(RepeatedStratifiedKFold(n_splits=CV_FOLDS, n_repeats=CV_REPEATS, random_state=SEED).split(np.zeros(len(y_tr)), strat_tr))
    grid = [dict(max_iter=i, learning_rate=lr, max_depth=d, min_samples_leaf=msl)
            for i, lr, d, msl in iproduct(GRID_MAX_ITER, GRID_LEARNING_RATE, GRID_MAX_DEPTH, GRID_MIN_SAMPLES_LEAF)]
    results = cv_oof(raw_tr_all, y_tr, splits, grid, args.jobs)
    table = []
    for params, o in zip(grid, results):
        s = summarise_oof(y_tr, o)
        table.append({**params, **s, "criterion": round((s["pAuc1pct"] + s["pAuc1pctMissing"]) / 2, 4),
                      "size": params["max_iter"] * 2 ** params["max_depth"]})
    order = sorted(range(len(table)), key=lambda k: (-table[k]["criterion"], table[k]["size"], -table[k]["prAuc"]))
    best_k = order[0]
    best = grid[best_k]
    print(f"[cv] {len(grid)} configurations in {time.time() - t0:.0f}s; top 5 by mean partial ROC-AUC (FPR <= 1%):")
    for k in order[:5]:
        print("   ", table[k])
    thr = choose_threshold([y_tr] * CV_REPEATS, results[best_k]["oof"])
    oof = results[best_k]
    cv = {
        "scheme": f"repeated stratified {CV_FOLDS}-fold x {CV_REPEATS} (seed {SEED}, strata drive model x failure) on the train part; "
                  "augmentation inside the training folds only; pooled out-of-fold predictions",
        "selection": "hyperparameters maximising the mean of the standardised partial ROC-AUC up to 1% FPR, as recorded and with "
                     "187/188/198 blank (ties: smaller model); threshold = smallest multiple of 0.001 whose pooled out-of-fold FPR "
                     "(both repeats) is <= 1%",
        "threshold": thr,
        "asRecorded": [report(y_tr, p, thr) for p in oof["oof"]],
        "missing187_188_198": [report(y_tr, p, thr) for p in oof["oofMissing"]],
        "grid": {"max_iter": GRID_MAX_ITER, "learning_rate": GRID_LEARNING_RATE, "max_depth": GRID_MAX_DEPTH,
                 "min_samples_leaf": GRID_MIN_SAMPLES_LEAF},
        "top5": [table[k] for k in order[:5]],
    }
    print(f"[cv] chosen {best}, threshold {thr}")
    for name in ("asRecorded", "missing187_188_198"):
        for r, rep in enumerate(cv[name]):
            print(f"    {name} repeat {r + 1}: {rep}")

    # ---- 3b. feature-set ablation at the chosen hyperparameters (train only, reported) ---------
    abl_res = cv_oof(raw_tr_all, y_tr, splits, [best] * len(ABLATIONS), args.jobs, [o for _, o in ABLATIONS])
    ablation = []
    for (label, opts), o in zip(ABLATIONS, abl_res):
        s = summarise_oof(y_tr, o)
        ablation.append({"variant": label, **s})
        print(f"[ablation] {label:62s} {s}")

    # ---- 4. refit on the whole train part ---------------------------------------------------
    clf = fit(raw_tr_all, slice(None), y_tr, best, SEED)
    raw_tr = tr.raw()
    hyper = {**best, **FIXED_PARAMS, "monotonic_cst": MONOTONIC}
    n_nodes = sum(len(p.nodes) for p in hgb_predictors(clf))

    # ---- 5. export + parity -----------------------------------------------------------------
    raw_ho = ho.raw()
    raw_ho_missing = raw_ho.copy()
    raw_ho_missing[:, [INPUT_COLUMNS.index(c) for c in MISSING_CHECK_COLUMNS if c in INPUT_COLUMNS]] = np.nan
    rng = np.random.default_rng(SEED)
    raw_ho_random = raw_ho.copy()
    raw_ho_random[rng.random(raw_ho.shape) < 0.3] = np.nan
    y_ho = ho.y
    model = build_onnx(clf, "disk-failure", "Forewarn disk-failure model (Backblaze Drive Stats SMART). Output probability = P(drive failing).")
    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, "model.onnx")
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    parity = {"tolerance": PARITY_TOLERANCE, "sets": {}}
    parity["predictorsVsDecisionFunctionMaxAbsLogitDiff"] = max(
        hgb_pin(clf, f, clf.decision_function(f)) for f in map(tree_features, (raw_tr, raw_ho, raw_ho_missing, raw_ho_random)))
    print(f"[parity] clf._predictors re-evaluated vs decision_function: max |dlogit| = {parity['predictorsVsDecisionFunctionMaxAbsLogitDiff']:.3g}")
    views = {"holdout": raw_ho, "holdoutMissing187_188_198": raw_ho_missing, "holdoutRandom30pctCellsMissing": raw_ho_random}
    ort_scores = {}
    for vname, raw in views.items():
        p_sk = clf.predict_proba(tree_features(raw))[:, 1]
        p_np, _ = numpy_onnx_predict(model, raw)
        d_np = float(np.max(np.abs(p_np - p_sk)))
        entry = {"rows": int(len(raw)), "rowsWithNaN": int(np.isnan(raw).any(axis=1).sum()), "numpyMaxAbsDiff": d_np}
        if d_np > PARITY_TOLERANCE:
            raise SystemExit(f"parity check (numpy, {vname}) failed: {d_np}")
        if not args.skip_node_parity:
            res = onnxruntime_node_predict(model_path, raw, repo_root, os.path.join(args.split_dir, "parity"))
            if res is None:
                print("[parity] node / onnxruntime-node not found: onnxruntime check skipped", file=sys.stderr)
            else:
                p_ort, logit_ort = res
                ort_scores[vname] = p_ort
                diff = float(np.max(np.abs(p_ort - p_sk)))
                dlogit = float(np.max(np.abs(logit_ort - clf.decision_function(tree_features(raw)))))
                flips = int(np.count_nonzero((p_ort >= thr) != (p_sk >= thr)))
                entry.update({"onnxruntimeMaxAbsDiff": diff, "onnxruntimeMaxAbsLogitDiff": dlogit, "decisionFlips": flips})
                if diff > PARITY_TOLERANCE or flips:
                    raise SystemExit(f"parity check (onnxruntime-node, {vname}) failed: {entry}")
        parity["sets"][vname] = entry
        print(f"[parity] {vname}: {entry}")

    # ---- 6. holdout evaluation (reported, never used for choices) -----------------------------
    # Scored by the exported model through onnxruntime-node when available (float32, what the agent computes).
    def holdout_scores(vname, raw):
        if vname in ort_scores:
            return ort_scores[vname], "onnxruntime-node (model.onnx)"
        return numpy_onnx_predict(model, raw)[0].astype(np.float32).astype(np.float64), "numpy re-implementation of model.onnx"
    p_ho, source = holdout_scores("holdout", raw_ho)
    p_ho_m, _ = holdout_scores("holdoutMissing187_188_198", raw_ho_missing)
    hold = report(y_ho, p_ho, thr)
    hold["perDriveModel"] = {m: report(y_ho[ho.model == m], p_ho[ho.model == m], thr) for m in DRIVE_MODELS}
    hold_missing = report(y_ho, p_ho_m, thr)
    print(f"[holdout] {hold}")
    print(f"[holdout, 187/188/198 blank] {hold_missing}")
    p_tr_fit = clf.predict_proba(tree_features(raw_tr))[:, 1]
    train_fit = at_threshold(y_tr, p_tr_fit, thr)

    # ---- 7. cross-model checks -----------------------------------------------------------------
    cross = {}
    for a_name, b_name in ((DRIVE_MODELS[1], DRIVE_MODELS[0]), (DRIVE_MODELS[0], DRIVE_MODELS[1])):
        A, B = per_model[a_name], per_model[b_name]
        raw_a = {c: A.smart[c].astype(np.float32).astype(np.float64) for c in A.smart}
        a_splits = list(StratifiedKFold(n_splits=CV_FOLDS, shuffle=True, random_state=SEED).split(np.zeros(len(A)), A.y))
        a_oof = cv_oof(raw_a, A.y, a_splits, [best], args.jobs)[0]
        a_thr = choose_threshold([A.y], a_oof["oof"])
        clf_a = fit(raw_a, slice(None), A.y, best, SEED)
        rb = B.raw()
        rb_m = rb.copy()
        rb_m[:, [INPUT_COLUMNS.index(c) for c in MISSING_CHECK_COLUMNS if c in INPUT_COLUMNS]] = np.nan
        xm_name = f"disk-failure-trained-on-{a_name.lower()}"
        xm_model = build_onnx(clf_a, xm_name, f"Cross-model check: disk-failure recipe trained on {a_name} only.")
        xm_path, _ = write_model_dir(
            os.path.join(xm_dir, "models", xm_name), xm_model, xm_name,
            f"Cross-model check only (not for deployment): the disk-failure recipe trained on all {a_name} drives.",
            "Probability (0..1) that the drive is failing; threshold from 5-fold out-of-fold predictions on the training drive model.",
            a_thr, {f["name"]: 0 for f in INPUTS},
            {"data": f"Backblaze Drive Stats, {a_name} last observed day in 2019 (all {len(A)} drives)", "hyperparameters": hyper,
             "recipe": "/usr/bin/python3 models/disk-failure/train.py"},
            {})
        p_b = numpy_onnx_predict(xm_model, rb)[0].astype(np.float32).astype(np.float64)
        p_b_m = numpy_onnx_predict(xm_model, rb_m)[0].astype(np.float32).astype(np.float64)
        src = "numpy re-implementation of the exported model"
        if not args.skip_node_parity:
            r1 = onnxruntime_node_predict(xm_path, rb, repo_root, os.path.join(args.split_dir, "parity"))
            r2 = onnxruntime_node_predict(xm_path, rb_m, repo_root, os.path.join(args.split_dir, "parity"))
            if r1 is not None:
                sk_b = clf_a.predict_proba(tree_features(rb))[:, 1]
                sk_b_m = clf_a.predict_proba(tree_features(rb_m))[:, 1]
                d = max(float(np.max(np.abs(r1[0] - sk_b))), float(np.max(np.abs(r2[0] - sk_b_m))))
                if d > PARITY_TOLERANCE:
                    raise SystemExit(f"parity check (cross-model {a_name}) failed: {d}")
                p_b, p_b_m, src = r1[0], r2[0], "onnxruntime-node (exported cross-model model)"
        key = f"train{a_name}_test{b_name}"
        cross[key] = {
            "train": {"driveModel": a_name, "drives": int(len(A)), "failures": int(A.y.sum()),
                      "thresholdFromOutOfFold": a_thr, "outOfFold": report(A.y, a_oof["oof"][0], a_thr)},
            "test": {"driveModel": b_name, "asRecorded": report(B.y, p_b, a_thr), "missing187_188_198": report(B.y, p_b_m, a_thr)},
            "scores": src,
            "modelDir": os.path.relpath(os.path.dirname(xm_path), repo_root),
        }
        print(f"[cross-model] train {a_name} -> test {b_name}: threshold {a_thr}; {cross[key]['test']}")

    # ---- golden rows --------------------------------------------------------------------------
    p_ho_sk = clf.predict_proba(tree_features(raw_ho))[:, 1]
    g_rows, g_notes = golden_rows(raw_ho, y_ho, p_ho_sk)
    g_raw = np.array(g_rows, dtype=np.float64)
    g_p = clf.predict_proba(tree_features(g_raw))[:, 1]
    gp_np, _ = numpy_onnx_predict(model, g_raw)
    assert float(np.max(np.abs(gp_np - g_p))) <= PARITY_TOLERANCE
    if not args.skip_node_parity:
        res = onnxruntime_node_predict(model_path, g_raw, repo_root, os.path.join(args.split_dir, "parity"))
        if res is not None:
            gd = float(np.max(np.abs(res[0] - g_p)))
            parity["sets"]["golden"] = {"rows": int(len(g_raw)), "rowsWithNaN": int(np.isnan(g_raw).any(axis=1).sum()),
                                        "onnxruntimeMaxAbsDiff": gd}
            print(f"[parity] golden rows: max |dp| = {gd:.3g}")
            if gd > PARITY_TOLERANCE:
                raise SystemExit("parity check (golden rows) failed")
    golden = {
        "model": "disk-failure",
        "description": "Raw input rows (X columns: smart_5_raw, smart_187_raw, smart_197_raw, smart_198_raw) and scikit-learn "
                       "predict_proba probabilities; model.onnx must match within tolerance. null = attribute not reported: "
                       "feed it as NaN (JSON has no NaN).",
        "columns": INPUT_COLUMNS,
        "threshold": thr,
        "inputs": json_rows(g_raw),
        "probabilities": [float(p) for p in g_p],
        "tolerance": PARITY_TOLERANCE,
        "notes": g_notes,
    }
    with open(os.path.join(args.out_dir, "golden.json"), "w") as f:
        f.write(dump_json(golden) + "\n")

    # ---- manifest ------------------------------------------------------------------------------
    baseline = {f["name"]: float(np.nanmedian(raw_tr[:, i])) for i, f in enumerate(INPUTS)}
    baseline = {k: int(v) if float(v).is_integer() else v for k, v in baseline.items()}
    training = {
        "data": "Backblaze Drive Stats (https://www.backblaze.com/cloud-storage/resources/hard-drive-test-data): the last observed "
                "day in 2019 of every ST8000DM002 and ST8000NM0055 drive (Seagate 8 TB), one row per drive, failure = 1 on the "
                "drive's failure day",
        "attribution": "Backblaze Drive Stats",
        "rows": int(len(tr)),
        "split": f"{len(drives)} drives split stratified on (drive model, failure) into train {len(tr)} / holdout {len(ho)} "
                 f"(sklearn train_test_split, test_size {HOLDOUT_FRACTION}, seed {SEED}); written to build/disk-failure/{{train,holdout}}.csv. "
                 "Hyperparameters and threshold chosen by cross-validation on train only; the holdout is used only for the reported metrics.",
        "splitCounts": split_counts,
        "seed": SEED,
        "recipe": "/usr/bin/python3 models/disk-failure/train.py",
        "algorithm": f"scikit-learn HistGradientBoostingClassifier (log-loss, {best['max_iter']} trees, depth <= {best['max_depth']}, "
                     f"monotonic increasing in every feature, native NaN handling) exported as ONNX ai.onnx.ml TreeEnsembleRegressor "
                     f"(nodes_missing_value_tracks_true) + Sigmoid ({n_nodes} nodes)",
        "hyperparameters": hyper,
        "features": FEATURE_NAMES,
        "augmentation": {"copies": 2, "secondCopyBlankProbability": AUGMENT_BLANK,
                         "note": "every training drive as recorded, and once more as a vendor that does not report 187 "
                                 "(198, 5 and 197 also blank at random); inside CV only the training folds are augmented"},
        "software": {"python": sys.version.split()[0], "scikit-learn": sklearn.__version__, "numpy": np.__version__, "onnx": onnx.__version__},
    }
    metrics = {
        "cv": cv,
        "recipe": {
            "source": f"train.py; holdout scored by {source}",
            "holdout": hold,
            "holdoutMissing187_188_198": hold_missing,
            "trainInSample": train_fit,
            "crossModel": cross,
            "parity": parity,
        },
        "ablation": {"scheme": "same CV folds and hyperparameters, train part only; mean over repeats", "variants": ablation},
        "featureAudit": {
            **{k: v for k, v in audit.items() if k != "attributes"},
            "attributes": {c: {k: r[k] for k in ("nonzeroHealthy", "nonzeroFailed", "rocAucAlone", "rocAucAloneQ4FailuresOnly", "note")}
                           for c, r in audit["attributes"].items()},
        },
    }
    model_path, manifest = write_model_dir(
        args.out_dir, model, "disk-failure",
        "Probability that a hard disk is failing now, from four vendor-neutral SMART error counters (reallocated, reported "
        "uncorrectable, pending and offline-uncorrectable sectors). Any of them may be missing.",
        "Probability (0..1) that the disk is failing (on the Backblaze training data: that this is the drive's failure day); raise "
        "an alarm when probability >= threshold, chosen for about 1% false alarms. The graph also outputs the raw score as 'logit' [N,1].",
        thr, baseline, training, metrics,
    )
    with open(os.path.join(args.split_dir, "cv_results.json"), "w") as f:
        json.dump({"table": table, "ablation": ablation, "featureAudit": audit}, f, indent=1)
        f.write("\n")
    print(f"[done] model.onnx {os.path.getsize(model_path)} bytes, {n_nodes} nodes, sha256 {manifest['sha256']}, {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
