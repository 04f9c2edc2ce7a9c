"""Bridges to the authors' VSCN code (GitHub zhli-cs/VSCN): options, parameters and outputs.

Official parameters are named ``img_enc.*``, ``txt_enc.*`` and ``sim_enc.*`` (the three modules of
their model object); their checkpoints store them as a list of those three state dicts.
"""

from __future__ import annotations

import argparse
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from vscn.model.config import VSCNConfig
from vscn.model.paper_protocol import PAPER_SHARD_SIZE, paper_metrics, paper_shard_scores
from vscn.model.vscn import VSCN

# Sizes the official code fixes instead of reading options
OFFICIAL_NUM_REGIONS = 36
OFFICIAL_QUERY_DIM = 512  # CLIP ViT-B/16 text features
OFFICIAL_GLOBAL_DIM = 512  # CLIP ViT-B/16 image features
# Order of the three state dicts in an official checkpoint's 'model' list
OFFICIAL_MODULES = ("img_enc", "txt_enc", "sim_enc")

# Official parameter prefix -> ours (first match wins)
_PREFIXES = (
    ("img_enc.fc.", "region_encoder.linear."),
    ("txt_enc.project.", "query_encoder.linear."),
    ("sim_enc.cls_token.weight", "summary_token"),
    ("sim_enc.v_transformer.", "visual_context.layers."),
    ("sim_enc.vl_transformer.", "crossmodal_context.layers."),
    ("sim_enc.v_global_w.embedding_local.0.", "visual_sa.local_proj."),
    ("sim_enc.v_global_w.embedding_local.1.", "visual_sa.local_norm."),
    ("sim_enc.v_global_w.embedding_global.0.", "visual_sa.global_proj."),
    ("sim_enc.v_global_w.embedding_global.1.", "visual_sa.global_norm."),
    ("sim_enc.v_global_w.embedding_common.0.", "visual_sa.score."),
    ("sim_enc.proj.layers.0.", "distill_head.hidden."),
    ("sim_enc.proj.bns.0.", "distill_head.norm."),
    ("sim_enc.proj.layers.1.", "distill_head.out."),
    ("sim_enc.gpool.gru.", "gpo.gru."),
    ("sim_enc.gpool.linear.", "gpo.score."),
)
# Inside a context layer: official part -> ours
_LAYER_PARTS = (
    (".with_pos_embed.src_pos_embed.weight", ".pos_embed"),
    (".self_attn.", ".attn."),
    (".linear1.", ".ffn_in."),
    (".linear2.", ".ffn_out."),
)
# Parameters the official forward pass never uses (DistillLoss.proj, the MLP's second BatchNorm)
_UNUSED_PREFIXES = ("sim_enc.distill_loss.proj.", "sim_enc.proj.bns.1.")


def official_hparams_to_config(hparams: Mapping[str, Any]) -> VSCNConfig:
    """The `VSCNConfig` of an official option set (``vars(opt)`` of their argparse options)."""
    required = ("img_dim", "max_turns", "embed_size", "nhead", "dim_feedforward",
                "v_transformer_layer", "vl_transformer_layer", "v_dropout", "vl_dropout",
                "v_SA_dropout", "tau", "loss_weight", "sample_option", "dropped_ratio")
    missing = [name for name in required if name not in hparams]
    if missing:
        raise ValueError(f"official options lack {', '.join(missing)}")
    return VSCNConfig(
        region_dim=int(hparams["img_dim"]), query_dim=OFFICIAL_QUERY_DIM,
        global_dim=OFFICIAL_GLOBAL_DIM, num_regions=OFFICIAL_NUM_REGIONS,
        max_turns=int(hparams["max_turns"]), embed_dim=int(hparams["embed_size"]),
        num_heads=int(hparams["nhead"]), ffn_dim=int(hparams["dim_feedforward"]),
        visual_layers=int(hparams["v_transformer_layer"]),
        crossmodal_layers=int(hparams["vl_transformer_layer"]),
        visual_dropout=float(hparams["v_dropout"]), crossmodal_dropout=float(hparams["vl_dropout"]),
        visual_sa_dropout=float(hparams["v_SA_dropout"]), tau=float(hparams["tau"]),
        distill_weight=float(hparams["loss_weight"]), sample_queries=bool(hparams["sample_option"]),
        dropped_ratio=float(hparams["dropped_ratio"]))


def _our_name(official: str) -> str | None:
    """Our parameter name for an official one; None for a known-unused one; error if unknown."""
    if official.startswith(_UNUSED_PREFIXES):
        return None
    for old, new in _PREFIXES:
        if official.startswith(old):
            name = new + official[len(old):]
            if new.endswith(".layers."):
                for old_part, new_part in _LAYER_PARTS:
                    name = name.replace(old_part, new_part)
            return name
    raise ValueError(f"unknown official parameter {official!r}")


def load_official_state_dict(state_dict: Mapping[str, Tensor], hparams: Mapping[str, Any]) -> VSCN:
    """A `VSCN` holding the official parameters (flat ``img_enc.``/``txt_enc.``/``sim_enc.`` keys).

    The two official parameters that nothing uses are dropped; any other unknown or missing key, or
    a shape that disagrees with the options, is an error that names it.
    """
    model = VSCN(official_hparams_to_config(hparams))
    expected = model.state_dict()
    mapped: dict[str, Tensor] = {}
    for official, value in state_dict.items():
        name = _our_name(official)
        if name is None:
            continue
        if name not in expected:
            raise ValueError(f"official parameter {official!r} maps to {name!r}, which the model lacks")
        if tuple(value.shape) != tuple(expected[name].shape):
            raise ValueError(f"official parameter {official!r} has shape {tuple(value.shape)}, the "
                             f"options imply {tuple(expected[name].shape)}")
        mapped[name] = value
    missing = sorted(set(expected) - set(mapped))
    if missing:
        raise ValueError(f"official state dict lacks parameters for {', '.join(missing)}")
    model.load_state_dict(mapped)
    return model


def load_official_checkpoint(path: str | Path, allow_pickle: bool = False) -> tuple[VSCN, dict[str, Any]]:
    """Load an official ``model_best.pth.tar``: returns the model and its options as a dict.

    These files are pickles holding the tensors and an ``argparse.Namespace`` of options. They are
    read with ``weights_only=True`` and only ``argparse.Namespace`` admitted besides tensors and
    plain containers. A file that needs anything more can run arbitrary code when unpickled, so it
    is refused unless ``allow_pickle=True`` is passed, which should be done only for a file from a
    trusted source.
    """
    path = Path(path)
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if not allow_pickle:
            raise ValueError(f"{path}: holds objects beyond tensors and options; unpickling them can "
                             f"run arbitrary code. Pass allow_pickle=True only if you trust this "
                             "file.") from err
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    if not isinstance(checkpoint, Mapping) or "model" not in checkpoint or "opt" not in checkpoint:
        raise ValueError(f"{path}: not an official VSCN checkpoint (expected a dict with 'model' "
                         f"and 'opt')")
    hparams = vars(checkpoint["opt"]) if isinstance(checkpoint["opt"], argparse.Namespace) \
        else dict(checkpoint["opt"])
    parts = checkpoint["model"]
    if not isinstance(parts, (list, tuple)) or len(parts) != len(OFFICIAL_MODULES):
        raise ValueError(f"{path}: 'model' should be a list of {len(OFFICIAL_MODULES)} state dicts "
                         f"({', '.join(OFFICIAL_MODULES)})")
    flat = {f"{module}.{name}": value for module, part in zip(OFFICIAL_MODULES, parts)
            for name, value in part.items()}
    try:
        return load_official_state_dict(flat, hparams), hparams
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


def official_outputs(state_dict: Mapping[str, Tensor], hparams: Mapping[str, Any],
                     inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Our model's numbers under the names, shapes and orientations of the official parity fixture.

    inputs: ``regions (B, R, Dv)``, ``queries (B, T, Dq)``, ``clip_image (B, Dg)``. Eval keys pair
    image b with query set b and give G as [image, query] as the official code does; ``paper.*``
    uses shards of ``hparams['paper_shard_size']`` (official 200 if absent); ``train.*`` is one
    train-mode pass without query sampling.
    """
    model = load_official_state_dict(state_dict, hparams)
    regions, queries, global_feats = inputs["regions"], inputs["queries"], inputs["clip_image"]
    max_turns = model.config.max_turns
    shard_size = int(hparams.get("paper_shard_size", PAPER_SHARD_SIZE))
    out: dict[str, Tensor] = {}
    model.eval()
    with torch.no_grad():
        v = model.embed_regions(regions)  # (B, R, d)
        q = model.encode_queries(queries)  # (B, T, d)
        r, c = model.contextualise_regions(v)
        out["eval.img_emb"], out["eval.cap_emb"] = v, q
        for turn in range(1, max_turns + 1):
            scores = model.batch_scores(r, c, q, torch.arange(turn, device=q.device))
            out[f"eval.turn{turn}.S1"] = scores["S1"]
            out[f"eval.turn{turn}.S2"] = scores["S2"]
            out[f"eval.turn{turn}.G"] = scores["G"].T  # official orientation [image, query]
            sims = paper_shard_scores(model, r, c, q, turn, shard_size)
            out[f"paper.turn{turn}.sims"] = sims
            metrics = paper_metrics(sims, turn)
            out[f"paper.turn{turn}.r1_r5_r10_meanr"] = torch.tensor(
                [metrics.r1, metrics.r5, metrics.r10, metrics.meanr], dtype=torch.float64)
        model.train()
        train = model(regions, queries, global_feats)
    out.update({"train.S1": train["S1"], "train.S2": train["S2"], "train.G": train["G"].T,
                "train.loss_distill": train["loss_distill"], "train.loss_infonce": train["loss_infonce"],
                "train.loss_total": train["loss"]})
    return out
