// The annotator's page: their own statistics and their own tasks, each
// linking into Label Studio. The API answers only the caller's own tasks.

import { get, withQuery } from "./api.js";
import {
  formatNumber,
  h,
  keepFresh,
  numberHeading,
  percentOf,
  reportError,
  table,
} from "./ui.js";

const PAGE_SIZE = 50;
// Labels saved in Label Studio reach labelhub by webhook within moments.
const REFRESH_MS = 10000;
const PREVIEW_CHARS = 160;
const STATUS_CHOICES = [
  ["", "All my tasks"],
  ["imported", "To label"],
  ["labeled", "Labeled"],
];

export async function showOwnTasks(view, signal) {
  const page = { signal, stats: h("div"), tasks: h("div"), status: "" };
  const filter = statusFilter(page);

  view.replaceChildren(
    h("h1", { tabIndex: -1 }, "My tasks"),
    h(
      "section",
      { class: "panel", "aria-labelledby": "own-stats-title" },
      h("h2", { id: "own-stats-title" }, "My progress"),
      page.stats,
    ),
    h(
      "section",
      { class: "panel", "aria-labelledby": "own-tasks-title" },
      h("h2", { id: "own-tasks-title" }, "Tasks"),
      filter,
      page.tasks,
    ),
  );
  await Promise.all([showOwnStats(page), showTaskList(page)]);
  // The list is shown again only while it holds its first page and has no
  // focus: a list the annotator is reading or moving through stays put.
  keepFresh(signal, REFRESH_MS, () => {
    const reading = page.readOn || page.tasks.contains(document.activeElement);
    return Promise.all([showOwnStats(page), reading ? null : showTaskList(page)]);
  });
}

async function showOwnStats(page) {
  const stats = await get("/annotator/stats", { signal: page.signal });

  const facts = [
    ["Assigned", stats.assigned],
    ["Labeled", stats.labeled],
    ["Remaining", stats.remaining],
  ];
  const labels = Object.entries(stats.labels).map(([label, count]) =>
    h("li", { "data-label": label }, `${label}: `, h("strong", {}, formatNumber(count))),
  );
  page.stats.replaceChildren(
    h(
      "dl",
      { class: "facts facts-inline" },
      facts.map(([term, value]) =>
        h(
          "div",
          { "data-stat": term.toLowerCase() },
          h("dt", {}, term),
          h("dd", {}, formatNumber(value)),
        ),
      ),
    ),
    h("progress", {
      max: Math.max(stats.assigned, 1),
      value: stats.labeled,
      "aria-label": `${stats.labeled} of ${stats.assigned} of my tasks labeled`,
    }),
    h(
      "p",
      { class: "summary" },
      `${percentOf(stats.labeled, stats.assigned)}% of my tasks labeled`,
    ),
    labels.length ? h("ul", { class: "own-labels", "aria-label": "My labels" }, labels) : null,
  );
}

function statusFilter(page) {
  const select = h(
    "select",
    { id: "status-filter", name: "status" },
    STATUS_CHOICES.map(([value, text]) => h("option", { value }, text)),
  );
  select.addEventListener("change", () => {
    page.status = select.value;
    showTaskList(page).catch(reportError);
  });
  return h("p", { class: "field" }, h("label", { for: "status-filter" }, "Show"), select);
}

/** The first page of tasks, then a button that appends the next page. */
async function showTaskList(page, after = null) {
  const path = withQuery("/annotator/tasks", { status: page.status, after, limit: PAGE_SIZE });
  const request = (page.lastRequest = (page.lastRequest ?? 0) + 1);
  const answer = await get(path, { signal: page.signal });
  if (request !== page.lastRequest) return []; // a newer filter's answer wins

  const rows = answer.tasks.map(taskRow);
  page.readOn = after !== null;
  if (after === null) page.tasks.replaceChildren(taskTable(rows));
  else page.tasks.querySelector("tbody").append(...rows);
  if (answer.next_after !== null) page.tasks.append(moreButton(page, answer.next_after));
  return rows;
}

function taskTable(rows) {
  if (rows.length === 0) return h("p", { class: "empty" }, "No task here; an admin assigns them.");
  const headings = [numberHeading("Task"), "Text", "Status", "Label", "Label Studio"];
  return table("My tasks", headings, rows, { class: "own-tasks" });
}

/** Appends the next page and moves the focus to its first task. */
function moreButton(page, after) {
  const button = h("button", { type: "button", class: "more" }, "Show more tasks");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const rows = await showTaskList(page, after);
      button.remove();
      rows[0]?.querySelector("th").focus();
    } catch (error) {
      button.disabled = false;
      reportError(error);
    }
  });
  return button;
}

function taskRow(task) {
  return h(
    "tr",
    { "data-task": task.id },
    h("th", { scope: "row", class: "number", tabIndex: -1 }, String(task.id)),
    h("td", { class: "task-text" }, taskText(task.data)),
    h("td", {}, h("span", { class: `task-status status-${task.status}` }, task.status)),
    h("td", {}, task.label ?? "—"),
    h("td", {}, studioLink(task)),
  );
}

/** The item's `text` when it has one, else a short preview of its JSON. */
function taskText(data) {
  if (typeof data.text === "string") return data.text;
  const json = JSON.stringify(data);
  return json.length > PREVIEW_CHARS ? `${json.slice(0, PREVIEW_CHARS)}…` : json;
}

function studioLink(task) {
  if (!task.link) return h("span", { class: "empty" }, "not in Label Studio yet");
  return h(
    "a",
    { href: task.link, target: "_blank", rel: "noopener" },
    "Open",
    h(
      "span",
      { class: "visually-hidden" },
      ` task ${task.id} in Label Studio (opens in a new tab)`,
    ),
  );
}
