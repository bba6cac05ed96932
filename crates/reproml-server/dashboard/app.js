// ReproduceML's dashboard: a read-only view of the server's API.
//
// No framework and no build step: the server embeds this file. Every value
// that came from a client (descriptions, artifact details, fingerprints) is
// put into the page as text nodes, never as HTML. Statistics are never
// computed here: comparisons come from the server, which runs the same
// library code as `reproml compare`.
"use strict";

const POLL_MS = 5000;
const TOKEN_KEY = "reproml-token";
const METRICS = ["accuracy", "precision", "recall", "f1"];

// ---- DOM -----------------------------------------------------------------

/** An element with attributes and children (strings become text nodes). */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const view = () => document.getElementById("view");
/** The figures' blob: URLs of the view on screen, freed when it is replaced. */
let blobs = [];
const show = (...nodes) => {
  for (const url of blobs) URL.revokeObjectURL(url);
  blobs = [];
  view().replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
};
const status = (text) => { document.getElementById("status").textContent = text; };

const fixed = (x, digits) => (typeof x === "number" ? x.toFixed(digits) : "—");
const pValue = (p) => (typeof p !== "number" ? "—" : p < 0.001 ? "<0.001" : p.toFixed(3));
const short = (digest) => (digest ? digest.slice(0, 12) : "—");

// ---- API -------------------------------------------------------------------

/** The answer of every URL fetched, with its ETag, for conditional GETs. */
const cache = new Map();

class NeedsToken extends Error {}

/** GET `path` as JSON (or text), sending the token and If-None-Match. */
async function api(path, as = "json") {
  const headers = {};
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers.Authorization = `Bearer ${token}`;
  const cached = cache.get(path);
  if (cached) headers["If-None-Match"] = cached.etag;
  const response = await fetch(path, { headers });
  if (response.status === 304 && cached) return cached.value;
  if (response.status === 401) throw new NeedsToken();
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(detail);
  }
  const value = as === "json" ? await response.json() : as === "blob" ? await response.blob() : await response.text();
  const etag = response.headers.get("ETag");
  if (etag) cache.set(path, { etag, value });
  return value;
}

const enc = encodeURIComponent;

// ---- tables ----------------------------------------------------------------

/**
 * A table whose columns sort on click and whose rows a search box filters.
 * `columns`: [{ key, label, value(row) → sortable, cell(row) → node|text, text }].
 */
function sortableTable(columns, rows, { filter = "", sortKey, descending = false, onSort } = {}) {
  const wanted = filter.trim().toLowerCase();
  let shown = rows;
  if (wanted) {
    shown = rows.filter((r) => columns.some((c) => String(c.value(r) ?? "").toLowerCase().includes(wanted)));
  }
  const column = columns.find((c) => c.key === sortKey);
  if (column) {
    shown = [...shown].sort((a, b) => {
      const x = column.value(a) ?? "", y = column.value(b) ?? "";
      const order = typeof x === "number" && typeof y === "number" ? x - y : String(x).localeCompare(String(y));
      return descending ? -order : order;
    });
  }
  const head = h("tr", {}, columns.map((c) => h("th", {
    class: `sortable${c.text ? " text" : ""}`,
    scope: "col",
    "aria-sort": c.key === sortKey ? (descending ? "descending" : "ascending") : false,
    onclick: () => onSort && onSort(c.key, c.key === sortKey ? !descending : false),
  }, c.label)));
  const body = shown.map((r) => h("tr", {}, columns.map((c) => h("td", { class: c.text ? "text" : false }, c.cell ? c.cell(r) : c.value(r)))));
  return h("div", { class: "scroll" }, h("table", {}, h("thead", {}, head), h("tbody", {}, body)),
    h("p", { class: "muted" }, `${shown.length} of ${rows.length} shown`));
}

/** A search box above a sortable table; typing redraws only the table. */
function searchableTable(holder, columns, rows, state) {
  const tableHolder = h("div");
  const draw = () => tableHolder.replaceChildren(sortableTable(columns, rows, {
    ...state,
    onSort: (key, descending) => { state.sortKey = key; state.descending = descending; draw(); },
  }));
  const search = h("input", {
    type: "search", placeholder: "filter…", "aria-label": "filter the rows", value: state.filter || "",
    oninput: (e) => { state.filter = e.target.value; draw(); },
  });
  holder.replaceChildren(search, tableHolder);
  draw();
}

/** Saves `text` as a file called `name`. */
function save(name, type, text) {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** A figure from the server, shown through a blob: URL (the API needs the token). */
function figure(path, alt) {
  const img = h("img", { class: "figure", alt });
  api(path, "blob").then((blob) => {
    const url = URL.createObjectURL(blob);
    blobs.push(url);
    img.src = url;
  })
    .catch((e) => img.replaceWith(h("p", { class: "muted" }, `${alt}: ${e.message}`)));
  return img;
}

// ---- views -----------------------------------------------------------------

/** An error's first line, cut to 120 characters (its whole text is a hover away). */
const firstLine = (text) => {
  const line = text.split("\n")[0];
  return line.length > 120 ? `${line.slice(0, 120)}…` : line;
};

/** Per experiment: its progress rows from /v1/progress. */
function progressBy(progress) {
  const by = new Map();
  for (const p of progress) {
    if (!by.has(p.experiment)) by.set(p.experiment, []);
    by.get(p.experiment).push(p);
  }
  return by;
}

const listState = { filter: "", sortKey: "last", descending: true };

async function experimentsView() {
  const [experiments, progress] = await Promise.all([api("/v1/experiments"), api("/v1/progress")]);
  const by = progressBy(progress);
  const rows = experiments.map((e) => {
    const variants = by.get(e.id) || [];
    const done = variants.reduce((n, v) => n + v.recorded, 0);
    const last = variants.flatMap((v) => [v.last_recorded_at, v.last_failed_at]).filter(Boolean).sort().pop() || e.created_at;
    return { e, variants, done, last };
  });
  const columns = [
    { key: "id", label: "experiment", text: true, value: (r) => r.e.id, cell: (r) => h("a", { href: `#/e/${enc(r.e.id)}` }, r.e.id) },
    { key: "model", label: "model", text: true, value: (r) => r.e.model },
    { key: "challenge", label: "data set", text: true, value: (r) => r.e.challenge },
    { key: "variants", label: "variants", text: true, value: (r) => r.variants.map((v) => v.variant).join(", ") },
    { key: "runs", label: "runs recorded", value: (r) => r.done, cell: (r) => `${r.done} (${r.e.runs} per variant)` },
    { key: "last", label: "last activity (UTC)", text: true, value: (r) => r.last },
  ];
  const holder = h("div");
  show(h("h1", {}, "Experiments"),
    experiments.length ? holder : h("p", { class: "muted" }, "No experiments yet: create one with `reproml run --spec FILE` or `reproml study run`."));
  if (experiments.length) searchableTable(holder, columns, rows, listState);
}

/** The run table's filter and sort, per experiment. */
const runStates = new Map();
/** The variants checked for a comparison, in the order they were checked. */
const checkedOrder = new Map();

/** An artifact in words: its name, then its details. */
const artifactText = (a) => [a.name, ...Object.entries(a.details || {}).map(([k, v]) => `${k}=${v}`)].join(" ");

async function experimentView(id) {
  if (!runStates.has(id)) runStates.set(id, { filter: "", sortKey: "run", descending: false });
  const [e, runs, progress, failures] = await Promise.all([
    api(`/v1/experiments/${enc(id)}`), api(`/v1/experiments/${enc(id)}/runs`), api("/v1/progress"),
    api(`/v1/experiments/${enc(id)}/failures`),
  ]);
  const variants = (progressBy(progress).get(id) || []);
  // Only sides with runs can be compared or drawn.
  const comparable = variants.filter((v) => v.recorded > 0);
  const firstRun = new Map();
  for (const r of runs) if (!firstRun.has(r.variant)) firstRun.set(r.variant, r);
  const { seeds, created_at, ...spec } = e;

  const variantRows = variants.map((v) => {
    const r = firstRun.get(v.variant);
    return h("tr", {},
      h("td", { class: "text" }, v.variant),
      h("td", {}, `${v.recorded} / ${e.runs}`),
      h("td", { class: v.failing ? "failing" : false }, `${v.failing}`),
      h("td", { class: "text" }, v.artifact ? h("code", {}, artifactText(v.artifact)) : "—"),
      h("td", { class: "text" }, h("code", {}, r ? Object.entries(r.fingerprint || {}).map(([k, val]) => `${k}=${val}`).join(" ") : "")));
  });

  if (!checkedOrder.has(id)) checkedOrder.set(id, comparable.slice(0, 2).map((v) => v.variant));
  const order = checkedOrder.get(id);
  const checks = comparable.map((v) => h("label", {}, h("input", {
    type: "checkbox", name: "variant", value: v.variant, checked: order.includes(v.variant),
    onchange: (event) => {
      const at = order.indexOf(v.variant);
      if (at >= 0) order.splice(at, 1);
      if (event.target.checked) order.push(v.variant);
      reference.textContent = order.length ? `reference: ${order[0]}` : "";
    },
  }), ` ${v.variant} `));
  const reference = h("span", { class: "muted" }, order.length ? `reference: ${order[0]}` : "");
  const compareForm = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      if (order.length < 2) { status("pick at least two variants"); return; }
      location.hash = `#/e/${enc(id)}/compare/${order.map(enc).join(",")}`;
    },
  }, h("div", { class: "toolbar" }, checks, h("button", { type: "submit" }, "Compare"), reference),
  h("p", { class: "muted" }, "The first variant checked is the reference; each other one is compared with it."));

  const columns = [
    { key: "run", label: "run", value: (r) => r.run },
    { key: "variant", label: "variant", text: true, value: (r) => r.variant },
    { key: "seed", label: "seed", value: (r) => r.seed },
    { key: "digest", label: "final digest", text: true, value: (r) => r.epochs.at(-1)?.digest ?? "", cell: (r) => h("span", { class: "digest", title: r.epochs.at(-1)?.digest ?? "" }, short(r.epochs.at(-1)?.digest)) },
    ...METRICS.map((m) => ({ key: m, label: m, value: (r) => r.metrics[m], cell: (r) => fixed(r.metrics[m], 4) })),
    { key: "artifact", label: "artifact", text: true, value: (r) => r.artifact.name },
    { key: "fingerprint", label: "fingerprint", text: true, value: (r) => JSON.stringify(r.fingerprint), cell: (r) => h("code", {}, `${Object.keys(r.fingerprint || {}).length} entries`) },
    { key: "recorded_at", label: "recorded at (UTC)", text: true, value: (r) => r.recorded_at },
  ];
  const runsHolder = h("div");
  const csv = () => api(`/v1/experiments/${enc(id)}/runs?format=csv`, "text");

  show(
    h("h1", {}, e.id),
    e.description ? h("p", { class: "description" }, e.description) : null,
    h("p", { class: "muted" }, `${e.model} on ${e.challenge}, ${e.epochs} epochs, ${e.runs} runs per variant, seeds ${e.seed_policy}, created ${created_at}`),
    h("h2", {}, "Variants"),
    variants.length ? h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, h("th", { class: "text" }, "variant"), h("th", {}, "runs done / planned"), h("th", {}, "runs failing"), h("th", { class: "text" }, "artifact"), h("th", { class: "text" }, "fingerprint (first run)"))),
      h("tbody", {}, variantRows))) : h("p", { class: "muted" }, "No runs recorded yet."),
    comparable.length >= 2 ? compareForm : null,
    failures.length ? h("h2", {}, "Failures") : null,
    failures.length ? failureTable(failures) : null,
    runs.length ? h("h2", {}, "Final metrics (every run drawn)") : null,
    runs.length ? figure(`/v1/experiments/${enc(id)}/figures/boxes.svg`, "box plots of the final metrics") : null,
    runs.length ? h("h2", {}, "Learning curves") : null,
    runs.length ? curves(id) : null,
    h("h2", {}, "Runs"),
    h("div", { class: "toolbar" },
      h("button", { type: "button", onclick: () => save(`${id}-runs.json`, "application/json", JSON.stringify(runs, null, 2)) }, "Download JSON"),
      h("button", { type: "button", onclick: async () => save(`${id}-runs.csv`, "text/csv", await csv()) }, "Download CSV")),
    runsHolder,
    h("h2", {}, "Spec"),
    h("pre", {}, JSON.stringify(spec, null, 2)),
  );
  searchableTable(runsHolder, columns, runs, runStates.get(id));
}

/** The learning curves, with a switch to draw every run under the means. */
function curves(id) {
  const path = (every) => `/v1/experiments/${enc(id)}/figures/curves.svg${every ? "?every_run=true" : ""}`;
  const alt = "training loss and test accuracy per epoch";
  const holder = h("div", {}, figure(path(false), alt));
  const toggle = h("input", {
    type: "checkbox",
    onchange: (event) => holder.replaceChildren(figure(path(event.target.checked), alt)),
  });
  return h("div", {}, h("label", { class: "toolbar" }, toggle, " every run (thin lines under the mean)"), holder);
}

/** "identical" or "diverges at epoch k" for each pair of runs with the same index. */
function determinismStrip(runs, baseline, treatment) {
  const of = (v) => new Map(runs.filter((r) => r.variant === v).map((r) => [r.run, r]));
  const a = of(baseline), b = of(treatment);
  const cells = [];
  for (const [run, x] of [...a].sort((p, q) => p[0] - q[0])) {
    const y = b.get(run);
    if (!y) continue;
    const epochs = Math.max(x.epochs.length, y.epochs.length);
    let diverges = null;
    for (let k = 0; k < epochs; k++) {
      if (x.epochs[k]?.digest !== y.epochs[k]?.digest) { diverges = k + 1; break; }
    }
    cells.push(diverges === null
      ? h("span", { class: "identical", title: `run ${run}: every epoch's parameters bit-identical` }, `run ${run}: identical`)
      : h("span", { class: "diverges", title: `run ${run}: parameters differ from epoch ${diverges} on` }, `run ${run}: diverges at epoch ${diverges}`));
  }
  return h("div", { class: "strip" }, cells);
}

/** The entries in which two variants' first runs differ: artifact and fingerprint. */
function differences(first, baseline, treatment) {
  const x = first.get(baseline), y = first.get(treatment);
  if (!x || !y) return [];
  const lines = [];
  for (const k of new Set([...Object.keys(x.artifact), ...Object.keys(y.artifact)])) {
    const a = JSON.stringify(x.artifact[k]), b = JSON.stringify(y.artifact[k]);
    if (a !== b) lines.push(`artifact ${k}: ${a ?? "—"} vs ${b ?? "—"}`);
  }
  for (const k of new Set([...Object.keys(x.fingerprint || {}), ...Object.keys(y.fingerprint || {})])) {
    const a = (x.fingerprint || {})[k], b = (y.fingerprint || {})[k];
    if (a !== b) lines.push(`fingerprint ${k}: ${a ?? "—"} vs ${b ?? "—"}`);
  }
  return lines;
}

/** The comparison's settings as the API takes them. */
function compareQuery(options) {
  const query = new URLSearchParams();
  for (const key of ["alpha", "margin"]) if (options.get(key)) query.set(key, options.get(key));
  if (options.get("all_pairs") === "true") query.set("all_pairs", "true");
  return query;
}

/** The form that changes α, the margin and which pairs are compared. */
function compareSettings(id, variants, options) {
  const alpha = h("input", { type: "number", name: "alpha", step: "any", min: "0", max: "0.5", value: options.get("alpha") || "0.05", "aria-label": "alpha" });
  const margin = h("input", { type: "number", name: "margin", step: "any", min: "0", value: options.get("margin") || "0.01", "aria-label": "margin" });
  const pairs = h("input", { type: "checkbox", name: "all_pairs", checked: options.get("all_pairs") === "true" });
  return h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      const query = new URLSearchParams({ alpha: alpha.value, margin: margin.value });
      if (pairs.checked) query.set("all_pairs", "true");
      location.hash = `#/e/${enc(id)}/compare/${variants.map(enc).join(",")}?${query}`;
    },
  }, h("div", { class: "toolbar" },
    h("label", {}, "α ", alpha), h("label", {}, "margin ", margin),
    variants.length > 2 ? h("label", {}, pairs, " every pair") : null,
    h("button", { type: "submit" }, "Compare again")));
}

async function compareView(id, variants, options = new URLSearchParams()) {
  const settings = compareQuery(options).toString();
  const path = `/v1/experiments/${enc(id)}/comparison?variants=${variants.map(enc).join(",")}${settings ? "&" + settings : ""}`;
  const [answer, runs] = await Promise.all([api(path), api(`/v1/experiments/${enc(id)}/runs`)]);
  const { report } = answer;
  const first = new Map();
  for (const r of runs) if (!first.has(r.variant)) first.set(r.variant, r);
  const sections = report.comparisons.map((c) => {
    const diffs = differences(first, c.baseline, c.treatment);
    return h("section", {},
      h("h2", {}, `${c.baseline} (baseline) vs ${c.treatment}`),
      h("p", {}, h("span", { class: `verdict ${c.verdict}` }, c.verdict), ` — n = ${c.n}, ${c.identical_pairs}/${c.pairs} identical trajectories`,
        c.nondeterministic ? h("span", { class: "nondeterministic" }, " ‡ trained on an engine that is not bit-repeatable (fingerprint deterministic: false): identical trajectories prove nothing here, only the metrics decide") : null),
      h("div", { class: "scroll" }, h("table", { class: "comparison" },
        h("thead", {}, h("tr", {}, ["metric", c.baseline, c.treatment, "MWU p", "Holm p", "BH p", "Wilcoxon p", "A12", "Cliff's δ", "shift [CI]", "spread p"].map((t, i) => h("th", { class: i === 0 ? "text" : false }, t)))),
        h("tbody", {}, c.metrics.map((m) => h("tr", { "data-metric": m.metric },
          h("td", { class: "text" }, m.metric),
          h("td", {}, `${fixed(m.baseline.mean, 4)} ± ${fixed(m.baseline.sd, 4)}`),
          h("td", {}, `${fixed(m.treatment.mean, 4)} ± ${fixed(m.treatment.sd, 4)}`),
          h("td", { "data-p": "mwu", title: String(m.mwu_p) }, pValue(m.mwu_p)),
          h("td", { "data-p": "holm", title: String(m.holm_p) }, pValue(m.holm_p)),
          h("td", { "data-p": "bh", title: String(m.bh_p) }, pValue(m.bh_p)),
          h("td", { "data-p": "wilcoxon", title: String(m.wilcoxon_p) }, pValue(m.wilcoxon_p)),
          h("td", {}, fixed(m.a12, 2)),
          h("td", {}, `${fixed(m.cliffs_delta, 2)} ${m.magnitude}`),
          h("td", {}, m.shift ? `${fixed(m.shift.estimate, 3)} [${fixed(m.shift.lower, 3)}, ${fixed(m.shift.upper, 3)}]` : "—"),
          h("td", {}, pValue(m.spread_p))))))),
      h("h3", {}, "Determinism: runs with the same seed"),
      determinismStrip(runs, c.baseline, c.treatment),
      h("h3", {}, "How the two variants differ"),
      diffs.length ? h("ul", { class: "lines" }, diffs.map((d) => h("li", {}, h("code", {}, d))))
        : h("p", { class: "muted" }, "Same artifact and fingerprint: only the variant's name differs."),
    );
  });
  const token = sessionStorage.getItem(TOKEN_KEY) ? " --token-file TOKEN_FILE" : "";
  const flags = [["alpha", "--alpha"], ["margin", "--margin"]].filter(([k]) => options.get(k)).map(([k, f]) => ` ${f} ${options.get(k)}`).join("")
    + (options.get("all_pairs") === "true" ? " --all-pairs" : "");
  const command = `reproml report --server ${location.origin}${token} ${id} --variants ${variants.join(",")}${flags} --out ${id}-report`;
  show(
    h("h1", {}, h("a", { href: `#/e/${enc(id)}` }, id), `: ${variants.join(" vs ")}`),
    compareSettings(id, variants, options),
    h("h2", {}, "Verdicts"),
    h("ul", { class: "lines verdicts" }, answer.verdicts.map((v) => h("li", {}, v))),
    ...sections,
    h("p", { class: "muted" }, answer.legend),
    h("div", { class: "toolbar" },
      h("button", {
        type: "button", class: "report",
        onclick: async () => save(`${id}-report.html`, "text/html", await api(path.replace("/comparison?", "/report.html?"), "text")),
      }, "Download the HTML report"),
      h("span", { class: "muted" }, "one page: verdicts, table, figures, provenance")),
    h("p", {}, "The report folder with CSV, JSON, PDF and PNG figures too: ", h("code", {}, command)),
  );
}

/** Every run with failure reports: the latest error whole, as text. */
function failureTable(failures) {
  return h("div", { class: "scroll" }, h("table", { class: "failures" },
    h("thead", {}, h("tr", {}, ["variant", "run", "reports", "last failed (UTC)", "since", "last error"].map((t, i) => h("th", { class: i === 1 || i === 2 ? false : "text" }, t)))),
    h("tbody", {}, failures.map((f) => h("tr", { class: f.recorded ? false : "failing" },
      h("td", { class: "text" }, f.variant),
      h("td", {}, `${f.run}`),
      h("td", {}, `${f.reports}`),
      h("td", { class: "text" }, f.last_failed_at),
      h("td", { class: "text" }, f.recorded ? "recorded on a retry" : "not recorded"),
      h("td", { class: "text" }, h("pre", { class: "error" }, f.last_error)))))));
}

/** Runs recorded per second between the first and the last, or null. */
function rateOf(recorded, first, last) {
  const seconds = recorded > 1 ? (Date.parse(last) - Date.parse(first)) / 1000 : 0;
  return seconds > 0 ? (recorded - 1) / seconds : null;
}

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

const timeLeft = (left, rate) => left <= 0 ? "done" : rate ? `≈ ${Math.ceil(left / rate / 60)} min at the recent rate` : "—";

/**
 * Runs per side, rate and time left, failing runs and the latest error,
 * for every experiment with runs; `?study=NAME-` keeps one study's
 * experiments (their identifiers start with the study's name) and totals
 * them, since a study trains its sides one after the other.
 */
async function progressView(options) {
  const [experiments, progress] = await Promise.all([api("/v1/experiments"), api("/v1/progress")]);
  const by = progressBy(progress);
  const prefix = options.get("study") || "";
  const rows = [];
  const sides = [];
  for (const e of experiments.filter((x) => x.id.startsWith(prefix))) {
    for (const p of by.get(e.id) || []) {
      sides.push({ e, p });
      rows.push(h("tr", {},
        h("td", { class: "text" }, h("a", { href: `#/e/${enc(e.id)}` }, e.id)),
        h("td", { class: "text" }, p.variant),
        h("td", {}, h("progress", { max: e.runs, value: p.recorded }), ` ${p.recorded} / ${e.runs}`),
        h("td", { class: "text" }, p.last_recorded_at || "—"),
        h("td", { class: "text" }, timeLeft(e.runs - p.recorded, rateOf(p.recorded, p.first_recorded_at, p.last_recorded_at))),
        h("td", { class: p.failing ? "failing" : false }, `${p.failing}`),
        h("td", { class: "text" }, p.last_error ? h("span", { class: p.failing ? "error" : "muted", title: p.last_error }, `${p.last_failed_at}: ${firstLine(p.last_error)}`) : "")));
    }
  }
  let total = null;
  if (prefix && sides.length) {
    const recorded = sides.reduce((n, s) => n + s.p.recorded, 0);
    // `reproml study run` puts the study's size in the address; without
    // it only the sides started so far are counted.
    const known = Number.parseInt(options.get("planned") || "", 10);
    const started = sides.reduce((n, s) => n + s.e.runs, 0);
    const planned = Number.isSafeInteger(known) && known >= started ? known : started;
    const times = sides.flatMap((s) => [s.p.first_recorded_at, s.p.last_recorded_at]).filter(Boolean).sort();
    const failing = sides.reduce((n, s) => n + s.p.failing, 0);
    total = h("tr", { class: "total" },
      h("td", { class: "text" }, plural(new Set(sides.map((s) => s.e.id)).size, "experiment")),
      h("td", { class: "text" }, planned === started ? `${plural(sides.length, "side")} started` : plural(sides.length, "side")),
      h("td", {}, h("progress", { max: planned, value: recorded }), ` ${recorded} / ${planned}`),
      h("td", { class: "text" }, times.at(-1) || "—"),
      h("td", { class: "text" }, timeLeft(planned - recorded, rateOf(recorded, times[0], times.at(-1)))),
      h("td", { class: failing ? "failing" : false }, `${failing}`),
      h("td", { class: "text" }, ""));
  }
  const study = h("input", { type: "search", name: "study", value: prefix, placeholder: "study name", "aria-label": "study" });
  const form = h("form", {
    onsubmit: (event) => {
      event.preventDefault();
      const name = study.value.trim();
      location.hash = name ? `#/progress?study=${enc(name.endsWith("-") ? name : `${name}-`)}` : "#/progress";
      // (a typed name has no size: the totals count the sides started)
    },
  }, h("div", { class: "toolbar" }, h("label", {}, "one study: ", study), h("button", { type: "submit" }, "Show"),
    h("span", { class: "muted" }, "its experiments are named after it (NAME-BUG); the totals assume it trains one side at a time, as `reproml study run` does")));
  show(h("h1", {}, prefix ? `Progress of ${prefix.replace(/-$/, "")}` : "Progress"),
    h("p", { class: "muted" }, `Runs recorded per side, and runs that failed without a result since, with the latest error (the experiment's page lists every failing run); updates every ${POLL_MS / 1000} s (only what changed is fetched again). Sides with neither runs nor failures yet are not listed.`),
    form,
    rows.length ? h("div", { class: "scroll" }, h("table", {},
      h("thead", {}, h("tr", {}, ["experiment", "side", "runs", "last recorded (UTC)", "time left", "failing", "latest error"].map((t, i) => h("th", { class: [0, 1, 3, 4, 6].includes(i) ? "text" : false }, t)))),
      h("tbody", {}, rows, total))) : h("p", { class: "muted" }, prefix ? `No runs recorded yet for experiments named ${prefix}….` : "No runs recorded yet."));
}

// ---- token and routing -----------------------------------------------------

function tokenView(retry) {
  const input = h("input", { type: "password", autocomplete: "off", "aria-label": "token", placeholder: "token" });
  show(h("h1", {}, "This server needs a token"),
    h("p", {}, "Paste the token of the server (the file given to `reproml server --token-file`). It is kept in this tab only."),
    h("form", {
      onsubmit: (event) => {
        event.preventDefault();
        sessionStorage.setItem(TOKEN_KEY, input.value.trim());
        cache.clear();
        retry();
      },
    }, h("div", { class: "toolbar" }, input, h("button", { type: "submit" }, "Use token"))));
  input.focus();
}

/** The view for the current location hash (`#/e/ID/compare/A,B?alpha=…`). */
function route() {
  const [hash, query = ""] = (location.hash.replace(/^#/, "") || "/").split("?");
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "e" && parts.length === 2) return () => experimentView(parts[1]);
  if (parts[0] === "e" && parts[2] === "compare" && parts.length === 4) {
    return () => compareView(parts[1], parts[3].split(","), new URLSearchParams(query));
  }
  if (parts[0] === "progress") return () => progressView(new URLSearchParams(query));
  return experimentsView;
}

/** What the current view shows, in brief: a poll redraws only when it changed. */
function viewState(progress, experiments) {
  const hash = (location.hash.replace(/^#/, "") || "/").split("?")[0];
  const parts = hash.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "e" && parts[1]) {
    return JSON.stringify([experiments.some((e) => e.id === parts[1]), progress.filter((p) => p.experiment === parts[1])]);
  }
  return JSON.stringify([experiments.map((e) => e.id), progress]);
}

let drawing = false;
let pending = false;
let shown = null;

async function render({ quiet = false } = {}) {
  if (drawing) {
    // A navigation during a poll is drawn right after it.
    if (!quiet) pending = true;
    return;
  }
  drawing = true;
  try {
    const [experiments, progress] = await Promise.all([api("/v1/experiments"), api("/v1/progress")]);
    const state = viewState(progress, experiments);
    if (quiet && state === shown) { status(`up to date ${new Date().toLocaleTimeString()}`); return; }
    if (!quiet) status("loading…");
    await route()();
    shown = state;
    status(`updated ${new Date().toLocaleTimeString()}`);
  } catch (e) {
    if (e instanceof NeedsToken) { status(""); shown = null; tokenView(() => render()); return; }
    if (quiet) {
      // Keep what is on screen; say why it may be stale.
      status(`not updated: ${e.message}`);
      return;
    }
    status("");
    shown = null;
    show(h("p", { class: "error" }, `Cannot show this page: ${e.message}`));
  } finally {
    drawing = false;
    if (pending) { pending = false; render(); }
  }
}

window.addEventListener("hashchange", () => { shown = null; render(); });
document.addEventListener("DOMContentLoaded", () => {
  render();
  setInterval(() => {
    // Not while the user types in a box or a token form is shown.
    if (document.activeElement && document.activeElement.tagName === "INPUT") return;
    if (document.querySelector("input[type=password]")) return;
    render({ quiet: true });
  }, POLL_MS);
});
