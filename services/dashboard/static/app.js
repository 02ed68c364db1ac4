// Watchpost dashboard page: live alerts over a websocket (with replay after a reconnect),
// people and cameras through the REST API. No framework, no build step. Server text is only
// ever put into the page with textContent.

const $ = (id) => document.getElementById(id);
const seen = new Set();
const MAX_FEED = 200; // the live feed runs all day; older alerts are in History
const URGENT = new Set(["unknown_person", "spoof_attempt"]);
let highestId = 0;
let retryMs = 1000;
let openedAt = 0;

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
  $("error-text").textContent = message;
  $("error-banner").hidden = !message;
}

// The server's `detail`: a string, or FastAPI's list of validation errors.
function problem(body, fallback) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).slice(1).join(".") || "request"}: ${d.msg}`).join("; ");
  }
  return typeof detail === "string" && detail ? detail : fallback;
}

// Throws Error(detail) unless the answer is 2xx; `partial` also accepts the photo upload's 422
// (some photos stored, the rest rejected with a reason each).
async function api(path, options = {}, { partial = false } = {}) {
  const response = await fetch(path, options);
  if (response.status === 204) return null;
  let body = null;
  try { body = await response.json(); } catch { /* not JSON */ }
  if (response.ok || (partial && response.status === 422 && Array.isArray(body && body.rejected))) {
    return { status: response.status, body };
  }
  throw new Error(problem(body, `${response.status} ${response.statusText}`));
}

const toDate = (value) => new Date(typeof value === "number" ? value * 1000 : value);

// -- alerts ---------------------------------------------------------------------------------
const LABELS = {
  unknown_person: "Unknown person", spoof_attempt: "Spoof attempt",
  identity_mismatch: "Identity mismatch", access_granted: "Access granted",
};

function thumbnail(alert) {
  const none = () => el("div", { class: "thumb none" }, "no snapshot");
  if (!alert.snapshot_url || alert.has_snapshot === false) return none();
  const label = `Snapshot: ${LABELS[alert.kind] || alert.kind} on camera ${alert.camera_id}`;
  const image = el("img", { src: alert.snapshot_url, alt: label, loading: "lazy" });
  const button = el("button", { type: "button", class: "thumb", title: "Enlarge" }, image);
  image.addEventListener("error", () => button.replaceWith(none()));
  button.addEventListener("click", () => enlarge(alert.snapshot_url, label));
  return button;
}

function alertCard(alert, fresh) {
  const urgent = !alert.acknowledged_at && URGENT.has(alert.kind);
  const when = toDate(alert.captured_at ?? alert.created_at);
  const facts = [
    `camera ${alert.camera_id}`,
    `liveness ${alert.liveness}`,
    alert.distance == null ? null : `distance ${Number(alert.distance).toFixed(2)}`,
  ].filter(Boolean).join(" · ");
  return el("li", {
    class: `card${urgent ? " urgent" : ""}${fresh && urgent ? " fresh" : ""}`,
    dataset: { testid: "alert-card", alertId: String(alert.id), kind: alert.kind },
  },
    thumbnail(alert),
    el("div", {},
      el("div", { class: "card-head" },
        el("span", { class: `badge ${alert.kind}` }, LABELS[alert.kind] || alert.kind),
        el("time", { dateTime: isNaN(when) ? "" : when.toISOString(), class: "when" },
          isNaN(when) ? "" : when.toLocaleString())),
      el("div", { class: "who" }, alert.display_name || (alert.kind === "access_granted" ? "" : "Not enrolled")),
      el("div", { class: "meta" }, facts),
      alert.reason ? el("div", { class: "reason" }, alert.reason) : null,
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
  while (feed.children.length > MAX_FEED) feed.lastElementChild.remove();
  $("feed-empty").hidden = true;
}

function enlarge(url, label) {
  $("viewer-image").src = url;
  $("viewer-image").alt = label;
  $("viewer").showModal();
}

async function loadAlerts() {
  const { body } = await api("/api/v1/alerts?limit=50");
  for (const alert of body) addAlert(alert, { append: true });
}

function setConnection(state) {
  const status = $("connection");
  status.textContent = state;
  status.className = `status ${state}`;
}

// `after=` the highest id seen, so what was decided while cut off is replayed (and de-duplicated).
function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  let socket;
  try {
    socket = new WebSocket(`${scheme}://${location.host}/api/v1/alerts/ws?after=${highestId}`);
  } catch {
    reconnect();
    return;
  }
  socket.addEventListener("open", () => {
    openedAt = Date.now();
    setConnection("live");
  });
  socket.addEventListener("message", (event) => {
    let message;
    try { message = JSON.parse(event.data); } catch { return; }
    if (message.type === "alert" && message.alert) addAlert(message.alert, { fresh: !message.replay });
  });
  socket.addEventListener("close", reconnect); // also follows an "error"
}

function reconnect() {
  setConnection("reconnecting");
  // Back-off 1 s doubling to 15 s; it starts over only after a connection that held for a while,
  // so a server that accepts and drops at once is not hammered.
  if (openedAt && Date.now() - openedAt > 10000) retryMs = 1000;
  openedAt = 0;
  setTimeout(connect, retryMs);
  retryMs = Math.min(retryMs * 2, 15000);
}

// -- people ---------------------------------------------------------------------------------
async function loadPeople() {
  const { body } = await api("/api/v1/identities?limit=500");
  const people = Array.isArray(body) ? body : body.items;
  $("identity-list").replaceChildren(...people.map((person) => {
    const remove = el("button", { class: "danger", type: "button" }, "Delete");
    remove.setAttribute("aria-label", `Delete ${person.display_name}`);
    remove.addEventListener("click", () => deletePerson(person));
    const login = person.login_name ? ` · login ${person.login_name}` : "";
    return el("li", { dataset: { identityId: String(person.id) } },
      el("span", {}, person.display_name,
        el("span", { class: "meta" }, `${login} · ${person.face_count} photo${person.face_count === 1 ? "" : "s"}`)),
      el("span", { class: "actions" }, ...addPhotos(person), remove));
  }));
}

// "Add photos" for someone already enrolled: a button opening a hidden file input.
function addPhotos(person) {
  const input = el("input", {
    type: "file", accept: "image/jpeg,image/png,image/webp", multiple: true, hidden: true,
    dataset: { testid: "face-upload-file" },
  });
  input.setAttribute("aria-label", `Photos of ${person.display_name}`);
  const button = el("button", { type: "button", dataset: { testid: "face-upload", identityId: String(person.id) } },
    "Add photos");
  button.setAttribute("aria-label", `Add photos of ${person.display_name}`);
  button.addEventListener("click", () => input.click());
  input.addEventListener("change", async () => {
    if (!input.files.length) return;
    showError("");
    button.disabled = true;
    button.textContent = "Uploading…";
    try {
      await uploadFaces(person, [...input.files]);
    } catch (error) { showError(`photos of ${person.display_name}: ${error.message}`); }
    await loadPeople().catch((error) => showError(`people: ${error.message}`));
  });
  return [input, button];
}

// Accepted photos are stored even when others are rejected; the rejected ones are shown.
async function uploadFaces(person, files) {
  const form = new FormData();
  for (const file of files) form.append("file", file);
  const { body } = await api(`/api/v1/identities/${person.id}/faces`, { method: "POST", body: form },
    { partial: true });
  if (body && body.rejected && body.rejected.length) {
    showError(`photos of ${person.display_name} not enrolled: ${problem(body,
      body.rejected.map((r) => `${r.filename}: ${r.reason}`).join("; "))}`);
  }
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
  const form = event.target;
  const submit = $("identity-submit");
  const login = $("identity-login").value.trim();
  submit.disabled = true;
  try {
    let person;
    try {
      ({ body: person } = await api("/api/v1/identities", {
        method: "POST", headers: { "content-type": "application/json" },
        body: JSON.stringify({ display_name: $("identity-name").value.trim(), login_name: login || null }),
      }));
    } catch (error) {
      showError(`enrol: ${error.message}`);
      return;
    }
    // The person exists now: clear the form whatever happens to the photos (they can be added
    // again from the list), so a second click does not create a duplicate.
    const files = [...$("face-file").files, ...webcamPhotos];
    form.reset();
    webcamPhotos.length = 0;
    $("webcam-count").textContent = "";
    if (files.length) {
      try {
        await uploadFaces(person, files);
      } catch (error) {
        showError(`${person.display_name} was added, but not the photos: ${error.message}`);
      }
    }
  } finally {
    submit.disabled = false;
    await loadPeople().catch((error) => showError(`people: ${error.message}`));
  }
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

function historyQuery() {
  const params = new URLSearchParams({ limit: "50" });
  const add = (key, value) => { if (value) params.set(key, value); };
  add("kind", $("history-kind").value);
  add("camera_id", $("history-camera").value.trim());
  add("acknowledged", $("history-ack").value);
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

// -- start ----------------------------------------------------------------------------------
$("identity-form").addEventListener("submit", enrol);
$("error-close").addEventListener("click", () => showError(""));
$("viewer").addEventListener("click", (event) => { if (event.target === $("viewer")) $("viewer").close(); });
$("camera-form").addEventListener("submit", addCamera);
$("webcam-start").addEventListener("click", startWebcam);
$("webcam-snap").addEventListener("click", takePhoto);
$("history-filters").addEventListener("submit", (event) => { event.preventDefault(); loadHistory(); });
$("history-more").addEventListener("click", () => loadHistory({ more: true }));
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
try {
  await loadAlerts();
} catch (error) { showError(`alerts: ${error.message}`); }
connect();
loadPeople().catch((error) => showError(`people: ${error.message}`));
loadCameras();
setInterval(loadCameras, 5000);
