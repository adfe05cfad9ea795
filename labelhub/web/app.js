// The dashboard's entry point: signing in and out, and which page to show.
//
// Pages are addressed by the URL's fragment, so the browser's back button
// and bookmarks work without a server route per page:
//   admin      #/datasets, #/datasets/<id>
//   annotator  #/tasks

import { clearSession, get, loadSession, post, saveSession, whenSessionLost } from "./api.js";
import { showDataset, showDatasetList } from "./admin.js";
import { showOwnTasks } from "./annotator.js";
import { clearAlert, h, reportError, showAlert } from "./ui.js";

const HOME = { admin: "#/datasets", annotator: "#/tasks" };
const NAVIGATION = {
  admin: [["#/datasets", "Datasets"]],
  annotator: [["#/tasks", "My tasks"]],
};

const loginView = document.getElementById("login-view");
const loginForm = document.getElementById("login-form");
const view = document.getElementById("view");
const account = document.getElementById("account");
const navigation = document.getElementById("navigation");

// Aborting it stops the shown page's requests and polling when another is shown.
let pageScope = new AbortController();

function start() {
  loginForm.addEventListener("submit", logIn);
  document.getElementById("logout").addEventListener("click", logOut);
  window.addEventListener("hashchange", () => showPage());
  document.addEventListener("visibilitychange", refreshOnReturn);
  whenSessionLost((error) => {
    clearSession();
    showLogin(`Your session has ended (${error.message}). Please sign in again.`);
  });
  showPage();
}

/** The page a role may see at `hash`, or null when it should go home. */
function pageFor(role, hash) {
  if (role === "admin") {
    if (hash === "#/datasets") return (signal) => showDatasetList(view, signal);
    const match = hash.match(/^#\/datasets\/(\d+)$/);
    if (match) return (signal) => showDataset(view, signal, Number(match[1]));
  }
  if (role === "annotator" && hash === "#/tasks") return (signal) => showOwnTasks(view, signal);
  return null;
}

async function showPage({ moveFocus = true } = {}) {
  pageScope.abort();
  pageScope = new AbortController();
  const signal = pageScope.signal;
  clearAlert();

  const session = loadSession();
  if (!session) {
    showLogin();
    return;
  }
  if (!HOME[session.role]) {
    clearSession();
    showLogin(`The dashboard has no pages for the role ${session.role}.`);
    return;
  }
  const show = pageFor(session.role, location.hash);
  if (!show) {
    location.replace(HOME[session.role]);
    return; // the hashchange shows the page
  }
  showSignedIn(session);
  try {
    await show(signal);
    document.title = `${view.querySelector("h1")?.textContent ?? "labelhub"} · labelhub`;
    if (moveFocus) view.querySelector("h1")?.focus();
  } catch (error) {
    if (signal.aborted || error.handled) return;
    view.replaceChildren(
      h("h1", { tabIndex: -1 }, "This page cannot be shown"),
      h("p", {}, h("a", { href: HOME[session.role] }, "Back to the start")),
    );
    reportError(error);
  }
}

/** Coming back to the tab (say, from Label Studio) shows fresh numbers. */
function refreshOnReturn() {
  if (document.visibilityState === "visible" && loadSession()) showPage({ moveFocus: false });
}

function showSignedIn(session) {
  loginView.hidden = true;
  account.hidden = false;
  navigation.hidden = false;
  document.getElementById("signed-in-as").textContent = `${session.username} (${session.role})`;
  const links = (NAVIGATION[session.role] ?? []).map(([href, text]) => {
    const current = location.hash.startsWith(href) ? "page" : null;
    return h("li", {}, h("a", { href, "aria-current": current }, text));
  });
  navigation.replaceChildren(h("ul", {}, links));
}

function showLogin(message = "") {
  pageScope.abort();
  view.replaceChildren();
  account.hidden = true;
  navigation.hidden = true;
  loginView.hidden = false;
  document.title = "Sign in · labelhub";
  if (message) showAlert(message);
  loginForm.elements.username.focus();
}

async function logIn(event) {
  event.preventDefault();
  const fields = loginForm.elements;
  const submit = loginForm.querySelector("button[type=submit]");
  const credentials = { username: fields.username.value, password: fields.password.value };
  submit.disabled = true;
  clearAlert();
  try {
    const answer = await post("/auth/login", credentials);
    saveSession({ token: answer.access_token, role: answer.role, username: credentials.username });
    const me = await get("/me");
    saveSession({ token: answer.access_token, role: me.role, username: me.username });
    loginForm.reset();
    openHome(me.role);
  } catch (error) {
    clearSession();
    showAlert(error.message);
    fields.password.select();
  } finally {
    submit.disabled = false;
  }
}

function openHome(role) {
  const home = HOME[role] ?? "#/";
  if (location.hash === home) showPage();
  else location.hash = home;
}

// Tokens cannot be revoked: signing out forgets this tab's token.
function logOut() {
  clearSession();
  history.replaceState(null, "", location.pathname);
  showLogin();
}

start();
