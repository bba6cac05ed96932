"""The dashboard in a real browser (Debian's Chromium through chromedriver),
against a real `reproml server` holding runs recorded by `reproml run`.

Run: REPROML_BIN=target/debug/reproml python -m pytest tests/browser
(needs `apt-get install chromium chromium-driver` and `pip install selenium pytest`).
"""

import json
import os
import re
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.environ.get("REPROML_BIN", "target/debug/reproml")
TOKEN = "dashboard-test-token-0123456789"
# What a hostile client could send as a description: shown as text, never run.
HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
EXPERIMENT = "browser-e"


def reproml(*args, **kwargs):
    return subprocess.run([BINARY, *args], check=True, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="module")
def server():
    """A server on a database with one experiment, two variants of 4 runs
    each (one with a fault), and a token."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        spec = tmp / "spec.toml"
        spec.write_text(f'id = "{EXPERIMENT}"\ndescription = {json.dumps(HOSTILE)}\nmodel = "mlp"\n'
                        'challenge = "digits"\nepochs = 3\nruns = 4\n[optimizer]\nlr = 0.05\nmomentum = 0.9\n')
        db = tmp / "b.db"
        reproml("run", "--db", str(db), "--master-seed", "3", "--experiment", EXPERIMENT, "--spec", str(spec),
                "--variant", "plain", "-q")
        reproml("run", "--db", str(db), "--experiment", EXPERIMENT, "--variant", "faulty",
                "--fault", "momentum-ignored", "-q")
        token = tmp / "token"
        token.write_text(TOKEN + "\n")
        process = subprocess.Popen([BINARY, "server", "--listen", "127.0.0.1:0", "--db", str(db),
                                    "--token-file", str(token)], stderr=subprocess.PIPE, text=True)
        url = re.search(r"http://\S+", process.stderr.readline()).group(0)
        try:
            yield {"url": url, "token_file": str(token)}
        finally:
            process.terminate()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,800"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    driver.implicitly_wait(0)
    try:
        yield driver
    finally:
        driver.quit()


def call(server, method, path, body=None):
    request = urllib.request.Request(server["url"] + path, method=method,
                                     data=None if body is None else json.dumps(body).encode(),
                                     headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or "null")


def post_hostile_run(server, run):
    """Run `run` of a variant "hostile" whose artifact details and
    fingerprint carry markup, as a malicious client could send them."""
    plain = next(r for r in call(server, "GET", f"/v1/experiments/{EXPERIMENT}/runs?variant=plain") if r["run"] == run)
    result = {k: plain[k] for k in ("seed", "metrics", "epochs", "fingerprint", "artifact")}
    result["artifact"]["details"]["note"] = HOSTILE
    result["fingerprint"]["note"] = HOSTILE
    call(server, "POST", f"/v1/experiments/{EXPERIMENT}/variants/hostile/runs/{run}", result)


def wait_for(driver, css, timeout=20):
    return WebDriverWait(driver, timeout).until(ready.presence_of_element_located((By.CSS_SELECTOR, css)))


def updated(driver):
    """Waits until the current view has finished drawing."""
    WebDriverWait(driver, 20).until(lambda d: d.find_element(By.ID, "status").text.startswith(("updated", "up to date")))


def logged_in(driver, server):
    """The experiments page, after giving the token if this tab has none yet."""
    driver.get(server["url"] + "/#/")
    WebDriverWait(driver, 20).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "input[type=password]")
        or d.find_element(By.ID, "status").text.startswith("updated"))
    for field in driver.find_elements(By.CSS_SELECTOR, "input[type=password]"):
        field.send_keys(TOKEN)
        driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    updated(driver)


def console_errors(driver):
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def test_the_token_is_asked_once_and_a_wrong_one_is_refused(server, browser):
    browser.get(server["url"] + "/#/")
    field = wait_for(browser, "input[type=password]")
    assert "needs a token" in browser.find_element(By.TAG_NAME, "h1").text
    field.send_keys("not-the-token")
    browser.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    # Asked again (a new form: the old one is gone): the API refused it.
    WebDriverWait(browser, 20).until(ready.staleness_of(field))
    assert browser.find_element(By.TAG_NAME, "h1").text.endswith("needs a token")
    assert browser.find_elements(By.CSS_SELECTOR, "input[type=password]")
    logged_in(browser, server)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Experiments"
    # Kept for the tab, across loads of the page.
    browser.refresh()
    updated(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Experiments"


def test_every_page_loads_without_console_errors(server, browser):
    logged_in(browser, server)
    browser.get_log("browser")  # forget what came before
    for route, heading in [("#/", "Experiments"), (f"#/e/{EXPERIMENT}", EXPERIMENT),
                           (f"#/e/{EXPERIMENT}/compare/plain,faulty", f"{EXPERIMENT}: plain vs faulty"),
                           ("#/progress", "Progress")]:
        browser.get(f"{server['url']}/{route}")
        updated(browser)
        assert browser.find_element(By.TAG_NAME, "h1").text == heading, route
        time.sleep(0.5)  # figures load after the page
        assert console_errors(browser) == [], route
    # Both figures arrived as images (blob: URLs of the server's SVG).
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}")
    updated(browser)
    WebDriverWait(browser, 20).until(
        lambda d: all(i.get_attribute("src").startswith("blob:") and d.execute_script("return arguments[0].naturalWidth", i) > 0
                      for i in d.find_elements(By.CSS_SELECTOR, "img.figure")) and len(d.find_elements(By.CSS_SELECTOR, "img.figure")) == 2)


def test_what_clients_sent_is_shown_as_text_and_never_runs(server, browser):
    post_hostile_run(server, 0)
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}")
    updated(browser)
    assert browser.find_element(By.CSS_SELECTOR, "p.description").text == HOSTILE
    variants = browser.find_elements(By.CSS_SELECTOR, "main .scroll table")[0].text
    assert f"note={HOSTILE}" in variants, "artifact details and fingerprint, as text"
    assert browser.execute_script("return window.pwned") is None
    assert browser.find_elements(By.CSS_SELECTOR, "main script, main img[src=x]") == []


def test_a_page_left_open_shows_new_runs_by_itself(server, browser):
    post_hostile_run(server, 0)  # recorded once, whichever test comes first
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/progress")
    updated(browser)
    before = browser.find_element(By.TAG_NAME, "main").text
    post_hostile_run(server, 1)
    WebDriverWait(browser, 20).until(lambda d: d.find_element(By.TAG_NAME, "main").text != before)
    WebDriverWait(browser, 20).until(
        lambda d: any("hostile" in row.text and "2 / 4" in row.text for row in d.find_elements(By.CSS_SELECTOR, "tbody tr")))


def run_table(browser):
    """The run table's rows as dicts keyed by column header."""
    table = browser.find_elements(By.CSS_SELECTOR, "main .scroll table")[-1]
    heads = [th.text.rstrip(" ▲▼") for th in table.find_elements(By.CSS_SELECTOR, "thead th")]
    return table, [dict(zip(heads, (td.text for td in tr.find_elements(By.TAG_NAME, "td"))))
                   for tr in table.find_elements(By.CSS_SELECTOR, "tbody tr")]


def test_the_run_table_sorts_and_filters(server, browser):
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}")
    updated(browser)
    table, runs = run_table(browser)
    runs = [r for r in runs if r["variant"] != "hostile"]
    assert len(runs) == 8
    header = next(th for th in table.find_elements(By.CSS_SELECTOR, "thead th") if th.text.startswith("accuracy"))
    header.click()
    _, runs = run_table(browser)
    accuracies = [float(r["accuracy"]) for r in runs]
    assert accuracies == sorted(accuracies) and len(accuracies) >= 8
    table, _ = run_table(browser)
    next(th for th in table.find_elements(By.CSS_SELECTOR, "thead th") if th.text.startswith("accuracy")).click()
    _, runs = run_table(browser)
    assert [float(r["accuracy"]) for r in runs] == sorted(accuracies, reverse=True)
    # The fault is in the faulty variant's fingerprint only.
    search = browser.find_elements(By.CSS_SELECTOR, "input[type=search]")[-1]
    search.send_keys("momentum-ignored")
    _, runs = run_table(browser)
    assert len(runs) == 4 and {r["variant"] for r in runs} == {"faulty"}


def test_the_comparison_shows_the_p_values_of_compare_json(server, browser):
    expected = json.loads(reproml("compare", "--server", server["url"], "--token-file", server["token_file"],
                                  EXPERIMENT, "--variants", "plain,faulty", "--json").stdout)
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}/compare/plain,faulty")
    updated(browser)
    comparison = expected["comparisons"][0]
    assert browser.find_element(By.CSS_SELECTOR, "span.verdict").text == comparison["verdict"]
    for metric in comparison["metrics"]:
        row = browser.find_element(By.CSS_SELECTOR, f"tr[data-metric={metric['metric']}]")
        for key in ("mwu", "holm", "bh", "wilcoxon"):
            shown = row.find_element(By.CSS_SELECTOR, f"td[data-p={key}]").get_attribute("title")
            want = metric[f"{key}_p"]
            assert (shown == "null" and want is None) or float(shown) == want, (metric["metric"], key)
    strip = browser.find_elements(By.CSS_SELECTOR, ".strip span")
    assert len(strip) == 4 and all("diverges at epoch 1" in s.text for s in strip)


def test_the_comparison_downloads_its_html_report(server, browser):
    """The button saves the server's one-page report of the same
    comparison (with the token, which a plain link could not send)."""
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}/compare/plain,faulty")
    updated(browser)
    verdicts = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul.verdicts li")]
    browser.execute_script("""
        const made = URL.createObjectURL;
        window.savedBlob = null;
        URL.createObjectURL = (blob) => { window.savedBlob = blob; return made(blob); };""")
    browser.find_element(By.CSS_SELECTOR, "button.report").click()
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return window.savedBlob !== null"))
    page = browser.execute_async_script("window.savedBlob.text().then(arguments[arguments.length - 1])")
    assert page.startswith("<!doctype html>") and f"<title>{EXPERIMENT}: plain vs faulty</title>" in page
    assert verdicts and all(v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;") in page for v in verdicts)
    assert page.count("<svg") == 3


def test_the_comparison_takes_alpha_and_margin_like_compare(server, browser):
    expected = json.loads(reproml("compare", "--server", server["url"], "--token-file", server["token_file"],
                                  EXPERIMENT, "--variants", "plain,faulty", "--alpha", "0.2", "--margin", "0.5",
                                  "--json").stdout)
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}/compare/plain,faulty")
    updated(browser)
    for name, value in (("alpha", "0.2"), ("margin", "0.5")):
        field = browser.find_element(By.CSS_SELECTOR, f"input[name={name}]")
        field.clear()
        field.send_keys(value)
    old = browser.find_element(By.CSS_SELECTOR, "span.verdict")
    browser.find_element(By.XPATH, "//button[text()='Compare again']").click()
    WebDriverWait(browser, 20).until(ready.staleness_of(old))
    updated(browser)
    assert "alpha=0.2" in browser.current_url
    comparison = expected["comparisons"][0]
    assert browser.find_element(By.CSS_SELECTOR, "span.verdict").text == comparison["verdict"]
    holm = browser.find_element(By.CSS_SELECTOR, "tr[data-metric=accuracy] td[data-p=holm]").get_attribute("title")
    assert float(holm) == comparison["metrics"][0]["holm_p"]
    assert "--alpha 0.2 --margin 0.5" in browser.find_element(By.TAG_NAME, "main").text


def test_the_learning_curves_can_show_every_run(server, browser):
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}")
    updated(browser)
    toggle = browser.find_element(By.XPATH, "//label[contains(., 'every run')]/input")
    toggle.click()
    WebDriverWait(browser, 20).until(lambda d: any(
        d.execute_script("return arguments[0].naturalWidth", i) > 0
        for i in d.find_elements(By.CSS_SELECTOR, "img.figure")
        if i.get_attribute("alt").startswith("training loss")))
    assert console_errors(browser) == []


def test_failures_show_on_the_progress_and_experiment_pages_as_text(server, browser):
    """A side whose run failed (reported as a client does) shows its count
    and latest error; an error with markup is text, never run."""
    seed = call(server, "GET", f"/v1/experiments/{EXPERIMENT}/runs/2/seed")["seed"]
    error = f"RuntimeError: {HOSTILE}\n  File \"train.py\", line 3"
    call(server, "POST", f"/v1/experiments/{EXPERIMENT}/variants/crashing/runs/2/failures",
         {"seed": seed, "error": error})
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/progress")
    updated(browser)
    row = next(r for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr") if r.text.startswith(f"{EXPERIMENT} crashing"))
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    assert cells[2].endswith("0 / 4") and cells[5] == "1", cells
    assert cells[6].endswith(f"RuntimeError: {HOSTILE}"), cells
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}")
    updated(browser)
    assert browser.find_element(By.CSS_SELECTOR, "table.failures pre.error").text == error
    # A side with no runs is not offered for a comparison.
    assert "crashing" not in [c.get_attribute("value") for c in browser.find_elements(By.CSS_SELECTOR, "input[name=variant]")]
    assert browser.execute_script("return window.pwned") is None
    assert console_errors(browser) == []


def test_the_progress_page_shows_one_study_with_its_totals(server, browser):
    """A study's experiments are named after it: typing its name keeps
    them and adds a row of totals."""
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/progress")
    updated(browser)
    field = browser.find_element(By.CSS_SELECTOR, "input[name=study]")
    field.send_keys("browser")
    browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
    # The page is redrawn meanwhile: read the heading by script, not through
    # an element that may be replaced between two looks.
    WebDriverWait(browser, 20).until(
        lambda d: d.execute_script("return document.querySelector('h1')?.textContent") == "Progress of browser")
    updated(browser)
    assert browser.current_url.endswith("#/progress?study=browser-")
    rows = [r for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr") if "total" not in r.get_attribute("class")]
    assert rows and all(r.text.startswith(EXPERIMENT) for r in rows)
    total = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "tbody tr.total td")]
    recorded = sum(int(r.find_elements(By.TAG_NAME, "td")[2].text.split(" / ")[0]) for r in rows)
    assert total[0] == "1 experiment" and total[1] == f"{len(rows)} sides started", total
    assert total[2].startswith(f"{recorded} / {4 * len(rows)}"), total
    # With the study's size, as `reproml study run` prints the address.
    browser.get(f"{server['url']}/#/progress?study=browser-&planned=40")
    updated(browser)
    total = [td.text for td in browser.find_elements(By.CSS_SELECTOR, "tbody tr.total td")]
    assert total[1] == f"{len(rows)} sides" and total[2].endswith(f"{recorded} / 40"), total
    browser.get(f"{server['url']}/#/progress?study=nothing-")
    updated(browser)
    assert "No runs recorded yet for experiments named nothing-" in browser.find_element(By.TAG_NAME, "main").text


def test_a_comparison_on_a_non_repeatable_engine_says_so(server, browser):
    """A side whose runs say `deterministic: false` (the built-in engine on
    a GPU): the comparison marks it, as the terminal table's ‡ does."""
    for plain in call(server, "GET", f"/v1/experiments/{EXPERIMENT}/runs?variant=plain"):
        result = {k: plain[k] for k in ("seed", "metrics", "epochs", "fingerprint", "artifact")}
        result["fingerprint"]["deterministic"] = "false"
        call(server, "POST", f"/v1/experiments/{EXPERIMENT}/variants/on-gpu/runs/{plain['run']}", result)
    logged_in(browser, server)
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}/compare/plain,on-gpu")
    updated(browser)
    assert "not bit-repeatable" in browser.find_element(By.CSS_SELECTOR, "span.nondeterministic").text
    browser.get(f"{server['url']}/#/e/{EXPERIMENT}/compare/plain,faulty")
    updated(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "span.nondeterministic")
