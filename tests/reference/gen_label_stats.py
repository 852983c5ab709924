"""Reference for src/moe/label_stats.h: mutual information between a data label (genre) and the
expert a token slot was routed to, from a count table c [G, E], in float64 (Cover & Thomas 2.3):
  P(g,e) = c / sum c;  I = sum P(g,e) log2(P(g,e) / (P(g) P(e)))  (0 log 0 = 0);  H(G) = -sum P(g) log2 P(g)

Each case label_stats/<name>.safetensors: c [G, E] f64 -> stored f32 counts (integers, exact),
mi [1] f64-as-f32, h [1]; metadata mi_bits, h_bits as repr() of the float64 values.
"""
import argparse
import os

import torch

import st


def mi_and_h(c):
    c = c.double()
    p = c / c.sum()
    pg = p.sum(1, keepdim=True)
    pe = p.sum(0, keepdim=True)
    nz = p > 0
    mi = (p[nz] * torch.log2(p[nz] / (pg * pe).expand_as(p)[nz])).sum().item()
    pgv = pg.flatten()
    pgv = pgv[pgv > 0]
    h = -(pgv * torch.log2(pgv)).sum().item()
    return mi, h


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    out = os.path.join(ap.parse_args().out, "label_stats")
    os.makedirs(out, exist_ok=True)
    g = torch.Generator().manual_seed(7)
    cases = {
        "random_15x8": torch.randint(0, 500, (15, 8), generator=g),
        "sparse_6x16": torch.randint(0, 40, (6, 16), generator=g) * (torch.rand(6, 16, generator=g) < 0.3),
        # independent: an outer product of margins -> I = 0
        "independent": torch.outer(torch.tensor([1, 2, 3, 4]), torch.tensor([5, 1, 2, 7, 3])),
        # each label uses only its own expert -> I = H(G)
        "diagonal": torch.diag(torch.tensor([10, 20, 30, 40])),
        "one_label": torch.randint(1, 50, (1, 8), generator=g),
        "zero_row": torch.cat([torch.randint(0, 9, (3, 4), generator=g), torch.zeros(1, 4, dtype=torch.int64)]),
    }
    for name, c in cases.items():
        mi, h = mi_and_h(c)
        st.save(os.path.join(out, name + ".safetensors"), {"c": c.float()}, {"mi_bits": repr(mi), "h_bits": repr(h)})
    print(f"wrote {len(cases)} label_stats cases to {out}")


if __name__ == "__main__":
    main()
