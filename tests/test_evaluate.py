"""Evaluation: strict two-stage ranking against brute force, leaks, the paper protocol against the
official fixture, baselines on hand-made features, writers, and bad input."""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from parity_fixture import FIXTURE, load_fixture, state_at_eval_time
from vscn.data.encoders.base import ImageEncoder, ImageFeatures, TextEncoder
from vscn.data.features import FeatureFileError, pack_split
from vscn.data.records import Region, Scene
from vscn.evaluation import (EvaluationResult, Rankings, encode_split, evaluate_baseline, evaluate_encoded,
                             evaluate_model, evaluate_protocol, load_split, rank_gallery, shared_space,
                             strict_rankings, validation_metrics, write_metrics)
from vscn.evaluation.result import METRIC_COLUMNS
from vscn.evaluation.split import EncodedSplit
from vscn.evaluation.strict import rescore_pairs, stage_one, stage_one_scores
from vscn.metrics import metrics_from_ranks, target_ranks
from vscn.model import VSCN, VSCNConfig
from vscn.model.official import load_official_state_dict
from vscn.model.paper_protocol import paper_metrics, paper_shard_scores

DEVICE = torch.device(os.environ.get("VSCN_TEST_DEVICE", "cpu"))
ATOL = 1e-5
TINY = VSCNConfig(region_dim=6, query_dim=5, global_dim=5, num_regions=4, max_turns=3, embed_dim=8,
                  num_heads=2, ffn_dim=16, visual_layers=1, crossmodal_layers=2, gpo_pe_dim=4,
                  gpo_hidden_dim=4)
FIXTURE_TURNS = (1, 5, 10)


# ------------------------------------------------------------------------------------------ helpers

class ArrayImageEncoder(ImageEncoder):
    """Serves given region and global features by split position."""

    def __init__(self, regions: np.ndarray, global_features: np.ndarray, name: str = "fake-image") -> None:
        super().__init__({"model_name": "fake"})
        self.name = name
        self.regions, self.global_features = regions, global_features

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        rows = slice(first_index, first_index + len(scenes))
        boxes = np.zeros((len(scenes), num_regions, 4), np.float32)
        return ImageFeatures(self.regions[rows], boxes, self.global_features[rows])


class ArrayTextEncoder(TextEncoder):
    """Serves given caption features (one array per scene) by split position."""

    def __init__(self, queries: Sequence[np.ndarray], name: str = "fake-text") -> None:
        super().__init__({"model_name": "fake"})
        self.name = name
        self.queries = queries

    def encode_batch(self, scenes: Sequence[Scene], first_index: int) -> list[np.ndarray]:
        return list(self.queries[first_index:first_index + len(scenes)])


def write_features(path: Path, regions: np.ndarray, queries: Sequence[np.ndarray], global_features: np.ndarray,
                   encoder_names: tuple[str, str] = ("fake-image", "fake-text")) -> Path:
    """A feature file of len(regions) scenes; scene i has len(queries[i]) captions."""
    scenes = [Scene(100 + 3 * i, 32, 32, regions=tuple(Region(10 * j, (0.0, 0.0, 8.0, 8.0), f"caption {j}")
                                                        for j in range(len(q))))
              for i, q in enumerate(queries)]
    return pack_split(scenes, ArrayImageEncoder(np.asarray(regions, np.float32),
                                                np.asarray(global_features, np.float32), encoder_names[0]),
                      ArrayTextEncoder([np.asarray(q, np.float32) for q in queries], encoder_names[1]),
                      path, num_regions=regions.shape[1], batch_size=4)


def random_features(path: Path, config: VSCNConfig, num_scenes: int, seed: int) -> Path:
    generator = np.random.default_rng(seed)
    regions = generator.standard_normal((num_scenes, config.num_regions, config.region_dim))
    # more captions than T for some scenes: evaluation must take the first T
    queries = [generator.standard_normal((config.max_turns + i % 2, config.query_dim)) for i in range(num_scenes)]
    global_features = generator.standard_normal((num_scenes, config.global_dim))
    return write_features(path, regions, queries, global_features)


def tiny_model(seed: int = 0) -> VSCN:
    torch.manual_seed(seed)
    return VSCN(TINY).to(DEVICE).eval()


def encoded(model: VSCN, num_scenes: int, seed: int = 0) -> EncodedSplit:
    generator = torch.Generator().manual_seed(seed)
    regions = torch.randn(num_scenes, TINY.num_regions, TINY.region_dim, generator=generator).to(DEVICE)
    queries = torch.randn(num_scenes, TINY.max_turns, TINY.query_dim, generator=generator).to(DEVICE)
    with torch.no_grad():
        r, c = model.encode_images(regions)
        q = model.encode_queries(queries)
    return EncodedSplit(np.arange(num_scenes) * 2 + 1, r, c, q)


def brute_force(model: VSCN, split: EncodedSplit) -> dict[str, torch.Tensor]:
    """S1, G and fused ``(T, Q, N)`` by a plain loop: every pair on its own, turn by turn."""
    n, max_turns = split.size, model.config.max_turns
    out = {key: torch.zeros(max_turns, n, n, device=DEVICE) for key in ("S1", "G", "fused")}
    with torch.no_grad():
        for t in range(1, max_turns + 1):
            slots = torch.arange(t, device=DEVICE)
            for i in range(n):
                for j in range(n):
                    one = model.batch_scores(split.r[j:j + 1], split.c[j:j + 1], split.q[i:i + 1], slots)
                    s1, s2, g = one["S1"][0, 0, -1], one["S2"][0, 0, -1], one["G"][0, 0]
                    out["S1"][t - 1, i, j], out["G"][t - 1, i, j] = s1, g
                    out["fused"][t - 1, i, j] = (s1 + s2 + g) / 3
    return out


# ------------------------------------------------------------------------------------------ chunked scoring

def test_chunked_stage_one_and_rescoring_equal_direct_computation() -> None:
    model, split = tiny_model(), encoded(tiny_model(), 9)
    turns = (1, 3)
    with torch.no_grad():
        direct = model.local_scores(split.q, split.r)[..., [0, 2]]  # (Q, N, 2)
        chunked = stage_one_scores(model, split.q, split.r, turns, score_budget=2 * TINY.num_regions)
        torch.testing.assert_close(chunked, direct, atol=ATOL, rtol=0)
        first = stage_one(model, split.r, split.q, torch.arange(9, device=DEVICE), turns, top_k=4,
                          score_budget=30)  # a few query sets and images per block
        expected_rank = target_ranks(direct[..., 1], torch.arange(9, device=DEVICE))
        torch.testing.assert_close(first.target_rank[1], expected_rank)
        torch.testing.assert_close(direct[..., 1].gather(1, first.top_index[1]), direct[..., 1].topk(4).values)
        query_index = torch.arange(9, device=DEVICE).repeat_interleave(9)
        image_index = torch.arange(9, device=DEVICE).repeat(9)
        in_chunks = rescore_pairs(model, split.r, split.c, split.q, query_index, image_index, 2, pair_batch=4)
        at_once = model.pair_turn_scores(split.r, split.c, split.q, [2], image_index, query_index)
    for key in in_chunks:
        torch.testing.assert_close(in_chunks[key], at_once[key][:, 0], atol=ATOL, rtol=0)


# ------------------------------------------------------------------------------------------ strict

def test_strict_with_k_equal_n_is_brute_force_pairwise_scoring() -> None:
    model = tiny_model(1)
    split = encoded(model, 7, seed=1)
    expected = brute_force(model, split)
    targets = torch.arange(7, device=DEVICE)
    ranking = strict_rankings(model, split.r, split.c, split.q, (1, 2, 3), top_k=7, keep=7, score_budget=50)
    for k in range(3):
        for key, name in (("fused", "fused"), ("G", "G")):
            torch.testing.assert_close(ranking.rank[key][k], target_ranks(expected[name][k], targets))
            best = expected[name][k].sort(dim=1, descending=True)
            torch.testing.assert_close(ranking.top_scores[key][k], best.values, atol=ATOL, rtol=0)
            torch.testing.assert_close(ranking.top_index[key][k], best.indices)
        torch.testing.assert_close(ranking.s1_rank[k], target_ranks(expected["S1"][k], targets))
    results = evaluate_encoded(model, split, ("strict", "s1_only", "g_only"), top_k=50, show=4)
    for name, key in (("strict", "fused"), ("s1_only", "S1"), ("g_only", "G")):
        assert results[name].n_queries == results[name].n_gallery == 7
        for k, metrics in enumerate(results[name].turns):
            assert metrics == metrics_from_ranks(target_ranks(expected[key][k], targets).cpu(), k + 1)
    assert results["strict"].extra["top_k"] == 7  # capped at N
    assert results["strict"].rankings.top.shape == (3, 7, 4)


def test_strict_rescores_only_targets_within_top_k() -> None:
    model = tiny_model(2)
    split = encoded(model, 8, seed=2)
    expected = brute_force(model, split)
    targets = torch.arange(8, device=DEVICE)
    top_k = 3
    ranking = strict_rankings(model, split.r, split.c, split.q, (1, 2, 3), top_k=top_k, keep=top_k)
    for k in range(3):
        s1_rank = target_ranks(expected["S1"][k], targets)
        candidates = expected["S1"][k].topk(top_k, dim=1).indices  # (Q, K), no ties in random scores
        fused = expected["fused"][k].gather(1, candidates)
        target_fused = expected["fused"][k].gather(1, targets[:, None])
        within = (fused >= target_fused).sum(dim=1)
        torch.testing.assert_close(ranking.rank["fused"][k], torch.where(s1_rank <= top_k, within, s1_rank))
        assert set(ranking.top_index["fused"][k, 0].tolist()) == set(candidates[0].tolist())
    assert (ranking.rank["fused"] != ranking.s1_rank).any(), "rescoring changed no rank: weak test"


def test_strict_has_no_query_leak() -> None:
    model = tiny_model(3)
    split = encoded(model, 6, seed=3)
    changed_q = split.q.clone()
    changed_q[0] = torch.nn.functional.normalize(torch.randn_like(changed_q[0]), dim=-1)
    rankings = [strict_rankings(model, split.r, split.c, q, (1, 2, 3), top_k=6, keep=6) for q in (split.q, changed_q)]
    assert not torch.equal(rankings[0].top_scores["fused"][:, 0], rankings[1].top_scores["fused"][:, 0])
    for key in ("fused", "G"):
        torch.testing.assert_close(rankings[0].top_scores[key][:, 1:], rankings[1].top_scores[key][:, 1:])
        torch.testing.assert_close(rankings[0].top_index[key][:, 1:], rankings[1].top_index[key][:, 1:])


def test_paper_protocol_leaks_queries_into_other_scores() -> None:
    """Defect 2 of the official evaluation: image 0 is contextualised with query set 0, so changing
    query set 0 changes the score of query set 1 against image 0."""
    model = tiny_model(3)
    split = encoded(model, 4, seed=3)
    changed_q = split.q.clone()
    changed_q[0] = torch.nn.functional.normalize(torch.randn_like(changed_q[0]), dim=-1)
    sims = [paper_shard_scores(model, split.r, split.c, q, turn=3, shard_size=4) for q in (split.q, changed_q)]
    # rows images, columns query sets
    assert abs(float(sims[0][0, 1] - sims[1][0, 1])) > 1e-4
    torch.testing.assert_close(sims[0][1:, 1], sims[1][1:, 1], atol=1e-12, rtol=0)


def test_rank_gallery_is_the_strict_order_for_one_query_set() -> None:
    model = tiny_model(4)
    split = encoded(model, 9, seed=4)
    generator = torch.Generator().manual_seed(4)
    features = torch.randn(9, TINY.max_turns, TINY.query_dim, generator=generator).to(DEVICE)
    q = model.encode_queries(features).detach()
    top_k = 4
    ranking = strict_rankings(model, split.r, split.c, q, (2, 3), top_k=top_k, keep=top_k)
    s1 = model.local_scores(q[5:6], split.r)[0].detach()  # (N, T)
    for k, turn in enumerate((2, 3)):
        result = rank_gallery(model, split.r, split.c, features[5, :turn], top_k=top_k)
        assert sorted(result.order.tolist()) == list(range(9)) and result.num_rescored == top_k
        torch.testing.assert_close(result.order[:top_k], ranking.top_index["fused"][k, 5])
        torch.testing.assert_close(result.scores[:top_k], ranking.top_scores["fused"][k, 5], atol=ATOL, rtol=0)
        rest = result.order[top_k:]
        torch.testing.assert_close(result.scores[top_k:], s1[rest, turn - 1], atol=ATOL, rtol=0)
        assert (result.scores[top_k:].diff() <= 0).all()
    with pytest.raises(ValueError, match="1 <= n <= 3"):
        rank_gallery(model, split.r, split.c, features[5, :0])


# ------------------------------------------------------------------------------------------ paper protocol

@pytest.fixture(scope="module")
def parity() -> dict:
    fixture = load_fixture()
    if fixture is None:
        pytest.skip(f"parity fixture not found at {FIXTURE}")
    return fixture


def test_paper_protocol_from_a_feature_file_matches_the_official_fixture(parity: dict, tmp_path: Path) -> None:
    inputs = parity["inputs"]
    path = write_features(tmp_path / "parity.h5", inputs["regions"].numpy(), list(inputs["queries"].numpy()),
                          inputs["clip_image"].numpy())
    model = load_official_state_dict(state_at_eval_time(parity), parity["hparams"])
    shard_size = int(parity["hparams"]["paper_shard_size"])
    split = encode_split(model, path)
    for turn in FIXTURE_TURNS:
        expected = parity["outputs"][f"paper.turn{turn}.sims"]
        torch.testing.assert_close(paper_shard_scores(model.eval(), split.r, split.c, split.q, turn, shard_size),
                                   expected, atol=ATOL, rtol=0)
    result = evaluate_protocol(model, path, "paper", turns=FIXTURE_TURNS, shard_size=shard_size)
    assert (result.n_queries, result.extra["shard_size"], result.extra["n_not_covered"]) == (8, shard_size, 0)
    for metrics, turn in zip(result.turns, FIXTURE_TURNS):
        got = torch.tensor([metrics.r1, metrics.r5, metrics.r10, metrics.meanr], dtype=torch.float64)
        torch.testing.assert_close(got, parity["outputs"][f"paper.turn{turn}.r1_r5_r10_meanr"])


def test_paper_protocol_reports_the_floor_coverage() -> None:
    model = tiny_model(5)
    split = encoded(model, 11, seed=5)
    result = evaluate_encoded(model, split, ("paper",), turns=(2,), shard_size=4)["paper"]
    assert (result.n_queries, result.n_gallery, result.extra["n_not_covered"]) == (8, 8, 3)
    assert "covers 8 of 11" in result.label
    sims = paper_shard_scores(model, split.r, split.c, split.q, 2, 4)
    assert result.turns[0] == paper_metrics(sims, 2)
    with pytest.raises(ValueError, match="fewer than one shard"):
        evaluate_encoded(model, split, ("paper",), shard_size=12)


# ------------------------------------------------------------------------------------------ files end to end

def test_evaluate_model_on_a_feature_file(tmp_path: Path) -> None:
    path = random_features(tmp_path / "val.h5", TINY, 10, seed=6)
    model = tiny_model(6)
    results = evaluate_model(model, path, ("strict", "paper", "s1_only", "g_only"), top_k=4, shard_size=4,
                             batch_size=3)
    assert [r.n_queries for r in results.values()] == [10, 8, 10, 10]
    assert all(len(r.turns) == TINY.max_turns for r in results.values())
    rankings = results["strict"].rankings
    assert rankings.image_id.tolist() == [100 + 3 * i for i in range(10)]
    assert rankings.top.shape == rankings.scores.shape == (TINY.max_turns, 10, 4)
    # the same numbers from tensors encoded in one go
    split = load_split(path, TINY.max_turns)
    assert split.queries.shape == (10, TINY.max_turns, TINY.query_dim)
    with torch.no_grad():
        r, c = model.encode_images(split.regions.to(DEVICE))
        q = model.encode_queries(split.queries.to(DEVICE))
    direct = evaluate_encoded(model, EncodedSplit(split.image_ids, r, c, q), ("strict",), top_k=4)["strict"]
    for a, b in zip(direct.turns, results["strict"].turns):
        assert a == pytest.approx(b)


def test_validation_metrics_restores_the_training_mode(tmp_path: Path) -> None:
    split = load_split(random_features(tmp_path / "val.h5", TINY, 6, seed=7), TINY.max_turns)
    model = tiny_model(7).train()
    values = validation_metrics(model, split, turns=(1, 3), top_k=2)
    assert model.training
    assert set(values) == {f"turn{t}_{m}" for t in (1, 3) for m in METRIC_COLUMNS[1:]} | {"rsum"}
    assert values["rsum"] == pytest.approx(values["turn1_r1"] + values["turn1_r5"] + values["turn1_r10"])
    paper = validation_metrics(model, split, protocol="paper", shard_size=3)
    assert set(paper) == {f"turn1_{m}" for m in METRIC_COLUMNS[1:]} | {"rsum"}
    with pytest.raises(ValueError, match="unknown protocol"):
        validation_metrics(model, split, protocol="s1_only")


def test_bad_arguments_are_clear_errors(tmp_path: Path) -> None:
    model, split = tiny_model(), encoded(tiny_model(), 4)
    with pytest.raises(ValueError, match="within 1..3"):
        evaluate_encoded(model, split, ("strict",), turns=(0, 2))
    with pytest.raises(ValueError, match="unknown evaluation"):
        evaluate_encoded(model, split, ("exact",))
    wrong = VSCN(VSCNConfig(region_dim=9, query_dim=5, global_dim=5, num_regions=4, max_turns=3, embed_dim=8,
                            num_heads=2, ffn_dim=16, gpo_pe_dim=4, gpo_hidden_dim=4))
    path = random_features(tmp_path / "val.h5", TINY, 4, seed=8)
    with pytest.raises(FeatureFileError, match=r"val\.h5.*region_dim 6 \(model: 9\)"):
        evaluate_protocol(wrong, path)
    diverged = tiny_model()
    with torch.no_grad():
        diverged.region_encoder.linear.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="S1 scores contain NaN"):
        evaluate_protocol(diverged, path, turns=(1,))


def test_nan_in_features_is_a_clear_error(tmp_path: Path) -> None:
    path = random_features(tmp_path / "val.h5", TINY, 5, seed=9)
    with h5py.File(path, "r+") as file:
        file["regions"][3, 1, 2] = np.nan
    with pytest.raises(FeatureFileError, match=r"val\.h5: region features of image 109 \(row 3\).*NaN"):
        evaluate_protocol(tiny_model(), path)
    with h5py.File(path, "r+") as file:
        file["regions"][3, 1, 2] = 0.0
        file["queries"][2, 0] = np.inf  # scene 0's third caption, one of its first T
    with pytest.raises(FeatureFileError, match=r"query features of image 100 "):
        evaluate_baseline(path, "cosine_sum", max_turns=TINY.max_turns)


# ------------------------------------------------------------------------------------------ baselines

def hand_made_baseline_file(path: Path, names: tuple[str, str]) -> Path:
    """Global features e0, e1, e2. Scene 0's queries are 10 e1, e0, e0; scenes 1 and 2 repeat e1 and e2."""
    eye = np.eye(3)
    queries = [np.stack([10 * eye[1], eye[0], eye[0]]), np.stack([eye[1]] * 3), np.stack([eye[2]] * 3)]
    regions = np.ones((3, 2, 4))
    return write_features(path, regions, queries, eye, names)


def test_cosine_baselines_on_a_hand_made_case(tmp_path: Path) -> None:
    path = hand_made_baseline_file(tmp_path / "test.h5", ("fake-image", "fake-text"))
    # scene 0, turn 1: only image 1 is similar, images 0 and 2 tie at 0 (the tie counts against it): rank 3.
    # turn 2: mean (10 e1 + e0) / 2 prefers image 1; sums tie 1 : 1 with image 1: rank 2 for both.
    # turn 3: mean (10 e1 + 2 e0) / 3 still prefers image 1 (rank 2); sum 2 for image 0 vs 1: rank 1.
    expected = {"cosine_mean": [3, 2, 2], "cosine_sum": [3, 2, 1]}
    for name, scene0_ranks in expected.items():
        result = evaluate_baseline(path, name, max_turns=3)
        assert result.skipped is None and result.n_queries == 3
        assert result.label.endswith("(not a shared space)") and result.extra["shared_space"] is False
        for turn, rank in zip(result.turns, scene0_ranks):
            assert turn == metrics_from_ranks(torch.tensor([rank, 1, 1]), turn.turn)


def test_baseline_shared_space_and_skipped_when_dimensions_differ(tmp_path: Path) -> None:
    shared = evaluate_baseline(hand_made_baseline_file(tmp_path / "a.h5", ("vg-precomputed", "vg-precomputed")),
                               "cosine_mean", max_turns=3, turns=(3,))
    assert shared.extra["shared_space"] is True and "not a shared space" not in shared.label
    assert [m.turn for m in shared.turns] == [3]
    assert shared_space({"image_encoder": "open-clip", "text_encoder": "open-clip",
                         "image_encoder_settings": '{"model_name": "ViT-B-16"}',
                         "text_encoder_settings": '{"model_name": "ViT-L-14"}'})[0] is False
    path = random_features(tmp_path / "b.h5", TINY, 3, seed=10)  # Dq 5, Dg 5 -> make Dg differ
    generator = np.random.default_rng(0)
    other = write_features(tmp_path / "c.h5", generator.standard_normal((3, 4, 6)),
                           [generator.standard_normal((3, 5))] * 3, generator.standard_normal((3, 7)))
    skipped = evaluate_baseline(other, "cosine_sum", max_turns=3)
    assert skipped.turns == () and "5-d" in skipped.skipped and "7-d" in skipped.skipped
    assert evaluate_baseline(path, "cosine_sum", max_turns=3).skipped is None
    with pytest.raises(ValueError, match="unknown baseline"):
        evaluate_baseline(path, "random", max_turns=3)


# ------------------------------------------------------------------------------------------ writers

def _result(with_rankings: bool = True) -> EvaluationResult:
    turns = tuple(metrics_from_ranks(torch.tensor([1, 2, 7]), t) for t in (1, 2))
    rankings = Rankings(np.array([5, 8, 9]), np.array([1, 2]), np.zeros((2, 3, 2), np.int64),
                        np.ones((2, 3, 2), np.float32)) if with_rankings else None
    return EvaluationResult("strict", "a label", 3, 3, turns, {"top_k": 2}, rankings)


def test_write_metrics_json_csv_and_rankings(tmp_path: Path) -> None:
    paths = write_metrics(_result(), tmp_path / "metrics", "test_strict")
    assert [p.name for p in paths] == ["test_strict.json", "test_strict.csv", "test_strict_rankings.npz"]
    document = json.loads(paths[0].read_text())
    assert {k: document[k] for k in ("protocol", "label", "n_queries", "n_gallery", "top_k")} == {
        "protocol": "strict", "label": "a label", "n_queries": 3, "n_gallery": 3, "top_k": 2}
    assert [set(row) for row in document["turns"]] == [set(METRIC_COLUMNS)] * 2
    assert document["turns"][0]["r1"] == pytest.approx(100 / 3) and document["turns"][1]["turn"] == 2
    with paths[1].open() as stream:
        rows = list(csv.DictReader(stream))
    assert tuple(rows[0]) == METRIC_COLUMNS and len(rows) == 2 and float(rows[0]["meanr"]) == pytest.approx(10 / 3)
    with np.load(paths[2], allow_pickle=False) as arrays:
        assert set(arrays.files) == {"image_id", "turn", "top", "scores"}
        assert arrays["top"].shape == (2, 3, 2) and arrays["image_id"].tolist() == [5, 8, 9]
    assert sorted(os.listdir(tmp_path / "metrics")) == sorted(p.name for p in paths)


def test_write_metrics_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_metrics(_result(), tmp_path, "run")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}

    def broken_savez(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken_savez)
    changed = EvaluationResult("strict", "another label", 3, 3, _result().turns, {}, _result().rankings)
    with pytest.raises(OSError, match="disk full"):
        write_metrics(changed, tmp_path, "run")
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # untouched, no temporaries
    skipped = EvaluationResult("cosine_sum", "b", 3, 3, (), {}, skipped="dims differ")
    json_path, csv_path = write_metrics(skipped, tmp_path, "skipped")
    assert json.loads(json_path.read_text())["skipped"] == "dims differ"
    assert csv_path.read_text().strip() == ",".join(METRIC_COLUMNS)
