// The admin's pages: every dataset, and one dataset with its numbers, its
// jobs (see jobs.js), auto-assignment and the latest drift report.

import { get, post, withQuery } from "./api.js";
import { showRecentJobs, jobButtons, showLatestDrift } from "./jobs.js";
import {
  formatNumber,
  h,
  keepFresh,
  labelChart,
  legend,
  numberHeading,
  percentOf,
  reportError,
  stackedBar,
  table,
} from "./ui.js";

/** The parts of a dataset's progress bar; deleted tasks only when there are any. */
function progressParts(counts) {
  const parts = ["new", "imported", "labeled"].map((name) => ({ name, value: counts[name] }));
  if (counts.deleted > 0) parts.push({ name: "deleted", value: counts.deleted });
  return parts;
}

// Webhooks and jobs change the numbers while a page is open.
const LIST_REFRESH_MS = 5000;
const DATASET_REFRESH_MS = 5000;

function labeledSummary(labeled, total) {
  const counted = `${formatNumber(labeled)} of ${formatNumber(total)} tasks labeled`;
  return `${counted} (${percentOf(labeled, total)}%)`;
}

export async function showDatasetList(view, signal) {
  const heading = h("h1", { tabIndex: -1 }, "Datasets");
  view.replaceChildren(heading, await datasetListing(signal));
  keepFresh(signal, LIST_REFRESH_MS, async () => {
    const listing = await datasetListing(signal);
    view.replaceChildren(heading, listing);
  });
}

async function datasetListing(signal) {
  const datasets = await get("/datasets", { signal });

  const rows = datasets.map((dataset) => {
    const parts = progressParts(dataset.counts);
    return h(
      "tr",
      { "data-dataset": dataset.id },
      h("th", { scope: "row" }, h("a", { href: `#/datasets/${dataset.id}` }, dataset.name)),
      h("td", { class: "number" }, formatNumber(dataset.total)),
      h(
        "td",
        { class: "progress-cell" },
        stackedBar(parts),
        legend(parts),
        h("p", { class: "summary" }, labeledSummary(dataset.counts.labeled, dataset.total)),
      ),
    );
  });
  return datasets.length
    ? table(
        "Tasks of each dataset by status",
        ["Dataset", numberHeading("Tasks"), "Progress"],
        rows,
      )
    : h("p", { class: "empty" }, "There is no dataset yet; create one with POST /datasets.");
}

export async function showDataset(view, signal, datasetId) {
  const [dataset, users] = await Promise.all([
    get(`/datasets/${datasetId}`, { signal }),
    get("/users", { signal }),
  ]);
  const annotators = users.filter((user) => user.role === "annotator" && user.active);
  const page = {
    dataset,
    signal,
    watching: new Set(),
    progress: h("div"),
    labels: h("div"),
    annotators: h("div"),
    drift: h("div", { "aria-live": "polite" }),
    jobs: h("ul", { class: "jobs", "aria-live": "polite", "aria-label": "Jobs" }),
    refreshStats: () => refreshStats(page),
  };

  view.replaceChildren(
    h("p", { class: "breadcrumb" }, h("a", { href: "#/datasets" }, "All datasets")),
    h("h1", { tabIndex: -1 }, dataset.name),
    h(
      "div",
      { class: "dataset-page" },
      h(
        "div",
        { class: "column" },
        section("progress", "Progress", page.progress),
        section("annotators", "Annotators", page.annotators),
        section("labels", "Labels", page.labels),
      ),
      h(
        "div",
        { class: "column" },
        section(
          "actions",
          "Jobs and assignment",
          jobButtons(page),
          assignForm(page, annotators),
          page.jobs,
        ),
        section("drift", "Latest reconciliation", page.drift),
      ),
    ),
  );
  await Promise.all([refreshStats(page), showLatestDrift(page)]);
  showRecentJobs(page);
  // Jobs started elsewhere (another admin, the scheduler) show up too.
  keepFresh(signal, DATASET_REFRESH_MS, async () => {
    await Promise.all([refreshStats(page), showLatestDrift(page)]);
    showRecentJobs(page);
  });
}

function section(name, title, ...content) {
  const headingId = `${name}-title`;
  return h(
    "section",
    { class: `panel panel-${name}`, "aria-labelledby": headingId },
    h("h2", { id: headingId }, title),
    ...content,
  );
}

async function refreshStats(page) {
  const stats = await get(`/datasets/${page.dataset.id}/stats`, { signal: page.signal });

  const parts = progressParts(stats);
  page.progress.replaceChildren(
    stackedBar(parts),
    legend(parts),
    h("p", { class: "summary" }, labeledSummary(stats.labeled, stats.total)),
    h(
      "p",
      { class: "summary" },
      `${formatNumber(stats.assigned)} assigned, ${formatNumber(stats.unassigned)} unassigned ` +
        `(${formatNumber(stats.free)} in Label Studio and free to assign)`,
    ),
  );
  page.labels.replaceChildren(labelChart(stats.labels));
  page.annotators.replaceChildren(annotatorTable(stats.annotators));
}

function annotatorTable(annotators) {
  if (annotators.length === 0) return h("p", { class: "empty" }, "No task is assigned yet.");
  const rows = annotators.map((entry) =>
    h(
      "tr",
      { "data-annotator": entry.username },
      h("th", { scope: "row" }, entry.username),
      h("td", { class: "number", "data-column": "assigned" }, formatNumber(entry.assigned)),
      h("td", { class: "number", "data-column": "labeled" }, formatNumber(entry.labeled)),
      h("td", { class: "number", "data-column": "remaining" }, formatNumber(entry.remaining)),
      h(
        "td",
        {},
        h("progress", {
          max: Math.max(entry.assigned, 1),
          value: entry.labeled,
          "aria-label": `${entry.username}: ${entry.labeled} of ${entry.assigned} labeled`,
        }),
      ),
    ),
  );
  const headings = [
    "Annotator",
    ...["Assigned", "Labeled", "Remaining"].map(numberHeading),
    "Progress",
  ];
  return table("Tasks of each annotator", headings, rows);
}

function assignForm(page, annotators) {
  const count = h("input", {
    type: "number",
    id: "assign-count",
    name: "count",
    min: 1,
    max: 10000,
    value: 20,
    required: true,
  });
  const choices = annotators.map((user) =>
    h(
      "label",
      { class: "choice" },
      h("input", { type: "checkbox", name: "annotator", value: user.username }),
      ` ${user.username}`,
    ),
  );
  const submit = h("button", { type: "submit", disabled: annotators.length === 0 }, "Assign tasks");
  const result = h("p", { class: "assign-result", role: "status" });
  const form = h(
    "form",
    { class: "assign-form", "aria-labelledby": "assign-title" },
    h("h3", { id: "assign-title" }, "Auto-assign free tasks"),
    h(
      "fieldset",
      {},
      h("legend", {}, "Annotators"),
      choices.length ? choices : h("p", { class: "empty" }, "There is no active annotator."),
    ),
    h("p", { class: "field" }, h("label", { for: "assign-count" }, "Tasks to assign"), count),
    submit,
    result,
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const chosen = [...form.querySelectorAll("input[name=annotator]:checked")].map(
      (box) => box.value,
    );
    assignTasks(page, chosen, Number(count.value), { submit, result });
  });
  return form;
}

async function assignTasks(page, usernames, count, { submit, result }) {
  if (usernames.length === 0) {
    result.textContent = "Choose at least one annotator.";
    return;
  }
  const who =
    usernames.length === 1 ? { username: usernames[0] } : { usernames: usernames.join(",") };
  submit.disabled = true;
  result.textContent = "Assigning…";
  try {
    const path = withQuery(`/datasets/${page.dataset.id}/auto_assign`, { ...who, count });
    const answer = await post(path, undefined, { signal: page.signal });
    result.textContent = assignedMessage(answer, count);
    await refreshStats(page);
  } catch (error) {
    result.textContent = "";
    reportError(error);
  } finally {
    submit.disabled = false;
  }
}

function assignedMessage(answer, asked) {
  const shares = Object.entries(answer.by_user).map(([name, n]) => `${name} ${formatNumber(n)}`);
  const assigned = formatNumber(answer.assigned);
  const short = answer.assigned < asked ? ` (only ${assigned} were free)` : "";
  return `Assigned ${assigned} of ${formatNumber(asked)} tasks${short}: ${shares.join(", ")}.`;
}
