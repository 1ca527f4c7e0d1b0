// The Workbook List: create, delete (after a confirmation), open; kept live over the
// websocket, so changes made in another tab or window appear here by themselves.
import { connect } from "/static/js/connection.js";
import { loadSession } from "/static/js/session.js";

const workbooks = new Map(); // id -> {id, name, description, created_at, updated_at}
const $ = (id) => document.getElementById(id);

function showError(text) {
  $("list-error").textContent = text || "";
  $("list-error").hidden = !text;
}

function render() {
  const rows = [...workbooks.values()].sort((a, b) => b.updated_at - a.updated_at ||
                                                      a.id.localeCompare(b.id));
  const body = $("workbooks").querySelector("tbody");
  body.replaceChildren(...rows.map(row));
  $("workbooks").hidden = rows.length === 0;
  $("empty").hidden = rows.length !== 0;
}

function row(wb) {
  const tr = document.createElement("tr");
  tr.dataset.workbookId = wb.id;
  const name = document.createElement("td");
  const link = document.createElement("a");
  link.href = `/workbooks/${encodeURIComponent(wb.id)}`;
  link.textContent = wb.name;
  link.className = "open-workbook";
  name.append(link);
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
  const del = document.createElement("button");
  del.type = "button";
  del.className = "danger delete-workbook";
  del.textContent = "Delete";
  del.addEventListener("click", () => confirmDelete(wb));
  actions.append(open, " ", del);
  tr.append(name, description, updated, actions);
  return tr;
}

function onMessage(message) {
  if (message.type === "workbook.created" || message.type === "workbook.updated") {
    workbooks.set(message.workbook.id, message.workbook);
    render();
  } else if (message.type === "workbook.deleted") {
    workbooks.delete(message.workbook);
    render();
  }
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

async function refresh() {
  try {
    const reply = await conn.request("workbook.list", {}, { resend: true });
    workbooks.clear();
    for (const wb of reply.workbooks) workbooks.set(wb.id, wb);
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

function confirmDelete(wb) {
  const dialog = $("confirm-delete");
  $("confirm-delete-name").textContent = wb.name;
  dialog.onclose = async () => {
    if (dialog.returnValue !== "delete") return;
    showError("");
    try {
      await conn.request("workbook.delete", { workbook: wb.id });
      workbooks.delete(wb.id);
      render();
    } catch (err) {
      showError(`"${wb.name}" was not deleted: ${err.message}`);
    }
  };
  dialog.returnValue = "";
  dialog.showModal();
}

loadSession().catch((err) => showError(err.message));
