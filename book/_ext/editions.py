"""The book's two editions, English at the site's root and Chinese under ``zh/``.

* Every page's header links to the same page in the other edition (the language switch).
* Displayed maths is not a message to translate: the Chinese edition shows the English edition's
  equations unchanged (inline maths stays inside its paragraph's message, and the catalog check
  holds it unchanged there too).
* What Sphinx's own translation does not reach is translated from the same catalogs: the table of
  contents' part captions (sphinx-external-toc inserts them after Sphinx's i18n transform has run)
  and the book's title (``_config.yml``'s ``title``, the root page's heading: its translation).
"""

from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.locale import init as init_locale
from sphinx.transforms import SphinxTransform
from sphinx.util.i18n import docname_to_domain

# language -> (what the switch to it says, its folder under the site's root, its HTML language tag)
EDITIONS = {"en": ("English", "", "en"), "zh_CN": ("中文", "zh/", "zh-CN")}
TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def edition(language):
    """The key of ``EDITIONS`` for Sphinx's ``language`` (``None`` or ``en``: the English edition)."""
    return "zh_CN" if (language or "en").startswith("zh") else "en"


def other_edition_url(pagename, language):
    """The relative URL of ``pagename`` in the other edition, seen from ``pagename`` in this one."""
    here = edition(language)
    there = next(key for key in EDITIONS if key != here)
    up_to_root = "../" * pagename.count("/") + ("../" if EDITIONS[here][1] else "")
    return f"{up_to_root}{EDITIONS[there][1]}{pagename}.html", there


def add_language_switch(app, pagename, templatename, context, doctree):
    url, there = other_edition_url(pagename, app.config.language)
    text, _, tag = EDITIONS[there]
    context["language_switch"] = {"url": url, "text": text, "hreflang": tag}


def use_switch_template(app, config):
    config.templates_path = [*config.templates_path, str(TEMPLATES)]
    config.html_static_path = [*config.html_static_path, str(STATIC)]
    options = config.html_theme_options
    end = options.get("article_header_end", ["article-header-buttons.html"])
    if isinstance(end, str):
        end = [item.strip() for item in end.split(",") if item.strip()]
    options["article_header_end"] = ["language-switch.html", *(item for item in end if item != "language-switch.html")]


class KeepDisplayedMaths(SphinxTransform):
    """Marks displayed maths untranslatable before Sphinx's i18n transform (priority 20) reads it."""

    default_priority = 10

    def apply(self, **kwargs):
        for node in self.document.findall(nodes.math_block):
            node["translatable"] = False


def catalog(app, docname):
    """The translations of ``docname``'s catalog (a ``gettext`` object; the identity without one)."""
    domain = docname_to_domain(docname, app.config.gettext_compact)
    dirs = [str(Path(app.srcdir) / directory) for directory in app.config.locale_dirs]
    return init_locale(dirs, app.config.language, domain)[0]


class TranslateTocCaptions(SphinxTransform):
    """Translates the part captions that sphinx-external-toc inserts (its transform: priority 100)."""

    default_priority = 110

    def apply(self, **kwargs):
        if edition(self.config.language) == "en":
            return
        translations = catalog(self.app, self.env.docname)
        for toctree in self.document.findall(addnodes.toctree):
            caption = toctree.get("rawcaption") or toctree.get("caption")
            if caption and translations.gettext(caption) != caption:
                toctree.apply_translated_message(caption, translations.gettext(caption))


def translate_title(app):
    if edition(app.config.language) != "en" and app.config.html_title:
        app.config.html_title = catalog(app, app.config.root_doc).gettext(app.config.html_title)


def setup(app):
    app.connect("config-inited", use_switch_template)
    app.connect("html-page-context", add_language_switch)
    app.add_css_file("language-switch.css")
    app.add_transform(KeepDisplayedMaths)
    app.add_transform(TranslateTocCaptions)
    app.connect("builder-inited", translate_title)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
