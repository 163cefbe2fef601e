/*
 * JobMon browser view (docs/WEB.md).  Plain modern JavaScript, no build
 * step, no library.  Every piece of data reaches the page as text
 * (textContent, createTextNode): never as HTML.
 *
 * DOM contract (stable; the browser tests rely on it):
 *   #who              the caller's identity (DN)
 *   #error            the last error message, as text (empty when none)
 *   #token-form, #token-input, #token-save, #token-clear   bearer-token login
 *   /                 #jobs-table (table; rows tr[data-job-id] in its tbody,
 *                     first cell holds an a link to the job), #jobs-filter
 *                     (input), #jobs-all (checkbox, admins), #jobs-count,
 *                     #jobs-prev / #jobs-next (pages of 500 rows)
 *   /jobs/JOB         #job-title, #processes (table; rows tr[data-pid]),
 *                     #resources, #disk, #plot (canvas), #env (table; rows
 *                     tr[data-name]), #commands (list; button[data-command],
 *                     each with an input[data-args-for] for its arguments),
 *                     #signals (button[data-signal]), #confirm (dialog) with
 *                     #confirm-text, #confirm-yes, #confirm-no, #result
 *                     (command output or signal result), #files-link
 *   /jobs/JOB/files/PATH   directory: #file-listing (table; rows
 *                     tr[data-name] with an a link); file: #file-content
 *                     (lines div.line, each with .line-no and .line-text),
 *                     #file-head, #file-tail, #file-prev, #file-next,
 *                     #file-download, #file-hex (binary), #follow-start,
 *                     #follow-stop, #follow-output (lines appended as
 *                     .line-text elements), #follow-status
 *   /history          #history (tables #history-jobs, #history-queries)
 *   /audit            #audit-job (input), #audit-load (button), #audit (table)
 * Every page sets document.body.dataset.ready = "1" once its first data
 * has been shown (or an error has).
 */
"use strict";

const TOKEN_KEY = "jobmon-token";
const PAGE_ROWS = 500;
const REFRESH_MS = 10000;
const SIGNALS = ["TERM", "INT", "HUP", "USR1", "USR2", "STOP", "CONT", "KILL"];
const FILE_PAGE = 65536;
const FOLLOW_MAX_LINES = 10000;

class ApiError extends Error {
  constructor(code, message, status) {
    super(message);
    this.code = code;
    this.status = status;
  }
}

function $(id) {
  return document.getElementById(id);
}

/* Build an element: attributes set with setAttribute (or properties for a
 * few), children appended as nodes or text nodes: never parsed as HTML. */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  node.replaceChildren();
  return node;
}

function showError(err) {
  const text = err instanceof ApiError ? err.message + " (" + err.code + ")" : String(err && err.message || err);
  $("error").textContent = text;
}

function clearError() {
  $("error").textContent = "";
}

function ready() {
  document.body.dataset.ready = "1";
}

function authHeaders(extra) {
  const headers = Object.assign({}, extra || {});
  const token = sessionStorage.getItem(TOKEN_KEY);
  if (token) headers["Authorization"] = "Bearer " + token;
  return headers;
}

async function decode(response) {
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = null;
  }
  if (!response.ok) {
    const code = body && body.code || response.status;
    const message = body && body.message || response.statusText || "request failed";
    if (response.status === 401) showTokenForm();
    throw new ApiError(code, message, response.status);
  }
  return body;
}

async function api(name, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== "") query.set(k, String(v));
  }
  const url = "/api/" + name + (query.toString() ? "?" + query.toString() : "");
  const response = await fetch(url, {headers: authHeaders(), credentials: "same-origin", cache: "no-store"});
  return decode(response);
}

async function apiPost(name, body) {
  const response = await fetch("/api/" + name, {
    method: "POST",
    headers: authHeaders({"Content-Type": "application/json", "X-JobMon-Request": "1"}),
    credentials: "same-origin",
    cache: "no-store",
    body: JSON.stringify(body),
  });
  return decode(response);
}

/* ---- formatting ---- */

function fmtTime(t) {
  if (!t) return "";
  return new Date(t * 1000).toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z");
}

function fmtAge(seconds) {
  if (seconds === undefined || seconds === null || isNaN(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  if (seconds < 60) return seconds + "s";
  if (seconds < 3600) return Math.floor(seconds / 60) + "m" + (seconds % 60) + "s";
  if (seconds < 86400) return Math.floor(seconds / 3600) + "h" + Math.floor(seconds % 3600 / 60) + "m";
  return Math.floor(seconds / 86400) + "d" + Math.floor(seconds % 86400 / 3600) + "h";
}

function fmtBytes(n) {
  if (n === undefined || n === null) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return (i ? n.toFixed(1) : String(n)) + " " + units[i];
}

function jobPath(job) {
  return "/jobs/" + encodeURIComponent(job);
}

function filePath(job, path) {
  const parts = path.split("/").filter((p) => p !== "" && p !== ".");
  return jobPath(job) + "/files/" + parts.map(encodeURIComponent).join("/");
}

function b64bytes(text) {
  const raw = atob(text || "");
  const bytes = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
  return bytes;
}

function nowSeconds() {
  return Date.now() / 1000;
}

/* ---- identity and tokens ---- */

function showTokenForm() {
  $("token-form").hidden = false;
}

function setupToken() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const value = $("token-input").value.trim().replace(/^Bearer\s+/i, "");
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    location.reload();
  });
  $("token-clear").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
  $("token-clear").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

async function loadWho() {
  const me = await api("whoami");
  $("who").textContent = me.dn;
  $("who").dataset.admin = me.admin ? "1" : "0";
  if (!me.admin) $("nav-audit").hidden = true;
  return me;
}

/* ---- jobs list ---- */

const JOB_COLUMNS = [
  ["job_id", "Job"], ["state", "State"], ["mode", "Mode"], ["host", "Host"], ["batch", "Batch"],
  ["registered", "Age"], ["last_seen", "Last seen"], ["pending", "Pending"], ["server", "Server"],
];

async function jobsPage(me) {
  const main = $("main");
  const filter = el("input", {id: "jobs-filter", type: "search", placeholder: "filter (any column)", "aria-label": "filter"});
  const all = el("input", {id: "jobs-all", type: "checkbox"});
  const count = el("span", {id: "jobs-count", className: "muted"});
  const prev = el("button", {id: "jobs-prev", type: "button"}, "◀ Previous");
  const next = el("button", {id: "jobs-next", type: "button"}, "Next ▶");
  const toolbar = el("div", {className: "toolbar"}, filter,
    me.admin ? el("label", {}, all, " all jobs") : null, count, prev, next);
  const headRow = el("tr");
  for (const [key, label] of JOB_COLUMNS) {
    const numeric = key === "pending";
    headRow.appendChild(el("th", {"data-key": key, className: numeric ? "num" : null},
      el("button", {type: "button"}, label)));
  }
  const tbody = el("tbody");
  const table = el("table", {id: "jobs-table"}, el("thead", {}, headRow), tbody);
  main.append(el("h2", {}, "Jobs"), toolbar, table);

  const state = {jobs: [], sortKey: "job_id", desc: false, page: 0, fetchedAt: nowSeconds()};

  function sorted() {
    const needle = filter.value.trim().toLowerCase();
    let rows = state.jobs;
    if (needle) {
      rows = rows.filter((job) => job._search.includes(needle));
    }
    const key = state.sortKey;
    const sign = state.desc ? -1 : 1;
    // Age sorts by registration time reversed: older first when ascending.
    const ageSign = key === "registered" ? -1 : 1;
    return rows.slice().sort((a, b) => {
      const x = a[key] ?? "", y = b[key] ?? "";
      if (x < y) return -sign * ageSign;
      if (x > y) return sign * ageSign;
      return a.job_id < b.job_id ? -1 : a.job_id > b.job_id ? 1 : 0;
    });
  }

  function render() {
    const rows = sorted();
    const pages = Math.max(1, Math.ceil(rows.length / PAGE_ROWS));
    state.page = Math.min(state.page, pages - 1);
    const start = state.page * PAGE_ROWS;
    const now = nowSeconds();
    const fragment = document.createDocumentFragment();
    for (const job of rows.slice(start, start + PAGE_ROWS)) {
      const tr = el("tr", {"data-job-id": job.job_id},
        el("td", {}, el("a", {href: jobPath(job.job_id)}, job.job_id)),
        el("td", {className: "state-" + String(job.state).replace(/[^a-z]/g, "")}, job.state),
        el("td", {}, job.mode),
        el("td", {}, job.host),
        el("td", {}, job.batch || ""),
        el("td", {title: fmtTime(job.registered)}, fmtAge(now - job.registered)),
        el("td", {title: fmtTime(job.last_seen)}, fmtAge(now - job.last_seen) + " ago"),
        el("td", {className: "num"}, job.pending),
        el("td", {}, job.server || ""));
      fragment.appendChild(tr);
    }
    tbody.replaceChildren(fragment);
    count.textContent = rows.length + " of " + state.jobs.length + " jobs" +
      (pages > 1 ? ", page " + (state.page + 1) + " of " + pages : "");
    prev.disabled = state.page === 0;
    next.disabled = state.page >= pages - 1;
    for (const th of headRow.children) {
      th.classList.toggle("sorted-asc", th.dataset.key === state.sortKey && !state.desc);
      th.classList.toggle("sorted-desc", th.dataset.key === state.sortKey && state.desc);
    }
  }

  async function fetchAll() {
    // The server gathers every page of listJobs in one answer.
    const jobs = await api("jobs", {all: all.checked ? 1 : ""});
    for (const job of jobs) {
      job._search = JOB_COLUMNS.map(([key]) => String(job[key] ?? "")).join("\u0000").toLowerCase();
    }
    return jobs;
  }

  async function refresh() {
    try {
      state.jobs = await fetchAll();
      clearError();
    } catch (e) {
      showError(e);
    }
    const started = performance.now();
    render();
    document.body.dataset.renderMs = String(Math.round(performance.now() - started));
    ready();
  }

  headRow.addEventListener("click", (event) => {
    const th = event.target.closest("th");
    if (!th) return;
    if (state.sortKey === th.dataset.key) state.desc = !state.desc;
    else {
      state.sortKey = th.dataset.key;
      state.desc = false;
    }
    render();
  });
  filter.addEventListener("input", () => {
    state.page = 0;
    render();
  });
  all.addEventListener("change", refresh);
  prev.addEventListener("click", () => {
    state.page--;
    render();
  });
  next.addEventListener("click", () => {
    state.page++;
    render();
  });
  await refresh();
  // Live updates; a long listing less often (it costs the server more).
  const again = () => setTimeout(async () => {
    if (!document.hidden) await refresh();
    again();
  }, state.jobs.length > 2000 ? 3 * REFRESH_MS : REFRESH_MS);
  again();
}

/* ---- one job ---- */

function kvList(id, pairs) {
  const dl = el("dl", {id: id, className: "grid"});
  for (const [k, v] of pairs) dl.append(el("dt", {}, k), el("dd", {}, v));
  return dl;
}

function renderProcesses(table, result) {
  const depth = new Map();
  const fragment = document.createDocumentFragment();
  for (const p of result.processes || []) {
    const d = depth.has(p.ppid) ? depth.get(p.ppid) + 1 : 0;
    depth.set(p.pid, d);
    fragment.appendChild(el("tr", {"data-pid": p.pid, className: p.daemon ? "daemon" : null},
      el("td", {className: "num"}, p.pid),
      el("td", {className: "num"}, p.ppid),
      el("td", {}, p.user),
      el("td", {}, p.state),
      el("td", {className: "num"}, (p.cpu_percent || 0).toFixed(1)),
      el("td", {className: "num"}, fmtBytes(p.rss)),
      el("td", {className: "num"}, p.threads),
      el("td", {className: "mono"}, "  ".repeat(d) + (d ? "└ " : "") + p.name + (p.daemon ? " (jobmon daemon)" : "")),
      el("td", {className: "mono"}, p.cmdline)));
  }
  table.tBodies[0].replaceChildren(fragment);
}

/* A CPU (%) and memory plot of the samples taken while the page is open,
 * drawn on a canvas: no library. */
function drawPlot(canvas, samples) {
  const ctx = canvas.getContext("2d");
  const w = canvas.width, h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#555";
  if (samples.length < 2) {
    ctx.fillText("collecting samples…", 10, 20);
    return;
  }
  const t0 = samples[0].t, t1 = samples[samples.length - 1].t;
  const maxCpu = Math.max(100, ...samples.map((s) => s.cpu));
  const maxMem = Math.max(1, ...samples.map((s) => s.rss));
  const x = (t) => 40 + (w - 80) * (t - t0) / Math.max(1, t1 - t0);
  function line(color, value, max) {
    ctx.strokeStyle = color;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    samples.forEach((s, i) => {
      const y = h - 20 - (h - 40) * value(s) / max;
      if (i) ctx.lineTo(x(s.t), y);
      else ctx.moveTo(x(s.t), y);
    });
    ctx.stroke();
  }
  line("#c33", (s) => s.cpu, maxCpu);
  line("#36c", (s) => s.rss, maxMem);
  ctx.fillStyle = "#c33";
  ctx.fillText("CPU " + maxCpu.toFixed(0) + "%", 2, 14);
  ctx.fillStyle = "#36c";
  ctx.fillText("RSS " + fmtBytes(maxMem), w - 90, 14);
  ctx.fillStyle = "#555";
  ctx.fillText(Math.round((t1 - t0) / 60 * 10) / 10 + " min", w / 2 - 20, h - 4);
}

async function jobPage(me, job) {
  const main = $("main");
  document.title = "JobMon: " + job;
  const processes = el("table", {id: "processes"},
    el("thead", {}, el("tr", {}, ...["PID", "PPID", "User", "State", "CPU %", "RSS", "Threads", "Name", "Command line"].map((h) => el("th", {}, h)))),
    el("tbody"));
  const resources = el("dl", {id: "resources", className: "grid"});
  const disk = el("dl", {id: "disk", className: "grid"});
  const canvas = el("canvas", {id: "plot", width: 640, height: 200});
  const env = el("table", {id: "env"}, el("tbody"));
  const commands = el("ul", {id: "commands"});
  const signals = el("div", {id: "signals"});
  const result = el("pre", {id: "result"});
  main.append(
    el("h2", {id: "job-title"}, "Job " + job),
    el("p", {}, el("a", {id: "files-link", href: filePath(job, "")}, "Browse the job's files")),
    el("section", {}, el("h3", {}, "Processes"), processes),
    el("section", {}, el("h3", {}, "Resources"), resources, canvas),
    el("section", {}, el("h3", {}, "Disk"), disk),
    el("section", {}, el("h3", {}, "Commands"), commands),
    el("section", {}, el("h3", {}, "Signals"), signals),
    el("section", {}, el("h3", {}, "Result"), result),
    el("section", {}, el("h3", {}, "Environment"), env));

  const samples = [];
  let last = null;

  async function sample() {
    try {
      const [ps, res] = await Promise.all([api("query", {job: job, op: "ps"}), api("query", {job: job, op: "res"})]);
      renderProcesses(processes, ps);
      if (ps.job_owner) $("job-title").textContent = "Job " + job + " (owner " + ps.job_owner + ")";
      const kv = [["processes", res.processes], ["threads", res.threads],
        ["CPU user", (res.cpu_user || 0).toFixed(1) + " s"], ["CPU system", (res.cpu_system || 0).toFixed(1) + " s"],
        ["RSS (sum)", fmtBytes(res.rss)], ["RSS peak (largest process)", fmtBytes(res.rss_peak)],
        ["open files", res.open_files], ["read", fmtBytes(res.read_bytes)], ["written", fmtBytes(res.write_bytes)],
        ["elapsed", fmtAge(res.elapsed)]];
      resources.replaceChildren(...kv.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
      const t = nowSeconds();
      const cpu = (res.cpu_user || 0) + (res.cpu_system || 0);
      if (last) samples.push({t: t, cpu: Math.max(0, 100 * (cpu - last.cpu) / Math.max(0.001, t - last.t)), rss: res.rss || 0});
      last = {t: t, cpu: cpu};
      drawPlot(canvas, samples);
    } catch (e) {
      showError(e);
    }
  }

  async function once() {
    try {
      const [df, du] = await Promise.all([api("query", {job: job, op: "df", path: "."}), api("query", {job: job, op: "du", path: "."})]);
      disk.replaceChildren(...[["working directory", fmtBytes(du.total) + " in " + du.files + " files, " + du.dirs + " directories" + (du.truncated ? " (at least)" : "")],
        ["filesystem", fmtBytes(df.used) + " used of " + fmtBytes(df.total) + " (" + (df.percent || 0).toFixed(1) + "%), " + fmtBytes(df.free) + " free"]]
        .flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
    } catch (e) {
      showError(e);
    }
    try {
      const e = await api("query", {job: job, op: "env"});
      const redacted = new Set(e.redacted || []);
      const names = Object.keys(e.variables || {}).sort();
      env.tBodies[0].replaceChildren(...names.map((n) => el("tr", {"data-name": n, className: redacted.has(n) ? "redacted" : null},
        el("td", {className: "mono"}, n), el("td", {className: "mono"}, e.variables[n]))));
    } catch (err) {
      showError(err);
    }
    try {
      const c = await api("query", {job: job, op: "commands"});
      commands.replaceChildren(...(c.commands || []).map((cmd) => el("li", {},
        el("button", {type: "button", "data-command": cmd.name, disabled: cmd.available === false}, cmd.name),
        " ", el("input", {type: "text", "data-args-for": cmd.name, placeholder: cmd.usage || "arguments", "aria-label": "arguments of " + cmd.name}),
        " ", el("span", {className: "muted"}, cmd.description || ""))));
      if (!commands.children.length) commands.append(el("li", {className: "muted"}, "this job offers no commands"));
    } catch (e) {
      showError(e);
    }
  }

  commands.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-command]");
    if (!button) return;
    const name = button.dataset.command;
    const input = Array.from(commands.querySelectorAll("input[data-args-for]")).find((i) => i.dataset.argsFor === name);
    const args = input && input.value.trim() ? input.value.trim().split(/\s+/) : [];
    result.textContent = "running " + name + "…";
    try {
      const r = await apiPost("run", {job: job, name: name, args: args});
      result.textContent = "$ " + (r.argv || [name]).join(" ") + "\n" + (r.stdout_text ?? atob(r.stdout_base64 || "")) +
        (r.stderr_base64 ? "\n[stderr]\n" + (r.stderr_text ?? atob(r.stderr_base64)) : "") +
        "\n[exit " + r.exit_code + (r.truncated ? ", output truncated" : "") + ", " + (r.duration || 0).toFixed(2) + " s]";
      clearError();
    } catch (e) {
      result.textContent = "error: " + e.message;
      showError(e);
    }
  });

  for (const sig of SIGNALS) signals.append(el("button", {type: "button", "data-signal": sig}, "SIG" + sig), " ");
  signals.addEventListener("click", async (event) => {
    const button = event.target.closest("button[data-signal]");
    if (!button) return;
    const sig = button.dataset.signal;
    if (!await confirmAction("Send SIG" + sig + " to job " + job + "?")) {
      result.textContent = "signal not sent";
      return;
    }
    try {
      const r = await apiPost("signal", {job: job, signal: sig});
      result.textContent = "signal " + r.signal + " sent to process " + r.pid;
      clearError();
    } catch (e) {
      result.textContent = "error: " + e.message;
      showError(e);
    }
  });

  await Promise.all([sample(), once()]);
  ready();
  // A second sample soon, so that the plot starts at once; then every 5 s.
  setTimeout(sample, 1500);
  setInterval(() => {
    if (!document.hidden) sample();
  }, 5000);
}

function confirmAction(text) {
  const dialog = $("confirm");
  $("confirm-text").textContent = text;
  return new Promise((resolve) => {
    function done(answer) {
      $("confirm-yes").removeEventListener("click", yes);
      $("confirm-no").removeEventListener("click", no);
      dialog.close();
      resolve(answer);
    }
    const yes = () => done(true);
    const no = () => done(false);
    $("confirm-yes").addEventListener("click", yes);
    $("confirm-no").addEventListener("click", no);
    dialog.showModal();
  });
}

/* ---- history and audit ---- */

function recordTable(id, columns, rows) {
  return el("table", {id: id},
    el("thead", {}, el("tr", {}, ...columns.map(([, label]) => el("th", {}, label)))),
    el("tbody", {}, ...rows.map((row) => el("tr", {}, ...columns.map(([key, , format]) =>
      el("td", {}, format ? format(row[key], row) : row[key] ?? ""))))));
}

async function historyPage() {
  const box = el("div", {id: "history"});
  $("main").append(el("h2", {}, "My history"), box);
  try {
    const h = await api("history", {limit: 500});
    box.append(el("h3", {}, "Jobs"), recordTable("history-jobs", [
      ["job_id", "Job", (v) => el("a", {href: jobPath(v)}, v)], ["host", "Host"], ["mode", "Mode"], ["batch", "Batch"],
      ["registered", "Registered", fmtTime], ["ended", "Ended", (v) => v ? fmtTime(v) : "running"], ["why", "How"],
    ], (h.jobs || []).slice().reverse()),
    el("h3", {}, "Queries"), recordTable("history-queries", [
      ["time", "Time", fmtTime], ["job_id", "Job"], ["op", "Op"], ["args", "Arguments", (v) => typeof v === "string" ? v : JSON.stringify(v)],
      ["outcome", "Outcome"], ["bytes", "Bytes"], ["duration", "Seconds", (v) => v === undefined ? "" : Number(v).toFixed(3)],
    ], (h.queries || []).slice().reverse()));
  } catch (e) {
    showError(e);
  }
  ready();
}

async function auditPage(me) {
  const job = el("input", {id: "audit-job", type: "text", placeholder: "job id", "aria-label": "job id"});
  const load = el("button", {id: "audit-load", type: "submit"}, "Show");
  const table = el("table", {id: "audit"}, el("tbody"));
  const form = el("form", {className: "toolbar"}, job, load);
  $("main").append(el("h2", {}, "Audit log"), form, table);
  const wanted = new URLSearchParams(location.search).get("job");
  if (!me.admin) showError("only the server's admins may read the audit log");
  async function show(id) {
    try {
      const records = await api("audit", {job: id, limit: 1000});
      table.replaceChildren(
        el("thead", {}, el("tr", {}, ...["Time", "Event", "Caller", "Op", "Outcome", "Details"].map((h) => el("th", {}, h)))),
        el("tbody", {}, ...records.slice().reverse().map((r) => {
          const rest = Object.assign({}, r);
          for (const k of ["time", "event", "dn", "op", "outcome"]) delete rest[k];
          return el("tr", {}, el("td", {}, r.time), el("td", {}, r.event), el("td", {}, r.dn ?? ""),
            el("td", {}, r.op ?? ""), el("td", {}, r.outcome ?? ""), el("td", {className: "mono"}, JSON.stringify(rest)));
        })));
      clearError();
    } catch (e) {
      showError(e);
    }
  }
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    history.replaceState(null, "", "/audit?job=" + encodeURIComponent(job.value.trim()));
    show(job.value.trim());
  });
  if (wanted) {
    job.value = wanted;
    await show(wanted);
  }
  ready();
}

/* ---- routing ---- */

async function main() {
  setupToken();
  let me;
  try {
    me = await loadWho();
  } catch (e) {
    showError(e);
    ready();
    return;
  }
  let parts;
  try {
    parts = location.pathname.split("/").slice(1).map(decodeURIComponent);
  } catch (e) {
    showError("this address is not well formed");
    ready();
    return;
  }
  if (parts[0] === "" && parts.length === 1) await jobsPage(me);
  else if (parts[0] === "jobs" && parts[1] && parts.length === 2) await jobPage(me, parts[1]);
  else if (parts[0] === "jobs" && parts[1] && parts[2] === "files") await filePage(me, parts[1], parts.slice(3).filter((p) => p).join("/"));
  else if (parts[0] === "history") await historyPage(me);
  else if (parts[0] === "audit") await auditPage(me);
  else {
    showError("no such page");
    ready();
  }
}

document.addEventListener("DOMContentLoaded", main);
