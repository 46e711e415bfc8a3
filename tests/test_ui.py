"""The dashboard at /ui in a real headless Chromium (Debian's chromium and chromedriver, driven by
Selenium), on a real sidecar: it shows a hit made through the API, reports a wrong hit and purges a repo.
Without a browser these tests fail (``make browser`` installs one); they never skip."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from semcache.access.issuing import issue_key
from semcache.store.api_keys import KeyStore
from semcache.store.sqlite import Store
from tests.helpers import chat, sidecar_settings
from tests.servers import serve

PROMPT = "How do I reverse a list in Python?"
PARAPHRASE = "How can I reverse a list in python?"


@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    chromium, driver = shutil.which("chromium"), shutil.which("chromedriver")
    if chromium is None or driver is None:
        pytest.fail("the dashboard tests need Debian's chromium and chromium-driver: run `make browser`")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(flag)
    try:
        browser = webdriver.Chrome(options=options, service=Service(driver))
    except WebDriverException as exc:
        pytest.fail(f"headless Chromium did not start: {exc.msg}")
    try:
        yield browser
    finally:
        browser.quit()


def wait(browser: WebDriver) -> WebDriverWait:
    return WebDriverWait(browser, 30)


def status_says(text: str):
    return lambda browser: text in browser.find_element(By.ID, "status").text


def test_the_page_shows_a_hit_made_through_the_api_and_purges_the_repo(sidecar: str, browser) -> None:
    repo = "ui.basic"
    assert chat(sidecar, PROMPT, repo=repo, model="ui-basic").headers["x-semcache"] == "miss"
    hit = chat(sidecar, PARAPHRASE, repo=repo, model="ui-basic")
    assert hit.headers["x-semcache"] == "hit-semantic"
    browser.get(f"{sidecar}/ui?repo={repo}")
    row = wait(browser).until(expected_conditions.presence_of_element_located((By.CSS_SELECTOR, "tr.hit")))
    assert PARAPHRASE in row.text and PROMPT in row.text  # the request and the prompt it matched
    assert f"{float(hit.headers['x-semcache-similarity']):.3f}" in row.text
    assert hit.headers["x-semcache-entry-id"] in row.text
    assert (
        "semantic" in browser.find_element(By.CSS_SELECTOR, "svg[aria-label='hits by kind'] + .legend").text
    )
    assert browser.find_elements(By.CSS_SELECTOR, "svg[aria-label='hit rate over time'] rect.hit-semantic")
    browser.find_element(By.CSS_SELECTOR, "button[data-action=purge]").click()
    wait(browser).until(expected_conditions.alert_is_present()).accept()
    wait(browser).until(status_says("1 entry removed"))
    assert httpx.get(f"{sidecar}/v1/cache/repos/{repo}/stats").json()["entries"] == 0
    wait(browser).until(lambda b: not b.find_elements(By.CSS_SELECTOR, "tr.hit"))
    assert chat(sidecar, PROMPT, repo=repo, model="ui-basic").headers["x-semcache"] == "miss"


def test_a_wrong_hit_reported_from_the_page_evicts_its_entry(sidecar: str, browser) -> None:
    repo = "ui.report"
    entry = chat(sidecar, PROMPT, repo=repo, model="ui-report").headers["x-semcache-entry-id"]
    assert chat(sidecar, PARAPHRASE, repo=repo, model="ui-report").headers["x-semcache"] == "hit-semantic"
    browser.get(f"{sidecar}/ui?repo={repo}")
    button = wait(browser).until(
        expected_conditions.element_to_be_clickable((By.CSS_SELECTOR, "button[data-action=report]"))
    )
    button.click()
    wait(browser).until(expected_conditions.alert_is_present()).accept()
    wait(browser).until(status_says(f"reported entry {entry}"))
    assert httpx.get(f"{sidecar}/v1/cache/repos/{repo}/entries/{entry}").status_code == 404
    wait(browser).until(lambda b: b.find_elements(By.CSS_SELECTOR, "tr.hit .reported"))


def test_with_auth_on_the_page_asks_for_a_key_and_the_api_checks_it(
    tmp_path: Path, model_dir: Path, stub_url: str, embedder, browser
) -> None:
    from semcache.http.app import create_app

    settings = sidecar_settings(tmp_path / "data", model_dir, stub_url, auth="required")
    store = Store(settings.db_path)
    keys = KeyStore(store)
    admin, _ = issue_key(keys, "admin", [], admin=True)
    client, _ = issue_key(keys, "ui-ci", ["ui.*"])
    store.close()
    with serve(create_app(settings, embedder=embedder)) as url:
        body = {"model": "ui-auth", "messages": [{"role": "user", "content": PROMPT}]}
        sent = httpx.post(
            f"{url}/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {client}", "X-Semcache-Repo": "ui.auth"},
        )
        assert sent.status_code == 200
        assert httpx.get(f"{url}/ui").status_code == 200  # the page holds no data
        refused = httpx.get(f"{url}/ui/repos/ui.auth")
        assert refused.status_code == 401 and refused.json()["error"]["type"] == "unauthorized"
        assert httpx.get(f"{url}/v1/cache/repos/ui.auth/activity").status_code == 401
        browser.get(f"{url}/ui?repo=ui.auth")
        wait(browser).until(status_says("401"))
        browser.find_element(By.ID, "key").send_keys(client)
        browser.find_element(By.CSS_SELECTOR, "#auth button[type=submit]").click()
        wait(browser).until(lambda b: "1 entry" in b.find_element(By.ID, "panel").text)
        browser.find_element(By.CSS_SELECTOR, "button[data-action=purge]").click()
        wait(browser).until(expected_conditions.alert_is_present()).accept()
        wait(browser).until(status_says("403"))  # a client key may not purge
        headers = {"Authorization": f"Bearer {admin}"}
        assert httpx.get(f"{url}/v1/cache/repos/ui.auth/stats", headers=headers).json()["entries"] == 1
        browser.execute_script("sessionStorage.clear()")
