"""Training: settings, schedule, exact resumption, checkpoints, logs, model selection, learning."""

from __future__ import annotations

import csv
import dataclasses
import io
import shutil
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch

from vscn.data.encoders.base import ImageEncoder, ImageFeatures, SentenceEncoder
from vscn.data.features import FeatureFile, pack_split
from vscn.data.records import Region, Scene
from vscn.metrics import metrics_from_ranks, target_ranks
from vscn.model import VSCN
from vscn.training import (CheckpointError, TrainConfig, build_scheduler, load_model, lr_factor,
                           model_config_for, resolve_device, train, turn_metrics_dict, validation_score)
from vscn.training.checkpoint import MODEL_KEYS
from vscn.training.logs import TRAIN_COLUMNS, val_columns

R, DV, DQ, DG, T = 4, 6, 5, 3, 3  # regions, feature sizes, query slots: small and all different
NUM_TRAIN, NUM_VAL = 24, 12
NOISE = 0.1  # caption features are a fixed projection of their region's feature plus this noise
# A tiny model; dropout and query sampling on so that resuming must restore every random stream
MODEL = {"embed_dim": 8, "num_heads": 2, "ffn_dim": 16, "visual_layers": 1, "crossmodal_layers": 1,
         "gpo_pe_dim": 4, "gpo_hidden_dim": 4, "visual_dropout": 0.1, "crossmodal_dropout": 0.1}
# 24 scenes in batches of 8: 3 steps per epoch
TRAIN = TrainConfig(epochs=3, batch_size=8, lr=1e-3, warmup_steps=2, lr_decay_epochs=2, grad_clip=2.0,
                    sample_queries=True, dropped_ratio=0.3, seed=3, device="cpu", log_every=2,
                    checkpoint_every=2)
STEPS_PER_EPOCH = NUM_TRAIN // TRAIN.batch_size


def region_features(image_id: int) -> np.ndarray:
    return np.random.default_rng(image_id).standard_normal((R, DV)).astype(np.float32)


class LearnableImages(ImageEncoder):
    """Random region features per image; the global feature is their mean's first DG values."""

    name = "learnable-image"

    def __init__(self) -> None:
        super().__init__({})

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        regions = np.stack([region_features(scene.image_id) for scene in scenes])  # (B, R, DV)
        return ImageFeatures(regions, np.zeros((len(scenes), num_regions, 4), np.float32),
                             regions.mean(axis=1)[:, :DG].copy())


class LearnableCaptions(SentenceEncoder):
    """Caption "image I region K" -> a fixed projection of that region's feature, plus noise."""

    name = "learnable-text"
    projection = np.random.default_rng(99).standard_normal((DV, DQ)).astype(np.float32)

    def __init__(self) -> None:
        super().__init__({})

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            _, image_id, _, region = text.split()
            noise = np.random.default_rng([int(image_id), int(region)]).standard_normal(DQ)
            rows.append(region_features(int(image_id))[int(region) % R] @ self.projection + NOISE * noise)
        return np.asarray(rows, np.float32).reshape(len(texts), DQ)


def write_features(path: Path, num_scenes: int, first_id: int) -> Path:
    scenes = []
    for k in range(num_scenes):
        image_id = first_id + k
        regions = tuple(Region(10 * image_id + j, (0.0, 0.0, 1.0, 1.0), f"image {image_id} region {j}")
                        for j in range(T + k % 3))
        scenes.append(Scene(image_id, 8, 8, regions=regions))
    return pack_split(scenes, LearnableImages(), LearnableCaptions(), path, num_regions=R)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("features")
    return write_features(root / "train.h5", NUM_TRAIN, 1), write_features(root / "val.h5", NUM_VAL, 1000)


def recall_validator(val_path: Path) -> Callable[[VSCN], dict[str, float]]:
    """Turn-1 and turn-T recalls of the fused batch scores on the whole (tiny) validation file."""
    with FeatureFile(val_path, in_memory=True) as features:
        starts = features.query_offsets[:-1]
        regions = torch.from_numpy(features.read_rows("regions", np.arange(NUM_VAL)))
        queries = torch.stack([torch.from_numpy(features.read_ranges("queries", [s], [s + T])) for s in starts])

    def validate(model: VSCN) -> dict[str, float]:
        r, c = model.encode_images(regions)
        scores = model.batch_scores(r, c, model.encode_queries(queries), torch.arange(T))
        targets = torch.arange(NUM_VAL)
        turns = [metrics_from_ranks(target_ranks((scores["S1"][..., t] + scores["S2"][..., t] + scores["G"]) / 3,
                                                 targets), t + 1) for t in range(T)]
        return turn_metrics_dict(turns)

    return validate


def scripted_validator(scores: Iterator[float]) -> Callable[[VSCN], dict[str, float]]:
    """Turn 1 only (as a cheap per-epoch validation): R@1 follows ``scores``, R@5 and R@10 are zero."""
    def validate(model: VSCN) -> dict[str, float]:
        assert not model.training and not torch.is_grad_enabled()
        return {"turn1_r1": next(scores), "turn1_r5": 0.0, "turn1_r10": 0.0}

    return validate


def run(data: tuple[Path, Path], out: Path, config: TrainConfig = TRAIN, model: dict | None = None,
        **kwargs):
    kwargs.setdefault("validate", recall_validator(data[1]))
    return train(data[0], out / "out", MODEL if model is None else model, config, max_turns=T,
                 state_path=out / "last.pt", **kwargs)


def weights(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, weights_only=True)["state_dict"]


def assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    different = [name for name in a if not torch.equal(a[name], b[name])]
    assert not different, f"tensors differ: {different}"


def save_edited(path: Path, original: bytes, edit: Callable[[dict], object]) -> None:
    """Write to ``path`` the checkpoint whose bytes are ``original`` after ``edit`` changed its dict."""
    payload = torch.load(io.BytesIO(original), weights_only=True)
    edit(payload)
    torch.save(payload, path)


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as stream:
        return list(csv.DictReader(stream))


# ------------------------------------------------------------------------------------------ settings

def test_train_config_rejects_unknown_keys_and_bad_values() -> None:
    assert TrainConfig.from_dict({"lr": 1e-3, "amp": "auto"}).lr == 1e-3
    with pytest.raises(ValueError, match="unknown train setting.*learning_rate"):
        TrainConfig.from_dict({"learning_rate": 1e-3})
    for bad in ({"device": "tpu"}, {"val_metric": "turn2"}, {"amp": "yes"}, {"batch_size": 1},
                {"lr_decay_factor": 0.0}, {"dropped_ratio": 1.0}):
        with pytest.raises(ValueError):
            TrainConfig.from_dict(bad)
    defaults = TrainConfig()  # the official recipe
    assert (defaults.lr, defaults.weight_decay, defaults.warmup_steps, defaults.lr_decay_epochs,
            defaults.grad_clip, defaults.batch_size) == (2e-4, 0.01, 2100, 15, 2.0, 128)


def test_model_config_comes_from_the_features_and_the_model_section(data: tuple[Path, Path]) -> None:
    sizes = FeatureFile(data[0], in_memory=False).sizes
    config = model_config_for(sizes, MODEL, T, TRAIN)
    assert (config.region_dim, config.query_dim, config.global_dim, config.num_regions) == (DV, DQ, DG, R)
    assert (config.max_turns, config.embed_dim, config.dropped_ratio) == (T, 8, TRAIN.dropped_ratio)
    with pytest.raises(ValueError, match="region_dim"):
        model_config_for(sizes, {"region_dim": 7}, T)
    with pytest.raises(ValueError, match="dropped_ratio"):
        model_config_for(sizes, {"dropped_ratio": 0.2}, T)
    with pytest.raises(ValueError, match="unknown VSCNConfig field.*embed_size"):
        model_config_for(sizes, {"embed_size": 8}, T)


def test_device_auto_picks_cuda_only_when_present() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            resolve_device("cuda")


def test_validation_score_turn1_and_mean_over_turns() -> None:
    metrics = {f"turn{t}_r{k}": float(t * k) for t in (1, 2) for k in (1, 5, 10)} | {"rsum": -1.0}
    assert validation_score(metrics, "turn1", 2) == 16.0
    assert validation_score(metrics, "mean_turns", 2) == (16.0 + 32.0) / 2
    with pytest.raises(KeyError, match="turn3_r1"):
        validation_score(metrics, "mean_turns", 3)


# ------------------------------------------------------------------------------------------ schedule

def test_warmup_then_step_decay() -> None:
    config = TrainConfig(warmup_steps=4, lr_decay_epochs=2, lr_decay_factor=0.1)
    steps_per_epoch = 3
    expected = {0: 0.25, 1: 0.5, 3: 1.0, 5: 1.0, 6: 0.1, 11: 0.1, 12: 0.01}
    for step, factor in expected.items():
        assert lr_factor(step, steps_per_epoch, config) == pytest.approx(factor)
    # the official warm-up: the k-th step (1-based) runs at k / warmup of the base lr
    assert lr_factor(2099, 800, TrainConfig()) == 1.0 and lr_factor(0, 800, TrainConfig()) == 1 / 2100
    assert lr_factor(15 * 800, 800, TrainConfig()) == pytest.approx(0.1)
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([parameter], lr=2.0)
    scheduler = build_scheduler(optimizer, steps_per_epoch, config)
    used = []
    for _ in range(13):
        used.append(optimizer.param_groups[0]["lr"])  # the lr this step runs at
        optimizer.step()
        scheduler.step()
    assert used == pytest.approx([2.0 * lr_factor(k, steps_per_epoch, config) for k in range(13)])


# ------------------------------------------------------------------------------------------ resuming

def test_a_stopped_or_killed_run_resumes_to_the_same_weights(data: tuple[Path, Path], tmp_path: Path) -> None:
    caller_rng = torch.get_rng_state()
    whole = run(data, tmp_path / "whole")
    assert torch.equal(torch.get_rng_state(), caller_rng), "training must not move the caller's RNG"
    assert whole.finished and whole.global_step == 3 * STEPS_PER_EPOCH

    # stopped mid-epoch 2 by max_steps, then resumed by a second call
    stopped = run(data, tmp_path / "stopped", max_steps=STEPS_PER_EPOCH + 2)
    assert not stopped.finished and stopped.global_step == STEPS_PER_EPOCH + 2
    resumed = run(data, tmp_path / "stopped")
    assert resumed.finished and resumed.global_step == whole.global_step

    # killed during the forward pass of step 6: the last saved state is from step 4 (checkpoint_every 2)
    forwards = 0

    def crash(module: torch.nn.Module, args: object, output: object) -> None:
        nonlocal forwards
        if isinstance(module, VSCN) and module.training:
            forwards += 1
            if forwards == 2 * STEPS_PER_EPOCH:
                raise KeyboardInterrupt("simulated kill")

    handle = torch.nn.modules.module.register_module_forward_hook(crash)
    try:
        with pytest.raises(KeyboardInterrupt):
            run(data, tmp_path / "killed")
    finally:
        handle.remove()
    assert torch.load(tmp_path / "killed" / "last.pt", weights_only=True)["global_step"] == 4
    run(data, tmp_path / "killed")

    for other in ("stopped", "killed"):
        assert_same_weights(weights(tmp_path / "whole/out/model.pt"), weights(tmp_path / other / "out/model.pt"))
        final = torch.load(tmp_path / other / "last.pt", weights_only=True)["model"]
        assert_same_weights(torch.load(tmp_path / "whole/last.pt", weights_only=True)["model"], final)
        for log in ("train_log.csv", "val_log.csv"):
            assert (tmp_path / other / "out" / log).read_text() == (tmp_path / "whole/out" / log).read_text()
    assert torch.load(tmp_path / "whole/out/model.pt", weights_only=True)["score"] == whole.best_score


def test_checkpoints_load_weights_only_and_rebuild_the_model(data: tuple[Path, Path], tmp_path: Path) -> None:
    result = run(data, tmp_path, config=dataclasses.replace(TRAIN, epochs=1))
    saved = torch.load(result.model_path, weights_only=True)
    assert set(saved) == set(MODEL_KEYS) and saved["metric"] == "turn1" and saved["epoch"] == 1
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert isinstance(state["rng"]["query_sampler"], torch.Tensor) and state["epoch"] == 1
    model, info = load_model(result.model_path)
    assert not model.training and info["step"] == STEPS_PER_EPOCH
    assert_same_weights(model.state_dict(), saved["state_dict"])
    assert info["config"]["region_dim"] == DV and info["config"]["embed_dim"] == MODEL["embed_dim"]

    # outputs deleted after the run (a workflow manager cleaning up): a new call restores them from last.pt
    logs = {name: (tmp_path / "out" / name).read_text() for name in ("train_log.csv", "val_log.csv")}
    shutil.rmtree(tmp_path / "out")
    again = run(data, tmp_path, config=dataclasses.replace(TRAIN, epochs=1))
    assert again.finished and again.global_step == result.global_step
    assert_same_weights(weights(again.model_path), saved["state_dict"])
    assert {name: (tmp_path / "out" / name).read_text() for name in logs} == logs


def test_bad_checkpoints_give_errors_naming_the_file(data: tuple[Path, Path], tmp_path: Path) -> None:
    one_epoch = dataclasses.replace(TRAIN, epochs=1)
    result = run(data, tmp_path, config=one_epoch, validate=None)
    state_path, model_path = tmp_path / "last.pt", result.model_path
    good_state, good_model = state_path.read_bytes(), model_path.read_bytes()

    with pytest.raises(CheckpointError, match="last.pt.*another model config.*embed_dim"):
        run(data, tmp_path, config=one_epoch, model={**MODEL, "embed_dim": 4})
    with pytest.raises(CheckpointError, match="last.pt.*other train settings.*lr"):
        run(data, tmp_path, config=dataclasses.replace(one_epoch, lr=5e-4))
    other_features = write_features(tmp_path / "other.h5", NUM_TRAIN + 1, 500)
    with pytest.raises(CheckpointError, match="last.pt.*other training features"):
        train(other_features, tmp_path / "out", MODEL, one_epoch, None, T, state_path)

    state_path.write_bytes(good_state[: len(good_state) // 2])
    with pytest.raises(CheckpointError, match="last.pt: cannot read"):
        run(data, tmp_path, config=one_epoch)
    model_path.write_bytes(good_model[:100])
    with pytest.raises(CheckpointError, match="model.pt: cannot read"):
        load_model(model_path)

    save_edited(model_path, good_model, lambda payload: payload.pop("config"))
    with pytest.raises(CheckpointError, match="model.pt.*lacks config"):
        load_model(model_path)
    wrong_width = torch.zeros(MODEL["embed_dim"], DV + 1)
    save_edited(model_path, good_model,
                lambda payload: payload["state_dict"].update({"region_encoder.linear.weight": wrong_width}))
    with pytest.raises(CheckpointError, match="(?s)model.pt: the stored weights do not fit.*region_encoder"):
        load_model(model_path)

    save_edited(state_path, good_state, lambda state: state.pop("optimizer"))
    with pytest.raises(CheckpointError, match="last.pt.*lacks optimizer"):
        run(data, tmp_path, config=one_epoch)


# ------------------------------------------------------------------------------------------ logs, selection

def test_logs_have_the_right_columns_and_rows(data: tuple[Path, Path], tmp_path: Path) -> None:
    result = run(data, tmp_path)
    rows = read_csv(result.train_log)
    assert list(rows[0]) == list(TRAIN_COLUMNS)
    # every 2nd step, plus each epoch end that is not one already (steps 3 and 9)
    assert [int(row["step"]) for row in rows] == [2, 3, 4, 6, 8, 9]
    assert [int(row["epoch"]) for row in rows] == [1, 1, 2, 2, 3, 3]
    assert float(rows[0]["lr"]) == pytest.approx(TRAIN.lr)  # after 2 steps the warm-up is over
    assert float(rows[-1]["lr"]) == pytest.approx(TRAIN.lr * TRAIN.lr_decay_factor)  # epoch 3 decayed
    for row in rows:
        parts = sum(float(row[name]) for name in ("loss_s1", "loss_s2", "loss_global"))
        assert float(row["loss_infonce"]) == pytest.approx(parts, rel=1e-5)
        assert float(row["loss"]) == pytest.approx(float(row["loss_infonce"]) + float(row["loss_distill"]),
                                                   rel=1e-5)
    val = read_csv(result.val_log)
    assert tuple(val[0]) == val_columns(T) == ("epoch", "step", "score", "t1_r1", "t1_r5", "t1_r10",
                                               "t3_r1", "t3_r5", "t3_r10")
    assert [(int(row["epoch"]), int(row["step"])) for row in val] == [(1, 3), (2, 6), (3, 9)]
    for row in val:
        assert float(row["score"]) == pytest.approx(sum(float(row[f"t1_r{k}"]) for k in (1, 5, 10)), rel=1e-5)


def test_model_pt_keeps_the_best_epoch(data: tuple[Path, Path], tmp_path: Path) -> None:
    result = run(data, tmp_path / "three", validate=scripted_validator(iter([10.0, 30.0, 20.0])))
    assert (result.best_epoch, result.best_score) == (2, 30.0)
    saved = torch.load(result.model_path, weights_only=True)
    assert (saved["epoch"], saved["step"], saved["score"]) == (2, 2 * STEPS_PER_EPOCH, 30.0)
    val = read_csv(result.val_log)
    assert [row["score"] for row in val] == ["10", "30", "20"] and {row["t3_r1"] for row in val} == {""}
    # the schedule does not depend on the number of epochs: a 2-epoch run ends with those weights
    two = run(data, tmp_path / "two", config=dataclasses.replace(TRAIN, epochs=2),
              validate=scripted_validator(iter([1.0, 2.0])))
    assert_same_weights(saved["state_dict"], weights(two.model_path))
    final = torch.load(tmp_path / "three/last.pt", weights_only=True)["model"]
    assert not torch.equal(final["region_encoder.linear.weight"], saved["state_dict"]["region_encoder.linear.weight"])

    # without validation model.pt holds the last epoch, and the validation log only its header
    unvalidated = run(data, tmp_path / "unvalidated", config=dataclasses.replace(TRAIN, epochs=2), validate=None)
    saved = torch.load(unvalidated.model_path, weights_only=True)
    assert (saved["epoch"], saved["score"], saved["metric"]) == (2, None, None)
    assert_same_weights(saved["state_dict"], weights(two.model_path))
    assert unvalidated.val_log.read_text().splitlines() == [",".join(val_columns(T))]


# ------------------------------------------------------------------------------------------ learning

def test_training_reduces_the_loss_and_finds_the_targets(data: tuple[Path, Path], tmp_path: Path) -> None:
    config = dataclasses.replace(TRAIN, epochs=12, lr=3e-3, lr_decay_epochs=100, log_every=100)
    result = run(data, tmp_path, config=config, model={**MODEL, "embed_dim": 16, "ffn_dim": 32})
    losses = [float(row["loss"]) for row in read_csv(result.train_log)]  # one row per epoch
    assert losses[-1] < 0.6 * losses[0]
    val = read_csv(result.val_log)
    chance = 100.0 * 10 / NUM_VAL  # R@10 of a random ranking
    assert float(val[-1]["t3_r1"]) > float(val[0]["t3_r1"]) and float(val[-1]["t3_r5"]) > chance / 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="mixed precision runs on CUDA only; no CUDA here")
def test_mixed_precision_training_on_cuda_resumes_and_saves_a_portable_model(data: tuple[Path, Path],
                                                                             tmp_path: Path) -> None:
    config = dataclasses.replace(TRAIN, device="auto", amp="auto")
    stopped = run(data, tmp_path, config=config, max_steps=STEPS_PER_EPOCH + 1)
    assert stopped.device.startswith("cuda") and not stopped.finished
    state = torch.load(tmp_path / "last.pt", weights_only=True)
    assert state["scaler"] and state["rng"]["cuda"]  # the GradScaler and the CUDA stream are saved
    result = run(data, tmp_path, config=config)
    assert result.finished and all(row["loss"] != "nan" for row in read_csv(result.train_log))
    model, _ = load_model(result.model_path)  # saved on the CPU, loads without CUDA
    assert next(model.parameters()).device.type == "cpu"
