#!/usr/bin/env python3
"""Merges benches/fps.rs (ours), the Python peers and the encoded sizes into one JSON report
with ratios and targets (stdout), and draws the chart (ours vs both peers per size/effect).

    report.py PARTS_DIR ENCODED_JSON CHART.png

PARTS_DIR holds ours-ROUND-SIZE.json and peers-ROUND-SIZE.json (benches/run.sh): each case
(size, effect, content, inference interval; or peer, size, effect) keeps its best round.
"""

import glob
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

parts, encoded, chart = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]


def load(kind):
    runs = []
    for path in sorted(glob.glob(os.path.join(parts, f"{kind}-*.json"))):
        with open(path) as f:
            runs.append(json.load(f))
    if not runs:
        sys.exit(f"no {kind}-*.json in {parts}")
    return runs


def best_rounds(runs, key):
    """Every case once, from the round where it ran fastest, in the order of the first round."""
    best = {}
    for run in runs:
        for r in run["results"]:
            k = key(r)
            if k not in best or r["fps_per_core"] > best[k]["fps_per_core"]:
                best[k] = r
    # Smaller sizes first, each size's cases in the order they ran.
    return sorted(best.values(), key=lambda r: r["width"] * r["height"])


our_runs, peer_runs = load("ours"), load("peers")
ours = dict(our_runs[0])
ours["results"] = best_rounds(
    our_runs, lambda r: (r["width"], r["height"], r["effect"], r["content"], r["inference_interval"])
)
ours["model_only_ms"] = min(run["model_only_ms"] for run in our_runs)
ours["model_only_fps"] = max(run["model_only_fps"] for run in our_runs)
ours["rounds"] = len(our_runs) // max(1, len({(r["width"], r["height"]) for r in ours["results"]}))
peers = dict(peer_runs[0])
peers["results"] = best_rounds(peer_runs, lambda r: (r["peer"], r["width"], r["height"], r["effect"]))
peer_fps = {(r["peer"], r["width"], r["height"], r["effect"]): r["fps_per_core"] for r in peers["results"]}

# Targets of the issue, per core: every frame inferred 640x360 >= 250 fps, 1280x720 >= 200
# fps (>= 1.3x the competent peer); automatic inference on carphone >= 2x the competent peer.
FPS_TARGET = {(640, 360): 250, (1280, 720): 200}
NOT_INFERENCE_MS_TARGET = {(640, 360): 0.5, (1280, 720): 1.5}
for r in ours["results"]:
    key = (r["width"], r["height"], r["effect"])
    competent = peer_fps.get(("competent", *key))
    naive = peer_fps.get(("naive", *key))
    r["competent_peer_fps"] = competent
    r["naive_peer_fps"] = naive
    r["ratio_vs_competent"] = round(r["fps_per_core"] / competent, 2) if competent else None
    r["ratio_vs_naive"] = round(r["fps_per_core"] / naive, 2) if naive else None
    size = (r["width"], r["height"])
    if r["inference_interval"] == 1:
        r["target"] = {
            "fps": FPS_TARGET.get(size),
            "ratio_vs_competent": 1.3,
            "not_inference_ms": NOT_INFERENCE_MS_TARGET.get(size),
            "inference_ms": 3.0,
        }
    elif r["inference_interval"] == 0 and r["content"] == "carphone":
        r["target"] = {"ratio_vs_competent": 2.0}
    if "target" in r:
        t = r["target"]
        met = {"ratio_vs_competent": r["ratio_vs_competent"] is not None and r["ratio_vs_competent"] >= t["ratio_vs_competent"]}
        if t.get("fps"):
            met["fps"] = r["fps_per_core"] >= t["fps"]
        if t.get("not_inference_ms"):
            met["not_inference_ms"] = r["stage_ms"]["not_inference"] <= t["not_inference_ms"]
        if t.get("inference_ms"):
            met["inference_ms"] = r["stage_ms"]["inference"] <= t["inference_ms"]
        r["targets_met"] = met
        r["target_met"] = all(met.values())

headline = {
    f'{r["width"]}x{r["height"]} {r["effect"]} interval {r["inference_interval"]} {r["content"]}': r["ratio_vs_competent"]
    for r in ours["results"]
    if r["inference_interval"] in (0, 1) and r["content"] in ("stills", "carphone")
}
# Every target the run missed, by case and criterion (empty: all met).
missed = [
    f'{r["width"]}x{r["height"]} {r["effect"]} interval {r["inference_interval"]} {r["content"]}: {name}'
    for r in ours["results"]
    for name, met in r.get("targets_met", {}).items()
    if not met
]
report = {
    "benchmark": "backgroundfx vs Python peers, one core",
    "headline_ratio_vs_competent_peer": headline,
    "targets_missed": missed,
    "ours": ours,
    "peers": peers["peers"],
    "encoded_size": encoded,
}
print(json.dumps(report, indent=2))

# Chart: per size/effect, ours (every frame, automatic on carphone) against both peers.
labels, series = [], {"ours, every frame": [], "ours, automatic (carphone)": [], "competent peer": [], "naive peer": []}
for r in ours["results"]:
    if r["inference_interval"] != 1:
        continue
    labels.append(f'{r["width"]}x{r["height"]}\n{r["effect"]}')
    automatic = next(
        a["fps_per_core"]
        for a in ours["results"]
        if (a["width"], a["height"], a["effect"], a["inference_interval"], a["content"])
        == (r["width"], r["height"], r["effect"], 0, "carphone")
    )
    series["ours, every frame"].append(r["fps_per_core"])
    series["ours, automatic (carphone)"].append(automatic)
    series["competent peer"].append(r["competent_peer_fps"] or 0)
    series["naive peer"].append(r["naive_peer_fps"] or 0)
fig, ax = plt.subplots(figsize=(11, 5))
width = 0.2
for i, (name, values) in enumerate(series.items()):
    ax.bar([x + (i - 1.5) * width for x in range(len(labels))], values, width, label=name)
ax.set_xticks(range(len(labels)))
ax.set_xticklabels(labels)
ax.set_ylabel("frames per second, one core")
ax.set_title("backgroundfx vs LiteRT + OpenCV peers (same model, same frames, same core)")
ax.legend()
fig.tight_layout()
fig.savefig(chart, dpi=100)
