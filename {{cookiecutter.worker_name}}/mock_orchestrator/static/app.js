// The mock orchestrator's dashboard: follows the control API and patches the page in place.
"use strict";

(() => {
  const TICK_MS = 1000;
  const RETRY_MS = 1000;
  const EVENTS_WAIT_S = 20;
  const REQUEST_TIMEOUT_MS = (EVENTS_WAIT_S + 10) * 1000;
  const TOKEN_KEY = "mock-orchestrator-client-token";
  const ACTIVE = new Set(["queued", "running"]);
  const KNOWN = new Set(["queued", "running", "success", "failure", "cancelled", "quarantined"]);
  const $ = (id) => document.getElementById(id);
  const { duration: formatDuration, ago } = window.MockFormat;
  const ui = {
    connection: $("connection"), tokenSection: $("token-section"), tokenReason: $("token-reason"),
    tokenForm: $("token-form"), tokenInput: $("token-input"),
    workers: $("workers").tBodies[0], workersEmpty: $("workers-empty"), workersLoading: $("workers-loading"),
    tasks: $("tasks").tBodies[0], tasksEmpty: $("tasks-empty"), tasksLoading: $("tasks-loading"),
    taskMessage: $("task-message"),
    form: $("submit-form"), type: $("task-type"), params: $("task-params"), priority: $("task-priority"),
    submitMessage: $("submit-message"),
    fileRow: $("file-row"), file: $("task-file"), fileParam: $("task-file-param"),
  };
  const workerRows = new Map();
  const taskRows = new Map();
  const cancelling = new Set();
  let token = takeToken();
  let follower = null;
  let latest = null;
  let skillsShown = null;

  class AuthError extends Error {}

  function store(value) {
    try { localStorage.setItem(TOKEN_KEY, value); } catch { /* storage disabled: keep it in memory */ }
  }

  function takeToken() {
    const fromUrl = new URLSearchParams(location.hash.slice(1)).get("token");
    if (fromUrl) {
      store(fromUrl);
      // Drop the token from the address bar so it does not end up in bookmarks or screenshots.
      history.replaceState(null, "", location.pathname + location.search);
      return fromUrl;
    }
    try { return localStorage.getItem(TOKEN_KEY) || ""; } catch { return ""; }
  }

  async function api(method, path, { body, signal } = {}) {
    const headers = { "X-Client-Token": token };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    const timeout = AbortSignal.timeout(REQUEST_TIMEOUT_MS);
    const response = await fetch(path, {
      method, headers, cache: "no-store", signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const data = await response.json().catch(() => null);
    const reason = (data && data.error) || `${response.status} ${response.statusText}`;
    if (response.status === 403) throw new AuthError(reason);
    if (!response.ok) throw new Error(reason);
    return data;
  }

  // --- formatting ------------------------------------------------------------------------------

  function clock(epoch) {
    return epoch ? new Date(epoch * 1000).toLocaleString() : "";
  }

  function duration(task) {
    const now = Date.now() / 1000;
    if (task.status === "queued") return `waiting ${formatDuration(now - task.created_at)}`;
    if (!task.started_at) return "—";
    const end = task.finished_at || (task.status === "running" ? now : null);
    return end ? formatDuration(end - task.started_at) : "—";
  }

  function statusText(task) {
    let text = task.status;
    if (task.status === "running" && typeof task.progress === "number") {
      text += ` · ${Math.round(task.progress * 100)}%`;
    }
    if (Array.isArray(task.attempts) && task.attempts.length > 1) text += ` · attempt ${task.attempts.length}`;
    if (cancelling.has(task.task_id) && ACTIVE.has(task.status)) text += " · cancelling";
    return text;
  }

  function shortId(taskId) {
    return taskId.replace(/^task-/, "").slice(0, 8);
  }

  function describe(value) {
    if (Array.isArray(value)) return "an array";
    return value === null ? "null" : `a ${typeof value}`;
  }

  // --- rendering (rows are kept and patched, so nothing flickers or loses focus) ----------------

  function setText(element, text, title) {
    if (element.textContent !== text) element.textContent = text;
    if (title !== undefined && element.title !== title) element.title = title;
  }

  function newRow(cellCount) {
    const row = document.createElement("tr");
    for (let i = 0; i < cellCount; i += 1) row.insertCell();
    return row;
  }

  function placeRows(body, rows, map, ids) {
    let previous = null;
    for (const row of rows) {
      const wanted = previous ? previous.nextSibling : body.firstChild;
      if (wanted !== row) body.insertBefore(row, wanted);
      previous = row;
    }
    for (const [id, row] of map) {
      if (!ids.has(id)) { row.remove(); map.delete(id); }
    }
  }

  function renderWorkers(workers) {
    const rows = workers.map((worker) => {
      let row = workerRows.get(worker.worker_id);
      if (!row) { row = newRow(4); workerRows.set(worker.worker_id, row); }
      const [id, status, skills, seen] = row.cells;
      setText(id, worker.worker_id);
      const channels = `${worker.polling ? " · polling" : ""}${worker.websocket_connected ? " · WebSocket" : ""}`;
      setText(status, `${worker.status}${channels}`);
      const declared = (worker.supported_skills || []).map((skill) =>
        `${skill.name}${skill.version ? ` ${skill.version}` : ""}${(worker.hot_skills || []).includes(skill.name) ? " (hot)" : ""}`);
      const published = {
        supported_skills: worker.supported_skills, hot_skills: worker.hot_skills, resources: worker.resources,
        installed_software: worker.installed_software, installed_artifacts: worker.installed_artifacts,
        capabilities: worker.capabilities,
      };
      setText(skills, declared.join(", ") || worker.skills.join(", ") || "—", JSON.stringify(published, null, 2));
      const beat = worker.last_heartbeat;
      setText(seen, beat ? ago(beat) : "none yet", beat ? clock(beat) : `registered ${clock(worker.registered_at)}`);
      return row;
    });
    placeRows(ui.workers, rows, workerRows, new Set(workers.map((w) => w.worker_id)));
    ui.workersLoading.hidden = true;
    ui.workersEmpty.hidden = workers.length > 0;
    renderSkills([...new Set(workers.flatMap((w) => w.skills))].sort());
  }

  function renderSkills(skills) {
    const key = `${Boolean(latest)}\n${skills.join("\n")}`;
    if (key === skillsShown) return;
    skillsShown = key;
    const chosen = ui.type.value;
    ui.type.replaceChildren(...skills.map((skill) => new Option(skill, skill, false, skill === chosen)));
    if (!skills.length) ui.type.append(new Option(latest ? "no worker yet" : "loading…", "", true, true));
    ui.type.disabled = !skills.length;
  }

  function makeTaskRow(task) {
    const row = newRow(8);
    row.dataset.taskId = task.task_id;
    const code = row.cells[0].appendChild(document.createElement("code"));
    code.textContent = shortId(task.task_id);
    code.title = task.task_id;
    row.cells[2].appendChild(document.createElement("span")).className = "badge";
    const button = row.cells[7].appendChild(document.createElement("button"));
    button.type = "button";
    button.className = "cancel";
    button.textContent = "Cancel";
    button.setAttribute("aria-label", `Cancel ${task.type} task ${task.task_id}`);
    button.addEventListener("click", () => cancelTask(task.task_id, button));
    return row;
  }

  // What the task asked of a worker and what the worker reported beside its data, shown under the result.
  function extras(task) {
    const fields = ["skill_version", "skill_type", "max_cost", "resource_requirements", "waiting_reason",
      "picked_up_at", "costs"];
    const shown = Object.fromEntries(fields.filter((name) => task[name] != null).map((name) => [name, task[name]]));
    if (task.metadata && Object.keys(task.metadata).length) shown.metadata = task.metadata;
    if (task.events && task.events.length) shown.events = task.events;
    return Object.keys(shown).length ? shown : null;
  }

  // Output files (s3_files): links through the mock, which streams them from S3.
  function fileLinks(task) {
    const list = document.createElement("ul");
    list.className = "files";
    for (const file of task.output_files || []) {
      const link = list.appendChild(document.createElement("li")).appendChild(document.createElement("a"));
      link.href = file.download;
      link.download = "";
      link.textContent = `${file.name || file.uri}${file.size != null ? ` (${file.size} bytes)` : ""}`;
      link.title = file.uri;
    }
    return list;
  }

  function renderResult(cell, task) {
    const outcome = task.error || task.data || (task.error_message ? { message: task.error_message } : null);
    const more = extras(task);
    const result = outcome || more;
    const files = task.output_files || [];
    const key = result ? JSON.stringify([outcome, more, files]) : "";
    if (cell.dataset.key === key) return;
    cell.dataset.key = key;
    if (!result) { cell.replaceChildren("—"); return; }
    const details = document.createElement("details");
    const summary = details.appendChild(document.createElement("summary"));
    const brief = !outcome ? (task.waiting_reason || "details")
      : task.data && !task.error ? JSON.stringify(outcome) : [result.code, result.message].filter(Boolean).join(": ");
    summary.textContent = brief.length > 72 ? `${brief.slice(0, 71)}…` : brief;
    details.appendChild(document.createElement("pre")).textContent = JSON.stringify(result, null, 2);
    if (outcome && more) details.appendChild(document.createElement("pre")).textContent = JSON.stringify(more, null, 2);
    cell.replaceChildren(details);
    if (files.length) cell.appendChild(fileLinks(task));
  }

  function renderTasks(tasks) {
    const rows = tasks.map((task) => {
      let row = taskRows.get(task.task_id);
      if (!row) { row = makeTaskRow(task); taskRows.set(task.task_id, row); }
      const [, type, status, worker, submitted, took, result, action] = row.cells;
      setText(type, task.type, `priority ${task.priority}\nparams ${JSON.stringify(task.params)}`);
      const badge = status.firstChild;
      setText(badge, statusText(task), task.progress_message || "");
      badge.dataset.status = KNOWN.has(task.status) ? task.status : "custom";
      setText(worker, task.worker_id || "—");
      setText(submitted, ago(task.created_at), clock(task.created_at));
      setText(took, duration(task));
      renderResult(result, task);
      const active = ACTIVE.has(task.status);
      if (!active) cancelling.delete(task.task_id);
      action.firstChild.hidden = !active;
      action.firstChild.disabled = cancelling.has(task.task_id);
      return row;
    });
    placeRows(ui.tasks, rows, taskRows, new Set(tasks.map((t) => t.task_id)));
    ui.tasksLoading.hidden = true;
    ui.tasksEmpty.hidden = tasks.length > 0;
  }

  // --- connection, token and live updates ------------------------------------------------------

  function setConnection(text, state) {
    setText(ui.connection, text);
    ui.connection.dataset.state = state;
  }

  function refused(error) {
    needToken(`The mock orchestrator refused this token (${error.message}).`);
  }

  function needToken(reason) {
    if (follower) follower.abort();
    setConnection("Not connected", "error");
    setText(ui.tokenReason, reason);
    ui.tokenSection.hidden = false;
    ui.tokenInput.focus();
  }

  function render() {
    if (!latest) return;
    renderWorkers(latest.workers);
    renderTasks(latest.tasks);
  }

  // Fetch everything, then park on /api/v1/events until the mock reports a change: updates arrive at
  // once, and an idle page costs one request per EVENTS_WAIT_S. Only times are re-rendered every second.
  async function follow(signal) {
    let version = 0;
    while (!signal.aborted) {
      try {
        const [workers, tasks] = await Promise.all([
          api("GET", "/api/v1/workers", { signal }), api("GET", "/api/v1/tasks", { signal }),
        ]);
        latest = { workers: workers.workers, tasks: tasks.tasks };
        render();
        ui.tokenSection.hidden = true;
        setConnection("Live", "ok");
        const changed = await api("GET", `/api/v1/events?since=${version}&wait=${EVENTS_WAIT_S}`, { signal });
        version = changed.version;
      } catch (error) {
        if (signal.aborted) return;
        if (error instanceof AuthError) { refused(error); return; }
        setConnection(`Cannot reach the mock orchestrator (${error.message}); retrying…`, "error");
        version = 0; // a restarted mock counts from 0 again
        await new Promise((resolve) => { setTimeout(resolve, RETRY_MS); });
      }
    }
  }

  function connect() {
    if (follower) follower.abort();
    if (!token) { needToken("Enter the client token to connect."); return; }
    follower = new AbortController();
    follow(follower.signal);
    api("GET", "/api/v1/files").then((files) => { ui.fileRow.hidden = !files.enabled; }, () => {});
  }

  // Streams the chosen file to the mock (POST /api/v1/files), which stores it in S3: its FileMetadata.
  async function uploadFile(file) {
    const response = await fetch(`/api/v1/files?name=${encodeURIComponent(file.name)}`, {
      method: "POST", body: file, cache: "no-store",
      headers: { "X-Client-Token": token, "Content-Type": file.type || "application/octet-stream" },
    });
    const data = await response.json().catch(() => null);
    const reason = (data && data.error) || `${response.status} ${response.statusText}`;
    if (response.status === 403) throw new AuthError(reason);
    if (!response.ok) throw new Error(`upload of ${file.name} failed: ${reason}`);
    return data;
  }

  function report(element, text, problem) {
    setText(element, text);
    element.classList.toggle("problem", Boolean(problem));
  }

  function flag(field, text) {
    field.setAttribute("aria-invalid", "true");
    field.focus();
    report(ui.submitMessage, text, true);
  }

  function readParams() {
    const raw = ui.params.value.trim() || "{}";
    let params;
    try {
      params = JSON.parse(raw);
    } catch (error) {
      flag(ui.params, `Params is not valid JSON: ${error.message}. Example: {"items": ["apple"]}`);
      return null;
    }
    if (params === null || typeof params !== "object" || Array.isArray(params)) {
      flag(ui.params, `Params must be a JSON object such as {"items": ["apple"]}, not ${describe(params)}.`);
      return null;
    }
    return params;
  }

  async function submitTask(event) {
    event.preventDefault();
    for (const field of [ui.type, ui.params, ui.priority, ui.fileParam]) field.removeAttribute("aria-invalid");
    const type = ui.type.value;
    if (!type) { flag(ui.type, "Choose a task type: no worker has registered a skill yet."); return; }
    const params = readParams();
    if (params === null) return;
    const priority = ui.priority.value === "" ? 0 : Number(ui.priority.value);
    if (ui.priority.validity.badInput || !Number.isFinite(priority)) {
      flag(ui.priority, "Priority must be a number, e.g. 0 or 5 (higher runs first).");
      return;
    }
    const file = ui.fileRow.hidden ? null : ui.file.files[0];
    const param = ui.fileParam.value.trim();
    if (file && !/^[A-Za-z_][A-Za-z0-9_]*$/.test(param)) {
      flag(ui.fileParam, "Param must be a name such as input_file: the file's s3:// URI goes into params[Param].");
      return;
    }
    try {
      const body = { type, params, priority };
      if (file) {
        report(ui.submitMessage, `Uploading ${file.name}…`, false);
        const meta = await uploadFile(file);
        params[param] = meta.uri;
        body.params_metadata = { [param]: meta };
      }
      const task = await api("POST", "/api/v1/tasks", { body });
      report(ui.submitMessage, `Queued ${type} as task ${shortId(task.task_id)}.`, false);
    } catch (error) {
      if (error instanceof AuthError) refused(error);
      report(ui.submitMessage, `Not submitted: ${error.message}`, true);
    }
  }

  async function cancelTask(taskId, button) {
    cancelling.add(taskId);
    button.disabled = true;
    try {
      await api("POST", `/api/v1/tasks/${encodeURIComponent(taskId)}/cancel`);
      report(ui.taskMessage, `Cancellation of task ${shortId(taskId)} requested.`, false);
    } catch (error) {
      if (error instanceof AuthError) refused(error);
      cancelling.delete(taskId);
      button.disabled = false;
      report(ui.taskMessage, `Could not cancel task ${shortId(taskId)}: ${error.message}`, true);
    }
  }

  ui.tokenForm.addEventListener("submit", (event) => {
    event.preventDefault();
    token = ui.tokenInput.value.trim();
    store(token);
    ui.tokenInput.value = "";
    connect();
  });
  ui.form.addEventListener("submit", submitTask);
  renderSkills([]);
  setInterval(render, TICK_MS);
  connect();
})();
