// Building the page: elements, messages, numbers, bars and charts.
//
// Everything is built with DOM calls and textContent, never from HTML
// strings, so no value from the API can turn into markup. Widths are set
// through element.style, which the Content-Security-Policy allows.

const numbers = new Intl.NumberFormat("en");

/** `h("p", {class: "note"}, "text", child)`: an element with its children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") element.className = value;
    else if (name in element && typeof value !== "string") element[name] = value;
    else element.setAttribute(name, value === true ? "" : value);
  }
  const kept = children.flat(Infinity).filter((child) => child !== null && child !== undefined);
  element.append(...kept);
  return element;
}

/** Show `message` in the page's alert region, which screen readers announce. */
export function showAlert(message) {
  document.getElementById("alert").textContent = message;
}

export function clearAlert() {
  document.getElementById("alert").textContent = "";
}

/** Show a failed call's message; aborted calls belong to a page left behind. */
export function reportError(error) {
  if (error?.name === "AbortError" || error?.handled) return;
  showAlert(error?.message ?? String(error));
}

export function formatNumber(value) {
  return numbers.format(value);
}

export function percentOf(part, whole) {
  return whole > 0 ? Math.round((100 * part) / whole) : 0;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString("en") : "";
}

/** "annotations_created" as "annotations created". */
export function humanize(name) {
  return name.replaceAll("_", " ");
}

/**
 * A bar split into parts `[{name, value}]`, each drawn in class `bar-<name>`.
 * It is hidden from screen readers: callers show the numbers as text too.
 */
export function stackedBar(parts) {
  const total = parts.reduce((sum, part) => sum + part.value, 0);
  const bar = h("div", { class: "stacked-bar", "aria-hidden": "true" });
  for (const part of parts) {
    if (part.value === 0) continue;
    const segment = h("span", { class: `segment bar-${part.name}` });
    segment.style.width = `${(100 * part.value) / total}%`;
    bar.append(segment);
  }
  return bar;
}

/** The text of a stacked bar: each part's swatch, name and number. */
export function legend(parts) {
  const items = parts.map((part) =>
    h(
      "li",
      { "data-part": part.name },
      h("span", { class: `swatch bar-${part.name}`, "aria-hidden": "true" }),
      `${part.name} `,
      h("strong", {}, formatNumber(part.value)),
    ),
  );
  return h("ul", { class: "legend" }, items);
}

/** A column heading for numbers, aligned like them. */
export function numberHeading(text) {
  return h("th", { scope: "col", class: "number" }, text);
}

/** A table with a caption, column headings (text or cells) and the given rows. */
export function table(caption, headings, rows, attributes = {}) {
  const headingCells = headings.map((heading) =>
    heading instanceof Element ? heading : h("th", { scope: "col" }, heading),
  );
  return h(
    "table",
    attributes,
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, headingCells)),
    h("tbody", {}, rows),
  );
}

/** Label counts such as `{OK: 3, NG: 1}` as a table of bars, largest first. */
export function labelChart(labels) {
  const entries = Object.entries(labels).sort(
    ([nameA, countA], [nameB, countB]) => countB - countA || nameA.localeCompare(nameB),
  );
  if (entries.length === 0) return h("p", { class: "empty" }, "No task is labeled yet.");
  const total = entries.reduce((sum, [, count]) => sum + count, 0);
  const largest = entries[0][1];

  const rows = entries.map(([label, count]) => {
    const fill = h("span", { class: "chart-fill" });
    fill.style.width = `${(100 * count) / largest}%`;
    return h(
      "tr",
      { "data-label": label },
      h("th", { scope: "row" }, label),
      h(
        "td",
        { class: "chart-cell" },
        h("span", { class: "chart-track", "aria-hidden": "true" }, fill),
      ),
      h("td", { class: "number" }, formatNumber(count)),
      h("td", { class: "number" }, `${percentOf(count, total)}%`),
    );
  });
  const chart = h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Chart"));
  const headings = ["Label", chart, numberHeading("Tasks"), numberHeading("Share")];
  return table("Labeled tasks by label", headings, rows, { class: "label-chart" });
}

/** Resolve after `delay_ms`; reject at once when `signal` aborts. */
export function wait(delay_ms, signal) {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const timer = setTimeout(resolve, delay_ms);
    signal.addEventListener(
      "abort",
      () => {
        clearTimeout(timer);
        reject(signal.reason);
      },
      { once: true },
    );
  });
}

/**
 * Call `refresh` every `interval_ms` while the page lives (until `signal`
 * aborts), skipping turns while the tab is hidden. A failed turn is
 * reported once and the next one tried, so a blip does not stop the page.
 */
export async function keepFresh(signal, interval_ms, refresh) {
  let failing = false;
  while (!signal.aborted) {
    try {
      await wait(interval_ms, signal);
    } catch {
      return; // the page was left
    }
    if (document.visibilityState === "hidden") continue;
    try {
      await refresh();
      failing = false;
    } catch (error) {
      if (signal.aborted) return;
      if (!failing) reportError(error);
      failing = true;
    }
  }
}
