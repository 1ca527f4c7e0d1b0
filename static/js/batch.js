// The Workbook page's parts for batches and backgrounds (issue 16): expand a calculation over
// a list of values, tick calculations to overplot them, and the target-and-date background of
// the calculation form.
//
//   import { BatchPanel, backgroundFields } from "/static/js/batch.js";
//   const batch = new BatchPanel(contents);       // contents: the WorkbookContents
//   batch.tick(calc)                               // the row's "compare" checkbox
//   #compare-kind: what the compare overplots: by the ticked calculations (spectroscopic:
//   S/N against wavelength, imaging: S/N against time), or either chosen explicitly
//   batch.saved(calc)                              // on every calculation.saved: progress
//   form.append(...backgroundFields(contents, data));  // in the calculation form
//
// Refusals name the field (`values.2: data.groups: ...`, `data.background.date: not
// observable on ...`); the page shows the message and marks the input whose data-field matches.

import { el } from "/static/js/workbook-contents.js";

const PARAMETERS = [["groups", "groups"], ["integrations", "integrations"],
  ["exposures", "exposures"], ["filter", "filters"]];
const MAX_COMPARED = 8;
const COMPARE_KINDS = [["auto", "by the ticked calculations"], ["snr_vs_time", "S/N against time"],
  ["snr_vs_wavelength", "S/N against wavelength"]];

export class BatchPanel {
  constructor(contents) {
    this.contents = contents;
    this.ticked = new Set();
    this.waiting = new Set(); // calculations of the last expansion not computed yet
    this.total = 0;
    this.source = el("select", { id: "expand-calculation" });
    this.parameter = el("select", { id: "expand-parameter", dataset: { field: "parameter" } },
      PARAMETERS.map(([v, text]) => el("option", { value: v }, text)));
    this.values = el("input", { id: "expand-values", type: "text", dataset: { field: "values" },
      placeholder: "e.g. 4, 6, 8 or F150W, F200W" });
    this.progress = el("p", { className: "muted", id: "expand-progress", role: "status" });
    this.error = el("p", { className: "error", role: "alert", hidden: true, id: "batch-error" });
    this.plot = el("figure", { id: "compare-figure", hidden: true });
    this.kind = el("select", { id: "compare-kind", dataset: { field: "kind" } },
      COMPARE_KINDS.map(([v, text]) => el("option", { value: v }, text)));
    this.node = el("section", { className: "contents", id: "batch" },
      el("h2", {}, "Expand and compare"),
      el("div", { className: "row" },
        el("label", { className: "field" }, el("span", {}, "Calculation"), this.source),
        el("label", { className: "field" }, el("span", {}, "Over"), this.parameter),
        el("label", { className: "field" }, el("span", {}, "Values (comma separated)"), this.values),
        el("button", { type: "button", id: "expand", onclick: () => this.expand() }, "Expand")),
      this.progress,
      el("div", { className: "row" }, el("label", { className: "field" }, el("span", {}, "Overplot"), this.kind),
        el("button", { type: "button", id: "compare", onclick: () => this.compare() },
        "Compare ticked calculations"), el("span", { className: "muted" },
        `tick up to ${MAX_COMPARED} in the Calculations table`)),
      this.error, this.plot);
  }

  draw() {
    const calcs = [...this.contents.items.calculation.values()];
    const chosen = this.source.value;
    this.source.replaceChildren(...calcs.map((c) => el("option", { value: c.id, selected: c.id === chosen }, c.name)));
  }

  tick(calc) {
    const box = el("input", { type: "checkbox", checked: this.ticked.has(calc.id),
      dataset: { compare: calc.id }, title: "compare" });
    box.addEventListener("change", () => (box.checked ? this.ticked.add(calc.id) : this.ticked.delete(calc.id)));
    return box;
  }

  clearErrors() {
    this.error.hidden = true;
    document.querySelectorAll("#batch .invalid, input[data-compare].invalid").forEach((n) => n.classList.remove("invalid"));
  }

  fail(message, field, ids = []) {
    this.clearErrors();
    this.error.textContent = message;
    this.error.hidden = false;
    const [key, index] = (field || "").split(".");
    this.node.querySelector(`[data-field="${CSS.escape(key)}"]`)?.classList.add("invalid");
    // calculations.<i>: the i-th ticked calculation's checkbox
    const id = key === "calculations" && index !== undefined ? ids[Number(index)] : null;
    if (id) document.querySelector(`input[data-compare="${CSS.escape(id)}"]`)?.classList.add("invalid");
  }

  async expand() {
    this.clearErrors();
    const parameter = this.parameter.value;
    const values = this.values.value.split(",").map((v) => v.trim()).filter(Boolean)
      .map((v) => (parameter === "filter" || !/^-?\d+$/.test(v) ? v : Number(v)));
    try {
      const reply = await this.contents.conn.request("calculation.expand", { workbook: this.contents.workbookId,
        calculation: this.source.value, parameter, values });
      this.total = reply.calculations.length;
      this.waiting = new Set(reply.calculations.filter((id) => this.contents.items.calculation.get(id)?.status === "pending" ||
        !this.contents.items.calculation.has(id)));
      reply.calculations.forEach((id) => this.ticked.add(id));
      this.showProgress();
      this.contents.drawCalculations();
    } catch (err) {
      this.fail(err.message, err.reply?.field);
    }
  }

  saved(calc) {
    if (calc.status !== "pending" && this.waiting.delete(calc.id)) this.showProgress();
  }

  showProgress() {
    const done = this.total - this.waiting.size;
    this.progress.textContent = this.total ? `Expanded: ${done} of ${this.total} computed` +
      (this.waiting.size ? "…" : " — ticked for comparison") : "";
    this.progress.dataset.done = String(done === this.total);
  }

  async compare() {
    this.clearErrors();
    const ids = [...this.ticked].filter((id) => this.contents.items.calculation.has(id));
    // spectroscopic calculations (a disperser) overplot S/N against wavelength, imaging ones
    // S/N against time; a mixed choice is refused by the server naming calculations.<i>
    const spectra = ids.length > 0 && ids.every((id) => this.contents.items.calculation.get(id)?.data?.disperser);
    const chosen = this.kind.value;
    const kind = chosen === "auto" ? (spectra ? "snr_vs_wavelength" : "snr_vs_time") : chosen;
    try {
      const reply = await this.contents.conn.request("plot.compare", { workbook: this.contents.workbookId,
        calculations: ids, kind });
      const names = reply.calculations.map((id) => this.contents.items.calculation.get(id)?.name ?? id);
      this.plot.replaceChildren(el("img", { id: "compare-plot", src: `data:image/png;base64,${reply.png}`,
        dataset: { kind: reply.kind, curves: String(names.length) },
        alt: `S/N against ${reply.kind === "snr_vs_wavelength" ? "wavelength" : "time"} of the ticked calculations` }),
      el("figcaption", {}, ...names.map((name, i) => [i ? " · " : "", el("span", { className: "curve" }, name)]).flat()));
      this.plot.hidden = false;
    } catch (err) {
      this.plot.hidden = true;
      this.fail(err.message, err.reply?.field, ids);
    }
  }
}

export function backgroundFields(contents, data) {
  // the background of a target and date, or a percentile of its year; none: the benchmark
  const host = el("fieldset", { className: "extras", id: "background-fields" });
  const draw = () => {
    const bg = data.background;
    const on = el("input", { type: "checkbox", id: "background-target", checked: Boolean(bg) });
    on.addEventListener("change", () => {
      data.background = on.checked ? { ra_deg: 0, dec_deg: 0, percentile: "medium" } : null;
      draw();
    });
    host.replaceChildren(el("legend", {}, "Background"),
      el("label", { className: "field" }, el("span", {}, "For a target and date (else the benchmark)"), on));
    if (!bg) return;
    const when = bg.date ? "date" : bg.percentile || "medium";
    host.append(
      contents.input("background.ra_deg", "RA (deg, J2000)", "number", bg.ra_deg, null, (v) => { bg.ra_deg = v; }),
      contents.input("background.dec_deg", "Dec (deg, J2000)", "number", bg.dec_deg, null, (v) => { bg.dec_deg = v; }),
      contents.input("background.percentile", "When", "select", when,
        [["low", "low (10th percentile of the year)"], ["medium", "medium (50th)"], ["high", "high (90th)"], ["date", "on a date"]],
        (v) => {
          if (v === "date") { delete bg.percentile; bg.date = bg.date || new Date().toISOString().slice(0, 10); }
          else { delete bg.date; bg.percentile = v; }
          draw();
        }));
    if (bg.date) {
      host.append(contents.input("background.date", "Date (YYYY-MM-DD)", "text", bg.date, null, (v) => { bg.date = v; }));
    }
  };
  draw();
  return [host];
}
