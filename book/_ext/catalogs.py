"""Checks the Chinese catalogs against message templates made from the current English sources.

Run it as ``python book/_ext/zh.py check [PAGE ...]`` (it extracts fresh templates first). For each
catalog (``book/locales/zh_CN/LC_MESSAGES/<page>.po``) it reports:

* a message of the English source with no translation, or only a fuzzy one;
* a stale entry: obsolete (``#~``), or a message the English source no longer has;
* a translation that lost what must survive translation: maths (``$...$``, ``$$...$$``), inline code,
  roles and their targets (``{cite}``, ``{ref}``, ``{numref}``, ``{doc}``, ...; a ``{ref}`` may
  translate its title, ``{ref}`Title <target>```, never its target), directive names, link targets;
* emphasis that no longer renders: ``**粗体。**之后`` shows its asterisks in CommonMark (a closing
  ``**`` after punctuation must be followed by a space or punctuation: write ``**粗体**。之后``);
* a term of the glossary (``book/glossary.md``) in the English text whose translation is not in the
  translated text (code, maths, roles and links are not searched for terms).
"""

import collections
import os
import re
from pathlib import Path

import polib

ROLE = re.compile(r"\{([\w:.-]+)\}`([^`]*)`")
CODE = re.compile(r"(`+)(.+?)\1", re.S)
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$", re.S)
INLINE_MATH = re.compile(r"\$([^$\n]+?)\$")
LINK_TARGET = re.compile(r"\]\(([^)\s]*)\)|<((?:https?|mailto):[^>\s]+)>|(?<![(<\w])(https?://[^\s)>\]]+)")
DIRECTIVE = re.compile(r"(?:```+|:::+)\s*\{([\w:.-]+)\}")
# Roles whose text may carry a translatable title before the target: {ref}`title <target>`.
TITLED_ROLES = {"ref", "numref", "doc", "eq", "download", "term", "any", "prf:ref"}


def _role_key(name, text):
    titled = re.fullmatch(r"(.*?)\s*<([^<>]+)>", text, re.S)
    if name in TITLED_ROLES and titled:
        return f"{{{name}}}`<{titled.group(2).strip()}>`"
    return f"{{{name}}}`{text}`"


def preserved(text):
    """What a translation must keep, by kind: ``{"maths": Counter, "code": ..., "roles": ...}``.

    Roles are taken out first (their backticks are not code), then code (a ``$`` in code is not
    maths), then maths; links and directive names are read from what is left.
    """
    found = {kind: collections.Counter() for kind in ("roles", "code", "maths", "links", "directives")}
    found["directives"].update(DIRECTIVE.findall(text))
    text = DIRECTIVE.sub(" ", text)

    def keep(kind, key):
        def replace(match):
            found[kind][key(match)] += 1
            return " "
        return replace

    text = ROLE.sub(keep("roles", lambda m: _role_key(m.group(1), m.group(2))), text)
    text = CODE.sub(keep("code", lambda m: m.group(2).strip()), text)
    text = DISPLAY_MATH.sub(keep("maths", lambda m: "$$" + m.group(1).strip() + "$$"), text)
    text = INLINE_MATH.sub(keep("maths", lambda m: "$" + m.group(1).strip() + "$"), text)
    for groups in LINK_TARGET.findall(text):
        found["links"][next(g for g in groups if g)] += 1
    return found


def shown_asterisks(text):
    """How many ``*`` a reader sees in ``text`` rendered (CommonMark with dollar maths): emphasis
    markers that did not pair up, outside code and maths."""
    from markdown_it import MarkdownIt
    from mdit_py_plugins.dollarmath import dollarmath_plugin

    tokens = MarkdownIt("commonmark").use(dollarmath_plugin).parseInline(text)[0].children
    return sum(token.content.count("*") for token in tokens if token.type == "text")


def prose(text):
    """``text`` without code, maths, roles and link targets: where glossary terms are looked for."""
    text = DIRECTIVE.sub(" ", ROLE.sub(" ", text))
    text = INLINE_MATH.sub(" ", DISPLAY_MATH.sub(" ", CODE.sub(" ", text)))
    return LINK_TARGET.sub(" ", text)


def term_pattern(english):
    """The English term as a word, any case, plural allowed, spaces or hyphens between its words."""
    words = r"[\s-]+".join(re.escape(word) for word in english.split())
    return re.compile(rf"(?<![\w-]){words}(?:s|es)?(?!\w)", re.I)


def translation_problems(msgid, msgstr, terms=()):
    """What ``msgstr`` lost of ``msgid``: a list of sentences, empty when nothing is lost."""
    problems = []
    source, target = preserved(msgid), preserved(msgstr)
    for kind in source:
        lost, added = source[kind] - target[kind], target[kind] - source[kind]
        if lost or added:
            problems.append(f"{kind} differ: the English has {sorted(lost)} where the translation has "
                            f"{sorted(added)}")
    if shown_asterisks(msgstr) > shown_asterisks(msgid):
        problems.append("emphasis shows its asterisks: after punctuation a closing ** or * needs a space or "
                        "punctuation next (write **粗体**。, not **粗体。**)")
    english = prose(msgid)
    for term in terms:
        if term_pattern(term.en).search(english) and not any(form in msgstr for form in term.accepted):
            problems.append(f"glossary: '{term.en}' should be translated as {' or '.join(term.accepted)}")
    return problems


def _short(msgid, width=70):
    msgid = " ".join(msgid.split())
    return msgid if len(msgid) <= width else msgid[: width - 1] + "…"


def check_catalog(template_path, catalog_path, terms=()):
    """The problems of one catalog against its template, as sentences."""
    if not Path(catalog_path).exists():
        return ["no catalog for this page (run: python book/_ext/zh.py update)"]
    template = [entry.msgid for entry in polib.pofile(str(template_path)) if entry.msgid]
    catalog = polib.pofile(str(catalog_path))
    entries = {entry.msgid: entry for entry in catalog if entry.msgid and not entry.obsolete}
    problems = []
    for msgid in template:
        entry = entries.get(msgid)
        if entry is None:
            problems.append(f"not in the catalog (run update): {_short(msgid)}")
        elif entry.fuzzy:
            problems.append(f"fuzzy: {_short(msgid)}")
        elif not entry.msgstr.strip():
            problems.append(f"untranslated: {_short(msgid)}")
        else:
            problems += [f"{problem}: {_short(msgid)}" for problem in translation_problems(msgid, entry.msgstr, terms)]
    current = set(template)
    problems += [f"stale (no longer in the English source): {_short(m)}" for m in entries if m not in current]
    problems += [f"stale (obsolete entry): {_short(e.msgid)}" for e in catalog.obsolete_entries()]
    return problems


def check(templates, catalogs, pages=None, terms=None):
    """``{catalog path: [problem, ...]}`` for every page with a problem (pages: ``book/dense-block``, ...)."""
    import glossary

    templates, catalogs = Path(templates), Path(catalogs)
    terms = glossary.read() if terms is None else terms
    found = {str(t.relative_to(templates).with_suffix("")): t for t in sorted(templates.rglob("*.pot"))}
    kept = {str(c.relative_to(catalogs).with_suffix("")) for c in catalogs.rglob("*.po")}
    unknown = sorted(set(pages or ()) - set(found))
    if unknown:
        raise ValueError(f"no such page: {unknown}; the pages are {sorted(found)}")
    report = {}
    for page in pages or sorted(found.keys() | kept):
        catalog = catalogs / f"{page}.po"
        if page not in found:
            problems = ["stale catalog: the English book has no such page"]
        else:
            problems = check_catalog(found[page], catalog, terms)
        if problems:
            report[os.path.relpath(catalog)] = problems
    return report


def format_report(report):
    """The report as lines a translator reads: each catalog, its problems."""
    if not report:
        return "Every catalog is complete and in sync."
    lines = []
    for catalog, problems in report.items():
        lines.append(f"{catalog}: {len(problems)} problem{'s' * (len(problems) != 1)}")
        lines += [f"    {problem}" for problem in problems]
    return "\n".join(lines)
