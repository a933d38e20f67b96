"""Every chapter follows the book's template (read from the notebooks' JSON, nothing is executed).

The template, as ``book/conv-block.ipynb`` shows it:

- the first cell is markdown: ``# Title`` in sentence case, the link line, then a paragraph starting
  ``**Learning objectives.** After this chapter you can`` and a bullet list;
- then the chapter's sections (``## ...``), then ``## Summary`` (a bullet list), then ``## Exercises``;
- in the exercises, every ``{exercise}`` block (with a ``:label:``) is followed directly by its solution:
  ``{solution-start} <label>`` with ``:class: dropdown``, the solution's cells, ``{solution-end}``,
  before the next exercise.

And no code line is longer than the rendered code column (88 characters): beyond it, it scrolls sideways.
"""

import json
import re

import pytest

from conftest import ROOT, toc_pages

CHAPTERS = [ROOT / f"{page}.ipynb" for page in toc_pages() if (ROOT / f"{page}.ipynb").exists()]

LINK_LINE = ("This chapter is part of [the online book](https://minidense.github.io/minidense/); "
             "the rocket icon at the top of the page opens it in Colab.")
OBJECTIVES = "**Learning objectives.** After this chapter you can"
MAX_CODE_LINE = 88

# Capitalised words that may stand inside a sentence-case title. Words with a capital letter after the
# first (DenseNet, ResNet, MLP, Fashion-MNIST, PyTorch) count as names and need no entry here.
PROPER_NOUNS = {"Colab", "Python", "Jupyter", "Taylor", "Huang", "Pleiss", "Xavier", "Kaiming", "Nesterov",
                "Adam", "Fashion", "Chromium", "Linux", "Windows"}

FENCE = re.compile(r"^(`{3,}|~{3,}|:{3,})(.*)$")


def cells(path):
    return json.loads(path.read_text())["cells"]


def source(cell):
    return "".join(cell["source"])


def name(path):
    return path.relative_to(ROOT).as_posix()


def outside_fences(text):
    """The lines of a markdown cell that are not inside a fenced block (code or MyST directive)."""
    fence = None
    for line in text.splitlines():
        match = FENCE.match(line.strip())
        if fence is None and match:
            fence = match.group(1)
        elif fence is not None and match and match.group(1)[0] == fence[0] \
                and len(match.group(1)) >= len(fence) and not match.group(2).strip():
            fence = None
        elif fence is None:
            yield line


def headings(chapter_cells):
    """``(cell index, level, text)`` of every markdown heading outside fenced blocks."""
    for index, cell in enumerate(chapter_cells):
        if cell["cell_type"] != "markdown":
            continue
        for line in outside_fences(source(cell)):
            match = re.match(r"^(#{1,6})\s+(.*?)\s*$", line)
            if match:
                yield index, len(match.group(1)), match.group(2)


def capitalised_words(title):
    """Words after the first that start with a capital and are not names: sentence case allows none."""
    plain = re.sub(r"\$[^$]*\$|`[^`]*`", " ", title)
    words = re.findall(r"[^\W\d_][\w'’-]*", plain)
    wrong = []
    for word in words[1:]:
        letters = [c for c in word if c.isalpha()]
        is_name = any(c.isupper() for c in letters[1:])  # DenseNet, MLP, Fashion-MNIST
        if letters[0].isupper() and not is_name and word.split("'")[0].split("’")[0] not in PROPER_NOUNS:
            wrong.append(word)
    return wrong


def is_bullet_list(lines):
    """Non-empty lines that are bullets (``- ``) or their indented continuations, starting with a bullet."""
    lines = [line for line in lines if line.strip()]
    return bool(lines) and lines[0].startswith("- ") and all(
        line.startswith(("- ", " ", "\t")) for line in lines)


@pytest.mark.parametrize("path", CHAPTERS, ids=name)
def test_first_cell_has_title_link_and_learning_objectives(path):
    chapter = name(path)
    first = cells(path)[0]
    assert first["cell_type"] == "markdown", f"{chapter}: the first cell should be markdown (title, link, objectives)"
    lines = source(first).splitlines()
    assert lines and lines[0].startswith("# "), f"{chapter}: the first cell should start with '# Title'"
    title = lines[0][2:].strip()
    assert title[:1].isupper() or title[:1] in "`$", f"{chapter}: the title {title!r} should start with a capital"
    wrong = capitalised_words(title)
    assert not wrong, (f"{chapter}: the title {title!r} should be in sentence case (only the first word and "
                       f"proper nouns capitalised), but has {wrong}")
    rest = lines[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    assert rest and rest[0] == LINK_LINE, (
        f"{chapter}: after the title the first cell should have exactly the link line\n  {LINK_LINE}\n"
        f"found\n  {rest[0] if rest else '(nothing)'}")
    rest = rest[1:]
    while rest and not rest[0].strip():
        rest.pop(0)
    assert rest and rest[0].startswith(OBJECTIVES), (
        f"{chapter}: after the link line the first cell should have a paragraph starting {OBJECTIVES!r}, "
        f"found {rest[0] if rest else '(nothing)'!r}")
    assert is_bullet_list(rest[1:]), (
        f"{chapter}: the learning objectives should be followed by a bullet list ('- ...'), and nothing else "
        f"in the first cell")


@pytest.mark.parametrize("path", CHAPTERS, ids=name)
def test_sections_then_summary_then_exercises(path):
    chapter = name(path)
    chapter_cells = cells(path)
    found = list(headings(chapter_cells))
    titles = [text for _, level, text in found if level == 1]
    assert len(titles) == 1, f"{chapter}: there should be one '# ' heading, the title; found {titles}"
    sections = [(index, text) for index, level, text in found if level == 2]
    names = [text for _, text in sections]
    assert names.count("Summary") == 1 and names.count("Exercises") == 1, (
        f"{chapter}: there should be one '## Summary' and one '## Exercises'; the sections are {names}")
    assert names[-2:] == ["Summary", "Exercises"], (
        f"{chapter}: '## Summary' then '## Exercises' should be the last two sections; they are {names}")
    assert len(names) > 2, f"{chapter}: there should be sections ('## ...') before '## Summary'"

    # The Summary: everything between its heading and the Exercises heading is one bullet list.
    summary_cell, exercises_cell = sections[-2][0], sections[-1][0]
    summary_lines, inside = [], False
    for index in range(summary_cell, exercises_cell + 1):
        cell = chapter_cells[index]
        assert cell["cell_type"] == "markdown", f"{chapter}: the Summary should be a bullet list, not a code cell"
        for line in source(cell).splitlines():
            if line.strip() == "## Summary":
                inside = True
            elif line.strip() == "## Exercises":
                inside = False
            elif inside:
                summary_lines.append(line)
    assert is_bullet_list(summary_lines), f"{chapter}: the Summary should be a bullet list ('- ...') and only that"


def directives(text):
    """The exercise directives of a markdown cell, in order, with the text between them.

    Yields ``(kind, argument, options)`` for ``exercise``, ``solution-start``, ``solution-end`` and any
    other sphinx-exercise directive, and ``("text", line, {})`` for non-blank lines outside them.
    """
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        match = re.match(r"^(`{3,}|:{3,})\{([\w-]+)\}\s*(.*?)\s*$", lines[i].strip())
        if not match:
            if lines[i].strip():
                yield "text", lines[i], {}
            i += 1
            continue
        fence, kind, argument = match.groups()
        options, i = {}, i + 1
        while i < len(lines) and re.match(r"^:[\w-]+:", lines[i].strip()):
            key, _, value = lines[i].strip()[1:].partition(":")
            options[key] = value.strip()
            i += 1
        while i < len(lines) and lines[i].strip() != fence:  # the directive's body, up to its closing fence
            i += 1
        i += 1
        yield kind, argument, options


EXERCISE_KINDS = {"exercise", "solution-start", "solution-end", "solution", "exercise-start", "exercise-end"}


def exercise_problems(chapter_cells):
    """What breaks the exercise/solution pattern, as a list of sentences (empty when all is well)."""
    problems = []
    exercises_cell = next((index for index, level, text in headings(chapter_cells)
                           if level == 2 and text == "Exercises"), None)
    tokens = []  # (cell index, kind, argument, options)
    for index, cell in enumerate(chapter_cells):
        if cell["cell_type"] == "code":
            tokens.append((index, "code", "", {}))
            continue
        for kind, argument, options in directives(source(cell)):
            if kind in EXERCISE_KINDS and (exercises_cell is None or index < exercises_cell):
                problems.append(f"cell {index}: a {{{kind}}} before '## Exercises'")
            tokens.append((index, kind, argument, options))
    if exercises_cell is None:
        return problems + ["no '## Exercises' section"]
    tokens = [t for t in tokens if t[0] > exercises_cell or (t[0] == exercises_cell and t[1] in EXERCISE_KINDS)]

    labels, unsolved, state, label, reported = set(), set(), "outside", None, False

    def open_exercise(where, options):
        new_label = options.get("label")
        if not new_label:
            problems.append(f"{where}: an exercise without ':label:'")
        elif new_label in labels:
            problems.append(f"{where}: the label {new_label!r} is used twice")
        labels.add(new_label)
        return "after exercise", new_label, False

    for index, kind, argument, options in tokens:
        where = f"cell {index}"
        if kind in ("solution", "exercise-start", "exercise-end"):
            problems.append(f"{where}: {{{kind}}} is not part of the template; use {{exercise}} and "
                            f"{{solution-start}}/{{solution-end}}")
        elif state == "after exercise":
            if kind == "solution-start":
                if argument != label:
                    problems.append(f"{where}: exercise {label!r} should be followed directly by its own solution, "
                                    f"found the solution-start of {argument!r}")
                    unsolved.add(label)
                if options.get("class") != "dropdown":
                    problems.append(f"{where}: the solution of {argument!r} should have ':class: dropdown'")
                state, label = "in solution", argument
            elif kind == "exercise":
                if not reported:
                    problems.append(f"{where}: exercise {label!r} has no solution before the next exercise")
                unsolved.add(label)
                state, label, reported = open_exercise(where, options)
            elif kind == "solution-end":
                problems.append(f"{where}: exercise {label!r} is followed by a solution-end without a "
                                f"solution-start")
                state, label = "outside", None
            elif not reported:
                problems.append(f"{where}: exercise {label!r} should be followed directly by "
                                f"```{{solution-start}} {label}```, found a {kind} cell")
                reported = True
        elif state == "in solution":
            if kind == "solution-end":
                state, label = "outside", None
            elif kind in ("exercise", "solution-start"):
                problems.append(f"{where}: the solution of {label!r} has no ```{{solution-end}}``` before this "
                                f"{kind}")
                if kind == "exercise":
                    state, label, reported = open_exercise(where, options)
        else:  # outside an exercise and its solution
            if kind == "exercise":
                state, label, reported = open_exercise(where, options)
            elif kind == "code":
                problems.append(f"{where}: a code cell in the Exercises outside any solution")
            elif kind == "solution-start" and argument in unsolved:  # already reported at its exercise
                unsolved.discard(argument)
                if options.get("class") != "dropdown":
                    problems.append(f"{where}: the solution of {argument!r} should have ':class: dropdown'")
                state, label = "in solution", argument
            elif kind in ("solution-start", "solution-end"):
                problems.append(f"{where}: a {{{kind}}} {argument!r} without an exercise before it")
    if state == "after exercise":
        problems.append(f"the last exercise, {label!r}, has no solution")
    elif state == "in solution":
        problems.append(f"the solution of {label!r} has no ```{{solution-end}}```")
    if not labels:
        problems.append("no ```{exercise}``` in '## Exercises'")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=name)
def test_every_exercise_is_followed_by_its_dropdown_solution(path):
    problems = exercise_problems(cells(path))
    assert not problems, f"{name(path)}: the exercises do not follow the template:\n  " + "\n  ".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=name)
def test_no_code_line_is_wider_than_the_rendered_column(path):
    long_lines = [f"cell {index}, line {number}: {len(line)} characters: {line.strip()[:60]}..."
                  for index, cell in enumerate(cells(path)) if cell["cell_type"] == "code"
                  for number, line in enumerate(source(cell).splitlines(), start=1) if len(line) > MAX_CODE_LINE]
    assert not long_lines, (f"{name(path)}: {len(long_lines)} code line(s) longer than {MAX_CODE_LINE} "
                            f"characters:\n  " + "\n  ".join(long_lines))


# --- The checks themselves, on small made-up chapters. ---

def md(text):
    return {"cell_type": "markdown", "metadata": {}, "source": text.splitlines(keepends=True)}


def code(text):
    return {"cell_type": "code", "metadata": {}, "source": text, "outputs": [], "execution_count": None}


def exercise(label):
    return md(f"```{{exercise}}\n:label: {label}\nA question.\n```")


def solution(label, css="dropdown"):
    return [md(f"```{{solution-start}} {label}\n:class: {css}\n```\n\nAn answer."), code("print(1)"),
            md("```{solution-end}\n```")]


def test_exercise_checker_accepts_the_template_and_names_what_breaks_it():
    head = [md("## Summary\n\n- a point\n\n## Exercises")]
    good = head + [exercise("ex-1"), *solution("ex-1"), exercise("ex-2"), *solution("ex-2")]
    assert exercise_problems(good) == []
    no_solution = head + [exercise("ex-1"), exercise("ex-2"), *solution("ex-2")]
    assert any("'ex-1' has no solution" in p for p in exercise_problems(no_solution))
    not_dropdown = head + [exercise("ex-1"), *solution("ex-1", css="toggle")]
    assert any(":class: dropdown" in p for p in exercise_problems(not_dropdown))
    unclosed = head + [exercise("ex-1"), *solution("ex-1")[:2], exercise("ex-2"), *solution("ex-2")]
    assert any("'ex-1' has no ```{solution-end}```" in p for p in exercise_problems(unclosed))
    text_between = head + [exercise("ex-1"), md("A hint."), *solution("ex-1")]
    assert any("followed directly" in p for p in exercise_problems(text_between))
    no_label = head + [md("```{exercise}\nA question.\n```"), *solution("ex-1")]
    assert any("without ':label:'" in p for p in exercise_problems(no_label))


def test_sentence_case_allows_names_and_lowercase_words_only():
    assert capitalised_words("From ResNet to DenseNet") == []
    assert capitalised_words("Training on Fashion-MNIST at 96×96") == []
    assert capitalised_words("A densely connected MLP") == []
    assert capitalised_words("The paper's DenseNet family") == []
    assert capitalised_words("The Paper's DenseNet Family") == ["Paper's", "Family"]
    assert capitalised_words("Memory: Why DenseNet Needs So Much") == ["Why", "Needs", "So", "Much"]
