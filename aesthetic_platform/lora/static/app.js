"use strict";
// LoRA dataset builder page: upload, live stages over SSE, preview grid, crop editor, download.
const STAGES = ["ingest", "dedup", "crops", "captions", "package"];
const BUSY = ["queued", "running"];
const $ = (id) => document.getElementById(id);
let maxUpload = 0;
let current = null;      // the selected job's id
let source = null;       // the open EventSource
let job = null;          // the selected job's last details
let editing = null;      // the item whose crop box is open

async function api(path, options = {}) {
  const response = await fetch(path, options);
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const detail = typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail || body);
    throw new Error(`${response.status}: ${detail}`);
  }
  return body;
}

function status(id, text, kind = "") {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
}

// --- settings --------------------------------------------------------------------------------------
// form field -> [section, field] of the settings: the server's CaptionConfig and PackageConfig
const SETTINGS_FORM = {
  trigger: ["package", "trigger"], class_word: ["package", "class_word"], repeats: ["package", "repeats"],
  caption_base_url: ["caption", "base_url"], caption_api_key_env: ["caption", "api_key_env"],
  caption_max_side: ["caption", "max_side"], caption_prompt: ["caption", "prompt"],
};

async function loadSettings() {
  const body = await api("/api/settings");
  maxUpload = body.max_upload_bytes;
  const s = body.settings;
  for (const [id, [section, field]] of Object.entries(SETTINGS_FORM)) {
    $(id).value = s[section][field];
  }
  $("caption_models").value = s.caption.models.join("\n");
}

async function saveSettings(event) {
  event.preventDefault();
  const settings = {
    package: { trigger: $("trigger").value.trim(), class_word: $("class_word").value.trim(), repeats: Number($("repeats").value) },
    caption: {
      base_url: $("caption_base_url").value.trim(),
      models: $("caption_models").value.split(/[\n,]/).map((m) => m.trim()).filter(Boolean),
      api_key_env: $("caption_api_key_env").value.trim(), max_side: Number($("caption_max_side").value),
      prompt: $("caption_prompt").value,
    },
  };
  try {
    await api("/api/settings", { method: "PUT", headers: { "Content-Type": "application/json" }, body: JSON.stringify(settings) });
    status("settings-status", "saved; the next upload uses them", "ok");
  } catch (err) {
    status("settings-status", err.message, "error");
  }
}

// --- upload and jobs -------------------------------------------------------------------------------
async function upload(event) {
  event.preventDefault();
  const file = $("upload-file").files[0];
  if (!file) { status("upload-status", "choose a ZIP file first", "error"); return; }
  if (maxUpload && file.size > maxUpload) {
    status("upload-status", `${file.name} is ${file.size} bytes, over the ${maxUpload}-byte upload limit`, "error");
    return;
  }
  status("upload-status", `uploading ${file.name}…`);
  try {
    const body = await api(`/api/jobs?name=${encodeURIComponent(file.name)}`, {
      method: "POST", headers: { "Content-Type": "application/zip" }, body: file,
    });
    status("upload-status", `${file.name}: job ${body.job.job_id} started`, "ok");
    await loadJobs();
    await selectJob(body.job.job_id);
  } catch (err) {
    status("upload-status", err.message, "error");
  }
}

async function loadJobs() {
  const { jobs } = await api("/api/jobs");
  const list = $("jobs");
  list.replaceChildren(...jobs.map((j) => {
    const li = document.createElement("li");
    li.dataset.jobId = j.job_id;
    li.className = j.job_id === current ? "selected" : "";
    const name = document.createElement("span");
    name.textContent = `${j.source_name} · ${j.created_at.replace("T", " ").slice(0, 19)}`;
    const state = document.createElement("span");
    state.className = `state ${j.state}`;
    state.textContent = j.state;
    li.append(name, state);
    li.addEventListener("click", () => selectJob(j.job_id));
    return li;
  }));
}

async function selectJob(id) {
  if (source) { source.close(); source = null; }
  current = id;
  if (location.hash !== `#${id}`) history.replaceState(null, "", `#${id}`);
  for (const li of $("jobs").children) li.classList.toggle("selected", li.dataset.jobId === id);
  closeEditor();
  $("job").hidden = false;
  await refreshJob();
  if (BUSY.includes(job.state)) follow(id);
}

async function refreshJob() {
  job = await api(`/api/jobs/${current}`);
  renderJob(job);
  renderItems(job.items);
  return job;
}

function follow(id) {
  if (source) source.close();
  source = new EventSource(`/api/jobs/${id}/events`);
  source.addEventListener("job", (event) => { if (id === current) renderJob(JSON.parse(event.data)); });
  source.addEventListener("end", async () => {
    source.close();
    source = null;
    if (id !== current) return;
    await refreshJob();
    await loadJobs();
    if (editing) afterCropUpdate();
  });
}

function renderJob(j) {
  $("job-title").textContent = j.source_name;
  const state = $("job-state");
  state.textContent = j.state;
  state.className = `state ${j.state}`;
  $("stages").replaceChildren(...STAGES.map((name) => {
    const s = j.stages[name] || { status: "pending", done: 0, total: 0 };
    const li = document.createElement("li");
    li.id = `stage-${name}`;
    li.className = s.status;
    li.dataset.status = s.status;
    const label = document.createElement("div");
    const counts = s.total ? ` ${s.done}/${s.total}` : "";
    label.textContent = `${name}: ${s.status}${counts}${s.status === "done" && !s.recomputed ? " (up to date)" : ""}`;
    const bar = document.createElement("progress");
    bar.max = s.total || 1;
    bar.value = s.status === "done" ? bar.max : s.done || 0;
    li.append(label, bar);
    if (s.error) li.title = s.error;
    return li;
  }));
  const failed = STAGES.map((n) => j.stages[n]).find((s) => s && s.error);
  $("job-error").textContent = failed ? failed.error : j.error || "";
  const download = $("download");
  const packaged = j.stages.package && j.stages.package.status === "done" && !BUSY.includes(j.state);
  download.hidden = !packaged;
  download.href = packaged ? `/api/jobs/${j.job_id}/download` : "#";
}

function tile(item) {
  const fig = document.createElement("figure");
  fig.className = `tile ${item.status}`;
  fig.dataset.imageId = item.image_id;
  fig.dataset.category = item.category;
  const url = item.status === "kept" ? item.crop_url : item.source_url;
  if (url) {
    const img = document.createElement("img");
    img.src = url;
    img.alt = item.source_name;
    fig.append(img);
  }
  const name = document.createElement("div");
  name.textContent = item.source_name;
  fig.append(name);
  if (item.status === "kept") {
    const how = document.createElement("div");
    how.className = item.crop_source === "manual" ? "manual crop-source" : "muted crop-source";
    how.textContent = `${item.crop_source} crop · ${item.focus_kind} · caption: ${item.caption_source}`;
    const caption = document.createElement("div");
    caption.className = "caption";
    caption.textContent = item.caption;
    fig.append(how, caption);
    fig.addEventListener("click", () => openEditor(item));
  } else {
    const reason = document.createElement("div");
    reason.className = "reason";
    reason.textContent = `${item.category}: ${item.reason}${item.lost_to ? ` (kept: ${item.lost_to})` : ""}`;
    fig.append(reason);
  }
  return fig;
}

function renderItems(items) {
  const kept = items.filter((i) => i.status === "kept");
  const dropped = items.filter((i) => i.status !== "kept");
  $("kept").replaceChildren(...kept.map(tile));
  $("dropped").replaceChildren(...dropped.map(tile));
  $("kept-count").textContent = `(${kept.length})`;
  $("dropped-count").textContent = `(${dropped.length})`;
}

// --- crop editor ----------------------------------------------------------------------------------------
let drag = null;
let scale = 1;

function openEditor(item) {
  if (!item.source_url) return;
  editing = item;
  $("editor").hidden = false;
  $("editor-title").textContent = `${item.source_name} (${item.width}×${item.height})`;
  status("editor-status", "");
  const img = $("editor-image");
  img.onload = () => placeRect(item.crop_box);
  img.src = item.source_url;
  if (img.complete && img.naturalWidth) placeRect(item.crop_box);
}

function closeEditor() {
  editing = null;
  $("editor").hidden = true;
}

function placeRect(box) {
  const img = $("editor-image");
  scale = img.clientWidth / editing.width;
  const rect = $("crop-rect");
  rect.style.left = `${box[0] * scale}px`;
  rect.style.top = `${box[1] * scale}px`;
  rect.style.width = `${(box[2] - box[0]) * scale}px`;
  rect.style.height = `${(box[3] - box[1]) * scale}px`;
  rect.dataset.box = JSON.stringify(box);
}

function startDrag(event) {
  if (!editing || event.button !== 0) return;
  event.preventDefault();
  if (job && BUSY.includes(job.state)) {
    status("editor-status", "the job is still processing; adjust the crop when it is done", "error");
    return;
  }
  const rect = $("crop-rect");
  drag = {
    mode: event.target.id === "crop-handle" ? "resize" : "move", x: event.clientX, y: event.clientY,
    left: rect.offsetLeft, top: rect.offsetTop, side: rect.offsetWidth,
  };
}

function moveDrag(event) {
  if (!drag) return;
  const img = $("editor-image");
  const w = img.clientWidth, h = img.clientHeight;
  const dx = event.clientX - drag.x, dy = event.clientY - drag.y;
  const rect = $("crop-rect");
  let { left, top, side } = drag;
  if (drag.mode === "move") {
    left = Math.min(Math.max(0, left + dx), w - side);
    top = Math.min(Math.max(0, top + dy), h - side);
  } else {
    side = Math.max(16, Math.min(side + Math.max(dx, dy), w - left, h - top));
  }
  rect.style.left = `${left}px`;
  rect.style.top = `${top}px`;
  rect.style.width = `${side}px`;
  rect.style.height = `${side}px`;
}

async function endDrag() {
  if (!drag) return;
  drag = null;
  const rect = $("crop-rect");
  let side = Math.round(rect.offsetWidth / scale);
  side = Math.min(side, editing.width, editing.height);
  const left = Math.min(Math.max(0, Math.round(rect.offsetLeft / scale)), editing.width - side);
  const top = Math.min(Math.max(0, Math.round(rect.offsetTop / scale)), editing.height - side);
  const box = [left, top, left + side, top + side];
  placeRect(box);
  status("editor-status", "saved; recomputing crop, caption and package…");
  try {
    await api(`/api/jobs/${current}/crop`, {
      method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ image_id: editing.image_id, box }),
    });
    await refreshJob();
    follow(current);
  } catch (err) {
    status("editor-status", err.message, "error");
  }
}

function afterCropUpdate() {
  const updated = job.items.find((i) => i.image_id === editing.image_id);
  if (!updated) return;
  editing = updated;
  placeRect(updated.crop_box);
  if (job.state === "done") status("editor-status", `crop updated: [${updated.crop_box.join(", ")}]`, "ok");
  else status("editor-status", job.error || "recomputing failed", "error");
}

// --- start -------------------------------------------------------------------------------------------------
document.addEventListener("DOMContentLoaded", async () => {
  $("upload-form").addEventListener("submit", upload);
  $("settings-form").addEventListener("submit", saveSettings);
  $("editor-close").addEventListener("click", closeEditor);
  $("crop-rect").addEventListener("mousedown", startDrag);
  document.addEventListener("mousemove", moveDrag);
  document.addEventListener("mouseup", endDrag);
  try {
    await loadSettings();
    await loadJobs();
    const wanted = location.hash.slice(1);
    if (wanted) await selectJob(wanted);
  } catch (err) {
    status("upload-status", err.message, "error");
  }
});
