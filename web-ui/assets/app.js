// The servent's page. Every view reads the JSON API under /api/ (the
// same one the command line uses) and nothing else.
//
// File names, reasons and user agents come from the network: they are
// only ever set as text (textContent, title), never parsed as HTML.
// Tables are updated row by row in place, so a focused button keeps its
// focus while the data under it refreshes every second.
"use strict";

/** Where the API token is kept for this tab, once given. */
const TOKEN_KEY = "servent-api-token";
/** The clock of every refresh. */
const TICK_MS = 1000;

const VERDICT_MEANING = {
  verified: "Signed by a publisher key you trust; the signed SHA-256 and size match this file.",
  unsigned: "No signature: nothing says who made this file.",
  untrusted: "Validly signed, but by a key you do not trust.",
  fake: "Its signature fails or belongs to other content: it is not what it claims to be.",
};

// ---- The API -------------------------------------------------------------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** A `?token=` in the address goes to this tab's storage and leaves the address. */
function takeTokenFromAddress() {
  const url = new URL(location.href);
  const token = url.searchParams.get("token");
  if (token === null) return;
  sessionStorage.setItem(TOKEN_KEY, token);
  url.searchParams.delete("token");
  history.replaceState(null, "", url.pathname + url.search + url.hash);
}

/**
 * Calls the API: GET to read, POST with a JSON body to change something
 * (the only kind of change the servent accepts). Resolves to the JSON
 * answer; rejects with an ApiError carrying the servent's one-line reason.
 */
async function api(method, path, body) {
  if (!path.startsWith("/api/")) throw new Error(`not an API path: ${path}`);
  const headers = { Accept: "application/json" };
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const init = { method, headers, cache: "no-store" };
  if (method === "POST") {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body ?? {});
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch {
    showConnection(false);
    throw new ApiError(0, "no answer from the servent");
  }
  showConnection(true);
  const data = await response.json().catch(() => null);
  if (response.status === 401) askForToken();
  if (!response.ok) {
    throw new ApiError(response.status, (data && data.error) || `the servent answered ${response.status}`);
  }
  return data;
}

function showConnection(ok) {
  const banner = byId("connection");
  banner.hidden = ok;
  if (!ok) banner.textContent = `No answer from the servent at ${location.host}: is “servent run” still running?`;
}

function askForToken() {
  const form = byId("token-form");
  if (!form.hidden) return;
  form.hidden = false;
  byId("token").focus();
}

// ---- Small helpers -------------------------------------------------------

function byId(id) {
  return document.getElementById(id);
}

function element(tag, attributes = {}, text) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) node.setAttribute(name, value);
  if (text !== undefined) node.textContent = text;
  return node;
}

function button(label, className, onClick) {
  const node = element("button", { type: "button", class: className }, label);
  node.addEventListener("click", onClick);
  return node;
}

/** Sizes for people, as the command line writes them: 1.5 MiB. */
function humanSize(bytes) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let size = Number(bytes) || 0;
  let unit = 0;
  while (size >= 1024 && unit < units.length - 1) {
    size /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${size} B` : `${size.toFixed(1)} ${units[unit]}`;
}

function humanDuration(secs) {
  if (secs < 60) return `${secs} s`;
  if (secs < 3600) return `${Math.floor(secs / 60)} min`;
  if (secs < 86400) return `${Math.floor(secs / 3600)} h ${Math.floor((secs % 3600) / 60)} min`;
  return `${Math.floor(secs / 86400)} d ${Math.floor((secs % 86400) / 3600)} h`;
}

/** Sets a node's text only when it changes: fewer mutations for assistive technology to announce. */
function setText(node, text) {
  if (node.textContent !== text) node.textContent = text;
}

function orDash(value) {
  return value === null || value === undefined || value === "" ? "—" : String(value);
}

function plural(count, one, many) {
  return `${count} ${count === 1 ? one : many}`;
}

/** How long the outcome of something the user did stays in a status line. */
const REPORT_MS = 8000;

/**
 * Says in a status line how something the user did went (an error is
 * marked as such); it stays there `ms`, over the refreshes.
 */
function report(line, text, error = false, ms = REPORT_MS) {
  const status = byId(`${line}-status`);
  status.textContent = text;
  status.classList.toggle("error", error);
  status.dataset.until = String(Date.now() + ms);
}

/** Describes what a view shows, unless a fresh report is in the way. */
function describe(view, text) {
  const status = byId(`${view}-status`);
  if (Number(status.dataset.until || 0) > Date.now()) return;
  setText(status, text);
  status.classList.remove("error");
}

/**
 * Makes `tbody` show one row per item, in order: rows are found by key,
 * created when new, updated in place, removed when gone.
 */
function syncRows(tbody, items, keyOf, create, update) {
  const existing = new Map();
  for (const row of tbody.rows) existing.set(row.dataset.key, row);
  const seen = new Set();
  let previous = null;
  for (const item of items) {
    const key = keyOf(item);
    if (seen.has(key)) continue;
    seen.add(key);
    let row = existing.get(key);
    if (!row) {
      row = create(item);
      row.dataset.key = key;
    }
    update(row, item);
    const wanted = previous ? previous.nextSibling : tbody.firstChild;
    if (row !== wanted) tbody.insertBefore(row, wanted);
    previous = row;
  }
  for (const [key, row] of existing) if (!seen.has(key)) row.remove();
}

/** A row whose cells carry the column name, for the narrow layout. */
function rowWithCells(labels) {
  const row = element("tr");
  for (const [name, label] of labels) row.append(element("td", { class: name, "data-label": label }));
  return row;
}

function cellOf(row, name) {
  return row.querySelector(`td.${name}`);
}

/**
 * A verdict badge whose title says why; it can take focus to show it, so
 * it is changed in place, never replaced while it stays.
 */
function setVerdict(cell, verdict, reason) {
  let badge = cell.querySelector(".badge");
  if (!verdict) {
    if (badge || cell.textContent !== "—") cell.textContent = "—";
    return;
  }
  if (!badge) {
    badge = element("span", { tabindex: "0" });
    cell.replaceChildren(badge);
  }
  const why = reason || VERDICT_MEANING[verdict] || "";
  badge.className = `badge verdict-${verdict}`;
  setText(badge, verdict);
  badge.title = why;
  badge.dataset.reason = why;
}

function setPublisher(cell, publisher) {
  setText(cell, orDash(publisher));
  cell.classList.toggle("mono", Boolean(publisher));
}

// ---- Search ----------------------------------------------------------------

/** The search shown: its id and words. */
let search = null;

function resultKey(result) {
  return result.sha256 || result.sha1 || `${result.name}/${result.size}`;
}

function createResultRow() {
  return rowWithCells([
    ["name", "Name"],
    ["size num", "Size"],
    ["sources num", "Sources"],
    ["version", "Version"],
    ["publisher", "Publisher"],
    ["verdict", "Verdict"],
    ["action", ""],
  ]);
}

/** A result's row; its download reports in status line `line`. */
function updateResultRow(row, result, line) {
  const fake = result.verdict === "fake";
  row.classList.toggle("fake", fake);
  const name = cellOf(row, "name");
  let label = name.firstElementChild;
  if (!label || (label.tagName === "S") !== fake) {
    label = element(fake ? "s" : "span");
    name.replaceChildren(label);
    if (fake) name.append(element("span", { class: "visually-hidden" }, " (fake)"));
  }
  setText(label, result.name);
  const size = cellOf(row, "size");
  setText(size, humanSize(result.size));
  size.title = `${result.size} bytes`;
  const sources = result.sources || [];
  const sourcesCell = cellOf(row, "sources");
  setText(sourcesCell, String(sources.length));
  sourcesCell.title = sources.join("\n");
  setText(cellOf(row, "version"), orDash(result.version));
  setPublisher(cellOf(row, "publisher"), result.publisher);
  setVerdict(cellOf(row, "verdict"), result.verdict, result.reason);
  row.dataset.verdict = result.verdict || "";
  const action = cellOf(row, "action");
  const target = result.sha256 || result.sha1;
  const existing = action.querySelector("button.download");
  if (fake || !target) {
    if (existing) existing.remove();
    action.querySelector(".confirm")?.remove();
  } else if (!existing) {
    const download = button("Download", "download", () => askDownload(row, download, target, result.name, line));
    download.setAttribute("aria-label", `Download ${result.name}`);
    const confirm = element("div", { class: "confirm", role: "group", hidden: "" });
    confirm.append(
      element("span", { class: "question" }),
      button("Download anyway", "confirm-download", () => {
        closeDownloadQuestion(row, false);
        startDownload(download, target, result.name, line);
      }),
      button("Cancel", "cancel", () => closeDownloadQuestion(row, true)),
    );
    confirm.setAttribute("aria-label", `Download ${result.name} although it is not verified?`);
    confirm.addEventListener("keydown", (event) => {
      if (event.key !== "Escape") return;
      event.preventDefault();
      closeDownloadQuestion(row, true);
    });
    action.prepend(download, confirm);
  }
}

/**
 * A search result's row: with a button to browse the source the servent
 * offers (`browse`: one it would dial, never a LAN address a stranger's
 * hit named), unless it is a fake.
 */
function updateSearchRow(row, result) {
  updateResultRow(row, result, "search");
  const source = result.verdict === "fake" ? null : result.browse;
  setBrowseButton(cellOf(row, "action"), source, source ? `Browse ${source}, a source of ${result.name}` : "");
}

/**
 * Downloads a verified result at once; for any other, asks first, once,
 * saying why it is not verified.
 */
function askDownload(row, control, target, name, line) {
  const verdict = row.dataset.verdict;
  if (verdict === "verified") {
    startDownload(control, target, name, line);
    return;
  }
  const confirm = row.querySelector(".confirm");
  const why = VERDICT_MEANING[verdict] || "It has no verdict yet.";
  setText(confirm.querySelector(".question"), `${name} is ${verdict || "not judged"}, not verified: ${why} Download it anyway?`);
  control.hidden = true;
  confirm.hidden = false;
  confirm.querySelector(".confirm-download").focus();
}

/** Closes the question; with `focus`, focus goes back to the Download button. */
function closeDownloadQuestion(row, focus) {
  row.querySelector(".confirm").hidden = true;
  const download = row.querySelector("button.download");
  download.hidden = false;
  if (focus) download.focus();
}

async function startDownload(control, target, name, line) {
  control.disabled = true;
  control.textContent = "Starting…";
  try {
    const started = await api("POST", "/api/downloads", { target });
    control.textContent = "Downloading";
    report(line, `Downloading ${name} (download ${started.id}): see Downloads.`);
    refreshDownloads();
  } catch (e) {
    control.disabled = false;
    control.textContent = "Download";
    report(line, `Cannot download ${name}: ${e.message}`, true);
  }
}

/** Whether the user chose "Verified only" themselves: then it stays as they set it. */
let verifiedOnlyChosen = false;

/** "Verified only" is on by default whenever a key is pinned, off when none is. */
function defaultVerifiedOnly(pinned) {
  if (verifiedOnlyChosen) return;
  const box = byId("verified-only");
  if (box.checked === pinned > 0) return;
  box.checked = pinned > 0;
  applyVerifiedFilter();
}

/** Reads how many keys are pinned, for the default of "Verified only". */
async function learnPinnedKeys() {
  try {
    const keys = await api("GET", "/api/trust");
    defaultVerifiedOnly(Array.isArray(keys) ? keys.length : 0);
  } catch {
    // Without a trust store there is nothing to default to.
  }
}

async function submitSearch(event) {
  event.preventDefault();
  const query = byId("q").value.trim();
  if (!query) return;
  await learnPinnedKeys();
  delete byId("search-status").dataset.until;
  describe("search", `Searching for “${query}”…`);
  try {
    const started = await api("POST", "/api/searches", { query });
    search = { id: started.id, query, hits: 0 };
    byId("results").tBodies[0].replaceChildren();
    await refreshSearch();
  } catch (e) {
    report("search", `Cannot search: ${e.message}`, true);
  }
}

async function refreshSearch() {
  if (!search) return;
  const wanted = search;
  let snapshot;
  try {
    snapshot = await api("GET", `/api/searches/${encodeURIComponent(wanted.id)}`);
  } catch (e) {
    if (e.status === 404) {
      search = null;
      report("search", "That search is no longer kept: search again.", true);
      return;
    }
    throw e;
  }
  if (search !== wanted) return;
  const results = sortedResults(snapshot.results || []);
  search.hits = snapshot.hits_received || 0;
  syncRows(byId("results").tBodies[0], results, resultKey, createResultRow, updateSearchRow);
  applyVerifiedFilter();
}

/** How far down a verdict puts a result, as on the command line: verified first, fakes last. */
const VERDICT_RANK = { verified: 0, unsigned: 1, untrusted: 2, fake: 4 };

/** Results by verdict, then by sources (most first); the servent's order otherwise. */
function sortedResults(results) {
  const rank = (r) => VERDICT_RANK[r.verdict] ?? 3;
  const sources = (r) => (r.sources || []).length;
  return results
    .map((result, index) => ({ result, index }))
    .sort((a, b) => rank(a.result) - rank(b.result) || sources(b.result) - sources(a.result) || a.index - b.index)
    .map(({ result }) => result);
}

/** Hides the results that are not verified, when asked to. */
function applyVerifiedFilter() {
  const table = byId("results");
  const total = table.tBodies[0].rows.length;
  const verifiedOnly = byId("verified-only").checked;
  let shown = 0;
  for (const row of table.tBodies[0].rows) {
    const verified = row.querySelector(".verdict-verified") !== null;
    row.hidden = verifiedOnly && !verified;
    if (!row.hidden) shown += 1;
  }
  table.hidden = shown === 0;
  if (!search) return;
  const words = `“${search.query}”`;
  if (total === 0) {
    describe("search", `No results yet for ${words}; still listening.`);
    return;
  }
  let text = `${plural(shown, "result", "results")} for ${words}`;
  if (shown < total) text += ` (${total - shown} not verified, hidden)`;
  describe("search", `${text}, from ${plural(search.hits, "answer", "answers")}.`);
}

// ---- Browse ----------------------------------------------------------------

/** An address the servent can browse: IPv4 and port, nothing else. */
const BROWSABLE = /^\d{1,3}(\.\d{1,3}){3}:\d{1,5}$/;

/** The browse under way or shown: its address. */
let browsing = null;

/**
 * A Browse button in `cell` for the servent at `addr` (none without one),
 * changed in place so that it keeps its focus.
 */
function setBrowseButton(cell, addr, label) {
  let control = cell.querySelector("button.browse");
  if (!addr) {
    if (control) control.remove();
    return;
  }
  if (!control) {
    control = button("Browse", "browse secondary", () => browseHost(control.dataset.addr));
    cell.append(control);
  }
  control.dataset.addr = addr;
  control.title = label;
  control.setAttribute("aria-label", label);
}

/** Goes to the Browse view and lists the files of the servent at `addr`. */
function browseHost(addr) {
  byId("browse-addr").value = addr;
  if (current !== "browse") location.hash = "browse";
  runBrowse(addr);
}

function submitBrowse(event) {
  event.preventDefault();
  runBrowse(byId("browse-addr").value.trim());
}

function updateBrowsedRow(row, result) {
  updateResultRow(row, result, "browse");
}

/**
 * Asks the servent to browse `addr` (it gives up within a minute) and
 * shows the files with their verdicts; an answer to an earlier browse is
 * ignored.
 */
async function runBrowse(addr) {
  if (!BROWSABLE.test(addr)) {
    report("browse", `“${addr}” is not an address to browse: give it as IP:PORT, e.g. 192.0.2.1:6346.`, true);
    return;
  }
  const wanted = { addr };
  browsing = wanted;
  const table = byId("browse-results");
  table.tBodies[0].replaceChildren();
  table.hidden = true;
  report("browse", `Browsing ${addr}: asking it for the files it shares…`, false, Infinity);
  try {
    const results = await api("POST", "/api/browse", { addr });
    if (browsing !== wanted) return;
    const files = Array.isArray(results) ? results : [];
    syncRows(table.tBodies[0], sortedResults(files), resultKey, createResultRow, updateBrowsedRow);
    table.hidden = files.length === 0;
    report("browse", files.length ? `${addr} shares ${plural(files.length, "file", "files")}.` : `${addr} shares no files.`, false, Infinity);
  } catch (e) {
    if (browsing === wanted) report("browse", `Cannot browse ${addr}: ${e.message}`, true, Infinity);
  }
}

// ---- Downloads -------------------------------------------------------------

const ACTIVE_STATES = new Set(["queued", "downloading", "stalled", "verifying", "paused"]);

function createDownloadRow(download) {
  const row = rowWithCells([
    ["name", "Name"],
    ["progress", "Progress"],
    ["rate num", "Rate"],
    ["sources num", "Sources"],
    ["state", "State"],
    ["actions", ""],
  ]);
  cellOf(row, "name").append(element("span", { class: "label" }), element("span", { class: "path", hidden: "" }));
  const bar = element("progress", { "aria-label": `Progress of ${download.name}` });
  cellOf(row, "progress").append(bar, element("span", { class: "amount" }));
  cellOf(row, "state").append(
    element("span", { class: "badge" }),
    element("span", { class: "outcome", hidden: "" }),
    element("span", { class: "reason", hidden: "" }),
  );
  const actions = cellOf(row, "actions");
  const toggle = button("Pause", "pause", () => pauseOrResume(download.id, toggle));
  const cancel = button("Cancel", "cancel", () => cancelDownload(download.id, cancel));
  actions.append(toggle, cancel);
  return row;
}

function updateDownloadRow(row, download) {
  const state = download.state;
  row.dataset.state = state;
  setText(row.querySelector(".label"), download.name);
  const path = row.querySelector(".path");
  setText(path, download.path || "");
  path.hidden = !download.path;
  const size = Number(download.size) || 0;
  const received = Math.min(size, (download.bytes_done || 0) + (download.bytes_in_flight || 0));
  const bar = row.querySelector("progress");
  bar.max = size || 1;
  bar.value = size ? received : state === "complete" ? 1 : 0;
  const percent = size ? Math.floor((100 * received) / size) : state === "complete" ? 100 : 0;
  setText(row.querySelector(".amount"), `${percent} % · ${humanSize(received)} of ${humanSize(size)}`);
  setText(cellOf(row, "rate"), state === "downloading" ? `${humanSize(download.rate_bytes_per_sec)}/s` : "—");
  const sources = download.sources || [];
  const busy = sources.filter((s) => s.state === "downloading").length;
  const sourcesCell = cellOf(row, "sources");
  // While it runs: in use / known.
  setText(sourcesCell, state === "downloading" ? `${busy} / ${sources.length}` : String(sources.length));
  sourcesCell.title = sources.map((s) => `${s.addr}: ${s.state}${s.note ? ` (${s.note})` : ""}`).join("\n");
  const badge = cellOf(row, "state").querySelector(".badge");
  // A finished file says what its bytes are: a verified one and an unsigned one never look alike.
  const verdict = download.verdict || "";
  const unverified = state === "complete" && verdict !== "verified";
  badge.className = unverified ? `badge verdict-${verdict || "unsigned"}` : `badge state-${state}`;
  setText(badge, state);
  row.dataset.verdict = verdict;
  const outcome = row.querySelector(".outcome");
  outcome.hidden = !verdict;
  outcome.className = `outcome badge verdict-${verdict}`;
  outcome.title = VERDICT_MEANING[verdict] || "";
  setText(outcome, verdict);
  const reason = row.querySelector(".reason");
  setText(reason, download.reason || "");
  reason.hidden = !download.reason;
  const toggle = row.querySelector("button.pause");
  const resumable = state === "paused";
  setText(toggle, resumable ? "Resume" : "Pause");
  toggle.setAttribute("aria-label", `${resumable ? "Resume" : "Pause"} ${download.name}`);
  row.querySelector("button.cancel").setAttribute("aria-label", `Cancel ${download.name}`);
  const active = ACTIVE_STATES.has(state);
  for (const control of row.querySelectorAll("button")) {
    control.hidden = !active;
    if (!control.dataset.busy) control.disabled = state === "verifying";
  }
}

async function downloadAction(id, control, action) {
  control.dataset.busy = "1";
  control.disabled = true;
  try {
    await api("POST", `/api/downloads/${encodeURIComponent(id)}/${action}`, {});
  } catch (e) {
    report("downloads", `Cannot ${action} download ${id}: ${e.message}`, true);
  } finally {
    delete control.dataset.busy;
    control.disabled = false;
  }
  await refreshDownloads();
}

function pauseOrResume(id, control) {
  return downloadAction(id, control, control.textContent === "Resume" ? "resume" : "pause");
}

function cancelDownload(id, control) {
  return downloadAction(id, control, "cancel");
}

/** A cap in bytes per second as people read it; 0 is no cap. */
function humanRate(rate) {
  return rate ? `${humanSize(rate)}/s` : "unlimited";
}

async function refreshDownloads() {
  const [downloads, rates] = await Promise.all([api("GET", "/api/downloads"), api("GET", "/api/rates")]);
  setText(byId("rates"), `Uploads capped at ${humanRate(rates.max_upload_rate)}, downloads at ${humanRate(rates.max_download_rate)}.`);
  const table = byId("downloads");
  syncRows(table.tBodies[0], downloads, (d) => String(d.id), createDownloadRow, updateDownloadRow);
  table.hidden = downloads.length === 0;
  const active = downloads.filter((d) => ACTIVE_STATES.has(d.state)).length;
  setText(byId("downloads-count"), active ? `(${active})` : "");
  describe(
    "downloads",
    active ? `${plural(active, "download", "downloads")} under way.` : downloads.length ? "Nothing under way." : "No downloads yet: start one from a search.",
  );
}

// ---- Library ---------------------------------------------------------------

function createLibraryRow() {
  return rowWithCells([
    ["name", "Name"],
    ["size num", "Size"],
    ["version", "Version"],
    ["publisher", "Publisher"],
    ["verdict", "Verdict"],
  ]);
}

function updateLibraryRow(row, file) {
  const name = cellOf(row, "name");
  setText(name, file.name);
  name.title = file.path || "";
  const size = cellOf(row, "size");
  setText(size, humanSize(file.size));
  size.title = `${file.size} bytes`;
  setText(cellOf(row, "version"), orDash(file.version));
  setPublisher(cellOf(row, "publisher"), file.publisher);
  setVerdict(cellOf(row, "verdict"), file.verdict, file.reason);
}

async function refreshLibrary() {
  const files = await api("GET", "/api/library");
  const table = byId("library");
  const key = (f) => f.sha256 || f.sha1 || f.path || f.name;
  syncRows(table.tBodies[0], files, key, createLibraryRow, updateLibraryRow);
  table.hidden = files.length === 0;
  const bytes = files.reduce((sum, f) => sum + (Number(f.size) || 0), 0);
  describe("library", files.length ? `Sharing ${plural(files.length, "file", "files")}, ${humanSize(bytes)}.` : "Nothing shared yet.");
}

// ---- Trust store -----------------------------------------------------------

function createKeyRow(entry) {
  const row = rowWithCells([
    ["key-id mono", "Key id"],
    ["key mono", "Key"],
    ["scope", "Scope"],
    ["action", ""],
  ]);
  const remove = button("Remove", "remove", () => removeKey(entry.key_id, remove));
  remove.setAttribute("aria-label", `Stop trusting key ${entry.key_id}`);
  cellOf(row, "action").append(remove);
  return row;
}

function updateKeyRow(row, entry) {
  setText(cellOf(row, "key-id"), entry.key_id);
  setText(cellOf(row, "key"), orDash(entry.key));
  setText(cellOf(row, "scope"), (entry.scope || []).join(", ") || "any name not in another key’s scope");
}

function setTrustAvailable(available) {
  for (const control of byId("trust-form").elements) control.disabled = !available;
}

async function refreshTrust() {
  let answer;
  try {
    answer = await api("GET", "/api/trust");
  } catch (e) {
    if (e.status === 404) {
      setTrustAvailable(false);
      byId("trust").hidden = true;
      describe("trust", "This servent has no trust store to show yet (GET /api/trust is not there).");
      return;
    }
    throw e;
  }
  setTrustAvailable(true);
  const keys = Array.isArray(answer) ? answer : answer.keys || [];
  const table = byId("trust");
  syncRows(table.tBodies[0], keys, (k) => k.key_id, createKeyRow, updateKeyRow);
  table.hidden = keys.length === 0;
  defaultVerifiedOnly(keys.length);
  describe("trust", keys.length ? `${plural(keys.length, "key", "keys")} trusted.` : "No key trusted: every signed release is “untrusted”.");
}

async function submitKey(event) {
  event.preventDefault();
  const key = byId("trust-key").value.trim();
  const scope = byId("trust-scope").value.split(",").map((s) => s.trim()).filter(Boolean);
  if (!key) return;
  report("trust", "Adding the key…");
  try {
    const added = await api("POST", "/api/trust", { key, scope });
    byId("trust-key").value = "";
    report("trust", `Trusting key ${(added && added.key_id) || key}.`);
  } catch (e) {
    report("trust", `Cannot trust that key: ${e.message}`, true);
  }
  await refreshTrust();
}

async function removeKey(keyId, control) {
  control.disabled = true;
  try {
    await api("POST", "/api/trust/remove", { key_id: keyId });
    report("trust", `Key ${keyId} is no longer trusted.`);
  } catch (e) {
    control.disabled = false;
    report("trust", `Cannot remove key ${keyId}: ${e.message}`, true);
  }
  await refreshTrust();
}

// ---- Peers -----------------------------------------------------------------

function dropped(counters) {
  return Object.values((counters && counters.dropped) || {}).reduce((sum, n) => sum + (Number(n) || 0), 0);
}

function createPeerRow() {
  return rowWithCells([
    ["addr mono", "Address"],
    ["agent", "User agent"],
    ["direction", "Direction"],
    ["role", "Role"],
    ["vendor", "Vendor messages"],
    ["in num", "Messages in"],
    ["out num", "Messages out"],
    ["dropped num", "Dropped"],
    ["since num", "Connected"],
    ["action", ""],
  ]);
}

function updatePeerRow(row, peer) {
  setText(cellOf(row, "addr"), peer.addr);
  setText(cellOf(row, "agent"), orDash(peer.user_agent));
  setText(cellOf(row, "direction"), peer.direction);
  setText(cellOf(row, "role"), peer.qrp ? `${peer.role}, QRP` : orDash(peer.role));
  // What it announced in its Messages Supported (BEAR/11v1: Query Status…).
  const vendor = peer.vendor_messages || [];
  setText(cellOf(row, "vendor"), orDash(vendor.join(", ")));
  setText(cellOf(row, "in"), String((peer.counters && peer.counters.received) || 0));
  setText(cellOf(row, "out"), String(peer.messages_out || 0));
  setText(cellOf(row, "dropped"), String(dropped(peer.counters) + (peer.queue_dropped || 0)));
  setText(cellOf(row, "since"), humanDuration(peer.connected_secs || 0));
  // An incoming peer is browsed where it listens, never at its outgoing port.
  const listens = peer.listen || (peer.direction === "outgoing" ? peer.addr : null);
  setBrowseButton(cellOf(row, "action"), listens, `Browse ${listens}: the files it shares`);
}

async function refreshPeers() {
  const [status, peers] = await Promise.all([api("GET", "/api/status"), api("GET", "/api/peers")]);
  const summary = byId("summary");
  const facts = [
    ["Listening on", status.listen],
    ["Advertised as", status.advertised],
    ["Peers", status.peers],
    ["Host cache", plural(status.host_cache, "address", "addresses")],
    ["Sharing", `${plural(status.files, "file", "files")}, ${humanSize(status.bytes)}`],
    ["Dropped", dropped(status.totals)],
  ];
  summary.replaceChildren(
    ...facts.map(([term, value]) => {
      const item = element("div");
      item.append(element("dt", {}, term), element("dd", {}, orDash(value)));
      return item;
    }),
  );
  const table = byId("peers");
  syncRows(table.tBodies[0], peers, (p) => p.addr, createPeerRow, updatePeerRow);
  table.hidden = peers.length === 0;
  describe("peers", peers.length ? `${plural(peers.length, "peer", "peers")} connected.` : "No peer connected.");
}

// ---- Updates ---------------------------------------------------------------

/** Whether this servent has the updater's API (GET /api/updates answers 200). */
let updatesAvailable = false;
/** How often, in ticks, the page looks again whether the updater is there. */
const UPDATES_PROBE_TICKS = 30;
/** What this page's own updater request (a pass, an install, a rollback) is doing, while it runs. */
let updaterBusy = null;
/** A newest release signed longer ago than this is flagged: the network may be hiding newer ones. */
const STALE_SECS = 30 * 86400;

const ACTION_WORDS = {
  installed: "installed",
  would_install: "would install",
  up_to_date: "up to date",
  refused: "refused",
  key_changed: "key changed",
  failed: "failed",
  rolled_back: "rolled back",
  rolled_forward: "rolled forward",
  uninstalled: "uninstalled",
  not_found: "not found",
};

const FREEZE_MEANING =
  "The newest release this servent hears of was signed over 30 days ago. If the publisher releases more often, " +
  "the network (or someone on it) may be hiding newer releases from you: a freeze attack. " +
  "Compare with what the publisher announces elsewhere.";

async function probeUpdates() {
  try {
    const answer = await api("GET", "/api/updates");
    updatesAvailable = true;
    byId("updates-tab").hidden = false;
    return answer;
  } catch (e) {
    // Only a servent without an updater hides the view; a lost answer is the banner's business.
    if (e.status !== 404) throw e;
    updatesAvailable = false;
    byId("updates-tab").hidden = true;
    if (current === "updates") show("search");
    return null;
  }
}

function unixNow() {
  return Date.now() / 1000;
}

/** How long ago, for people: "just now", "5 minutes ago", "3 days ago". */
function ago(secs) {
  const s = Math.max(0, Math.floor(secs));
  if (s < 60) return "just now";
  const [count, unit] =
    s < 3600
      ? [Math.floor(s / 60), "minute"]
      : s < 2 * 86400
        ? [Math.floor(s / 3600), "hour"]
        : s < 730 * 86400
          ? [Math.floor(s / 86400), "day"]
          : [Math.floor(s / (365.25 * 86400)), "year"];
  return `${plural(count, unit, `${unit}s`)} ago`;
}

/** A Unix time as the reader's locale writes a date and time. */
function dateOf(unix) {
  return new Date(unix * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/**
 * How old a decision's newest release is now: the age the servent measured
 * when it decided, plus the time since its pass ended (both the servent's
 * figures, so a wrong clock in the browser shifts only the second part).
 */
function newestAge(decision, passAt) {
  if (decision.newest_age_secs === null || decision.newest_age_secs === undefined) return null;
  return decision.newest_age_secs + Math.max(0, unixNow() - passAt);
}

/** "1.0 → 1.1", "none → 1.0", or the version that stays. */
function changeOf(decision) {
  if (decision.to) return `${decision.from || "none"} → ${decision.to}`;
  return orDash(decision.from);
}

/** What happened, in words: a badge's. */
function actionWords(decision) {
  // Nothing installed and nothing found is no "up to date".
  if (decision.action === "up_to_date" && !decision.from) return "nothing to install";
  return ACTION_WORDS[decision.action] || decision.action;
}

/** A decision of the updater in a sentence, after its badge: what changes, why, and the newest release seen. */
function decisionText(decision) {
  const change = changeOf(decision);
  let text = `${decision.name}${change === "—" ? "" : ` ${change}`}`;
  text += decision.reason ? `: ${decision.reason}.` : ".";
  const age = newestAge(decision, unixNow());
  if (decision.newest_seen) {
    text += ` Newest verified release seen: ${decision.newest_seen}`;
    if (age !== null) text += `, signed ${ago(age)}`;
    if (age !== null && age > STALE_SECS) text += " (old: the network may be hiding newer releases)";
    text += ".";
  }
  return text;
}

function setActionBadge(badge, decision) {
  badge.className = `badge action-${decision.action}`;
  setText(badge, actionWords(decision));
}

/** Shows a decision in a status line: its badge, then the sentence. */
function showDecision(line, decision) {
  const status = byId(`${line}-status`);
  const badge = element("span");
  setActionBadge(badge, decision);
  status.replaceChildren(badge, " ", decisionText(decision));
  status.classList.toggle("error", decision.action === "failed");
  status.dataset.until = String(Date.now() + REPORT_MS);
}

/** The status lines that answer the updater's requests: passes and rollbacks, installs. */
const UPDATER_LINES = ["updates", "install"];

/** What a refused updater request says: a 409 is another pass under way. */
function updaterRefusal(e, what) {
  if (e.status === 409) {
    return `${what}: another update pass, install or rollback is running on this servent; try again when it is over.`;
  }
  return `${what}: ${e.message}`;
}

/**
 * Sends one of the updater's requests, the page busy until it answers:
 * `busy` stays in status line `line`, and the updater's buttons answer
 * nothing meanwhile (they stay focusable, so focus is not lost).
 */
async function updaterRequest(line, busy, path, body) {
  updaterBusy = busy;
  // The answer to an earlier request is out of date from now on.
  for (const other of UPDATER_LINES.filter((l) => l !== line)) {
    byId(`${other}-status`).replaceChildren();
    delete byId(`${other}-status`).dataset.until;
  }
  report(line, busy, false, Infinity);
  showBusy(true);
  try {
    return await api("POST", path, body);
  } finally {
    updaterBusy = null;
    showBusy(false);
    refresh();
  }
}

/** The busy state: ours (buttons inert) or the servent's (a pass someone else started). */
function showBusy(running) {
  const ours = updaterBusy !== null;
  byId("updates-progress").hidden = !(ours || running);
  for (const control of byId("view-updates").querySelectorAll("button")) {
    if (ours) control.setAttribute("aria-disabled", "true");
    else control.removeAttribute("aria-disabled");
  }
  if (ours) return;
  describe(
    "updates",
    running ? "An update pass is running on the servent (started by its schedule, the command line or another page)." : "",
  );
}

function createInstalledRow() {
  const row = rowWithCells([
    ["name", "Name"],
    ["version", "Version"],
    ["publisher", "Publisher"],
    ["signed", "Signed"],
    ["previous", "Previous"],
    ["held", "Held back"],
    ["action", ""],
  ]);
  const signed = element("div");
  signed.append(element("span", { class: "when" }), element("span", { class: "reason ago" }));
  cellOf(row, "signed").append(signed);
  const start = button("Roll back", "rollback secondary", () => askRollback(row));
  const confirm = element("div", { class: "confirm", role: "group", hidden: "" });
  const question = element("span", { class: "question" });
  confirm.append(
    question,
    button("Roll back", "confirm-rollback", () => rollback(row)),
    button("Cancel", "cancel", () => closeRollback(row, true)),
  );
  confirm.addEventListener("keydown", (event) => {
    if (event.key !== "Escape") return;
    event.preventDefault();
    closeRollback(row, true);
  });
  cellOf(row, "action").append(start, confirm);
  return row;
}

function updateInstalledRow(row, item) {
  const { current, previous } = item;
  const name = cellOf(row, "name");
  setText(name, current.name);
  name.title = current.file || "";
  setText(cellOf(row, "version"), current.version);
  setPublisher(cellOf(row, "publisher"), current.key_id);
  setText(row.querySelector(".when"), dateOf(current.timestamp));
  setText(row.querySelector(".ago"), ago(unixNow() - current.timestamp));
  setText(cellOf(row, "previous"), previous ? previous.version : "—");
  setText(cellOf(row, "held"), (item.held_back || []).join(", ") || "—");
  // What a rollback would do now; an open question about other versions is withdrawn.
  const swap = previous ? `${current.version}>${previous.version}` : "";
  row.dataset.swap = swap;
  const confirm = row.querySelector(".confirm");
  if (!confirm.hidden && confirm.dataset.swap !== swap) closeRollback(row, confirm.contains(document.activeElement));
  const start = row.querySelector("button.rollback");
  start.hidden = !previous || !confirm.hidden;
  if (!previous) return;
  // After a rollback, the previous version is the one rolled back from.
  const back = `${(item.held_back || []).includes(previous.version) ? "Return" : "Roll back"} to ${previous.version}`;
  setText(start, back);
  start.setAttribute("aria-label", `${back}: ${current.name}`);
  setText(
    confirm.querySelector(".question"),
    `Put ${previous.version} back in place of ${current.version}? Update passes then skip ${current.version}.`,
  );
  setText(confirm.querySelector(".confirm-rollback"), back);
  setText(confirm.querySelector(".cancel"), `Keep ${current.version}`);
  confirm.setAttribute("aria-label", `Roll back ${current.name}?`);
}

function askRollback(row) {
  if (updaterBusy !== null) return;
  const confirm = row.querySelector(".confirm");
  confirm.dataset.swap = row.dataset.swap;
  confirm.hidden = false;
  row.querySelector("button.rollback").hidden = true;
  confirm.querySelector(".confirm-rollback").focus();
}

/** Closes the question; with `focus`, focus goes back where the question came from. */
function closeRollback(row, focus) {
  row.querySelector(".confirm").hidden = true;
  const start = row.querySelector("button.rollback");
  start.hidden = !row.dataset.swap;
  if (!focus) return;
  if (!start.hidden) start.focus();
  else byId("installed-title").focus();
}

async function rollback(row) {
  if (updaterBusy !== null) return;
  const name = row.dataset.key;
  const to = row.dataset.swap.split(">")[1];
  try {
    const decision = await updaterRequest("updates", `Rolling ${name} back to ${to}…`, "/api/rollback", { name });
    showDecision("updates", decision);
  } catch (e) {
    report("updates", updaterRefusal(e, `Cannot roll ${name} back`), true);
  }
  closeRollback(row, true);
}

function createPassRow() {
  const row = rowWithCells([
    ["name", "Package"],
    ["outcome", "Action"],
    ["change", "Change"],
    ["newest", "Newest seen"],
    ["why", "Reason"],
  ]);
  cellOf(row, "outcome").append(element("span"));
  const newest = element("div");
  newest.append(element("span", { class: "version" }), element("span", { class: "age" }));
  cellOf(row, "newest").append(newest);
  return row;
}

/**
 * The newest release's age: plain words, or a focusable badge saying what
 * an old one may mean. Changed in place, so it keeps its focus.
 */
function setAge(node, age) {
  const stale = age !== null && age > STALE_SECS;
  node.className = stale ? "badge age age-stale" : "age";
  setText(node, age === null ? "" : `signed ${ago(age)}`);
  if (stale) {
    node.tabIndex = 0;
    node.title = FREEZE_MEANING;
    node.dataset.reason = FREEZE_MEANING;
  } else {
    node.removeAttribute("tabindex");
    node.removeAttribute("title");
    delete node.dataset.reason;
  }
}

function updatePassRow(row, decision, passAt) {
  setText(cellOf(row, "name"), decision.name);
  setActionBadge(cellOf(row, "outcome").firstChild, decision);
  setText(cellOf(row, "change"), changeOf(decision));
  setText(row.querySelector(".version"), decision.newest_seen || "none seen");
  setAge(row.querySelector(".age"), newestAge(decision, passAt));
  setText(cellOf(row, "why"), orDash(decision.reason));
}

/** "2 installed, 1 up to date". */
function countActions(decisions) {
  const counts = new Map();
  for (const d of decisions) counts.set(d.action, (counts.get(d.action) || 0) + 1);
  return [...counts].map(([action, n]) => `${n} ${ACTION_WORDS[action] || action}`).join(", ");
}

function showPass(pass) {
  const table = byId("pass");
  const decisions = (pass && pass.decisions) || [];
  table.hidden = decisions.length === 0;
  if (!pass) {
    setText(byId("pass-summary"), "No pass since the servent started.");
    table.tBodies[0].replaceChildren();
    return;
  }
  const kind = pass.dry_run ? "Dry run (nothing changed)" : "Update pass";
  const outcome = decisions.length ? `${countActions(decisions)}.` : "nothing installed, nothing to update.";
  setText(byId("pass-summary"), `${kind}, ${ago(unixNow() - pass.at)} (${dateOf(pass.at)}): ${outcome}`);
  syncRows(table.tBodies[0], decisions, (d) => d.name, createPassRow, (row, d) => updatePassRow(row, d, pass.at));
}

async function refreshUpdates() {
  const status = await probeUpdates();
  if (status === null) return;
  const minutes = status.every_minutes;
  const schedule = minutes ? `Passes every ${plural(minutes, "minute", "minutes")}` : "Passes on request only";
  setText(byId("updates-schedule"), `${schedule}; installs into ${status.install_dir}.`);
  const installed = status.installed || [];
  syncRows(byId("installed").tBodies[0], installed, (p) => p.current.name, createInstalledRow, updateInstalledRow);
  byId("installed").hidden = installed.length === 0;
  byId("installed-empty").hidden = installed.length !== 0;
  showPass(status.last_pass);
  showBusy(status.running);
}

async function runPass(dryRun) {
  if (updaterBusy !== null) return;
  const busy = dryRun
    ? "Checking for updates: searching the network for each installed package…"
    : "Updating: searching the network, then downloading, verifying and installing newer releases…";
  try {
    const pass = await updaterRequest("updates", busy, "/api/updates/run", { dry_run: dryRun });
    showPass(pass);
    const decisions = pass.decisions || [];
    const outcome = decisions.length ? `${countActions(decisions)}.` : "nothing is installed, so nothing to update.";
    report("updates", `${dryRun ? "Checked" : "Updated"}: ${outcome}`, decisions.some((d) => d.action === "failed"));
  } catch (e) {
    report("updates", updaterRefusal(e, dryRun ? "Cannot check for updates" : "Cannot update"), true);
  }
}

async function submitInstall(event) {
  event.preventDefault();
  if (updaterBusy !== null) return;
  const name = byId("install-name").value.trim();
  if (!name) return;
  // Enter in the box is the first button's: Check, which changes nothing.
  const dryRun = !event.submitter || event.submitter.value !== "install";
  const busy = dryRun
    ? `Looking for ${name} on the network…`
    : `Installing ${name}: searching the network, then downloading and verifying…`;
  try {
    showDecision("install", await updaterRequest("install", busy, "/api/install", { name, dry_run: dryRun }));
  } catch (e) {
    report("install", updaterRefusal(e, dryRun ? `Cannot check ${name}` : `Cannot install ${name}`), true);
  }
}

// ---- Views and the clock ---------------------------------------------------

/** Each view: how to refresh it, and every how many ticks. */
const views = {
  search: { refresh: refreshSearch, every: 1 },
  // A browse is asked once, by the user: nothing to refresh.
  browse: { refresh: async () => {}, every: 5 },
  downloads: { refresh: refreshDownloads, every: 1 },
  library: { refresh: refreshLibrary, every: 3 },
  trust: { refresh: refreshTrust, every: 3 },
  peers: { refresh: refreshPeers, every: 2 },
  updates: { refresh: refreshUpdates, every: 2 },
};

let current = "search";
let ticks = 0;
let refreshing = false;
let again = false;

function show(name, focus = false) {
  if (!(name in views) || (name === "updates" && !updatesAvailable)) name = "search";
  current = name;
  for (const view of Object.keys(views)) byId(`view-${view}`).hidden = view !== name;
  for (const link of document.querySelectorAll("nav a")) {
    if (link.dataset.view === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const title = byId(`${name}-title`);
  document.title = `${title.textContent} · Seblinux servent`;
  if (focus) title.focus();
  refresh();
}

/** Refreshes the view shown (and the downloads count); never two at once. */
async function refresh() {
  if (refreshing) {
    again = true;
    return;
  }
  refreshing = true;
  const view = current;
  try {
    await views[view].refresh();
  } catch (e) {
    if (e.status !== 0 && e.status !== 401) report(view, e.message, true);
  }
  if (view !== "downloads" && ticks % 2 === 0) await refreshDownloads().catch(() => {});
  refreshing = false;
  if (again) {
    again = false;
    refresh();
  }
}

function start() {
  takeTokenFromAddress();
  byId("search-form").addEventListener("submit", submitSearch);
  byId("browse-form").addEventListener("submit", submitBrowse);
  byId("verified-only").addEventListener("change", () => {
    verifiedOnlyChosen = true;
    applyVerifiedFilter();
  });
  byId("trust-form").addEventListener("submit", submitKey);
  byId("updates-check").addEventListener("click", () => runPass(true));
  byId("updates-run").addEventListener("click", () => runPass(false));
  byId("install-form").addEventListener("submit", submitInstall);
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(TOKEN_KEY, byId("token").value);
    byId("token").value = "";
    byId("token-form").hidden = true;
    probeUpdates().catch(() => {});
    refresh();
  });
  // Only the views' names switch views: "#main" is the skip link's.
  window.addEventListener("hashchange", () => {
    const name = location.hash.slice(1);
    if (name in views) show(name, true);
  });
  setInterval(() => {
    ticks += 1;
    if (ticks % views[current].every === 0) refresh();
    if (ticks % UPDATES_PROBE_TICKS === 0 && current !== "updates") probeUpdates().catch(() => {});
  }, TICK_MS);
  probeUpdates()
    .catch(() => null)
    .then(() => learnPinnedKeys())
    .then(() => show(location.hash.slice(1)));
}

start();
