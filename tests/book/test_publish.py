"""The book as published: built with README's command; every internal link, anchor and citation of
the built site resolves; nothing is loaded from the internet; the Colab buttons, the online-book
links and the Pages workflow all derive from the repository URL in ``_config.yml``."""

import re
from html.parser import HTMLParser
from urllib.parse import unquote, urlsplit

import nbformat
import pytest
import yaml

from conftest import ROOT, page_source, readme_build_command, repository_pages_url, toc_pages

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]
OWNER, REPO = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+)", REPOSITORY["url"]).groups()
PAGES_URL = repository_pages_url(REPOSITORY["url"])
COLAB_URL = CONFIG["launch_buttons"]["colab_url"]
PAGES = toc_pages()
NOTEBOOK_PAGES = [page for page in PAGES if page_source(page).suffix == ".ipynb"]
WORKFLOW = ROOT / ".github" / "workflows" / "book.yml"


def colab_link(page):
    """What the "Open in Colab" button of a chapter must point at."""
    return (f"{COLAB_URL}/github/{OWNER}/{REPO}/blob/{REPOSITORY['branch']}/"
            f"{REPOSITORY['path_to_book']}{page}.ipynb")


class _Page(HTMLParser):
    """The ids of an HTML page and the links and resources it refers to."""

    REFERENCES = {"a": "href", "link": "href", "img": "src", "script": "src", "iframe": "src"}

    def __init__(self, text):
        super().__init__()
        self.ids, self.references, self.bibliography_ids = set(), [], set()
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("id", "name") if tag == "a" else ("id",):
            if attrs.get(name):
                self.ids.add(attrs[name])
        if attrs.get("role") == "doc-biblioentry" and attrs.get("id"):
            self.bibliography_ids.add(attrs["id"])
        attribute = self.REFERENCES.get(tag)
        if attribute and attrs.get(attribute) is not None:
            self.references.append((tag, attrs[attribute]))


@pytest.fixture(scope="module")
def site(book_html):
    """Every HTML page of the built site, both editions (not the theme's assets), parsed, by path."""
    files = [f for f in book_html.rglob("*.html") if "_static" not in f.relative_to(book_html).parts]
    return {f: _Page(f.read_text(encoding="utf-8")) for f in files}


# --- Links derived from the repository URL (no build needed) ---

def test_online_book_url_derives_from_the_repository_url():
    assert REPOSITORY["url"] == "https://github.com/minidense/minidense"
    assert PAGES_URL == "https://minidense.github.io/minidense/"
    assert colab_link("book/dense-block") == (
        "https://colab.research.google.com/github/minidense/minidense/blob/main/book/dense-block.ipynb")


def test_readme_links_the_online_book_and_colab_from_the_repository_url():
    readme = (ROOT / "README.md").read_text()
    assert PAGES_URL in readme
    for url in re.findall(r"https://[\w.-]+\.github\.io/[^\s)>\]]*", readme):
        assert url.startswith(PAGES_URL), f"README links {url}, not the online book {PAGES_URL}"
    for url in re.findall(r"https://colab\.research\.google\.com/[^\s)>\]]*", readme):
        page = url.removeprefix(colab_link("")).removesuffix(".ipynb")
        assert url == colab_link(page) and (ROOT / f"{page}.ipynb").exists(), url


@pytest.mark.parametrize("page", NOTEBOOK_PAGES)
def test_chapter_first_cell_links_the_online_book(page):
    first = nbformat.read(page_source(page), as_version=4).cells[0]
    assert first.cell_type == "markdown"
    assert f"[the online book]({PAGES_URL})" in first.source
    for url in re.findall(r"https://[\w.-]+\.github\.io/[^\s)>\]]*", first.source):
        assert url.startswith(PAGES_URL), url


# --- The Pages workflow ---

def workflow_steps():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    return workflow, [(job, step) for job in workflow["jobs"].values() for step in job["steps"]]


def test_pages_workflow_builds_with_readmes_command_under_the_cpu_profile():
    workflow, steps = workflow_steps()
    builds = [(job, step) for job, step in steps if "jupyter-book build" in step.get("run", "")]
    assert len(builds) == 1, "the workflow should build the book in exactly one step"
    job, build = builds[0]
    assert build["run"].strip() == readme_build_command()
    assert {**job.get("env", {}), **build.get("env", {})}["MINIDENSE_PROFILE"] == "cpu"
    assert any("pip install -r requirements.txt" in step.get("run", "") for _, step in steps)


def test_pages_workflow_uploads_the_built_site_and_deploys_it():
    workflow, steps = workflow_steps()
    uses = {step["uses"].split("@")[0]: step for _, step in steps if "uses" in step}
    assert uses["actions/upload-pages-artifact"]["with"]["path"] == "_build/html"
    assert "actions/deploy-pages" in uses
    assert workflow["permissions"]["pages"] == "write" and workflow["permissions"]["id-token"] == "write"
    assert workflow[True]["push"]["branches"] == [REPOSITORY["branch"]]  # YAML reads `on:` as True


# --- The built site ---

@pytest.mark.slow
def test_book_builds_with_warnings_as_errors(book_build):
    assert book_build.command == readme_build_command()
    assert {"-W", "-n", "--keep-going"} <= set(book_build.command.split())
    assert book_build.returncode == 0, book_build.log[-5000:]


@pytest.mark.slow
def test_every_toc_page_is_built(book_html):
    missing = [page for page in PAGES if not (book_html / f"{page}.html").exists()]
    assert not missing, f"pages in _toc.yml but not in the built site: {missing}"


@pytest.mark.slow
def test_no_broken_internal_links_or_anchors(book_html, site):
    broken = []
    for path, page in site.items():
        for tag, reference in page.references:
            parts = urlsplit(reference)
            if parts.scheme or reference.startswith("//"):
                continue  # external (its own check below: nothing loaded from outside)
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path
            if target.is_dir():
                target = target / "index.html"
            where = f"{path.relative_to(book_html)}: <{tag}> {reference}"
            if not target.exists() or book_html not in target.parents:
                broken.append(f"{where} (no such file)")
            elif parts.fragment and target.suffix == ".html" and unquote(parts.fragment) not in site[target].ids:
                broken.append(f"{where} (no such anchor)")
    assert not broken, "\n".join(broken)


@pytest.mark.slow
def test_pages_load_nothing_from_the_internet(book_html, site):
    """Scripts, styles and images come from the book itself (MathJax included): it reads offline."""
    external = [f"{path.relative_to(book_html)}: <{tag}> {reference}"
                for path, page in site.items() for tag, reference in page.references
                if tag != "a" and (urlsplit(reference).scheme in ("http", "https") or reference.startswith("//"))]
    assert not external, "\n".join(external)
    mathjax = book_html / "_static" / "mathjax" / "tex-chtml.js"
    assert mathjax.exists(), "MathJax is not served from the book (sphinx-mathjax-offline in _config.yml)"


@pytest.mark.slow
def test_citations_link_to_the_bibliography(book_html, site):
    entries = {id_ for page in site.values() for id_ in page.bibliography_ids}
    uncited = []
    for name in PAGES:
        if not re.search(r"\{cite(:\w+)?\}", page_source(name).read_text()):
            continue
        page = site[book_html / f"{name}.html"]
        cites = [ref for tag, ref in page.references if tag == "a" and urlsplit(ref).fragment in entries]
        if not cites:
            uncited.append(name)
    assert not uncited, f"pages that cite but link no bibliography entry: {uncited}"


@pytest.mark.slow
def test_colab_buttons_open_the_chapter_notebook(book_html, site):
    for name in PAGES:
        page = site[book_html / f"{name}.html"]
        colab = {ref for tag, ref in page.references if tag == "a" and ref.startswith(COLAB_URL)}
        if name in NOTEBOOK_PAGES:
            assert colab == {colab_link(name)}, name
            assert (ROOT / f"{REPOSITORY['path_to_book']}{name}.ipynb").exists()
        else:
            assert not colab, f"{name} is not a notebook, yet links Colab: {colab}"
