// Watchpost dashboard page: live alerts over a websocket (with replay after a reconnect),
// people, strangers, cameras and administration through the REST API. No framework, no build
// step. Server text is only ever put into the page with textContent. Where the page is (view,
// person, history filters) lives in the URL's hash, so reload and back keep it.

const $ = (id) => document.getElementById(id);
const SVG_NS = "http://www.w3.org/2000/svg";
const seen = new Set();
let highestId = 0;
let retryMs = 1000;
let me = null;  // who is signed in: {name, role, key_id}

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

function svg(tag, attributes = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, String(value));
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

// FastAPI's detail: a sentence, or a list of what failed validation.
function detailText(detail) {
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("; ");
  }
  return String(detail ?? "");
}

async function api(path, options = {}) {
  const response = await fetch(path, options);
  if (response.status === 401) {
    showLogin();
    throw new SignedOut("signed out");
  }
  if (!response.ok && response.status !== 422) {
    let detail = `${response.status} ${response.statusText}`;
    try { detail = detailText((await response.json()).detail) || detail; } catch { /* not JSON */ }
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return response.status === 204 ? null : { status: response.status, body: await response.json() };
}

const postJson = (path, body, method = "POST") => api(path, {
  method, headers: { "content-type": "application/json" }, body: JSON.stringify(body),
});

const isAdmin = () => me !== null && me.role === "admin";
const when = (value) => new Date(typeof value === "number" ? value * 1000 : value);
const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;

function reportError(prefix) {
  return (error) => { if (!(error instanceof SignedOut)) showError(`${prefix}: ${error.message}`); };
}

// An image that opens large in the viewer: a real button, so the keyboard reaches it too.
function zoomable(url, label) {
  const button = el("button", { type: "button", class: "thumb", "aria-label": `Enlarge: ${label}` },
    el("img", { src: url, alt: label }));
  button.addEventListener("click", () => enlarge(url, label));
  return button;
}

function enlarge(url, label) {
  $("viewer-image").src = url;
  $("viewer-image").alt = label;
  $("viewer").showModal();
}

// -- alerts ---------------------------------------------------------------------------------
const LABELS = {
  unknown_person: "Unknown person", spoof_attempt: "Spoof attempt",
  identity_mismatch: "Identity mismatch", access_granted: "Access granted",
  impossible_travel: "Impossible travel",
};

// Replayed alerts come as the API shapes them; a live one may carry only has_face.
const faceUrl = (alert) => alert.face_url || (alert.has_face ? `/api/v1/alerts/${alert.id}/face` : null);

function alertCard(alert, fresh) {
  const urgent = !alert.acknowledged_at && (alert.kind === "unknown_person" || alert.kind === "spoof_attempt");
  const image = alert.snapshot_url ? zoomable(alert.snapshot_url, `Snapshot of alert ${alert.id}`) : el("div");
  const distance = alert.distance == null ? "" : ` · distance ${Number(alert.distance).toFixed(2)}`;
  const name = alert.display_name && alert.identity_id != null
    ? el("a", { href: `#/person/${alert.identity_id}` }, alert.display_name)
    : alert.display_name || (alert.kind === "access_granted" ? "" : "Not enrolled");
  const actions = el("div", { class: "actions" },
    alert.acknowledged_at
      ? el("span", { class: "meta", dataset: { testid: "alert-acknowledged" } }, `acknowledged by ${alert.acknowledged_by}`)
      : ackButton(alert),
    alert.kind === "unknown_person" && isAdmin() && faceUrl(alert) ? thisIsButton(alert) : null);
  return el("li", {
    class: `card${urgent ? " urgent" : ""}${fresh && urgent ? " fresh" : ""}`,
    dataset: { testid: "alert-card", alertId: String(alert.id), kind: alert.kind },
  },
    image,
    el("div", {},
      el("span", { class: `badge ${alert.kind}` }, LABELS[alert.kind] || alert.kind),
      el("div", { class: "who" }, name),
      el("div", { class: "meta" }, `${alert.camera_id} · ${when(alert.created_at).toLocaleString()} · liveness ${alert.liveness}${distance}`),
      alert.reason ? el("div", { class: "meta" }, alert.reason) : null,
      actions,
    ),
  );
}

function ackButton(alert) {
  const button = el("button", { type: "button", dataset: { testid: "alert-ack" } }, "Acknowledge");
  button.addEventListener("click", async () => {
    try {
      const { body } = await postJson(`/api/v1/alerts/${alert.id}/ack`, {});  // in the signed-in key's name
      for (const card of document.querySelectorAll(`[data-alert-id="${alert.id}"]`)) {
        card.replaceWith(alertCard(body, false));
      }
    } catch (error) { showError(`acknowledge: ${error.message}`); }
  });
  return button;
}

function thisIsButton(alert) {
  const button = el("button", { type: "button", class: "secondary", dataset: { testid: "alert-this-is" } }, "This is…");
  button.addEventListener("click", () => openEnrol({
    path: `/api/v1/alerts/${alert.id}/enrol`, face: faceUrl(alert),
    label: `the unknown person of alert ${alert.id}`,
    done: async (body) => {
      showNotice(`Enrolled as ${body.identity.display_name}.`);
      const { body: fresh } = await api(`/api/v1/alerts/${alert.id}`);
      for (const card of document.querySelectorAll(`[data-alert-id="${alert.id}"]`)) card.replaceWith(alertCard(fresh, false));
    },
  }));
  return button;
}

async function refreshAlert(id) {
  try {
    const { body } = await api(`/api/v1/alerts/${id}`);
    for (const card of document.querySelectorAll(`[data-alert-id="${id}"]`)) {
      card.replaceWith(alertCard(body, card.classList.contains("fresh")));
    }
  } catch (error) { reportError(`alert ${id}`)(error); }
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
    if (message.type !== "alert") return;
    addAlert(message.alert, { fresh: !message.replay });
    // A live event may not say whether the alert has a face crop ("this is..." needs it):
    // the stored alert does.
    if (!("has_face" in message.alert) && !message.alert.face_url) refreshAlert(message.alert.id);
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

function showNotice(message) {
  const notice = $("notice");
  notice.textContent = message;
  notice.hidden = !message;
}

// -- "this is...": enrol an alert's face or a stranger group ----------------------------------
let enrolTarget = null;

async function openEnrol(target) {
  enrolTarget = target;
  $("enrol-form").reset();
  $("enrol-error").hidden = true;
  $("enrol-force-label").hidden = true;
  $("enrol-face").src = target.face || "";
  $("enrol-face").alt = target.face ? `Face of ${target.label}` : "";
  $("enrol-face").hidden = !target.face;
  $("enrol-title-dialog").textContent = `This is… (${target.label})`;
  try {
    const { body } = await api("/api/v1/identities?limit=500");
    $("enrol-person").replaceChildren(...body.items.map((person) =>
      el("option", { value: String(person.id) }, person.display_name)));
    $("enrol-existing").disabled = body.items.length === 0;
  } catch (error) { reportError("people")(error); }
  $("enrol-dialog").showModal();
  $("enrol-name").focus();
}

function enrolRefused(message) {
  $("enrol-error").textContent = message;
  $("enrol-error").hidden = false;
  // The gallery checks (outlier, possible duplicate) may be overridden by someone who knows.
  if (/force=true/.test(message)) $("enrol-force-label").hidden = false;
}

async function submitEnrol(event) {
  event.preventDefault();
  const existing = $("enrol-existing").checked;
  const name = $("enrol-name").value.trim();
  if (!existing && !name) { enrolRefused("Give the new person's name."); return; }
  const body = existing ? { identity_id: Number($("enrol-person").value) } : { display_name: name };
  const force = $("enrol-force").checked ? "?force=true" : "";
  try {
    const answer = await postJson(`${enrolTarget.path}${force}`, body);
    if (answer.status === 422) { enrolRefused(detailText(answer.body.detail)); return; }
    $("enrol-dialog").close();
    await enrolTarget.done(answer.body);
  } catch (error) {
    if (!(error instanceof SignedOut)) enrolRefused(error.message);
  }
}

// -- stranger groups ------------------------------------------------------------------------
async function loadGroups(all = false) {
  $("group-all").checked = all;
  try {
    const { body: open } = await api("/api/v1/unknown-groups?limit=100");
    const body = all ? [...open, ...(await api("/api/v1/unknown-groups?named=true&limit=100")).body] : open;
    $("group-list").replaceChildren(...body.map(groupCard));
    $("group-empty").hidden = body.length > 0;
  } catch (error) { reportError("strangers")(error); }
}

function groupCard(group) {
  const seenAt = group.last_seen ? when(group.last_seen).toLocaleString() : "never";
  if (group.named_identity_id != null) {
    return el("li", { class: "card", dataset: { testid: "group-card", groupId: String(group.id), named: "true" } },
      group.face_url ? zoomable(group.face_url, `Face of stranger group ${group.id}`) : el("div"),
      el("div", {},
        el("div", { class: "who" }, `Stranger ${group.id}`),
        el("div", { class: "meta" }, `${plural(group.sightings, "sighting")} · ${group.cameras.join(", ")}`),
        el("div", { class: "meta" }, `named ${when(group.named_at).toLocaleString()} as `,
          el("a", { href: `#/person/${group.named_identity_id}`, dataset: { testid: "group-person" } }, "this person"))));
  }
  const name = el("button", { type: "button", dataset: { testid: "group-name" } }, "Name this person…");
  name.disabled = !isAdmin();
  name.title = isAdmin() ? "" : "naming needs the admin role";
  name.addEventListener("click", () => openEnrol({
    path: `/api/v1/unknown-groups/${group.id}/name`, face: group.face_url,
    label: `stranger group ${group.id}`,
    done: async (answer) => {
      const left = answer.rejected.length ? `; left out: ${answer.rejected.map((r) => `${r.filename}: ${r.reason}`).join("; ")}` : "";
      showNotice(`Named ${answer.identity.display_name}: ${plural(answer.accepted.length, "face")} enrolled, ${plural(answer.sightings, "sighting")} now on record as them${left}.`);
      await loadGroups($("group-all").checked);
    },
  }));
  return el("li", { class: "card", dataset: { testid: "group-card", groupId: String(group.id) } },
    group.face_url ? zoomable(group.face_url, `Face of stranger group ${group.id}`) : el("div"),
    el("div", {},
      el("div", { class: "who" }, `Stranger ${group.id}`),
      el("div", { class: "meta" }, `${plural(group.sightings, "sighting")} · ${plural(group.faces, "face")} · ${group.cameras.join(", ")}`),
      el("div", { class: "meta" }, `last seen ${seenAt}`),
      el("div", { class: "actions" }, name)));
}

// -- people ---------------------------------------------------------------------------------
async function loadPeople() {
  const q = $("people-search").value.trim();
  const params = new URLSearchParams({ limit: "500" });
  if (q) params.set("q", q);
  const { body } = await api(`/api/v1/identities?${params}`);
  $("people-count").textContent = q ? `${plural(body.total, "person", "people")} matching “${q}”` : plural(body.total, "person", "people") + " enrolled";
  $("identity-list").replaceChildren(...body.items.map((person) => {
    const thumb = person.face_count
      ? el("img", { src: `/api/v1/identities/${person.id}/thumbnail`, alt: "", loading: "lazy", class: "avatar" })
      : el("span", { class: "avatar none", "aria-hidden": "true" }, "?");
    return el("li", { dataset: { identityId: String(person.id), testid: "person-row" } },
      el("a", { href: `#/person/${person.id}`, class: "person-link" }, thumb,
        el("span", {}, person.display_name,
          el("span", { class: "meta" }, ` · ${plural(person.face_count, "photo")}${person.login_name ? ` · login ${person.login_name}` : ""}`))));
  }));
}

async function enrol(event) {
  event.preventDefault();
  showError("");
  const login = $("identity-login").value.trim();
  try {
    const { body: person } = await postJson("/api/v1/identities", {
      display_name: $("identity-name").value.trim(), login_name: login || null,
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

// -- a person's page ----------------------------------------------------------------------------
let person = null;

async function loadPerson(id) {
  $("person-confirm").hidden = true;
  $("person-add-result").textContent = "";
  try {
    const [{ body: detail }, { body: faces }, { body: alerts }] = await Promise.all([
      api(`/api/v1/identities/${id}`), api(`/api/v1/identities/${id}/faces`),
      api(`/api/v1/alerts?identity_id=${id}&limit=20`),
    ]);
    person = detail;
    $("person-name").textContent = detail.display_name;
    $("person-meta").textContent = `${detail.login_name ? `login ${detail.login_name} · ` : ""}enrolled ${when(detail.created_at).toLocaleDateString()} · ${plural(faces.length, "photo")}`;
    $("person-faces").replaceChildren(...faces.map((face) => {
      const remove = el("button", { type: "button", class: "danger", dataset: { testid: "face-remove" } }, "Remove");
      remove.setAttribute("aria-label", `Remove photo ${face.id} of ${detail.display_name}`);
      remove.addEventListener("click", () => removeFace(face.id));
      return el("li", { dataset: { faceId: String(face.id), testid: "person-face" } },
        zoomable(`/api/v1/faces/${face.id}/image`, `Photo ${face.id} of ${detail.display_name}`),
        isAdmin() ? remove : null);
    }));
    $("person-sightings").replaceChildren(...detail.last_sightings.map(sightingCard));
    $("person-sightings-empty").hidden = detail.last_sightings.length > 0;
    $("person-alerts").replaceChildren(...alerts.map((alert) => alertCard(alert, false)));
    $("person-alerts-empty").hidden = alerts.length > 0;
    for (const id of ["person-add-form", "person-delete"]) $(id).hidden = !isAdmin();
  } catch (error) {
    if (error.status === 404) { showError("That person is not (or no longer) enrolled."); location.hash = "#/people"; return; }
    reportError("person")(error);
  }
}

async function removeFace(faceId) {
  try {
    await api(`/api/v1/faces/${faceId}`, { method: "DELETE" });
    await loadPerson(person.id);
  } catch (error) { reportError("remove photo")(error); }
}

async function addPersonPhotos(event) {
  event.preventDefault();
  const form = new FormData();
  for (const file of $("person-file").files) form.append("file", file);
  const force = $("person-force").checked ? "?force=true" : "";
  try {
    const { status, body } = await api(`/api/v1/identities/${person.id}/faces${force}`, { method: "POST", body: form });
    const id = person.id;
    event.target.reset();
    await loadPerson(id);
    $("person-add-result").textContent = status === 422
      ? `${plural(body.accepted.length, "photo")} added; refused: ${body.rejected ? body.rejected.map((r) => `${r.filename}: ${r.reason}`).join("; ") : detailText(body.detail)}`
      : `${plural(body.accepted.length, "photo")} added.`;
  } catch (error) { reportError("add photos")(error); }
}

function askErase() {
  $("person-confirm-text").textContent = `Erase ${person.display_name}? Every photo, embedding and sighting of them goes, and past alerts no longer name them. This cannot be undone.`;
  $("person-confirm").hidden = false;
  $("person-confirm-no").focus();
}

async function erasePerson() {
  try {
    await api(`/api/v1/identities/${person.id}`, { method: "DELETE" });
    showNotice(`${person.display_name} was erased.`);
    location.hash = "#/people";
  } catch (error) { reportError("erase")(error); }
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
  } catch (error) { reportError("cameras")(error); }
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
        el("figcaption", { class: "meta" }, el("span", { class: "dot" }), el("span", {})));
      tiles.append(tile);
    }
    tile.querySelector(".dot").className = `dot ${camera.status}`;
    tile.querySelector("figcaption span:last-child").textContent = `${camera.name} · ${cameraStatus(camera)}`;
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
    await postJson("/api/v1/cameras", {
      id: $("camera-id").value.trim(), name: $("camera-name").value.trim(), source: $("camera-source").value.trim(),
    });
    event.target.reset();
  } catch (error) { showError(`camera: ${error.message}`); }
  await loadCameras();
}

// Trying a camera: capture only reads cameras in the table, so it is added, capture's first
// frame (or its error) is shown, and the guard keeps it or discards it (deleted again).
let trial = null;

async function tryCamera() {
  const form = $("camera-form");
  if (!form.reportValidity()) return;
  showError("");
  const id = $("camera-id").value.trim();
  try {
    await postJson("/api/v1/cameras", {
      id, name: $("camera-name").value.trim(), source: $("camera-source").value.trim(),
    });
  } catch (error) { reportError("camera")(error); return; }
  form.reset();
  endTrial();
  trial = { id, started: Date.now(), timer: null };
  $("camera-trial-title").textContent = `Trying camera ${id}`;
  $("camera-trial-status").textContent = "Waiting for capture's first frame…";
  $("camera-trial-image").hidden = true;
  $("camera-trial").hidden = false;
  await loadCameras();
  pollTrial();
}

async function pollTrial() {
  if (!trial) return;
  const { id } = trial;
  const path = `/api/v1/cameras/${encodeURIComponent(id)}`;
  try {
    const snapshot = await fetch(`${path}/snapshot.jpg`);
    if (!trial || trial.id !== id) return;
    if (snapshot.ok) {
      const image = $("camera-trial-image");
      if (image.src.startsWith("blob:")) URL.revokeObjectURL(image.src);
      image.src = URL.createObjectURL(await snapshot.blob());
      image.alt = `A frame from camera ${id}`;
      image.hidden = false;
      const { body: camera } = await api(path);
      $("camera-trial-status").textContent = `Capture reads it: ${cameraStatus(camera)}. Keep it?`;
      return;  // one good frame is the test
    }
    let reason = `${snapshot.status}`;
    try { reason = detailText((await snapshot.json()).detail); } catch { /* not JSON */ }
    const waited = (Date.now() - trial.started) / 1000;
    if (/status error/.test(reason) || waited > 30) {
      $("camera-trial-status").textContent = `No picture: ${reason}. Discard it, or keep it to keep trying.`;
      return;
    }
    $("camera-trial-status").textContent = `Waiting for capture's first frame… (${reason})`;
  } catch (error) { reportError("camera test")(error); return; }
  trial.timer = setTimeout(pollTrial, 1000);
}

function endTrial() {
  if (trial && trial.timer) clearTimeout(trial.timer);
  trial = null;
  $("camera-trial").hidden = true;
}

async function discardTrial() {
  const id = trial && trial.id;
  endTrial();
  if (id) await changeCamera(id, { method: "DELETE" });
}

// -- history --------------------------------------------------------------------------------
let oldestShown = null;
// The filter fields and their names in the URL (#/history?kind=...&ack=...).
const FILTERS = { kind: "history-kind", camera: "history-camera", ack: "history-ack", since: "history-since", until: "history-until" };

// "sighting" in the kind filter lists sightings (every identified track) instead of alerts.
const showingSightings = () => $("history-kind").value === "sighting";

function sightingCard(sighting) {
  const image = sighting.snapshot_url ? zoomable(sighting.snapshot_url, `Snapshot of sighting ${sighting.id}`) : el("div");
  const first = when(sighting.first_seen), last = when(sighting.last_seen);
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

function filtersFromForm() {
  const params = new URLSearchParams();
  for (const [name, id] of Object.entries(FILTERS)) {
    const value = $(id).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

function filtersToForm(params) {
  for (const [name, id] of Object.entries(FILTERS)) $(id).value = params.get(name) || "";
  if ($("history-kind").selectedIndex < 0) $("history-kind").value = "";  // unknown kind in the URL
  if ($("history-ack").selectedIndex < 0) $("history-ack").value = "";
}

function historyQuery() {
  const params = new URLSearchParams({ limit: "50" });
  const add = (key, value) => { if (value) params.set(key, value); };
  if (!showingSightings()) add("kind", $("history-kind").value);
  add("camera_id", $("history-camera").value.trim());
  if (!showingSightings()) add("acknowledged", $("history-ack").value);
  const time = (id) => { const d = new Date($(id).value); return Number.isNaN(d.getTime()) ? "" : d.toISOString(); };
  if ($("history-since").value) add("since", time("history-since"));
  if ($("history-until").value) add("until", time("history-until"));
  if (oldestShown !== null) params.set("before_id", String(oldestShown));
  return params;
}

async function loadHistory({ more = false } = {}) {
  if (!more) {
    oldestShown = null;
    $("history-list").replaceChildren();
  }
  try {
    const sightingsShown = showingSightings();
    const { body } = await api(`/api/v1/${sightingsShown ? "sightings" : "alerts"}?${historyQuery()}`);
    $("history-list").append(...body.map((item) => (sightingsShown ? sightingCard(item) : alertCard(item, false))));
    if (body.length) oldestShown = body[body.length - 1].id;
    $("history-more").hidden = body.length < 50;
  } catch (error) { reportError("history")(error); }
}

// -- chart: alerts per hour and kind, the last 24 hours -------------------------------------------
const KINDS = ["unknown_person", "spoof_attempt", "identity_mismatch", "impossible_travel", "access_granted"];
const HOUR = 3600 * 1000;

async function loadChart() {
  try {
    const { body } = await api("/api/v1/alerts/stats");
    drawChart(body, Date.now());
  } catch (error) { reportError("chart")(error); }
}

function drawChart(counts, now) {
  const last = Math.floor(now / HOUR) * HOUR;
  const hours = Array.from({ length: 24 }, (_, i) => last - (23 - i) * HOUR);
  const table = new Map(hours.map((h) => [h, {}]));
  for (const row of counts) {
    const bucket = table.get(Math.floor(when(row.hour).getTime() / HOUR) * HOUR);
    if (bucket) bucket[row.kind] = (bucket[row.kind] || 0) + row.count;
  }
  const totals = hours.map((h) => Object.values(table.get(h)).reduce((a, b) => a + b, 0));
  const top = Math.max(1, ...totals);
  const step = niceStep(top);
  const ceiling = Math.ceil(top / step) * step;
  // Drawn at the size it is shown (text stays legible on a phone), hour labels as room allows.
  const width = Math.max(280, Math.round($("alert-chart").clientWidth || 720));
  const [height, left, bottom, topPad] = [200, 32, 24, 10];
  const every = width < 480 ? 6 : 3;
  const plotH = height - bottom - topPad, slot = (width - left - 8) / 24, barW = Math.max(4, slot * 0.7);
  const y = (value) => topPad + plotH - (value / ceiling) * plotH;
  const total = totals.reduce((a, b) => a + b, 0);
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, role: "img", class: "chart-svg",
    "aria-label": `Alerts per hour over the last 24 hours: ${total} in all, at most ${top} in one hour` });
  for (let v = 0; v <= ceiling; v += step) {
    chart.append(svg("line", { x1: left, x2: width - 4, y1: y(v), y2: y(v), class: "gridline" }),
      svg("text", { x: left - 6, y: y(v) + 4, class: "axis", "text-anchor": "end" }, String(v)));
  }
  hours.forEach((hour, i) => {
    const x = left + i * slot + (slot - barW) / 2;
    let base = 0;
    for (const kind of KINDS) {
      const n = table.get(hour)[kind] || 0;
      if (!n) continue;
      const label = `${new Date(hour).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })}: ${n} ${LABELS[kind] || kind}`;
      chart.append(svg("rect", { x, y: y(base + n), width: barW, height: Math.max(1, y(base) - y(base + n)),
        class: `bar ${kind}`, "data-kind": kind, "data-count": n, "data-hour": new Date(hour).toISOString() },
      svg("title", {}, label)));
      base += n;
    }
    if (i % every === 0) {
      chart.append(svg("text", { x: x + barW / 2, y: height - 8, class: "axis", "text-anchor": "middle" },
        new Date(hour).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })));
    }
  });
  const present = KINDS.filter((kind) => hours.some((h) => table.get(h)[kind]));
  const legend = el("ul", { class: "legend" }, ...present.map((kind) =>
    el("li", {}, el("span", { class: `swatch ${kind}` }), LABELS[kind] || kind)));
  $("alert-chart").replaceChildren(chart, present.length ? legend : el("p", { class: "empty" }, "No alerts in the last 24 hours."));
}

function niceStep(top) {
  const rough = top / 4;
  const power = 10 ** Math.floor(Math.log10(rough || 1));
  return Math.max(1, [1, 2, 5, 10].map((m) => m * power).find((s) => s >= rough) || power * 10);
}

// -- admin: keys, calibration, audit log ----------------------------------------------------
async function loadKeys() {
  try {
    const { body } = await api("/api/v1/keys");
    $("key-list").replaceChildren(...body.map((key) => {
      const revoke = el("button", { type: "button", class: "danger", dataset: { testid: "key-revoke" } }, "Revoke");
      revoke.setAttribute("aria-label", `Revoke the key of ${key.name}`);
      revoke.addEventListener("click", () => {
        if (revoke.dataset.armed !== "yes") {  // a second press confirms
          revoke.dataset.armed = "yes";
          revoke.textContent = "Really revoke?";
          return;
        }
        revokeKey(key.key_id);
      });
      const used = key.last_used_at ? when(key.last_used_at).toLocaleString() : "never";
      const mine = me && key.key_id === me.key_id;
      return el("tr", { dataset: { keyId: key.key_id, testid: "key-row" } },
        el("td", {}, el("code", {}, key.key_id)), el("td", {}, key.name + (mine ? " (you)" : "")),
        el("td", {}, key.role), el("td", {}, used), el("td", {}, revoke));
    }));
  } catch (error) { reportError("keys")(error); }
}

async function createKey(event) {
  event.preventDefault();
  try {
    const { body } = await postJson("/api/v1/keys", { name: $("key-name").value.trim(), role: $("key-role").value });
    event.target.reset();
    $("key-secret").textContent = body.key;
    $("key-secret-box").hidden = false;
    $("key-secret-done").focus();
    await Promise.all([loadKeys(), loadAudit()]);
  } catch (error) { reportError("create key")(error); }
}

async function revokeKey(keyId) {
  try {
    await api(`/api/v1/keys/${encodeURIComponent(keyId)}`, { method: "DELETE" });
    await Promise.all([loadKeys(), loadAudit()]);
  } catch (error) { reportError("revoke")(error); }
}

let oldestAudit = null;

async function loadAudit({ more = false } = {}) {
  if (!more) { oldestAudit = null; $("audit-list").replaceChildren(); }
  const params = new URLSearchParams({ limit: "50" });
  if (oldestAudit !== null) params.set("before_id", String(oldestAudit));
  try {
    const { body } = await api(`/api/v1/audit?${params}`);
    $("audit-list").append(...body.map((entry) => el("tr", { dataset: { testid: "audit-row", action: entry.action } },
      el("td", {}, when(entry.at).toLocaleString()), el("td", {}, `${entry.actor} (${entry.role})`),
      el("td", {}, entry.action), el("td", {}, entry.target_type ? `${entry.target_type} ${entry.target_id ?? ""}` : ""),
      el("td", { class: "meta" }, Object.keys(entry.details).length ? JSON.stringify(entry.details) : ""))));
    if (body.length) oldestAudit = body[body.length - 1].id;
    $("audit-more").hidden = body.length < 50;
  } catch (error) { reportError("audit")(error); }
}

async function runCalibration(event) {
  if (event) event.preventDefault();
  const params = new URLSearchParams();
  if ($("calibration-far").value) params.set("target_far", $("calibration-far").value);
  const result = $("calibration-result");
  result.textContent = "Calibrating…";
  $("calibration-plot").hidden = true;
  try {
    const { status, body } = await api(`/api/v1/calibration?${params}`);
    if (status === 422) { result.textContent = detailText(body.detail); return; }
    const pct = (rate) => `${(100 * rate).toPrecision(2)}%`;
    const current = `current 1:N threshold ${body.current_threshold.toFixed(3)}: false accepts ${pct(body.at_current.far_identification_fitted)} per identification, false rejects ${pct(body.at_current.frr)}`;
    const suggested = body.suggested_threshold == null
      ? `no threshold reaches a false-accept rate of ${body.target_far}`
      : `suggested ${body.suggested_threshold.toFixed(3)} for ${body.target_far} false accepts per identification (false rejects ${pct(body.at_suggested.frr)})`;
    result.textContent = `${plural(body.identities, "person", "people")}, ${plural(body.samples, "photo")}: ${suggested}; ${current}.`;
    params.set("format", "svg");
    $("calibration-plot").src = `/api/v1/calibration?${params}`;
    $("calibration-plot").hidden = false;
  } catch (error) {
    if (!(error instanceof SignedOut)) result.textContent = `No calibration: ${error.message}`;
  }
}

// -- where the page is: #/view, #/person/7, #/history?kind=... ---------------------------------
const VIEWS = ["live", "history", "people", "person", "strangers", "cameras", "admin"];

function parseHash() {
  const [path, query = ""] = location.hash.replace(/^#\/?/, "").split("?");
  const [view, id] = path.split("/");
  return { view: VIEWS.includes(view) ? view : "live", id, params: new URLSearchParams(query) };
}

function route() {
  if (!started) return;
  const { view, id, params } = parseHash();
  const shown = view === "admin" && !isAdmin() ? "live" : view;
  const tab = shown === "person" ? "people" : shown;
  for (const button of document.querySelectorAll(".tab")) {
    button.classList.toggle("active", button.dataset.view === tab);
    if (button.dataset.view === tab) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== `view-${shown}`;
  if (shown === "history") { filtersToForm(params); loadHistory(); loadChart(); }
  if (shown === "people") { $("people-search").value = params.get("q") || ""; loadPeople().catch(reportError("people")); }
  if (shown === "person") {
    const personId = Number(id);
    if (Number.isInteger(personId) && personId > 0) loadPerson(personId);
    else location.hash = "#/people";
  }
  if (shown === "strangers") loadGroups(params.get("all") === "1");
  if (shown === "admin") { loadKeys(); loadAudit(); }
}

// Go to a place; the same place again reloads it (hashchange does not fire then).
function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function showView(name) { go(`#/${name}`); }

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
$("people-search-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const q = $("people-search").value.trim();
  go(q ? `#/people?${new URLSearchParams({ q })}` : "#/people");
});
$("person-add-form").addEventListener("submit", addPersonPhotos);
$("person-delete").addEventListener("click", askErase);
$("person-confirm-no").addEventListener("click", () => { $("person-confirm").hidden = true; $("person-delete").focus(); });
$("person-confirm-yes").addEventListener("click", erasePerson);
$("enrol-form").addEventListener("submit", submitEnrol);
$("enrol-cancel").addEventListener("click", () => $("enrol-dialog").close());
$("enrol-name").addEventListener("input", () => { $("enrol-new").checked = true; });
$("enrol-person").addEventListener("change", () => { $("enrol-existing").checked = true; });
$("camera-form").addEventListener("submit", addCamera);
$("camera-test").addEventListener("click", tryCamera);
$("camera-keep").addEventListener("click", () => { endTrial(); showNotice("Camera kept."); });
$("camera-discard").addEventListener("click", discardTrial);
$("webcam-start").addEventListener("click", startWebcam);
$("webcam-snap").addEventListener("click", takePhoto);
$("history-filters").addEventListener("submit", (event) => {
  event.preventDefault();
  const params = filtersFromForm().toString();
  go(params ? `#/history?${params}` : "#/history");
});
$("history-more").addEventListener("click", () => loadHistory({ more: true }));
$("group-all").addEventListener("change", () => go($("group-all").checked ? "#/strangers?all=1" : "#/strangers"));
$("key-form").addEventListener("submit", createKey);
$("key-secret-done").addEventListener("click", () => { $("key-secret").textContent = ""; $("key-secret-box").hidden = true; });
$("audit-more").addEventListener("click", () => loadAudit({ more: true }));
$("calibration-form").addEventListener("submit", runCalibration);
$("notice").addEventListener("click", () => showNotice(""));
for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showView(tab.dataset.view));
window.addEventListener("hashchange", route);

async function start() {
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
  $("nav-admin").hidden = !isAdmin();
  for (const id of ["identity-form", "camera-form"]) $(id).hidden = !isAdmin();
  $("enrol-section").hidden = !isAdmin();
  route();
  try {
    await loadAlerts();
  } catch (error) { reportError("alerts")(error); }
  connect();
  loadCameras();
  setInterval(() => { if (started && $("login").hidden) loadCameras(); }, 5000);
}
await start();
