"""The terms of the Chinese edition: read from the glossary page, shown there as a table.

``book/glossary.md`` is the one place the terms are decided. Its ``{glossary-terms}`` block holds
them as YAML, one entry per term::

    - en: growth rate        # the English term as the prose writes it (matched as a word, any case)
      zh: 增长率             # its translation: every translated paragraph that has the term uses it
      also: [...]            # optional: other forms a translation may use instead (e.g. the name kept)
      d2l_zh: 汇聚           # optional: where d2l's Chinese edition writes something else

The block renders as a table in both editions; its cells are not messages to translate.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

GLOSSARY_PAGE = Path(__file__).resolve().parents[1] / "glossary.md"
_BLOCK = re.compile(r"^```\{glossary-terms\}[^\n]*\n(.*?)^```", re.M | re.S)


@dataclass(frozen=True)
class Term:
    en: str
    zh: str
    also: tuple = field(default=())
    d2l_zh: str = ""

    @property
    def accepted(self):
        """The forms a translation may use for this term: ``zh`` first."""
        return (self.zh, *self.also)


def parse_terms(text, where="the glossary"):
    """The list of :class:`Term` in YAML ``text``; a clear error for a malformed entry."""
    entries = yaml.safe_load(text) or []
    terms = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not {"en", "zh"} <= set(entry) or set(entry) - {"en", "zh", "also", "d2l_zh"}:
            raise ValueError(f"{where}, entry {number}: expected keys en, zh (and optionally also, d2l_zh), "
                             f"got {entry!r}")
        terms.append(Term(str(entry["en"]), str(entry["zh"]), tuple(entry.get("also", ())),
                          str(entry.get("d2l_zh", ""))))
    english = [t.en.lower() for t in terms]
    repeated = sorted({e for e in english if english.count(e) > 1})
    if repeated:
        raise ValueError(f"{where}: terms listed twice: {repeated}")
    return terms


def read(page=GLOSSARY_PAGE):
    """The terms of the glossary page's ``{glossary-terms}`` block."""
    found = _BLOCK.findall(Path(page).read_text(encoding="utf-8"))
    if len(found) != 1:
        raise ValueError(f"{page} should hold one ```{{glossary-terms}} block, found {len(found)}")
    return parse_terms(found[0], where=str(page))


def _table(terms):
    from docutils import nodes

    columns = ("English", "中文", "d2l-zh")
    table = nodes.table(classes=["glossary-terms"])
    group = nodes.tgroup(cols=len(columns))
    table += group
    group.extend(nodes.colspec(colwidth=1) for _ in columns)

    def row(cells):
        line = nodes.row()
        for text in cells:
            line += nodes.entry("", nodes.paragraph("", "", nodes.Text(text)))
        return line

    group += nodes.thead("", row(columns))
    body = nodes.tbody()
    body.extend(row((t.en, " / ".join(t.accepted), t.d2l_zh or "")) for t in terms)
    group += body
    return table


def setup(app):
    from sphinx.util.docutils import SphinxDirective

    class GlossaryTerms(SphinxDirective):
        """The block's terms as a table (nodes without a source: Sphinx does not extract them)."""

        has_content = True

        def run(self):
            return [_table(parse_terms("\n".join(self.content), where=self.env.docname))]

    app.add_directive("glossary-terms", GlossaryTerms)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
