"""Draws the router study's figure and table from `switchyard route --json` outputs.

usage: /usr/bin/python3 docs/router_study/plot.py RUN_DIR OUT_DIR
RUN_DIR holds one NAME.route.json per routing setup (and NAME.cmd, the training command), as
scripts/router_study.sh writes them. Writes OUT_DIR/expert_load.png (per setup, a heat map of each
layer's expert load share on the validation split) and OUT_DIR/results.md (the table).
Needs python3-matplotlib (Debian); the study script installs it.
"""
import glob
import json
import math
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    run_dir, out_dir = sys.argv[1], sys.argv[2]
    runs = []
    for path in sorted(glob.glob(os.path.join(run_dir, "*.route.json"))):
        name = os.path.basename(path)[: -len(".route.json")]
        with open(path) as f:
            runs.append((name, json.load(f)))
    if not runs:
        sys.exit(f"no *.route.json in {run_dir}")
    order = [n for n in ["top2-micro", "top2-global", "aux-free", "top-p", "null", "top2-noloss"] if n in dict(runs)]
    order += [n for n, _ in runs if n not in order]
    runs = [(n, dict(runs)[n]) for n in order]

    os.makedirs(out_dir, exist_ok=True)
    fig, axes = plt.subplots(1, len(runs), figsize=(3.0 * len(runs), 3.2), squeeze=False)
    vmax = max(max(max(l["load_fraction"]) for l in r["layers"]) for _, r in runs)
    for ax, (name, r) in zip(axes[0], runs):
        grid = [l["load_fraction"] for l in r["layers"]]
        im = ax.imshow(grid, aspect="auto", cmap="viridis", vmin=0, vmax=vmax)
        ax.set_title(name, fontsize=10)
        ax.set_xlabel("expert")
        ax.set_ylabel("layer")
        ax.set_xticks(range(len(grid[0])))
        ax.set_yticks(range(len(grid)))
        ax.tick_params(labelsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="share of the layer's token slots")
    fig.suptitle("Expert load per layer on Brown validation text (uniform = 1/E)", fontsize=11)
    fig.savefig(os.path.join(out_dir, "expert_load.png"), dpi=110, bbox_inches="tight")

    lines = ["| setup | val loss (nats/token) | val ppl | experts/token (mean over layers) | "
             "load max/mean (mean over layers) | worst layer max/mean | I(genre; expert) bits | I / H(genre) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, r in runs:
        L = r["layers"]
        ept = sum(l["experts_per_token"] for l in L) / len(L)
        lm = sum(l["load_max_over_mean"] for l in L) / len(L)
        worst = max(l["load_max_over_mean"] for l in L)
        mi = sum(l["mi_bits"] for l in L) / len(L)
        nmi = sum(l["nmi"] for l in L) / len(L)
        lines.append(f"| {name} | {r['loss']:.4f} | {math.exp(r['loss']):.2f} | {ept:.2f} | {lm:.2f} | "
                     f"{worst:.2f} | {mi:.4f} | {nmi:.4f} |")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
