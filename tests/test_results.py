"""Recorded results: found beside the chapter, fetched from the repository elsewhere (Colab)."""

import urllib.request

import pandas as pd
import pytest
import yaml

import minidense
from conftest import ROOT
from minidense import results


def test_repository_matches_the_books_config():
    config = yaml.safe_load((ROOT / "_config.yml").read_text())
    assert config["repository"]["url"] == results.REPOSITORY
    assert config["repository"]["branch"] == results.BRANCH


@pytest.mark.parametrize("cwd", ["book", "."])
def test_found_beside_the_chapter_and_from_the_repository_root(cwd, monkeypatch):
    monkeypatch.chdir(ROOT / cwd)
    path = minidense.recorded("train-cpu.json")
    assert path.resolve() == (ROOT / "book" / "results" / "train-cpu.json").resolve()
    assert minidense.History.load(path).provenance["profile"] == "cpu"


def test_elsewhere_it_is_fetched_once_from_the_repository(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    asked = []

    class Response:
        def __init__(self, url):
            asked.append(url)

        def read(self):
            return b'{"records": [], "provenance": {}}'

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Response(url))
    first = minidense.recorded("compare-pooling-cpu/results.csv", cache=tmp_path / "cache")
    again = minidense.recorded("compare-pooling-cpu/results.csv", cache=tmp_path / "cache")
    assert first == again == tmp_path / "cache" / "compare-pooling-cpu" / "results.csv"
    assert asked == ["https://raw.githubusercontent.com/minidense/minidense/main/book/results/"
                     "compare-pooling-cpu/results.csv"]


def test_offline_and_missing_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)

    def offline(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError, match="'train-full.json' is not in results/ or book/results/ here"):
        minidense.recorded("train-full.json", cache=tmp_path / "cache")
    assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").rglob("*"))  # nothing half-written


def test_how_recorded_reads_a_history_and_every_run_of_a_comparison(monkeypatch):
    monkeypatch.chdir(ROOT / "book")
    single = minidense.how_recorded("train-cpu.json")
    history = minidense.History.load(ROOT / "book" / "results" / "train-cpu.json")
    assert single.rows == [{field: history.provenance[field] for field in results._PROVENANCE_FIELDS}]
    folder = minidense.how_recorded("compare-full")
    table = pd.read_csv(ROOT / "book" / "results" / "compare-full" / "results.csv")
    assert len(folder.rows) == len(table)
    assert [row["run"] for row in folder.rows] == [f"{v}, seed {s}" for v, s in zip(table.variant, table.seed)]
    html = folder._repr_html_()
    assert html.startswith("<details") and html.endswith("</details>") and "How this was recorded" in html
    assert "recipe=d2l, seed 0" in str(folder)


def test_how_recorded_needs_a_name():
    with pytest.raises(TypeError, match="at least one recorded result"):
        minidense.how_recorded()
