"""The results report: numbers equal the metrics files, self-contained, figures and examples present,
optional inputs noted, required inputs named when missing."""

from __future__ import annotations

import base64
import io
import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from report_run import IMAGE_SIZE, MISSING_IMAGE_ID, N_TEST, N_TRAIN, make_run
from vscn.report import FIGURE_NAMES, ReportInputError, check_published, write_report
from vscn.report.examples import example_rows, shown_turns
from vscn.report.figures import caption_lengths
from vscn.report.html import METRIC_FORMATS
from vscn.report.inputs import REQUIRED

PUBLISHED = {"label": "VSCN (Ji et al. 2025)", "protocol": "paper", "source": "Table 2",
             "turns": [{"turn": 1, "r1": 21.5, "r5": 45.0, "r10": 57.25}, {"turn": 5, "r1": 61.0, "r5": 80.5}]}


class Elements(HTMLParser):
    """Start tags with their attributes, and the text inside every element with a data-metric."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.cells: list[tuple[dict[str, str], str]] = []
        self.tables: list[dict[str, str]] = []
        self._cell: dict[str, str] | None = None
        self._table: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        self.tags.append((tag, values))
        if tag == "table":
            self._table = values
            self.tables.append(values)
        if tag == "td" and "data-metric" in values:
            self._cell = {**values, **{f"table:{k}": v for k, v in self._table.items()}}

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self.cells.append((self._cell, data))
            self._cell = None


def parse(path: Path) -> Elements:
    parser = Elements()
    parser.feed(path.read_text(encoding="utf-8"))
    return parser


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("report")
    run = make_run(root)
    out = write_report(run, root / "out" / "report.html", figures_dir=root / "figures", published=PUBLISHED)
    return run, out, root / "figures"


def test_metric_cells_equal_the_metrics_files(built: tuple[Path, Path, Path]) -> None:
    run, out, _ = built
    cells = parse(out).cells
    seen = set()
    for path in sorted((run / "metrics").glob("*.json")):
        document = json.loads(path.read_text())
        for row in document["turns"]:
            for key, spec in METRIC_FORMATS.items():
                shown = [text for attrs, text in cells if attrs["table:data-evaluation"] == path.stem
                         and attrs["data-metric"] == key and int(attrs["data-turn"]) == row["turn"]]
                assert len(shown) == 1, (path.stem, key, row["turn"])
                decimals = int(spec[1:-1])
                assert float(shown[0]) == pytest.approx(row[key], abs=0.5 * 10 ** -decimals + 1e-12)
                seen.add(path.stem)
    assert seen == {"strict", "paper", "s1_only", "cosine_mean"}  # cosine_sum was skipped: no cells
    assert "skipped: query features are 3-d" in out.read_text()


def test_page_is_self_contained(built: tuple[Path, Path, Path]) -> None:
    _, out, _ = built
    page = out.read_text(encoding="utf-8")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page)
    assert "<link" not in page and "<script" not in page and "@import" not in page
    tags = parse(out).tags
    sources = [attrs["src"] for tag, attrs in tags if tag == "img"]
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    image = Image.open(io.BytesIO(base64.b64decode(sources[0].split(",", 1)[1])))
    assert image.size[0] > 0 and image.size == IMAGE_SIZE  # a thumbnail never enlarges the image


def test_figures_inline_and_as_files(built: tuple[Path, Path, Path]) -> None:
    _, out, figures = built
    page = out.read_text(encoding="utf-8")
    assert page.count("<svg") == len(FIGURE_NAMES)
    for name in FIGURE_NAMES:
        assert f'id="figure-synthetic-{name}"' in page
        root = ET.parse(figures / f"{name}.svg").getroot()
        assert root.tag.endswith("svg")
    ids = re.findall(r'\sid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "element ids repeat across inline figures"


def test_data_summary_and_provenance(built: tuple[Path, Path, Path]) -> None:
    _, out, _ = built
    page = out.read_text(encoding="utf-8")
    assert re.search(r"<td class=\"text\">scenes</td><td class=\"text\">too_few_captions</td><td>3</td>", page)
    assert "split size: test</td><td>12</td>" in page
    for package in ("python", "torch", "numpy", "h5py", "snakemake", "vscn"):
        assert f'<td class="text">{package}</td>' in page
    assert "max_turns: 10" in page  # the resolved config


def test_paper_against_strict_sentence(built: tuple[Path, Path, Path]) -> None:
    run, out, _ = built
    strict = json.loads((run / "metrics" / "strict.json").read_text())["turns"][0]["r1"]
    paper = json.loads((run / "metrics" / "paper.json").read_text())["turns"][0]["r1"]
    direction = "higher" if paper > strict else "lower"
    expected = (f"At turn 1 the paper protocol reports R@1 {paper:.2f}% against {strict:.2f}% under the strict "
                f"protocol, {abs(paper - strict):.2f} points {direction} than strict")
    page = out.read_text(encoding="utf-8")
    assert expected in page
    assert "ranks only the 10 of 12 images" in page


def test_published_numbers_beside_ours(built: tuple[Path, Path, Path]) -> None:
    run, out, _ = built
    page = out.read_text(encoding="utf-8")
    assert "Published: VSCN (Ji et al. 2025), under the paper protocol, beside ours under the same protocol" in page
    table = page[page.index('data-comparison="published"'):]
    table = table[:table.index("</table>")]
    paper = json.loads((run / "metrics" / "paper.json").read_text())["turns"][0]
    first_row = re.findall(r"<td[^>]*>([^<]*)</td>", table)[:10]
    assert first_row == ["1", "21.50", "45.00", "57.25", f"{paper['r1']:.2f}", f"{paper['r5']:.2f}",
                         f"{paper['r10']:.2f}", f"{paper['r1'] - 21.5:+.2f}", f"{paper['r5'] - 45:+.2f}",
                         f"{paper['r10'] - 57.25:+.2f}"]


def test_examples(built: tuple[Path, Path, Path]) -> None:
    _, out, _ = built
    tags = parse(out).tags
    shown = [int(attrs["data-image-id"]) for tag, attrs in tags if "data-image-id" in attrs]
    assert shown == [N_TRAIN + 1 + int(row) for row in example_rows(N_TEST, 4)]
    page = out.read_text(encoding="utf-8")
    assert page.count("after turn 1<") == 4 and page.count("after turn 3<") == 4 and page.count("after turn 10<") == 4
    assert page.count('<div class="example"') == 4
    assert f"image {MISSING_IMAGE_ID}<br>image file missing" in page
    assert "a red circle number 0 of scene" in page  # the queries


def test_example_choices() -> None:
    assert example_rows(300, 4).tolist() == [0, 100, 199, 299]
    assert example_rows(2, 4).tolist() == [0, 1]
    assert shown_turns(list(range(1, 11))) == [1, 3, 10]
    assert shown_turns([1, 2, 3, 4, 5]) == [1, 3, 5]
    assert shown_turns([1]) == [1]


def test_caption_lengths_need_no_nltk_data() -> None:
    assert caption_lengths(["a red circle.", "the cross is below the green diamond", "two-tone"]).tolist() == [4, 7, 3]


def test_report_is_reproducible(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    first = write_report(run, tmp_path / "a.html", figures_dir=tmp_path / "fa").read_bytes()
    second = write_report(run, tmp_path / "b.html", figures_dir=tmp_path / "fb").read_bytes()
    assert first == second
    assert (tmp_path / "fa" / "recall_vs_turn.svg").read_bytes() == (tmp_path / "fb" / "recall_vs_turn.svg").read_bytes()


def test_optional_inputs_missing_are_noted(tmp_path: Path) -> None:
    run = make_run(tmp_path, paper=False, validation=False)
    (run / "metrics" / "strict_rankings.npz").unlink()
    out = write_report(run, tmp_path / "report.html", figures_dir=tmp_path / "figures")
    page = out.read_text(encoding="utf-8")
    assert "no paper-protocol comparison" in page and "No paper-protocol metrics for this run" in page
    assert "no validation log" in page and "No examples: no strict rankings" in page
    assert "No published numbers given" in page
    assert sorted(p.stem for p in (tmp_path / "figures").iterdir()) == sorted(FIGURE_NAMES)


@pytest.mark.parametrize("missing", REQUIRED, ids=str)
def test_missing_required_input_is_named(tmp_path: Path, missing: Path) -> None:
    run = make_run(tmp_path)
    (run / missing).unlink()
    with pytest.raises(ReportInputError, match=re.escape(str(run / missing)) + ": required report input not found"):
        write_report(run, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


def test_bad_inputs_are_clear_errors(tmp_path: Path) -> None:
    run = make_run(tmp_path)
    with pytest.raises(ReportInputError, match="run directory not found"):
        write_report(tmp_path / "nope", tmp_path / "report.html")
    (run / "metrics" / "paper.json").write_text("{not json")
    with pytest.raises(ReportInputError, match=r"paper\.json: not valid JSON"):
        write_report(run, tmp_path / "report.html")
    (run / "metrics" / "paper.json").write_text(json.dumps({"turns": [{"turn": 1, "r1": 3.0}]}))
    with pytest.raises(ReportInputError, match=r"paper\.json: a turn entry lacks r5"):
        write_report(run, tmp_path / "report.html")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("published", [
    {"protocol": "paper", "turns": [{"turn": 1, "r1": 3.0}]},
    {"label": "x", "protocol": "paper", "turns": []},
    {"label": "x", "protocol": "paper", "turns": [{"turn": 1}]},
    {"label": "x", "protocol": "paper", "turns": [{"turn": 1, "r1": "high"}]},
])
def test_bad_published_numbers(published: dict) -> None:
    with pytest.raises(ValueError, match="published numbers"):
        check_published(published)


def test_published_under_a_protocol_we_lack(tmp_path: Path) -> None:
    run = make_run(tmp_path, paper=False)
    page = write_report(run, tmp_path / "r.html", published=PUBLISHED).read_text(encoding="utf-8")
    assert "This run has no paper metrics, so they stand beside ours under the strict protocol" in page


def test_several_runs(tmp_path: Path) -> None:
    runs = [make_run(tmp_path / "a", "first", seed=1), make_run(tmp_path / "b", "second", seed=2)]
    out = write_report(runs, tmp_path / "report.html", figures_dir=tmp_path / "figures")
    page = out.read_text(encoding="utf-8")
    assert 'id="run-first"' in page and 'id="run-second"' in page
    assert {p.name for p in (tmp_path / "figures").iterdir()} == {
        f"{run}-{name}.svg" for run in ("first", "second") for name in FIGURE_NAMES}
    overview = page[page.index('class="overview"'):]
    assert overview.index("first") < overview.index("second")
    with pytest.raises(ReportInputError, match="repeated names"):
        write_report([runs[0], runs[0]], tmp_path / "again.html")


def test_cli_report(built: tuple[Path, Path, Path], tmp_path: Path) -> None:
    from vscn import cli

    run, _, _ = built
    settings = json.dumps({"n_examples": 2, "published": PUBLISHED})
    assert cli.main(["report", "--runs", str(run), "--out", str(tmp_path / "r.html"), "--figures",
                     str(tmp_path / "f"), "--settings", settings]) == 0
    assert (tmp_path / "r.html").read_text(encoding="utf-8").count('<div class="example"') == 2
    assert cli.main(["report", "--runs", str(tmp_path / "missing"), "--out", str(tmp_path / "x.html")]) == 1
