"""`automl ui`: a real `mlflow server` on the study's store, checked in headless Chromium.

The browser test (slow) drives Debian's chromium through its chromedriver with Selenium:
it opens the study's experiment from the URL `automl ui` prints, expands the parent run
to its trial runs, reads a trial's params and finds its metric charts. The screenshots
go to the test's tmp folder, or to $AUTOML_TEST_ARTIFACTS when CI wants to collect
them. The error cases run by default.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import cli_env, missing, run_cli

# Debian calls the browser `chromium`, other systems `chromium-browser`.
CHROMIUM_NAMES, CHROMEDRIVER_NAME = ("chromium", "chromium-browser"), "chromedriver"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_ui_without_a_tracking_database_says_where_it_looked(tmp_path):
    result = run_cli("ui", cwd=tmp_path)
    assert result.returncode == 2
    assert "no MLflow tracking database at mlflow.db" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_ui_with_an_unknown_study_lists_the_studies_there(iris_search, tmp_path):
    result = run_cli(
        "ui", "--tracking-uri", iris_search.tracking_uri, "--study", "nope", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "no study 'nope'" in result.stderr and "iris-auto" in result.stderr


def test_ui_on_a_busy_port_asks_for_another(iris_search, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli(
            "ui", "--tracking-uri", iris_search.tracking_uri, "--port", str(port), cwd=tmp_path
        )
    assert result.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr


def test_ui_on_a_tracking_server_says_to_open_it_instead(tmp_path):
    result = run_cli("ui", "--tracking-uri", "http://bob:secret@127.0.0.1:5999", cwd=tmp_path)
    assert result.returncode == 2
    assert "is a tracking server already" in result.stderr and "secret" not in result.stderr


def test_ui_port_must_be_a_tcp_port(iris_search, tmp_path):
    result = run_cli(
        "ui", "--tracking-uri", iris_search.tracking_uri, "--port", "70000", cwd=tmp_path
    )
    assert result.returncode == 2
    assert "--port must be between 1 and 65535" in result.stderr


@pytest.mark.slow
def test_mlflow_ui_shows_trials_params_and_charts_in_headless_chromium(iris_search, tmp_path):
    """From the URL `automl ui` prints: the experiment lists the trial runs under the
    study's run, a trial's page shows its params, its metrics page draws charts; Ctrl-C
    then stops the server with exit code 0."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as until
    from selenium.webdriver.support.ui import WebDriverWait

    browser = _browser()
    artifacts = Path(os.environ.get("AUTOML_TEST_ARTIFACTS") or tmp_path / "screenshots")
    artifacts.mkdir(parents=True, exist_ok=True)
    port = free_port()
    ui = subprocess.Popen(
        [sys.executable, "-m", "automl", "ui", "--tracking-uri", iris_search.tracking_uri]
        + ["--study", "iris-auto", "--port", str(port)],
        cwd=tmp_path,
        env=cli_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = _experiment_url(ui)
        assert url.startswith(f"http://127.0.0.1:{port}/#/experiments/")
        wait = WebDriverWait(browser, 60)
        study = iris_search.result.study
        trial = study.best_trial

        browser.get(f"{url}/runs")
        expand = wait.until(
            until.element_to_be_clickable(
                (By.CSS_SELECTOR, "button[data-component-id*='runnamecellrenderer']")
            )
        )
        expand.click()
        wait.until(until.visibility_of_element_located((By.LINK_TEXT, f"trial-{trial.number}")))
        names = {a.text for a in browser.find_elements(By.TAG_NAME, "a")}
        assert {f"trial-{t.number}" for t in study.trials} <= names
        browser.save_screenshot(str(artifacts / "mlflow-ui-runs.png"))

        run_page = browser.find_element(By.LINK_TEXT, f"trial-{trial.number}").get_attribute("href")
        browser.get(run_page)
        wait.until(until.text_to_be_present_in_element((By.TAG_NAME, "body"), "Parameters"))
        text = browser.find_element(By.TAG_NAME, "body").text
        for name in ("family", "n_params"):
            assert name in text
        assert str(trial.params["family"]) in text
        browser.save_screenshot(str(artifacts / "mlflow-ui-trial.png"))

        browser.get(f"{run_page}/model-metrics")
        # A trial logs 9 metrics; the page draws only the charts in view, so filter first.
        search = wait.until(
            until.element_to_be_clickable((By.CSS_SELECTOR, "input[placeholder*='metric charts']"))
        )
        search.send_keys("val_accuracy")
        legend = f"trial-{trial.number} (val_accuracy)"
        wait.until(until.text_to_be_present_in_element((By.TAG_NAME, "body"), legend))
        wait.until(
            until.presence_of_element_located((By.CSS_SELECTOR, ".js-plotly-plot .main-svg"))
        )
        browser.save_screenshot(str(artifacts / "mlflow-ui-metrics.png"))
    finally:
        browser.quit()
        ui.send_signal(signal.SIGINT)
        out, _ = ui.communicate(timeout=120)
    assert ui.returncode == 0, out
    assert "MLflow UI stopped." in out
    with socket.socket() as probe:
        # SO_REUSEADDR lets the bind pass over the browser's closed connections
        # (TIME_WAIT) but still fails while anything listens on the port.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(("127.0.0.1", port))  # the server is gone with it


def _experiment_url(ui: subprocess.Popen[str]) -> str:
    seen = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and ui.poll() is None:
        line = ui.stdout.readline()
        seen.append(line)
        if "iris-auto: http://" in line:
            return line.split(": ", 1)[1].strip()
    raise AssertionError(f"automl ui printed no experiment URL: {''.join(seen)}")


def _browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    chromium = next(filter(None, map(shutil.which, CHROMIUM_NAMES)), None)
    chromedriver = shutil.which(CHROMEDRIVER_NAME)
    if chromium is None or chromedriver is None:
        absent = [n for n, p in (("chromium", chromium), ("chromedriver", chromedriver)) if not p]
        missing(f"{' and '.join(absent)} on PATH", ".ci/run installs chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--window-size=1600,1000",
    ):
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(chromedriver), options=options)
