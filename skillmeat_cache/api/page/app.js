// The cache's page: projects, search, a project's artifacts, live updates from /events.
// Plain JS, no build step. Every text from the cache is escaped before it reaches HTML.
"use strict";

const API = "/api/v1/cache";
const PAGE = 1000;
const projects = new Map(); // id -> project summary
let selected = null;

const $ = (id) => document.getElementById(id);
const esc = (value) =>
  String(value ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);

async function getJSON(path, options) {
  const response = await fetch(API + path, options);
  const body = await response.json();
  if (!response.ok) throw new Error(body.detail || response.statusText);
  return body;
}

function ago(iso) {
  if (!iso) return "never";
  const minutes = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 60000));
  if (minutes < 1) return "just now";
  if (minutes < 60) return `${minutes} min ago`;
  const hours = Math.round(minutes / 60);
  return hours < 48 ? `${hours} h ago` : `${Math.round(hours / 24)} days ago`;
}

// Code point order by name, then path: the server's order.
const byNameThenPath = (a, b) =>
  a.name < b.name ? -1 : a.name > b.name ? 1 : a.path < b.path ? -1 : a.path > b.path ? 1 : 0;

function rowHTML(p) {
  const outdated = p.outdated_count ? "num warn" : "num";
  return `<tr data-id="${esc(p.id)}" data-testid="project-row" tabindex="0"${p.id === selected ? ' aria-selected="true"' : ""}>
<td><span class="name">${esc(p.name)}</span><span class="path">${esc(p.path)}</span></td>
<td class="num" data-testid="artifact-count">${p.artifact_count}</td>
<td class="${outdated}" data-testid="outdated-count">${p.outdated_count}</td>
<td><span class="status ${esc(p.status)}">${esc(p.status)}</span></td>
<td class="ago" data-at="${esc(p.last_fetched)}">${ago(p.last_fetched)}</td></tr>`;
}

function renderProjects() {
  const list = [...projects.values()].sort(byNameThenPath);
  $("rows").innerHTML = list.map(rowHTML).join("");
  $("count").textContent = `(${list.length})`;
  document.body.dataset.rendered = String(list.length);
  performance.mark("projects-rendered");
}

function updateRow(p) {
  const row = document.querySelector(`tr[data-id="${CSS.escape(p.id)}"]`);
  const old = projects.get(p.id);
  projects.set(p.id, p);
  if (row && old && old.name === p.name && old.path === p.path) {
    row.outerHTML = rowHTML(p); // same place in the order
  } else {
    renderProjects();
  }
}

async function loadProjects() {
  projects.clear();
  for (let skip = 0; ; skip += PAGE) {
    const page = await getJSON(`/projects?skip=${skip}&limit=${PAGE}`);
    page.items.forEach((p) => projects.set(p.id, p));
    if (skip + page.items.length >= page.total || page.items.length === 0) break;
  }
  renderProjects();
}

async function loadSummary() {
  const s = await getJSON("/status");
  const p = s.projects;
  const watch = s.watcher.mode === "off" ? "not watching" : `watching (${s.watcher.mode})`;
  $("summary").textContent =
    `${p.active + p.stale + p.error} projects · ${s.artifacts} artifacts · ${s.outdated} outdated · ${watch}`;
  $("summary").title = s.watcher.warning || s.database;
}

function badges(a) {
  let out = "";
  if (a.is_outdated) out += `<span class="badge outdated" data-testid="badge-outdated">outdated</span>`;
  if (a.local_modified) out += `<span class="badge modified" data-testid="badge-modified">modified</span>`;
  return out;
}

function artifactHTML(a) {
  const tags = a.tags.map((t) => `<span class="tag">${esc(t)}</span>`).join("");
  return `<tr data-testid="artifact-row">
<td><span class="type ${esc(a.type)}">${esc(a.type)}</span></td>
<td><span class="name">${esc(a.name)}</span> ${badges(a)}<span class="desc">${esc(a.description)}</span>${tags ? `<span class="tags">${tags}</span>` : ""}</td>
<td>${esc(a.deployed_version || "—")}</td><td>${esc(a.upstream_version || "—")}</td></tr>`;
}

async function showProject(id) {
  selected = id;
  document.querySelectorAll("tr[aria-selected]").forEach((r) => r.removeAttribute("aria-selected"));
  document.querySelector(`tr[data-id="${CSS.escape(id)}"]`)?.setAttribute("aria-selected", "true");
  let p;
  try {
    p = await getJSON(`/projects/${encodeURIComponent(id)}`);
  } catch (err) {
    if (selected === id) {
      $("detail").innerHTML = `<p class="error" data-testid="detail-error">Could not read this project: ${esc(err.message)}</p>`;
    }
    return;
  }
  if (selected !== id) return;
  const warnings = (p.warnings || []).map((w) => `<li>${esc(w.message)} <span class="path">${esc(w.path)}</span></li>`);
  $("detail").innerHTML = `<h2 data-testid="detail-name">${esc(p.name)}</h2>
<p class="path">${esc(p.path)}</p>
<p>${esc(p.description || "")}</p>
<p class="meta">${p.artifact_count} artifacts · ${p.outdated_count} outdated · read ${ago(p.last_fetched)}
 · <span class="status ${esc(p.status)}">${esc(p.status)}</span>${p.error_message ? ` · ${esc(p.error_message)}` : ""}</p>
${warnings.length ? `<details><summary>${warnings.length} warnings</summary><ul>${warnings.join("")}</ul></details>` : ""}
<table><thead><tr><th scope="col">Type</th><th scope="col">Artifact</th><th scope="col">Deployed</th><th scope="col">Upstream</th></tr></thead>
<tbody>${p.artifacts.map(artifactHTML).join("")}</tbody></table>`;
}

let searchTimer = null;
function onSearch() {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(async () => {
    const q = $("search").value.trim();
    const box = $("results");
    if (!q) {
      box.hidden = true;
      box.innerHTML = "";
      return;
    }
    const hits = await getJSON(`/search?q=${encodeURIComponent(q)}&limit=50`);
    if ($("search").value.trim() !== q) return;
    const items = hits.items.map(
      (h) => `<li data-testid="search-hit" data-project="${esc(h.project_id)}" tabindex="0">
<span class="type ${esc(h.type)}">${esc(h.type)}</span> <span class="name">${esc(h.name)}</span> ${badges(h)}
<span class="path">${esc(h.project_path)}</span></li>`,
    );
    box.innerHTML = `<p>${hits.total} matches${hits.total > hits.items.length ? `, the best ${hits.items.length}` : ""}</p><ul>${items.join("")}</ul>`;
    box.hidden = false;
  }, 200);
}

function listen() {
  const events = new EventSource(API + "/events");
  events.addEventListener("project_updated", (e) => {
    const data = JSON.parse(e.data);
    if (data.change === "removed") {
      projects.delete(data.id);
      renderProjects();
    } else {
      updateRow(data.project);
    }
    if (data.id === selected && data.change !== "removed") showProject(data.id);
    loadSummary();
  });
  events.addEventListener("refresh_started", (e) => {
    $("progress").textContent = `Refreshing (${JSON.parse(e.data).reason})…`;
  });
  events.addEventListener("refresh_progress", (e) => {
    const data = JSON.parse(e.data);
    $("progress").textContent = `Refreshing: ${data.projects_done} projects read`;
  });
  events.addEventListener("refresh_finished", (e) => {
    const job = JSON.parse(e.data);
    const s = job.summary;
    $("progress").textContent = job.state === "done"
      ? `Refreshed ${s.projects_seen} projects: ${s.projects_added} added, ${s.projects_updated} updated`
      : `Refresh failed: ${job.error}`;
    $("refresh").disabled = false;
    loadSummary();
  });
  events.addEventListener("reset", () => loadProjects());
  events.addEventListener("cache_recovered", (e) => {
    const data = JSON.parse(e.data);
    $("progress").textContent = `The cache was damaged and is rebuilt; the damaged file is kept as ${data.moved_to}`;
    loadProjects().then(loadSummary).catch((err) => ($("progress").textContent += ` (reload failed: ${err.message})`));
    if (selected) showProject(selected);
  });
}

function init() {
  $("rows").addEventListener("click", (e) => {
    const row = e.target.closest("tr[data-id]");
    if (row) showProject(row.dataset.id);
  });
  $("rows").addEventListener("keydown", (e) => {
    const row = e.target.closest("tr[data-id]");
    if (row && e.key === "Enter") showProject(row.dataset.id);
  });
  $("results").addEventListener("click", (e) => {
    const hit = e.target.closest("li[data-project]");
    if (hit) showProject(hit.dataset.project);
  });
  $("search").addEventListener("input", onSearch);
  $("refresh").addEventListener("click", async () => {
    $("refresh").disabled = true;
    $("progress").textContent = "Refresh requested…";
    try {
      const job = await getJSON("/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({}),
      });
      if (job.state === "done") $("refresh").disabled = false;
    } catch (err) {
      $("progress").textContent = `Refresh failed: ${err.message}`;
      $("refresh").disabled = false;
    }
  });
  setInterval(() => {
    document.querySelectorAll("td.ago").forEach((td) => (td.textContent = ago(td.dataset.at)));
  }, 30000);
  listen();
  loadSummary();
  loadProjects();
}

init();
