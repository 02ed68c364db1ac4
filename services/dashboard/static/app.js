// Watchpost dashboard page: live alerts over a websocket (with replay after a reconnect),
// people and cameras through the REST API. No framework, no build step. Server text is only
// ever put into the page with textContent.

const $ = (id) => document.getElementById(id);
const seen = new Set();
let highestId = 0;
let retryMs = 1000;

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key === "class") node.className = value;
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function showError(message) {
  const banner = $("error-banner");
  banner.textContent = message;
  banner.hidden = !message;
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (!response.ok && response.status !== 422) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    throw new Error(detail);
  }
  return response.status === 204 ? null : { status: response.status, body: await response.json() };
}

// -- alerts ---------------------------------------------------------------------------------
const LABELS = {
  unknown_person: "Unknown person", spoof_attempt: "Spoof attempt",
  identity_mismatch: "Identity mismatch", access_granted: "Access granted",
};

function alertCard(alert, fresh) {
  const urgent = !alert.acknowledged_at && (alert.kind === "unknown_person" || alert.kind === "spoof_attempt");
  const image = alert.snapshot_url
    ? el("img", { src: alert.snapshot_url, alt: `Snapshot of alert ${alert.id}`, loading: "lazy" })
    : el("div");
  if (alert.snapshot_url) image.addEventListener("click", () => enlarge(alert.snapshot_url, alert.id));
  const when = new Date((typeof alert.created_at === "number" ? alert.created_at * 1000 : alert.created_at));
  const distance = alert.distance == null ? "" : ` · distance ${Number(alert.distance).toFixed(2)}`;
  return el("li", {
    class: `card${urgent ? " urgent" : ""}${fresh && urgent ? " fresh" : ""}`,
    dataset: { testid: "alert-card", alertId: String(alert.id), kind: alert.kind },
  },
    image,
    el("div", {},
      el("span", { class: `badge ${alert.kind}` }, LABELS[alert.kind] || alert.kind),
      el("div", { class: "who" }, alert.display_name || (alert.kind === "access_granted" ? "" : "Not enrolled")),
      el("div", { class: "meta" }, `${alert.camera_id} · ${when.toLocaleString()} · liveness ${alert.liveness}${distance}`),
      alert.reason ? el("div", { class: "meta" }, alert.reason) : null,
      alert.acknowledged_at
        ? el("div", { class: "meta", dataset: { testid: "alert-acknowledged" } }, `acknowledged by ${alert.acknowledged_by}`)
        : ackButton(alert),
    ),
  );
}

function ackButton(alert) {
  const button = el("button", { type: "button", dataset: { testid: "alert-ack" } }, "Acknowledge");
  button.addEventListener("click", async () => {
    try {
      const { body } = await api(`/api/v1/alerts/${alert.id}/ack`, {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ by: "dashboard operator" }),
      });
      const card = document.querySelector(`[data-alert-id="${alert.id}"]`);
      if (card) card.replaceWith(alertCard(body, false));
    } catch (error) { showError(`acknowledge: ${error.message}`); }
  });
  return button;
}

function addAlert(alert, { fresh = false, append = false } = {}) {
  if (seen.has(alert.id)) return;
  seen.add(alert.id);
  highestId = Math.max(highestId, alert.id);
  const feed = $("alert-feed");
  const card = alertCard(alert, fresh);
  if (append) feed.append(card);
  else feed.prepend(card);
  $("feed-empty").hidden = true;
}

function enlarge(url, id) {
  $("viewer-image").src = url;
  $("viewer-image").alt = `Snapshot of alert ${id}`;
  $("viewer").showModal();
}

async function loadAlerts() {
  const { body } = await api("/api/v1/alerts?limit=50");
  for (const alert of body) addAlert(alert, { append: true });
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const socket = new WebSocket(`${scheme}://${location.host}/api/v1/alerts/ws?after=${highestId}`);
  const status = $("connection");
  socket.addEventListener("open", () => {
    status.textContent = "live";
    status.className = "status live";
    retryMs = 1000;
  });
  socket.addEventListener("message", (event) => {
    const message = JSON.parse(event.data);
    if (message.type === "alert") addAlert(message.alert, { fresh: !message.replay });
  });
  socket.addEventListener("close", () => {
    status.textContent = "reconnecting";
    status.className = "status reconnecting";
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 15000);
  });
}

// -- people ---------------------------------------------------------------------------------
async function loadPeople() {
  const { body } = await api("/api/v1/identities?limit=500");
  const list = $("identity-list");
  list.replaceChildren(...body.items.map((person) => {
    const remove = el("button", { class: "danger", type: "button" }, "Delete");
    remove.setAttribute("aria-label", `Delete ${person.display_name}`);
    remove.addEventListener("click", () => deletePerson(person));
    return el("li", { dataset: { identityId: String(person.id) } },
      el("span", {}, person.display_name,
        el("span", { class: "meta" }, ` · ${person.face_count} photo${person.face_count === 1 ? "" : "s"}`)),
      remove);
  }));
}

async function deletePerson(person) {
  if (!confirm(`Delete ${person.display_name} and all their photos?`)) return;
  try {
    await api(`/api/v1/identities/${person.id}`, { method: "DELETE" });
    await loadPeople();
  } catch (error) { showError(error.message); }
}

async function enrol(event) {
  event.preventDefault();
  showError("");
  const login = $("identity-login").value.trim();
  try {
    const { body: person } = await api("/api/v1/identities", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ display_name: $("identity-name").value.trim(), login_name: login || null }),
    });
    const files = $("face-file").files;
    if (files.length) {
      const form = new FormData();
      for (const file of files) form.append("file", file);
      const { body } = await api(`/api/v1/identities/${person.id}/faces`, { method: "POST", body: form });
      if (body.rejected && body.rejected.length) {
        showError(body.rejected.map((r) => `${r.filename}: ${r.reason}`).join("; "));
      }
    }
    event.target.reset();
  } catch (error) { showError(error.message); }
  await loadPeople();
}

// -- cameras --------------------------------------------------------------------------------
async function loadCameras() {
  try {
    const { body } = await api("/api/v1/cameras");
    $("camera-list").replaceChildren(...body.map((camera) => el("li", { dataset: { cameraId: camera.id } },
      el("span", {}, el("span", { class: `dot ${camera.status}` }), camera.name),
      el("span", { class: "meta" },
        `${camera.status}${camera.fps ? ` · ${camera.fps.toFixed(1)} fps` : ""}${camera.last_error ? ` · ${camera.last_error}` : ""}`),
    )));
  } catch (error) { showError(`cameras: ${error.message}`); }
}

// -- start ----------------------------------------------------------------------------------
$("identity-form").addEventListener("submit", enrol);
try {
  await loadAlerts();
} catch (error) { showError(`alerts: ${error.message}`); }
connect();
loadPeople().catch((error) => showError(`people: ${error.message}`));
loadCameras();
setInterval(loadCameras, 5000);
