"""Helpers the model recipes share: float32-exact thresholds, the onnxruntime-node parity run, stable JSON.

Imported by models/<name>/train.py (Debian's /usr/bin/python3 with python3-numpy).
"""
import hashlib
import json
import math
import os
import re
import shutil
import subprocess

import numpy as np

def float32_floor(t: float) -> np.float32:
    """Largest float32 <= t. For float32 x: (x <= t) == (x <= float32_floor(t)). inf stays inf."""
    f = np.float32(t)
    if float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return np.float32(f)


NODE_PARITY_SCRIPT = r"""
import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';
const [,, ortPath, modelPath, inputPath] = process.argv;
const require = createRequire(import.meta.url);
const ort = require(ortPath);
const rows = JSON.parse(readFileSync(inputPath, 'utf8'));
const width = rows[0].length;
const data = new Float32Array(rows.length * width);
// null = not reported = NaN, as the agent feeds a missing optional input
rows.forEach((r, i) => r.forEach((v, j) => { data[i * width + j] = v === null ? NaN : v; }));
const session = await ort.InferenceSession.create(modelPath);
const out = await session.run({ X: new ort.Tensor('float32', data, [rows.length, width]) });
process.stdout.write(JSON.stringify({
  probability: Array.from(out.probability.data), logit: Array.from(out.logit.data),
  dims: out.probability.dims, type: out.probability.type,
}));
"""


def json_rows(raw: np.ndarray) -> list:
    return [[None if math.isnan(v) else float(v) for v in r] for r in raw.tolist()]


def onnxruntime_node_predict(model_path: str, raw: np.ndarray, repo_root: str, tmp_dir: str):
    """Runs the model with onnxruntime-node. Returns None when node/onnxruntime-node is unavailable."""
    node = shutil.which("node")
    ort_dir = os.path.join(repo_root, "node_modules", "onnxruntime-node")
    if node is None or not os.path.isdir(ort_dir):
        return None
    os.makedirs(tmp_dir, exist_ok=True)
    script = os.path.join(tmp_dir, "parity.mjs")
    inputs = os.path.join(tmp_dir, "parity_inputs.json")
    with open(script, "w") as f:
        f.write(NODE_PARITY_SCRIPT)
    with open(inputs, "w") as f:
        json.dump(json_rows(raw), f)
    res = subprocess.run([node, script, ort_dir, os.path.abspath(model_path), inputs], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"onnxruntime-node parity run failed:\n{res.stderr}")
    out = json.loads(res.stdout)
    assert out["type"] == "float32" and out["dims"] == [len(raw), 1], out["dims"]
    return np.array(out["probability"], dtype=np.float64), np.array(out["logit"], dtype=np.float64)


def dump_json(obj) -> str:
    """json.dumps with indent 2 but lists of scalars kept on one line."""
    text = json.dumps(obj, indent=2, allow_nan=False)
    return re.sub(
        r"\[\s*\n\s*([^\[\]{}]*?)\s*\n\s*\]",
        lambda m: (lambda one: one if len(one) <= 100 else m.group(0))("[" + re.sub(r",\s*\n\s*", ", ", m.group(1)) + "]"),
        text,
    )


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


# --------------------------------------------------------------------------------------
# scikit-learn HistGradientBoosting → ONNX TreeEnsembleRegressor
# --------------------------------------------------------------------------------------


def hgb_baseline(model) -> float:
    """The model's raw starting score (log-odds for a classifier, the mean target for a regressor)."""
    return float(np.asarray(model._baseline_prediction).ravel()[0])


def hgb_predictors(model):
    """One TreePredictor per boosting iteration (binary classification or regression: one tree per iteration).
    `_predictors` is private in sklearn 1.2; hgb_pin() and the recipes' parity checks hold it to its behaviour."""
    preds = model._predictors
    assert all(len(it) == 1 for it in preds)
    return [it[0] for it in preds]


def hgb_raw(model, X: np.ndarray) -> np.ndarray:
    """Raw score from the predictors' node arrays alone, in float64: baseline + the leaf value each tree reaches, where
    a node sends x left when x <= num_threshold and NaN left when missing_go_to_left. Exactly what hgb_tree_nodes()
    exports."""
    X = np.asarray(X, dtype=np.float64)
    out = np.full(len(X), hgb_baseline(model))
    rows = np.arange(len(X))
    for p in hgb_predictors(model):
        nd = p.nodes
        cur = np.zeros(len(X), dtype=np.int64)
        while True:
            active = ~nd["is_leaf"][cur].astype(bool)
            if not active.any():
                break
            x = X[rows, nd["feature_idx"][cur]]
            with np.errstate(invalid="ignore"):
                left = np.where(np.isnan(x), nd["missing_go_to_left"][cur].astype(bool), x <= nd["num_threshold"][cur])
            cur = np.where(active, np.where(left, nd["left"][cur], nd["right"][cur]), cur)
        out = out + nd["value"][cur]
    return out


def hgb_pin(model, X: np.ndarray, reference: np.ndarray) -> float:
    """Pins the private API the export relies on: no categorical splits, and hgb_raw() equals sklearn's own raw
    output (`decision_function` for a classifier, `predict` for a regressor) given as `reference`."""
    for p in hgb_predictors(model):
        assert not p.nodes["is_categorical"].any()
    d = float(np.max(np.abs(hgb_raw(model, X) - reference)))
    assert d <= 1e-9, f"sklearn's _predictors do not behave as the export assumes (max |d| {d})"
    return d


def hgb_tree_nodes(model) -> dict:
    """Flattened TreeEnsembleRegressor attributes from the fitted predictors (shrinkage already in the leaf values)."""
    a = {k: [] for k in (
        "nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values", "nodes_modes",
        "nodes_truenodeids", "nodes_falsenodeids", "nodes_missing_value_tracks_true",
        "target_treeids", "target_nodeids", "target_ids", "target_weights",
    )}
    for t_id, pred in enumerate(hgb_predictors(model)):
        for n, node in enumerate(pred.nodes):
            a["nodes_treeids"].append(t_id)
            a["nodes_nodeids"].append(n)
            if node["is_leaf"]:
                a["nodes_featureids"].append(0)
                a["nodes_values"].append(0.0)
                a["nodes_modes"].append("LEAF")
                a["nodes_truenodeids"].append(0)
                a["nodes_falsenodeids"].append(0)
                a["nodes_missing_value_tracks_true"].append(0)
                a["target_treeids"].append(t_id)
                a["target_nodeids"].append(n)
                a["target_ids"].append(0)
                a["target_weights"].append(float(np.float32(node["value"])))
            else:
                a["nodes_featureids"].append(int(node["feature_idx"]))
                a["nodes_values"].append(float(float32_floor(float(node["num_threshold"]))))
                a["nodes_modes"].append("BRANCH_LEQ")
                a["nodes_truenodeids"].append(int(node["left"]))  # x <= threshold goes left
                a["nodes_falsenodeids"].append(int(node["right"]))
                a["nodes_missing_value_tracks_true"].append(int(node["missing_go_to_left"]))  # NaN follows the learned side
    return a


def onnx_tree_ensemble_raw(model, F: np.ndarray) -> np.ndarray:
    """Evaluates the graph's TreeEnsembleRegressor from its ONNX attributes on float32 features, as onnxruntime does
    (float32 comparisons, NaN routed by nodes_missing_value_tracks_true): base value + leaf weights, in float64."""
    from onnx import helper

    node = next(n for n in model.graph.node if n.op_type == "TreeEnsembleRegressor")
    at = {x.name: helper.get_attribute_value(x) for x in node.attribute}
    F = np.asarray(F, dtype=np.float32)
    tree_ids = np.array(at["nodes_treeids"])
    node_ids = np.array(at["nodes_nodeids"])
    modes = np.array([m.decode() if isinstance(m, bytes) else m for m in at["nodes_modes"]])
    feat = np.array(at["nodes_featureids"])
    thr = np.array(at["nodes_values"], dtype=np.float32)
    tnode = np.array(at["nodes_truenodeids"])
    fnode = np.array(at["nodes_falsenodeids"])
    miss = np.array(at.get("nodes_missing_value_tracks_true", [0] * len(tree_ids))).astype(bool)
    weights = {(t, n): w for t, n, w in zip(at["target_treeids"], at["target_nodeids"], at["target_weights"])}
    out = np.full(len(F), at["base_values"][0], dtype=np.float64)
    rows = np.arange(len(F))
    for tid in np.unique(tree_ids):
        sel = tree_ids == tid
        order = np.argsort(node_ids[sel])
        assert np.array_equal(node_ids[sel][order], np.arange(sel.sum()))
        m, fe, th, tn, fn, ms = (arr[sel][order] for arr in (modes, feat, thr, tnode, fnode, miss))
        leaf = m == "LEAF"
        w = np.array([weights.get((tid, n), 0.0) for n in range(len(m))])
        cur = np.zeros(len(F), dtype=np.int64)
        while True:
            active = ~leaf[cur]
            if not active.any():
                break
            x = F[rows, fe[cur]]
            with np.errstate(invalid="ignore"):
                go_true = np.where(np.isnan(x), ms[cur], x <= th[cur])
            cur = np.where(active, np.where(go_true, tn[cur], fn[cur]), cur)
        out += w[cur]
    return out
