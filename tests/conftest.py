"""Shared fixtures: the real data (``MINIDENSE_DATA``) and a tiny network for fast training tests;
the book built once per session, served on 127.0.0.1, and one headless browser to read it."""

import functools
import http.server
import os
import re
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml

import minidense

ROOT = Path(__file__).resolve().parent.parent


def pytest_addoption(parser):
    parser.addoption("--minidense-data", metavar="DIR", default=None,
                     help="folder holding FashionMNIST/raw/ (default: MINIDENSE_DATA, else ~/.cache/minidense)")


@pytest.fixture(scope="session")
def data_root(request):
    """The real Fashion-MNIST files, found the way the library finds them.

    The root is ``--minidense-data DIR``, else ``MINIDENSE_DATA``, else ``~/.cache/minidense``
    (:func:`minidense.data.data_root`); missing files are downloaded through torchvision when the
    machine is online. Where they cannot be had, the tests that need them skip, except under
    ``CI=true``: there a missing data set fails the run, so CI never passes by skipping them.
    """
    root = minidense.data.data_root(request.config.getoption("--minidense-data"))
    try:
        for split in ("train", "test"):  # reads (and on first use downloads) the files, checking them
            minidense.data.read_fashion_mnist(split, root)
    except (OSError, ValueError) as error:  # FileNotFoundError (offline), a corrupt or truncated file
        message = f"no usable Fashion-MNIST under {root}: {error}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{message} (CI=true: a missing data set fails the run)", pytrace=False)
        pytest.skip(message)
    return root


def tiny_densenet(seed=0):
    """A two-block book DenseNet (growth rate 8) for 32x32 inputs: fast enough to train in tests."""
    torch.manual_seed(seed)
    return minidense.densenet(growth_rate=8, convs_per_block=(2, 2))


@pytest.fixture
def tiny_data(data_root):
    """512 training and 256 test images at 32x32, batch 64."""
    return minidense.load_fashion_mnist(64, resize=32, root=data_root, device="cpu", num_train=512,
                                        num_test=256, seed=0)


# --- The built book, shared by every test that reads it: built once per test session. ---

BUILD_DIR = ROOT / "_build"


def readme_build_command():
    """README's command that builds the book (the part after ``&&`` of its set-up line)."""
    readme = (ROOT / "README.md").read_text()
    commands = [line.split("&&")[-1].strip() for line in readme.splitlines() if "jupyter-book build" in line]
    assert len(commands) == 1, f"README should give one book-build command, found {commands}"
    return commands[0]


def readme_zh_build_command():
    """README's command that builds the Chinese edition into ``_build/html/zh`` (after the English one)."""
    readme = (ROOT / "README.md").read_text()
    commands = [line.strip() for line in readme.splitlines() if line.strip().startswith("python book/_ext/zh.py build")]
    assert len(commands) == 1, f"README should give one Chinese-build command, found {commands}"
    return commands[0]


def toc_pages():
    """The pages of ``_toc.yml`` in reading order, as paths without suffix (``book/intro``, ...)."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    pages = [toc["root"]]
    for part in toc.get("parts", []):
        for chapter in part["chapters"]:
            pages.append(chapter["file"])
            pages.extend(section["file"] for section in chapter.get("sections", []))
    return pages


def page_source(page):
    """The source file of a toc page (``.ipynb`` or ``.md``)."""
    for suffix in (".ipynb", ".md"):
        if (ROOT / f"{page}{suffix}").exists():
            return ROOT / f"{page}{suffix}"
    raise FileNotFoundError(f"{page} in _toc.yml has no .ipynb or .md file")


@dataclass
class BookBuild:
    command: str
    returncode: int
    log: str
    html: Path


@pytest.fixture(scope="session")
def book_build():
    """Builds the book with README's command, once per session, into a fresh ``_build/html``, then
    the Chinese edition with README's command into ``_build/html/zh`` (the site publishes both).

    Executed notebooks stay cached in ``_build/.jupyter_cache``; pages and doctrees are rebuilt,
    so no page of an earlier build (a chapter since removed) survives to be tested.
    """
    command = readme_build_command()
    for stale in (BUILD_DIR / "html", BUILD_DIR / ".doctrees", BUILD_DIR / "zh"):
        shutil.rmtree(stale, ignore_errors=True)
    result = subprocess.run(shlex.split(command), cwd=ROOT, capture_output=True, text=True)
    returncode, log = result.returncode, result.stdout + result.stderr
    if returncode == 0:
        zh = subprocess.run(shlex.split(readme_zh_build_command()), cwd=ROOT, capture_output=True, text=True)
        returncode, log = zh.returncode, log + zh.stdout + zh.stderr
    return BookBuild(command, returncode, log, BUILD_DIR / "html")


@pytest.fixture(scope="session")
def book_html(book_build):
    """``_build/html`` of a build that succeeded; fails (with the build's log) otherwise."""
    if book_build.returncode != 0:
        pytest.fail(f"`{book_build.command}` failed:\n{book_build.log[-3000:]}", pytrace=False)
    return book_build.html


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture(scope="session")
def book_url(book_html):
    """The built book served over HTTP on 127.0.0.1 (a free port), as a base URL ending in ``/``."""
    handler = functools.partial(_QuietHandler, directory=str(book_html))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # Offline: every host but 127.0.0.1 fails to resolve, so a page that needs the
                  # internet (a CDN's MathJax or fonts) shows a failed request.
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    """One headless Chromium (Debian's, with its chromedriver) for the session; skips without them."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    chromedriver = shutil.which("chromedriver")
    if not chromium or not chromedriver:
        pytest.skip("no chromium/chromedriver on PATH (.ci/run installs them: apt-get install chromium "
                    "chromium-driver)")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium  # never let Selenium Manager download a browser
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    options.add_argument("--window-size=1280,900")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()


def repository_pages_url(repository_url):
    """``https://github.com/OWNER/REPO`` -> ``https://OWNER.github.io/REPO/`` (GitHub Pages)."""
    owner, repo = re.fullmatch(r"https://github\.com/([^/]+)/([^/]+?)/?", repository_url).groups()
    return f"https://{owner}.github.io/{repo}/"
