"""VSCN modules: vectorised scores against plain loops, gradients, sizes, devices, the sampler."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import vscn.model
from vscn.model import VSCN, VSCNConfig, info_nce, sample_query_slots
from vscn.model.paper_protocol import paper_metrics, paper_shard_scores
from vscn.model.similarity import local_scores, paired_local_scores, prefix_attention_scores

# Device under test: CPU unless VSCN_TEST_DEVICE names another (e.g. cuda)
DEVICE = torch.device(os.environ.get("VSCN_TEST_DEVICE", "cpu"))
ATOL = 1e-5
# Deliberately odd sizes: nothing may assume the paper's 36 regions, 10 turns or square dims
SMALL = VSCNConfig(region_dim=7, query_dim=5, global_dim=3, num_regions=5, max_turns=3,
                   embed_dim=12, num_heads=3, ffn_dim=9, visual_layers=2, crossmodal_layers=1,
                   gpo_pe_dim=4, gpo_hidden_dim=6)


def _inputs(config: VSCNConfig, batch: int, seed: int = 0) -> tuple[torch.Tensor, ...]:
    gen = torch.Generator().manual_seed(seed)
    regions = torch.randn(batch, config.num_regions, config.region_dim, generator=gen)
    queries = torch.randn(batch, config.max_turns, config.query_dim, generator=gen)
    global_feats = torch.randn(batch, config.global_dim, generator=gen)
    return regions.to(DEVICE), queries.to(DEVICE), global_feats.to(DEVICE)


def _model(config: VSCNConfig = SMALL, seed: int = 0) -> VSCN:
    torch.manual_seed(seed)
    return VSCN(config).to(DEVICE)


def _encoded(batch: int) -> tuple[VSCN, torch.Tensor, torch.Tensor, torch.Tensor]:
    """An eval-mode SMALL model and, without autograd, its r, c and q of a random batch of ``batch``."""
    model = _model().eval()
    regions, queries, _ = _inputs(SMALL, batch)
    with torch.no_grad():
        r, c = model.encode_images(regions)
        q = model.encode_queries(queries)
    return model, r, c, q


def loop_local_scores(q: torch.Tensor, x: torch.Tensor, slope: float) -> torch.Tensor:
    """Reference: turn by turn, pair by pair, softmax over the first t queries of each region."""
    out = torch.zeros(q.shape[0], x.shape[0], q.shape[1], dtype=q.dtype, device=q.device)
    for i in range(q.shape[0]):
        for j in range(x.shape[0]):
            for t in range(1, q.shape[1] + 1):
                sims = F.leaky_relu(x[j] @ q[i, :t].T, slope)  # (R, t)
                attn = torch.softmax(sims, dim=1)
                out[i, j, t - 1] = (attn * sims).sum(dim=1).mean()
    return out


def test_local_scores_equal_per_turn_loop() -> None:
    gen = torch.Generator().manual_seed(1)
    q = F.normalize(torch.randn(4, 6, 8, generator=gen), dim=-1).to(DEVICE)
    x = (3 * torch.randn(5, 7, 8, generator=gen)).to(DEVICE)  # LayerNorm-sized regions
    expected = loop_local_scores(q, x, 0.1)
    torch.testing.assert_close(local_scores(q, x, 0.1), expected, atol=ATOL, rtol=0)
    paired = paired_local_scores(q, x[:4], 0.1)
    torch.testing.assert_close(paired, torch.diagonal(expected[:, :4], dim1=0, dim2=1).T,
                               atol=ATOL, rtol=0)


def test_model_s1_s2_equal_loop_on_r_and_u() -> None:
    model, r, c, q = _encoded(4)
    slots = torch.tensor([0, 2], device=DEVICE)
    with torch.no_grad():
        scores = model.batch_scores(r, c, q, slots)
        u = model.cross_modal(r, q, model.hidden_mask(slots, 4))
    selected = q[:, slots]
    torch.testing.assert_close(scores["S1"], loop_local_scores(selected, r, SMALL.leaky_slope),
                               atol=ATOL, rtol=0)
    torch.testing.assert_close(scores["S2"], loop_local_scores(selected, u, SMALL.leaky_slope),
                               atol=ATOL, rtol=0)
    assert scores["G"].shape == (4, 4)


def test_every_parameter_receives_a_gradient() -> None:
    model = _model().train()
    out = model(*_inputs(SMALL, 4))
    out["loss"].backward()
    for name, param in model.named_parameters():
        assert param.grad is not None, f"{name} got no gradient"
        assert torch.isfinite(param.grad).all(), name
        assert param.grad.abs().sum() > 0, f"{name} got an all-zero gradient"


@pytest.mark.parametrize("config", [SMALL, VSCNConfig(
    region_dim=9, query_dim=11, global_dim=13, num_regions=1, max_turns=1, embed_dim=10, num_heads=5,
    ffn_dim=3, visual_layers=0, crossmodal_layers=3, gpo_pe_dim=2, gpo_hidden_dim=3)])
def test_forward_follows_config_sizes_on_input_device(config: VSCNConfig) -> None:
    batch = 3
    model = _model(config).train()
    slots = sample_query_slots(config.max_turns, 0.5, torch.Generator().manual_seed(3))
    out = model(*_inputs(config, batch), slots=slots.to(DEVICE))
    n = slots.numel()
    assert out["S1"].shape == out["S2"].shape == (batch, batch, n)
    assert out["G"].shape == (batch, batch)
    for key in ("loss", "loss_infonce", "loss_distill"):
        assert out[key].shape == () and torch.isfinite(out[key])
    assert all(value.device.type == DEVICE.type for value in out.values())


def test_wrong_input_shape_is_a_clear_error() -> None:
    model = _model()
    regions, queries, global_feats = _inputs(SMALL, 2)
    with pytest.raises(ValueError, match=r"regions: expected shape \(B, 5, 7\)"):
        model(regions[:, :4], queries, global_feats)
    with pytest.raises(ValueError, match="queries"):
        model(regions, queries[..., :4], global_feats)


def test_config_rejects_inconsistent_sizes() -> None:
    with pytest.raises(ValueError, match="divisible"):
        VSCNConfig(embed_dim=10, num_heads=4)
    with pytest.raises(ValueError, match="unknown"):
        VSCNConfig.from_dict({**SMALL.to_dict(), "nhead": 4})
    assert VSCNConfig.from_dict(SMALL.to_dict()) == SMALL


def test_query_sampler_is_seeded_and_keeps_a_slot() -> None:
    draws = [sample_query_slots(10, 0.5, torch.Generator().manual_seed(7)) for _ in range(2)]
    assert torch.equal(draws[0], draws[1])
    gen = torch.Generator().manual_seed(0)
    seen_single = False
    for _ in range(200):
        slots = sample_query_slots(4, 0.95, gen)
        assert 1 <= slots.numel() <= 4
        assert torch.equal(slots, slots.sort().values) and slots.unique().numel() == slots.numel()
        seen_single |= slots.numel() == 1
    assert seen_single
    assert torch.equal(sample_query_slots(4, 0.95, gen, enabled=False), torch.arange(4))


def test_info_nce_equals_cross_entropy_both_ways() -> None:
    scores = torch.randn(5, 5, 3, generator=torch.Generator().manual_seed(2))
    labels = torch.arange(5)
    tau = SMALL.tau
    for t in range(3):
        expected = (F.cross_entropy(tau * scores[..., t], labels)
                    + F.cross_entropy(tau * scores[..., t].T, labels))
        torch.testing.assert_close(info_nce(scores, tau)[t], expected)


def test_gpo_prefix_pooling_equals_pooling_each_prefix() -> None:
    model = _model()
    q = torch.randn(4, SMALL.max_turns, SMALL.embed_dim, device=DEVICE)
    pooled = model.gpo.pool_prefixes(q)  # (B, T, d)
    for t in range(1, SMALL.max_turns + 1):
        torch.testing.assert_close(pooled[:, t - 1], model.gpo(q[:, :t]), atol=ATOL, rtol=0)
    # order of the queries inside a prefix does not matter
    torch.testing.assert_close(model.gpo(q.flip(1)), model.gpo(q), atol=ATOL, rtol=0)


def test_pair_scores_equal_one_pair_batches_and_ignore_other_queries() -> None:
    model, r, c, q = _encoded(4)
    with torch.no_grad():
        image_index = torch.tensor([0, 3, 1], device=DEVICE)
        query_index = torch.tensor([2, 3, 1], device=DEVICE)
        turns = [3, 1]
        pairs = model.pair_turn_scores(r, c, q, turns, image_index, query_index)
        expanded = model.pair_turn_scores(r[image_index], c[image_index], q[query_index], turns)
        for p, (i, j) in enumerate(zip(query_index.tolist(), image_index.tolist())):
            for k, turn in enumerate(turns):
                single = model.batch_scores(r[j:j + 1], c[j:j + 1], q[i:i + 1],
                                            torch.arange(turn, device=DEVICE))
                for key in ("S1", "S2"):
                    torch.testing.assert_close(pairs[key][p, k], single[key][0, 0, -1], atol=ATOL, rtol=0)
                torch.testing.assert_close(pairs["G"][p, k], single["G"][0, 0], atol=ATOL, rtol=0)
    for key in pairs:
        torch.testing.assert_close(pairs[key], expanded[key])
    torch.testing.assert_close(pairs["fused"], (pairs["S1"] + pairs["S2"] + pairs["G"]) / 3)


def test_paper_shards_floor_and_mix_orientations() -> None:
    model, r, c, q = _encoded(5)
    with torch.no_grad():
        sims = paper_shard_scores(model, r, c, q, turn=2, shard_size=2)
        assert sims.shape == (4, 4) and sims.dtype == torch.float64  # image 4 is never scored
        block = model.batch_scores(r[2:4], c[2:4], q[0:2], torch.arange(2, device=DEVICE))
    expected = (block["S1"][..., -1] + block["S2"][..., -1] + block["G"].T) / 3
    torch.testing.assert_close(sims[2:4, 0:2], expected.double(), atol=ATOL, rtol=0)


def test_paper_metrics_rank_query_sets_against_images() -> None:
    sims = torch.randn(30, 30, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    ranks = torch.tensor([int((torch.argsort(sims[:, i], descending=True) == i).nonzero())
                          for i in range(30)], dtype=torch.float64)  # columns are query sets
    metrics = paper_metrics(sims, turn=3)
    expected = [100 * (ranks < k).double().mean() for k in (1, 5, 10)] + [ranks.mean() + 1]
    got = [metrics.r1, metrics.r5, metrics.r10, metrics.meanr]
    torch.testing.assert_close(torch.tensor(got, dtype=torch.float64), torch.stack(expected))


def test_package_never_moves_tensors_to_a_fixed_device() -> None:
    """No .cuda() anywhere in the package: devices follow the inputs."""
    for source in Path(vscn.model.__file__).parent.glob("*.py"):
        assert ".cuda(" not in source.read_text(), source.name


def test_prefix_attention_gradient_matches_finite_differences() -> None:
    sims = torch.randn(2, 4, 3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    assert torch.autograd.gradcheck(prefix_attention_scores, (sims.to(DEVICE).requires_grad_(),))


def test_grad_checkpointing_keeps_loss_and_gradients() -> None:
    model = _model().train()
    inputs = _inputs(SMALL, 4)
    grads = []
    for enable in (False, True):
        model.set_grad_checkpointing(enable)
        model.zero_grad()
        torch.manual_seed(9)  # same dropout masks in both runs
        loss = model(*inputs)["loss"]
        loss.backward()
        grads.append((loss.detach(), [p.grad.clone() for p in model.parameters()]))
    torch.testing.assert_close(grads[0][0], grads[1][0])
    for plain, recomputed in zip(grads[0][1], grads[1][1]):
        torch.testing.assert_close(plain, recomputed, atol=1e-6, rtol=1e-5)
