"""The chapters' install cell, tested like Colab and without the internet.

Colab comes with its own torch, torchvision, numpy, matplotlib, pandas, scipy and tqdm; the first cell of a
chapter must install ``minidense`` and leave them alone. A wheel of the project is built first and
pip resolves the install cell's requirement against it alone (``--no-index --find-links``).
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv

import nbformat
import pytest
import yaml

from conftest import ROOT, page_source, toc_pages

CONFIG = yaml.safe_load((ROOT / "_config.yml").read_text())
REPOSITORY = CONFIG["repository"]
NOTEBOOK_PAGES = [page for page in toc_pages() if page_source(page).suffix == ".ipynb"]

# What a Colab runtime already has, at versions other than the ones requirements.txt pins.
COLAB_PACKAGES = {"torch": "2.5.1+cu121", "torchvision": "0.20.1+cu121", "numpy": "1.26.4",
                  "matplotlib": "3.8.0", "pandas": "2.2.2", "scipy": "1.13.1", "tqdm": "4.66.6"}


def pip(python, *args):
    """pip run for the environment of ``python``, with no configuration (no extra index, no constraint)."""
    command = [sys.executable, "-m", "pip", "--isolated", "--python", str(python), *args]
    return subprocess.run(command, capture_output=True, text=True, env={**clean_env(), "PIP_CONFIG_FILE": os.devnull})


def clean_env():
    """The environment without ``PYTHONPATH`` (a virtual environment must import its own copy) and
    without the machine's ``PIP_*`` settings (the wheel folder is the only source of packages)."""
    return {key: value for key, value in os.environ.items() if key != "PYTHONPATH" and not key.startswith("PIP_")}


def install_cell():
    """The first code cell of the first chapter in the toc (every chapter has the same one)."""
    if not NOTEBOOK_PAGES:
        pytest.skip("no chapter notebook in _toc.yml yet")
    notebook = nbformat.read(page_source(NOTEBOOK_PAGES[0]), as_version=4)
    return [cell.source for cell in notebook.cells if cell.cell_type == "code"][:2]


def install_requirement():
    """The requirement that the install cell's ``%pip install`` line names, split in name and URL."""
    line = next(line for line in install_cell()[0].splitlines() if "%pip install" in line)
    name, url = re.search(r'"(\S+) @ (\S+)"', line).groups()
    assert url == f"git+{REPOSITORY['url']}@{REPOSITORY['branch']}"
    return name


@pytest.fixture(scope="module")
def wheel_folder(tmp_path_factory):
    """A wheel of the project, built from a copy of its sources (the checkout stays clean)."""
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info", "__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                            str(source), "-w", str(wheels)], capture_output=True, text=True, env=clean_env())
    assert built.returncode == 0, built.stderr
    assert [w.name for w in wheels.glob("minidense-*.whl")], "no minidense wheel was built"
    return wheels


def site_packages(environment):
    return next(environment.glob("lib/python*/site-packages"))


def fake_distribution(folder, name, version):
    """Metadata that makes pip see ``name==version`` installed (no code: the resolver needs none)."""
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("colab\n")
    (info / "RECORD").write_text("")


def installed(python):
    listed = pip(python, "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    return {item["name"].lower(): item["version"] for item in json.loads(listed.stdout)}


@pytest.mark.slow  # builds a wheel and resolves it with pip: ~7 s
def test_install_cell_resolves_to_minidense_alone_next_to_colabs_packages(tmp_path, wheel_folder):
    environment = tmp_path / "colab"
    venv.create(environment, with_pip=False)
    for name, version in COLAB_PACKAGES.items():
        fake_distribution(site_packages(environment), name, version)
    python = environment / "bin" / "python"
    before = installed(python)

    report = tmp_path / "report.json"
    resolved = pip(python, "install", "--dry-run", "--report", str(report), "--no-index",
                   "--find-links", str(wheel_folder), install_requirement())
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    planned = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert planned == ["minidense"], f"the install cell would also install {planned}"
    assert installed(python) == before == dict(COLAB_PACKAGES)


@pytest.mark.slow  # builds the wheel (fixture) and resolves it with pip in a new virtual environment
def test_resolution_check_catches_a_package_below_our_lower_bound(tmp_path, wheel_folder):
    """The check above has teeth: with a torch older than pyproject.toml's bound, pip wants another."""
    environment = tmp_path / "old-colab"
    venv.create(environment, with_pip=False)
    for name, version in {**COLAB_PACKAGES, "torch": "1.13.1"}.items():
        fake_distribution(site_packages(environment), name, version)
    resolved = pip(environment / "bin" / "python", "install", "--dry-run", "--no-index",
                   "--find-links", str(wheel_folder), install_requirement())
    output = resolved.stdout + resolved.stderr
    assert resolved.returncode != 0 and "requirement torch>=" in output, output


def project_environment_without_minidense(tmp_path):
    """A virtual environment over the project's own packages, with ``minidense`` itself hidden.

    ``--system-site-packages`` would show pip the project's editable ``minidense`` (so the install
    would be a no-op): instead the environment sees a folder of links to every entry of the
    project's site-packages except minidense's.
    """
    environment = tmp_path / "project"
    venv.create(environment, with_pip=False)
    visible = tmp_path / "project-packages"
    visible.mkdir()
    project = sysconfig.get_paths()["purelib"]
    for entry in os.scandir(project):
        if not re.match(r"(__editable__[._]+)?minidense", entry.name):
            os.symlink(entry.path, visible / entry.name)
    (site_packages(environment) / "project-packages.pth").write_text(
        f"import site; site.addsitedir({str(visible)!r})\n")
    return environment / "bin" / "python"


@pytest.mark.slow
def test_install_cell_installs_minidense_for_real_and_a_chapter_starts(tmp_path, wheel_folder):
    python = project_environment_without_minidense(tmp_path)
    missing = subprocess.run([python, "-c", "import minidense"], capture_output=True, env=clean_env())
    assert missing.returncode != 0, "minidense should not be importable before the install"
    before = installed(python)

    report = tmp_path / "report.json"
    done = pip(python, "install", "--report", str(report), "--no-index", "--find-links", str(wheel_folder),
               install_requirement())
    assert done.returncode == 0, done.stdout + done.stderr
    assert [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]] == ["minidense"]
    after = installed(python)
    assert after.pop("minidense") and after == before, "the install changed another package"

    # The chapter's first two cells, as IPython would run them: the `%pip` line must not run,
    # because `import minidense` now succeeds.
    script = r"""
import sys
from IPython.core.inputtransformer2 import TransformerManager

def get_ipython():
    raise AssertionError("the install cell ran %pip although minidense imports")

cells = sys.stdin.read().split("\n#--- next cell ---\n")
namespace = {"get_ipython": get_ipython}
for cell in cells:
    exec(TransformerManager().transform_cell(cell), namespace)
print("minidense from", namespace["minidense"].__file__)
"""
    ran = subprocess.run([python, "-c", script], input="\n#--- next cell ---\n".join(install_cell()),
                         capture_output=True, text=True, env={**clean_env(), "MINIDENSE_PROFILE": "smoke"},
                         timeout=120)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"minidense from {site_packages(python.parent.parent)}" in ran.stdout
    # the chapter's first output: its budget and device, or that it trains no network
    assert "Training budget" in ran.stdout or "This chapter trains no network" in ran.stdout
