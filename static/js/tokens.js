// The API tokens page: create a token (shown once), list and revoke. Plain fetch() to
// main_server's /api/tokens (JSON only, same origin: no cross-site form can reach it).
import { loadSession } from "/static/js/session.js";

const $ = (id) => document.getElementById(id);
const when = (t) => (t ? new Date(t * 1000).toLocaleString() : "never");

function showError(text) {
  $("token-error").textContent = text || "";
  $("token-error").hidden = !text;
}

function cell(text, className) {
  const td = document.createElement("td");
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function row(token) {
  const tr = document.createElement("tr");
  tr.dataset.tokenId = token.id;
  const actions = document.createElement("td");
  actions.className = "actions";
  const revoke = document.createElement("button");
  revoke.type = "button";
  revoke.className = "danger revoke-token";
  revoke.textContent = "Revoke";
  revoke.addEventListener("click", () => revokeToken(token));
  actions.append(revoke);
  tr.append(cell(token.name, "token-name"), cell(token.scope, "token-scope"),
            cell(when(token.created_at), "muted"), cell(when(token.expires_at), "muted"),
            cell(when(token.last_used_at), "muted token-last-used"), actions);
  return tr;
}

async function answer(response) {
  const body = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(body.message || `main_server answered ${response.status}`);
  return body;
}

async function refresh() {
  const body = await answer(await fetch("/api/tokens", { credentials: "same-origin" }));
  $("token-form").hidden = !body.may_create;
  $("anonymous-note").hidden = body.may_create;
  $("token-days").max = String(Math.floor(body.max_days));
  $("tokens").querySelector("tbody").replaceChildren(...body.tokens.map(row));
  $("tokens").hidden = body.tokens.length === 0;
  $("no-tokens").hidden = body.tokens.length !== 0;
}

async function createToken(event) {
  event.preventDefault();
  showError("");
  try {
    const body = await answer(await fetch("/api/tokens", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ name: $("token-name").value, scope: $("token-scope").value,
                             expires_in_days: Number($("token-days").value) }),
    }));
    $("new-token-name").textContent = body.item.name;
    $("new-token-secret").textContent = body.token;
    $("new-token").hidden = false;
    $("token-name").value = "";
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

async function revokeToken(token) {
  showError("");
  try {
    await answer(await fetch(`/api/tokens/${encodeURIComponent(token.id)}`, {
      method: "DELETE", credentials: "same-origin" }));
    await refresh();
  } catch (error) {
    showError(error.message);
  }
}

await loadSession();
$("token-form").addEventListener("submit", createToken);
// the secret is shown once: leaving or reloading the page forgets it
refresh().catch((error) => showError(error.message))
  .finally(() => { document.body.dataset.ready = "true"; });
