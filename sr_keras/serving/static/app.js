"use strict";
// The server writes its configuration into the page as a JSON data block (not code: CSP allows no inline script).
const CONFIG = JSON.parse(document.getElementById("sr-config").textContent);
const $ = (id) => document.getElementById(id);
let file = null;

function showError(message) {
  $("error").textContent = message;
  $("error").style.display = message ? "block" : "none";
}

async function getJson(url, options) {
  const response = await fetch(url, options);
  let body;
  try { body = await response.json(); } catch (e) { body = {error: `HTTP ${response.status}`}; }
  if (!response.ok) throw new Error(body.error || `HTTP ${response.status}`);
  return body;
}

function base() {
  const version = $("version").value;
  return `/v1/models/${encodeURIComponent($("model").value)}` + (version ? `/versions/${version}` : "");
}

async function describeModel() {
  showError("");
  try {
    const status = await getJson(`/v1/models/${encodeURIComponent($("model").value)}`);
    const versions = status.model_version_status.filter((v) => v.state === "AVAILABLE").map((v) => v.version);
    const chosen = $("version").value;
    $("version").replaceChildren(new Option("newest", ""), ...versions.map((v) => new Option(v, v)));
    $("version").value = versions.includes(chosen) ? chosen : "";
    const meta = await getJson(`${base()}/metadata`);
    const signatures = meta.metadata.signature_def.signature_def;
    const knob = "serving_default_alpha" in signatures;
    $("alpha-box").hidden = !knob;
    if (knob && $("alpha").dataset.set !== "1") {
      $("alpha").value = CONFIG.default_alpha ?? 1;
      $("alpha").dataset.set = "1";
    }
    $("alpha-value").textContent = $("alpha").value;
  } catch (e) {
    showError(`The server says: ${e.message}`);
  }
}

function readBase64(f) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(",", 2)[1]);
    reader.onerror = () => reject(new Error("could not read the file"));
    reader.readAsDataURL(f);
  });
}

async function enhance() {
  if (!file) return;
  showError("");
  $("status").textContent = `Enhancing ${file.name}...`;
  $("download").hidden = true;
  const started = performance.now();
  try {
    const b64 = await readBase64(file);
    const knob = !$("alpha-box").hidden;
    const request = knob
      ? {signature_name: "serving_default_alpha",
         instances: [{image_bytes: {b64}, alpha: parseFloat($("alpha").value)}]}
      : {instances: [{b64}]};
    const answer = await getJson(`${base()}:predict`, {method: "POST", body: JSON.stringify(request),
                                                       headers: {"Content-Type": "application/json"}});
    const prediction = answer.predictions[0];
    const out = "data:image/png;base64," + (prediction.b64 || prediction.sr_png_bytes.b64);
    $("before").src = URL.createObjectURL(file);
    $("after").src = out;
    await $("after").decode();
    $("viewer").style.display = "block";
    $("slider").hidden = false;
    layout();
    const stem = file.name.replace(/\.[^.]*$/, "");
    $("download").href = out;
    $("download").download = `${stem}_${$("model").value}.png`;
    $("download").hidden = false;
    $("size").textContent = `${$("after").naturalWidth} x ${$("after").naturalHeight} px, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`;
    $("status").textContent = `Done: ${file.name}`;
    document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
  } catch (e) {
    $("status").textContent = "";
    showError(`The server says: ${e.message}`);
    document.body.dataset.errors = String(Number(document.body.dataset.errors || 0) + 1);
  }
}

function layout() {
  const width = $("viewer").clientWidth;
  $("after").style.width = `${width}px`;
  const cut = width * $("slider").value / 100;
  $("after-wrap").style.clipPath = `inset(0 0 0 ${cut}px)`;
  $("divider").style.left = `${cut}px`;
}

function choose(f) {
  file = f;
  enhance();
}

$("file").addEventListener("change", () => $("file").files[0] && choose($("file").files[0]));
$("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  if (e.dataTransfer.files[0]) choose(e.dataTransfer.files[0]);
});
$("slider").addEventListener("input", layout);
window.addEventListener("resize", layout);
$("alpha").addEventListener("input", () => { $("alpha-value").textContent = $("alpha").value; });
$("alpha").addEventListener("change", enhance);
$("model").addEventListener("change", () => { $("alpha").dataset.set = ""; describeModel().then(enhance); });
$("version").addEventListener("change", () => describeModel().then(enhance));

$("model").replaceChildren(...(CONFIG.models || []).map((m) => new Option(m, m)));
describeModel();
