"""The Chinese edition's build on a tiny scratch book made with the real configuration and extensions:
it derives from ``_config.yml``, executes nothing (it refuses without the English outputs), renders the
translations with their maths, links every page to the same page in the other edition, indexes
Chinese words for search; and a changed profile executes the chapters again."""

import json
import os
import re
import shutil
import subprocess
import sys
from html import unescape

import nbformat
import polib
import pytest
import yaml

from conftest import ROOT, readme_build_command, readme_zh_build_command

sys.path.insert(0, str(ROOT / "book" / "_ext"))

import editions
import zh

TITLE = yaml.safe_load((ROOT / "_config.yml").read_text())["title"]
TOC = """format: jb-book
root: book/intro
parts:
  - caption: Building DenseNet
    chapters:
      - file: book/dense-block
  - caption: Back matter
    chapters:
      - file: book/glossary
      - file: book/references
"""
INTRO = f"# {TITLE}\n\nThe **growth rate** $k$ of a dense block {{cite}}`huang2017densely` is in `minidense`.\n"
CHAPTER = ["# The dense block\n\nEach layer adds $k$ channels: the growth rate.",
           'import os\nprint("profile:", os.environ["MINIDENSE_PROFILE"])']
TRANSLATIONS = {
    TITLE: "minidense：一步一步构建 DenseNet",
    "The **growth rate** $k$ of a dense block {cite}`huang2017densely` is in `minidense`.":
        "稠密块 {cite}`huang2017densely` 的**增长率** $k$ 在 `minidense` 中。",
    "Building DenseNet": "构建 DenseNet", "Back matter": "附录", "The dense block": "稠密块",
    "Each layer adds $k$ channels: the growth rate.": "每一层增加 $k$ 个通道：这就是增长率。",
}


def run(command, book, profile):
    """Runs a README command in the scratch book under ``profile``: (exit status, output)."""
    command = command.replace("book/_ext/zh.py", str(book / "book/_ext/zh.py"))
    env = {**os.environ, "MINIDENSE_PROFILE": profile, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command.split(), cwd=book, env=env, capture_output=True, text=True)
    return done.returncode, done.stdout + done.stderr


@pytest.fixture(scope="module")
def book(tmp_path_factory):
    """A two-page book with the real _config.yml, extensions, glossary and references, translated."""
    book = tmp_path_factory.mktemp("tiny-book")
    shutil.copy2(ROOT / "_config.yml", book)
    (book / "_toc.yml").write_text(TOC)
    shutil.copytree(ROOT / "book" / "_ext", book / "book" / "_ext", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(ROOT / "book" / "_static", book / "book" / "_static")
    for name in ("references.bib", "references.md", "glossary.md"):
        shutil.copy2(ROOT / "book" / name, book / "book" / name)
    (book / "book" / "intro.md").write_text(INTRO)
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                                 "language": "python"}})
    notebook.cells = [nbformat.v4.new_markdown_cell(CHAPTER[0]), nbformat.v4.new_code_cell(CHAPTER[1])]
    nbformat.write(notebook, book / "book" / "dense-block.ipynb")
    subprocess.run([sys.executable, "book/_ext/zh.py", "update"], cwd=book, check=True, capture_output=True)
    catalogs = book / zh.CATALOGS.relative_to(ROOT)
    for name in ("glossary", "references"):
        shutil.copy2(zh.CATALOGS / "book" / f"{name}.po", catalogs / "book" / f"{name}.po")
    for path in catalogs.rglob("*.po"):
        catalog = polib.pofile(str(path))
        for entry in catalog:
            entry.msgstr = TRANSLATIONS.get(entry.msgid, entry.msgstr)
        catalog.save()
    return book


@pytest.fixture(scope="module")
def built(book):
    """The logs of: the Chinese build before any English one, the English build, the Chinese build."""
    logs = {"zh-first": run(readme_zh_build_command(), book, "smoke"),
            "en": run(readme_build_command(), book, "smoke"),
            "zh": run(readme_zh_build_command(), book, "smoke")}
    return logs


def page(book, path):
    return (book / "_build" / "html" / path).read_text(encoding="utf-8")


def text(html):
    """What a page says, without its tags."""
    return unescape(re.sub(r"<[^>]+>", "", html))


def printed_profile(html):
    """The profile the chapter's code cell printed, as the page shows its output."""
    return re.search(r"profile: (\w+)", text(html)).group(1)


def test_the_chinese_edition_derives_from_config_yml_with_only_its_language_settings():
    assert set(zh.ZH_OVERRIDES) == {"language", "html_theme_options"}
    assert zh.ZH_OVERRIDES["html_theme_options"] == {"repository_branch": zh.COLAB_BRANCH}
    config = yaml.safe_load((ROOT / "_config.yml").read_text())["sphinx"]["config"]
    assert config["locale_dirs"] == ["book/locales"] and config["gettext_compact"] is False
    assert readme_zh_build_command() == "python book/_ext/zh.py build"


@pytest.mark.parametrize("pagename, language, expected", [
    ("book/dense-block", "en", ("../zh/book/dense-block.html", "zh_CN")),
    ("book/dense-block", "zh_CN", ("../../book/dense-block.html", "en")),
    ("search", None, ("zh/search.html", "zh_CN")),
    ("search", "zh_CN", ("../search.html", "en")),
])
def test_the_language_switch_points_at_the_same_page_in_the_other_edition(pagename, language, expected):
    assert editions.other_edition_url(pagename, language) == expected


@pytest.mark.slow
def test_the_chinese_build_refuses_without_the_english_outputs(built):
    code, log = built["zh-first"]
    assert code != 0
    assert "book/dense-block.ipynb" in log and readme_build_command() in log


@pytest.mark.slow
def test_both_editions_build_with_warnings_as_errors_and_the_chinese_one_executes_nothing(built):
    for name in ("en", "zh"):
        assert built[name][0] == 0, built[name][1][-3000:]
    assert "Executing notebook" in built["en"][1]
    assert "Executing notebook" not in built["zh"][1]


@pytest.mark.slow
def test_a_chinese_page_shows_the_translation_its_maths_and_the_english_code_and_output(book, built):
    html = page(book, "zh/book/dense-block.html")
    assert '<html lang="zh-CN"' in html
    assert "<h1>稠密块" in html
    assert re.search(r"每一层增加 <span class=\"math[^\"]*\">\\\(k\\\)</span> 个通道", html)
    assert printed_profile(html) == "smoke"  # the code cell's output, from the English build
    assert CHAPTER[1].splitlines()[1] in text(html)  # the English code
    intro = page(book, "zh/book/intro.html")
    assert "<strong>增长率</strong>" in intro and 'href="references.html#' in intro
    assert "构建 DenseNet" in intro and "附录" in intro  # the part captions
    assert "<title>minidense：一步一步构建 DenseNet" in intro  # the book's title


@pytest.mark.slow
def test_every_page_links_to_the_same_page_in_the_other_edition(book, built):
    html = book / "_build" / "html"
    english = sorted(html.glob("book/*.html"))
    assert len(english) == 4
    for path in english:
        chinese = html / "zh" / path.relative_to(html)
        for here, there in ((path, chinese), (chinese, path)):
            switch = re.search(r'class="btn btn-sm language-switch" href="([^"]+)"', here.read_text())
            assert switch, f"{here} has no language switch"
            assert (here.parent / switch.group(1)).resolve() == there.resolve(), (here, switch.group(1))


@pytest.mark.slow
def test_the_chinese_colab_button_opens_the_chinese_notebook(book, built):
    html = page(book, "zh/book/dense-block.html")
    assert (f"colab.research.google.com/github/minidense/minidense/blob/{zh.COLAB_BRANCH}/book/dense-block.ipynb"
            in html)
    assert "/blob/main/book/dense-block.ipynb" in page(book, "book/dense-block.html")


@pytest.mark.slow
def test_the_chinese_search_index_has_growth_rate_in_the_dense_block_chapter(book, built):
    text = page(book, "zh/searchindex.js")
    index = json.loads(text[text.index("(") + 1: text.rindex(")")])
    chapter = index["docnames"].index("book/dense-block")
    found = index["terms"]["增长率"]
    assert chapter in (found if isinstance(found, list) else [found])


@pytest.mark.slow
def test_a_changed_profile_executes_again_and_the_chinese_build_follows_it(book, built):
    code, log = run(readme_build_command(), book, "cpu")
    assert code == 0, log[-3000:]
    assert "Executing notebook" in log
    assert printed_profile(page(book, "book/dense-block.html")) == "cpu"
    code, log = run(readme_zh_build_command(), book, "cpu")
    assert code == 0 and "Executing notebook" not in log, log[-3000:]
    assert printed_profile(page(book, "zh/book/dense-block.html")) == "cpu"
    code, log = run(readme_zh_build_command(), book, "full")  # nothing executed under full yet
    assert code != 0 and "under this profile" in log


def test_the_pages_workflow_publishes_the_chinese_edition_under_zh_and_its_notebooks_for_colab():
    workflow = yaml.safe_load((ROOT / ".github" / "workflows" / "book.yml").read_text())
    steps = [step for job in workflow["jobs"].values() for step in job["steps"]]
    runs = [step.get("run", "").strip() for step in steps]
    english = runs.index(readme_build_command())
    chinese = runs.index(readme_zh_build_command())
    upload = next(i for i, step in enumerate(steps) if step.get("uses", "").startswith("actions/upload-pages-artifact"))
    assert english < chinese < upload  # zh/ lands inside the uploaded _build/html
    assert zh.ZH_SITE.relative_to(ROOT).as_posix() == steps[upload]["with"]["path"] + "/zh"
    notebooks = next(run for run in runs if run.startswith("python book/_ext/zh.py notebooks "))
    publish = next(step for step in steps if step.get("uses", "").startswith("peaceiris/actions-gh-pages"))
    assert publish["with"]["publish_branch"] == zh.COLAB_BRANCH
    assert publish["with"]["publish_dir"] == notebooks.split()[-1]
    assert workflow["permissions"]["contents"] == "write"  # to push that branch
