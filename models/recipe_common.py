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
