#!/usr/bin/env python3
"""The servent's page in headless Chromium, used as a person uses it.

servent/tests/browser.rs starts real servents and runs one scenario of this
script against the user's page. A scenario waits for what a person would
see (never for a fixed time), saves a screenshot of each view into
--screenshots, and on failure says in one line what it waited for in vain
(exit status 1), with a screenshot named failure.png.

    browser.py download --url http://127.0.0.1:P/?token=T --name FILE --stalled FILE ...
    browser.py verdicts --url ... --key RW... --key-id HEX --genuine FILE --fake FILE ...
"""

import argparse
import os
import shutil
import sys
import tempfile

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

# Seconds any one condition may take; it only bounds a hang.
PATIENCE = 60
DESKTOP = (1280, 1000)
PHONE = (390, 900)
# Chromium as root, with nothing that reaches outside this machine.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


class Failure(Exception):
    """What the scenario waited for and did not see."""


class Page:
    """The page in a fresh Chromium profile, with helpers that wait."""

    def __init__(self, args):
        self.shots = args.screenshots
        self.profile = tempfile.mkdtemp(prefix="servent-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = args.chromium
        for flag in CHROMIUM_FLAGS + [f"--user-data-dir={self.profile}", "--window-size=%d,%d" % DESKTOP]:
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service(args.chromedriver), options=options)
        self.driver.set_window_size(*DESKTOP)

    def close(self):
        self.driver.quit()
        shutil.rmtree(self.profile, ignore_errors=True)

    def wait(self, what, condition):
        """Waits until `condition()` is truthy and returns it."""
        try:
            return WebDriverWait(
                self.driver, PATIENCE, poll_frequency=0.1, ignored_exceptions=(StaleElementReferenceException,)
            ).until(lambda _: condition())
        except TimeoutException:
            self.shot("failure")
            self.report()
            raise Failure(f"gave up waiting for {what}") from None

    def report(self):
        """What the page shows and what its API answers now, for a failure."""
        self.driver.set_script_timeout(10)
        try:
            answer = self.driver.execute_async_script(
                """
                const done = arguments[0];
                const token = sessionStorage.getItem("servent-api-token");
                const headers = token ? { Authorization: `Bearer ${token}` } : {};
                fetch("/api/downloads", { headers }).then((r) => r.text()).then(done, (e) => done(String(e)));
                """
            )
        except TimeoutException:
            answer = "GET /api/downloads did not answer within 10 s"
        statuses = self.js("return [...document.querySelectorAll('.status')].map((s) => s.id + ': ' + s.textContent)")
        print(f"page status lines: {statuses}\nGET /api/downloads from the page: {answer}", file=sys.stderr)

    def shot(self, name):
        path = os.path.join(self.shots, f"{name}.png")
        self.driver.save_screenshot(path)
        print(f"screenshot {path}")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def view(self, name):
        """Goes to a view by its link in the navigation, as a person does."""
        self.find(f'nav a[data-view="{name}"]').click()
        self.wait(f"the {name} view", lambda: self.find(f"#view-{name}").is_displayed())

    def row(self, table, name):
        """The row of `table` whose name cell reads `name`, if any (None
        too while the table changes under the search: callers wait)."""
        try:
            for row in self.driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr"):
                # The name is the cell's first element, or the cell itself;
                # textContent, because a hidden row has no visible text.
                cells = row.find_elements(By.CSS_SELECTOR, "td.name > :first-child") or row.find_elements(
                    By.CSS_SELECTOR, "td.name"
                )
                if cells and cells[0].get_attribute("textContent").strip() == name:
                    return row
        except StaleElementReferenceException:
            pass
        return None

    def click_in_row(self, table, name, css, label=None):
        """Clicks the button `css` (reading `label`, if given) in the row of `name`."""

        def click():
            row = self.row(table, name)
            buttons = row.find_elements(By.CSS_SELECTOR, css) if row else []
            button = next((b for b in buttons if label is None or b.text == label), None)
            if button is None or not button.is_enabled():
                return False
            button.click()
            return True

        self.wait(f"a {label or css} button for {name}", click)

    def wait_row(self, table, name, what=""):
        return self.wait(f"{name} in the {table} table{what}", lambda: self.row(table, name))

    def state_of(self, table, name):
        row = self.row(table, name)
        try:
            return row.get_attribute("data-state") if row else None
        except StaleElementReferenceException:
            return None

    def api_status(self, path):
        """The status GET `path` answers the page with (its token included)."""
        return self.driver.execute_async_script(
            """
            const [path, done] = arguments;
            const token = sessionStorage.getItem("servent-api-token");
            const headers = token ? { Authorization: `Bearer ${token}` } : {};
            fetch(path, { headers }).then((r) => done(r.status), () => done(0));
            """,
            path,
        )

    def check_no_horizontal_scroll(self, where):
        overflow = self.js("return document.documentElement.scrollWidth - window.innerWidth")
        if overflow > 1:
            self.shot("failure")
            raise Failure(f"the {where} view is {overflow}px wider than a phone's screen")

    def check_keyboard_and_labels(self):
        """Real buttons with names, inputs with labels, focus that shows."""
        unnamed = self.js(
            """
            return [...document.querySelectorAll("button")]
              .filter((b) => !(b.getAttribute("aria-label") || b.textContent.trim()))
              .map((b) => b.outerHTML);
            """
        )
        if unnamed:
            raise Failure(f"buttons without a name: {unnamed}")
        unlabelled = self.js(
            """
            return [...document.querySelectorAll("input")]
              .filter((i) => i.labels.length === 0 && !i.getAttribute("aria-label"))
              .map((i) => i.outerHTML);
            """
        )
        if unlabelled:
            raise Failure(f"inputs without a label: {unlabelled}")

    def check_nothing_from_elsewhere(self):
        outside = self.js(
            """
            return performance.getEntriesByType("resource")
              .map((e) => e.name)
              .filter((url) => new URL(url).origin !== location.origin);
            """
        )
        if outside:
            raise Failure(f"the page loaded from other origins: {outside}")

    def check_console(self):
        """No script error; failed loads are the API's expected 404s (an API not there yet)."""
        errors = [
            entry["message"]
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]
        if errors:
            raise Failure(f"errors in the console: {errors}")

    def search(self, words):
        box = self.find('input[name="q"]')
        box.clear()
        box.send_keys(words, Keys.ENTER)

    def set_verified_only(self, on):
        box = self.find("#verified-only")
        if box.is_selected() != on:
            box.click()


def verdict_of(row):
    """A result's verdict badge as (word, explanation); None while it has none."""
    badges = row.find_elements(By.CSS_SELECTOR, "td.verdict .badge") if row else []
    return (badges[0].text, badges[0].get_attribute("title")) if badges else None


def scenario_download(page, args):
    """The token; search, download, watch progress, pause/resume/cancel; the other views."""
    # Without its token the page asks for it, and goes on once given.
    base, token = args.url.split("?token=")
    page.driver.get(base)
    form = page.wait("the page to ask for its token", lambda: page.find("#token-form").is_displayed() and page.find("#token-form"))
    page.shot("token")
    form.find_element(By.NAME, "token").send_keys(token, Keys.ENTER)
    page.wait("the token form to go", lambda: not form.is_displayed())
    page.wait("the page to load the downloads", lambda: page.find("#downloads-count").text == "(1)")
    # Given in the address, the token is kept and leaves the address.
    page.js("sessionStorage.clear()")
    page.driver.get(args.url)
    page.wait("the page to load", lambda: page.js("return document.readyState") == "complete")
    page.wait("the token to leave the address", lambda: "token=" not in page.driver.current_url)
    page.wait("the page to load the downloads", lambda: page.find("#downloads-count").text == "(1)")
    if page.find("#token-form").is_displayed():
        raise Failure("the page asks for a token it was given in its address")

    page.search("SEBLINUX")
    row = page.wait_row("results", args.name)
    verdict, reason = page.wait(f"a verdict badge on {args.name}", lambda: verdict_of(page.row("results", args.name)))
    if verdict not in ("verified", "unsigned", "untrusted", "fake") or not reason:
        raise Failure(f"{args.name} has verdict {verdict!r} explained by {reason!r}")
    print(f"{args.name}: {verdict} ({reason})")
    if verdict != "verified":
        page.set_verified_only(True)
        page.wait("the verified-only filter to hide it", lambda: not page.row("results", args.name).is_displayed())
        page.set_verified_only(False)
        page.wait("the result to come back", lambda: page.row("results", args.name).is_displayed())
    page.shot("search")

    # The Download button is reachable from the search box with Tab alone,
    # and its focus shows.
    download = row.find_element(By.CSS_SELECTOR, "button.download")
    page.find('input[name="q"]').click()
    for _ in range(30):
        if page.driver.switch_to.active_element == download:
            break
        page.driver.switch_to.active_element.send_keys(Keys.TAB)
    else:
        raise Failure("Tab never reached the Download button")
    outline = page.js("return getComputedStyle(document.activeElement).outlineStyle")
    if outline == "none":
        raise Failure("the focused Download button shows no outline")
    page.shot("search-focus")
    download.click()
    page.wait("the download to start", lambda: "Downloading" in page.find("#search-status").text)

    page.view("downloads")
    page.wait(f"{args.name} to complete", lambda: page.state_of("downloads", args.name) == "complete")

    def full_bar():
        bar = page.row("downloads", args.name).find_element(By.TAG_NAME, "progress")
        return bar.get_attribute("value") == bar.get_attribute("max") and "100 %" in page.row("downloads", args.name).text

    page.wait("the finished download's bar to be full", full_bar)
    page.wait("the stalled download at 50 %", lambda: (row := page.row("downloads", args.stalled)) and "50 %" in row.text)
    page.shot("downloads")

    page.click_in_row("downloads", args.stalled, "button.pause", "Pause")
    page.wait("the download to pause", lambda: page.state_of("downloads", args.stalled) == "paused")
    page.wait("a Resume button", lambda: "Resume" in page.row("downloads", args.stalled).text)
    page.shot("downloads-paused")
    page.click_in_row("downloads", args.stalled, "button.pause", "Resume")
    page.wait("the download to go on", lambda: page.state_of("downloads", args.stalled) in ("queued", "downloading"))
    page.click_in_row("downloads", args.stalled, "button.cancel", "Cancel")
    page.wait("the download to be cancelled", lambda: page.state_of("downloads", args.stalled) == "cancelled")

    page.view("library")
    page.wait_row("library", args.name, " (the finished download, shared)")
    page.shot("library")

    page.view("trust")
    page.wait("the trust view to say something", lambda: page.find("#trust-status").text.strip())
    page.shot("trust")

    page.view("peers")
    page.wait("a connected peer", lambda: page.driver.find_elements(By.CSS_SELECTOR, "#peers tbody tr"))
    page.wait("the host cache size", lambda: "Host cache" in page.find("#summary").text)
    page.shot("peers")

    updates = page.api_status("/api/updates")
    tab = page.find("#updates-tab")
    page.wait(
        f"the Updates tab {'shown' if updates == 200 else 'hidden'} (GET /api/updates answers {updates})",
        lambda: tab.is_displayed() == (updates == 200),
    )
    if updates == 200:
        page.view("updates")
        page.wait("the updater's status", lambda: page.find("#updates").text.strip())
        page.find("#updates-run").click()
        page.wait(
            "the update pass to report",
            lambda: (text := page.find("#updates-status").text) and "Looking" not in text,
        )
        if "error" in page.find("#updates-status").get_attribute("class"):
            raise Failure(f"the update pass failed: {page.find('#updates-status').text}")
        page.shot("updates")

    page.check_keyboard_and_labels()
    page.check_nothing_from_elsewhere()
    page.check_console()

    page.driver.set_window_size(*PHONE)
    for name in ("search", "downloads", "library", "trust", "peers"):
        page.view(name)
        page.check_no_horizontal_scroll(name)
        page.shot(f"{name}-phone")

    page.driver.set_window_size(*DESKTOP)
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    page.view("downloads")
    page.shot("downloads-dark")


def scenario_verdicts(page, args):
    """A key trusted from the page; a verified release and a fake one."""
    page.driver.get(args.url)
    page.wait("the page to load", lambda: page.js("return document.readyState") == "complete")

    page.view("trust")
    page.wait("the trust form to be usable", lambda: page.find("#trust-key").is_enabled())
    page.find("#trust-key").send_keys(args.key)
    scope = page.find("#trust-scope")
    scope.clear()
    scope.send_keys("SEBLINUX")
    page.find('#trust-form button[type="submit"]').click()
    key_id = args.key_id.upper()
    page.wait(
        f"key {key_id} in the trust table",
        lambda: key_id in page.find("#trust").text.upper() and page.find("#trust").is_displayed(),
    )
    page.shot("trust-with-key")

    page.view("search")
    page.search("SEBLINUX")
    page.wait(f"{args.genuine} verified", lambda: (verdict_of(page.row("results", args.genuine)) or [None])[0] == "verified")
    page.wait(f"{args.fake} fake", lambda: (verdict_of(page.row("results", args.fake)) or [None])[0] == "fake")
    genuine, fake = page.row("results", args.genuine), page.row("results", args.fake)
    for row, name in ((genuine, args.genuine), (fake, args.fake)):
        if not verdict_of(row)[1]:
            raise Failure(f"the verdict of {name} has no explanation")
    if genuine.find_element(By.CSS_SELECTOR, "td.publisher").text.upper() != key_id:
        raise Failure(f"{args.genuine} shows publisher {genuine.find_element(By.CSS_SELECTOR, 'td.publisher').text}")
    if genuine.find_element(By.CSS_SELECTOR, "td.version").text != "1.0":
        raise Failure(f"{args.genuine} shows version {genuine.find_element(By.CSS_SELECTOR, 'td.version').text}")
    if not genuine.find_elements(By.CSS_SELECTOR, "button.download"):
        raise Failure(f"{args.genuine} has no Download button")
    if fake.find_elements(By.CSS_SELECTOR, "button"):
        raise Failure(f"{args.fake} is fake but has a button")
    if not fake.find_elements(By.CSS_SELECTOR, "td.name s"):
        raise Failure(f"{args.fake} is fake but not struck through")
    page.shot("search-verdicts")

    page.set_verified_only(True)
    page.wait("the fake to be hidden", lambda: not page.row("results", args.fake).is_displayed())
    if not page.row("results", args.genuine).is_displayed():
        raise Failure("the verified-only filter hid the verified release")
    page.shot("search-verified-only")
    page.set_verified_only(False)

    def key_row():
        rows = page.driver.find_elements(By.CSS_SELECTOR, "#trust tbody tr")
        return next((r for r in rows if key_id in r.text.upper()), None)

    def remove():
        row = key_row()
        if row is None:
            return False
        row.find_element(By.CSS_SELECTOR, "button.remove").click()
        return True

    page.view("trust")
    page.wait("the key's Remove button", remove)
    page.wait("the key to be gone", lambda: key_row() is None)
    page.check_console()


SCENARIOS = {"download": scenario_download, "verdicts": scenario_verdicts}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", choices=SCENARIOS)
    parser.add_argument("--url", required=True)
    parser.add_argument("--screenshots", required=True)
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--chromedriver", default="/usr/bin/chromedriver")
    parser.add_argument("--name")
    parser.add_argument("--stalled")
    parser.add_argument("--key")
    parser.add_argument("--key-id")
    parser.add_argument("--genuine")
    parser.add_argument("--fake")
    args = parser.parse_args()
    os.makedirs(args.screenshots, exist_ok=True)
    page = Page(args)
    try:
        SCENARIOS[args.scenario](page, args)
    except Failure as failure:
        print(f"browser: {args.scenario}: {failure}", file=sys.stderr)
        return 1
    except Exception:
        page.shot("failure")
        raise
    finally:
        page.close()
    print(f"browser: {args.scenario}: passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
