"""Chart of benches/results/vault-index-*.json (crates/lifecycle/benches/index.rs):
median search time with the index against reading every manifest, log scale.

    target/bench-venv/bin/python benches/chart_vault_index.py RESULT.json OUT.png
"""
import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

result = json.load(open(sys.argv[1]))
searches = result["searches"]
names = [s["search"] for s in searches]
x = range(len(names))
fig, ax = plt.subplots(figsize=(7, 4))
ax.bar([i - 0.2 for i in x], [s["index_ms"] for s in searches], 0.4, label="vcc-vault search (SQLite index)")
ax.bar([i + 0.2 for i in x], [s["scan_ms"] for s in searches], 0.4, label="scan every manifest (no index)")
ax.axhline(100, color="red", linestyle="--", linewidth=1, label="target 100 ms")
ax.set_yscale("log")
ax.set_ylabel("median ms per search")
ax.set_xticks(list(x))
ax.set_xticklabels(names)
ax.set_title(
    f"{result['manifests']} signed manifests, indexed in {result['index_seconds']:.1f} s "
    "(signatures checked)"
)
ax.legend(fontsize=8)
fig.tight_layout()
fig.savefig(sys.argv[2], dpi=100)
