"""The hosted book as a reader's browser shows it: headless Chromium over the built HTML on 127.0.0.1."""

import html.parser
import os
import shutil
import tempfile
import urllib.parse

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from conftest import ROOT


def find(*names):
    for name in names:
        path = shutil.which(name)
        if path:
            return path
    pytest.fail(f"none of {names} is installed: scripts/test installs Debian's chromium and chromium-driver")


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = os.environ.get("CHROME_BIN") or find("chromium", "google-chrome", "chrome")
    profile = tempfile.mkdtemp(prefix="book-browser-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(find("chromedriver")))
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def chapter_pages(book):
    """Every chapter page of the book (print.html and 404.html are mdBook's own)."""
    return sorted(p.relative_to(book).as_posix() for p in book.rglob("*.html") if p.name not in ("print.html", "404.html", "toc.html"))


PLAYGROUND = "https://play.rust-lang.org/"


def severe_console_messages(driver):
    """Console errors of the page, less the Rust playground's: mdBook asks play.rust-lang.org which crates
    it has, and the test machines have no route to it (the hosted book reaches it)."""
    messages = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    if any(m.startswith(PLAYGROUND) for m in messages):
        messages = [m for m in messages if not m.startswith(PLAYGROUND) and not m.endswith("Uncaught TypeError: Failed to fetch")]
    return messages


def test_the_introduction_renders(browser, book_url):
    browser.get(book_url)
    heading = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.CSS_SELECTOR, "main h1"))
    assert heading.text == "Introduction"
    assert "Under the Await" in browser.title
    # the table of contents shows every part, with unwritten chapters as drafts
    toc = browser.find_element(By.CSS_SELECTOR, "#mdbook-sidebar").get_attribute("textContent")
    for part in ("How asynchronous code works", "Inside asyncio", "GIL-free thread offload", "A real loop"):
        assert part in toc
    assert severe_console_messages(browser) == []


def test_every_page_loads_without_console_errors_and_renders_its_diagrams(browser, book_url, built_book):
    diagrams = 0
    for page in chapter_pages(built_book):
        browser.get(book_url + page)
        WebDriverWait(browser, 10).until(lambda d: d.execute_script("return document.readyState") == "complete")
        blocks = browser.find_elements(By.CSS_SELECTOR, "pre.mermaid")
        for block in blocks:
            WebDriverWait(browser, 10).until(lambda d: block.find_elements(By.TAG_NAME, "svg"))
            svg = block.find_element(By.TAG_NAME, "svg")
            assert "Syntax error" not in svg.get_attribute("outerHTML"), f"{page}: mermaid could not parse a diagram"
            labels = svg.find_elements(By.XPATH, ".//*[local-name()='text' or local-name()='foreignObject']")
            assert labels and svg.size["height"] > 20, f"{page}: a diagram rendered empty"
        diagrams += len(blocks)
        assert severe_console_messages(browser) == [], page
    assert diagrams >= 2, "the introduction and the testing appendix each draw a diagram"


def test_search_finds_a_chapter(browser, book_url, built_book):
    assert list(built_book.glob("searchindex*.js")), "mdBook wrote no search index"
    browser.get(book_url)
    WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "mdbook-search-toggle")).click()
    bar = WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "mdbook-searchbar"))
    bar.send_keys("doctests")
    results = WebDriverWait(browser, 10).until(
        lambda d: [r.text for r in d.find_elements(By.CSS_SELECTOR, "#mdbook-searchresults li")])
    assert any("How this book is tested" in r for r in results), results


class Links(html.parser.HTMLParser):
    """Collects hrefs and element ids of one HTML page."""

    def __init__(self):
        super().__init__()
        self.hrefs, self.ids = [], set()

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("href"):
            self.hrefs.append(attrs["href"])


def parsed(path):
    links = Links()
    links.feed(path.read_text())
    return links


def test_every_internal_link_and_anchor_resolves(built_book):
    pages = {p: parsed(p) for p in built_book.rglob("*.html")}
    broken = []
    checked = 0
    for page, links in pages.items():
        for href in links.hrefs:
            url = urllib.parse.urlparse(href)
            if url.scheme or href.startswith("//") or href.startswith("mailto:"):
                continue
            target = (page.parent / urllib.parse.unquote(url.path)).resolve() if url.path else page
            if target.is_dir():
                target = target / "index.html"
            checked += 1
            if not target.is_file():
                broken.append(f"{page.relative_to(built_book)}: {href} (no such file)")
            elif url.fragment and target.suffix == ".html" and url.fragment not in pages[target].ids:
                broken.append(f"{page.relative_to(built_book)}: {href} (no such anchor)")
    assert checked > 20
    assert broken == []
