// Labelling tab of the workbench page: one item at a time, one key per label, skip, undo, review queue first.
"use strict";

const labelling = { item: null, skipped: [], busy: false, active: false };
const L = (id) => document.getElementById(id);

function labelSettings() {
  const labels = L("label-values").value.split(",").map((s) => s.trim()).filter(Boolean).slice(0, 9);
  return { task: L("label-task").value.trim(), annotator: L("label-annotator").value.trim(), labels };
}

function labelSay(text, kind = "") {
  const el = L("label-status");
  el.textContent = text;
  el.className = `status ${kind}`;
}

async function labelApi(path, json) {
  const init = json === undefined ? { method: "GET" } : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(json) };
  const response = await fetch(path, init);
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = body && body.detail;
    throw new Error(Array.isArray(detail) ? detail.map((d) => `${(d.loc || []).join(".")}: ${d.msg}`).join("\n") : detail || `HTTP ${response.status}`);
  }
  return body;
}

function renderLabelButtons() {
  const bar = L("label-buttons");
  bar.replaceChildren();
  labelSettings().labels.forEach((label, i) => {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "label-choice";
    button.dataset.label = label;
    button.innerHTML = `<kbd>${i + 1}</kbd> `;
    button.append(label);
    button.addEventListener("click", () => submitLabel(label));
    bar.append(button);
  });
}

function showItem(result) {
  labelling.item = result.item;
  const view = L("label-item");
  view.replaceChildren();
  L("label-review").hidden = !(result.item && result.review);
  if (!result.item) {
    L("label-sha").textContent = "";
    L("label-votes").textContent = "";
    view.textContent = "Nothing left to label for this task.";
    return;
  }
  const item = result.item;
  L("label-sha").textContent = item.sha256.slice(0, 12);
  L("label-votes").textContent = item.votes ? Object.entries(item.votes).map(([k, v]) => `${k}: ${v}`).join(" · ") : "";
  if (item.url) {
    const img = document.createElement("img");
    img.src = item.url;
    img.alt = item.sha256;
    view.append(img);
  } else {
    const p = document.createElement("p");
    p.className = "prompt";
    p.textContent = item.text;
    view.append(p);
  }
  if (result.counts) L("label-counts").textContent = `review queue ${result.counts.review} · labelled by you ${result.counts.labelled_by_you}`;
}

async function guardedLabel(action) {
  if (labelling.busy) return;
  const s = labelSettings();
  if (!s.task || !s.annotator || !s.labels.length) {
    labelSay("Set a task, your name and at least one label first.", "error");
    return;
  }
  labelling.busy = true;
  try {
    await action(s);
  } catch (err) {
    labelSay(err.message, "error");
  } finally {
    labelling.busy = false;
  }
}

function nextLabelItem() {
  return guardedLabel(async (s) => {
    const query = new URLSearchParams({ task: s.task, annotator: s.annotator, skip: labelling.skipped.join(",") });
    showItem(await labelApi(`/labels/next?${query}`));
  });
}

function submitLabel(label) {
  if (!labelling.item) return;
  return guardedLabel(async (s) => {
    const sha = labelling.item.sha256;
    await labelApi("/labels/submit", { item: sha, task: s.task, label, annotator: s.annotator });
    labelSay(`labelled ${sha.slice(0, 12)}: ${label}`, "ok");
    labelling.busy = false;
    await nextLabelItem();
  });
}

function skipLabel() {
  if (!labelling.item) return;
  labelling.skipped.push(labelling.item.sha256);
  labelSay(`skipped ${labelling.item.sha256.slice(0, 12)}`);
  return nextLabelItem();
}

function undoLabel() {
  return guardedLabel(async (s) => {
    const result = await labelApi("/labels/undo", { task: s.task, annotator: s.annotator });
    labelling.skipped = labelling.skipped.filter((sha) => sha !== result.item.sha256);
    showItem({ item: result.item, review: false });
    labelSay(`undone: ${result.item.sha256.slice(0, 12)} ${result.restored ? `is ${result.restored} again` : "has no label from you"}`, "ok");
  });
}

function showLabelsTab() {
  showTab("labels");  // app.js: hides the other two panels and turns their keys off
  labelling.active = true;
  L("panel-labels").hidden = false;
  L("tab-labels").setAttribute("aria-selected", "true");
  renderLabelButtons();
  if (!labelling.item) nextLabelItem();
}

function onLabelKey(event) {
  if (!labelling.active || event.ctrlKey || event.metaKey || event.altKey) return;
  if (["INPUT", "SELECT", "TEXTAREA"].includes(document.activeElement.tagName)) return;
  const key = event.key;
  const labels = labelSettings().labels;
  if (/^[1-9]$/.test(key) && Number(key) <= labels.length) submitLabel(labels[Number(key) - 1]);
  else if (key === "s" || key === "S") skipLabel();
  else if (key === "u" || key === "U") undoLabel();
  else return;
  event.preventDefault();
}

document.addEventListener("DOMContentLoaded", () => {
  const saved = JSON.parse(localStorage.getItem("labelling") || "{}");
  for (const [id, key] of [["label-task", "task"], ["label-values", "labels"], ["label-annotator", "annotator"]]) {
    if (saved[key]) L(id).value = saved[key];
    L(id).addEventListener("change", () => {
      const s = labelSettings();
      localStorage.setItem("labelling", JSON.stringify({ task: s.task, labels: s.labels.join(","), annotator: s.annotator }));
      labelling.skipped = [];
      labelling.item = null;
      renderLabelButtons();
      if (labelling.active) nextLabelItem();
    });
  }
  fetch("/state").then((r) => r.json()).then((s) => { if (!L("label-annotator").value) L("label-annotator").value = s.annotator || ""; }).catch(() => {});
  L("tab-labels").addEventListener("click", showLabelsTab);
  for (const other of ["settings", "workbench"]) {
    L(`tab-${other}`).addEventListener("click", () => {
      labelling.active = false;
      L("panel-labels").hidden = true;
      L("tab-labels").setAttribute("aria-selected", "false");
    });
  }
  L("label-skip").addEventListener("click", skipLabel);
  L("label-undo").addEventListener("click", undoLabel);
  document.addEventListener("keydown", onLabelKey);
});
