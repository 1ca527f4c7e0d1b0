// An item's recent revisions (who, when, what changed), with a way back to any of them.
//
//   import { historyPanel } from "/static/js/history.js";
//   host.replaceChildren(historyPanel({ el, item, revisions, onRestore, onClose }));
//
// `revisions` is the reply of `X.history` (newest first). Restoring calls onRestore(revision):
// the caller sends that revision's name, data (and scene) as an ordinary edit of the current
// revision, so a restore is validated, recalculated and refused on conflict like any edit.

const when = (t) => new Date(t * 1000).toLocaleString();

export function historyPanel({ el, item, revisions, onRestore, onClose }) {
  const rows = revisions.map((r) => el("tr", { dataset: { revision: r.item_revision } },
    el("td", {}, String(r.item_revision)),
    el("td", {}, when(r.edited_at)),
    el("td", {}, r.edited_by ? r.edited_by.slice(0, 12) : "—"),
    el("td", {}, r.changed.length ? r.changed.map((p) => p.replace(/^data\./, "")).join(", ") : "—"),
    el("td", {}, r.item_revision === item.item_revision ? "current"
      : el("button", { type: "button", className: "secondary", dataset: { action: "restore" },
        onclick: () => onRestore(r) }, "Restore"))));
  return el("div", { id: "history", className: "history" },
    el("h3", {}, `History of “${item.name}”`),
    el("table", { className: "grid" },
      el("thead", {}, el("tr", {}, ["Revision", "When", "Who", "Changed", ""].map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)),
    el("button", { type: "button", className: "secondary", onclick: onClose }, "Close"));
}
