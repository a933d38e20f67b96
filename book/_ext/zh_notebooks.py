"""The Chinese notebooks for Colab: each chapter's English notebook with its markdown translated.

    python book/_ext/zh.py notebooks DIR     # DIR/book/<page>.ipynb for every chapter

Code cells are the English notebook's, byte for byte. In each markdown cell every paragraph, heading,
list item, table cell and directive title is replaced by its translation from the page's catalog
(the message Sphinx extracts from it is the key), so the notebook says what the Chinese edition's page
says. They are generated when the book is published, never committed: the Pages workflow pushes them
to the ``colab-zh`` branch, where the Chinese edition's Colab buttons point.
"""

import copy
import re
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "book" / "locales" / "zh_CN" / "LC_MESSAGES"
# Directives whose body is code or maths, not prose.
LITERAL_DIRECTIVES = {"code", "code-block", "code-cell", "sourcecode", "math", "raw", "literalinclude",
                      "glossary-terms"}
_OPTION = re.compile(r"^\s*:[\w-]+:")


def _parser():
    from markdown_it import MarkdownIt
    from mdit_py_plugins.colon_fence import colon_fence_plugin
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    # What MyST reads in the book's notebooks (tables, dollar maths, ::: fences), block by block.
    return MarkdownIt("commonmark").enable("table").use(dollarmath_plugin).use(colon_fence_plugin)


def message(text):
    """The message Sphinx extracts from a block's text (its lines joined by spaces)."""
    return text.replace("\n", " ").strip()


def translate_markdown(source, translate):
    """``source`` with each block's text replaced by ``translate(message)`` (``None``: kept as it is)."""
    lines = source.split("\n")
    edits = []  # (first line, end line, new lines), applied from the bottom up
    cells = {}  # table row -> [(cell text, its translation)], replaced left to right
    tokens = _parser().parse(source)
    for index, token in enumerate(tokens):
        block = tokens[index - 1].type if index else ""
        if token.type == "inline" and token.map and block in ("paragraph_open", "heading_open"):
            translated = translate(message(token.content))
            if translated is not None:
                first = lines[token.map[0]]
                start = first.find(token.content.split("\n")[0])
                edits.append((token.map[0], token.map[1], [first[:start] + translated]))
        elif token.type == "inline" and token.map and block in ("th_open", "td_open") and token.content:
            translated = translate(message(token.content))
            if translated is not None:
                cells.setdefault(token.map[0], []).append((token.content, translated))
        elif token.type in ("fence", "colon_fence") and token.map and token.info.startswith("{"):
            edits.append((token.map[0], token.map[1], _translate_directive(token, lines, translate)))
    for row, replacements in cells.items():
        edits.append((row, row + 1, [_replace_cells(lines[row], replacements)]))
    for start, end, new in sorted(edits, reverse=True):
        lines[start:end] = new
    return "\n".join(lines)


def _replace_cells(line, replacements):
    """A table row with each cell's text replaced, left to right."""
    done, rest = "", line
    for text, translated in replacements:
        before, found, rest = rest.partition(text)
        done += before + (translated if found else "")
    return done + rest


def _translate_directive(token, lines, translate):
    """A ```{name} title ... ``` block with its title and its body's prose translated."""
    name, _, argument = token.info[1:].partition("}")
    opening, closing = lines[token.map[0]], lines[token.map[1] - 1]
    if name.strip() in LITERAL_DIRECTIVES:
        return lines[token.map[0]:token.map[1]]
    argument = argument.strip()
    if argument and translate(message(argument)) is not None:
        opening = opening[: opening.rindex(argument)] + translate(message(argument))
    body = token.content.split("\n")
    options = 0
    while options < len(body) and _OPTION.match(body[options]):
        options += 1
    translated = translate_markdown("\n".join(body[options:]), translate)
    return [opening, *body[:options], *translated.rstrip("\n").split("\n"), closing]


def translations(page, catalogs=CATALOGS):
    """``msgid -> msgstr`` of the page's catalog: translated, non-fuzzy entries only."""
    import polib

    path = Path(catalogs) / f"{page}.po"
    if not path.exists():
        return {}
    entries = polib.pofile(str(path))
    return {e.msgid: e.msgstr for e in entries if e.msgid and e.msgstr and not e.fuzzy and not e.obsolete}


def chinese_notebook(path, table):
    """The notebook at ``path`` with its markdown translated through ``table`` (``msgid -> msgstr``)."""
    notebook = nbformat.read(path, as_version=4)
    translated = copy.deepcopy(notebook)
    for cell in translated.cells:
        if cell.cell_type == "markdown":
            cell.source = translate_markdown(cell.source, table.get)
    return translated


def write_all(outdir, root=ROOT):
    """Writes ``outdir/<page>.ipynb`` for every notebook of the book, translated; returns their paths."""
    import profile_cache

    written = []
    for path in profile_cache.toc_notebooks(root):
        page = path.relative_to(root).with_suffix("")
        target = Path(outdir) / f"{page}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        table = translations(page, Path(root) / CATALOGS.relative_to(ROOT))
        nbformat.write(chinese_notebook(path, table), target)
        written.append(target)
    return written
