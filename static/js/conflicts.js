// Resolving an edit refused with `conflict` (someone saved the item since the form opened).
//
//   import { conflictPanel } from "/static/js/conflicts.js";
//   host.replaceChildren(conflictPanel({ el, mine, theirs, onKeep, onTake }));
//
// `mine` is what the form would have saved ({name, data, scene?}); `theirs` is the item the
// error carried. The panel lists every field where the two differ, yours and theirs side by
// side, each row with a choice (yours by default). "Save chosen" calls onKeep(merged) — the
// caller sends it again with `base_revision = theirs.item_revision`; "Take theirs" calls
// onTake(). Arrays (a scene's placed sources) are one field: chosen whole.

function flatten(value, prefix, out) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    for (const [key, inner] of Object.entries(value)) flatten(inner, prefix ? `${prefix}.${key}` : key, out);
  } else {
    out.set(prefix, value);
  }
  return out;
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] = o[k] && typeof o[k] === "object" ? o[k] : {};
  if (value === undefined) delete o[keys.at(-1)];
  else o[keys.at(-1)] = value;
}

const show = (v) => (v === undefined ? "(none)" : typeof v === "object" ? JSON.stringify(v) : String(v));

export function differences(mine, theirs) {
  const a = flatten({ name: mine.name, scene: mine.scene, data: mine.data }, "", new Map());
  const b = flatten({ name: theirs.name, scene: mine.scene === undefined ? undefined : theirs.scene,
    data: theirs.data }, "", new Map());
  const paths = [...new Set([...a.keys(), ...b.keys()])];
  return paths.filter((p) => JSON.stringify(a.get(p)) !== JSON.stringify(b.get(p)))
    .map((path) => ({ path, mine: a.get(path), theirs: b.get(path) }));
}

export function conflictPanel({ el, mine, theirs, onKeep, onTake }) {
  const rows = differences(mine, theirs);
  const choice = new Map(rows.map((r) => [r.path, "mine"]));
  const radio = (path, side) => el("input", { type: "radio", name: `pick-${path}`, value: side,
    checked: side === "mine", dataset: { pick: side, field: path }, onchange: () => choice.set(path, side) });
  const merged = () => {
    const out = structuredClone({ name: mine.name, scene: mine.scene, data: mine.data });
    for (const r of rows) if (choice.get(r.path) === "theirs") setPath(out, r.path, structuredClone(r.theirs));
    return out;
  };
  return el("div", { id: "conflict", className: "conflict", role: "alert" },
    el("p", { className: "error" },
      `“${theirs.name}” was saved elsewhere while you edited it (now revision ${theirs.item_revision}). `,
      "Choose, field by field, which value to keep."),
    el("table", { className: "grid" },
      el("thead", {}, el("tr", {}, el("th", {}, "Field"), el("th", {}, "Yours"), el("th", {}, "Theirs"))),
      el("tbody", {}, rows.map((r) => el("tr", { dataset: { field: r.path } },
        el("td", {}, r.path.replace(/^data\./, "")),
        el("td", {}, el("label", {}, radio(r.path, "mine"), " ", show(r.mine))),
        el("td", {}, el("label", {}, radio(r.path, "theirs"), " ", show(r.theirs))))))),
    el("div", { className: "row" },
      el("button", { type: "button", id: "conflict-keep", onclick: () => onKeep(merged()) }, "Save chosen"),
      el("button", { type: "button", className: "secondary", id: "conflict-take", onclick: onTake }, "Take theirs")));
}
