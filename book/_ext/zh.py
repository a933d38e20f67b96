"""The Chinese edition: extract the messages, update the catalogs, check them, build the edition.

    python book/_ext/zh.py update [PAGE ...] # after an English change: the catalogs updated to it
    python book/_ext/zh.py check [PAGE ...] # what is missing or broken, per catalog (exit 1 if anything)
    python book/_ext/zh.py build           # the Chinese edition, into _build/html/zh/
    python book/_ext/zh.py notebooks DIR   # the Chinese notebooks for Colab, into DIR/book/*.ipynb

The edition derives from ``_config.yml`` through Jupyter Book's own translation of it into Sphinx's
configuration (``jupyter_book.sphinx.build_sphinx``, what ``jupyter-book build`` calls), with the few
settings that make it Chinese laid on top (``ZH_OVERRIDES``). Why not a generated ``conf.py`` or a
second YAML file: either would be a second configuration a person could edit and let drift; here the
only Chinese settings are the overrides below, and every other setting (extensions, bibliography,
launch buttons, execution cache) is the English edition's by construction.

The Chinese build executes nothing: it reads the outputs the English build stored in the shared
jupyter-cache (``profile_cache.py`` names its folder), and refuses to start, saying which command to
run, when a chapter has no stored outputs under the current profile.
"""

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXT = Path(__file__).resolve().parent
LOCALES = ROOT / "book" / "locales"
LANGUAGE = "zh_CN"
CATALOGS = LOCALES / LANGUAGE / "LC_MESSAGES"
BUILD = ROOT / "_build"
ZH_WORK = BUILD / "zh"  # the Chinese build's own html, doctrees and notebook outputs
ZH_SITE = BUILD / "html" / "zh"  # where the site is published: under the English edition's root
ENGLISH_BUILD = "jupyter-book build . -W -n --keep-going"
# The branch the Pages workflow pushes the Chinese notebooks to; the Chinese edition's Colab
# button opens them there (Colab opens notebooks from GitHub URLs).
COLAB_BRANCH = "colab-zh"

# What makes the edition Chinese (the catalogs' layout is in _config.yml, which both editions read).
ZH_OVERRIDES = {
    "language": LANGUAGE,
    "html_theme_options": {"repository_branch": COLAB_BRANCH},
}
# The messages are the prose: extracting them needs no notebook to run.
EXTRACT_OVERRIDES = {"nb_execution_mode": "off"}


def sphinx_build(builder, outdir, doctreedir, overrides, strict=True):
    """Builds the book with ``builder`` from ``_config.yml`` plus ``overrides``; returns Sphinx's status."""
    sys.path.insert(0, str(EXT))
    from jupyter_book.sphinx import build_sphinx

    overrides = {"external_toc_path": str(ROOT / "_toc.yml"), "latex_individualpages": False,
                 "nitpicky": True, **overrides}
    status = build_sphinx(ROOT, Path(outdir), noconfig=True, path_config=str(ROOT / "_config.yml"),
                          confoverrides=overrides, doctreedir=Path(doctreedir), builder=builder,
                          warningiserror=strict, keep_going=True, quiet=True)
    if isinstance(status, Exception):
        raise status
    return status


def extract(outdir):
    """Writes one message template per document (``book/dense-block.pot``, ...) under ``outdir``."""
    outdir = Path(outdir)
    # Not strict: a warning in the English sources (the English build's to fail on) blocks no translator.
    sphinx_build("gettext", outdir, outdir / ".doctrees", EXTRACT_OVERRIDES, strict=False)
    # The theme's own strings (sphinx.pot) are translated by Sphinx and the theme already.
    (outdir / "sphinx.pot").unlink(missing_ok=True)
    return outdir


def update(pages=()):
    """New templates from the current English sources; the catalogs of ``pages`` (default: all) updated.

    sphinx-intl merges each template into its catalog: a new paragraph is added untranslated, a
    changed one keeps its old translation marked fuzzy, a removed one stays as an obsolete entry.
    Naming pages leaves every other catalog untouched, so that translators of other pages can work
    at the same time.
    """
    from sphinx_intl.basic import update as update_catalogs

    with tempfile.TemporaryDirectory() as scratch:
        templates = extract(Path(scratch) / "all")
        chosen = Path(scratch) / "chosen"
        for page in pages or [str(t.relative_to(templates).with_suffix("")) for t in templates.rglob("*.pot")]:
            template = templates / f"{page}.pot"
            if not template.exists():
                raise SystemExit(f"no page {page!r} in the book (pages are named like book/dense-block)")
            (chosen / page).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(template, chosen / f"{page}.pot")
        update_catalogs(str(LOCALES), str(chosen), (LANGUAGE,), jobs=1)


def build():
    """The Chinese edition into ``_build/html/zh``, from the English build's stored outputs."""
    from profile_cache import missing_outputs

    sys.path.insert(0, str(EXT))
    missing = missing_outputs(ROOT)
    if missing:
        raise SystemExit("the Chinese edition reuses the English build's outputs, and these chapters have none "
                         f"under this profile: {', '.join(missing)}.\nBuild the English edition first: "
                         f"{ENGLISH_BUILD}")
    status = sphinx_build("html", ZH_WORK / "html", ZH_WORK / ".doctrees", ZH_OVERRIDES)
    if status:
        raise SystemExit(f"the Chinese edition did not build cleanly (Sphinx status {status})")
    shutil.rmtree(ZH_SITE, ignore_errors=True)
    shutil.copytree(ZH_WORK / "html", ZH_SITE)
    print(f"The Chinese edition is in {ZH_SITE.relative_to(ROOT)}/")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    update_pages = commands.add_parser("update", help="re-extract the messages and update the catalogs")
    update_pages.add_argument("pages", nargs="*", help="pages whose catalogs to update, e.g. book/dense-block "
                              "(default: all)")
    check = commands.add_parser("check", help="report what is missing or broken in the catalogs")
    check.add_argument("pages", nargs="*", help="pages to check, e.g. book/dense-block (default: all)")
    commands.add_parser("build", help="build the Chinese edition into _build/html/zh")
    notebooks = commands.add_parser("notebooks", help="write the Chinese notebooks for Colab")
    notebooks.add_argument("outdir", type=Path)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(EXT))
    if args.command == "update":
        update(args.pages)
    elif args.command == "check":
        import catalogs

        with tempfile.TemporaryDirectory() as scratch:
            report = catalogs.check(extract(Path(scratch)), CATALOGS, pages=args.pages or None)
        print(catalogs.format_report(report))
        return 1 if report else 0
    elif args.command == "build":
        build()
    elif args.command == "notebooks":
        import zh_notebooks

        zh_notebooks.write_all(args.outdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
