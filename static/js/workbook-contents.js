// Inside the Workbook page: sources, scenes and calculations, their forms, results and plots.
//
//   import { WorkbookContents } from "/static/js/workbook-contents.js";
//   const contents = new WorkbookContents({ conn, workbookId, container });
//   await contents.load();               // after the connection opens (and after a reconnect)
//   contents.handle(message);            // every broadcast: source.saved, calculation.saved, …
//   contents.hello(message);             // the wssvc's hello: where and how to fetch plots
//
// Everything is drawn with plain DOM calls; the server is the only source of truth: the page
// shows what the replies and broadcasts say, so two windows on one workbook stay in step.

import { conflictPanel } from "/static/js/conflicts.js";
import { SpectraPanel, sourceExtras } from "/static/js/source-extras.js";
import { historyPanel } from "/static/js/history.js";
import { BatchPanel, backgroundFields } from "/static/js/batch.js";

const KINDS = ["source", "scene", "calculation"];
const PLOTS = [
  ["snr_vs_time", "S/N against exposure time"],
  ["spectrum", "Source spectrum and filter throughput"],
  ["snr_map", "S/N map"],
  ["saturation_map", "Saturation map"],
  ["background", "Background: spectrum and over the year"],
];
// a spectroscopic calculation's plots (its result carries a "spectrum")
const SPECTRO_PLOTS = [
  ["snr_vs_wavelength", "S/N against wavelength"],
  ["extracted_flux", "Extracted flux and noise"],
  ["detector_2d", "2-D detector image"],
  ["snr_2d", "2-D S/N image"],
];

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node && key !== "list") node[key] = value;
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const fmt = (v, digits = 3) =>
  v === null || v === undefined ? "—" : typeof v === "number" ? Number(v.toPrecision(digits)).toString() : String(v);

function getPath(obj, path) {
  return path.split(".").reduce((o, k) => (o == null ? undefined : o[k]), obj);
}

function setPath(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = value;
}

export class WorkbookContents {
  constructor({ conn, workbookId, container }) {
    this.conn = conn;
    this.workbookId = workbookId;
    this.container = container;
    this.items = { source: new Map(), scene: new Map(), calculation: new Map() };
    this.catalog = null;
    this.defaults = null;
    this.selected = null; // the calculation whose plots are shown
    this.plotAccess = null; // {base, client, key}
    this.pending = new Set(); // calculation ids being recalculated
    this.build();
  }

  // -- the skeleton ------------------------------------------------------------------------

  build() {
    this.status = el("p", { className: "muted", id: "contents-status", role: "status" });
    this.sections = {};
    for (const kind of KINDS) {
      const list = el("div", { className: "items", id: `${kind}-list` });
      const add = el("button", { type: "button", id: `add-${kind}`, onclick: () => this.openForm(kind) },
        `Add ${kind}`);
      this.sections[kind] = list;
      this.container.append(el("section", { className: "contents", id: `${kind}s` },
        el("h2", {}, `${kind[0].toUpperCase()}${kind.slice(1)}s`, " ", add), list));
    }
    this.spectra = new SpectraPanel(this); // uploaded spectra (k16)
    this.container.querySelector("#sources").after(this.spectra.node);
    this.batch = new BatchPanel(this); // expand and compare (issue 16)
    this.container.querySelector("#calculations").after(this.batch.node);
    this.formHost = el("div", { id: "form-host" });
    this.plotHost = el("section", { id: "plots", className: "contents", hidden: true });
    this.container.prepend(this.status);
    this.container.append(this.formHost, this.plotHost);
  }

  setStatus(text, isError = false) {
    this.status.textContent = text || "";
    this.status.className = isError ? "error" : "muted";
  }

  hello(message) {
    if (!message.plot_key || !this.conn.url) return;
    const base = this.conn.url.replace(/^ws/, "http").replace(/\/ws(\?.*)?$/, "");
    this.plotAccess = { base, client: message.client, key: message.plot_key };
    if (this.selected) this.drawPlots();
  }

  async load() {
    const reply = await this.conn.request("workbook.open", { workbook: this.workbookId }, { resend: true });
    this.catalog = reply.catalog;
    this.defaults = reply.defaults;
    for (const kind of KINDS) {
      this.items[kind] = new Map(reply[`${kind}s`].map((item) => [item.id, item]));
    }
    this.drawAll();
    await this.spectra.load();
    return reply;
  }

  handle(message) {
    if (this.spectra.handle(message)) return true;
    const [kind, verb] = (message.type || "").split(".");
    if (!KINDS.includes(kind) || message.workbook !== this.workbookId) return false;
    if (verb === "saved") this.saved(kind, message.item);
    else if (verb === "deleted") this.deleted(kind, message.item);
    else return false;
    return true;
  }

  saved(kind, item) {
    this.items[kind].set(item.id, item);
    if (kind === "calculation") this.pending.delete(item.id);
    if (kind === "calculation") this.batch.saved(item);
    this.drawAll();
    if (kind === "calculation" && this.selected === item.id) this.drawPlots();
  }

  deleted(kind, id) {
    this.items[kind].delete(id);
    if (this.selected === id) {
      this.selected = null;
      this.plotHost.hidden = true;
    }
    this.drawAll();
  }

  // -- tables ----------------------------------------------------------------------------

  drawAll() {
    this.drawSources();
    this.drawScenes();
    this.drawCalculations();
  }

  actions(kind, item) {
    return el("span", { className: "row" },
      el("button", { type: "button", className: "secondary", dataset: { action: "edit" },
        onclick: () => this.openForm(kind, item) }, "Edit"),
      el("button", { type: "button", className: "secondary", dataset: { action: "history" },
        onclick: () => this.showHistory(kind, item.id) }, "History"),
      el("button", { type: "button", className: "secondary", dataset: { action: "copy" },
        onclick: () => this.run(`${kind}.copy`, { [kind]: item.id }) }, "Copy"),
      el("button", { type: "button", className: "danger", dataset: { action: "delete" },
        onclick: () => {
          if (confirm(`Delete ${kind} “${item.name}”?`)) {
            this.run(`${kind}.delete`, { [kind]: item.id, base_revision: item.item_revision });
          }
        } }, "Delete"));
  }

  table(kind, headers, rows) {
    const host = this.sections[kind];
    host.replaceChildren();
    if (!rows.length) {
      host.append(el("p", { className: "muted" }, `No ${kind}s yet.`));
      return;
    }
    host.append(el("table", { className: "grid" },
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows)));
  }

  drawSources() {
    const rows = [...this.items.source.values()].map((s) => {
      const d = s.data;
      const shape = d.shape?.kind === "gaussian" ? `gaussian ${d.shape.fwhm_arcsec}″`
        : d.shape?.kind === "disk" ? `disk ${d.shape.radius_arcsec}″` : "point";
      const spec = d.spectrum?.kind === "blackbody" ? `blackbody ${d.spectrum.temperature} K`
        : d.spectrum?.kind === "power_law" ? `power law ${d.spectrum.index}`
        : d.spectrum?.kind === "uploaded" ? `uploaded ${this.spectra.items.get(d.spectrum.spectrum_id)?.name ?? ""}`
        : "flat fν";
      const extras = [d.lines?.length && `${d.lines.length} line(s)`,
        d.extinction?.length && d.extinction.map((e) => `A_V ${fmt(e.a_v)} ${e.law}`).join(", ")].filter(Boolean);
      const norm = d.normalization || {};
      const where = norm.bandpass ? `in ${norm.bandpass}` : `at ${norm.wavelength_um} µm`;
      return el("tr", { dataset: { id: s.id } }, el("td", {}, s.name), el("td", {}, shape),
        el("td", {}, [spec, ...extras].join("; ")), el("td", {}, `${norm.value} ${norm.unit} ${where}`),
        el("td", {}, fmt(d.redshift ?? 0)), el("td", {}, this.actions("source", s)));
    });
    this.table("source", ["Name", "Shape", "Spectrum", "Normalization", "z", ""], rows);
  }

  drawScenes() {
    const rows = [...this.items.scene.values()].map((sc) => {
      const placed = (sc.data.sources || []).map((p) =>
        `${this.items.source.get(p.source_id)?.name ?? "?"} (${p.offset_x_arcsec}″, ${p.offset_y_arcsec}″)`);
      return el("tr", { dataset: { id: sc.id } }, el("td", {}, sc.name), el("td", {}, placed.join(", ")),
        el("td", {}, this.actions("scene", sc)));
    });
    this.table("scene", ["Name", "Sources (offsets)", ""], rows);
  }

  drawCalculations() {
    this.batch.draw();
    const rows = [...this.items.calculation.values()].map((c) => {
      const d = c.data;
      const r = c.result || {};
      const busy = this.pending.has(c.id);
      const sat = r.saturation ? `${fmt(100 * r.saturation.max_fill_fraction, 2)}% of full well` : "—";
      const state = busy || c.status === "pending" ? "recalculating…" : c.status === "ok" ? "" : (c.error || (r.errors || []).map((e) => e.message).join("; ") || c.status);
      return el("tr", { dataset: { id: c.id, status: busy ? "pending" : c.status }, className: this.selected === c.id ? "selected" : "" },
        el("td", {}, this.batch.tick(c)),
        el("td", {}, el("a", { href: "#plots", onclick: (e) => { e.preventDefault(); this.select(c.id); } }, c.name)),
        el("td", {}, this.items.scene.get(c.scene)?.name ?? "?"),
        el("td", {}, `${d.instrument} ${d.mode} ${d.disperser ? `${d.disperser}${d.filter ? "/" + d.filter : ""}` : d.filter}`),
        el("td", {}, `${d.readout_pattern} ${d.groups}g × ${d.integrations}i × ${d.exposures}e`),
        el("td", { className: "num", dataset: { field: "snr" } }, fmt(r.snr)),
        el("td", { className: "num" }, fmt(r.total_exposure_time_s, 4)),
        el("td", {}, sat),
        el("td", { className: busy ? "busy" : "warn", dataset: { outdated: c.outdated && !busy } }, state,
          c.outdated && !busy ? el("div", {}, `outdated: engine ${c.engine_version ?? "unknown"}, data ${c.data_version ?? "unknown"}`) : null,
          (r.warnings || []).map((w) => el("div", { className: "muted" }, w.message))),
        el("td", {}, this.actions("calculation", c),
          el("button", { type: "button", className: "secondary", onclick: () => this.download(c, "json") }, "JSON"),
          el("button", { type: "button", className: "secondary", onclick: () => this.download(c, "csv") }, "CSV"),
          el("button", { type: "button", className: "secondary", dataset: { action: "fits" }, onclick: () => this.download(c, "fits") }, "FITS")));
    });
    this.table("calculation", ["Compare", "Name", "Scene", "Mode", "Exposure", "S/N", "Time (s)", "Saturation", "Notes", ""], rows);
    const outdated = [...this.items.calculation.values()].filter((c) => c.outdated && !this.pending.has(c.id));
    if (outdated.length) {
      this.sections.calculation.prepend(el("p", { className: "warn", id: "outdated" },
        `${outdated.length} result(s) came from an older engine (marked “outdated”). `,
        el("button", { type: "button", id: "recalculate-outdated", onclick: () => {
          outdated.forEach((c) => this.pending.add(c.id));
          this.run("workbook.recalculate", {});
        } }, "Recalculate outdated results")));
    }
  }

  // -- plots -----------------------------------------------------------------------------

  select(id) {
    this.selected = id;
    this.drawCalculations();
    this.drawPlots();
  }

  drawPlots() {
    const calc = this.items.calculation.get(this.selected);
    this.plotHost.hidden = !calc;
    if (!calc) return;
    this.plotHost.replaceChildren(el("h2", {}, `Plots: ${calc.name}`));
    if (!this.plotAccess) {
      this.plotHost.append(el("p", { className: "muted" }, "Waiting for the connection…"));
      return;
    }
    if (calc.status !== "ok") {
      this.plotHost.append(el("p", { className: "error" }, "This calculation has no result to plot."));
      return;
    }
    const { base, client, key } = this.plotAccess;
    const grid = el("div", { className: "plots" });
    for (const [kind, title] of calc.result?.spectrum ? SPECTRO_PLOTS : PLOTS) {
      const src = `${base}/plots/${encodeURIComponent(calc.id)}/${calc.revision}/${kind}.png` +
        `?client=${encodeURIComponent(client)}&key=${encodeURIComponent(key)}`;
      grid.append(el("figure", {}, el("img", { src, alt: title, dataset: { plot: kind }, loading: "lazy" }),
        el("figcaption", {}, title)));
    }
    this.plotHost.append(grid);
  }

  async download(calc, format) {
    const reply = await this.run("calculation.download", { calculation: calc.id, format }, false);
    if (!reply) return;
    const type = format === "json" ? "application/json" : format === "fits" ? "application/gzip" : "text/csv";
    const body = reply.content_base64 ? Uint8Array.from(atob(reply.content_base64), (ch) => ch.charCodeAt(0)) : reply.content;
    const url = URL.createObjectURL(new Blob([body], { type }));
    const a = el("a", { href: url, download: reply.filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  }

  // -- requests --------------------------------------------------------------------------

  async run(type, fields, showDone = true) {
    this.setStatus("Working…");
    try {
      const reply = await this.conn.request(type, { workbook: this.workbookId, ...fields });
      if (reply.item) this.handleReply(type, reply);
      this.setStatus(showDone ? "" : "");
      return reply;
    } catch (err) {
      this.setStatus(err.message, true);
      return null;
    }
  }

  handleReply(type, reply) {
    const [kind, verb] = type.split(".");
    if (verb === "delete") this.deleted(kind, reply.item);
    else this.saved(kind, reply.item);
  }

  // -- forms -----------------------------------------------------------------------------

  fieldsFor(kind, data) {
    if (kind === "source") {
      return [
        ["shape.kind", "Shape", "select", ["point", "gaussian", "disk"]],
        ["shape.fwhm_arcsec", "FWHM (arcsec, gaussian)", "number"],
        ["shape.radius_arcsec", "Radius (arcsec, disk)", "number"],
        ["spectrum.kind", "Spectrum", "select", this.catalog?.spectra || ["flat", "power_law", "blackbody"]],
        ["spectrum.index", "Power-law index", "number"],
        ["spectrum.temperature", "Temperature (K)", "number"],
        ["normalization.value", "Normalization value", "number"],
        ["normalization.unit", "Unit", "select", this.catalog?.units || ["abmag", "nJy", "uJy", "mJy", "Jy"]],
        ["normalization.wavelength_um", "At wavelength (µm)", "number"],
        ["normalization.bandpass", "or in filter (band mean)", "select",
          ["", ...(this.catalog?.instruments || []).flatMap((i) => i.modes.flatMap((m) => m.filters.map((f) => f.name)))]],
        ["spectrum.spectrum_id", "Uploaded spectrum (kind uploaded)", "select", this.spectra.options()],
        ["redshift", "Redshift", "number"],
      ];
    }
    if (kind === "calculation") {
      const instruments = this.catalog.instruments;
      const inst = instruments.find((i) => i.name === data.instrument) || instruments[0];
      const mode = inst.modes.find((m) => m.name === data.mode) || inst.modes[0];
      if (mode.kind === "spectroscopy") return spectroFields(instruments, inst, mode, data, this.catalog);
      return [
        ["instrument", "Instrument", "select", instruments.map((i) => i.name)],
        ["mode", "Mode", "select", inst.modes.map((m) => m.name)],
        ["filter", "Filter", "select", mode.filters.map((f) => f.name)],
        ["readout_pattern", "Readout pattern", "select", mode.readout_patterns.map((p) => p.name)],
        ["groups", "Groups", "integer"],
        ["integrations", "Integrations", "integer"],
        ["exposures", "Exposures", "integer"],
        ["aperture_radius_arcsec", "Aperture radius (arcsec)", "number"],
        ["annulus_inner_arcsec", "Background annulus inner (arcsec)", "number"],
        ["annulus_outer_arcsec", "Background annulus outer (arcsec)", "number"],
        ["background_scale", "Background scale", "number"],
        ["strategy.kind", "Strategy", "select", this.catalog?.strategies || ["snr", "time_for_snr"]],
        ["strategy.target_snr", "Target S/N (time_for_snr)", "number"],
      ];
    }
    return [];
  }

  openForm(kind, item = null) {
    if (!this.defaults) return;
    const data = structuredClone(item ? item.data : this.defaults[kind]);
    if (kind === "scene" && !item) {
      const first = this.items.source.keys().next().value;
      data.sources = first ? [{ source_id: first, offset_x_arcsec: 0, offset_y_arcsec: 0 }] : [];
    }
    const state = { kind, item, data, name: item ? item.name : `New ${kind}`, base: item?.item_revision,
      scene: item?.scene ?? this.items.scene.keys().next().value ?? "" };
    this.drawForm(state);
  }

  drawForm(state) {
    const { kind, item, data } = state;
    const error = el("p", { className: "error", role: "alert", hidden: true, id: "form-error" });
    const form = el("form", { id: `${kind}-form`, className: "item-form", onsubmit: (e) => {
      e.preventDefault();
      this.submitForm(state, form, error);
    } });
    form.append(el("h3", {}, item ? `Edit ${kind} “${item.name}”` : `New ${kind}`));
    form.append(this.input("name", "Name", "text", state.name, null, (v) => { state.name = v; }, ""));
    if (kind === "calculation") {
      const scenes = [...this.items.scene.values()];
      form.append(this.input("scene", "Scene", "select", state.scene,
        scenes.map((s) => [s.id, s.name]), (v) => { state.scene = v; }, ""));
    }
    if (kind === "scene") {
      const sources = [...this.items.source.values()].map((s) => [s.id, s.name]);
      const rows = el("div", { className: "placements" });
      const redraw = () => {
        rows.replaceChildren(...data.sources.map((p, i) => el("div", { className: "row" },
          this.input(`sources.${i}.source_id`, "Source", "select", p.source_id, sources, (v) => { p.source_id = v; }),
          this.input(`sources.${i}.offset_x_arcsec`, "Δx (arcsec)", "number", p.offset_x_arcsec, null, (v) => { p.offset_x_arcsec = v; }),
          this.input(`sources.${i}.offset_y_arcsec`, "Δy (arcsec)", "number", p.offset_y_arcsec, null, (v) => { p.offset_y_arcsec = v; }),
          el("button", { type: "button", className: "secondary", onclick: () => { data.sources.splice(i, 1); redraw(); } }, "Remove"))));
      };
      redraw();
      form.append(rows, el("button", { type: "button", className: "secondary", onclick: () => {
        data.sources.push({ source_id: sources[0]?.[0] ?? "", offset_x_arcsec: 0, offset_y_arcsec: 0 });
        redraw();
      } }, "Place another source"));
    }
    for (const [path, label, type, options] of this.fieldsFor(kind, data)) {
      const flag = path === "background_subtraction"; // a yes/no select holding a boolean
      const onChange = (v) => {
        if (flag) v = v === "true";
        setPath(data, path, v === "" && type === "select" ? null : v);
        if (kind === "calculation" && ["instrument", "mode", "disperser"].includes(path)) this.retarget(state);
      };
      const value = flag ? String(getPath(data, path) ?? true) : getPath(data, path);
      form.append(this.input(path, label, type, value, options, onChange));
    }
    if (kind === "source") form.append(...sourceExtras(this, data));
    if (kind === "calculation") form.append(...backgroundFields(this, data));
    form.append(error, el("div", { className: "row" },
      el("button", { type: "submit", id: "form-save" }, item ? "Save" : "Add"),
      el("button", { type: "button", className: "secondary", onclick: () => this.formHost.replaceChildren() }, "Cancel")));
    this.formHost.replaceChildren(form);
    form.querySelector("input, select")?.focus();
  }

  retarget(state) {
    // a new instrument, mode or disperser: pick its first filter/pattern and default aperture
    const inst = this.catalog.instruments.find((i) => i.name === state.data.instrument);
    let mode = inst.modes.find((m) => m.name === state.data.mode);
    if (!mode) { mode = inst.modes[0]; state.data.mode = mode.name; }
    if (mode.kind === "spectroscopy") retargetSpectro(state.data, mode);
    else {
      for (const k of ["disperser", "reference_wavelength_um", "background_subtraction"]) delete state.data[k];
      if (!mode.filters.some((f) => f.name === state.data.filter)) state.data.filter = mode.filters[0].name;
    }
    if (!mode.readout_patterns.some((p) => p.name === state.data.readout_pattern)) {
      state.data.readout_pattern = mode.readout_patterns[0].name;
    }
    Object.assign(state.data, mode.default_aperture);
    this.drawForm(state);
  }

  input(path, label, type, value, options, onChange, prefix = "data.") {
    let control;
    const name = `${prefix}${path}`;
    if (type === "select") {
      const opts = (options || []).map((o) => (Array.isArray(o) ? o : [o, o]));
      control = el("select", { name, dataset: { field: path } },
        opts.map(([v, text]) => el("option", { value: v, selected: v === value }, text)));
      control.addEventListener("change", () => onChange(control.value));
    } else {
      control = el("input", { name, dataset: { field: path }, type: type === "text" ? "text" : "number",
        step: type === "integer" ? "1" : "any", value: value ?? "" });
      control.addEventListener("input", () => {
        if (type === "text") return onChange(control.value);
        const raw = control.value.trim();
        // keep what the user typed when it is not a number: the server names the bad field
        onChange(raw === "" ? null : Number.isFinite(Number(raw)) ? Number(raw) : raw);
      });
    }
    return el("label", { className: "field" }, el("span", {}, label), control);
  }

  async submitForm(state, form, error) {
    const { kind, item, data } = state;
    form.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
    error.hidden = true;
    const fields = { name: state.name, data };
    if (kind === "calculation") fields.scene = state.scene;
    if (item) Object.assign(fields, { [kind]: item.id, base_revision: state.base });
    const saving = form.querySelector("#form-save");
    saving.disabled = true;
    if (item) for (const c of this.affected(kind, item.id)) this.pending.add(c);
    this.drawCalculations();
    this.setStatus(kind === "source" || kind === "scene" || kind === "calculation" ? "Recalculating…" : "Saving…");
    try {
      const reply = await this.conn.request(`${kind}.${item ? "edit" : "add"}`, { workbook: this.workbookId, ...fields });
      this.handleReply(`${kind}.${item ? "edit" : "add"}`, reply);
      this.formHost.replaceChildren();
      this.setStatus("");
    } catch (err) {
      for (const c of this.affected(kind, item?.id)) this.pending.delete(c);
      this.drawCalculations();
      if (err.code === "conflict" && item && err.reply?.item) {
        this.showConflict(state, form, err.reply.item);
        this.setStatus("");
        return;
      }
      error.textContent = err.message;
      error.hidden = false;
      const field = (err.reply?.field || "").replace(/^data\./, "") ||
        (err.message.match(/^(name|scene)\b/) || [])[1];
      const bad = field && (form.querySelector(`[data-field="${CSS.escape(field)}"]`) ||
        form.querySelector(`[data-field^="${CSS.escape(field)}."]`));
      if (bad) { bad.classList.add("invalid"); bad.focus(); }
      this.setStatus("");
    } finally {
      saving.disabled = false;
    }
  }

  showConflict(state, form, theirs) {
    // someone saved this item since the form opened: both versions, field by field
    this.formHost.querySelector("#conflict")?.remove();
    const mine = { name: state.name, data: state.data, ...(state.kind === "calculation" ? { scene: state.scene } : {}) };
    this.formHost.prepend(conflictPanel({ el, mine, theirs,
      onKeep: (merged) => {
        Object.assign(state, { name: merged.name, data: merged.data, base: theirs.item_revision });
        if (state.kind === "calculation") state.scene = merged.scene;
        this.drawForm(state);
        this.submitForm(state, this.formHost.querySelector("form"), this.formHost.querySelector("#form-error"));
      },
      onTake: () => {
        this.saved(state.kind, theirs);
        this.formHost.replaceChildren();
      } }));
  }

  async showHistory(kind, id) {
    const reply = await this.run(`${kind}.history`, { [kind]: id }, false);
    const item = this.items[kind].get(id);
    if (!reply || !item) return;
    this.formHost.replaceChildren(historyPanel({ el, item, revisions: reply.revisions,
      onClose: () => this.formHost.replaceChildren(),
      onRestore: async (r) => {
        const current = this.items[kind].get(id);
        const fields = { [kind]: id, name: r.name, data: r.data, base_revision: current.item_revision };
        if (kind === "calculation") fields.scene = r.scene;
        for (const c of this.affected(kind, id)) this.pending.add(c);
        if (await this.run(`${kind}.edit`, fields)) return this.showHistory(kind, id);
        for (const c of this.affected(kind, id)) this.pending.delete(c); // refused: shown in the status
        this.drawCalculations();
      } }));
  }

  affected(kind, id) {
    if (!id) return [];
    if (kind === "calculation") return [id];
    const calcs = [...this.items.calculation.values()];
    if (kind === "scene") return calcs.filter((c) => c.scene === id).map((c) => c.id);
    const scenes = [...this.items.scene.values()].filter((s) => (s.data.sources || []).some((p) => p.source_id === id)).map((s) => s.id);
    return calcs.filter((c) => scenes.includes(c.scene)).map((c) => c.id);
  }
}

// -- spectroscopic calculations (NIRSpec fixed slit, MIRI LRS) ---------------------------------

function spectroFields(instruments, inst, mode, data, catalog) {
  const pairs = mode.configurations;
  const dispersers = [...new Set(pairs.map((c) => c.disperser))];
  const filters = pairs.filter((c) => c.disperser === data.disperser).map((c) => c.filter ?? "");
  const pair = pairs.find((c) => c.disperser === data.disperser) || pairs[0];
  return [
    ["instrument", "Instrument", "select", instruments.map((i) => i.name)],
    ["mode", "Mode", "select", inst.modes.map((m) => m.name)],
    ["disperser", `Disperser (${mode.slit.name} slit ${mode.slit.width_arcsec}″ × ${mode.slit.length_arcsec}″)`, "select", dispersers],
    ["filter", "Filter", "select", filters.map((f) => [f, f || "none"])],
    ["reference_wavelength_um", `Reference wavelength (µm, ${pair.range_um[0]}–${pair.range_um[1]})`, "number"],
    ["readout_pattern", "Readout pattern", "select", mode.readout_patterns.map((p) => p.name)],
    ["groups", "Groups", "integer"],
    ["integrations", "Integrations", "integer"],
    ["exposures", "Exposures", "integer"],
    ["aperture_radius_arcsec", "Extraction half-height along the slit (arcsec)", "number"],
    ["annulus_inner_arcsec", "Background regions from (arcsec)", "number"],
    ["annulus_outer_arcsec", "Background regions to (arcsec)", "number"],
    ["background_subtraction", "Background subtraction", "select", [["true", "yes"], ["false", "no"]]],
    ["background_scale", "Background scale", "number"],
    ["strategy.kind", "Strategy", "select", catalog?.strategies || ["snr", "time_for_snr"]],
    ["strategy.target_snr", "Target S/N at the reference wavelength (time_for_snr)", "number"],
  ];
}

function retargetSpectro(data, mode) {
  const pairs = mode.configurations;
  if (!pairs.some((c) => c.disperser === data.disperser)) data.disperser = pairs[0].disperser;
  const mine = pairs.filter((c) => c.disperser === data.disperser);
  if (!mine.some((c) => (c.filter ?? null) === (data.filter || null))) data.filter = mine[0].filter;
  data.reference_wavelength_um = null; // the middle of the pair's range
  if (typeof data.background_subtraction !== "boolean") data.background_subtraction = true;
}
