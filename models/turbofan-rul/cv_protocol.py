#!/usr/bin/python3
"""Repeated cross-validation protocol for `turbofan-rul` (issue #18): RMSE, NASA score and calibrated RUL intervals
estimated the way the official FD001 test measures them.

    nice -n 15 /usr/bin/python3 models/turbofan-rul/cv_protocol.py [--models hgb-v1,cnn] [--repeats 3] [--cuts 20] \
        [--data ../shared/data/cmapss/train_FD001.txt] [--out-dir build/turbofan-rul/protocol]

The protocol, for every model named in --models:

1. `--repeats` times, the 100 training engines are split into 5 folds of 20 whole engines (numpy default_rng(
   [42, repeat]) permutation). Each fold is predicted by a model fitted on the other 80 engines (normalisation and
   every other fitted quantity included), at every cycle: the out-of-fold (OOF) predictions, cached in
   `<out-dir>/oof_<model>.npz` so that ensembles (`a+b`) and intervals cost no refit.
2. For each repeat, `--cuts` times, every engine is truncated at a random cycle as the official test set is: true RUL
   uniform in [7, min(145, length - 31)] (numpy default_rng([42, repeat, cut])). The 100 truncated engines are one
   "virtual official test": RMSE against the true, uncapped RUL, and the NASA score summed over the 100 engines.
   Every model sees the same folds and the same cuts, so differences are paired.
3. Reported: the mean over the repeats x cuts virtual tests, and two 95% intervals: `spread` (2.5-97.5 percentiles
   over the virtual tests: folds and cut points drawn again) and `engineBootstrap` (the 100 engines of each virtual
   test resampled with replacement, 200 times each: what a different set of 100 engines, like the official test's,
   could give).
4. Intervals (--level, default 0.9): split-conformal with the calibration residuals of engines held out from the
   model's training, Mondrian by predicted RUL (one bin per range of the prediction, so the interval is narrow near
   failure and wide in mid-life). For the engines of fold k the residuals (true RUL - predicted) come from the
   cut points with length >= 31 and true RUL in [0, 145] (the official test's range, and the last cycles before
   failure, where a plan needs the interval most) of the other four folds' engines, each of them
   predicted by a model that did not see it (the CV+ construction). Coverage = share of the truncated test engines
   whose true RUL lies in [predicted + lower, predicted + upper]; the bounds always contain the prediction.
   The interval the manifest carries (`outputs.interval`) is calibrated the same way on every engine's OOF
   residuals of the first repeat.

Writes `<out-dir>/protocol.json` (a dump of everything) and prints a summary. Training is single-threaded
(torch.set_num_threads(1)) so that it can run beside other work; run it under `nice`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))
import train as recipe  # noqa: E402  (models/turbofan-rul/train.py: data reading, windows, the v1 features)
from recipe_common import dump_json  # noqa: E402

SEED = 42
FOLDS = 5
RUL_CAP = recipe.RUL_CAP
BOOTSTRAP = 200
# Mondrian bins of the interval: upper edges of the predicted RUL (the last bin is open).
INTERVAL_BIN_EDGES = [15, 30, 50, 75, 100]


# --------------------------------------------------------------------------------------
# Models: fit(X [n, 30, 14] raw windows, rul (uncapped), units, seed) -> predict(X) -> RUL
# --------------------------------------------------------------------------------------


def fit_hgb_v1(X, rul, units, seed, sensors):
    """The shipped v1.0.0 recipe with its chosen hyperparameters (sensors + health index, lr 0.02, depth 5, leaf 20,
    300 trees). The hyperparameters were chosen by train.py's CV over 80 of these 100 engines: a slight optimism."""
    wf = recipe.WindowFeatures(sensors, True).fit(X[:, -1, :], rul)
    reg = recipe.fit_reg(wf.transform(X), np.minimum(rul, RUL_CAP),
                         {"learning_rate": 0.02, "max_depth": 5, "min_samples_leaf": 20, "max_iter": 300})
    return lambda Xq: recipe.predict_reg(reg, wf.transform(Xq))


class WindowFeaturesV2(recipe.WindowFeatures):
    """v1's features plus, per channel, the mean of the last 5 cycles and the slope over the last 10: the most recent
    level and trend, which the 30-cycle summaries blur."""

    def transform(self, X):
        base = super().transform(X)
        z = (X.astype(np.float32).astype(np.float64) - self.mean) / self.std
        if self.use_health_index:
            z = np.concatenate([z, (z @ self.hi.reshape(-1, 1))], axis=2)
        t = np.arange(10, dtype=np.float64) - 4.5
        w10 = t / np.sum(t ** 2)
        last5 = z[:, -5:, :].mean(axis=1)
        slope10 = (z[:, -10:, :] * w10.reshape(1, -1, 1)).sum(axis=1)
        return np.concatenate([base, last5.astype(np.float32), slope10.astype(np.float32)], axis=1)


def fit_hgb(features_cls, params):
    def fit(X, rul, units, seed, sensors):
        wf = features_cls(sensors, True).fit(X[:, -1, :], rul)
        reg = recipe.fit_reg(wf.transform(X), np.minimum(rul, RUL_CAP), params)
        return lambda Xq: recipe.predict_reg(reg, wf.transform(Xq))

    return fit


V1_PARAMS = {"learning_rate": 0.02, "max_depth": 5, "min_samples_leaf": 20, "max_iter": 300}


class TorchSpec:
    def __init__(self, arch, epochs=30, batch=256, lr=1e-3, scale="minmax", seeds=(0,), patience=6):
        self.arch, self.epochs, self.batch, self.lr, self.scale, self.seeds, self.patience = arch, epochs, batch, lr, scale, seeds, patience


def torch_net(arch: str, f: int, window: int):
    import torch
    from torch import nn

    class Li2018(nn.Module):
        """Li, Ding & Sun 2018: four Conv(10x1, 10 filters, tanh) along time shared by every sensor, Conv(3x1, 1),
        flatten, dropout 0.5, Linear(100, tanh), Linear(1)."""

        def __init__(self):
            super().__init__()
            layers, c = [], 1
            for _ in range(4):
                layers += [nn.Conv2d(c, 10, (10, 1), padding="same"), nn.Tanh()]
                c = 10
            layers += [nn.Conv2d(10, 1, (3, 1), padding="same"), nn.Tanh()]
            self.conv = nn.Sequential(*layers)
            self.head = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(window * f, 100), nn.Tanh(), nn.Linear(100, 1))

        def forward(self, z):
            return self.head(self.conv(z.unsqueeze(1)))

    class Conv1(nn.Module):
        """A light 1-D CNN: the sensors as channels, three convolutions along time, global average + last step."""

        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(nn.Conv1d(f, 32, 5, padding=2), nn.ReLU(), nn.Conv1d(32, 32, 5, padding=2), nn.ReLU(),
                                      nn.Conv1d(32, 32, 5, padding=2), nn.ReLU())
            self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 1))

        def forward(self, z):
            h = self.conv(z.transpose(1, 2))
            return self.head(torch.cat([h.mean(dim=2), h[:, :, -1]], dim=1))

    class GRU(nn.Module):
        def __init__(self):
            super().__init__()
            self.gru = nn.GRU(f, 32, 1, batch_first=True)
            self.head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))

        def forward(self, z):
            y, _ = self.gru(z)
            return self.head(y[:, -1])

    class LSTM(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = nn.LSTM(f, 32, 1, batch_first=True)
            self.head = nn.Sequential(nn.Linear(32, 16), nn.ReLU(), nn.Linear(16, 1))

        def forward(self, z):
            y, _ = self.rnn(z)
            return self.head(y[:, -1])

    return {"li2018": Li2018, "conv1d": Conv1, "gru": GRU, "lstm": LSTM}[arch]()


def fit_torch(spec: TorchSpec):
    def fit(X, rul, units, seed, sensors):
        import torch

        torch.set_num_threads(1)
        x = X[:, -1, :].astype(np.float64)  # every training cycle once
        if spec.scale == "minmax":  # to [-1, 1] (Li et al.)
            lo, hi = x.min(axis=0), x.max(axis=0)
            centre, half = (hi + lo) / 2, np.where(hi > lo, (hi - lo) / 2, 1.0)
        else:
            centre, half = x.mean(axis=0), x.std(axis=0)
        norm = lambda W: ((W.astype(np.float64) - centre) / half).astype(np.float32)  # noqa: E731
        y = (np.minimum(rul, RUL_CAP) / RUL_CAP).astype(np.float32)
        # Early stopping on 10% of the training engines (never the test fold).
        u = np.unique(units)
        val_units = np.random.default_rng([SEED, seed, 7]).choice(u, max(1, len(u) // 10), replace=False)
        va = np.isin(units, val_units)
        Z = torch.from_numpy(norm(X))
        Y = torch.from_numpy(y).reshape(-1, 1)
        nets = []
        for s in spec.seeds:
            torch.manual_seed(1000 * seed + s)
            net = torch_net(spec.arch, X.shape[2], X.shape[1])
            opt = torch.optim.Adam(net.parameters(), lr=spec.lr)
            gen = torch.Generator().manual_seed(1000 * seed + s)
            tr_idx = torch.from_numpy(np.flatnonzero(~va))
            va_idx = torch.from_numpy(np.flatnonzero(va))
            best, best_state, bad = np.inf, None, 0
            for _epoch in range(spec.epochs):
                net.train()
                perm = tr_idx[torch.randperm(len(tr_idx), generator=gen)]
                for i in range(0, len(perm), spec.batch):
                    b = perm[i: i + spec.batch]
                    opt.zero_grad()
                    torch.mean((net(Z[b]) - Y[b]) ** 2).backward()
                    opt.step()
                net.eval()
                with torch.no_grad():
                    v = float(torch.mean((net(Z[va_idx]) - Y[va_idx]) ** 2))
                if v < best - 1e-6:
                    best, bad = v, 0
                    best_state = {k: t.clone() for k, t in net.state_dict().items()}
                else:
                    bad += 1
                    if bad >= spec.patience:
                        break
            net.load_state_dict(best_state)
            net.eval()
            nets.append(net)

        def predict(Xq):
            with torch.no_grad():
                Zq = torch.from_numpy(norm(Xq))
                p = np.mean([n(Zq).numpy()[:, 0] for n in nets], axis=0)
            return np.maximum(p.astype(np.float64) * RUL_CAP, 0.0)

        predict.nets, predict.centre, predict.half = nets, centre, half
        return predict

    return fit


MODELS = {
    "hgb-v1": fit_hgb_v1,
    "hgb-v2": fit_hgb(WindowFeaturesV2, V1_PARAMS),
    "hgb-v2-leaf100": fit_hgb(WindowFeaturesV2, {**V1_PARAMS, "min_samples_leaf": 100}),
    "hgb-v1-leaf100-600": fit_hgb(recipe.WindowFeatures, {**V1_PARAMS, "min_samples_leaf": 100, "max_iter": 600, "learning_rate": 0.01}),
    "li2018": fit_torch(TorchSpec("li2018", epochs=30, batch=512)),
    "conv1d": fit_torch(TorchSpec("conv1d", epochs=40)),
    "conv1d-3": fit_torch(TorchSpec("conv1d", epochs=40, seeds=(0, 1, 2))),
    "conv1d-long": fit_torch(TorchSpec("conv1d", epochs=150, batch=512, lr=2e-3, patience=15)),
    "gru": fit_torch(TorchSpec("gru", epochs=40)),
    "lstm": fit_torch(TorchSpec("lstm", epochs=40)),
}


# --------------------------------------------------------------------------------------
# Protocol
# --------------------------------------------------------------------------------------


def folds_of(units_all: np.ndarray, repeat: int) -> list[np.ndarray]:
    order = np.random.default_rng([SEED, repeat]).permutation(units_all)
    return [np.sort(order[k::FOLDS]) for k in range(FOLDS)]


def cut_points(lengths: dict, repeat: int, cut: int) -> dict:
    """unit -> true RUL at the cut, uniform in [7, min(145, length - 31)] as the official test set."""
    rng = np.random.default_rng([SEED, repeat, cut])
    lo, hi = recipe.OFFICIAL_RUL_RANGE
    return {u: int(rng.integers(lo, min(hi, L - recipe.OFFICIAL_MIN_LENGTH) + 1)) for u, L in sorted(lengths.items())}


def oof_predictions(name, X, units, rul, sensors, repeats, out_dir) -> np.ndarray:
    """[repeats, windows] out-of-fold predictions at every cycle, cached per model and repeat."""
    path = os.path.join(out_dir, f"oof_{name}.npz")
    cache = dict(np.load(path)) if os.path.exists(path) else {}
    out = []
    for r in range(repeats):
        key = f"r{r}"
        if key not in cache:
            t0 = time.time()
            P = np.full(len(X), np.nan)
            for k, fold in enumerate(folds_of(np.unique(units), r)):
                te = np.isin(units, fold)
                predict = MODELS[name](X[~te], rul[~te], units[~te], r * FOLDS + k, sensors)
                P[te] = predict(X[te])
            assert not np.isnan(P).any()
            cache[key] = P
            np.savez_compressed(path, **cache)
            print(f"[{name}] repeat {r}: {time.time() - t0:.0f}s", flush=True)
        out.append(cache[key])
    return np.stack(out)


def predictions_for(spec: str, X, units, rul, sensors, repeats, out_dir) -> np.ndarray:
    """A model name, or an ensemble `a+b+c` (the mean of the members' predictions)."""
    parts = spec.split("+")
    return np.mean([oof_predictions(p, X, units, rul, sensors, repeats, out_dir) for p in parts], axis=0)


def conformal_offsets(resid: np.ndarray, pred: np.ndarray, level: float) -> list[dict]:
    """Per bin of the prediction: the (1-level)/2 and (1+level)/2 conformal quantiles of true - predicted,
    widened to contain 0 so that the interval always contains the point estimate."""
    alpha = 1 - level
    edges = INTERVAL_BIN_EDGES + [np.inf]
    out, lo_edge = [], -np.inf
    for hi_edge in edges:
        sel = (pred >= lo_edge) & (pred < hi_edge)
        r = np.sort(resid[sel])
        n = len(r)
        if n < 20:
            raise SystemExit(f"interval bin below {hi_edge}: {n} calibration residuals, too few")
        # finite-sample conformal ranks: ceil((n+1)(1-a/2)) for the upper, floor((n+1)a/2) for the lower
        k_hi = min(n, int(np.ceil((n + 1) * (1 - alpha / 2)))) - 1
        k_lo = max(1, int(np.floor((n + 1) * alpha / 2))) - 1
        b = {"lower": round(min(float(r[k_lo]), 0.0), 2), "upper": round(max(float(r[k_hi]), 0.0), 2), "calibration": n}
        if np.isfinite(hi_edge):
            b = {"predictionBelow": hi_edge, **b}
        out.append(b)
        lo_edge = hi_edge
    return out


INTERVAL_METHOD = ("split-conformal, CV+ construction: the residuals (true - predicted RUL) at every cut point "
                   "with length >= 31 cycles and true RUL 0-145 of the 100 FD001 training engines, each predicted by the model of a "
                   "5-fold cross-validation that did not see it; Mondrian by predicted RUL (one pair of offsets per bin), "
                   "widened to contain the prediction. Coverage measured by models/turbofan-rul/cv_protocol.py (MODEL_CARD.md)")


def calibration_mask(ends, rul) -> np.ndarray:
    """The cut points the interval is calibrated on: length >= 31 (as the official test) and true RUL <= 145, the last
    cycles before failure included."""
    return (ends >= recipe.OFFICIAL_MIN_LENGTH) & (rul <= recipe.OFFICIAL_RUL_RANGE[1])


def manifest_interval(engines, sensors, fit, level: float = 0.9) -> dict:
    """`outputs.interval` for a model whose recipe is `fit`: calibrated on the OOF residuals of repeat 0."""
    X, units, ends, rul = recipe.engine_windows(engines, sensors)
    P = np.full(len(X), np.nan)
    for k, fold in enumerate(folds_of(np.unique(units), 0)):
        te = np.isin(units, fold)
        P[te] = fit(X[~te], rul[~te], units[~te], k, sensors)(X[te])
    cal = calibration_mask(ends, rul)
    return {"level": level, "method": INTERVAL_METHOD, "bins": conformal_offsets(rul[cal] - P[cal], P[cal], level)}


def apply_offsets(pred: np.ndarray, bins: list[dict]):
    lower, upper = np.empty(len(pred)), np.empty(len(pred))
    for i, p in enumerate(pred):
        b = next(b for b in bins if "predictionBelow" not in b or p < b["predictionBelow"])
        lower[i], upper[i] = max(0.0, p + b["lower"]), p + b["upper"]
    return lower, upper


def summarise(values: np.ndarray, boots: np.ndarray | None = None, digits=3) -> dict:
    out = {"mean": round(float(np.mean(values)), digits),
           "spread95": [round(float(np.percentile(values, 2.5)), digits), round(float(np.percentile(values, 97.5)), digits)]}
    if boots is not None:
        out["engineBootstrap95"] = [round(float(np.percentile(boots, 2.5)), digits), round(float(np.percentile(boots, 97.5)), digits)]
    return out


def evaluate(P, X, units, ends, rul, lengths, repeats, cuts, level, baseline=None):
    u_all = np.unique(units)
    official = recipe.official_like_mask(ends, rul)
    index = {(int(u), int(e)): i for i, (u, e) in enumerate(zip(units, ends))}
    rmses, nasas, boot_r, boot_n, covs, widths, d_rmse, d_boot, capped = [], [], [], [], [], [], [], [], []
    per_bin_hits: dict = {}
    last_hits: list = []
    for r in range(repeats):
        folds = folds_of(u_all, r)
        fold_of = {int(u): k for k, f in enumerate(folds) for u in f}
        # interval offsets for each test fold, from the other folds' OOF residuals
        offsets = []
        for k, fold in enumerate(folds):
            cal = calibration_mask(ends, rul) & ~np.isin(units, fold)
            offsets.append(conformal_offsets(rul[cal] - P[r][cal], P[r][cal], level))
        # the last cycle of every engine (true RUL 0), which the official-like cuts never reach
        for u in u_all:
            j = index[(int(u), lengths[int(u)])]
            lo, hi = apply_offsets(P[r][j: j + 1], offsets[fold_of[int(u)]])
            last_hits.append(lo[0] <= 0 <= hi[0])
        for c in range(cuts):
            cut = cut_points(lengths, r, c)
            idx = np.array([index[(u, lengths[u] - t)] for u, t in cut.items()])
            p, t = P[r][idx], rul[idx]
            d = p - t
            rmses.append(np.sqrt(np.mean(d ** 2)))
            capped.append(np.sqrt(np.mean((p - np.minimum(t, RUL_CAP)) ** 2)))
            nasas.append(recipe.nasa_score(p, t))
            b = np.random.default_rng([SEED, r, c, 99]).integers(0, len(d), size=(BOOTSTRAP, len(d)))
            boot_r.extend(np.sqrt(np.mean(d[b] ** 2, axis=1)))
            sc = np.where(d < 0, np.exp(-d / 13.0) - 1.0, np.exp(d / 10.0) - 1.0)
            boot_n.extend(sc[b].sum(axis=1))
            if baseline is not None:
                db = baseline[r][idx] - t
                d_rmse.append(rmses[-1] - np.sqrt(np.mean(db ** 2)))
                d_boot.extend(np.sqrt(np.mean(d[b] ** 2, axis=1)) - np.sqrt(np.mean(db[b] ** 2, axis=1)))
            hit = np.zeros(len(idx), dtype=bool)
            w = np.zeros(len(idx))
            for j, u in enumerate(cut):
                lo, hi = apply_offsets(p[j: j + 1], offsets[fold_of[u]])
                hit[j] = lo[0] <= t[j] <= hi[0]
                w[j] = hi[0] - lo[0]
                edge = next((e for e in INTERVAL_BIN_EDGES if p[j] < e), None)
                per_bin_hits.setdefault(edge, []).append(hit[j])
            covs.append(hit.mean())
            widths.append(w.mean())
    out = {
        "repeats": repeats,
        "cutsPerRepeat": cuts,
        "virtualTests": len(rmses),
        "rmse": summarise(np.array(rmses), np.array(boot_r)),
        "nasaScore": summarise(np.array(nasas), np.array(boot_n), 1),
        "rmseCappedTruth": summarise(np.array(capped)),
        "interval": {
            "level": level,
            "coverage": summarise(np.array(covs)),
            "meanWidth": round(float(np.mean(widths)), 2),
            "coverageAtLastCycle": round(float(np.mean(last_hits)), 3),
            "coverageByPredictionBelow": {("open" if k is None else str(k)): round(float(np.mean(v)), 3) for k, v in sorted(per_bin_hits.items(), key=lambda kv: np.inf if kv[0] is None else kv[0])},
        },
        "officialLikeAllCutPointsRmse": round(float(np.mean([np.sqrt(np.mean((P[r][official] - rul[official]) ** 2)) for r in range(repeats)])), 3),
    }
    if baseline is not None:
        out["rmseMinusBaseline"] = summarise(np.array(d_rmse), np.array(d_boot))
    return out


def main(argv=None) -> int:
    repo_root = os.path.abspath(os.path.join(HERE, "..", ".."))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(repo_root, "..", "shared", "data", "cmapss", "train_FD001.txt"))
    ap.add_argument("--out-dir", default=os.path.join(repo_root, "build", "turbofan-rul", "protocol"))
    ap.add_argument("--models", default="hgb-v1", help=f"comma-separated; each one of {sorted(MODELS)} or an ensemble a+b")
    ap.add_argument("--baseline", default="hgb-v1", help="the model the others are compared with (paired)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cuts", type=int, default=20, help="random truncations of every engine per repeat")
    ap.add_argument("--level", type=float, default=0.9, help="interval level")
    ap.add_argument("--manifest-interval", metavar="MODEL", help="print the manifest's outputs.interval for MODEL")
    ap.add_argument("--write-manifest-interval", metavar="MODEL",
                    help="write outputs.interval of MODEL (the shipped recipe: hgb-v1) into models/turbofan-rul/manifest.json")
    args = ap.parse_args(argv)
    if not os.path.exists(args.data):
        raise SystemExit(f"{args.data}: not found (C-MAPSS train_FD001.txt; --data PATH)")
    os.makedirs(args.out_dir, exist_ok=True)
    engines = recipe.read_cmapss(args.data)
    assert len(engines) == 100, len(engines)
    sensors = [s for s in recipe.SENSORS if s not in recipe.EXPECTED_CONSTANT]
    X, units, ends, rul = recipe.engine_windows(engines, sensors)
    lengths = {e.unit: len(e) for e in engines}
    base = predictions_for(args.baseline, X, units, rul, sensors, args.repeats, args.out_dir)
    report = {"protocol": {"folds": FOLDS, "repeats": args.repeats, "cutsPerRepeat": args.cuts, "seed": SEED,
                           "truncation": "true RUL uniform in [7, min(145, length - 31)]", "truth": "uncapped RUL",
                           "trainingTarget": f"min(RUL, {RUL_CAP})", "window": recipe.WINDOW}, "baseline": args.baseline, "models": {}}
    summary_path = os.path.join(args.out_dir, "protocol.json")
    if os.path.exists(summary_path):
        with open(summary_path) as f:
            report["models"] = json.load(f).get("models", {})
    for name in args.models.split(","):
        P = predictions_for(name, X, units, rul, sensors, args.repeats, args.out_dir)
        res = evaluate(P, X, units, ends, rul, lengths, args.repeats, args.cuts, args.level, None if name == args.baseline else base)
        report["models"][name] = res
        print(f"{name}: RMSE {res['rmse']['mean']} (spread {res['rmse']['spread95']}, engines {res['rmse']['engineBootstrap95']})"
              f"  NASA {res['nasaScore']['mean']} {res['nasaScore']['spread95']}  capped-truth RMSE {res['rmseCappedTruth']['mean']}"
              f"  coverage@{args.level} {res['interval']['coverage']['mean']} (last cycle {res['interval']['coverageAtLastCycle']}) width {res['interval']['meanWidth']}"
              + (f"  vs {args.baseline}: {res['rmseMinusBaseline']['mean']} {res['rmseMinusBaseline']['engineBootstrap95']}" if "rmseMinusBaseline" in res else ""),
              flush=True)
    if args.write_manifest_interval:
        # Into the shipped manifest, everything else kept (train.py writes the same field when it retrains).
        path = os.path.join(repo_root, "models", "turbofan-rul", "manifest.json")
        with open(path) as f:
            manifest = json.load(f)
        P = predictions_for(args.write_manifest_interval, X, units, rul, sensors, 1, args.out_dir)[0]  # repeat 0, as manifest_interval()
        cal = calibration_mask(ends, rul)
        manifest["outputs"]["interval"] = {"level": args.level, "method": INTERVAL_METHOD,
                                           "bins": conformal_offsets(rul[cal] - P[cal], P[cal], args.level)}
        with open(path, "w") as f:
            f.write(dump_json(manifest) + "\n")
        print(f"[interval] {path}: outputs.interval = {manifest['outputs']['interval']['bins']}")
    if args.manifest_interval:
        P = predictions_for(args.manifest_interval, X, units, rul, sensors, 1, args.out_dir)[0]
        cal = calibration_mask(ends, rul)
        bins = conformal_offsets(rul[cal] - P[cal], P[cal], args.level)
        report["manifestInterval"] = {"model": args.manifest_interval, "level": args.level, "bins": bins}
        print(json.dumps({"level": args.level, "bins": [{k: v for k, v in b.items() if k != "calibration"} for b in bins]}))
    with open(summary_path, "w") as f:
        f.write(dump_json(report) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
