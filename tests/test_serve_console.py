"""The console of ``connector serve`` in a real headless Chromium (Selenium, system chromedriver).

Skips, saying why, where the browser or its driver is missing (`.ci/run` installs
Debian's ``chromium`` and ``chromium-driver``). Saves a screenshot of the console to
``$CONSOLE_SCREENSHOT`` when set (``docs/console.png`` of docs/serve.md is made that way), else
to the test's temporary folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from pathlib import Path

import pytest
from serving import ServedApp, needs_serve_extra

from connector_core import Engine, HostPolicy
from connector_core.config import ConnectionSpec

needs_serve_extra()
# Found here, imported where used: every xdist worker collects this module, one runs it, and
# Selenium's waits and conditions take longer to import than this module's checks to collect.
if importlib.util.find_spec("selenium") is None:
    pytest.skip("selenium is not installed (pip install -e '.[test]')", allow_module_level=True)

KEY = "console-key-0123456789abcdef"
BROWSERS = ("chromium", "chromium-browser", "google-chrome")
CAPABILITIES = {
    "mparticle.createAccount": ["displayName"],
    "mparticle.deleteAccount": ["accountId"],
    "mparticle.getAccount": ["accountId"],
    "mparticle.getAudiences": ["accountId"],
    "mparticle.getCalculatedAttributes": ["workspace", "nameOptional"],
    "mparticle.updateAccount": ["accountId", "updatedName"],
    "mparticle.uploadEventBatch": ["jsonBody"],
}


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException

    binary = next((found for name in BROWSERS if (found := shutil.which(name))), None)
    driver_path = shutil.which("chromedriver")
    if binary is None or driver_path is None:
        pytest.skip("no Chromium and chromedriver on this machine (Debian: apt-get install chromium chromium-driver)")
    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must never download a browser or driver
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--window-size=1280,1000",
                 f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}"):
        options.add_argument(flag)
    try:
        driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=driver_path))
    except WebDriverException as exc:
        pytest.skip(f"Chromium could not be started: {exc.msg}")
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def console(mparticle_sandbox_server):
    specs = {"sandbox": ConnectionSpec("sandbox", {**mparticle_sandbox_server.config, "maxRetries": 0}, "mparticle",
                                       description="the local mParticle sandbox")}
    # Configs typed in the console may point at the loopback sandbox: URL overrides relaxed, explicitly.
    policy = HostPolicy.untrusted(allow_url_overrides=True, allow_loopback=True)
    with Engine() as engine, ServedApp(engine, specs, api_keys=[KEY], caller_policy=policy) as app:
        yield app


def wait(browser, condition, timeout=20):
    # Polled every 50 ms, not Selenium's default 500 ms: a page that is ready at once costs a
    # round trip to the driver, not half a second of waiting (the suite waits a dozen times).
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(browser, timeout, poll_frequency=0.05).until(condition)


def test_the_console_runs_capabilities_from_generated_forms(browser, console, mparticle_sandbox, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.select import Select

    browser.get(console.url + "/")
    assert browser.title == "Connector console"
    wait(browser, EC.text_to_be_present_in_element((By.ID, "status"), "API key"))  # keys are required here
    browser.find_element(By.ID, "api-key").send_keys(KEY)
    browser.find_element(By.ID, "load").click()
    wait(browser, lambda b: len(Select(b.find_element(By.ID, "capability")).options) == 7)
    assert Select(browser.find_element(By.ID, "connection")).first_selected_option.get_attribute("value") == "sandbox"

    # A form per capability, generated from its input schema.
    capability = Select(browser.find_element(By.ID, "capability"))
    for qid, fields in CAPABILITIES.items():
        capability.select_by_value(qid)
        wait(browser, lambda b, f=fields: all(b.find_elements(By.ID, f"input-{name}") for name in f))
        labels = browser.find_element(By.ID, "form").text
        for name in fields:
            element = browser.find_element(By.ID, f"input-{name}")
            assert element.get_attribute("name") == name
        assert "*" in labels  # required fields are marked
    assert browser.find_element(By.ID, "input-jsonBody").tag_name == "textarea"
    capability.select_by_value("mparticle.getCalculatedAttributes")
    wait(browser, lambda b: b.find_elements(By.ID, "input-nameOptional"))
    assert browser.find_element(By.ID, "input-nameOptional").get_attribute("aria-required") is None
    assert browser.find_element(By.ID, "input-workspace").get_attribute("aria-required") == "true"

    # Every pattern the manifests publish compiles as a JavaScript regular expression.
    problems = browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        const headers = {Authorization: "Bearer " + arguments[0]};
        (async () => {
          const list = await (await fetch("/v1/capabilities", {headers})).json();
          const connectors = await (await fetch("/v1/connectors", {headers})).json();
          const schemas = connectors.map((c) => c.configSchema);
          for (const c of list) schemas.push((await (await fetch("/v1/capabilities/" + c.id, {headers})).json()).inputSchema);
          const bad = [];
          const walk = (node) => {
            if (Array.isArray(node)) return node.forEach(walk);
            if (node && typeof node === "object") {
              if (typeof node.pattern === "string") { try { new RegExp(node.pattern, "u"); } catch (e) { bad.push(node.pattern + ": " + e); } }
              Object.values(node).forEach(walk);
            }
          };
          schemas.forEach(walk);
          done(bad);
        })().catch((e) => done(["failed: " + e]));
    """, KEY)
    assert problems == []

    # getAccount against the sandbox shows the account.
    capability.select_by_value("mparticle.getAccount")
    wait(browser, lambda b: b.find_elements(By.ID, "input-accountId"))
    account_id = browser.find_element(By.ID, "input-accountId")
    account_id.send_keys("1001")
    browser.find_element(By.ID, "run").click()
    result = wait(browser, EC.visibility_of_element_located((By.ID, "result")))
    wait(browser, lambda b: "Acme Production" in result.text)
    assert '"id": 1001' in result.text
    screenshot = Path(os.environ.get("CONSOLE_SCREENSHOT") or tmp_path / "console.png")
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(screenshot))
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # An invalid accountId: the fault is shown at that field.
    account_id.clear()
    account_id.send_keys("12/../3")
    browser.find_element(By.ID, "run").click()
    fault = wait(browser, EC.visibility_of_element_located((By.ID, "fault-input-accountId")))
    assert "numeric account ID" in fault.text
    assert "invalid" in browser.find_element(By.ID, "field-input-accountId").get_attribute("class")
    assert not browser.find_element(By.ID, "result").is_displayed()
    assert "invalid_input" in browser.find_element(By.ID, "error").text

    # No secret anywhere in the page after the runs.
    page = browser.page_source + browser.find_element(By.TAG_NAME, "body").text
    for secret in (KEY, mparticle_sandbox.config["clientSecret"], mparticle_sandbox.config["apiSecret"]):
        assert secret not in page


def test_the_config_form_takes_secrets_in_password_inputs(browser, console, mparticle_sandbox):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.select import Select

    browser.get(console.url + "/")
    browser.find_element(By.ID, "api-key").send_keys(KEY)
    browser.find_element(By.ID, "load").click()
    wait(browser, lambda b: len(Select(b.find_element(By.ID, "capability")).options) == 7)
    browser.find_element(By.ID, "mode-config").click()
    wait(browser, EC.visibility_of_element_located((By.ID, "config-clientSecret")))
    assert browser.find_element(By.ID, "config-clientSecret").get_attribute("type") == "password"
    assert browser.find_element(By.ID, "config-apiSecret").get_attribute("type") == "password"
    assert browser.find_element(By.ID, "config-clientID").get_attribute("type") == "text"
    assert browser.find_element(By.ID, "config-maxRetries").get_attribute("type") == "number"
    config = mparticle_sandbox.config
    for name in ("clientID", "clientSecret", "authUrl", "platformUrl"):
        browser.find_element(By.ID, f"config-{name}").send_keys(config[name])
    Select(browser.find_element(By.ID, "capability")).select_by_value("mparticle.getAccount")
    wait(browser, lambda b: b.find_elements(By.ID, "input-accountId"))
    browser.find_element(By.ID, "input-accountId").send_keys("1001")
    browser.find_element(By.ID, "run").click()
    result = wait(browser, EC.visibility_of_element_located((By.ID, "result")))
    wait(browser, lambda b: "Acme Production" in result.text)
    page = browser.page_source + browser.find_element(By.TAG_NAME, "body").text
    assert config["clientSecret"] not in page and KEY not in page
