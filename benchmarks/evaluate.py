"""Time of the strict protocol against gallery size N and the number K of rescored candidates.

Demo model size (d 256, 4 heads, FFN 1024, 2 + 2 layers, R 36, Dv 1280, Dq 384, T 10), random weights
and features. Per gallery size the table gives:

- ``encode``: every image through the region encoder and visual context transformer, every query
  set through the query encoder (O(N));
- ``stage 1``: S1 of all N query sets against all N images, O(N^2 R T d). One pass gives every turn
  (prefix sums), so this does not grow with the number of turns evaluated;
- ``stage 2 / turn``: the pairwise cross-modal rescoring of N x K pairs at one turn, O(N K) passes
  over R + T tokens. It is timed on ``--sample`` query sets (every pair costs the same, the pairs
  are independent) and scaled by N / sample when fewer than N are timed (marked ``*``);
- ``total``: encode + stage 1 + turns x stage 2 / turn, for evaluating every turn 1..T.

Encoding and stage one run once per gallery size; the K sweep reuses them.

    .venv/bin/python benchmarks/evaluate.py                         # N 250..2000 at K 10; K 10..100 at N 1000
    .venv/bin/python benchmarks/evaluate.py --sizes 250 500 --ks 10 --k-size 500 --sample 50
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vscn.evaluation.strict import rescore_pairs, stage_one  # noqa: E402
from vscn.model import VSCN, VSCNConfig  # noqa: E402

DEMO = VSCNConfig(region_dim=1280, query_dim=384, global_dim=1280, num_regions=36, max_turns=10, embed_dim=256,
                  num_heads=4, ffn_dim=1024, visual_layers=2, crossmodal_layers=2)
ENCODE_BATCH = 256
TIMED_TURN = DEMO.max_turns  # the most expensive turn for S1; stage two costs the same at every turn


def timed(function, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    out = function(*args, **kwargs)
    return out, time.perf_counter() - start


@torch.no_grad()
def encode(model: VSCN, num_scenes: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
    r_parts, c_parts, q_parts = [], [], []
    for start in range(0, num_scenes, ENCODE_BATCH):
        batch = min(ENCODE_BATCH, num_scenes - start)
        r, c = model.encode_images(torch.randn(batch, DEMO.num_regions, DEMO.region_dim, generator=generator))
        r_parts.append(r)
        c_parts.append(c)
        q_parts.append(model.encode_queries(torch.randn(batch, DEMO.max_turns, DEMO.query_dim, generator=generator)))
    return torch.cat(r_parts), torch.cat(c_parts), torch.cat(q_parts)


@torch.no_grad()
def measure(model: VSCN, num_scenes: int, ks: list[int], sample: int, seed: int) -> list[dict[str, float]]:
    """One gallery of ``num_scenes``: encode and stage one once (at the largest K: the top K columns
    of a larger top list are the top K), stage two for each K."""
    generator = torch.Generator().manual_seed(seed)
    (r, c, q), encode_s = timed(encode, model, num_scenes, generator)
    targets = torch.arange(num_scenes)
    first, stage_one_s = timed(stage_one, model, r, q, targets, [TIMED_TURN], max(ks))
    timed_queries = min(sample, num_scenes)
    rows = []
    for top_k in ks:
        candidates = first.top_index[0, :timed_queries, :top_k]  # (sample, K)
        query_index = targets[:timed_queries].repeat_interleave(top_k)
        _, sample_s = timed(rescore_pairs, model, r, c, q, query_index, candidates.flatten(), TIMED_TURN)
        stage_two_s = sample_s * num_scenes / timed_queries
        rows.append({"N": num_scenes, "K": top_k, "encode": encode_s, "stage1": stage_one_s,
                     "stage2": stage_two_s, "scaled": timed_queries < num_scenes,
                     "total": encode_s + stage_one_s + DEMO.max_turns * stage_two_s})
    return rows


def print_table(title: str, rows: list[dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"{'N':>6} {'K':>5} {'encode s':>9} {'stage 1 s':>10} {'stage 2 / turn s':>17} {'total (T turns) s':>18}")
    for row in rows:
        mark = "*" if row["scaled"] else " "
        print(f"{row['N']:>6} {row['K']:>5} {row['encode']:>9.2f} {row['stage1']:>10.2f} "
              f"{row['stage2']:>16.2f}{mark} {row['total']:>18.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--size-k", type=int, default=10, help="K while N varies")
    parser.add_argument("--ks", type=int, nargs="+", default=[10, 50, 100])
    parser.add_argument("--k-size", type=int, default=1000, help="N while K varies")
    parser.add_argument("--sample", type=int, default=50, help="query sets whose stage two is timed")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    model = VSCN(DEMO).eval()
    print(f"demo model, {torch.get_num_threads()} threads, stage two timed at turn {TIMED_TURN} "
          f"on up to {args.sample} query sets (* = scaled to N)")
    rows = []
    for size in sorted(set(args.sizes) | {args.k_size}):
        ks = sorted(set(args.ks) | {args.size_k}) if size == args.k_size else [args.size_k]
        rows += measure(model, size, ks, args.sample, args.seed)
    print_table(f"against gallery size (K = {args.size_k})",
                [row for row in rows if row["K"] == args.size_k and row["N"] in args.sizes])
    print_table(f"against K (N = {args.k_size})",
                [row for row in rows if row["N"] == args.k_size and row["K"] in args.ks])


if __name__ == "__main__":
    main()
