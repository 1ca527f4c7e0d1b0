// The Workbook page's parts for sources as astronomers describe them (issue 16): the uploaded
// spectra of the workbook, and the lines and extinction editors of the source form.
//
//   import { SpectraPanel, sourceExtras } from "/static/js/source-extras.js";
//   const panel = new SpectraPanel(contents);  // contents: the WorkbookContents
//   await panel.load();                        // after workbook.open
//   panel.handle(message);                     // spectrum.saved / spectrum.deleted broadcasts
//   form.append(...sourceExtras(contents, data));  // in the source form
//
// Errors from the server name the field (`content: line 3: column 2 is not a number`,
// `data.lines.0.fwhm_um: ...`); the form marks the input whose data-field matches.

import { el } from "/static/js/workbook-contents.js";

const FLUX_UNITS = ["mJy", "Jy", "uJy", "nJy", "erg/s/cm2/A"];
const LAWS = [["G23", "Milky Way (G23, R_V)"], ["G03_SMCBar", "SMC bar (G03)"],
  ["G03_LMCAvg", "LMC average (G03)"], ["G03_LMC2", "LMC2 (G03)"], ["G24_SMCAvg", "SMC average (G24)"]];

function toBase64(buffer) {
  const bytes = new Uint8Array(buffer);
  let bin = "";
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

export class SpectraPanel {
  constructor(contents) {
    this.contents = contents;
    this.items = new Map();
    this.list = el("div", { className: "items", id: "spectrum-list" });
    this.error = el("p", { className: "error", role: "alert", hidden: true, id: "spectrum-error" });
    this.file = el("input", { type: "file", id: "spectrum-file", accept: ".txt,.dat,.csv,.fits,.fit" });
    this.format = el("select", { id: "spectrum-format" },
      el("option", { value: "ascii" }, "ASCII (µm, flux)"), el("option", { value: "fits" }, "FITS table"));
    this.unit = el("select", { id: "spectrum-unit" }, FLUX_UNITS.map((u) => el("option", { value: u }, u)));
    this.file.addEventListener("change", () => {
      if (/\.fits?$/i.test(this.file.files[0]?.name || "")) this.format.value = "fits";
    });
    const upload = el("button", { type: "button", id: "spectrum-upload", onclick: () => this.upload() }, "Upload");
    this.node = el("section", { className: "contents", id: "spectra" },
      el("h2", {}, "Uploaded spectra"),
      el("div", { className: "row" },
        el("label", { className: "field" }, el("span", {}, "File"), this.file),
        el("label", { className: "field" }, el("span", {}, "Format"), this.format),
        el("label", { className: "field" }, el("span", {}, "Flux unit"), this.unit), upload),
      this.error, this.list);
    this.draw();
  }

  async load() {
    const reply = await this.contents.conn.request("spectrum.list", { workbook: this.contents.workbookId });
    this.items = new Map(reply.spectra.map((s) => [s.id, s]));
    this.draw();
  }

  handle(message) {
    if (!message.type?.startsWith("spectrum.") || message.workbook !== this.contents.workbookId) return false;
    if (message.type === "spectrum.saved") this.items.set(message.item.id, message.item);
    else if (message.type === "spectrum.deleted") this.items.delete(message.item);
    else return false;
    this.draw();
    return true;
  }

  options() {
    return [["", "—"], ...[...this.items.values()].map((s) => [s.id, s.name])];
  }

  draw() {
    const rows = [...this.items.values()].map((s) => el("tr", { dataset: { id: s.id } },
      el("td", {}, s.name), el("td", {}, `${s.points} points, ${s.wave_min_um}–${s.wave_max_um} µm`),
      el("td", {}, `${s.format}, ${s.flux_unit}`),
      el("td", {}, el("button", { type: "button", className: "danger", onclick: () => this.remove(s) }, "Delete"))));
    this.list.replaceChildren(rows.length ? el("table", { className: "grid" }, el("tbody", {}, rows))
      : el("p", { className: "muted" }, "No uploaded spectra yet."));
  }

  async upload() {
    const file = this.file.files[0];
    this.error.hidden = true;
    if (!file) return this.fail("choose a file first");
    const fields = { workbook: this.contents.workbookId, name: file.name.slice(0, 100),
      format: this.format.value, flux_unit: this.unit.value };
    if (fields.format === "fits") fields.content_base64 = toBase64(await file.arrayBuffer());
    else fields.content = await file.text();
    try {
      const reply = await this.contents.conn.request("spectrum.upload", fields);
      this.handle(reply);
      this.file.value = "";
    } catch (err) {
      this.fail(err.message);
    }
  }

  async remove(s) {
    if (!confirm(`Delete spectrum “${s.name}”?`)) return;
    try {
      this.handle(await this.contents.conn.request("spectrum.delete", { spectrum: s.id }));
    } catch (err) {
      this.fail(err.message);
    }
  }

  fail(text) {
    this.error.textContent = text;
    this.error.hidden = false;
  }
}

function listEditor(contents, data, key, title, blank, fields) {
  const host = el("fieldset", { className: "list-editor", id: `source-${key}` }, el("legend", {}, title));
  const rows = el("div");
  const redraw = () => {
    rows.replaceChildren(...(data[key] || []).map((entry, i) => el("div", { className: "row" },
      fields.map(([name, label, type, options]) => contents.input(`${key}.${i}.${name}`, label, type,
        entry[name], options, (v) => { entry[name] = v === "" ? null : v; })),
      el("button", { type: "button", className: "secondary", onclick: () => {
        data[key].splice(i, 1);
        if (!data[key].length) delete data[key];
        redraw();
      } }, "Remove"))));
  };
  redraw();
  host.append(rows, el("button", { type: "button", className: "secondary", id: `add-${key}`, onclick: () => {
    (data[key] ??= []).push(structuredClone(blank));
    redraw();
  } }, `Add ${title.toLowerCase().replace(/s$/, "")}`));
  return host;
}

export function sourceExtras(contents, data) {
  if (data.extinction && !Array.isArray(data.extinction)) data.extinction = [data.extinction];
  return [
    listEditor(contents, data, "lines", "Lines",
      { kind: "emission", center_um: 0.6563, fwhm_um: 0.001, flux_erg_s_cm2: 1e-17, equivalent_width_um: null }, [
        ["kind", "Kind", "select", ["emission", "absorption"]],
        ["center_um", "Rest centre (µm)", "number"],
        ["fwhm_um", "Rest FWHM (µm)", "number"],
        ["flux_erg_s_cm2", "Flux (erg/s/cm²)", "number"],
        ["equivalent_width_um", "or rest EW (µm)", "number"],
      ]),
    listEditor(contents, data, "extinction", "Extinction curves",
      { law: "G23", a_v: 1.0, ebv: null, r_v: 3.1, applied: "after_redshift" }, [
        ["law", "Curve", "select", LAWS],
        ["a_v", "A_V (mag)", "number"],
        ["ebv", "or E(B−V)", "number"],
        ["r_v", "R_V (G23)", "number"],
        ["applied", "Applied", "select", [["after_redshift", "after the redshift (Milky Way)"],
          ["before_redshift", "before the redshift (the source's dust)"]]],
      ]),
  ];
}
