// The Workbook page. The shell: connects to the wssvc that serves this workbook (through
// connection.js, which reconnects by itself), shows the workbook's name, and leaves
// #workbook-content for the sources, scenes and calculations UI.
import { connect } from "/static/js/connection.js";
import { loadSession } from "/static/js/session.js";
import { WorkbookContents } from "/static/js/workbook-contents.js";

const $ = (id) => document.getElementById(id);
export const workbookId = decodeURIComponent(window.location.pathname.split("/").pop());
export const content = $("workbook-content");

function showError(text) {
  $("workbook-error").textContent = text || "";
  $("workbook-error").hidden = !text;
}

let contents = null;

function onMessage(message) {
  if (message.type === "hello") contents?.hello(message);
  else if (contents?.handle(message)) return;
  if (message.type === "workbook.updated" && message.workbook.id === workbookId) {
    showWorkbook(message.workbook);
  } else if (message.type === "workbook.deleted" && message.workbook === workbookId) {
    showError("This workbook was deleted, or is no longer shared with you.");
  }
}

// A read share sees the page without its edit controls (the worker refuses an edit anyway,
// `forbidden`): body[data-access="read"] hides them (etckit.css).
function showWorkbook(wb) {
  if (wb.access) document.body.dataset.access = wb.access;
  if (wb.access === "read" && !$("access-note")) {
    $("workbook-description").after(Object.assign(document.createElement("p"), {
      id: "access-note", className: "muted",
      textContent: "Shared with you to read: you can look, plot and download, not change it." }));
  }
  $("workbook-name").textContent = wb.name;
  $("workbook-description").textContent = wb.description;
  document.title = `etckit — ${wb.name}`;
}

export const conn = connect({
  purpose: "workbook",
  workbook: workbookId,
  onMessage,
  statusElement: $("connection-status"),
  onState(state, detail) {
    document.body.dataset.connection = state;
    if (state === "open") load();
    if (state === "failed") showError(detail.reason);
  },
});

async function load() {
  try {
    const reply = await contents.load();
    showWorkbook(reply.workbook);
    document.body.dataset.ready = "true";
  } catch (err) {
    showError(err.code === "not_found" ? "This workbook no longer exists."
      : `The workbook could not be loaded: ${err.message}`);
  }
}

contents = new WorkbookContents({ conn, workbookId, container: content });

$("export-workbook").addEventListener("click", async () => {
  try {
    const reply = await conn.request("workbook.export", { workbook: workbookId });
    const blob = new Blob([JSON.stringify(reply.content, null, 2)], { type: "application/json" });
    const a = Object.assign(document.createElement("a"),
      { href: URL.createObjectURL(blob), download: reply.filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 1000);
  } catch (err) {
    showError(`The workbook could not be exported: ${err.message}`);
  }
});

loadSession().catch((err) => showError(err.message));
