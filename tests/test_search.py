"""`vscn search`: multi-turn free-text retrieval over a small synthetic run, bad queries, and the
self-retrieval rate against the strict protocol's recall."""

from __future__ import annotations

import json
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from vscn.data.encoders.base import ImageEncoder, ImageFeatures, SentenceEncoder
from vscn.data.features import pack_split
from vscn.data.records import Region, Scene
from vscn.evaluation import evaluate_model, rank_gallery
from vscn.model import VSCN, VSCNConfig
from vscn.search import (MAX_QUERY_CHARS, QueryError, SearchError, SearchSession, clean_query, format_ranking,
                         interactive, run_text_encoder, self_retrieval_rate, spread_rows)
from vscn.training import save_model

TINY = VSCNConfig(region_dim=6, query_dim=5, global_dim=4, num_regions=4, max_turns=6, embed_dim=8, num_heads=2,
                  ffn_dim=16, visual_layers=1, crossmodal_layers=1, gpo_pe_dim=4, gpo_hidden_dim=4)
NUM_SCENES = 24
FIRST_ID = 100
NO_IMAGE_ID = FIRST_ID + 1  # a scene the scene table gives no image file


class FakeImageEncoder(ImageEncoder):
    """Region and global features drawn from the image id."""

    name = "fake-image"

    def __init__(self) -> None:
        super().__init__({})

    def encode_batch(self, scenes: Sequence[Scene], first_index: int, num_regions: int) -> ImageFeatures:
        draws = [np.random.default_rng(scene.image_id) for scene in scenes]
        return ImageFeatures(
            np.stack([g.standard_normal((num_regions, TINY.region_dim)) for g in draws]).astype(np.float32),
            np.zeros((len(scenes), num_regions, 4), np.float32),
            np.stack([g.standard_normal(TINY.global_dim) for g in draws]).astype(np.float32))


class FakeTextEncoder(SentenceEncoder):
    """A text's feature is drawn from its CRC: equal texts, equal features; any Unicode works."""

    name = "fake-text"

    def __init__(self) -> None:
        super().__init__({})
        self.seen: list[str] = []

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.seen.extend(texts)
        rows = [np.random.default_rng(zlib.crc32(text.encode())).standard_normal(TINY.query_dim) for text in texts]
        return np.asarray(rows, np.float32).reshape(len(texts), TINY.query_dim)


def make_search_run(root: Path) -> Path:
    """results/<run> with train/model.pt (random tiny model), features/test.h5 and the scene table."""
    run = root / "tiny"
    ids = FIRST_ID + np.arange(NUM_SCENES)
    scenes = [Scene(int(image_id), 32, 32, regions=tuple(
        Region(10 * j, (0.0, 0.0, 8.0, 8.0), f"shape {j} of scene {image_id}")
        for j in range(TINY.max_turns + image_id % 3))) for image_id in ids]
    pack_split(scenes, FakeImageEncoder(), FakeTextEncoder(), run / "features" / "test.h5",
               num_regions=TINY.num_regions)
    (run / "scenes").mkdir(parents=True)
    paths = ["" if image_id == NO_IMAGE_ID else f"images/{image_id}.png" for image_id in ids]
    pd.DataFrame({"image_id": ids, "image_path": paths}).to_parquet(run / "scenes" / "scenes.parquet")
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = VSCN(TINY)
    save_model(run / "train" / "model.pt", TINY, model.state_dict(), 1, 10, None, None)
    return run


@pytest.fixture(scope="module")
def search_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_search_run(tmp_path_factory.mktemp("search"))


@pytest.fixture(scope="module")
def shared_session(search_run: Path) -> SearchSession:
    return SearchSession(search_run, top_k=10, device="cpu", text_encoder=FakeTextEncoder())


@pytest.fixture
def session(shared_session: SearchSession) -> SearchSession:
    """The module's session with no query yet (loading the gallery once saves time)."""
    shared_session.reset()
    return shared_session


def test_each_query_reranks_the_whole_gallery(session: SearchSession) -> None:
    rankings = session.search(["A  red\tcircle", "a star above a square"])
    assert [r.turn for r in rankings] == [1, 2]
    assert rankings[1].queries == ("a red circle", "a star above a square")
    for ranking in rankings:
        assert sorted(ranking.order.tolist()) == list(range(NUM_SCENES))
        hits = ranking.top(12)
        assert [h.rank for h in hits] == list(range(1, 13))
        assert [h.score_kind for h in hits] == ["fused"] * 10 + ["s1"] * 2
        fused = [h.score for h in hits[:10]]
        assert fused == sorted(fused, reverse=True)
    assert not np.array_equal(rankings[0].order, rankings[1].order)
    by_id = {h.image_id: h.image_path for h in rankings[0].top(NUM_SCENES)}
    assert by_id[NO_IMAGE_ID] == "" and by_id[FIRST_ID] == f"images/{FIRST_ID}.png"


def test_typed_captions_rank_as_the_stored_query_features(session: SearchSession, search_run: Path) -> None:
    import h5py

    row = 7
    with h5py.File(search_run / "features" / "test.h5") as file:
        start = int(file["query_offsets"][row])
        captions = [c.decode() for c in file["captions"][start:start + 3]]
        stored = torch.from_numpy(file["queries"][start:start + 3])
    expected = rank_gallery(session.model, session.r, session.c, stored, top_k=10)
    ranking = session.search(captions)[-1]
    np.testing.assert_array_equal(ranking.order, expected.order.numpy())
    np.testing.assert_allclose(ranking.scores, expected.scores.numpy(), rtol=1e-6)


@pytest.mark.parametrize(("n_turns", "top"), [(5, 5), (1, 1), (3, 10)])
def test_self_retrieval_rate_is_the_strict_recall(session: SearchSession, search_run: Path, n_turns: int,
                                                  top: int) -> None:
    """Typing a scene's own first captions is what the strict protocol scores, so the rate is its R@top."""
    rate = self_retrieval_rate(search_run, n_turns=n_turns, top=top, session=session)
    result = evaluate_model(session.model, search_run / "features" / "test.h5", ("strict",), turns=(n_turns,),
                            top_k=session.top_k)["strict"]
    assert rate == pytest.approx(getattr(result.turns[0], f"r{top}") / 100)
    assert 0 < rate < 1  # a random model: neither every scene found nor none, so the equality means something


def test_self_retrieval_rate_on_spread_scenes(session: SearchSession, search_run: Path) -> None:
    assert spread_rows(10, 4).tolist() == [0, 3, 6, 9]
    assert spread_rows(3, None).tolist() == [0, 1, 2]
    # every scene is somewhere in the gallery: with top = N all are found
    assert self_retrieval_rate(search_run, 2, NUM_SCENES, n_scenes=5, session=session) == 1.0
    encoder = session.text_encoder
    encoder.seen.clear()
    self_retrieval_rate(search_run, 2, 1, n_scenes=4, session=session)
    scenes = [FIRST_ID + row for row in spread_rows(NUM_SCENES, 4)]
    assert encoder.seen == [f"shape {j} of scene {image_id}" for image_id in scenes for j in range(2)]
    with pytest.raises(ValueError, match="n_turns"):
        self_retrieval_rate(search_run, TINY.max_turns + 1, 5, session=session)


# ------------------------------------------------------------------------------------ bad queries

@pytest.mark.parametrize("text", ["", "   ", "\t\n "])
def test_empty_query_is_an_error(session: SearchSession, text: str) -> None:
    with pytest.raises(QueryError, match="empty query"):
        session.add_query(text)
    assert session.queries == ()


def test_long_query_is_cut_with_a_warning(session: SearchSession, caplog: pytest.LogCaptureFixture) -> None:
    ranking = session.add_query("a red circle " * 200)
    assert len(ranking.queries[0]) <= MAX_QUERY_CHARS
    assert ranking.queries[0].startswith("a red circle a red circle")
    assert "cut to the first" in caplog.text


def test_non_ascii_query_works(session: SearchSession) -> None:
    ranking = session.add_query("Ein ROTER Kreis über dem Würfel ☆ 赤い円")
    assert ranking.queries == ("ein roter kreis über dem würfel ☆ 赤い円",)
    assert sorted(ranking.order.tolist()) == list(range(NUM_SCENES))
    assert clean_query("  É  ") == "é"


def test_at_most_max_turns_queries(session: SearchSession) -> None:
    session.search([f"query {k}" for k in range(TINY.max_turns)])
    with pytest.raises(QueryError, match=f"at most {TINY.max_turns} queries"):
        session.add_query("one more")
    session.reset()
    assert session.add_query("again").turn == 1


def test_interactive_skips_bad_lines_and_resets(session: SearchSession) -> None:
    lines = ["a red circle\n", "\n", "   \n", "un cercle rouge à gauche\n", ":reset\n", "a star\n", ":quit\n", "unused"]
    outputs = list(interactive(session, lines, count=3, as_json=True))
    results = [json.loads(o.text) for o in outputs if not o.is_message]
    messages = [o.text for o in outputs if o.is_message]
    assert [r["turn"] for r in results] == [1, 2, 1]
    assert results[1]["queries"] == ["a red circle", "un cercle rouge à gauche"]
    assert all(len(r["results"]) == 3 and r["gallery_size"] == NUM_SCENES for r in results)
    assert len(messages) == 3 and all("empty query" in m for m in messages[:2]) and "new search" in messages[2]


def test_text_table(session: SearchSession) -> None:
    ranking = session.add_query("a red circle")
    text = format_ranking(ranking, 4)
    lines = text.splitlines()
    assert lines[0] == "turn 1: a red circle" and lines[1].split() == ["rank", "score", "kind", "image_id", "image_path"]
    assert [line.split()[0] for line in lines[2:]] == ["1", "2", "3", "4"]
    assert [int(line.split()[3]) for line in lines[2:]] == [h.image_id for h in ranking.top(4)]


# ------------------------------------------------------------------------------------ bad runs

def test_precomputed_text_encoder_cannot_search(tmp_path: Path) -> None:
    attrs = {"text_encoder": "vg-precomputed", "text_encoder_settings": json.dumps({"caption_dir": "x/test"})}
    with pytest.raises(SearchError, match="cannot encode free text"):
        run_text_encoder(attrs, tmp_path / "test.h5")


def test_unknown_text_encoder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match="fake-text"):
        run_text_encoder({"text_encoder": "fake-text", "text_encoder_settings": "{}"}, tmp_path / "test.h5")


def test_missing_model_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(SearchError, match=r"model\.pt: not found"):
        SearchSession(tmp_path, text_encoder=FakeTextEncoder())


def test_cli_search(search_run: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                    caplog: pytest.LogCaptureFixture) -> None:
    from vscn import cli

    monkeypatch.setattr("vscn.search.build_text_encoder", lambda name, **settings: FakeTextEncoder())
    assert cli.main(["search", "--run", str(search_run), "--json", "--top", "3", "a red circle", "a blue star"]) == 0
    results = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["turn"] for r in results] == [1, 2] and all(len(r["results"]) == 3 for r in results)
    assert cli.main(["search", "--run", str(search_run), "   "]) == 1
    assert "empty query" in caplog.text
