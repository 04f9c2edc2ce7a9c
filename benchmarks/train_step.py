"""Time and peak memory of one VSCN training step: our vectorised model against a per-turn baseline.

The baseline is the same math written the way the official code writes it: for S1 and S2 it copies
every image's regions for every query set, ``(B, B*R, d)``, and loops over turns with a softmax over
the first t queries each time; the InfoNCE terms are also a loop over turns. Both share one set of
modules, so they differ only in how the scores and the loss are formed (checked before timing).
``ours+ckpt`` is ours with `VSCN.set_grad_checkpointing`: the context transformers' activations,
which both formulations share and which dominate our memory, are recomputed in backward.

Each (implementation, batch size) runs in its own subprocess; peak memory is the growth of the
process's maximum resident set size (``ru_maxrss``) from just before the first step to the end.

    .venv/bin/python benchmarks/train_step.py                  # B = 32 and 128, paper sizes, CPU
    .venv/bin/python benchmarks/train_step.py --batch 16 --steps 2
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vscn.model import VSCN, VSCNConfig, info_nce  # noqa: E402

PAPER = VSCNConfig()  # d 256, FFN 2048, 3 + 3 layers, R 36, T 10, Dv 2048, Dq = Dg = 512, 8 heads
LEARNING_RATE = 2e-4
GRAD_CLIP = 2.0
KIB = 1024  # ru_maxrss is in KiB on Linux
TIME_TARGET = 3.0  # at least this many times faster at the largest batch
MEMORY_TARGET = 1 / 3  # at most this fraction of the baseline's peak memory


# ---------------------------------------------------------------- the measuring baseline
def expanded_loop_scores(q: Tensor, x: Tensor, slope: float) -> Tensor:
    """S for all pairs, turn by turn, on an explicit copy of every image's regions per query set.

    q ``(B, T, d)``, x ``(B, R, d)`` -> ``(B, B, T)`` [query set, image].
    """
    batch, regions, dim = x.shape
    all_regions = x.unsqueeze(0).expand(batch, batch, regions, dim).contiguous()  # (B, B, R, d)
    all_regions = all_regions.view(batch, batch * regions, dim)  # (B, B*R, d)
    per_turn = []
    for t in range(1, q.shape[1] + 1):
        sims = F.leaky_relu(torch.bmm(all_regions, q[:, :t].transpose(1, 2)), slope)  # (B, B*R, t)
        attn = torch.softmax(sims, dim=-1)
        per_region = (sims * attn).sum(dim=-1).view(batch, batch, regions)  # (B, B, R)
        per_turn.append(per_region.mean(dim=-1))  # (B, B)
    return torch.stack(per_turn, dim=-1)  # (B, B, T)


def baseline_forward(model: VSCN, regions: Tensor, queries: Tensor, global_feats: Tensor) -> Tensor:
    """The training loss of `VSCN.forward` (all slots in use), computed the official way."""
    cfg = model.config
    r, c = model.encode_images(regions)
    q = model.encode_queries(queries)
    hidden = torch.zeros(q.shape[:2], dtype=torch.bool, device=q.device)
    u = model.cross_modal(r, q, hidden)
    s1 = expanded_loop_scores(q, r, cfg.leaky_slope)
    s2 = expanded_loop_scores(q, u, cfg.leaky_slope)
    g = model.query_embedding(q) @ model.image_embedding(u, c).T
    turns = range(q.shape[1])
    contrastive = (sum(info_nce(s1[..., t], cfg.tau) for t in turns) / len(turns)
                   + sum(info_nce(s2[..., t], cfg.tau) for t in turns) / len(turns)
                   + info_nce(g, cfg.tau))
    return contrastive + cfg.distill_weight * F.l1_loss(c, model.distill_head(global_feats))


def ours_forward(model: VSCN, regions: Tensor, queries: Tensor, global_feats: Tensor) -> Tensor:
    return model(regions, queries, global_feats)["loss"]


# name -> (loss function, recompute the context transformers in backward)
IMPLEMENTATIONS = {
    "baseline": (baseline_forward, False),
    "ours": (ours_forward, False),
    "ours+ckpt": (ours_forward, True),
}


# ---------------------------------------------------------------- measurement
def make_batch(config: VSCNConfig, batch: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, config.num_regions, config.region_dim, generator=gen),
            torch.randn(batch, config.max_turns, config.query_dim, generator=gen),
            torch.randn(batch, config.global_dim, generator=gen))


def check_same_loss(batch: int = 8, seed: int = 0) -> float:
    """|loss difference| of the two implementations on one model without dropout."""
    quiet = replace(PAPER, visual_dropout=0.0, crossmodal_dropout=0.0, visual_sa_dropout=0.0)
    torch.manual_seed(seed)
    model = VSCN(quiet).train()
    inputs = make_batch(quiet, batch, seed)
    with torch.no_grad():
        return abs(float(ours_forward(model, *inputs) - baseline_forward(model, *inputs)))


def measure(impl: str, batch: int, steps: int, seed: int) -> dict[str, object]:
    """Run ``steps + 1`` training steps (the first is a warm-up) in this process."""
    torch.manual_seed(seed)
    model = VSCN(PAPER).train()
    forward, recompute = IMPLEMENTATIONS[impl]
    model.set_grad_checkpointing(recompute)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    inputs = make_batch(PAPER, batch, seed)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss = forward(model, *inputs)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), GRAD_CLIP)
        optimizer.step()
        times.append(time.perf_counter() - start)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # the fastest step: other processes on the machine only ever slow a step down
    return {"impl": impl, "batch": batch, "step_s": min(times[1:]),
            "peak_mib": (rss_after - rss_before) / KIB, "loss": loss.item()}


def run_worker(impl: str, batch: int, steps: int, seed: int) -> dict[str, object]:
    """`measure` in a fresh interpreter, so each peak is its own."""
    cmd = [sys.executable, __file__, "--worker", impl, "--batch", str(batch), "--steps", str(steps),
           "--seed", str(seed)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        return {"impl": impl, "batch": batch, "error": done.stderr.strip().splitlines()[-1:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--batch", type=int, nargs="+", default=[32, 128])
    parser.add_argument("--steps", type=int, default=3, help="timed steps after one warm-up step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", choices=sorted(IMPLEMENTATIONS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.batch[0], args.steps, args.seed)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; paper sizes: {PAPER}")
    print(f"same loss check (B=8, no dropout): |ours - baseline| = {check_same_loss():.2e}")
    print(f"{'B':>5} {'impl':>9} {'step s':>9} {'peak MiB':>9}   {'speed-up':>9} {'memory':>8}"
          "   (fastest of the timed steps; memory as a fraction of the baseline's)")
    for batch in args.batch:
        rows = {impl: run_worker(impl, batch, args.steps, args.seed) for impl in IMPLEMENTATIONS}
        for impl, row in rows.items():
            if "error" in row:
                print(f"{batch:>5} {impl:>9}   failed: {row['error']}")
                continue
            line = f"{batch:>5} {impl:>9} {row['step_s']:>9.2f} {row['peak_mib']:>9.0f}"
            if impl != "baseline" and "error" not in rows["baseline"]:
                speedup = rows["baseline"]["step_s"] / row["step_s"]
                memory = row["peak_mib"] / rows["baseline"]["peak_mib"]
                line += f"   {speedup:>8.2f}x {memory:>8.2f}"
            print(line)
    print(f"targets at the largest batch: >= {TIME_TARGET:.0f}x faster, <= {MEMORY_TARGET:.2f} of "
          f"the baseline's peak memory")


if __name__ == "__main__":
    main()
