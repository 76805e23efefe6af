#!/usr/bin/env python3
"""The servent's page in headless Chromium, used as a person uses it.

servent/tests/browser.rs starts real servents and runs one scenario of this
script against the user's page. A scenario waits for what a person would
see (never for a fixed time), saves a screenshot of each view into
--screenshots, and on failure says in one line what it waited for in vain
(exit status 1), with a screenshot named failure.png.

    browser.py download --url http://127.0.0.1:P/?token=T --name FILE --stalled FILE ...
    browser.py verdicts --url ... --key RW... --key-id HEX --genuine FILE --fake FILE ...
    browser.py updates --url ... --package NAME --key-id HEX --gate FILE --next DIR --share DIR --publisher-api IP:PORT ...
    browser.py browse --url ... --name FILE --peer IP:PORT --files N --hostile IP:PORT ...
"""

import argparse
import base64
import json
import os
import shutil
import sys
import tempfile
import urllib.request

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

    def shot_whole(self, name):
        """A screenshot of the whole page, however long, at the window's width."""
        path = os.path.join(self.shots, f"{name}.png")
        shot = self.driver.execute_cdp_cmd("Page.captureScreenshot", {"captureBeyondViewport": True})
        with open(path, "wb") as file:
            file.write(base64.b64decode(shot["data"]))
        print(f"screenshot {path}")

    def js(self, script, *args):
        return self.driver.execute_script(script, *args)

    def find(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def view(self, name):
        """Goes to a view by its link in the navigation, as a person does."""
        link = self.wait(f"the {name} link", lambda: (a := self.find(f'nav a[data-view="{name}"]')).is_displayed() and a)
        link.click()
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

    def tab_to(self, what, target, start):
        """Presses Tab from `start` until `target` has the focus, whose outline must show."""
        self.js("arguments[0].focus()", start)
        for _ in range(40):
            if self.driver.switch_to.active_element == target:
                break
            self.driver.switch_to.active_element.send_keys(Keys.TAB)
        else:
            raise Failure(f"Tab never reached {what}")
        if self.js("return getComputedStyle(document.activeElement).outlineStyle") == "none":
            raise Failure(f"the focused {what} shows no outline")

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
    page.tab_to("the Download button", download, page.find('input[name="q"]'))
    page.shot("search-focus")
    # Not verified: the page asks first, saying why, and Cancel downloads nothing.
    if verdict == "verified":
        raise Failure(f"{args.name} is verified, but this scenario needs an unverified result")
    question = row.find_element(By.CSS_SELECTOR, ".confirm")
    download.click()
    page.wait("the question before an unverified download", question.is_displayed)
    if verdict not in question.text or "anyway" not in question.text:
        raise Failure(f"the question does not say why: {question.text!r}")
    page.shot("search-confirm")
    question.find_element(By.CSS_SELECTOR, "button.cancel").click()
    page.wait("the question to close", lambda: not question.is_displayed() and download.is_displayed())
    if page.js("return document.activeElement") != download:
        raise Failure("Cancel did not give the focus back to the Download button")
    if "Downloading" in page.find("#search-status").text:
        raise Failure("the download started although the question was answered Cancel")
    download.click()
    page.wait("the question again", question.is_displayed)
    question.find_element(By.CSS_SELECTOR, "button.confirm-download").click()
    page.wait("the download to start", lambda: "Downloading" in page.find("#search-status").text)

    page.view("downloads")
    page.wait(f"{args.name} to complete", lambda: page.state_of("downloads", args.name) == "complete")

    def full_bar():
        bar = page.row("downloads", args.name).find_element(By.TAG_NAME, "progress")
        return bar.get_attribute("value") == bar.get_attribute("max") and "100 %" in page.row("downloads", args.name).text

    page.wait("the finished download's bar to be full", full_bar)
    finished = page.row("downloads", args.name)
    if finished.get_attribute("data-verdict") != verdict or "state-complete" in finished.find_element(By.CSS_SELECTOR, "td.state .badge").get_attribute("class"):
        raise Failure(f"the {verdict} download looks like a verified one: {finished.get_attribute('outerHTML')}")
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
    page.wait(
        "the peer's vendor messages (its Messages Supported)",
        lambda: "BEAR/11v1" in page.find("#peers tbody tr td.vendor").text,
    )
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
        page.wait("nothing installed", lambda: page.find("#installed-empty").is_displayed())
        page.find("#updates-check").click()
        page.wait("the check to report", lambda: "Checked: nothing is installed" in page.find("#updates-status").text)

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
    scope.send_keys("SEBLINUX*")
    page.find('#trust-form button[type="submit"]').click()
    key_id = args.key_id.upper()
    page.wait(
        f"key {key_id} in the trust table",
        lambda: key_id in page.find("#trust").text.upper() and page.find("#trust").is_displayed(),
    )
    page.shot("trust-with-key")

    page.view("search")
    page.search("SEBLINUX")
    # A key is pinned: "Verified only" is on by default, and hides the fake.
    page.wait("Verified only on by default", lambda: page.find("#verified-only").is_selected())
    page.wait(f"{args.genuine} verified", lambda: (verdict_of(page.row("results", args.genuine)) or [None])[0] == "verified")
    page.wait(f"{args.fake} hidden", lambda: (row := page.row("results", args.fake)) is not None and not row.is_displayed())
    page.set_verified_only(False)
    page.wait(f"{args.fake} fake", lambda: (verdict_of(page.row("results", args.fake)) or [None])[0] == "fake")
    cells = page.driver.find_elements(By.CSS_SELECTOR, "#results tbody tr td.name > :first-child")
    names = [cell.get_attribute("textContent") for cell in cells]
    if names.index(args.genuine) > names.index(args.fake):
        raise Failure(f"results not sorted by verdict, verified first: {names}")
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

    # A verified result downloads at once, without a question, and finishes verified.
    genuine.find_element(By.CSS_SELECTOR, "button.download").click()
    page.wait("the verified download to start", lambda: "Downloading" in page.find("#search-status").text)
    if genuine.find_element(By.CSS_SELECTOR, ".confirm").is_displayed():
        raise Failure("the page asked before downloading a verified result")
    page.view("downloads")
    page.wait(
        f"{args.genuine} complete and verified",
        lambda: page.state_of("downloads", args.genuine) == "complete"
        and page.row("downloads", args.genuine).get_attribute("data-verdict") == "verified",
    )
    page.shot("downloads-verified")

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


def cell(row, name):
    """The text of a row's cell (textContent: the narrow layout hides nothing, but a hidden row has no text)."""
    try:
        return row.find_element(By.CSS_SELECTOR, f"td.{name}").get_attribute("textContent").strip() if row else None
    except StaleElementReferenceException:
        return None


def open_gate(gate):
    """Lets the servent's post-install hook, which waits for this file, finish."""
    with open(gate, "w"):
        pass


def publish(staged, share):
    """The publisher shares what is staged: signatures first, so no file is ever seen unsigned."""
    names = sorted(os.listdir(staged), key=lambda name: not name.endswith(".minisig"))
    for name in names:
        os.rename(os.path.join(staged, name), os.path.join(share, name))
    return [name for name in names if not name.endswith(".minisig")]


def shared_by(api):
    """What the servent at `api` shares, from its own API (as `servent library --json` reads it)."""
    with urllib.request.urlopen(f"http://{api}/api/library", timeout=10) as answer:
        return json.load(answer)


def scenario_updates(page, args):
    """Install with the form, busy and refused passes, the freeze warning, Update now, Rollback."""
    page.driver.get(args.url)
    page.wait("the page to load", lambda: page.js("return document.readyState") == "complete")
    page.view("updates")
    page.wait("the schedule", lambda: "Passes every 60 minutes" in page.find("#updates-schedule").text)
    page.wait("nothing installed", lambda: page.find("#installed-empty").is_displayed())
    page.wait("no pass yet", lambda: "No pass since" in page.find("#pass-summary").text)

    def status():
        return page.find("#install-status").text

    def row():
        return page.row("installed", args.package)

    def pass_row():
        return page.row("pass", args.package)

    # Enter in the box is Check: a dry run.
    page.find("#install-name").send_keys(args.package, Keys.ENTER)
    page.wait("the check's decision", lambda: f"{args.package} none → 1.0" in status())
    for words in ("signed 40 days ago", "may be hiding newer releases"):
        if words not in status():
            raise Failure(f"the check's decision does not say {words!r}: {status()}")
    if page.find("#install-status .badge").text != "would install":
        raise Failure(f"the check's badge reads {page.find('#install-status .badge').text!r}")
    if page.find("#installed").is_displayed():
        raise Failure("a dry run installed something")

    # Install: the post-install hook holds it until the gate opens.
    page.find('#install-form button[value="install"]').click()
    page.wait(
        "the install's busy state",
        lambda: page.find("#updates-progress").is_displayed() and f"Installing {args.package}" in status(),
    )
    for control in ("#updates-run", "#updates-check", '#install-form button[value="install"]'):
        if page.find(control).get_attribute("aria-disabled") != "true":
            raise Failure(f"{control} answers while the install runs")
    page.shot("updates-installing")

    # Meanwhile, another page sees the pass running, and a second pass is refused (409).
    first = page.driver.current_window_handle
    page.driver.switch_to.new_window("tab")
    page.driver.get(args.url)
    page.view("updates")
    page.wait("the other pass, running", lambda: "An update pass is running" in page.find("#updates-status").text)
    if not page.find("#updates-progress").is_displayed():
        raise Failure("a pass runs, and the other page shows no progress")
    page.find("#updates-check").click()
    refused = page.find("#updates-status")
    page.wait(
        "the refusal of a second pass",
        lambda: "another update pass" in refused.text and "error" in refused.get_attribute("class"),
    )
    page.shot("updates-refused")
    page.driver.close()
    page.driver.switch_to.window(first)

    open_gate(args.gate)
    page.wait("1.0 installed", lambda: page.find("#install-status .badge").text == "installed")
    if f"{args.package} none → 1.0" not in status():
        raise Failure(f"the install's decision reads {status()!r}")
    page.wait("1.0 in the installed table", lambda: cell(row(), "version") == "1.0")
    expected = {"publisher": args.key_id.upper(), "previous": "—", "held": "—"}
    for name, value in expected.items():
        if cell(row(), name).upper() != value.upper():
            raise Failure(f"the installed {name} reads {cell(row(), name)!r}, not {value!r}")
    if "40 days ago" not in cell(row(), "signed"):
        raise Failure(f"the installed release reads signed {cell(row(), 'signed')!r}")
    if any(b.is_displayed() for b in row().find_elements(By.CSS_SELECTOR, "button")):
        raise Failure("a release with no previous version offers a rollback")

    # A check: 1.0 is the newest release the network shows, and it is old.
    page.find("#updates-check").click()
    page.wait("the check to report", lambda: "Checked: 1 up to date" in page.find("#updates-status").text)
    page.wait("the check in the last pass", lambda: cell(pass_row(), "outcome") == "up to date")
    age = pass_row().find_element(By.CSS_SELECTOR, ".age")
    if age.text != "signed 40 days ago" or "age-stale" not in age.get_attribute("class"):
        raise Failure(f"the newest release's age reads {age.text!r}, class {age.get_attribute('class')!r}")
    if "hiding newer releases" not in (age.get_attribute("title") or ""):
        raise Failure(f"the old release's warning explains {age.get_attribute('title')!r}")
    page.tab_to("the freeze warning", age, page.find("#updates-check"))
    page.shot("updates-freeze-warning")

    # The publisher shares 1.1.
    (newer,) = publish(args.next, args.share)
    page.wait(
        f"the publisher to share {newer}, signed",
        lambda: any(f["name"] == newer and f.get("version") == "1.1" for f in shared_by(args.publisher_api)),
    )
    # The view refreshed meanwhile (every 2 s; the publisher rescans every 5 s), in place.
    if page.driver.switch_to.active_element != age:
        raise Failure("a refresh took the focus from the freeze warning")
    page.find("#updates-check").click()
    page.wait("the check to see 1.1", lambda: cell(pass_row(), "outcome") == "would install")
    if cell(pass_row(), "change") != "1.0 → 1.1" or "Dry run" not in page.find("#pass-summary").text:
        raise Failure(f"the check reads {pass_row().text!r}; {page.find('#pass-summary').text!r}")
    age = pass_row().find_element(By.CSS_SELECTOR, ".age")
    if age.text != "signed 3 days ago" or "age-stale" in age.get_attribute("class"):
        raise Failure(f"1.1's age reads {age.text!r}, class {age.get_attribute('class')!r}")

    open_gate(args.gate)
    page.find("#updates-run").click()
    page.wait("Update now to install 1.1", lambda: cell(pass_row(), "outcome") == "installed")
    if cell(pass_row(), "change") != "1.0 → 1.1" or "Update pass" not in page.find("#pass-summary").text:
        raise Failure(f"the pass reads {pass_row().text!r}; {page.find('#pass-summary').text!r}")
    page.wait("1.1 installed, 1.0 kept", lambda: (cell(row(), "version"), cell(row(), "previous")) == ("1.1", "1.0"))
    start = page.wait("a Rollback button", lambda: (b := row().find_element(By.CSS_SELECTOR, "button.rollback")).is_displayed() and b)
    page.shot_whole("updates")

    # Rollback from the keyboard, with a question first, which Escape withdraws.
    start.send_keys(Keys.ENTER)
    confirm = page.wait(
        "the rollback question, focused",
        lambda: "confirm-rollback" in (page.driver.switch_to.active_element.get_attribute("class") or "")
        and page.driver.switch_to.active_element,
    )
    if confirm.text != "Roll back to 1.0":
        raise Failure(f"the rollback question's button reads {confirm.text!r}")
    confirm.send_keys(Keys.ESCAPE)
    page.wait("Escape to withdraw the question", lambda: page.driver.switch_to.active_element == start)
    start.send_keys(Keys.ENTER)
    confirm = page.wait(
        "the rollback question again",
        lambda: "confirm-rollback" in (page.driver.switch_to.active_element.get_attribute("class") or "")
        and page.driver.switch_to.active_element,
    )
    page.shot("updates-rollback-question")
    confirm.send_keys(Keys.ENTER)
    page.wait("1.0 back, 1.1 held back", lambda: (cell(row(), "version"), cell(row(), "held")) == ("1.0", "1.1"))
    page.wait(
        "the rollback's decision",
        lambda: page.find("#updates-status").text.startswith(f"rolled back {args.package} 1.1 → 1.0: "),
    )
    if status():
        raise Failure(f"the install's answer stays, out of date: {status()!r}")
    focused = page.driver.switch_to.active_element
    if focused != row().find_element(By.CSS_SELECTOR, "button.rollback") or focused.text != "Return to 1.1":
        raise Failure(f"after the rollback, the focus is on {focused.get_attribute('outerHTML')[:80]}")
    page.shot_whole("updates-rolled-back")

    page.check_keyboard_and_labels()
    page.check_nothing_from_elsewhere()
    page.check_console()

    page.driver.set_window_size(*PHONE)
    page.check_no_horizontal_scroll("updates")
    page.shot_whole("updates-phone")
    focused.send_keys(Keys.ENTER)
    page.wait("the rollback question on a phone", lambda: row().find_element(By.CSS_SELECTOR, ".confirm").is_displayed())
    page.check_no_horizontal_scroll("updates")
    page.shot("updates-phone-question")
    page.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
    page.driver.set_window_size(*DESKTOP)
    page.driver.execute_cdp_cmd(
        "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
    )
    page.shot("updates-dark")


def scenario_browse(page, args):
    """Browse a peer from the Peers view and download one of its files; browse a
    search result's source; a hostile servent's endless answer is refused."""
    page.driver.get(args.url)
    page.wait("the page to load", lambda: page.js("return document.readyState") == "complete")
    page.view("peers")

    def peer_browse_button():
        for row in page.driver.find_elements(By.CSS_SELECTOR, "#peers tbody tr"):
            if row.find_element(By.CSS_SELECTOR, "td.addr").text == args.peer:
                button = row.find_element(By.CSS_SELECTOR, "button.browse")
                return button.is_displayed() and button
        return None

    browse = page.wait(f"a Browse button on peer {args.peer}", peer_browse_button)
    page.tab_to("the peer's Browse button", browse, page.find('nav a[data-view="peers"]'))
    page.shot("peers-browse")
    browse.click()
    page.wait("the browse view", lambda: page.find("#view-browse").is_displayed())
    shares = f"{args.peer} shares {args.files} files"
    page.wait(f"“{shares}”", lambda: shares in page.find("#browse-status").text)
    if page.find("#browse-addr").get_attribute("value") != args.peer:
        raise Failure("the address box does not say which servent is browsed")
    row = page.wait_row("browse-results", args.name)
    verdict, reason = page.wait(f"a verdict badge on {args.name}", lambda: verdict_of(page.row("browse-results", args.name)))
    if verdict != "unsigned" or not reason:
        raise Failure(f"{args.name} browsed has verdict {verdict!r} explained by {reason!r}")
    page.shot("browse")

    row.find_element(By.CSS_SELECTOR, "button.download").click()
    question = row.find_element(By.CSS_SELECTOR, ".confirm")
    page.wait("the question before an unverified download", question.is_displayed)
    question.find_element(By.CSS_SELECTOR, "button.confirm-download").click()
    page.wait("the download to start", lambda: "Downloading" in page.find("#browse-status").text)
    page.view("downloads")
    page.wait(f"{args.name} to complete", lambda: page.state_of("downloads", args.name) == "complete")

    page.view("search")
    page.search("SEBLINUX")
    page.wait_row("results", args.name)
    page.click_in_row("results", args.name, "button.browse", "Browse")
    page.wait("the browse view again", lambda: page.find("#view-browse").is_displayed())
    page.wait(f"“{shares}” from the result's source", lambda: shares in page.find("#browse-status").text)
    page.wait_row("browse-results", args.name)

    box = page.find("#browse-addr")
    box.clear()
    box.send_keys(args.hostile, Keys.ENTER)
    status = page.find("#browse-status")
    page.wait(
        "the hostile servent's answer refused",
        lambda: "error" in status.get_attribute("class") and "more than 16 MiB" in status.text,
    )
    if page.find("#browse-results").is_displayed():
        raise Failure("the files of the previous browse are still shown beside the refusal")
    page.shot("browse-refused")
    box.clear()
    box.send_keys(args.peer, Keys.ENTER)
    page.wait(f"“{shares}” after the refusal", lambda: shares in page.find("#browse-status").text)

    page.check_keyboard_and_labels()
    page.check_nothing_from_elsewhere()
    page.check_console()
    page.driver.set_window_size(*PHONE)
    page.view("browse")
    page.check_no_horizontal_scroll("browse")
    page.shot("browse-phone")


SCENARIOS = {
    "download": scenario_download,
    "verdicts": scenario_verdicts,
    "updates": scenario_updates,
    "browse": scenario_browse,
}


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
    parser.add_argument("--package")
    parser.add_argument("--gate")
    parser.add_argument("--next")
    parser.add_argument("--share")
    parser.add_argument("--publisher-api")
    parser.add_argument("--peer")
    parser.add_argument("--files")
    parser.add_argument("--hostile")
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
