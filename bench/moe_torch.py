#!/usr/bin/python3
"""PyTorch eager baselines for `switchyard bench moe` (run by the C++ command, one process per run).

Two baselines of one MoE layer (router + routed SwiGLU experts), each at its best in eager PyTorch:
  loop   the Hugging Face loop over experts, as in transformers' Qwen3MoeSparseMoeBlock /
         MixtralSparseMoeBlock: softmax(router logits) in f32, top-k, renormalise (norm_topk_prob /
         Mixtral), one_hot expert mask, and for every expert that got a token:
         idx, top_x = where(mask[e]); out.index_add_(0, top_x, expert(x[top_x]) * w[top_x, idx]).
         Only experts that were hit are visited (the newer transformers `expert_hit` form).
  dense  a dense masked computation: every expert on every token (batched with torch.bmm over the
         stacked expert weights), weighted by the dense [T, E] routing weights (0 where not chosen),
         summed over experts.
expert(x) = down(silu(gate x) * up x)  (SwiGLU, Qwen3 / Mixtral).
With bf16 weights the baselines run the whole layer in bf16 (a model loaded with
torch_dtype=torch.bfloat16): on this CPU torch 1.13 sends bf16 matmuls to oneDNN's AVX512-BF16
kernels, which is faster than upcasting the weights to f32 per call.

Protocol (line-based, so one torch import serves every case):
  stdout line 1: {"hello": ..., "torch": version, "threads": n, "blas": ..., "openblas_core": ...}
  stdin:  one JSON request per line {"weights": path, "out": path, "tokens": T, "budget_s": s,
          "max_repeats": n, "dense": bool}; EOF ends the process.
  stdout: one JSON line per request {"torch_loop_ms", "torch_loop_repeats", "torch_dense_ms",
          "torch_dense_repeats", ...} or {"error": message}.
The weights file (written by the C++ side with sy::write_safetensors) holds
  x [Tmax, H] f32 (the first T rows are used), router [E, H] f32, gate [E, F, H], up [E, F, H], down [E, H, F] (f32 or bf16)
and metadata k, norm; the tensors are memory-mapped, not copied. The out file (safetensors) receives
  y_ref [T, H] f32: the loop computed in f32 from the same (possibly bf16-stored) weights, the
                    correctness reference for the C++ output;
  topk [T, k] i32:  the experts the reference chose per token, descending probability.
Timing: time.perf_counter around each call; one warmup call, then repeats until budget_s is spent
(at least 1, at most max_repeats); the median is reported.
"""
import argparse
import ctypes
import json
import os
import re
import struct
import sys
import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
import st  # noqa: E402  (the repository's minimal safetensors writer)

_NP = {"F32": (np.float32, None), "BF16": (np.int16, torch.bfloat16), "I32": (np.int32, None)}


def load_safetensors(path):
    """Memory-maps every tensor (read-only, zero-copy): the C++ side maps the same file, so both
    read identical bytes from the same pages, as when a checkpoint is mmapped."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    meta = header.pop("__metadata__", {})
    base = 8 + n
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch warns that the mapping is read-only; nothing writes it
        for name, info in header.items():
            np_dt, view = _NP[info["dtype"]]
            b, _ = info["data_offsets"]
            a = np.memmap(path, dtype=np_dt, mode="r", offset=base + b, shape=tuple(info["shape"]))
            t = torch.from_numpy(a)
            out[name] = t.view(view) if view is not None else t
    return out, meta


def route(x, router, k, norm):
    """HF: softmax in f32 over the router logits, top-k, optional renormalisation."""
    logits = F.linear(x, router)
    p = F.softmax(logits, dim=1, dtype=torch.float)
    w, sel = torch.topk(p, k, dim=-1)
    if norm:
        w = w / w.sum(dim=-1, keepdim=True)
    return w.to(x.dtype), sel


def hf_loop(x, router, gate, up, down, k, norm, upcast=False):
    """transformers Qwen3MoeSparseMoeBlock.forward / MixtralSparseMoeBlock.forward (eager)."""
    T, H = x.shape
    E = gate.shape[0]
    w, sel = route(x, router, k, norm)
    out = torch.zeros((T, H), dtype=x.dtype)
    mask = F.one_hot(sel, num_classes=E).permute(2, 1, 0)  # [E, k, T]
    hit = torch.greater(mask.sum(dim=(-1, -2)), 0).nonzero()
    for e in hit:
        e = int(e)
        idx, top_x = torch.where(mask[e])
        cur = x[None, top_x].reshape(-1, H)
        g, u, d = gate[e], up[e], down[e]
        if upcast:
            g, u, d = g.float(), u.float(), d.float()
        h = F.linear(F.silu(F.linear(cur, g)) * F.linear(cur, u), d) * w[top_x, idx, None]
        out.index_add_(0, top_x, h.to(x.dtype))
    return out, sel


def dense_masked(x, router, gate, up, down, k, norm):
    """Every expert on every token; combine with the dense routing weights (0 = not chosen)."""
    T, H = x.shape
    E = gate.shape[0]
    w, sel = route(x, router, k, norm)
    dense_w = torch.zeros((T, E), dtype=x.dtype).scatter_(1, sel, w)
    xe = x.unsqueeze(0).expand(E, T, H)
    g = torch.bmm(xe, gate.transpose(1, 2))  # [E, T, F]
    u = torch.bmm(xe, up.transpose(1, 2))
    h = torch.bmm(F.silu(g) * u, down.transpose(1, 2))  # [E, T, H]
    return (h * dense_w.t().unsqueeze(-1)).sum(dim=0)


def timeit(fn, budget_s, max_repeats):
    """One warmup call, then repeats until the budget is spent (at least 1, at most max_repeats).
    Returns (median ms, repeats, the warmup call's result)."""
    t0 = time.perf_counter()
    first = fn()
    warm = time.perf_counter() - t0
    times = []
    start = time.perf_counter()
    while len(times) < max_repeats:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
        if time.perf_counter() - start + max(warm, times[-1]) > budget_s:
            break
    times.sort()
    n = len(times)
    med = times[n // 2] if n % 2 else 0.5 * (times[n // 2 - 1] + times[n // 2])
    return med * 1e3, n, first


def run_case(req):
    t, meta = load_safetensors(req["weights"])
    k = int(meta["k"])
    norm = meta.get("norm", "true") == "true"
    T = int(req["tokens"])
    x32, router32 = t["x"][:T].clone(), t["router"]
    gate, up, down = t["gate"], t["up"], t["down"]
    dt = gate.dtype
    x, router = x32.to(dt), router32.to(dt)
    res = {"weight_dtype": "bf16" if dt == torch.bfloat16 else "f32"}
    budget, reps = float(req.get("budget_s", 3.0)), int(req.get("max_repeats", 50))
    with torch.inference_mode():
        # Reference first: f32 compute on the same weights (identical to the timed loop for f32).
        y_ref, sel = hf_loop(x32, router32, gate, up, down, k, norm, upcast=(dt != torch.float32))
        st.save(req["out"], {"y_ref": y_ref.float(), "topk": sel.to(torch.int32)})
        res["torch_loop_ms"], res["torch_loop_repeats"], (y_loop, _) = timeit(
            lambda: hf_loop(x, router, gate, up, down, k, norm), budget, reps)
        if req.get("dense", True):
            res["torch_dense_ms"], res["torch_dense_repeats"], y_dense = timeit(
                lambda: dense_masked(x, router, gate, up, down, k, norm), budget, reps)
            scale = max(float(y_loop.float().abs().max()), 1e-30)
            res["torch_dense_vs_loop_rel_err"] = float((y_dense.float() - y_loop.float()).abs().max()) / scale
    return res


def hello(threads):
    info = {"hello": "moe_torch", "torch": torch.__version__, "threads": torch.get_num_threads(),
            "requested_threads": threads, "mkldnn": torch.backends.mkldnn.is_available(),
            "openblas_env": {v: os.environ.get(v) for v in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}}
    cfg = torch.__config__.show()
    m = re.search(r"BLAS_INFO=([^,\s]+)", cfg)
    info["blas_info"] = m.group(1) if m else "?"
    # torch links libblas.so.3, which Debian's alternatives resolve; report what got loaded.
    libs = set()
    with open("/proc/self/maps") as f:
        for line in f:
            p = line.split()[-1]
            if "blas" in p or "lapack" in p:
                libs.add(os.path.realpath(p))
    info["blas_libs"] = sorted(libs)
    try:
        ob = ctypes.CDLL("libopenblas.so.0")
        ob.openblas_get_corename.restype = ctypes.c_char_p
        ob.openblas_get_config.restype = ctypes.c_char_p
        info["openblas_core"] = ob.openblas_get_corename().decode()
        info["openblas_config"] = ob.openblas_get_config().decode()
        info["openblas_threads"] = ob.openblas_get_num_threads()
    except (OSError, AttributeError) as e:
        info["openblas_core"] = "unavailable: %s" % e
    return info


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, required=True, help="torch.set_num_threads (the cores available)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    out = sys.stdout
    out.write(json.dumps(hello(a.threads)) + "\n")
    out.flush()
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            res = run_case(json.loads(line))
        except Exception as e:  # report to the C++ side, which names the case
            res = {"error": "%s: %s" % (type(e).__name__, e)}
        out.write(json.dumps(res) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
