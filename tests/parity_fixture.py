"""The official parity fixture (../shared/fixtures/official_parity.pt), shared by the tests that use it."""

from __future__ import annotations

from pathlib import Path

import torch

from vscn.model.official import load_official_state_dict

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "official_parity.pt"
# Official BatchNorm keys and ours (the only modules with running statistics)
BATCHNORMS = {
    "sim_enc.v_global_w.embedding_local.1": "visual_sa.local_norm",
    "sim_enc.v_global_w.embedding_global.1": "visual_sa.global_norm",
    "sim_enc.proj.bns.0": "distill_head.norm",
}


def load_fixture() -> dict | None:
    """The fixture's contents, or None when the shared folder does not hold it."""
    return torch.load(FIXTURE, weights_only=True) if FIXTURE.exists() else None


def state_at_eval_time(fixture: dict) -> dict[str, torch.Tensor]:
    """The fixture's state dict with BatchNorm statistics as they were when its eval outputs ran.

    The fixture stores the running statistics after its train-mode pass (``num_batches_tracked``
    counts that pass), while its eval outputs were computed before it. One train-mode step sets
    ``stored = (1 - m) * before + m * batch``; running the same pass on our model gives
    ``m * batch``, so ``before`` follows. With ``num_batches_tracked == 0`` nothing is undone.
    """
    state = dict(fixture["state_dict"])
    model = load_official_state_dict(state, fixture["hparams"])
    stored = {name: buf.clone() for name, buf in model.named_buffers() if "running" in name}
    model.train()
    with torch.no_grad():
        inputs = fixture["inputs"]
        model(inputs["regions"], inputs["queries"], inputs["clip_image"])
    updated = dict(model.named_buffers())
    for official, ours in BATCHNORMS.items():
        passes = int(state[f"{official}.num_batches_tracked"])
        if passes == 0:
            continue
        assert passes == 1, f"{official}: cannot undo {passes} train passes"
        momentum = model.get_submodule(ours).momentum
        for stat in ("running_mean", "running_var"):
            before_pass = stored[f"{ours}.{stat}"]
            batch_part = updated[f"{ours}.{stat}"] - (1 - momentum) * before_pass  # m * batch
            state[f"{official}.{stat}"] = (before_pass - batch_part) / (1 - momentum)
    return state
