"""Write each ``<script>`` once per page.

Under Sphinx 7.4, scripts that extensions add after the builder starts (sphinx-thebe's and
sphinx-togglebutton's inline configuration) land in the page twice; the second
``const THEBE_JS_URL = ...`` is then a ``SyntaxError`` in every reader's console.
"""


def _script_key(script):
    return (getattr(script, "filename", script) or "", tuple(sorted(getattr(script, "attributes", {}).items())))


def drop_repeated_scripts(app, pagename, templatename, context, doctree):
    """Keep the first of scripts with the same file and attributes (inline body included)."""
    seen = set()
    scripts = []
    for script in context.get("script_files", []):
        key = _script_key(script)
        if key not in seen:
            seen.add(key)
            scripts.append(script)
    context["script_files"] = scripts


def setup(app):
    app.connect("html-page-context", drop_repeated_scripts)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
