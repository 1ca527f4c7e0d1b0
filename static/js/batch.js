// The Workbook page's parts for batches and backgrounds (issue 16): expand a calculation over
// a list of values, tick calculations to overplot them, and the target-and-date background of
// the calculation form.
//
//   import { BatchPanel, backgroundFields } from "/static/js/batch.js";
//   const batch = new BatchPanel(contents);       // contents: the WorkbookContents
//   batch.tick(calc)                               // the row's "compare" checkbox
//                                                  // (spectroscopic ticks: S/N vs wavelength)
//   batch.saved(calc)                              // on every calculation.saved: progress
//   form.append(...backgroundFields(contents, data));  // in the calculation form
//
// Refusals name the field (`values.2: data.groups: ...`, `data.background.date: not
// observable on ...`); the page shows the message and marks the input whose data-field matches.

import { el } from "/static/js/workbook-contents.js";

const PARAMETERS = [["groups", "groups"], ["integrations", "integrations"],
  ["exposures", "exposures"], ["filter", "filters"]];
const MAX_COMPARED = 8;

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
    this.node = el("section", { className: "contents", id: "batch" },
      el("h2", {}, "Expand and compare"),
      el("div", { className: "row" },
        el("label", { className: "field" }, el("span", {}, "Calculation"), this.source),
        el("label", { className: "field" }, el("span", {}, "Over"), this.parameter),
        el("label", { className: "field" }, el("span", {}, "Values (comma separated)"), this.values),
        el("button", { type: "button", id: "expand", onclick: () => this.expand() }, "Expand")),
      this.progress,
      el("p", {}, el("button", { type: "button", id: "compare", onclick: () => this.compare() },
        "Compare ticked calculations"), " ", el("span", { className: "muted" },
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

  fail(message, field) {
    this.error.textContent = message;
    this.error.hidden = false;
    this.node.querySelectorAll(".invalid").forEach((n) => n.classList.remove("invalid"));
    const key = (field || "").split(".")[0];
    this.node.querySelector(`[data-field="${CSS.escape(key)}"]`)?.classList.add("invalid");
  }

  async expand() {
    this.error.hidden = true;
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
    this.error.hidden = true;
    const ids = [...this.ticked].filter((id) => this.contents.items.calculation.has(id));
    // spectroscopic calculations (a disperser) overplot S/N against wavelength, imaging ones
    // S/N against time; a mixed choice is refused by the server naming calculations.<i>
    const spectra = ids.length > 0 && ids.every((id) => this.contents.items.calculation.get(id)?.data?.disperser);
    const kind = spectra ? "snr_vs_wavelength" : "snr_vs_time";
    try {
      const reply = await this.contents.conn.request("plot.compare", { workbook: this.contents.workbookId,
        calculations: ids, kind });
      const names = ids.map((id) => this.contents.items.calculation.get(id)?.name ?? id);
      this.plot.replaceChildren(el("img", { id: "compare-plot", src: `data:image/png;base64,${reply.png}`,
        alt: `S/N against ${spectra ? "wavelength" : "time"} of the ticked calculations` }),
      el("figcaption", {}, names.join(" · ")));
      this.plot.hidden = false;
    } catch (err) {
      this.fail(err.message, err.reply?.field);
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
