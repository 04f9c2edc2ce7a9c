"""Our VSCN against numbers produced by the authors' code (../shared/fixtures/official_parity.pt)."""

from __future__ import annotations

import argparse
import fractions
from pathlib import Path

import pytest
import torch

from parity_fixture import FIXTURE, load_fixture, state_at_eval_time
from vscn.model.official import (load_official_checkpoint, load_official_state_dict,
                                 official_hparams_to_config, official_outputs)

TOLERANCE = 1e-5

_FIXTURE = load_fixture()
_SKIP = pytest.mark.skip(reason=f"parity fixture not found at {FIXTURE}")
OUTPUT_KEYS = (list(_FIXTURE["outputs"]) if _FIXTURE is not None
               else [pytest.param("absent", marks=_SKIP)])


@pytest.fixture(scope="module")
def fixture() -> dict:
    if _FIXTURE is None:
        pytest.skip(f"parity fixture not found at {FIXTURE}")
    return _FIXTURE


@pytest.fixture(scope="module")
def ours(fixture: dict) -> dict[str, torch.Tensor]:
    return official_outputs(state_at_eval_time(fixture), fixture["hparams"], fixture["inputs"])


@pytest.mark.parametrize("key", OUTPUT_KEYS)
def test_output_matches_official(key: str, fixture: dict, ours: dict[str, torch.Tensor]) -> None:
    expected = fixture["outputs"][key]
    assert key in ours, f"official_outputs lacks {key}"
    torch.testing.assert_close(ours[key], expected, atol=TOLERANCE, rtol=0.0)


def test_every_fixture_key_is_produced(fixture: dict, ours: dict[str, torch.Tensor]) -> None:
    assert set(fixture["outputs"]) <= set(ours)


def test_fixture_hparams_give_its_sizes(fixture: dict) -> None:
    config = official_hparams_to_config(fixture["hparams"])
    regions = fixture["inputs"]["regions"]
    assert (config.num_regions, config.region_dim) == tuple(regions.shape[1:])
    assert (config.max_turns, config.query_dim) == tuple(fixture["inputs"]["queries"].shape[1:])
    assert config.embed_dim == fixture["outputs"]["eval.img_emb"].shape[-1]


def test_unused_official_parameters_are_dropped(fixture: dict) -> None:
    model = load_official_state_dict(fixture["state_dict"], fixture["hparams"])
    names = set(model.state_dict())
    assert not any("distill_loss" in name or "bns" in name for name in names)
    used = [k for k in fixture["state_dict"]
            if not k.startswith(("sim_enc.distill_loss.proj.", "sim_enc.proj.bns.1."))]
    assert len(names) == len(used)


def test_unknown_key_is_a_clear_error(fixture: dict) -> None:
    state = dict(fixture["state_dict"], **{"sim_enc.extra.weight": torch.zeros(3)})
    with pytest.raises(ValueError, match="sim_enc.extra.weight"):
        load_official_state_dict(state, fixture["hparams"])


def test_wrong_shape_is_a_clear_error(fixture: dict) -> None:
    key = "sim_enc.v_transformer.0.linear1.weight"
    state = dict(fixture["state_dict"], **{key: torch.zeros(3, 3)})
    with pytest.raises(ValueError, match=r"linear1\.weight.*\(3, 3\)"):
        load_official_state_dict(state, fixture["hparams"])


def test_missing_key_is_a_clear_error(fixture: dict) -> None:
    state = {k: v for k, v in fixture["state_dict"].items() if k != "sim_enc.cls_token.weight"}
    with pytest.raises(ValueError, match="summary_token"):
        load_official_state_dict(state, fixture["hparams"])


def _save_official_checkpoint(fixture: dict, path: Path, extra: object = None) -> None:
    """Write the fixture's parameters the way the official training script saves them."""
    modules = ("img_enc", "txt_enc", "sim_enc")
    parts = [{k[len(m) + 1:]: v for k, v in fixture["state_dict"].items() if k.startswith(m + ".")}
             for m in modules]
    checkpoint = {"epoch": 0, "model": parts, "best_rsum": 0.0, "Eiters": 1,
                  "opt": argparse.Namespace(**fixture["hparams"])}
    if extra is not None:
        checkpoint["extra"] = extra
    torch.save(checkpoint, path)


def test_official_checkpoint_loads_with_its_options(fixture: dict, tmp_path: Path) -> None:
    path = tmp_path / "model_best.pth.tar"
    _save_official_checkpoint(fixture, path)
    model, hparams = load_official_checkpoint(path)
    assert hparams["embed_size"] == fixture["hparams"]["embed_size"]
    reference = load_official_state_dict(fixture["state_dict"], fixture["hparams"])
    for name, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


def test_checkpoint_needing_arbitrary_unpickling_is_refused(fixture: dict, tmp_path: Path) -> None:
    path = tmp_path / "model_best.pth.tar"
    _save_official_checkpoint(fixture, path, extra=fractions.Fraction(1, 3))
    with pytest.raises(ValueError, match="allow_pickle"):
        load_official_checkpoint(path)
    model, _ = load_official_checkpoint(path, allow_pickle=True)
    assert model.config.embed_dim == fixture["hparams"]["embed_size"]
