// The Kubernel web console: plain ES module, no build step, nothing from a CDN.
// Logs in with a cookie session (POST /server/login), lists sessions (the admin GraphQL
// the Backend.AI client uses), follows them live on the event stream (EventSource with
// the cookie), creates, restarts and destroys them. docs/console.md.

const EVENTS = [
  "kernel_enqueued", "kernel_pending", "kernel_preparing", "kernel_pulling", "kernel_creating", "kernel_started",
  "kernel_terminating", "kernel_cancelled", "kernel_success", "kernel_failure", "kernel_terminated",
];
const STATUS_AFTER = {
  kernel_enqueued: "PENDING", kernel_pending: "PENDING", kernel_preparing: "PREPARING", kernel_pulling: "PULLING",
  kernel_creating: "BUILDING", kernel_started: "RUNNING", kernel_terminating: "TERMINATING",
  kernel_terminated: "TERMINATED",
};
const LIST_QUERY = `query($limit: Int!, $offset: Int!) {
  compute_session_list(limit: $limit, offset: $offset) {
    items { sess_id access_key image status created_at terminated_at }
  }
}`;

const $ = (id) => document.getElementById(id);
const state = { csrf: "", role: "", sessions: new Map(), timelines: new Map(), source: null, shown: null };

// -- HTTP ---------------------------------------------------------------------------
class ApiError extends Error {
  constructor(problem, status) {
    super(problem.title || `HTTP ${status}`);
    this.problem = problem;
    this.status = status;
  }
}

async function call(method, path, body) {
  const headers = { "Content-Type": "application/json" };
  if (method !== "GET") headers["X-Kubernel-CSRF"] = state.csrf;
  const response = await fetch(path, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  const data = text ? JSON.parse(text) : {};
  if (!response.ok) throw new ApiError(data, response.status);
  return data;
}

function showError(error) {
  const box = $("error");
  if (!error) { box.hidden = true; box.textContent = ""; return; }
  const problem = error.problem || {};
  box.textContent = problem.title ? `${problem.title}${problem.detail ? ` ${problem.detail}` : ""}` : String(error);
  box.hidden = false;
}

async function guarded(action) {
  try { showError(null); await action(); } catch (error) { showError(error); }
}

// -- sessions -------------------------------------------------------------------------
const keyOf = (owner, id) => `${owner}/${id}`;

function age(since) {
  if (!since) return "";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(since)) / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  return `${Math.round(seconds / 3600)} h`;
}

function button(label, title, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = "secondary";
  b.textContent = label;
  b.setAttribute("aria-label", title);
  b.addEventListener("click", () => guarded(onClick));
  return b;
}

function render() {
  const body = $("sessions").tBodies[0];
  body.replaceChildren();
  const rows = [...state.sessions.values()].sort((a, b) => (b.createdAt || "").localeCompare(a.createdAt || ""));
  for (const s of rows) {
    const tr = document.createElement("tr");
    tr.dataset.session = s.id;
    const cells = [s.id, s.status, s.image || "", age(s.createdAt), s.owner];
    cells.forEach((text, i) => {
      const td = document.createElement(i === 0 ? "th" : "td");
      if (i === 0) td.scope = "row";
      td.textContent = text;
      if (i === 1) td.className = `status status-${s.status}`;
      if (i === 4) td.classList.add("owner");
      tr.append(td);
    });
    const actions = document.createElement("td");
    actions.className = "actions";
    actions.append(button("Timeline", `Timeline of ${s.id}`, () => showTimeline(s)));
    if (s.status !== "TERMINATED") {
      actions.append(button("Restart", `Restart ${s.id}`, () => restart(s)));
      actions.append(button("Destroy", `Destroy ${s.id}`, () => destroy(s)));
    }
    tr.append(actions);
    body.append(tr);
  }
  $("no-sessions").hidden = rows.length > 0;
  if (state.shown) renderTimeline(state.shown);
}

function remember(item) {
  const key = keyOf(item.owner, item.id);
  state.sessions.set(key, { ...(state.sessions.get(key) || {}), ...item });
  return state.sessions.get(key);
}

async function loadSessions() {
  const data = await call("POST", "/admin/graphql", { query: LIST_QUERY, variables: { limit: 100, offset: 0 } });
  for (const s of data.compute_session_list.items) {
    remember({ id: s.sess_id, owner: s.access_key, image: s.image, status: s.status, createdAt: s.created_at });
  }
  render();
}

async function create(form) {
  const fields = new FormData(form);
  const resources = {};
  if (fields.get("cpu")) resources.cpu = fields.get("cpu");
  if (fields.get("mem")) resources.mem = fields.get("mem");
  const token = fields.get("token");
  const answer = await call("POST", "/kernel", {
    clientSessionToken: token, image: fields.get("image"), enqueueOnly: true, config: { resources },
  });
  remember({ id: token, owner: state.accessKey, image: fields.get("image"), status: answer.status || "PENDING",
    createdAt: new Date().toISOString() });
  render();
}

async function restart(s) {
  await call("PATCH", `/kernel/${encodeURIComponent(s.id)}?owner_access_key=${encodeURIComponent(s.owner)}`);
}

async function destroy(s) {
  await call("DELETE", `/kernel/${encodeURIComponent(s.id)}?owner_access_key=${encodeURIComponent(s.owner)}`);
}

// -- the timeline ---------------------------------------------------------------------
function showTimeline(s) {
  state.shown = keyOf(s.owner, s.id);
  renderTimeline(state.shown);
  $("timeline-view").hidden = false;
  $("timeline-title").focus?.();
}

function renderTimeline(key) {
  const s = state.sessions.get(key);
  $("timeline-title").textContent = s ? `Timeline of ${s.id}` : "Timeline";
  const list = $("timeline");
  list.replaceChildren();
  for (const entry of state.timelines.get(key) || []) {
    const li = document.createElement("li");
    li.dataset.id = entry.id;
    const time = document.createElement("time");
    time.dateTime = entry.at;
    time.textContent = new Date(entry.at).toLocaleTimeString();
    li.append(time, ` ${entry.event}`);
    if (entry.reason) li.append(` (${entry.reason})`);
    if (entry.result) li.append(`, result ${entry.result}`);
    list.append(li);
  }
}

// -- the event stream -----------------------------------------------------------------
function follow() {
  const source = new EventSource("/stream/kernel/_/events?sessionId=*", { withCredentials: true });
  state.source = source;
  source.onopen = () => { $("stream-state").textContent = "live"; };
  source.onerror = () => { $("stream-state").textContent = "reconnecting"; };
  for (const name of EVENTS) {
    source.addEventListener(name, (message) => onEvent(name, message));
  }
}

function onEvent(name, message) {
  const data = JSON.parse(message.data);
  const key = keyOf(data.ownerAccessKey, data.sessionId);
  const entries = state.timelines.get(key) || [];
  entries.push({ event: name, reason: data.reason, result: data.result, at: new Date().toISOString(), id: message.lastEventId });
  state.timelines.set(key, entries);
  const known = state.sessions.get(key);
  let status = STATUS_AFTER[name] || known?.status;
  if (data.reason === "restarting" && name !== "kernel_started") status = "RESTARTING";
  remember({ id: data.sessionId, owner: data.ownerAccessKey, status, createdAt: known?.createdAt || new Date().toISOString() });
  document.body.dataset.lastEvent = `${data.sessionId} ${name}`;
  render();
}

// -- login ------------------------------------------------------------------------------
function enter(who) {
  state.csrf = who.csrfToken;
  state.role = who.role;
  state.accessKey = who.accessKey;
  document.body.classList.toggle("admin", who.role !== "user");
  $("who").textContent = `${who.accessKey} (${who.role})`;
  $("login-view").hidden = true;
  $("app-view").hidden = false;
  $("logout").hidden = false;
  follow();
  return guarded(loadSessions);
}

function leave() {
  state.source?.close();
  state.sessions.clear();
  state.timelines.clear();
  $("who").textContent = "";
  $("app-view").hidden = true;
  $("logout").hidden = true;
  $("login-view").hidden = false;
  $("access-key").focus();
}

async function start() {
  $("login-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const fields = new FormData(event.target);
    guarded(async () => {
      const who = await call("POST", "/server/login", {
        accessKey: fields.get("accessKey"), secretKey: fields.get("secretKey"),
      });
      event.target.reset();
      await enter(who);
    });
  });
  $("create-form").addEventListener("submit", (event) => {
    event.preventDefault();
    guarded(() => create(event.target));
  });
  $("logout").addEventListener("click", () => guarded(async () => {
    await call("POST", "/server/logout");
    leave();
  }));
  setInterval(render, 30000); // ages
  try {
    await enter(await call("GET", "/server/login"));
  } catch {
    leave();
  }
}

start();
