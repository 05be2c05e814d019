"use strict";
// The server writes its configuration into the page as a JSON data block (not code: CSP allows no inline script):
// the served models, each one's scale and limits (pixels per request, deadline, measured cost), the default alpha.
const CONFIG = JSON.parse(document.getElementById("sr-config").textContent);
const $ = (id) => document.getElementById(id);
let file = null;  // The one photo shown in the viewer (re-run when the model, version or alpha changes).

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

function modelInfo() {
  return (CONFIG.limits || {})[$("model").value] || {};
}

const mp = (pixels) => `${(pixels / 1e6).toFixed(pixels < 1e5 ? 3 : 2).replace(/\.?0+$/, "")} MP`;

function showLimits() {
  const info = modelInfo();
  const scale = info.scale || 1;
  const parts = [`${$("model").value}: x${scale}`];
  if (info.max_input_pixels) {
    const w = Math.floor(Math.sqrt(info.max_input_pixels * 4 / 3));
    parts.push(`photos up to ${mp(info.max_input_pixels)} (e.g. ${w} x ${Math.floor(w * 3 / 4)} px); larger ones ` +
               "are shrunk first when Output size allows");
  } else {
    parts.push("photos of any size");
  }
  if (info.seconds_per_megapixel) parts.push(`about ${info.seconds_per_megapixel.toPrecision(2)} s per input MP here`);
  parts.push(`at most ${info.request_timeout_seconds} s per photo`);
  $("limits").textContent = parts.join("; ") + ".";
  const chosen = $("outscale").value;
  const options = [new Option("largest that fits", "auto")];
  for (let s = scale; s >= 1; s--) options.push(new Option(s === scale ? `x${s} (the model's)` : `x${s}`, String(s)));
  $("outscale").replaceChildren(...options);
  $("outscale").value = [...$("outscale").options].some((o) => o.value === chosen) ? chosen : "auto";
}

async function describeModel() {
  showError("");
  showLimits();
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
    // Each model's own default (the metadata says it; 0 for a real-world GAN), set when a model is chosen.
    if (knob && $("alpha").dataset.model !== $("model").value) {
      const own = (meta.metadata.sr_keras || {}).default_alpha;
      $("alpha").value = own ?? CONFIG.default_alpha ?? 1;
      $("alpha").dataset.model = $("model").value;
    }
    $("alpha-value").textContent = $("alpha").value;
  } catch (e) {
    showError(`The server says: ${e.message}`);
  }
}

function readBase64(blob) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result.split(",", 2)[1]);
    reader.onerror = () => reject(new Error("could not read the file"));
    reader.readAsDataURL(blob);
  });
}

// What is sent for `f`: the file itself, or a shrunk PNG of it when the output size asks for less than the
// model's scale or the photo is over the model's pixel limit. Says why before anything is uploaded.
async function prepare(f) {
  const info = modelInfo();
  const scale = info.scale || 1;
  let bitmap;
  try {
    bitmap = await createImageBitmap(f);  // EXIF orientation applied, as the server does.
  } catch (e) {
    return {blob: f, note: ""};  // Not an image the browser reads: the server says what is wrong with it.
  }
  const pixels = bitmap.width * bitmap.height;
  const limit = info.max_input_pixels || Infinity;
  const asked = $("outscale").value;
  let shrink = asked === "auto" ? 1 : Number(asked) / scale;
  const fits = Math.min(1, Math.sqrt(limit / pixels) * 0.999);
  if (pixels * shrink * shrink > limit) {
    if (asked !== "auto") {
      const most = Math.floor(scale * fits * 10) / 10;
      const size = `${bitmap.width} x ${bitmap.height}`;
      bitmap.close();
      throw new Error(`${f.name} is ${size} = ${mp(pixels)}; ${$("model").value} takes up to ${mp(limit)} per ` +
                      `photo, so at most an output size of x${most} (choose "largest that fits" or a smaller one)`);
    }
    shrink = fits;
  }
  if (shrink >= 1) {
    bitmap.close();
    return {blob: f, note: ""};
  }
  const width = Math.max(1, Math.floor(bitmap.width * shrink));
  const height = Math.max(1, Math.floor(bitmap.height * shrink));
  const original = bitmap.width;
  bitmap.close();
  const small = await createImageBitmap(f, {resizeWidth: width, resizeHeight: height, resizeQuality: "high"});
  const canvas = document.createElement("canvas");
  canvas.width = width;
  canvas.height = height;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(small, 0, 0);
  small.close();
  const rgba = ctx.getImageData(0, 0, width, height).data;
  let opaque = true;
  for (let i = 3; i < rgba.length && opaque; i += 4) opaque = rgba[i] === 255;
  // A canvas's PNG always has an alpha channel: an opaque photo goes as a 24-bit BMP, so its result has none.
  const blob = opaque ? bmp(rgba, width, height) : await new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
  const out = (scale * width / original).toFixed(2).replace(/\.?0+$/, "");
  const note = `${f.name} is ${mp(pixels)}` + (asked === "auto" && pixels > limit
    ? `, over the ${mp(limit)} ${$("model").value} takes: ` : ": ") +
    `shrunk to ${width} x ${height} first, for an output of x${out} the original size.`;
  return {blob, note};
}

// A 24-bit BMP of RGBA pixels (alpha dropped): lossless, and read by the server like any upload.
function bmp(rgba, width, height) {
  const row = Math.ceil(width * 3 / 4) * 4;
  const out = new DataView(new ArrayBuffer(54 + row * height));
  [[0, 0x42, 1], [1, 0x4d, 1], [2, 54 + row * height, 4], [10, 54, 4], [14, 40, 4], [18, width, 4],
   [22, -height, 4], [26, 1, 2], [28, 24, 2], [34, row * height, 4]].forEach(([at, value, bytes]) => {
    if (bytes === 1) out.setUint8(at, value);
    else if (bytes === 2) out.setUint16(at, value, true);
    else out.setInt32(at, value, true);
  });
  for (let y = 0; y < height; y++) {  // Top-down rows (negative height), BGR.
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 4, o = 54 + y * row + x * 3;
      out.setUint8(o, rgba[i + 2]);
      out.setUint8(o + 1, rgba[i + 1]);
      out.setUint8(o + 2, rgba[i]);
    }
  }
  return new Blob([out.buffer], {type: "image/bmp"});
}

// One photo through the model: PNG bytes (base64) of the result, and the note on what was sent.
async function run(f) {
  const {blob, note} = await prepare(f);
  $("fit").textContent = note;
  const b64 = await readBase64(blob);
  const knob = !$("alpha-box").hidden;
  const request = knob
    ? {signature_name: "serving_default_alpha",
       instances: [{image_bytes: {b64}, alpha: parseFloat($("alpha").value)}]}
    : {instances: [{b64}]};
  const answer = await getJson(`${base()}:predict`, {method: "POST", body: JSON.stringify(request),
                                                     headers: {"Content-Type": "application/json"}});
  const prediction = answer.predictions[0];
  return {png: prediction.b64 || prediction.sr_png_bytes.b64, sent: blob};
}

const outName = (name) => `${name.replace(/\.[^./]*$/, "")}_${$("model").value}.png`;

async function show(f, png, sent, started) {
  const out = "data:image/png;base64," + png;
  $("before").src = URL.createObjectURL(sent);
  $("after").src = out;
  await Promise.all([$("before").decode(), $("after").decode()]);
  $("viewer").style.display = "block";
  $("slider").hidden = false;
  layout();
  $("download").href = out;
  $("download").download = outName(f.name);
  $("download").hidden = false;
  $("size").textContent = `${$("after").naturalWidth} x ${$("after").naturalHeight} px` +
    (started ? `, ${((performance.now() - started) / 1000).toFixed(1)} s` : "");
}

async function enhance() {
  if (!file) return;
  showError("");
  $("status").textContent = `Enhancing ${file.name}...`;
  $("download").hidden = true;
  const started = performance.now();
  try {
    const {png, sent} = await run(file);
    await show(file, png, sent, started);
    $("status").textContent = `Done: ${file.name}`;
    document.body.dataset.results = String(Number(document.body.dataset.results || 0) + 1);
  } catch (e) {
    $("status").textContent = "";
    showError(e.message.startsWith(file.name) ? e.message : `The server says: ${e.message}`);
    document.body.dataset.errors = String(Number(document.body.dataset.errors || 0) + 1);
  }
}

// Several photos (or a folder): one after another, listed as they finish, then one zip of the results.
async function enhanceBatch(files) {
  file = null;
  showError("");
  $("batch").style.display = "block";
  $("zip").hidden = true;
  $("batch-list").replaceChildren();
  document.body.dataset.batch = "running";
  const entries = [];
  const used = new Set();
  for (const [i, f] of files.entries()) {
    $("batch-status").textContent = `${i} of ${files.length} done; enhancing ${f.name}...`;
    const item = document.createElement("li");
    $("batch-list").append(item);
    try {
      const {png, sent} = await run(f);
      const base = zipName(outName(f.webkitRelativePath || f.name));
      let name = base;
      for (let n = 2; used.has(zipKey(name)); n++) name = base.replace(/\.png$/, `_${n}.png`);
      used.add(zipKey(name));
      entries.push({name, data: Uint8Array.from(atob(png), (c) => c.charCodeAt(0))});
      item.textContent = `${f.name}: done${$("fit").textContent ? " (" + $("fit").textContent + ")" : ""}`;
      await show(f, png, sent, 0);
    } catch (e) {
      item.className = "failed";
      item.textContent = `${f.name}: ${e.message}`;
    }
  }
  const failed = files.length - entries.length;
  $("batch-status").textContent = `${entries.length} of ${files.length} done` + (failed ? `, ${failed} failed` : "");
  if (entries.length) {
    $("zip").href = URL.createObjectURL(new Blob([zip(entries)], {type: "application/zip"}));
    $("zip").download = `sr_keras_${$("model").value}.zip`;
    $("zip").hidden = false;
  }
  document.body.dataset.batch = "done";
}

// A zip entry name that every unzip tool writes where it says: "/" only between parts (a backslash is a folder on
// Windows tools), no "." or ".." parts, no control, bidi or format characters (U+202E would show evil_gpj.png),
// NFC, and at most 200 bytes of UTF-8 (a longer name cannot be written by most file systems).
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff:*?"<>|]/g;
function zipName(name) {
  const parts = name.normalize("NFC").replace(/\\/g, "/").split("/")
    .map((p) => p.replace(UNSAFE, "_").trim())
    .filter((p) => p && p !== "." && p !== ".." && !/^\.+$/.test(p));
  let out = parts.join("/") || "image.png";
  const encoder = new TextEncoder();
  while (encoder.encode(out).length > 200) {  // Keep the end (the name and its extension), drop leading folders.
    const cut = out.indexOf("/");
    out = cut >= 0 ? out.slice(cut + 1) : [...out].slice(0, -5).join("") + ".png";
  }
  return out;
}
// Names that collide on case-insensitive or normalising file systems are one name.
const zipKey = (name) => name.normalize("NFKC").toLowerCase();

// A zip archive (stored: PNGs are compressed already) of [{name, data: Uint8Array}], names in UTF-8.
const CRC_TABLE = Array.from({length: 256}, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(data) {
  let c = 0xffffffff;
  for (const byte of data) c = CRC_TABLE[(c ^ byte) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function zip(entries) {
  const parts = [], central = [];
  let offset = 0;
  const now = new Date();
  const time = (now.getHours() << 11) | (now.getMinutes() << 5) | (now.getSeconds() >> 1);
  const date = ((now.getFullYear() - 1980) << 9) | ((now.getMonth() + 1) << 5) | now.getDate();
  for (const {name, data} of entries) {
    const nameBytes = new TextEncoder().encode(name);
    const crc = crc32(data);
    const header = (signature, size) => {
      const b = new DataView(new ArrayBuffer(size));
      b.setUint32(0, signature, true);
      return b;
    };
    const local = header(0x04034b50, 30);
    [[4, 20], [6, 0x0800], [8, 0], [10, time], [12, date]].forEach(([at, v]) => local.setUint16(at, v, true));
    local.setUint32(14, crc, true);
    local.setUint32(18, data.length, true);
    local.setUint32(22, data.length, true);
    local.setUint16(26, nameBytes.length, true);
    const dir = header(0x02014b50, 46);
    [[4, 20], [6, 20], [8, 0x0800], [10, 0], [12, time], [14, date]].forEach(([at, v]) => dir.setUint16(at, v, true));
    dir.setUint32(16, crc, true);
    dir.setUint32(20, data.length, true);
    dir.setUint32(24, data.length, true);
    dir.setUint16(28, nameBytes.length, true);
    dir.setUint32(42, offset, true);
    parts.push(local, nameBytes, data);
    central.push(dir, nameBytes);
    offset += 30 + nameBytes.length + data.length;
  }
  const size = central.reduce((n, p) => n + p.byteLength, 0);
  const end = new DataView(new ArrayBuffer(22));
  end.setUint32(0, 0x06054b50, true);
  end.setUint16(8, entries.length, true);
  end.setUint16(10, entries.length, true);
  end.setUint32(12, size, true);
  end.setUint32(16, offset, true);
  return new Blob([...parts, ...central, end]);
}

function layout() {
  const width = $("viewer").clientWidth;
  $("after").style.width = `${width}px`;
  const cut = width * $("slider").value / 100;
  $("after-wrap").style.clipPath = `inset(0 0 0 ${cut}px)`;
  $("divider").style.left = `${cut}px`;
}

// The loupe: the spot under the pointer at the chosen zoom of the output's own pixels, the input (enlarged
// without smoothing) on the left and the model's output on the right, so a 4x result shrunk to the window
// still shows what the model did.
function loupe(event) {
  const zoom = Number($("zoom").value);
  const canvas = $("loupe");
  const after = $("after"), before = $("before");
  if (!zoom || !after.naturalWidth) {
    canvas.style.display = "none";
    return;
  }
  const box = $("viewer").getBoundingClientRect();
  const fx = (event.clientX - box.left) / box.width, fy = (event.clientY - box.top) / after.clientHeight;
  if (fx < 0 || fx > 1 || fy < 0 || fy > 1) {
    canvas.style.display = "none";
    return;
  }
  const half = canvas.width / 2;
  const w = Math.floor(half / zoom), h = Math.floor(canvas.height / zoom);
  const x = Math.max(0, Math.min(after.naturalWidth - w, Math.round(fx * after.naturalWidth - w / 2)));
  const y = Math.max(0, Math.min(after.naturalHeight - h, Math.round(fy * after.naturalHeight - h / 2)));
  const ratio = before.naturalWidth / after.naturalWidth;
  const ctx = canvas.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  ctx.drawImage(before, x * ratio, y * ratio, w * ratio, h * ratio, 0, 0, w * zoom, h * zoom);
  ctx.drawImage(after, x, y, w, h, half, 0, w * zoom, h * zoom);
  ctx.fillStyle = "#fff";
  ctx.fillRect(half - 1, 0, 2, canvas.height);
  canvas.dataset.x = String(x);  // The output pixel at the loupe's right half's top-left corner.
  canvas.dataset.y = String(y);
  const left = event.clientX - box.left + 16, top = event.clientY - box.top + 16;
  canvas.style.left = `${Math.min(left, box.width - canvas.width - 4)}px`;
  canvas.style.top = `${Math.min(top, Math.max(0, after.clientHeight - canvas.height - 4))}px`;
  canvas.style.display = "block";
}

function choose(files) {
  const images = [...files].filter((f) => !f.type || f.type.startsWith("image/"));
  if (images.length === 1) {
    $("batch").style.display = "none";
    file = images[0];
    enhance();
  } else if (images.length > 1) {
    enhanceBatch(images);
  } else if (files.length) {
    showError("none of these files is an image");
  }
}

$("file").addEventListener("change", () => choose($("file").files));
$("folder").addEventListener("change", () => choose($("folder").files));
$("drop").addEventListener("dragover", (e) => { e.preventDefault(); $("drop").classList.add("over"); });
$("drop").addEventListener("dragleave", () => $("drop").classList.remove("over"));
$("drop").addEventListener("drop", (e) => {
  e.preventDefault();
  $("drop").classList.remove("over");
  choose(e.dataTransfer.files);
});
$("slider").addEventListener("input", layout);
window.addEventListener("resize", layout);
$("viewer").addEventListener("mousemove", loupe);
$("viewer").addEventListener("mouseleave", () => { $("loupe").style.display = "none"; });
$("alpha").addEventListener("input", () => { $("alpha-value").textContent = $("alpha").value; });
$("alpha").addEventListener("change", enhance);
$("outscale").addEventListener("change", enhance);
$("model").addEventListener("change", () => describeModel().then(enhance));
$("version").addEventListener("change", () => describeModel().then(enhance));

$("model").replaceChildren(...(CONFIG.models || []).map((m) => {
  const purpose = ((CONFIG.limits || {})[m] || {}).purpose;  // What the model is for: clean images, real photos.
  return new Option(purpose ? `${m} (${purpose})` : m, m);
}));
describeModel();
