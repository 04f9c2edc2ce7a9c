"""A small synthetic run directory with every file the report reads, numbers drawn from a seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image, ImageDraw

N_TRAIN, N_TEST, TURNS, SHOW = 20, 12, 10, 10
IMAGE_SIZE = (64, 48)  # pixels of every scene image, below the thumbnail size so kept as is
MISSING_IMAGE_ID = N_TRAIN + 3  # a test scene whose image file does not exist
COLOURS = ("red", "green", "blue", "orange")


def metrics_document(protocol: str, kind: str, rng: np.random.Generator, n: int, offset: float = 0.0) -> dict:
    r1 = np.sort(rng.uniform(5, 60, TURNS)) + offset
    turns = [{"turn": t + 1, "r1": float(r1[t]), "r5": float(min(100.0, r1[t] + 20)),
              "r10": float(min(100.0, r1[t] + 30)), "medr": float(10 - t / 2), "meanr": float(20 - t),
              "mrr": float(r1[t] / 100)} for t in range(TURNS)]
    return {"protocol": protocol, "label": f"{protocol} label", "n_queries": n, "n_gallery": n, "turns": turns,
            "kind": kind}


def make_run(root: Path, name: str = "synthetic", seed: int = 0, paper: bool = True, validation: bool = True) -> Path:
    """``root/name`` laid out as results/<run>; images under ``root/images``."""
    rng = np.random.default_rng(seed)
    run = root / name
    (run / "scenes").mkdir(parents=True)
    images = root / "images"
    images.mkdir(exist_ok=True)
    ids = np.arange(1, N_TRAIN + N_TEST + 1)
    paths = []
    for image_id in ids:
        path = images / f"{image_id}.png"
        if image_id != MISSING_IMAGE_ID:
            image = Image.new("RGB", IMAGE_SIZE, "white")
            ImageDraw.Draw(image).ellipse((8, 8, 40, 40), fill=COLOURS[image_id % len(COLOURS)])
            image.save(path)
        paths.append(str(path))
    split = ["train"] * N_TRAIN + ["test"] * N_TEST
    width, height = IMAGE_SIZE
    pd.DataFrame({"image_id": ids, "split": split, "width": width, "height": height, "image_path": paths}).to_parquet(
        run / "scenes" / "scenes.parquet")
    counts = rng.integers(TURNS, TURNS + 6, len(ids))
    regions = pd.DataFrame({
        "image_id": np.repeat(ids, counts),
        "region_id": np.concatenate([1000 * i + np.arange(1, c + 1) for i, c in zip(ids, counts)]),
        "caption": [f"a {COLOURS[i % 4]} circle number {k} of scene {i}" for i, c in zip(ids, counts) for k in range(c)],
    })
    regions.to_parquet(run / "scenes" / "regions.parquet")
    summary = {"kept": {"scenes": len(ids), "regions": int(counts.sum())},
               "dropped": {"scenes": {"too_few_captions": 3}, "regions": {"duplicate_caption": 7}},
               "split_sizes": {"train": N_TRAIN, "test": N_TEST}, "scenes_read": len(ids) + 3,
               "split_source": "lists", "images_not_found": 0, "max_turns": TURNS, "schema_version": 1}
    (run / "scenes" / "summary.json").write_text(json.dumps(summary))
    (run / "config.yaml").write_text(yaml.safe_dump({"run": name, "seed": seed, "scenes": {"max_turns": TURNS}}))
    train = run / "train"
    train.mkdir()
    steps = np.arange(10, 210, 10)
    losses = {f"loss_{part}": np.exp(-steps / 100) * rng.uniform(1, 2) for part in ("infonce", "distill", "s1", "s2", "global")}
    pd.DataFrame({"epoch": steps // 50 + 1, "step": steps, "lr": 2e-4 * np.minimum(1, steps / 100),
                  "loss": sum(losses.values()), **losses}).to_csv(train / "train_log.csv", index=False)
    if validation:
        epochs = np.arange(1, 5)
        pd.DataFrame({"epoch": epochs, "step": epochs * 50, "score": 30 + 10 * epochs, "t1_r1": 5.0 * epochs,
                      "t1_r5": 10.0 * epochs, "t1_r10": 15.0 * epochs, "t10_r1": 8.0 * epochs}).to_csv(
            train / "val_log.csv", index=False)
    metrics = run / "metrics"
    metrics.mkdir()
    documents = {"strict": metrics_document("strict", "protocol", rng, N_TEST),
                 "s1_only": metrics_document("s1_only", "ablation", rng, N_TEST, -3.0),
                 "cosine_mean": metrics_document("cosine_mean", "baseline", rng, N_TEST, -5.0),
                 "cosine_sum": {"protocol": "cosine_sum", "label": "cosine sum", "n_queries": N_TEST,
                                "n_gallery": N_TEST, "turns": [], "kind": "baseline",
                                "skipped": "query features are 3-d and global image features 4-d"}}
    if paper:
        documents["paper"] = {**metrics_document("paper", "protocol", rng, N_TEST, 10.0), "shard_size": 5,
                              "n_gallery": 10, "n_queries": 10}
    for key, document in documents.items():
        (metrics / f"{key}.json").write_text(json.dumps(document))
    test_ids = ids[N_TRAIN:]
    top = np.stack([np.stack([rng.permutation(N_TEST)[:SHOW] for _ in range(N_TEST)]) for _ in range(TURNS)])
    scores = -np.sort(-rng.uniform(0, 1, top.shape), axis=-1).astype(np.float32)
    np.savez(metrics / "strict_rankings.npz", image_id=test_ids, turn=np.arange(1, TURNS + 1), top=top, scores=scores)
    return run
