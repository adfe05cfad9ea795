// A dataset's jobs: starting an import or an export, following a job until
// it ends, and the drift report of the latest reconciliation.
//
// The functions take the dataset page's state: `dataset`, `signal` (aborted
// when the page is left), `jobs` (the list that shows them), `drift` (where
// the report goes) and `refreshStats()` (shows the dataset's numbers again).

import { get, post, withQuery } from "./api.js";
import {
  formatNumber,
  formatTime,
  h,
  humanize,
  numberHeading,
  reportError,
  table,
  wait,
} from "./ui.js";

const JOB_POLL_MS = 1000;
const STATS_REFRESH_MS = 3000;
const FINISHED = new Set(["success", "failed"]);
const RECENT_JOBS = 5;
const JOB_NAMES = { import: "Import", export: "Export", reconcile: "Reconciliation" };

export function jobButtons(page) {
  const importButton = h("button", { type: "button" }, "Import into Label Studio");
  const exportButton = h("button", { type: "button" }, "Export from Label Studio");
  importButton.addEventListener("click", () => startJob(page, "import_to_ls", importButton));
  exportButton.addEventListener("click", () => startJob(page, "export_from_ls", exportButton));
  return h("div", { class: "buttons" }, importButton, exportButton);
}

async function startJob(page, action, button) {
  button.disabled = true;
  try {
    const path = `/datasets/${page.dataset.id}/${action}`;
    const accepted = await post(path, undefined, { signal: page.signal });
    await followJob(page, accepted.job_id);
  } catch (error) {
    reportError(error);
  } finally {
    button.disabled = false;
  }
}

/**
 * The dataset's recent jobs, and recent reconciliations of its project,
 * that this page has not shown yet: those run before it opened or started
 * by someone else (another admin, the scheduler). Unfinished ones are
 * followed until they end.
 */
export async function showRecentJobs(page) {
  const options = { signal: page.signal };
  const project = page.dataset.ls_project_id;
  try {
    const [own, reconciliations] = await Promise.all([
      get(withQuery("/jobs", { dataset_id: page.dataset.id, limit: RECENT_JOBS }), options),
      project
        ? get(withQuery("/jobs", { kind: "reconcile", ls_project_id: project, limit: 3 }), options)
        : { jobs: [] },
    ]);
    const unseen = [...own.jobs, ...reconciliations.jobs]
      .filter((job) => !page.watching.has(job.id))
      .sort((a, b) => a.id - b.id);
    await Promise.all(unseen.map((job) => followJob(page, job.id, job)));
  } catch (error) {
    if (!page.signal.aborted) reportError(error);
  }
}

/** Show a job's state every second until it ends; refresh the numbers meanwhile. */
async function followJob(page, jobId, known = null) {
  if (page.watching.has(jobId)) return;
  page.watching.add(jobId);
  let job = known ?? (await get(`/jobs/${jobId}`, { signal: page.signal }));
  const item = h("li", { class: "job", "data-job": jobId });
  page.jobs.prepend(item);

  showJob(item, job);
  if (FINISHED.has(job.status) && known) return; // history: nothing to follow
  let statsShownAt = Date.now();
  while (!FINISHED.has(job.status)) {
    await wait(JOB_POLL_MS, page.signal);
    job = (await pollJob(page, jobId)) ?? job;
    showJob(item, job);
    if (Date.now() - statsShownAt >= STATS_REFRESH_MS) {
      statsShownAt = Date.now();
      await page.refreshStats();
    }
  }

  await page.refreshStats();
  if (job.result) await showLatestDrift(page);
}

/** The job's state, or null when labelhub did not answer this time. */
async function pollJob(page, jobId) {
  try {
    return await get(`/jobs/${jobId}`, { signal: page.signal });
  } catch (error) {
    if (error.status !== 0) throw error;
    reportError(error); // a network blip: keep following
    return null;
  }
}

function jobName(job) {
  return `${JOB_NAMES[job.kind] ?? job.kind} job ${job.id}`;
}

function showJob(item, job) {
  const message = job.message || (job.status === "queued" ? "waiting for a worker" : "");
  const { done, total } = job.progress;
  const signature = [job.status, message, done, total].join("|");
  if (item.dataset.signature === signature) return; // unchanged: nothing new to announce
  item.dataset.signature = signature;

  const status = h("span", { class: `job-status status-${job.status}` }, job.status);
  const parts = [h("p", { class: "job-title" }, `${jobName(job)}: `, status)];
  if (!FINISHED.has(job.status)) parts.push(jobProgress(job));
  parts.push(h("p", { class: "job-message" }, message));
  item.replaceChildren(...parts);
}

/** A meter and its text; without a known total the meter only shows activity. */
function jobProgress(job) {
  const { done, total } = job.progress;
  const meter = h("progress", { "aria-label": `${jobName(job)} progress` });
  if (total !== null) Object.assign(meter, { max: Math.max(total, 1), value: done });
  const counted =
    total === null
      ? `${formatNumber(done)} done`
      : `${formatNumber(done)} of ${formatNumber(total)}`;
  return h("div", { class: "job-progress" }, meter, h("span", {}, counted));
}

/**
 * The drift report of the newest finished reconciliation of this dataset:
 * its own exports, and scheduled reconciliations of its Label Studio project.
 */
export async function showLatestDrift(page) {
  const options = { signal: page.signal };
  const project = page.dataset.ls_project_id;
  const ownExports = { kind: "export", status: "success", dataset_id: page.dataset.id, limit: 5 };
  const reconciliations = { kind: "reconcile", status: "success", ls_project_id: project, limit: 5 };
  const [exported, reconciled] = await Promise.all([
    get(withQuery("/jobs", ownExports), options),
    project ? get(withQuery("/jobs", reconciliations), options) : { jobs: [] },
  ]);

  // A reconciliation skipped for another daemon's lock reports no result.
  const reported = [...exported.jobs, ...reconciled.jobs].filter((job) => job.result);
  reported.sort((a, b) => Date.parse(b.finished_at) - Date.parse(a.finished_at));
  page.drift.replaceChildren(
    reported.length
      ? driftReport(reported[0])
      : h("p", { class: "empty" }, "No reconciliation has finished yet; an export runs one."),
  );
}

function plural(count, noun) {
  return `${formatNumber(count)} ${noun}${count === 1 ? "" : "s"}`;
}

function driftReport(job) {
  const report = job.result;
  const tasksRead = `${plural(report.tasks_seen, "task")} in ${plural(report.pages, "page")}`;
  const facts = [
    ["Job", `${jobName(job)}, finished ${formatTime(job.finished_at)}`],
    ["Pass", `${report.mode} over Label Studio project ${report.project_id}`],
    ["Read", `${tasksRead}, ${formatNumber(report.duration_ms)} ms`],
    ["Repairs", formatNumber(report.total_repaired ?? 0)],
    ["Webhook", report.webhook ?? "not checked"],
  ];
  if (report.unclaimed) facts.push(["Unclaimed tasks", formatNumber(report.unclaimed)]);
  if (report.duplicates) facts.push(["Duplicates", formatNumber(report.duplicates)]);

  const repairs = Object.entries(report.repaired ?? {}).filter(([, count]) => count > 0);
  const rows = repairs.map(([kind, count]) =>
    h(
      "tr",
      { "data-drift": kind },
      h("th", { scope: "row" }, humanize(kind)),
      h("td", { class: "number" }, formatNumber(count)),
    ),
  );
  const terms = facts.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]);
  return h(
    "div",
    {},
    h("dl", { class: "facts" }, terms),
    repairs.length
      ? table("Repairs by kind", ["Drift", numberHeading("Repaired")], rows)
      : h("p", {}, "No drift: the shadow index matched Label Studio."),
  );
}
