// msca-fast studio: the page's logic (plain JavaScript, no build step). The server does all the
// synthesis; this script keeps the layout (class ids), the chosen exemplars and the controls, and
// asks for a new output after each change (debounced, one request in flight at a time).
"use strict";

const CELL = 8; // screen pixels per layout pixel
const DEBOUNCE_MS = 120;

const state = {
  info: null, height: 0, width: 0, ids: null, active: 0, undo: [],
  exemplarA: null, exemplarB: null, requests: 0, lastLatency: null, lastGeneratorMs: null,
  settled: false, // no change waiting for its output
};
window.studio = state; // read by the browser tests

const $ = (id) => document.getElementById(id);

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = false;
}

function clearError() {
  $("error").hidden = true;
}

async function api(path, body) {
  const options = body === undefined ? {} : {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body),
  };
  const response = await fetch(path, options);
  const type = response.headers.get("Content-Type") || "";
  if (!response.ok) {
    const detail = type.includes("json") ? (await response.json()).error : await response.text();
    throw new Error(`${response.status}: ${detail}`);
  }
  return type.includes("json") ? response.json() : response.blob();
}

function readFile(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(reader.result);
    reader.onerror = () => reject(reader.error);
    reader.readAsDataURL(file);
  });
}

// ---- the layout canvas -------------------------------------------------------------------

function layoutBody() {
  return { height: state.height, width: state.width, ids: Array.from(state.ids) };
}

function setLayout(height, width, ids) {
  state.height = height;
  state.width = width;
  state.ids = Int32Array.from(ids);
  const canvas = $("canvas");
  canvas.width = width * CELL;
  canvas.height = height * CELL;
  canvas.style.width = `${canvas.width}px`;
  canvas.style.height = `${canvas.height}px`;
  draw();
}

function draw() {
  const small = document.createElement("canvas");
  small.width = state.width;
  small.height = state.height;
  const context = small.getContext("2d");
  const pixels = context.createImageData(state.width, state.height);
  const colours = state.info.classes.map((c) => [1, 3, 5].map((i) => parseInt(c.colour.slice(i, i + 2), 16)));
  state.ids.forEach((id, i) => {
    pixels.data.set([...colours[id], 255], 4 * i);
  });
  context.putImageData(pixels, 0, 0);
  const canvas = $("canvas").getContext("2d");
  canvas.imageSmoothingEnabled = false;
  canvas.drawImage(small, 0, 0, state.width * CELL, state.height * CELL);
}

function cellAt(event) {
  const box = $("canvas").getBoundingClientRect();
  const x = Math.floor(((event.clientX - box.left) / box.width) * state.width);
  const y = Math.floor(((event.clientY - box.top) / box.height) * state.height);
  return [Math.min(Math.max(y, 0), state.height - 1), Math.min(Math.max(x, 0), state.width - 1)];
}

function paintDisc(y, x) {
  const radius = Number($("brush").value) / 2;
  for (let dy = -Math.ceil(radius); dy <= Math.ceil(radius); dy++) {
    for (let dx = -Math.ceil(radius); dx <= Math.ceil(radius); dx++) {
      const yy = y + dy, xx = x + dx;
      if (dy * dy + dx * dx <= radius * radius + 0.25 && yy >= 0 && xx >= 0 && yy < state.height && xx < state.width) {
        state.ids[yy * state.width + xx] = state.active;
      }
    }
  }
}

function paintLine(from, to) {
  const steps = Math.max(Math.abs(to[0] - from[0]), Math.abs(to[1] - from[1]), 1);
  for (let s = 0; s <= steps; s++) {
    paintDisc(Math.round(from[0] + ((to[0] - from[0]) * s) / steps), Math.round(from[1] + ((to[1] - from[1]) * s) / steps));
  }
}

function floodFill(y, x) {
  const target = state.ids[y * state.width + x];
  if (target === state.active) return;
  const stack = [[y, x]];
  while (stack.length) {
    const [yy, xx] = stack.pop();
    if (yy < 0 || xx < 0 || yy >= state.height || xx >= state.width) continue;
    const i = yy * state.width + xx;
    if (state.ids[i] !== target) continue;
    state.ids[i] = state.active;
    stack.push([yy + 1, xx], [yy - 1, xx], [yy, xx + 1], [yy, xx - 1]);
  }
}

function rememberForUndo() {
  state.undo.push({ height: state.height, width: state.width, ids: Int32Array.from(state.ids) });
  if (state.undo.length > 50) state.undo.shift();
}

function setUpCanvas() {
  const canvas = $("canvas");
  let last = null;
  canvas.addEventListener("pointerdown", (event) => {
    rememberForUndo();
    const cell = cellAt(event);
    if ($("fill").checked) {
      floodFill(...cell);
      draw();
      changed();
      return;
    }
    canvas.setPointerCapture(event.pointerId);
    last = cell;
    paintDisc(...cell);
    draw();
    changed();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last === null) return;
    const cell = cellAt(event);
    paintLine(last, cell);
    last = cell;
    draw();
    changed();
  });
  const end = () => {
    if (last !== null) changed();
    last = null;
  };
  canvas.addEventListener("pointerup", end);
  canvas.addEventListener("pointercancel", end);
  $("undo").addEventListener("click", () => {
    const previous = state.undo.pop();
    if (!previous) return;
    setLayout(previous.height, previous.width, previous.ids);
    changed();
  });
}

// ---- requests ----------------------------------------------------------------------------

let timer = null, inFlight = false, pending = false, editedAt = 0;

function changed() {
  state.settled = false;
  editedAt = performance.now();
  pending = true;
  clearTimeout(timer);
  timer = setTimeout(send, DEBOUNCE_MS);
}

function synthesisBody() {
  const body = { layout: layoutBody(), exemplar: state.exemplarA, mode: $("mode").value };
  if (state.exemplarB !== null) {
    body.exemplar_b = state.exemplarB;
    body.mix = Number($("mix").value) / 100;
  }
  return body;
}

async function send() {
  if (inFlight || !pending) return;
  if (state.exemplarA === null) {
    showError("exemplar: this model has no gallery; upload a photo and its label PNG");
    return;
  }
  pending = false;
  inFlight = true;
  const askedAt = editedAt;
  try {
    const result = await api("/api/synthesize", synthesisBody());
    const output = $("output");
    await new Promise((resolve) => {
      output.onload = resolve;
      output.src = result.image;
    });
    state.requests += 1;
    state.lastLatency = Math.round(performance.now() - askedAt);
    state.lastGeneratorMs = result.milliseconds;
    output.dataset.requests = String(state.requests);
    $("latency").textContent = `stroke to image: ${state.lastLatency} ms (generator ${result.milliseconds} ms)`;
    $("download-output").href = result.image;
    clearError();
  } catch (problem) {
    showError(problem.message);
  } finally {
    inFlight = false;
    if (pending) send();
    else state.settled = true;
  }
}

// ---- exemplars, modes, attention -----------------------------------------------------------

function markGallery() {
  document.querySelectorAll("#gallery img").forEach((img) => {
    const id = Number(img.dataset.id);
    img.classList.toggle("a", state.exemplarA === id);
    img.classList.toggle("b", state.exemplarB === id);
  });
}

function chooseExemplar(id, asB) {
  const source = `/api/gallery/${id}/image.png`;
  if (asB) {
    state.exemplarB = id;
    $("exemplar-b").src = source;
  } else {
    state.exemplarA = id;
    $("exemplar-a").src = source;
  }
  markGallery();
  changed();
}

function setUpExemplars() {
  const gallery = $("gallery");
  state.info.gallery.forEach((item) => {
    const img = document.createElement("img");
    img.src = `/api/gallery/${item.id}/image.png`;
    img.alt = item.name;
    img.title = `${item.name} (click: A, shift-click: B)`;
    img.dataset.id = item.id;
    img.addEventListener("click", (event) => chooseExemplar(item.id, event.shiftKey));
    gallery.appendChild(img);
  });
  $("clear-b").addEventListener("click", () => {
    state.exemplarB = null;
    $("exemplar-b").removeAttribute("src");
    markGallery();
    changed();
  });
  const uploadPair = async () => {
    const photo = $("upload-photo").files[0], label = $("upload-photo-label").files[0];
    if (!photo || !label) return;
    state.exemplarA = { image: await readFile(photo), label: await readFile(label) };
    $("exemplar-a").src = state.exemplarA.image;
    markGallery();
    changed();
  };
  $("upload-photo").addEventListener("change", uploadPair);
  $("upload-photo-label").addEventListener("change", uploadPair);
  if (state.info.gallery.length) chooseExemplar(0, false);
}

function setUpControls() {
  const palette = $("palette");
  state.info.classes.forEach((c) => {
    const button = document.createElement("button");
    button.type = "button";
    button.textContent = c.name;
    button.style.background = c.colour;
    button.dataset.id = c.id;
    button.addEventListener("click", () => {
      state.active = c.id;
      palette.querySelectorAll("button").forEach((b) => b.classList.toggle("active", b === button));
    });
    palette.appendChild(button);
  });
  palette.querySelector("button").classList.add("active");
  Array.from($("mode").options).forEach((option) => {
    if (!state.info.modes.includes(option.value)) option.remove(); // an exported generator: style only
  });
  $("mix").addEventListener("input", () => {
    $("mix-value").textContent = (Number($("mix").value) / 100).toFixed(2);
    if (state.exemplarB !== null) changed();
  });
  $("mode").addEventListener("change", () => {
    rememberForUndo();
    const [h, w] = state.info.size;
    if ($("mode").value === "extrapolate" && state.width === w) {
      const wide = new Int32Array(h * 2 * w);
      for (let y = 0; y < h; y++) {
        for (let x = 0; x < 2 * w; x++) wide[y * 2 * w + x] = state.ids[y * w + (x < w ? x : 2 * w - 1 - x)];
      }
      setLayout(h, 2 * w, wide);
    } else if ($("mode").value !== "extrapolate" && state.width !== w) {
      const narrow = new Int32Array(h * w);
      for (let y = 0; y < h; y++) narrow.set(state.ids.subarray(y * state.width, y * state.width + w), y * w);
      setLayout(h, w, narrow);
    }
    changed();
  });
  const start = $("start-layout");
  state.info.gallery.forEach((item) => start.add(new Option(item.name, item.id)));
  start.addEventListener("change", async () => {
    rememberForUndo();
    const layout = await api(`/api/layouts/${start.value}`);
    $("mode").value = "style";
    setLayout(layout.height, layout.width, layout.ids);
    changed();
  });
  $("upload-layout").addEventListener("change", async () => {
    const file = $("upload-layout").files[0];
    if (!file) return;
    try {
      const layout = await api("/api/label", { label: await readFile(file) });
      rememberForUndo();
      $("mode").value = "style";
      setLayout(layout.height, layout.width, layout.ids);
      changed();
    } catch (problem) {
      showError(problem.message);
    }
  });
  $("download-layout").addEventListener("click", async (event) => {
    event.preventDefault();
    try {
      const blob = await api("/api/layout.png", { layout: layoutBody() });
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = "layout.png";
      link.click();
    } catch (problem) {
      showError(problem.message);
    }
  });
  $("output").addEventListener("click", async (event) => {
    if ($("mode").value === "extrapolate") {
      showError("attention: shown for the model-size canvas only (switch the mode to style)");
      return;
    }
    const box = $("output").getBoundingClientRect();
    const x = Math.min(state.width - 1, Math.floor(((event.clientX - box.left) / box.width) * state.width));
    const y = Math.min(state.height - 1, Math.floor(((event.clientY - box.top) / box.height) * state.height));
    try {
      const maps = await api("/api/attention", {
        layout: layoutBody(), exemplar: state.exemplarA, scale: Number($("scale").value), y, x,
      });
      $("spatial").src = maps.spatial;
      $("channel").src = maps.channel;
      $("region").textContent = `region ${maps.region} of ${maps.regions} at (${y}, ${x})`;
      clearError();
    } catch (problem) {
      showError(problem.message);
    }
  });
}

async function main() {
  try {
    state.info = await api("/api/info");
    const [h, w] = state.info.size;
    setUpControls();
    setUpCanvas();
    if (state.info.gallery.length) {
      const layout = await api("/api/layouts/0");
      setLayout(layout.height, layout.width, layout.ids);
    } else {
      setLayout(h, w, new Int32Array(h * w));
    }
    setUpExemplars();
    changed();
  } catch (problem) {
    showError(problem.message);
  }
}

main();
