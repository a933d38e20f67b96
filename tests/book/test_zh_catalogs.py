"""The Chinese catalogs: complete and in sync with the English sources, translations that keep their
maths, code, roles, links and the glossary's terms; the checker itself, on messages worked by hand."""

import shutil
import subprocess
import sys

import polib
import pytest

from conftest import ROOT, toc_pages

sys.path.insert(0, str(ROOT / "book" / "_ext"))  # the Chinese edition's tools

import catalogs
import glossary
import zh

TERMS = glossary.read()


# --- The checker on single messages ---

def problems(msgid, msgstr):
    return catalogs.translation_problems(msgid, msgstr, TERMS)


def test_a_faithful_translation_has_no_problem():
    msgid = ("A dense block {cite}`huang2017densely` with growth rate $k$ adds `out_channels`; see "
             "{doc}`the training chapter <training>` and [d2l](https://d2l.ai).")
    msgstr = ("稠密块 {cite}`huang2017densely` 的增长率为 $k$，增加 `out_channels`；见 "
              "{doc}`训练一章 <training>` 和 [d2l](https://d2l.ai)。")
    assert problems(msgid, msgstr) == []


@pytest.mark.parametrize("msgstr, kind", [
    ("稠密块的增长率为 k。", "maths"),                       # $k$ lost
    ("稠密块的增长率为 $K$。", "maths"),                     # changed
    ("稠密块的增长率为 $k$，见 `out_channel`。", "code"),
    ("稠密块 {cite}`huang2017dense` 的增长率为 $k$。", "roles"),
    ("稠密块的增长率为 $k$，见 {doc}`训练 <train>`。", "roles"),  # a {doc} target changed
    ("稠密块的增长率为 $k$，见 [d2l](https://d2l.ai/zh)。", "links"),
])
def test_a_lost_or_changed_token_is_named(msgstr, kind):
    msgid = {"maths": "The growth rate of a dense block is $k$.",
             "code": "The growth rate of a dense block is $k$, see `out_channels`.",
             "roles": "The growth rate of a dense block {cite}`huang2017densely` is $k$.",
             "links": "The growth rate of a dense block is $k$, see [d2l](https://d2l.ai)."}[kind]
    if "{doc}" in msgstr:
        msgid = "The growth rate of a dense block is $k$, see {doc}`training <training>`."
    found = problems(msgid, msgstr)
    assert len(found) == 1 and found[0].startswith(f"{kind} differ"), found


def test_a_titled_role_may_translate_its_title_but_not_its_target():
    msgid = "See {ref}`the figure <fig-growth>` and {numref}`Figure %s <fig-reuse>`."
    assert problems(msgid, "见 {ref}`该图 <fig-growth>` 与 {numref}`图 %s <fig-reuse>`。") == []
    assert problems(msgid, "见 {ref}`该图 <fig-other>` 与 {numref}`图 %s <fig-reuse>`。")


def test_a_directive_name_must_stay():
    msgid = "Write ```{exercise} in MyST."
    assert problems(msgid, "在 MyST 中写 ```{exercise}。") == []
    assert problems(msgid, "在 MyST 中写 ```{练习}。")[0].startswith("directives differ")


def test_emphasis_closed_after_punctuation_shows_its_asterisks():
    msgid = "**Collective knowledge.** Every layer reads the block."
    assert problems(msgid, "**集体知识**。每一层都读取整个块。") == []
    assert problems(msgid, "**集体知识。**每一层都读取整个块。")[0].startswith("emphasis shows its asterisks")


def test_a_glossary_term_must_use_the_glossarys_word():
    msgid = "The growth rate and the pooling of a transition layer."
    assert problems(msgid, "过渡层的增长率与池化。") == []
    found = problems(msgid, "过渡层的增长率与汇聚。")  # d2l-zh's word, not this book's
    assert found == ["glossary: 'pooling' should be translated as 池化"]


def test_glossary_terms_match_plurals_and_hyphens_but_not_inside_code_or_maths():
    assert problems("Four channels per epoch-long run.", "每个迭代周期四个通道。") == []
    assert problems("Four channels.", "四个。") == ["glossary: 'channel' should be translated as 通道"]
    assert problems("Set `growth_rate` and $\\text{channels}$.", "设置 `growth_rate` 和 $\\text{channels}$。") == []


def test_a_term_may_use_an_accepted_other_form():
    assert problems("DenseNet reuses features.", "DenseNet 重用特征。") == []
    assert problems("One epoch.", "一轮。") == []


# --- The glossary ---

def test_the_glossary_decides_the_books_terms():
    decided = {term.en: term.zh for term in TERMS}
    assert {"DenseNet": "稠密连接网络", "dense block": "稠密块", "transition layer": "过渡层",
            "growth rate": "增长率", "batch normalization": "批量规范化", "bottleneck layer": "瓶颈层",
            "compression factor": "压缩因子", "pooling": "池化", "convolution": "卷积", "feature map": "特征图",
            "channel": "通道", "learning rate": "学习率", "weight decay": "权重衰减", "label smoothing": "标签平滑",
            "epoch": "迭代周期"}.items() <= decided.items()
    assert next(term for term in TERMS if term.en == "pooling").d2l_zh == "汇聚"  # noted once


@pytest.mark.parametrize("text, error", [
    ("- en: pooling\n", "expected keys en, zh"),
    ("- en: pooling\n  zh: 池化\n  note: x\n", "expected keys en, zh"),
    ("- en: pooling\n  zh: 池化\n- en: Pooling\n  zh: 汇聚\n", "terms listed twice"),
])
def test_a_malformed_glossary_is_a_clear_error(text, error):
    with pytest.raises(ValueError, match=error):
        glossary.parse_terms(text)


# --- The checker on whole catalogs ---

def write_catalog(path, entries, obsolete=()):
    catalog = polib.POFile()
    for msgid, msgstr, *flags in entries:
        catalog.append(polib.POEntry(msgid=msgid, msgstr=msgstr, flags=list(flags)))
    for msgid, msgstr in obsolete:
        catalog.append(polib.POEntry(msgid=msgid, msgstr=msgstr, obsolete=True))
    path.parent.mkdir(parents=True, exist_ok=True)
    catalog.save(str(path))


def test_check_reports_untranslated_fuzzy_stale_and_missing(tmp_path):
    templates, locales = tmp_path / "pot", tmp_path / "po"
    write_catalog(templates / "book/a.pot", [("Dense block", ""), ("Growth rate", ""), ("New text", "")])
    write_catalog(locales / "book/a.po", [("Dense block", "稠密块"), ("Growth rate", "增长率", "fuzzy"),
                                          ("Old text", "旧文")], obsolete=[("Older text", "更旧")])
    write_catalog(templates / "book/b.pot", [("Summary", "")])
    write_catalog(locales / "book/gone.po", [("Gone", "没了")])
    report = catalogs.check(templates, locales, terms=TERMS)
    assert {key.split("/")[-1]: value for key, value in report.items()} == {
        "a.po": ["fuzzy: Growth rate", "not in the catalog (run update): New text",
                 "stale (no longer in the English source): Old text", "stale (obsolete entry): Older text"],
        "b.po": ["no catalog for this page (run: python book/_ext/zh.py update)"],
        "gone.po": ["stale catalog: the English book has no such page"]}
    assert catalogs.check(templates, locales, pages=["book/b"], terms=TERMS).keys() == {
        next(key for key in report if key.endswith("b.po"))}
    with pytest.raises(ValueError, match="no such page"):
        catalogs.check(templates, locales, pages=["book/c"], terms=TERMS)


# --- The book's catalogs, against templates made now from the English sources ---

@pytest.fixture(scope="module")
def templates(tmp_path_factory):
    return zh.extract(tmp_path_factory.mktemp("templates"))


@pytest.mark.slow
@pytest.mark.parametrize("page", toc_pages())
def test_catalog_is_complete_and_in_sync(templates, page):
    report = catalogs.check(templates, zh.CATALOGS, pages=[page])
    assert not report, catalogs.format_report(report)


@pytest.mark.slow
def test_no_catalog_without_a_page(templates):
    pages = {str(t.relative_to(templates).with_suffix("")) for t in templates.rglob("*.pot")}
    kept = {str(c.relative_to(zh.CATALOGS).with_suffix("")) for c in zh.CATALOGS.rglob("*.po")}
    assert kept == pages


@pytest.mark.slow
def test_a_changed_english_paragraph_fails_the_check(tmp_path):
    """In a scratch copy of the book (its introduction's catalog brought up to date first), one
    paragraph of the introduction changes; the check, run as a translator runs it, names that
    paragraph missing from the catalog and its old entry stale."""
    scratch = tmp_path / "book-copy"
    scratch.mkdir()
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy2(ROOT / name, scratch / name)
    shutil.copytree(ROOT / "book", scratch / "book", ignore=shutil.ignore_patterns("__pycache__", "*.mo"))
    zh_tool = [sys.executable, "book/_ext/zh.py"]
    subprocess.run([*zh_tool, "update", "book/intro"], cwd=scratch, check=True, capture_output=True)
    intro = scratch / "book" / "intro.md"
    old = next(p for p in intro.read_text().split("\n\n") if p and not p.startswith(("#", "```", "|", "-")))
    changed = old.replace(" ", " quite ", 1)
    intro.write_text(intro.read_text().replace(old, changed, 1))

    check = subprocess.run([*zh_tool, "check", "book/intro"], cwd=scratch, capture_output=True, text=True)
    found = [line.strip() for line in check.stdout.splitlines()[1:]]
    assert check.returncode == 1
    assert f"not in the catalog (run update): {catalogs._short(changed)}" in found
    assert f"stale (no longer in the English source): {catalogs._short(old)}" in found


@pytest.mark.slow
def test_the_colab_notebooks_reach_every_message_of_their_chapter(templates):
    """The Chinese notebooks find each message where Sphinx found it, so each translation reaches them."""
    import nbformat
    import profile_cache
    import zh_notebooks

    for path in profile_cache.toc_notebooks(ROOT):
        asked = set()
        for cell in nbformat.read(path, as_version=4).cells:
            if cell.cell_type == "markdown":
                zh_notebooks.translate_markdown(cell.source, asked.add)
        page = path.relative_to(ROOT).with_suffix("")
        messages = {entry.msgid for entry in polib.pofile(str(templates / f"{page}.pot")) if entry.msgid}
        assert not messages - asked, f"{page}: messages the notebook generator does not find: {messages - asked}"
