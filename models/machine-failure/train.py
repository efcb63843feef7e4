#!/usr/bin/python3
"""Training recipe for the Forewarn `machine-failure` model (AI4I 2020).

Run from the repository root with Debian's Python (sklearn 1.2, onnx 1.12, numpy):

    /usr/bin/python3 models/machine-failure/train.py \
        [--data ../shared/data/ai4i/ai4i2020_train.csv] \
        [--out-dir models/machine-failure] [--split-dir build/machine-failure]

What it does, in order:

1. Reads the AI4I 2020 CSV (never copied into the repository), splits it
   stratified on `Machine failure` into train (80%) / holdout (20%) with a
   fixed seed and writes both, byte-for-byte in the original column format, to
   `<split-dir>/{train,holdout}.csv`.
2. Computes the model features in float32 exactly as the ONNX graph does
   (raw readings + temperature difference, mechanical power, wear x torque
   strain, strain relative to the product type's overstrain limit).
3. Chooses GradientBoostingClassifier hyperparameters and the operating
   threshold by repeated stratified K-fold cross-validation on the train part
   only (maximising out-of-fold F1). The holdout is not looked at.
4. Refits on the whole train part, exports `model.onnx` (ai.onnx.ml
   TreeEnsembleRegressor + Sigmoid) built by hand with onnx.helper, and checks
   that ONNX and sklearn probabilities agree within 1e-5 on every holdout row:
   with a numpy re-implementation of the exported graph and, when `node` and
   onnxruntime-node are available, with onnxruntime itself.
5. Evaluates on the holdout and writes `golden.json`, `manifest.json` and the
   CV details to `<split-dir>/cv_results.json`.

Everything is seeded; rerunning produces an identical model.onnx.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import sys
import time
from itertools import product as iproduct

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from sklearn.ensemble import GradientBoostingClassifier
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, precision_score, recall_score
from sklearn.model_selection import RepeatedStratifiedKFold, train_test_split

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from recipe_common import dump_json, float32_floor, onnx_tree_ensemble_raw, onnxruntime_node_predict, sha256  # noqa: E402

try:  # joblib ships with scikit-learn
    from joblib import Parallel, delayed
except ImportError:  # pragma: no cover
    from sklearn.utils._joblib import Parallel, delayed  # type: ignore

# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------

SEED = 42
HOLDOUT_FRACTION = 0.2
CV_FOLDS = 5
CV_REPEATS = 2
PARITY_TOLERANCE = 1e-5

# Hyperparameter grid (n_estimators is evaluated through staged predictions).
GRID_MAX_DEPTH = [2, 3, 4]
GRID_LEARNING_RATE = [0.05, 0.1, 0.2]
GRID_SUBSAMPLE = [1.0, 0.8]
GRID_N_ESTIMATORS = [50, 100, 150, 200, 300]
FIXED_PARAMS = {"min_samples_leaf": 1, "max_features": None}
# Candidate operating thresholds (alarm when probability >= threshold).
THRESHOLDS = np.round(np.arange(0.05, 0.951, 0.01), 2)

TYPE_CATEGORIES = ["L", "M", "H"]
# Overstrain (OSF) limits of the AI4I generator, in min*Nm, indexed like TYPE_CATEGORIES.
STRAIN_LIMITS = np.array([11000.0, 12000.0, 13000.0], dtype=np.float32)
# 2*pi/60: rpm -> rad/s. Stored as float32, the graph multiplies by the same constant.
RPM_TO_RAD_S = np.float32(2.0 * math.pi / 60.0)

RAW_COLUMNS = [
    ("product_type", "Type"),
    ("air_temperature", "Air temperature [K]"),
    ("process_temperature", "Process temperature [K]"),
    ("rotational_speed", "Rotational speed [rpm]"),
    ("torque", "Torque [Nm]"),
    ("tool_wear", "Tool wear [min]"),
]
LABEL_COLUMN = "Machine failure"
MODE_COLUMNS = ["TWF", "HDF", "PWF", "OSF", "RNF"]
MODE_NAMES = {
    "TWF": "tool wear failure",
    "HDF": "heat dissipation failure",
    "PWF": "power failure",
    "OSF": "overstrain failure",
    "RNF": "random failure",
}
FEATURE_NAMES = [
    "product_type",
    "air_temperature",
    "process_temperature",
    "rotational_speed",
    "torque",
    "tool_wear",
    "temperature_difference",
    "mechanical_power",
    "strain",
    "strain_ratio",
]

# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


def read_csv(path: str):
    """Returns (header line, list of raw row lines, list of parsed dict rows)."""
    with open(path, "r", newline="", encoding="utf-8") as f:
        text = f.read()
    lines = text.splitlines()
    header = lines[0]
    body = [ln for ln in lines[1:] if ln.strip()]
    parsed = list(csv.DictReader(io.StringIO("\n".join([header] + body))))
    assert len(parsed) == len(body)
    return header, body, parsed


def read_extra_labels(path: str):
    """Labelled rows exported by `forewarn central export-labels` (same columns as AI4I; provenance in PATH.json)."""
    _, _, extra = read_csv(path)
    missing = [c for _, c in RAW_COLUMNS if extra and c not in extra[0]] + [c for c in [LABEL_COLUMN] + MODE_COLUMNS if extra and c not in extra[0]]
    if missing:
        raise SystemExit(f"{path}: missing columns {missing}")
    print(f"[extra] {path}: {len(extra)} rows ({sum(int(r[LABEL_COLUMN]) for r in extra)} labelled failures) added to the train part")
    return extra


def raw_inputs(rows) -> np.ndarray:
    """Raw model inputs as float64 (what a JSON/JS client would hold before float32)."""
    out = np.empty((len(rows), 6), dtype=np.float64)
    for i, r in enumerate(rows):
        t = r["Type"].strip()
        if t not in TYPE_CATEGORIES:
            raise ValueError(f"unknown product type {t!r}")
        out[i, 0] = TYPE_CATEGORIES.index(t)
        for j, (_, col) in enumerate(RAW_COLUMNS[1:], start=1):
            out[i, j] = float(r[col])
    return out


def labels(rows, col=LABEL_COLUMN) -> np.ndarray:
    return np.array([int(r[col]) for r in rows], dtype=np.int64)


def features(raw: np.ndarray) -> np.ndarray:
    """Model features in float32, mirroring the ONNX graph operation by operation.

    raw: [N, 6] (float64 or float32) - cast to float32 first, as the graph input is float32.
    """
    x = np.asarray(raw, dtype=np.float64).astype(np.float32)
    ptype, air, proc, rpm, torque, wear = (x[:, i : i + 1] for i in range(6))
    # Clip + Cast(int64) + Gather, like the graph (Cast truncates toward zero).
    idx = np.clip(ptype, np.float32(0), np.float32(2)).astype(np.int64)[:, 0]
    limit = STRAIN_LIMITS[idx].reshape(-1, 1)
    dtemp = (proc - air).astype(np.float32)  # K
    power = ((torque * rpm).astype(np.float32) * RPM_TO_RAD_S).astype(np.float32)  # W
    strain = (wear * torque).astype(np.float32)  # min*Nm
    ratio = (strain / limit).astype(np.float32)  # 1.0 == OSF limit of the type
    f = np.concatenate([x, dtemp, power, strain, ratio], axis=1).astype(np.float32)
    assert f.dtype == np.float32 and f.shape[1] == len(FEATURE_NAMES)
    return f


# --------------------------------------------------------------------------------------
# Metrics
# --------------------------------------------------------------------------------------


def classification_metrics(y, p, thr) -> dict:
    pred = (p >= thr).astype(np.int64)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    return {
        "f1": round(float(f1_score(y, pred, zero_division=0)), 4),
        "precision": round(float(precision_score(y, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y, pred, zero_division=0)), 4),
        "prAuc": round(float(average_precision_score(y, p)), 4),
        "confusionMatrix": {"tp": int(tp), "fp": int(fp), "tn": int(tn), "fn": int(fn)},
        "rows": int(len(y)),
        "positives": int(y.sum()),
    }


def f1_curve(y, p) -> np.ndarray:
    """F1 at every candidate threshold (vectorised)."""
    pos = y == 1
    out = np.empty(len(THRESHOLDS))
    for k, t in enumerate(THRESHOLDS):
        pred = p >= t
        tp = np.count_nonzero(pred & pos)
        denom = np.count_nonzero(pred) + np.count_nonzero(pos)
        out[k] = 2.0 * tp / denom if denom else 0.0
    return out


def per_mode_recall(y, pred, modes) -> dict:
    """Recall per failure-mode flag (rows carrying the flag, whatever their label)."""
    out = {}
    for m in MODE_COLUMNS:
        sel = modes[m] == 1
        out[m] = {
            "mode": MODE_NAMES[m],
            "rows": int(sel.sum()),
            "labelledFailure": int((sel & (y == 1)).sum()),
            "detected": int(np.count_nonzero(pred & sel)),
            "recall": round(float(np.count_nonzero(pred & sel) / sel.sum()), 4) if sel.sum() else None,
        }
    none_sel = (y == 1) & (sum(modes.values()) == 0)
    out["none"] = {
        "mode": "labelled failure without any mode flag",
        "rows": int(none_sel.sum()),
        "labelledFailure": int(none_sel.sum()),
        "detected": int(np.count_nonzero(pred & none_sel)),
        "recall": round(float(np.count_nonzero(pred & none_sel) / none_sel.sum()), 4) if none_sel.sum() else None,
    }
    return out


def rule_mode_ceiling(y, modes) -> dict:
    """How many labelled failures carry a deterministic-rule mode flag (HDF, PWF, OSF).

    TWF (random wear in 200-240 min), RNF and unflagged failures are essentially unpredictable
    from one reading, so this bounds recall (and F1 with zero false positives)."""
    det = (y == 1) & ((modes["HDF"] == 1) | (modes["PWF"] == 1) | (modes["OSF"] == 1))
    n, k = int(y.sum()), int(det.sum())
    return {
        "failures": n,
        "failuresWithHdfPwfOsfFlag": k,
        "recallCeiling": round(k / n, 4),
        "f1CeilingWithoutFalsePositives": round(2 * k / (k + n), 4),
    }


# --------------------------------------------------------------------------------------
# Cross-validation
# --------------------------------------------------------------------------------------


def _fit_fold(X, y, tr, va, depth, lr, subsample):
    clf = GradientBoostingClassifier(
        n_estimators=max(GRID_N_ESTIMATORS),
        max_depth=depth,
        learning_rate=lr,
        subsample=subsample,
        random_state=SEED,
        **FIXED_PARAMS,
    )
    clf.fit(X[tr], y[tr])
    stages = {}
    for i, proba in enumerate(clf.staged_predict_proba(X[va]), start=1):
        if i in GRID_N_ESTIMATORS:
            stages[i] = proba[:, 1]
    return stages


def cross_validate(X, y, n_jobs):
    rskf = RepeatedStratifiedKFold(n_splits=CV_FOLDS, n_repeats=CV_REPEATS, random_state=SEED)
    splits = list(rskf.split(X, y))
    configs = list(iproduct(GRID_MAX_DEPTH, GRID_LEARNING_RATE, GRID_SUBSAMPLE))
    jobs = [(c, s) for c in configs for s in range(len(splits))]
    results = Parallel(n_jobs=n_jobs)(
        delayed(_fit_fold)(X, y, splits[s][0], splits[s][1], *c) for c, s in jobs
    )
    # oof[(depth, lr, subsample, n)][repeat] -> out-of-fold probabilities
    oof: dict = {}
    for (c, s), stages in zip(jobs, results):
        rep = s // CV_FOLDS
        va = splits[s][1]
        for n, p in stages.items():
            key = (*c, n)
            arr = oof.setdefault(key, [np.full(len(y), np.nan) for _ in range(CV_REPEATS)])
            arr[rep][va] = p
    table = []
    for key, reps in oof.items():
        curves = np.mean([f1_curve(y, p) for p in reps], axis=0)
        best = curves.max()
        # The threshold: median of the thresholds reaching the best mean OOF F1 (a plateau).
        tied = THRESHOLDS[np.isclose(curves, best, rtol=0, atol=1e-12)]
        thr = float(np.round(np.median(tied), 2))
        # Use a threshold that itself reaches the maximum.
        thr = float(tied[np.argmin(np.abs(tied - thr))])
        aps = [average_precision_score(y, p) for p in reps]
        depth, lr, sub, n = key
        table.append(
            {
                "max_depth": depth,
                "learning_rate": lr,
                "subsample": sub,
                "n_estimators": n,
                "threshold": thr,
                "f1": float(best),
                "pr_auc": float(np.mean(aps)),
                "size": n * (2 ** depth),
            }
        )
    # Best mean OOF F1; ties (within 1e-9) go to the smaller model, then higher PR-AUC.
    table.sort(key=lambda r: (-round(r["f1"], 9), r["size"], -r["pr_auc"]))
    best = table[0]
    key = (best["max_depth"], best["learning_rate"], best["subsample"], best["n_estimators"])
    return table, best, oof[key], splits


def cv_summary(y, reps, splits, thr, modes) -> dict:
    per_repeat = [classification_metrics(y, p, thr) for p in reps]
    fold_f1 = []
    for s, (_, va) in enumerate(splits):
        p = reps[s // CV_FOLDS][va]
        fold_f1.append(f1_score(y[va], (p >= thr).astype(int), zero_division=0))
    cm = {k: int(sum(m["confusionMatrix"][k] for m in per_repeat)) for k in ("tp", "fp", "tn", "fn")}
    return {
        "scheme": f"repeated stratified {CV_FOLDS}-fold x {CV_REPEATS} (seed {SEED}) on the train part, pooled out-of-fold predictions",
        "folds": CV_FOLDS,
        "repeats": CV_REPEATS,
        "threshold": thr,
        "f1": round(float(np.mean([m["f1"] for m in per_repeat])), 4),
        "precision": round(float(np.mean([m["precision"] for m in per_repeat])), 4),
        "recall": round(float(np.mean([m["recall"] for m in per_repeat])), 4),
        "prAuc": round(float(np.mean([m["prAuc"] for m in per_repeat])), 4),
        "foldF1Mean": round(float(np.mean(fold_f1)), 4),
        "foldF1Std": round(float(np.std(fold_f1)), 4),
        "confusionMatrixSummedOverRepeats": cm,
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "perModeRecallRepeat1": per_mode_recall(y, reps[0] >= thr, modes),
        "ruleModeCeiling": rule_mode_ceiling(y, modes),
    }


# --------------------------------------------------------------------------------------
# ONNX export
# --------------------------------------------------------------------------------------


def base_score(clf: GradientBoostingClassifier) -> float:
    prior = float(clf.init_.class_prior_[1])
    return math.log(prior / (1.0 - prior))


def tree_nodes(clf: GradientBoostingClassifier):
    """Flattened TreeEnsembleRegressor attributes."""
    a = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true", "nodes_hitrates",
        "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}
    lr = clf.learning_rate
    for t_id, est in enumerate(clf.estimators_[:, 0]):
        tree = est.tree_
        for n in range(tree.node_count):
            left, right = int(tree.children_left[n]), int(tree.children_right[n])
            a["nodes_treeids"].append(t_id)
            a["nodes_nodeids"].append(n)
            a["nodes_hitrates"].append(1.0)
            a["nodes_missing_value_tracks_true"].append(0)
            if left == -1:  # leaf
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["target_treeids"].append(t_id)
                a["target_nodeids"].append(n)
                a["target_ids"].append(0)
                a["target_weights"].append(float(np.float32(lr * tree.value[n, 0, 0])))
            else:
                a["nodes_featureids"].append(int(tree.feature[n]))
                a["nodes_values"].append(float(float32_floor(float(tree.threshold[n]))))
                a["nodes_modes"].append("BRANCH_LEQ")
                a["nodes_truenodeids"].append(left)  # sklearn: x <= threshold goes left
                a["nodes_falsenodeids"].append(right)
    return a


def build_onnx(clf: GradientBoostingClassifier, version: str) -> onnx.ModelProto:
    F = TensorProto.FLOAT
    inits = [
        numpy_helper.from_array(np.ones(6, dtype=np.int64), "split_sizes"),
        numpy_helper.from_array(np.array(0.0, dtype=np.float32), "type_min"),
        numpy_helper.from_array(np.array(2.0, dtype=np.float32), "type_max"),
        numpy_helper.from_array(STRAIN_LIMITS, "strain_limits"),
        numpy_helper.from_array(np.array(RPM_TO_RAD_S, dtype=np.float32), "rpm_to_rad_s"),
    ]
    raw = ["product_type", "air_temperature", "process_temperature", "rotational_speed", "torque", "tool_wear"]
    a = tree_nodes(clf)
    nodes = [
        helper.make_node("Split", ["X", "split_sizes"], raw, axis=1, name="split_inputs"),
        # strain limit of the product type: Gather(limits, int(clip(type, 0, 2)))
        helper.make_node("Clip", ["product_type", "type_min", "type_max"], ["type_clipped"], name="clip_type"),
        helper.make_node("Cast", ["type_clipped"], ["type_index"], to=TensorProto.INT64, name="type_index"),
        helper.make_node("Gather", ["strain_limits", "type_index"], ["strain_limit"], axis=0, name="strain_limit"),
        # derived features (same operation order as features() in train.py)
        helper.make_node("Sub", ["process_temperature", "air_temperature"], ["temperature_difference"], name="temperature_difference"),
        helper.make_node("Mul", ["torque", "rotational_speed"], ["torque_x_rpm"], name="torque_x_rpm"),
        helper.make_node("Mul", ["torque_x_rpm", "rpm_to_rad_s"], ["mechanical_power"], name="mechanical_power"),
        helper.make_node("Mul", ["tool_wear", "torque"], ["strain"], name="strain"),
        helper.make_node("Div", ["strain", "strain_limit"], ["strain_ratio"], name="strain_ratio"),
        helper.make_node("Concat", raw + ["temperature_difference", "mechanical_power", "strain", "strain_ratio"], ["features"], axis=1, name="features"),
        helper.make_node(
            "TreeEnsembleRegressor",
            ["features"],
            ["logit"],
            domain="ai.onnx.ml",
            name="gradient_boosting",
            n_targets=1,
            aggregate_function="SUM",
            post_transform="NONE",
            base_values=[float(np.float32(base_score(clf)))],
            **a,
        ),
        helper.make_node("Sigmoid", ["logit"], ["probability"], name="probability"),
    ]
    graph = helper.make_graph(
        nodes,
        "machine_failure",
        [helper.make_tensor_value_info("X", F, ["N", 6])],
        [helper.make_tensor_value_info("probability", F, ["N", 1]), helper.make_tensor_value_info("logit", F, ["N", 1])],
        initializer=inits,
    )
    graph.doc_string = (
        "X[:, 0..5] = product_type (L=0, M=1, H=2), air_temperature [K], process_temperature [K], "
        "rotational_speed [rpm], torque [Nm], tool_wear [min]. Derived in-graph: temperature_difference [K], "
        "mechanical_power [W], strain [min*Nm], strain_ratio (strain / overstrain limit of the type)."
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", 13), helper.make_opsetid("ai.onnx.ml", 3)],
        producer_name="forewarn-train.py",
        producer_version=version,
        doc_string="Forewarn machine-failure model (AI4I 2020). Output probability = P(machine failure).",
    )
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def numpy_onnx_predict(model: onnx.ModelProto, raw: np.ndarray) -> np.ndarray:
    """Evaluates the exported tree ensemble from the ONNX attributes (float32 thresholds)."""
    return 1.0 / (1.0 + np.exp(-onnx_tree_ensemble_raw(model, features(raw))))


# --------------------------------------------------------------------------------------
# Golden rows
# --------------------------------------------------------------------------------------

# Synthetic edge cases around the generator's rules (type, air, process, rpm, torque, wear).
EDGE_CASES = [
    ([0, 300.0, 308.5, 1370, 45.0, 100], "synthetic: dT 8.5 K < 8.6 and rpm < 1380 (HDF rule)"),
    ([0, 300.0, 308.7, 1370, 45.0, 100], "synthetic: dT 8.7 K, rpm < 1380 (no HDF)"),
    ([1, 300.0, 308.5, 1390, 45.0, 100], "synthetic: dT < 8.6 but rpm >= 1380 (no HDF)"),
    ([2, 298.0, 308.0, 2800, 11.0, 20], "synthetic: power ~3226 W < 3500 W (PWF rule)"),
    ([1, 298.0, 308.0, 1300, 70.0, 20], "synthetic: power ~9529 W > 9000 W (PWF rule)"),
    ([0, 298.0, 308.0, 1500, 40.0, 20], "synthetic: nominal, power ~6283 W"),
    ([0, 298.0, 308.0, 1500, 55.0, 210], "synthetic: strain 11550 > 11000 limit of L (OSF rule)"),
    ([2, 298.0, 308.0, 1500, 55.0, 210], "synthetic: same strain, below 13000 limit of H (no OSF)"),
    ([1, 298.0, 308.0, 1500, 60.0, 205], "synthetic: strain 12300 > 12000 limit of M (OSF rule)"),
    ([0, 298.0, 308.0, 1500, 40.0, 220], "synthetic: tool wear 220 min in the TWF window, otherwise nominal"),
    ([0, 298.0, 308.0, 1500, 40.0, 0], "synthetic: new tool"),
    ([2, 302.0, 311.5, 1600, 38.0, 150], "synthetic: nominal H"),
    ([1, 295.0, 305.5, 2900, 3.5, 250], "synthetic: at the edges of the training range"),
    ([0, 304.5, 313.0, 1168, 76.5, 253], "synthetic: several rules at once, slightly outside the training range"),
    ([3, 298.0, 308.0, 1500, 40.0, 20], "synthetic: out-of-range product type 3 (clipped to H for the strain limit)"),
]


def golden_rows(raw_hold, y_hold, modes_hold, p_hold):
    """Deterministic selection of holdout rows: failures of every mode and nominal rows.

    Returns (rows, notes)."""
    chosen: list[int] = []
    notes: list[str] = []

    def take(i, note):
        chosen.append(int(i))
        notes.append(note)

    for m in MODE_COLUMNS:
        for i in [i for i in np.flatnonzero(modes_hold[m] == 1) if i not in chosen][:2]:
            take(i, f"holdout row, {m} ({MODE_NAMES[m]}), Machine failure={int(y_hold[i])}")
    for i in [i for i in np.flatnonzero((y_hold == 1) & (sum(modes_hold.values()) == 0)) if i not in chosen][:1]:
        take(i, "holdout row, Machine failure=1 without any mode flag")
    order = np.argsort(p_hold, kind="stable")
    neg = [i for i in order if y_hold[i] == 0 and i not in chosen]
    for q in (0.0, 0.25, 0.5, 0.75, 0.9, 0.99, 1.0):
        i = neg[min(int(q * (len(neg) - 1)), len(neg) - 1)]
        if i not in chosen:
            take(i, f"holdout row, no failure, {int(q * 100)}th percentile of predicted risk among non-failures")
    return [raw_hold[i].tolist() for i in chosen], notes


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def padded_range(lo, hi, step, floor_at=None):
    pad = 0.25 * (hi - lo)
    a = math.floor((lo - pad) / step) * step
    b = math.ceil((hi + pad) / step) * step
    if floor_at is not None:
        a = max(a, floor_at)
    return [float(a) if step < 1 else int(a), float(b) if step < 1 else int(b)]


def main(argv=None) -> int:
    here = os.path.dirname(os.path.abspath(__file__))
    repo_root = os.path.abspath(os.path.join(here, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(repo_root, "..", "shared", "data", "ai4i", "ai4i2020_train.csv"))
    ap.add_argument("--out-dir", default=os.path.join(repo_root, "models", "machine-failure"))
    ap.add_argument("--split-dir", default=os.path.join(repo_root, "build", "machine-failure"))
    ap.add_argument("--jobs", type=int, default=min(os.cpu_count() or 1, 8), help="parallel CV fits")
    ap.add_argument("--skip-node-parity", action="store_true", help="do not run the onnxruntime-node parity check")
    ap.add_argument("--split-only", action="store_true", help="write <split-dir>/train.csv and holdout.csv, then stop "
                    "(what `forewarn model eval` needs; no training)")
    ap.add_argument("--extra-labels", action="append", default=[], metavar="FILE",
                    help="rows from `forewarn central export-labels --model machine-failure` (AI4I columns): appended to the "
                    "train part only, after the split, so that the holdout stays the model card's (repeatable)")
    args = ap.parse_args(argv)
    t0 = time.time()
    version = "1.0.0"

    # ---- 1. split -----------------------------------------------------------------
    header, lines, rows = read_csv(args.data)
    y_all = labels(rows)
    idx_train, idx_hold = train_test_split(
        np.arange(len(rows)), test_size=HOLDOUT_FRACTION, stratify=y_all, random_state=SEED
    )
    idx_train, idx_hold = np.sort(idx_train), np.sort(idx_hold)
    os.makedirs(args.split_dir, exist_ok=True)
    for name, idx in (("train", idx_train), ("holdout", idx_hold)):
        with open(os.path.join(args.split_dir, f"{name}.csv"), "w", newline="", encoding="utf-8") as f:
            f.write(header + "\n")
            for i in idx:
                f.write(lines[i] + "\n")
    tr_rows = [rows[i] for i in idx_train]
    ho_rows = [rows[i] for i in idx_hold]
    for extra_path in args.extra_labels:
        tr_rows += read_extra_labels(extra_path)
    raw_tr, raw_ho = raw_inputs(tr_rows), raw_inputs(ho_rows)
    y_tr, y_ho = labels(tr_rows), labels(ho_rows)
    X_tr, X_ho = features(raw_tr), features(raw_ho)
    print(f"[split] {len(rows)} rows -> train {len(tr_rows)} ({y_tr.sum()} failures), holdout {len(ho_rows)} ({y_ho.sum()} failures)")
    if args.split_only:
        return 0

    # ---- 2. CV model selection on train only ---------------------------------------
    table, best, best_oof, splits = cross_validate(X_tr, y_tr, args.jobs)
    thr = best["threshold"]
    print(f"[cv] {len(table)} configurations in {time.time() - t0:.0f}s; top 5 (mean OOF F1 at own best threshold):")
    for r in table[:5]:
        print("   ", {k: (round(v, 4) if isinstance(v, float) else v) for k, v in r.items()})
    modes_tr = {m: labels(tr_rows, m) for m in MODE_COLUMNS}
    cv = cv_summary(y_tr, best_oof, splits, thr, modes_tr)
    print(f"[cv] chosen threshold {thr}: {cv}")

    # ---- 3. refit on the whole train part -------------------------------------------
    hyper = {
        "n_estimators": best["n_estimators"],
        "max_depth": best["max_depth"],
        "learning_rate": best["learning_rate"],
        "subsample": best["subsample"],
        **FIXED_PARAMS,
        "loss": "log_loss",
        "random_state": SEED,
    }
    clf = GradientBoostingClassifier(**hyper).fit(X_tr, y_tr)
    assert np.allclose(clf.decision_function(X_tr[:5]) - sum(
        clf.learning_rate * e.predict(X_tr[:5]) for e in clf.estimators_[:, 0]), base_score(clf))

    # ---- 4. export + parity ----------------------------------------------------------
    os.makedirs(args.out_dir, exist_ok=True)
    model_path = os.path.join(args.out_dir, "model.onnx")
    model = build_onnx(clf, version)
    with open(model_path, "wb") as f:
        f.write(model.SerializeToString())
    p_sk = clf.predict_proba(X_ho)[:, 1]
    p_np = numpy_onnx_predict(model, raw_ho)
    diff_np = float(np.max(np.abs(p_np - p_sk)))
    print(f"[parity] numpy evaluation of the exported ensemble vs sklearn: max |dp| = {diff_np:.3g}")
    if diff_np > PARITY_TOLERANCE:
        raise SystemExit("parity check (numpy) failed")
    parity = {"rows": int(len(raw_ho)), "tolerance": PARITY_TOLERANCE, "numpyMaxAbsDiff": diff_np}
    if not args.skip_node_parity:
        res = onnxruntime_node_predict(model_path, raw_ho, repo_root, os.path.join(args.split_dir, "parity"))
        if res is None:
            print("[parity] node / onnxruntime-node not found: onnxruntime check skipped", file=sys.stderr)
        else:
            p_ort, logit_ort = res
            diff = float(np.max(np.abs(p_ort - p_sk)))
            dlogit = float(np.max(np.abs(logit_ort - clf.decision_function(X_ho))))
            flips = int(np.count_nonzero((p_ort >= thr) != (p_sk >= thr)))
            print(f"[parity] onnxruntime-node vs sklearn on {len(raw_ho)} holdout rows: max |dp| = {diff:.3g}, max |dlogit| = {dlogit:.3g}, decision flips = {flips}")
            if diff > PARITY_TOLERANCE:
                raise SystemExit("parity check (onnxruntime-node) failed")
            parity.update({"onnxruntimeMaxAbsDiff": diff, "onnxruntimeMaxAbsLogitDiff": dlogit, "decisionFlips": flips})

    # ---- 5. holdout evaluation (reported, never used for choices) ------------------------
    hold = classification_metrics(y_ho, p_sk, thr)
    pred_ho = p_sk >= thr
    modes_ho = {m: labels(ho_rows, m) for m in MODE_COLUMNS}
    per_mode = per_mode_recall(y_ho, pred_ho, modes_ho)
    hold["perModeRecall"] = per_mode
    hold["ruleModeCeiling"] = rule_mode_ceiling(y_ho, modes_ho)
    hold["threshold"] = thr
    print(f"[holdout] {hold}")

    # ---- golden rows -----------------------------------------------------------------
    g_rows, g_notes = golden_rows(raw_ho, y_ho, modes_ho, p_sk)
    g_rows += [list(map(float, r)) for r, _ in EDGE_CASES]
    g_notes += [n for _, n in EDGE_CASES]
    g_raw = np.array(g_rows, dtype=np.float64)
    g_p = clf.predict_proba(features(g_raw))[:, 1]
    if not args.skip_node_parity:
        res = onnxruntime_node_predict(model_path, g_raw, repo_root, os.path.join(args.split_dir, "parity"))
        if res is not None:
            gd = float(np.max(np.abs(res[0] - g_p)))
            print(f"[parity] golden rows: max |dp| = {gd:.3g}")
            if gd > PARITY_TOLERANCE:
                raise SystemExit("parity check (golden rows) failed")
    golden = {
        "model": "machine-failure",
        "description": "Raw input rows (X columns: product_type, air_temperature [K], process_temperature [K], rotational_speed [rpm], "
                       "torque [Nm], tool_wear [min]) and scikit-learn predict_proba probabilities; model.onnx must match within tolerance.",
        "inputs": [[int(r[0])] + [float(v) for v in r[1:]] for r in g_rows],
        "probabilities": [float(p) for p in g_p],
        "tolerance": PARITY_TOLERANCE,
        "notes": g_notes,
    }
    with open(os.path.join(args.out_dir, "golden.json"), "w") as f:
        f.write(dump_json(golden) + "\n")

    # ---- manifest --------------------------------------------------------------------
    lo, hi = raw_tr.min(axis=0), raw_tr.max(axis=0)
    ranges = {
        "air_temperature": padded_range(lo[1], hi[1], 1),
        "process_temperature": padded_range(lo[2], hi[2], 1),
        "rotational_speed": padded_range(lo[3], hi[3], 100, floor_at=0),
        "torque": padded_range(lo[4], hi[4], 5, floor_at=0),
        "tool_wear": padded_range(lo[5], hi[5], 10, floor_at=0),
    }
    # Typical values (training medians; the most common product type): the reference the agent replaces an
    # input with to measure that input's contribution to a score (the risk record's drivers).
    med = np.median(raw_tr, axis=0)
    baseline = {
        "product_type": int(np.bincount(raw_tr[:, 0].astype(int)).argmax()),
        "air_temperature": round(float(med[1]), 1),
        "process_temperature": round(float(med[2]), 1),
        "rotational_speed": round(float(med[3])),
        "torque": round(float(med[4]), 1),
        "tool_wear": round(float(med[5])),
    }
    cv_out = dict(cv)
    cv_out["selection"] = "hyperparameters and threshold maximising mean out-of-fold F1 (ties: smaller model)"
    cv_out["grid"] = {
        "max_depth": GRID_MAX_DEPTH,
        "learning_rate": GRID_LEARNING_RATE,
        "subsample": GRID_SUBSAMPLE,
        "n_estimators": GRID_N_ESTIMATORS,
        "threshold": [float(THRESHOLDS[0]), float(THRESHOLDS[-1]), 0.01],
    }
    n_nodes = len(tree_nodes(clf)["nodes_nodeids"])
    manifest = {
        "schemaVersion": 1,
        "name": "machine-failure",
        "version": version,
        "task": "classification",
        "description": "Probability that the current machining process ends in a machine failure (any mode: tool wear, heat dissipation, power, overstrain, random).",
        "file": "model.onnx",
        "sha256": sha256(model_path),
        "inputs": {
            "tensor": "X",
            "dtype": "float32",
            "features": [
                {"name": "product_type", "signal": "product_type", "column": "Type", "unit": "category", "categories": TYPE_CATEGORIES, "baseline": baseline["product_type"],
                 "description": "Product quality variant, encoded as its index in categories"},
                {"name": "air_temperature", "signal": "air_temperature", "column": "Air temperature [K]", "unit": "K", "range": ranges["air_temperature"], "baseline": baseline["air_temperature"],
                 "description": "Ambient air temperature at the machine, in kelvin"},
                {"name": "process_temperature", "signal": "process_temperature", "column": "Process temperature [K]", "unit": "K", "range": ranges["process_temperature"], "baseline": baseline["process_temperature"],
                 "description": "Process (workpiece/tool zone) temperature, in kelvin"},
                {"name": "rotational_speed", "signal": "rotational_speed", "column": "Rotational speed [rpm]", "unit": "rpm", "range": ranges["rotational_speed"], "baseline": baseline["rotational_speed"],
                 "description": "Spindle rotational speed, in revolutions per minute"},
                {"name": "torque", "signal": "torque", "column": "Torque [Nm]", "unit": "N.m", "range": ranges["torque"], "baseline": baseline["torque"],
                 "description": "Spindle torque, in newton-metres"},
                {"name": "tool_wear", "signal": "tool_wear", "column": "Tool wear [min]", "unit": "min", "range": ranges["tool_wear"], "baseline": baseline["tool_wear"], "counter": True,
                 "description": "Cumulative cutting time of the current tool, in minutes (reset on tool change)"},
            ],
        },
        "outputs": {
            "tensor": "probability",
            "kind": "probability",
            "meaning": "Probability (0..1) that the process ends in a machine failure of any mode; raise an alarm when probability >= threshold. The graph also outputs the raw score as 'logit' [N,1].",
            "threshold": thr,
        },
        "preprocessing": (
            "Feed the six raw readings as one float32 row of X, in this order and unit: product_type (index of L/M/H, i.e. L=0, M=1, H=2), "
            "air_temperature [K], process_temperature [K], rotational_speed [rpm], torque [N.m], tool_wear [min]; no scaling or normalisation is needed. "
            "The graph derives four physics features itself, in float32: temperature_difference = process_temperature - air_temperature [K]; "
            "mechanical_power = torque * rotational_speed * 2*pi/60 [W]; strain = tool_wear * torque [min.N.m]; "
            "strain_ratio = strain / overstrain limit of the product type (L 11000, M 12000, H 13000 min.N.m). "
            "The ten features go into a gradient-boosted tree ensemble whose summed score (logit) passes through a sigmoid to give probability."
        ),
        "label": {"column": LABEL_COLUMN, "positive": 1, "breakdown": MODE_COLUMNS},
        "training": {
            "data": "AI4I 2020 Predictive Maintenance Dataset, S. Matzka, UCI Machine Learning Repository (CC BY 4.0), ai4i2020_train.csv (a stratified 80% of the public set)",
            "rows": int(len(tr_rows)),
            "split": f"ai4i2020_train.csv ({len(rows)} rows) split stratified on 'Machine failure' into train {len(tr_rows)} / holdout {len(ho_rows)} "
                     f"(sklearn train_test_split, test_size {HOLDOUT_FRACTION}, seed {SEED}); written to build/machine-failure/{{train,holdout}}.csv. "
                     "Hyperparameters and threshold chosen by cross-validation on train only; the holdout is used only for the reported metrics.",
            "seed": SEED,
            "recipe": "/usr/bin/python3 models/machine-failure/train.py",
            "algorithm": f"scikit-learn GradientBoostingClassifier (log-loss, {hyper['n_estimators']} trees, depth {hyper['max_depth']}) "
                         f"exported as ONNX ai.onnx.ml TreeEnsembleRegressor + Sigmoid ({n_nodes} nodes)",
            "hyperparameters": {k: v for k, v in hyper.items()},
            "features": FEATURE_NAMES,
            "software": {"python": sys.version.split()[0], "scikit-learn": __import__("sklearn").__version__, "numpy": np.__version__, "onnx": onnx.__version__},
        },
        "metrics": {
            "cv": cv_out,
            "recipe": {
                "holdout": hold,
                "parity": parity,
                "source": "train.py (scikit-learn predict_proba on build/machine-failure/holdout.csv)",
            },
        },
    }
    with open(os.path.join(args.out_dir, "manifest.json"), "w") as f:
        f.write(dump_json(manifest) + "\n")
    with open(os.path.join(args.split_dir, "cv_results.json"), "w") as f:
        json.dump({"table": table}, f, indent=1)
        f.write("\n")
    print(f"[done] model.onnx {os.path.getsize(model_path)} bytes, sha256 {manifest['sha256']}, {time.time() - t0:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
