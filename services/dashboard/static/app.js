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
  // Signed out, only the sign-in form's own errors are worth showing.
  if (!$("login").hidden && message && !message.startsWith("sign in")) return;
  const banner = $("error-banner");
  banner.textContent = message;
  banner.hidden = !message;
}

class SignedOut extends Error {}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (response.status === 401) {
    showLogin();
    throw new SignedOut("signed out");
  }
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
  impossible_travel: "Impossible travel",
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
        body: JSON.stringify({}),  // acknowledged in the signed-in key's name
      });
      for (const card of document.querySelectorAll(`[data-alert-id="${alert.id}"]`)) {
        card.replaceWith(alertCard(body, false));
      }
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
  socket.addEventListener("close", (event) => {
    // A refused handshake reaches the browser as 1006, not the server's 1008, so ask: if the
    // session is gone the sign-in form shows and the page stops reconnecting.
    if (event.code === 1008) { showLogin(); return; }
    status.textContent = "reconnecting";
    status.className = "status reconnecting";
    setTimeout(async () => {
      try {
        await api("/api/v1/session");
      } catch (error) {
        if (error instanceof SignedOut) return;  // showLogin() has run
      }
      connect();
    }, retryMs);
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
    const files = [...$("face-file").files, ...webcamPhotos];
    if (files.length) {
      const form = new FormData();
      for (const file of files) form.append("file", file);
      const { body } = await api(`/api/v1/identities/${person.id}/faces`, { method: "POST", body: form });
      if (body.rejected && body.rejected.length) {
        showError(body.rejected.map((r) => `${r.filename}: ${r.reason}`).join("; "));
      }
    }
    event.target.reset();
    webcamPhotos.length = 0;
    $("webcam-count").textContent = "";
  } catch (error) { showError(error.message); }
  await loadPeople();
}

// -- webcam enrolment ---------------------------------------------------------------------------
const webcamPhotos = [];

async function startWebcam() {
  try {
    const stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 } });
    const video = $("webcam-video");
    video.srcObject = stream;
    video.hidden = false;
    $("webcam-snap").hidden = false;
  } catch (error) { showError(`webcam: ${error.message}`); }
}

function takePhoto() {
  const video = $("webcam-video");
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  canvas.toBlob((blob) => {
    webcamPhotos.push(new File([blob], `webcam-${webcamPhotos.length + 1}.jpg`, { type: "image/jpeg" }));
    $("webcam-count").textContent = `${webcamPhotos.length} webcam photo(s) ready`;
  }, "image/jpeg", 0.92);
}

// -- cameras ----------------------------------------------------------------------------------
function cameraStatus(camera) {
  const fps = camera.fps ? ` · ${camera.fps.toFixed(1)} fps` : "";
  const error = camera.last_error ? ` · ${camera.last_error}` : "";
  return `${camera.enabled ? camera.status : "disabled"}${fps}${error}`;
}

async function loadCameras() {
  try {
    const { body } = await api("/api/v1/cameras");
    $("camera-list").replaceChildren(...body.map((camera) => {
      const toggle = el("button", { type: "button" }, camera.enabled ? "Disable" : "Enable");
      toggle.addEventListener("click", () => changeCamera(camera.id, { method: "PATCH",
        headers: { "content-type": "application/json" }, body: JSON.stringify({ enabled: !camera.enabled }) }));
      const remove = el("button", { type: "button", class: "danger" }, "Remove");
      remove.addEventListener("click", () => confirm(`Remove camera ${camera.name}?`)
        && changeCamera(camera.id, { method: "DELETE" }));
      return el("li", { dataset: { cameraId: camera.id } },
        el("span", {}, el("span", { class: `dot ${camera.status}` }), `${camera.name} `,
          el("span", { class: "meta" }, camera.source)),
        el("span", { class: "meta" }, cameraStatus(camera)), el("span", {}, toggle, " ", remove));
    }));
    renderTiles(body.filter((camera) => camera.enabled));
  } catch (error) { showError(`cameras: ${error.message}`); }
}

function renderTiles(cameras) {
  const tiles = $("camera-tiles");
  const wanted = new Set(cameras.map((camera) => camera.id));
  for (const tile of [...tiles.children]) if (!wanted.has(tile.dataset.cameraId)) tile.remove();
  for (const camera of cameras) {
    let tile = tiles.querySelector(`[data-camera-id="${CSS.escape(camera.id)}"]`);
    if (!tile) {
      tile = el("figure", { class: "tile", dataset: { cameraId: camera.id, testid: "camera-tile" } },
        el("img", { src: `/api/v1/cameras/${encodeURIComponent(camera.id)}/live.mjpg`, alt: `Live view of ${camera.name}` }),
        el("figcaption", { class: "meta" }));
      tiles.append(tile);
    }
    tile.querySelector("figcaption").textContent = `${camera.name} · ${cameraStatus(camera)}`;
  }
}

async function changeCamera(id, options) {
  try {
    await api(`/api/v1/cameras/${encodeURIComponent(id)}`, options);
  } catch (error) { showError(`camera ${id}: ${error.message}`); }
  await loadCameras();
}

async function addCamera(event) {
  event.preventDefault();
  showError("");
  try {
    await api("/api/v1/cameras", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ id: $("camera-id").value.trim(), name: $("camera-name").value.trim(),
        source: $("camera-source").value.trim() }),
    });
    event.target.reset();
  } catch (error) { showError(`camera: ${error.message}`); }
  await loadCameras();
}

// -- history --------------------------------------------------------------------------------
let oldestShown = null;

// "sighting" in the kind filter lists sightings (every identified track) instead of alerts.
const showingSightings = () => $("history-kind").value === "sighting";

function sightingCard(sighting) {
  const image = sighting.snapshot_url
    ? el("img", { src: sighting.snapshot_url, alt: `Snapshot of sighting ${sighting.id}`, loading: "lazy" })
    : el("div");
  if (sighting.snapshot_url) image.addEventListener("click", () => enlarge(sighting.snapshot_url, sighting.id));
  const first = new Date(sighting.first_seen), last = new Date(sighting.last_seen);
  const group = sighting.group_id == null ? "" : ` · unknown group ${sighting.group_id}`;
  return el("li", {
    class: "card",
    dataset: { testid: "sighting-card", sightingId: String(sighting.id), known: String(sighting.identity_id != null) },
  },
    image,
    el("div", {},
      el("span", { class: "badge sighting" }, sighting.identity_id == null ? "Unknown face" : "Sighting"),
      el("div", { class: "who" }, sighting.display_name || "Not enrolled"),
      el("div", { class: "meta" }, `${sighting.camera_id} · ${first.toLocaleString()} – ${last.toLocaleTimeString()}`),
      el("div", { class: "meta" }, `liveness ${sighting.liveness} · ${sighting.votes}/${sighting.checks} checks${group}`),
    ),
  );
}

function historyQuery() {
  const params = new URLSearchParams({ limit: "50" });
  const add = (key, value) => { if (value) params.set(key, value); };
  if (!showingSightings()) add("kind", $("history-kind").value);
  add("camera_id", $("history-camera").value.trim());
  if (!showingSightings()) add("acknowledged", $("history-ack").value);
  if ($("history-since").value) add("since", new Date($("history-since").value).toISOString());
  if ($("history-until").value) add("until", new Date($("history-until").value).toISOString());
  if (oldestShown !== null) params.set("before_id", String(oldestShown));
  return params;
}

async function loadHistory({ more = false } = {}) {
  if (!more) {
    oldestShown = null;
    $("history-list").replaceChildren();
  }
  try {
    if (showingSightings()) {
      const { body } = await api(`/api/v1/sightings?${historyQuery()}`);
      $("history-list").append(...body.map(sightingCard));
      if (body.length) oldestShown = body[body.length - 1].id;
      $("history-more").hidden = body.length < 50;
      return;
    }
    const { body } = await api(`/api/v1/alerts?${historyQuery()}`);
    $("history-list").append(...body.map((alert) => alertCard(alert, false)));
    if (body.length) oldestShown = body[body.length - 1].id;
    $("history-more").hidden = body.length < 50;
  } catch (error) { showError(`history: ${error.message}`); }
}

function showView(name) {
  for (const tab of document.querySelectorAll(".tab")) tab.classList.toggle("active", tab.dataset.view === name);
  for (const view of document.querySelectorAll(".view")) view.hidden = view.id !== `view-${name}`;
  if (name === "history") loadHistory();
}

// -- sign in --------------------------------------------------------------------------------
let started = false;

function showLogin(message = "") {
  $("login").hidden = false;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  $("who").hidden = true;
  $("logout").hidden = true;
  showError(message);
}

async function signIn(event) {
  event.preventDefault();
  const response = await fetch("/api/v1/session", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ key: $("login-key").value }),
  });
  $("login-key").value = "";
  if (!response.ok) {
    let detail = `${response.status}`;
    try { detail = (await response.json()).detail || detail; } catch { /* not JSON */ }
    showError(`sign in: ${detail}`);
    return;
  }
  showError("");
  location.reload();  // start clean, with the session cookie
}

async function signOut() {
  await fetch("/api/v1/session", { method: "DELETE" });
  location.reload();
}

// -- start ----------------------------------------------------------------------------------
$("login-form").addEventListener("submit", signIn);
$("logout").addEventListener("click", signOut);
$("identity-form").addEventListener("submit", enrol);
$("camera-form").addEventListener("submit", addCamera);
$("webcam-start").addEventListener("click", startWebcam);
$("webcam-snap").addEventListener("click", takePhoto);
$("history-filters").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });
$("history-more").addEventListener("click", () => loadHistory({ more: true }));
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
async function start() {
  let me;
  try {
    ({ body: me } = await api("/api/v1/session"));
  } catch (error) {
    if (!(error instanceof SignedOut)) showError(`session: ${error.message}`);
    return;
  }
  started = true;
  $("who").textContent = `${me.name} (${me.role})`;
  $("who").hidden = false;
  $("logout").hidden = false;
  showView("live");
  try {
    await loadAlerts();
  } catch (error) { if (!(error instanceof SignedOut)) showError(`alerts: ${error.message}`); }
  connect();
  loadPeople().catch((error) => { if (!(error instanceof SignedOut)) showError(`people: ${error.message}`); });
  loadCameras();
  setInterval(() => { if (started && $("login").hidden) loadCameras(); }, 5000);
}
await start();
