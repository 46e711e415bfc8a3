// The dashboard's only script: it keeps the key in sessionStorage, fetches the server-rendered repo
// panel, and sends purges and wrong-hit reports through the cache API (the same auth as any client).
"use strict";

const KEY = "semcache-key";
const $ = (id) => document.getElementById(id);

function headers(extra) {
  const key = sessionStorage.getItem(KEY);
  return Object.assign(key ? { Authorization: "Bearer " + key } : {}, extra || {});
}

function say(text, bad) {
  const status = $("status");
  status.textContent = text;
  status.className = bad ? "bad" : "";
}

async function errorOf(response) {
  try {
    const body = await response.json();
    return response.status + ": " + body.error.message;
  } catch (e) {
    return "HTTP " + response.status;
  }
}

function currentRepo() {
  return $("repo").value.trim();
}

async function loadRepos() {
  const response = await fetch("/v1/cache/repos", { headers: headers() });
  const list = $("repo-list");
  list.textContent = "";
  if (!response.ok) {
    // A client key may not list repos (admin only): it types its repo instead.
    if (response.status === 401) say("This sidecar needs a key: " + (await errorOf(response)), true);
    return;
  }
  const body = await response.json();
  const options = $("repos");
  options.textContent = "";
  for (const item of body.repos) {
    const option = document.createElement("option");
    option.value = item.repo;
    options.appendChild(option);
    const link = document.createElement("a");
    link.href = "?repo=" + encodeURIComponent(item.repo);
    link.dataset.repo = item.repo;
    link.textContent = item.repo + " (" + item.entries + ")";
    if (item.repo === currentRepo()) link.className = "current";
    list.appendChild(link);
  }
  if (!currentRepo() && body.repos.length) showRepo(body.repos[0].repo);
}

async function loadPanel() {
  const repo = currentRepo();
  if (!repo) return;
  const response = await fetch("/ui/repos/" + encodeURIComponent(repo), { headers: headers() });
  if (!response.ok) {
    say(await errorOf(response), true);
    return;
  }
  $("panel").innerHTML = await response.text(); // rendered and escaped by the server
  $("panel").dataset.repo = repo;
}

function showRepo(repo) {
  $("repo").value = repo;
  history.replaceState(null, "", "?repo=" + encodeURIComponent(repo));
  say("");
  refresh();
}

async function refresh() {
  await Promise.all([loadRepos(), loadPanel()]);
}

async function purge(repo) {
  if (!confirm("Purge every entry of " + repo + "? This cannot be undone.")) return;
  say("purging " + repo + " …");
  const response = await fetch("/v1/cache/repos/" + encodeURIComponent(repo), {
    method: "DELETE",
    headers: headers(),
  });
  if (!response.ok) {
    say("purge refused: " + (await errorOf(response)), true);
    return;
  }
  const body = await response.json();
  say("purged " + repo + ": " + body.removed + (body.removed === 1 ? " entry" : " entries") + " removed");
  await refresh();
}

async function report(repo, button) {
  if (!confirm("Report this hit as wrong? Its entry is evicted and the pair kept for tuning.")) return;
  const payload = {
    entry_id: Number(button.dataset.entry),
    prompt: button.dataset.prompt,
    similarity: Number(button.dataset.similarity),
  };
  const response = await fetch("/v1/cache/repos/" + encodeURIComponent(repo) + "/feedback", {
    method: "POST",
    headers: headers({ "Content-Type": "application/json" }),
    body: JSON.stringify(payload),
  });
  if (!response.ok) {
    say("report refused: " + (await errorOf(response)), true);
    return;
  }
  say("reported entry " + payload.entry_id + " as a wrong hit: it is evicted");
  await loadPanel();
}

function start() {
  const params = new URLSearchParams(location.search);
  if (params.get("repo")) $("repo").value = params.get("repo");
  $("pick").addEventListener("submit", (event) => {
    event.preventDefault();
    if (currentRepo()) showRepo(currentRepo());
  });
  $("auth").addEventListener("submit", (event) => {
    event.preventDefault();
    sessionStorage.setItem(KEY, $("key").value.trim());
    $("key").value = "";
    say("key kept for this tab");
    refresh();
  });
  $("forget").addEventListener("click", () => {
    sessionStorage.removeItem(KEY);
    say("key forgotten");
  });
  $("repo-list").addEventListener("click", (event) => {
    const link = event.target.closest("a[data-repo]");
    if (!link) return;
    event.preventDefault();
    showRepo(link.dataset.repo);
  });
  $("panel").addEventListener("click", (event) => {
    const button = event.target.closest("button[data-action]");
    const repo = $("panel").dataset.repo;
    if (!button || !repo) return;
    if (button.dataset.action === "purge") purge(repo);
    if (button.dataset.action === "report") report(repo, button);
  });
  setInterval(() => {
    if ($("refresh").checked && !document.hidden) refresh();
  }, 5000);
  refresh();
}

start();
