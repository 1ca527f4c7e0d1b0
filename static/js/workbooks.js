// The Workbook List: create, delete (after a confirmation), open, share, and keep in folders;
// kept live over the websocket, so changes made in another tab or window appear here by
// themselves. Workbooks shared with the user are marked with their owner and the user's
// right; each user puts any workbook they see (their own or shared) in folders of their own.
import { connect } from "/static/js/connection.js";
import { loadSession } from "/static/js/session.js";

// id -> {id, name, description, created_at, updated_at, access, owner, shared, folder}
const workbooks = new Map();
const folders = new Map(); // id -> {id, name, created_at}
const $ = (id) => document.getElementById(id);

function showError(text) {
  $("list-error").textContent = text || "";
  $("list-error").hidden = !text;
}

function el(tag, props = {}, ...children) {
  const node = Object.assign(document.createElement(tag), props);
  node.append(...children);
  return node;
}

function render() {
  const rows = [...workbooks.values()].sort((a, b) => b.updated_at - a.updated_at ||
                                                      a.id.localeCompare(b.id));
  const body = $("workbooks").querySelector("tbody");
  const sorted = [...folders.values()].sort((a, b) => a.name.localeCompare(b.name));
  const parts = [];
  for (const folder of sorted) {
    parts.push(folderRow(folder, rows.filter((wb) => wb.folder === folder.id).length));
    parts.push(...rows.filter((wb) => wb.folder === folder.id).map(row));
  }
  const loose = rows.filter((wb) => !wb.folder || !folders.has(wb.folder));
  if (sorted.length && loose.length) {
    parts.push(el("tr", { className: "folder-heading" },
      el("th", { colSpan: 4, textContent: "Not in a folder" })));
  }
  parts.push(...loose.map(row));
  body.replaceChildren(...parts);
  $("workbooks").hidden = rows.length === 0 && folders.size === 0;
  $("empty").hidden = rows.length !== 0;
}

function folderRow(folder, count) {
  const rename = el("button", { type: "button", className: "secondary rename-folder",
    textContent: "Rename", onclick: () => renameFolder(folder) });
  const del = el("button", { type: "button", className: "danger delete-folder",
    textContent: "Delete folder", onclick: () => deleteFolder(folder) });
  const tr = el("tr", { className: "folder-heading" },
    el("th", { colSpan: 3, textContent: `Folder: ${folder.name} (${count})` }),
    el("td", { className: "actions" }, rename, " ", del));
  tr.dataset.folderId = folder.id;
  return tr;
}

function moveSelect(wb) {
  const select = el("select", { className: "move-workbook", title: "Folder" },
    el("option", { value: "", textContent: "(no folder)" }),
    ...[...folders.values()].map((f) => el("option", { value: f.id, textContent: f.name })));
  select.value = wb.folder && folders.has(wb.folder) ? wb.folder : "";
  select.addEventListener("change", () => act(`"${wb.name}" was not moved`, async () => {
    await conn.request("folder.move", { workbook: wb.id, folder: select.value || null });
    workbooks.set(wb.id, { ...wb, folder: select.value || null });
  }));
  return select;
}

function row(wb) {
  const tr = document.createElement("tr");
  tr.dataset.workbookId = wb.id;
  tr.dataset.access = wb.access || "owner";
  const name = document.createElement("td");
  const link = document.createElement("a");
  link.href = `/workbooks/${encodeURIComponent(wb.id)}`;
  link.textContent = wb.name;
  link.className = "open-workbook";
  name.append(link);
  if (wb.shared) {
    name.append(" ", el("span", { className: "badge shared-mark",
      textContent: `shared by ${wb.owner} (${wb.access})` }));
  }
  const description = document.createElement("td");
  description.textContent = wb.description;
  const updated = document.createElement("td");
  updated.className = "muted";
  updated.textContent = new Date(wb.updated_at * 1000).toLocaleString();
  const actions = document.createElement("td");
  actions.className = "actions";
  const open = document.createElement("a");
  open.href = link.href;
  open.className = "button secondary";
  open.textContent = "Open";
  actions.append(open, " ", moveSelect(wb));
  if (wb.access === "owner" || wb.access === "grant" || !wb.access) {
    actions.append(" ", el("button", { type: "button", className: "secondary share-workbook",
      textContent: "Share", onclick: () => openShare(wb) }));
  }
  if (!wb.shared) {
    actions.append(" ", el("button", { type: "button", className: "danger delete-workbook",
      textContent: "Delete", onclick: () => confirmDelete(wb) }));
  } else {
    actions.append(" ", el("button", { type: "button", className: "secondary leave-workbook",
      textContent: "Leave", onclick: () => confirmLeave(wb) }));
  }
  tr.append(name, description, updated, actions);
  return tr;
}

async function act(what, fn) {
  showError("");
  try {
    await fn();
    render();
  } catch (err) {
    showError(`${what}: ${err.message}`);
  }
}

function onMessage(message) {
  if (message.type === "workbook.created" || message.type === "workbook.updated") {
    const known = workbooks.get(message.workbook.id) || {};
    workbooks.set(message.workbook.id, { ...known, ...message.workbook });
  } else if (message.type === "workbook.deleted") {
    workbooks.delete(message.workbook);
  } else if (message.type === "workbook.moved" && workbooks.has(message.workbook)) {
    workbooks.get(message.workbook).folder = message.folder;
  } else if (message.type === "folder.saved") {
    folders.set(message.folder.id, message.folder);
  } else if (message.type === "folder.deleted") {
    folders.delete(message.folder);
  } else {
    return;
  }
  render();
}

const conn = connect({
  purpose: "list",
  onMessage,
  statusElement: $("connection-status"),
  onState(state) {
    document.body.dataset.connection = state;
    if (state === "open") refresh(); // first time, and after every reconnect
  },
});

// A share made through another wssvc than this list's reaches it at the next listing: list
// again whenever the page is shown again.
document.addEventListener("visibilitychange", () => {
  if (document.visibilityState === "visible" && document.body.dataset.ready) refresh();
});

async function refresh() {
  try {
    const reply = await conn.request("workbook.list", {}, { resend: true });
    workbooks.clear();
    for (const wb of reply.workbooks) workbooks.set(wb.id, wb);
    folders.clear();
    for (const folder of reply.folders || []) folders.set(folder.id, folder);
    render();
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(`The workbooks could not be listed: ${err.message}`);
  }
}

$("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("new-name").value.trim();
  if (!name) return;
  $("create").disabled = true;
  showError("");
  try {
    const reply = await conn.request("workbook.create",
                                     { name, description: $("new-description").value.trim() });
    workbooks.set(reply.workbook.id, reply.workbook);
    render();
    $("new-name").value = "";
    $("new-description").value = "";
  } catch (err) {
    showError(`The workbook was not created: ${err.message}`); // what was typed stays
  } finally {
    $("create").disabled = false;
  }
});

$("import-file").addEventListener("change", async (event) => {
  const file = event.target.files[0];
  if (!file) return;
  showError("");
  try {
    let content;
    try {
      content = JSON.parse(await file.text());
    } catch {
      throw new Error(`${file.name} is not a JSON file`);
    }
    const reply = await conn.request("workbook.import", { content });
    workbooks.set(reply.workbook.id, reply.workbook);
    render();
  } catch (err) {
    showError(`${file.name} was not imported: ${err.message}`); // names the path at fault
  } finally {
    event.target.value = "";
  }
});

// Asks in the dialog `id` (its <strong data-name> shows the workbook's name); on its
// "yes" value sends `type` for the workbook and takes it off the list.
function confirmThen(id, wb, type, failed) {
  const dialog = $(id);
  dialog.querySelector("[data-name]").textContent = wb.name;
  dialog.onclose = async () => {
    if (dialog.returnValue !== "yes") return;
    showError("");
    try {
      await conn.request(type, { workbook: wb.id });
      workbooks.delete(wb.id);
      render();
    } catch (err) {
      showError(`"${wb.name}" ${failed}: ${err.message}`);
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
}

const confirmDelete = (wb) => confirmThen("confirm-delete", wb, "workbook.delete",
  "was not deleted");
const confirmLeave = (wb) => confirmThen("confirm-leave", wb, "workbook.leave",
  "is still shared with you");

$("folder-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const name = $("new-folder").value.trim();
  if (!name) return;
  act("The folder was not created", async () => {
    const reply = await conn.request("folder.create", { name });
    folders.set(reply.folder.id, reply.folder);
    $("new-folder").value = "";
  });
});

function renameFolder(folder) {
  const name = window.prompt("New name of the folder", folder.name);
  if (!name || !name.trim()) return;
  act("The folder was not renamed", async () => {
    const reply = await conn.request("folder.rename", { folder: folder.id, name: name.trim() });
    folders.set(reply.folder.id, reply.folder);
  });
}

function deleteFolder(folder) {
  act(`The folder "${folder.name}" was not deleted`, async () => {
    await conn.request("folder.delete", { folder: folder.id });
    folders.delete(folder.id);
  });
}

// -- sharing ---------------------------------------------------------------------------------

let sharing = null; // the workbook whose shares the dialog shows

function shareError(text) {
  $("share-error").textContent = text || "";
  $("share-error").hidden = !text;
}

async function showShares() {
  const reply = await conn.request("workbook.shares", { workbook: sharing.id });
  $("share-list").replaceChildren(...reply.shares.map((s) => {
    const li = el("li", {}, `${s.name}${s.email && s.email !== s.name ? ` <${s.email}>` : ""}`
      + ` — ${s.access} `);
    li.dataset.user = s.user;
    li.append(el("button", { type: "button", className: "secondary revoke-share",
      textContent: "Revoke", onclick: () => revoke(s) }));
    return li;
  }));
  $("share-none").hidden = reply.shares.length !== 0;
}

async function revoke(s) {
  shareError("");
  try {
    await conn.request("workbook.unshare", { workbook: sharing.id, user: s.user });
    await showShares();
  } catch (err) {
    shareError(`${s.name} keeps their access: ${err.message}`);
  }
}

async function openShare(wb) {
  sharing = wb;
  $("share-name").textContent = wb.name;
  shareError("");
  $("share-list").replaceChildren();
  $("share-dialog").showModal();
  try {
    await showShares();
  } catch (err) {
    shareError(err.message);
  }
}

$("share-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const user = $("share-user").value.trim();
  if (!user) return;
  shareError("");
  try {
    await conn.request("workbook.share",
                       { workbook: sharing.id, user, access: $("share-access").value });
    $("share-user").value = "";
    await showShares();
  } catch (err) {
    shareError(`Not shared: ${err.message}`);
  }
});

$("share-close").addEventListener("click", () => $("share-dialog").close());

loadSession().catch((err) => showError(err.message));
