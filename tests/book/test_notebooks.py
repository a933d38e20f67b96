"""Every chapter notebook: clean in git, in the table of contents, Colab-ready, same install cell."""

import json
import re

import pytest
import yaml

from conftest import ROOT, toc_pages

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]["url"]
OWNER_REPO = re.fullmatch(r"https://github\.com/([^/]+/[^/]+)", REPOSITORY).group(1)
INSTALL_CELL = f'''try:
    import minidense
except ImportError:  # on Colab: install the book's library, keep Colab's torch
    %pip install -q "minidense @ git+{REPOSITORY}@{CONFIG["repository"]["branch"]}"
    import minidense'''


NOTEBOOKS = sorted(ROOT.glob("book/**/*.ipynb"))


def code_cells(path):
    return ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]


def test_every_toc_entry_exists_and_every_chapter_is_listed():
    listed = toc_pages()
    for entry in listed:
        assert any((ROOT / f"{entry}{ext}").exists() for ext in ("", ".md", ".ipynb")), entry
    for path in NOTEBOOKS + sorted(ROOT.glob("book/**/*.md")):
        assert str(path.relative_to(ROOT).with_suffix("")) in listed, f"{path} is not in _toc.yml"


def test_repository_settings_for_colab_links():
    assert REPOSITORY == "https://github.com/minidense/minidense"
    assert CONFIG["repository"]["branch"] == "main" and CONFIG["repository"]["path_to_book"] == ""
    assert CONFIG["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert CONFIG["sphinx"]["config"]["nb_execution_raise_on_error"] is True
    assert CONFIG["execute"]["timeout"] >= 600 and CONFIG["only_build_toc_files"] is True


def test_readme_links_derive_from_the_repository_url():
    readme = (ROOT / "README.md").read_text()
    owner, repo = OWNER_REPO.split("/")
    assert f"https://{owner}.github.io/{repo}/" in readme


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path):
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_first_code_cell_installs_minidense_from_the_repository_only_when_missing(path):
    cells = code_cells(path)
    assert cells[0].strip() == INSTALL_CELL
    # the first output: the budget and the device in one sentence (device_report() where not yet rewritten),
    # or, in a chapter that trains nothing, that it needs no GPU
    assert ("minidense.profile()" in cells[1] and ("Training budget" in cells[1] or "device_report()" in cells[1])
            or "This chapter trains no network" in cells[1])


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_asks_colab_for_a_gpu(path):
    meta = json.loads(path.read_text())["metadata"]
    assert meta["accelerator"] == "GPU" and meta["colab"]["gpuType"] == "T4"
    assert meta["kernelspec"]["name"] == "python3"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_chapter_has_a_title_a_summary_and_exercises(path):
    markdown = ["".join(c["source"]) for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "markdown"]
    assert markdown[0].startswith("# ")
    text = "\n".join(markdown)
    assert "## Summary" in text and "## Exercises" in text
    assert text.count("```{exercise}") >= 3
    assert text.count("{solution-start}") == text.count("```{exercise}")
