"""The built book as a reader sees it: every page of ``_toc.yml`` in headless Chromium, offline.

The book is built once per session (``book_build`` in conftest.py) and served from 127.0.0.1;
every other host fails to resolve, so a page that needs the internet shows a failed request.
Screenshots for a person to look at land in ``_build/screenshots/``.
"""

import json
import sys

import nbformat
import pytest

from conftest import BUILD_DIR, ROOT, page_source, toc_pages

pytestmark = pytest.mark.slow  # builds the book (every chapter executed) once per session

sys.path.insert(0, str(ROOT / "book" / "_ext"))  # the book's Sphinx extensions and the Chinese edition's tools
PAGES = toc_pages()
ROOT_PAGE = PAGES[0]
DENSE_BLOCK_PAGE = "book/dense-block"
TRAINING_PAGE = "book/training"
SCREENSHOT_PAGES = (ROOT_PAGE, DENSE_BLOCK_PAGE, TRAINING_PAGE)
WIDTHS = {"desktop": (1280, 900), "mobile": (390, 844)}

# Resolves once the page has loaded and MathJax (when the page has it) has typeset everything.
WAIT_FOR_PAGE = """
const done = arguments[arguments.length - 1];
const loaded = document.readyState === "complete" ? Promise.resolve()
    : new Promise(resolve => window.addEventListener("load", resolve));
loaded.then(() => (window.MathJax && MathJax.startup && MathJax.startup.promise) || null)
      .then(() => done(true), error => done(String(error)));
"""

# What a reader would see wrong with the maths: TeX left unrendered, or rendered as a red error.
MATHS_REPORT = """
const article = document.querySelector("article") || document.body;
const maths = Array.from(article.querySelectorAll(".math"));
const unrendered = maths.filter(m => !m.querySelector("mjx-container")).map(m => m.textContent.slice(0, 60));
const errors = Array.from(article.querySelectorAll("mjx-merror")).map(e => e.textContent.slice(0, 60));
const prose = article.cloneNode(true);
prose.querySelectorAll("pre, code, .highlight, mjx-container, script, style").forEach(e => e.remove());
const raw = (prose.textContent.match(/\\$\\$|\\\\frac|\\\\\\(|\\\\\\[/g) || []);
return {count: maths.length, unrendered: unrendered, errors: errors, raw: raw};
"""

IMAGES_REPORT = """
return Array.from(document.images).map(i => ({src: i.currentSrc || i.src, complete: i.complete,
                                              width: i.naturalWidth}));
"""


def page_url(book_url, page):
    return f"{book_url}{page}.html"


def drain_logs(browser):
    browser.get_log("browser")
    browser.get_log("performance")


def open_page(browser, url):
    """Loads ``url`` and returns what went wrong on the way: console errors, failed requests."""
    drain_logs(browser)
    browser.get(url)
    assert browser.execute_async_script(WAIT_FOR_PAGE) is True, f"{url}: MathJax did not finish"
    console = [e["message"] for e in browser.get_log("browser") if e["level"] == "SEVERE"]
    urls, failed = {}, []
    for entry in browser.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            urls[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.responseReceived" and params["response"]["status"] >= 400:
            failed.append(f"{params['response']['url']} (HTTP {params['response']['status']})")
        elif message["method"] == "Network.loadingFailed" and not params.get("canceled"):
            failed.append(f"{urls.get(params['requestId'], params['requestId'])} ({params['errorText']})")
    return console, failed


def executed_outputs(page):
    """How many code cells of the page's notebook have outputs, as the build executed it.

    The outputs come from the build's execution cache (``execute_notebooks: cache``), the same
    store the build rendered the page from.
    """
    from jupyter_cache import get_cache
    from profile_cache import cache_folder  # book/_ext: each profile's outputs in a folder of their own

    source = nbformat.read(page_source(page), as_version=4)
    _, notebook = get_cache(cache_folder(ROOT)).merge_match_into_notebook(source)
    removed = {"remove-output", "remove-cell"}
    return sum(1 for cell in notebook.cells if cell.cell_type == "code" and cell.outputs
               and not removed & set(cell.metadata.get("tags", [])))


def solution_problems(browser):
    """Solutions must start collapsed and open on a click (checked on the first one)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    solutions = browser.find_elements(By.CSS_SELECTOR, "div.solution")
    problems = []
    for solution in solutions:
        if "dropdown" not in solution.get_attribute("class").split():
            problems.append(f"solution {solution.get_attribute('id')} is not a dropdown")
    bodies = [s.find_elements(By.XPATH, "./*[not(contains(@class, 'admonition-title'))]") for s in solutions]
    shown = [s.get_attribute("id") for s, body in zip(solutions, bodies) if any(e.is_displayed() for e in body)]
    if shown:
        problems.append(f"solutions shown before a click: {shown}")
    if solutions and not shown:
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", solutions[0])
        solutions[0].find_element(By.CSS_SELECTOR, "button.toggle-button").click()
        try:
            WebDriverWait(browser, 5).until(lambda _: any(e.is_displayed() for e in bodies[0]))
        except TimeoutException:
            problems.append(f"solution {solutions[0].get_attribute('id')} did not open on a click")
    return problems


@pytest.mark.parametrize("page", PAGES)
def test_page_renders_completely_offline(browser, book_url, page):
    """Loads, no console error, no failed request; maths, figures, outputs, solutions all there."""
    from selenium.webdriver.common.by import By

    console, failed = open_page(browser, page_url(book_url, page))
    problems = [f"console error: {m}" for m in console] + [f"failed request: {r}" for r in failed]

    maths = browser.execute_script(MATHS_REPORT)
    problems += [f"maths not rendered: {m!r}" for m in maths["unrendered"]]
    problems += [f"maths error: {m!r}" for m in maths["errors"]]
    problems += [f"raw TeX left in the text: {r!r}" for r in maths["raw"]]

    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")  # lazy images too
    images = browser.execute_script(IMAGES_REPORT)
    problems += [f"image did not load: {i['src'][-80:]}" for i in images if not (i["complete"] and i["width"])]

    if page_source(page).suffix == ".ipynb":
        expected = executed_outputs(page)
        outputs = browser.find_elements(By.CSS_SELECTOR, "div.cell_output")
        empty = [o for o in outputs if not o.get_attribute("textContent").strip()
                 and not o.find_elements(By.CSS_SELECTOR, "img, svg, table, iframe")]
        if len(outputs) != expected:
            problems.append(f"{len(outputs)} cell outputs on the page, {expected} in the executed notebook")
        problems += [f"empty cell output #{i}" for i, _ in enumerate(empty)]
    problems += solution_problems(browser)
    assert not problems, f"{page}:\n" + "\n".join(problems)


def follow(browser, selector, start):
    """The URLs reached from ``start`` by following the link ``selector`` until there is none."""
    from selenium.webdriver.common.by import By

    walked = [start]
    for _ in PAGES:
        links = browser.find_elements(By.CSS_SELECTOR, selector)
        if not links:
            break
        browser.get(links[0].get_attribute("href"))
        walked.append(browser.current_url.split("#")[0])
    return walked


def test_next_and_previous_links_walk_the_table_of_contents(browser, book_url):
    expected = [page_url(book_url, page) for page in PAGES]
    browser.get(book_url)  # index.html redirects to the root page
    walked = follow(browser, "a.right-next", browser.current_url.split("#")[0])
    assert walked == expected
    assert follow(browser, "a.left-prev", walked[-1]) == expected[::-1]


def test_table_of_contents_links_every_page(browser, book_url):
    from selenium.webdriver.common.by import By

    for page in (PAGES[0], PAGES[-1]):
        open_page(browser, page_url(book_url, page))
        links = {a.get_attribute("href").split("#")[0]
                 for a in browser.find_elements(By.CSS_SELECTOR, "nav.bd-docs-nav a, a.navbar-brand")}
        missing = [p for p in PAGES if page_url(book_url, p) not in links]
        assert not missing, f"the table of contents on {page} does not link {missing}"


def test_search_box_finds_growth_rate_in_the_dense_block_chapter(browser, book_url):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    if DENSE_BLOCK_PAGE not in PAGES:
        pytest.skip(f"{DENSE_BLOCK_PAGE} is not in _toc.yml yet")
    open_page(browser, page_url(book_url, ROOT_PAGE))
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button.search-button__button")
                  if b.is_displayed())
    button.click()
    box = WebDriverWait(browser, 5).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "#pst-search-dialog input[name=q]")))
    box.send_keys("growth rate", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "search.html" in b.current_url)
    results = WebDriverWait(browser, 20).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a"))
    targets = [a.get_attribute("href").split("?")[0].split("#")[0] for a in results]
    assert page_url(book_url, DENSE_BLOCK_PAGE) in targets, targets


def test_training_chapter_shows_curves_and_confusion_matrix(browser, book_url):
    """The cell that trains shows the live curves; the confusion-matrix cell shows its heat map."""
    if TRAINING_PAGE not in PAGES:
        pytest.skip(f"{TRAINING_PAGE} is not in _toc.yml yet")
    open_page(browser, page_url(book_url, TRAINING_PAGE))
    figures = browser.execute_script("""
        return Array.from(document.querySelectorAll("div.cell")).map(cell => ({
            source: (cell.querySelector(".cell_input") || {}).textContent || "",
            images: Array.from(cell.querySelectorAll(".cell_output img"))
                         .filter(i => i.complete && i.naturalWidth > 100).length}));
    """)
    curves = [f for f in figures if "minidense.train(" in f["source"] and f["images"]]
    matrix = [f for f in figures if "confusion_matrix(" in f["source"] and f["images"]]
    assert curves, "no cell calling minidense.train( shows a figure (the live training curves)"
    assert matrix, "no cell calling confusion_matrix( shows a figure"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", SCREENSHOT_PAGES)
def test_screenshot(browser, book_url, page, width):
    """Whole-page screenshots (up to 6000 px tall) at desktop and phone width, for a person to read.

    The page does not scroll sideways: a phone reader never has to pan the whole page.
    """
    import base64

    if page not in PAGES:
        pytest.skip(f"{page} is not in _toc.yml yet")
    columns, rows = WIDTHS[width]
    screen = {"width": columns, "height": rows, "deviceScaleFactor": 1, "mobile": width == "mobile"}
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", screen)
    try:
        open_page(browser, page_url(book_url, page))
        overflow = browser.execute_script("return document.documentElement.scrollWidth") - columns
        height = min(browser.execute_script("return document.documentElement.scrollHeight"), 6000)
        browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**screen, "height": height})
        shot = browser.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})
    finally:
        browser.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    folder = BUILD_DIR / "screenshots"
    folder.mkdir(exist_ok=True)
    (folder / f"{page.split('/')[-1]}-{width}.png").write_bytes(base64.b64decode(shot["data"]))
    assert overflow <= 0, f"{page} is {overflow} px wider than a {columns} px screen: readers pan sideways"


# --- The Chinese edition (published under zh/): what is translated so far ---

def translated(page):
    """Whether the page's catalog has any translation yet (the Chinese tests read what is translated)."""
    import zh_notebooks

    return bool(zh_notebooks.translations(page))


TRANSLATED_PAGES = [page for page in PAGES if translated(page)]
# The share of Chinese characters among a page's prose letters (code, maths, outputs, citations left out).
CHINESE_SHARE = """
const article = document.querySelector("article") || document.body;
const prose = article.cloneNode(true);
prose.querySelectorAll("pre, code, .highlight, .cell_output, mjx-container, script, style, table.glossary-terms, "
                       + "div.citation, .bibtex-citation").forEach(e => e.remove());
const text = prose.textContent;
const chinese = (text.match(/[\\u4e00-\\u9fff]/g) || []).length;
const latin = (text.match(/[A-Za-z]/g) || []).length;
return chinese / Math.max(1, chinese + latin / 4);
"""


@pytest.mark.parametrize("page", TRANSLATED_PAGES)
def test_chinese_page_renders_in_chinese_with_its_maths_figures_and_outputs(browser, book_url, page):
    """A translated page reads in Chinese, with the English edition's maths, figures and outputs."""
    from selenium.webdriver.common.by import By

    console, failed = open_page(browser, page_url(book_url, f"zh/{page}"))
    problems = [f"console error: {m}" for m in console] + [f"failed request: {r}" for r in failed]
    if browser.execute_script("return document.documentElement.lang") != "zh-CN":
        problems.append("the page is not marked lang=zh-CN")
    maths = browser.execute_script(MATHS_REPORT)
    problems += [f"maths not rendered: {m!r}" for m in maths["unrendered"] + maths["errors"] + maths["raw"]]
    browser.execute_script("window.scrollTo(0, document.body.scrollHeight);")
    images = browser.execute_script(IMAGES_REPORT)
    problems += [f"image did not load: {i['src'][-80:]}" for i in images if not (i["complete"] and i["width"])]
    if page_source(page).suffix == ".ipynb":
        outputs, expected = len(browser.find_elements(By.CSS_SELECTOR, "div.cell_output")), executed_outputs(page)
        if outputs != expected:
            problems.append(f"{outputs} cell outputs on the page, {expected} in the executed notebook")
    share = browser.execute_script(CHINESE_SHARE)
    if share < 0.5:
        problems.append(f"the prose is not mostly Chinese (Chinese share {share:.2f})")
    assert not problems, f"zh/{page}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", [ROOT_PAGE, DENSE_BLOCK_PAGE, PAGES[-1]])
def test_language_switch_lands_on_the_same_page_in_the_other_language(browser, book_url, page):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    english, chinese = page_url(book_url, page), page_url(book_url, f"zh/{page}")
    for here, there in ((english, chinese), (chinese, english)):
        open_page(browser, here)
        switch = browser.find_element(By.CSS_SELECTOR, "a.language-switch")
        assert switch.is_displayed(), f"{here}: the language switch is not visible"
        switch.click()
        WebDriverWait(browser, 10).until(lambda b, there=there: b.current_url.split("#")[0] == there)


def test_chinese_search_finds_growth_rate_in_the_dense_block_chapter(browser, book_url):
    import zh_notebooks
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    if not any("增长率" in text for text in zh_notebooks.translations(DENSE_BLOCK_PAGE).values()):
        pytest.skip(f"{DENSE_BLOCK_PAGE} has no translation with 增长率 yet")
    open_page(browser, page_url(book_url, f"zh/{ROOT_PAGE}"))
    button = next(b for b in browser.find_elements(By.CSS_SELECTOR, "button.search-button__button")
                  if b.is_displayed())
    button.click()
    box = WebDriverWait(browser, 5).until(
        EC.visibility_of_element_located((By.CSS_SELECTOR, "#pst-search-dialog input[name=q]")))
    box.send_keys("增长率", Keys.ENTER)
    WebDriverWait(browser, 10).until(lambda b: "search.html" in b.current_url)
    results = WebDriverWait(browser, 20).until(
        lambda b: b.find_elements(By.CSS_SELECTOR, "#search-results ul.search li a"))
    targets = [a.get_attribute("href").split("?")[0].split("#")[0] for a in results]
    assert page_url(book_url, f"zh/{DENSE_BLOCK_PAGE}") in targets, targets
