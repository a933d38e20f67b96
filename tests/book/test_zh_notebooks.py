"""The Chinese notebooks for Colab: the English notebook's code cells byte for byte, its markdown
translated block by block from the page's catalog."""

import subprocess
import sys

import nbformat
import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "book" / "_ext"))

import zh_notebooks

CELL = """# The dense block

A dense block chains $L$ convolution blocks
so that each one reads everything before it.

- the **growth rate** $k$;
- concatenation costs
  memory.

| profile | epochs |
| --- | --- |
| `cpu` | 2 |

$$k_0 + Lk$$

```python
print("untouched")
```

```{exercise}
:label: ex-1
Count the channels.
```

```{admonition} Going deeper
:class: dropdown
Recomputation saves memory.
```"""
TABLE = {
    "The dense block": "稠密块",
    "A dense block chains $L$ convolution blocks so that each one reads everything before it.":
        "稠密块把 $L$ 个卷积块串起来，每一个都读取它之前的一切。",
    "the **growth rate** $k$;": "**增长率** $k$；",
    "concatenation costs memory.": "连结要占用内存。",
    "profile": "配置", "epochs": "迭代周期",
    "Count the channels.": "数一数通道。",
    "Going deeper": "深入一步",
    "Recomputation saves memory.": "重计算节省内存。",
}


def test_every_block_of_a_markdown_cell_is_replaced_by_its_translation():
    assert zh_notebooks.translate_markdown(CELL, TABLE.get) == """# 稠密块

稠密块把 $L$ 个卷积块串起来，每一个都读取它之前的一切。

- **增长率** $k$；
- 连结要占用内存。

| 配置 | 迭代周期 |
| --- | --- |
| `cpu` | 2 |

$$k_0 + Lk$$

```python
print("untouched")
```

```{exercise}
:label: ex-1
数一数通道。
```

```{admonition} 深入一步
:class: dropdown
重计算节省内存。
```"""


def test_a_block_without_a_translation_stays_english():
    assert zh_notebooks.translate_markdown(CELL, {}.get) == CELL


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """The Chinese notebooks, written by README's command."""
    outdir = tmp_path_factory.mktemp("colab-zh")
    subprocess.run([sys.executable, "book/_ext/zh.py", "notebooks", str(outdir)], cwd=ROOT, check=True)
    return outdir


def test_the_chinese_dense_block_notebook_has_the_english_code_and_the_translated_markdown(generated):
    english = nbformat.read(ROOT / "book" / "dense-block.ipynb", as_version=4)
    chinese = nbformat.read(generated / "book" / "dense-block.ipynb", as_version=4)
    assert [c.cell_type for c in chinese.cells] == [c.cell_type for c in english.cells]
    assert chinese.metadata == english.metadata
    table = zh_notebooks.translations("book/dense-block")
    for mine, theirs in zip(chinese.cells, english.cells):
        if theirs.cell_type == "code":
            assert mine == theirs  # byte for byte: source, metadata, (no) outputs
        else:
            assert mine.source == zh_notebooks.translate_markdown(theirs.source, table.get)
    markdown = "\n".join(c.source for c in chinese.cells if c.cell_type == "markdown")
    missing = [msgstr for msgstr in table.values() if msgstr not in markdown]
    assert not missing, f"translations that did not reach the notebook: {missing}"


def test_a_notebook_is_written_for_every_chapter(generated):
    chapters = sorted(p.relative_to(ROOT) for p in (ROOT / "book").glob("*.ipynb"))
    assert sorted(p.relative_to(generated) for p in generated.rglob("*.ipynb")) == chapters
