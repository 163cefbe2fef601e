/*
 * JobMon browser view: a job's files (listing, pages, hex, download) and
 * their live follow.  Loaded before app.js, which holds the DOM contract
 * (see its header) and the helpers used here (el, api, showError...).
 */
"use strict";

/* ---- files ---- */

function isBinary(bytes) {
  if (bytes.includes(0)) return true;
  try {
    new TextDecoder("utf-8", {fatal: true}).decode(bytes);
    return false;
  } catch (e) {
    return true;
  }
}

function hexLines(bytes, offset) {
  const lines = [];
  for (let i = 0; i < bytes.length; i += 16) {
    const row = bytes.subarray(i, i + 16);
    const hex = Array.from(row, (b) => b.toString(16).padStart(2, "0")).join(" ");
    const ascii = Array.from(row, (b) => b >= 32 && b < 127 ? String.fromCharCode(b) : ".").join("");
    lines.push([(offset + i).toString(16).padStart(8, "0"), hex.padEnd(48) + "  " + ascii]);
  }
  return lines;
}

/* The exact bytes of the path shown (base64), for names that are not
 * UTF-8; null for the others. */
let exactPath = null;

function pathArgs(path) {
  return exactPath ? {path_base64: exactPath} : {path: path};
}

function bytesB64(bytes) {
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

function concat(...arrays) {
  const out = new Uint8Array(arrays.reduce((n, a) => n + a.length, 0));
  let at = 0;
  for (const a of arrays) {
    out.set(a, at);
    at += a.length;
  }
  return out;
}

async function filePage(me, job, path) {
  exactPath = new URLSearchParams(location.search).get("path_base64");
  const main = $("main");
  const crumbs = el("p", {id: "crumbs"}, el("a", {href: jobPath(job)}, "Job " + job), " / ", el("a", {href: filePath(job, "")}, "files"));
  const parts = path.split("/").filter((p) => p);
  parts.forEach((part, i) => crumbs.append(" / ", el("a", {href: filePath(job, parts.slice(0, i + 1).join("/"))}, part)));
  main.append(el("h2", {id: "job-title"}, path || "."), crumbs);
  document.title = "JobMon: " + job + ": " + (path || ".");
  let info;
  try {
    info = path || exactPath ? await api("query", Object.assign({job: job, op: "stat"}, pathArgs(path))) : {type: "dir"};
  } catch (e) {
    showError(e);
    ready();
    return;
  }
  if (info.type === "dir") await listing(job, path, main);
  else await fileView(job, path, info, main);
  ready();
}

async function listing(job, path, main) {
  const tbody = el("tbody");
  main.append(el("table", {id: "file-listing"},
    el("thead", {}, el("tr", {}, ...["Name", "Type", "Size", "Modified", "Mode"].map((h) => el("th", {}, h)))), tbody));
  try {
    const r = await api("query", Object.assign({job: job, op: "ls"}, pathArgs(path || ".")));
    for (const entry of r.entries || []) {
      const target = (path ? path + "/" : "") + entry.name;
      let href = filePath(job, target);
      if (exactPath || entry.name_bytes_base64) {
        // A name that is not UTF-8 (shown with \xNN): the page asks for
        // its exact bytes.
        const name = entry.name_bytes_base64 ? b64bytes(entry.name_bytes_base64) : new TextEncoder().encode(entry.name);
        const dir = exactPath ? b64bytes(exactPath) : new TextEncoder().encode(path);
        href += "?path_base64=" + encodeURIComponent(bytesB64(dir.length ? concat(dir, new Uint8Array([47]), name) : name));
      }
      tbody.append(el("tr", {"data-name": entry.name},
        el("td", {className: "mono"}, el("a", {href: href}, entry.name + (entry.type === "dir" ? "/" : "")),
          entry.type === "link" ? " → " + (entry.target || "") : null),
        el("td", {}, entry.type),
        el("td", {className: "num"}, entry.type === "dir" ? "" : fmtBytes(entry.size)),
        el("td", {}, fmtTime(entry.mtime)),
        el("td", {className: "mono"}, (entry.mode || 0).toString(8).padStart(4, "0"))));
    }
    if (r.truncated) main.append(el("p", {className: "muted"}, "listing cut at the daemon's entry cap"));
  } catch (e) {
    showError(e);
  }
}

async function fileView(job, path, info, main) {
  const content = el("div", {id: "file-content"});
  const head = el("button", {id: "file-head", type: "button"}, "Head");
  const tail = el("button", {id: "file-tail", type: "button"}, "Tail");
  const prev = el("button", {id: "file-prev", type: "button"}, "◀ Previous page");
  const next = el("button", {id: "file-next", type: "button"}, "Next page ▶");
  const hex = el("input", {id: "file-hex", type: "checkbox"});
  const download = el("button", {id: "file-download", type: "button"}, "Download");
  const status = el("span", {className: "muted", id: "file-status"});
  main.append(el("p", {}, fmtBytes(info.size) + ", modified " + fmtTime(info.mtime)),
    el("div", {className: "toolbar"}, head, tail, prev, next, el("label", {}, hex, " hex"), download, status), content);

  // Line numbers are known for pages read on from the start of the file.
  const lineAt = new Map([[0, 1]]);
  let view = {offset: 0, bytes: new Uint8Array(0), size: info.size};

  function show() {
    const binary = hex.checked || isBinary(view.bytes);
    const fragment = document.createDocumentFragment();
    if (binary) {
      for (const [no, text] of hexLines(view.bytes, view.offset)) {
        fragment.append(el("div", {className: "line"}, el("span", {className: "line-no"}, no), el("span", {className: "line-text"}, text)));
      }
    } else {
      const text = new TextDecoder("utf-8").decode(view.bytes);
      const lines = text.split("\n");
      if (lines.length > 1 && lines[lines.length - 1] === "") lines.pop();
      const first = lineAt.get(view.offset);
      lines.forEach((line, i) => {
        fragment.append(el("div", {className: "line"},
          el("span", {className: "line-no"}, first ? first + i : "+" + (i + 1)),
          el("span", {className: "line-text"}, line)));
      });
      if (first) {
        const count = (text.match(/\n/g) || []).length;
        lineAt.set(view.offset + view.bytes.length, first + count);
      }
    }
    content.replaceChildren(fragment);
    status.textContent = "bytes " + view.offset + "–" + (view.offset + view.bytes.length) + " of " + view.size + (binary ? " (hex)" : "");
    prev.disabled = view.offset === 0;
    next.disabled = view.offset + view.bytes.length >= view.size;
  }

  async function load(params) {
    try {
      const r = await api("query", Object.assign({job: job}, pathArgs(path), params));
      view = {offset: r.offset || 0, bytes: b64bytes(r.data_base64), size: r.size};
      show();
      clearError();
    } catch (e) {
      showError(e);
    }
  }

  head.addEventListener("click", () => load({op: "cat", offset: 0, length: FILE_PAGE}));
  tail.addEventListener("click", () => load({op: "tail", lines: 500}));
  next.addEventListener("click", () => load({op: "cat", offset: view.offset + view.bytes.length, length: FILE_PAGE}));
  prev.addEventListener("click", () => load({op: "cat", offset: Math.max(0, view.offset - FILE_PAGE), length: Math.min(FILE_PAGE, view.offset)}));
  hex.addEventListener("change", show);
  download.addEventListener("click", async () => {
    const chunks = [];
    let offset = 0;
    try {
      for (;;) {
        const r = await api("query", Object.assign({job: job, op: "cat", offset: offset, length: 1048576}, pathArgs(path)));
        const bytes = b64bytes(r.data_base64);
        chunks.push(bytes);
        offset += bytes.length;
        status.textContent = "downloading: " + offset + " bytes";
        if (!bytes.length || offset >= r.size) break;
      }
    } catch (e) {
      showError(e);
      return;
    }
    const url = URL.createObjectURL(new Blob(chunks, {type: "application/octet-stream"}));
    const a = el("a", {href: url, download: path.split("/").pop() || "file"});
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    status.textContent = "downloaded " + offset + " bytes";
  });
  await load({op: "cat", offset: 0, length: FILE_PAGE});
  followSection(job, path, main);
}

/* Live follow: the Server-Sent Events of /api/follow, read with fetch (so
 * that a bearer token goes in the Authorization header), resumed from the
 * last event's id (the next offset) after a reconnection. */
function followSection(job, path, main) {
  const start = el("button", {id: "follow-start", type: "button"}, "Follow");
  const stop = el("button", {id: "follow-stop", type: "button", disabled: true}, "Stop");
  const status = el("span", {id: "follow-status", className: "muted"});
  const output = el("div", {id: "follow-output"});
  main.append(el("section", {}, el("h3", {}, "Follow"), el("div", {className: "toolbar"}, start, stop, status), output));
  let controller = null;
  let partial = null;
  let decoder = null;

  function append(text) {
    const pieces = text.split("\n");
    pieces.forEach((piece, i) => {
      if (partial) {
        partial.textContent += piece;
      } else if (piece !== "" || i < pieces.length - 1) {
        partial = el("div", {className: "line-text"}, piece);
        output.append(partial);
      }
      if (i < pieces.length - 1) partial = null;
    });
    while (output.childElementCount > FOLLOW_MAX_LINES) output.firstElementChild.remove();
    output.scrollTop = output.scrollHeight;
  }

  function onEvent(name, data) {
    if (name === "data") {
      if (data.rotated) append("\n[file replaced or truncated]\n");
      if (data.missing) status.textContent = "file missing; still following";
      else status.textContent = "following from byte " + data.next_offset;
      append(decoder.decode(b64bytes(data.base64), {stream: true}));
    } else if (name === "end") {
      status.textContent = data.message;
      return "stop";
    } else if (name === "failure") {
      const retry = [408, 410, 429, 503].includes(data.code);
      showError(new ApiError(data.code, data.message));
      if (!retry) {
        status.textContent = "stopped: " + data.message;
        return "stop";
      }
    }
    return null;
  }

  async function run(offset) {
    controller = new AbortController();
    const signal = controller.signal;
    decoder = new TextDecoder("utf-8");
    let lastId = String(offset);
    start.disabled = true;
    stop.disabled = false;
    while (!signal.aborted) {
      let finished = false;
      try {
        const url = "/api/follow?" + new URLSearchParams(Object.assign({job: job, offset: lastId}, pathArgs(path)));
        const response = await fetch(url, {
          headers: authHeaders({"Accept": "text/event-stream", "Last-Event-ID": lastId}),
          credentials: "same-origin", cache: "no-store", signal: signal,
        });
        if (!response.ok) {
          await decode(response);
        }
        const reader = response.body.getReader();
        const text = new TextDecoder("utf-8");
        let buffer = "";
        for (;;) {
          const {value, done} = await reader.read();
          if (done) break;
          buffer += text.decode(value, {stream: true});
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let name = "message", data = "", id = null;
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "event") name = value;
              else if (field === "data") data += value;
              else if (field === "id") id = value;
            }
            if (id !== null) lastId = id;
            if (!data) continue;
            if (onEvent(name, JSON.parse(data)) === "stop") finished = true;
          }
          if (finished) break;
        }
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof ApiError && ![408, 410, 429, 503, 504].includes(e.code) && e.status !== 504) {
          showError(e);
          break;
        }
        status.textContent = "connection lost; resuming from byte " + lastId;
      }
      if (finished) break;
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    controller.abort();
    start.disabled = false;
    stop.disabled = true;
  }

  start.addEventListener("click", async () => {
    output.replaceChildren();
    partial = null;
    try {
      const r = await api("query", Object.assign({job: job, op: "tail", lines: 10}, pathArgs(path)));
      decoder = new TextDecoder("utf-8");
      append(decoder.decode(b64bytes(r.data_base64), {stream: true}));
      run((r.offset || 0) + b64bytes(r.data_base64).length);
    } catch (e) {
      showError(e);
    }
  });
  stop.addEventListener("click", () => {
    if (controller) controller.abort();
    status.textContent = "stopped";
  });
}
