// Golden-seed workbench: one page, two tabs, no build step.
"use strict";

const $ = (id) => document.getElementById(id);
const SETTINGS_FIELDS = ["generator", "model_id", "steps", "guidance", "scheduler", "ratio", "pixel_budget", "seeds_per_batch"];
const NUMBER_FIELDS = new Set(["steps", "guidance", "pixel_budget", "seeds_per_batch"]);
const MAX_KEYED_TILES = 9;

const state = {
  tab: "settings",
  initialised: false,
  batch: null,          // the batch on screen (BatchOut)
  golden: new Set(),    // seeds marked golden on screen
  submittedId: null,    // submission id once the batch on screen is stored
  done: false,
  busy: false,
  assist: null,
};

function describeError(body, status) {
  const detail = body && body.detail;
  if (Array.isArray(detail)) {
    return detail.map((d) => `${(d.loc || []).filter((p) => p !== "body").join(".")}: ${d.msg}`).join("\n");
  }
  return detail || `HTTP ${status}`;
}

async function api(path, options = {}) {
  const init = { method: options.method || "POST", headers: {} };
  if (options.form) {
    init.body = options.form;
  } else if (options.json !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(describeError(body, response.status));
  return body;
}

function say(id, text, kind = "") {
  const el = $(id);
  el.textContent = text;
  el.className = `status ${kind}`;
}

// --- tabs ---------------------------------------------------------------------------
function showTab(name) {
  state.tab = name;
  for (const tab of ["settings", "workbench"]) {
    $(`panel-${tab}`).hidden = tab !== name;
    $(`tab-${tab}`).setAttribute("aria-selected", String(tab === name));
  }
  if (name === "workbench" && state.initialised && !state.batch && !state.done) next();
}

// --- settings -----------------------------------------------------------------------
function fillSettings(settings, ratios) {
  const ratio = $("ratio");
  if (!ratio.options.length) {
    for (const r of ratios) ratio.add(new Option(r, r));
  }
  for (const field of SETTINGS_FIELDS) {
    if (settings[field] !== undefined && settings[field] !== null) $(field).value = String(settings[field]);
  }
  $("assist").checked = Boolean(settings.assist);
  toggleDiffusersFields();
}

function readSettings() {
  const settings = { assist: $("assist").checked };
  for (const field of SETTINGS_FIELDS) {
    const value = $(field).value;
    settings[field] = NUMBER_FIELDS.has(field) ? Number(value) : value;
  }
  return settings;
}

function toggleDiffusersFields() {
  $("settings-form").classList.toggle("diffusers-off", $("generator").value !== "diffusers");
}

function annotator() {
  return $("annotator").value.trim() || undefined;
}

async function uploadPrompts() {
  const file = $("prompt-file").files[0];
  if (!file) return say("upload-status", "choose a .csv or .json file first", "error");
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const result = await api("/upload_prompts", { form });
    say("upload-status", `${result.prompts} prompts loaded from ${result.file}`, "ok");
    state.batch = null;
    state.done = false;
  } catch (err) {
    say("upload-status", err.message, "error");
  }
}

async function initialise() {
  say("init-status", "initialising ...");
  $("init").disabled = true;
  try {
    const result = await api("/init_model", { json: readSettings() });
    state.initialised = true;
    state.batch = null;
    state.done = false;
    state.assist = result.assist;
    say("init-status", `ready: ${result.generator}, ${result.size.width}x${result.size.height}`, "ok");
    showTab("workbench");
  } catch (err) {
    say("init-status", err.message, "error");
  } finally {
    $("init").disabled = false;
  }
}

// --- workbench ----------------------------------------------------------------------
function assistLabel(image) {
  if (image.score === null || image.score === undefined) return "assist: unavailable";
  return `assist: ${image.score.toFixed(3)}`;
}

function render() {
  const batch = state.batch;
  const grid = $("grid");
  grid.replaceChildren();
  if (!batch) return;
  const prompt = batch.prompt;
  $("prompt-text").textContent = prompt.text;
  $("progress").textContent = `prompt ${prompt.index + 1} / ${prompt.total}`;
  const assist = state.assist;
  $("assist-status").textContent = assist && !assist.available ? `assist unavailable: ${assist.reason}` : "";
  batch.images.forEach((image, i) => {
    const tile = document.createElement("figure");
    tile.className = "tile";
    tile.dataset.seed = String(image.seed);
    tile.classList.toggle("golden", state.golden.has(image.seed));
    tile.classList.toggle("judged", Boolean(state.submittedId));
    const img = document.createElement("img");
    img.src = image.url;
    img.alt = `seed ${image.seed}`;
    const meta = document.createElement("figcaption");
    meta.className = "meta";
    const seed = document.createElement("span");
    seed.className = "seed";
    seed.textContent = `seed ${image.seed}`;
    const score = document.createElement("span");
    score.className = "score";
    score.textContent = assistLabel(image);
    meta.append(seed, score);
    tile.append(img, meta);
    if (i < MAX_KEYED_TILES) {
      const key = document.createElement("span");
      key.className = "key";
      key.textContent = String(i + 1);
      tile.append(key);
    }
    tile.addEventListener("click", () => toggle(i));
    grid.append(tile);
  });
}

function showBatch(batch, golden = [], submittedId = null) {
  state.batch = batch;
  state.golden = new Set(golden);
  state.submittedId = submittedId;
  render();
}

function toggle(index) {
  const batch = state.batch;
  if (!batch || index >= batch.images.length) return;
  if (state.submittedId) return say("bench-status", "already submitted: U undoes it, N goes next");
  const seed = batch.images[index].seed;
  if (state.golden.has(seed)) state.golden.delete(seed); else state.golden.add(seed);
  render();
}

function allBad() {
  if (!state.batch || state.submittedId) return;
  state.golden.clear();
  render();
  say("bench-status", "all marked bad: Enter submits");
}

async function guarded(action) {
  if (state.busy) return;
  state.busy = true;
  try {
    await action();
  } catch (err) {
    say("bench-status", err.message, "error");
  } finally {
    state.busy = false;
  }
}

function next() {
  return guarded(async () => {
    say("bench-status", "loading the next prompt ...");
    const step = await api("/get_next_prompt");
    if (step.done) {
      state.done = true;
      showBatch(null);
      $("prompt-text").textContent = "Every prompt is judged. Upload another file in the settings tab.";
      $("progress").textContent = "";
      return say("bench-status", "done", "ok");
    }
    const batch = await api("/generate_batch", { json: {} });
    showBatch(batch);
    say("bench-status", batch.prefetched ? "ready (prefetched)" : "ready");
  });
}

function submit() {
  return guarded(async () => {
    if (!state.batch) return;
    if (state.submittedId) return say("bench-status", "already submitted: U undoes it, N goes next");
    const golden = [...state.golden];
    const result = await api("/submit_selection", {
      json: { batch_id: state.batch.batch_id, golden_seeds: golden, annotator: annotator() },
    });
    state.submittedId = result.submission_id;
    render();
    const record = result.record;
    say("bench-status", `saved: ${record.golden_seeds.length} golden, ${record.bad_seeds.length} bad`, "ok");
    if ($("auto-advance").checked) {
      state.busy = false;
      await next();
    }
  });
}

function undo() {
  return guarded(async () => {
    const result = await api("/undo_last", { json: { annotator: annotator() } });
    const undone = result.undone;
    if (result.batch) showBatch(result.batch, undone.golden_seeds);
    say("bench-status", `undone: submission for "${undone.prompt}" (judge it again and press Enter)`, "ok");
  });
}

function onKey(event) {
  if (state.tab !== "workbench" || event.ctrlKey || event.metaKey || event.altKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
  const key = event.key;
  if (/^[1-9]$/.test(key)) toggle(Number(key) - 1);
  else if (key === "a" || key === "A") allBad();
  else if (key === "Enter") submit();
  else if (key === "n" || key === "N" || key === "ArrowRight") next();
  else if (key === "u" || key === "U") undo();
  else return;
  event.preventDefault();
}

async function load() {
  const current = await api("/state", { method: "GET" });
  fillSettings(current.settings || current.defaults, current.ratios);
  $("annotator").value = current.annotator;
  $("who").textContent = `data: ${current.selections_log}`;
  state.initialised = current.initialised;
  state.assist = current.assist;
  if (current.prompts) say("upload-status", `${current.prompts} prompts loaded`, "ok");
  if (current.batch) showBatch(current.batch);
}

document.addEventListener("DOMContentLoaded", () => {
  for (const tab of ["settings", "workbench"]) $(`tab-${tab}`).addEventListener("click", () => showTab(tab));
  $("generator").addEventListener("change", toggleDiffusersFields);
  $("upload").addEventListener("click", uploadPrompts);
  $("init").addEventListener("click", initialise);
  $("all-bad").addEventListener("click", allBad);
  $("submit").addEventListener("click", submit);
  $("next").addEventListener("click", next);
  $("undo").addEventListener("click", undo);
  $("hide-scores").addEventListener("change", (e) => document.body.classList.toggle("hide-scores", e.target.checked));
  document.addEventListener("keydown", onKey);
  load().catch((err) => say("init-status", err.message, "error"));
});
