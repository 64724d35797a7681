// The GAN studio: every control maps to one field of the HTTP API, and the page shows the
// exact request it makes (curl and bentoml.SyncHTTPClient). All URLs are relative, so the
// page works wherever the service is mounted.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const API = new URL("..", document.baseURI); // the service root, prefix included
  const DISPLAY_WIDTH = 448; // CSS pixels the grid and the walk frame are scaled to, at most

  const state = {
    models: [],
    card: null,
    points: [], // walk waypoints: {seed, label}
    strip: null, // the walk's PNG strip, decoded
    frames: 0,
    durations: [],
    timer: null,
  };

  // ---------- small helpers ----------

  function setStatus(el, text, isError) {
    el.textContent = text;
    el.classList.toggle("error", Boolean(isError));
  }

  async function errorText(response) {
    try {
      const body = await response.json();
      return `${response.status}: ${body.error || JSON.stringify(body)}`;
    } catch (_) {
      return `${response.status} ${response.statusText}`;
    }
  }

  function shellQuote(text) {
    return "'" + text.replace(/'/g, "'\\''") + "'";
  }

  // A JSON value as a Python literal (True/False/None; JSON strings are valid Python).
  function py(value) {
    if (value === null || value === undefined) return "None";
    if (value === true) return "True";
    if (value === false) return "False";
    if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
    if (Array.isArray(value)) return "[" + value.map(py).join(", ") + "]";
    return "{" + Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${py(v)}`).join(", ") + "}";
  }

  function pyDict(body, indent) {
    const pad = " ".repeat(indent);
    const lines = Object.entries(body).map(([k, v]) => `${pad}    ${JSON.stringify(k)}: ${py(v)},`);
    return "{\n" + lines.join("\n") + `\n${pad}}`;
  }

  function clientBase() {
    return API.href.replace(/\/$/, "");
  }

  function intIn(el, lo, hi, fallback) {
    const value = Number(el.value);
    if (el.value === "" || !Number.isInteger(value) || value < lo || value > hi) return fallback;
    return value;
  }

  // ---------- model and card ----------

  function fmt(value, digits) {
    if (value === null || value === undefined || value === "") return "–";
    if (typeof value === "number" && digits !== undefined) return value.toFixed(digits);
    return String(value);
  }

  function renderCard(card) {
    const m = card.metrics || {};
    const t = card.training || {};
    const rows = [
      ["Data set", card.dataset],
      ["Architecture", card.architecture],
      ["Image", `${card.image.width}×${card.image.height}×${card.image.channels}`],
      ["Latent size", card.latent_dim],
      ["Classes", card.class_names.length || "unconditional"],
      ["Epochs", t.epochs],
      ["Loss", t.loss],
      ["Parameters", card.parameters ? card.parameters.toLocaleString("en") : null],
      ["FD / floor", fmt(m.fd_ratio, 2)],
      ["FD", fmt(m.fd, 3)],
      ["Class accuracy", fmt(m.class_accuracy, 4)],
      ["Diversity", fmt(m.diversity, 3)],
      ["Runs on", card.provider],
    ];
    const dl = $("card");
    dl.replaceChildren();
    for (const [name, value] of rows) {
      const dt = document.createElement("dt");
      dt.textContent = name;
      const dd = document.createElement("dd");
      dd.textContent = fmt(value);
      dl.append(dt, dd);
    }
  }

  function classOption(value, text) {
    const option = document.createElement("option");
    option.value = value;
    option.textContent = text;
    return option;
  }

  function renderClasses(card) {
    const conditional = card.class_names.length > 0;
    $("classes").hidden = !conditional;
    const select = $("label");
    select.replaceChildren(classOption("", "Every class in turn"));
    card.class_names.forEach((name) => select.append(classOption(name, name)));
    const sliders = $("blend-sliders");
    sliders.replaceChildren();
    card.class_names.forEach((name, i) => {
      const label = document.createElement("label");
      label.htmlFor = `weight-${i}`;
      label.textContent = name;
      const input = document.createElement("input");
      input.type = "range";
      input.id = `weight-${i}`;
      input.className = "weight";
      input.min = "0";
      input.max = "100";
      input.step = "5";
      input.value = "0";
      input.dataset.index = String(i);
      const output = document.createElement("output");
      output.htmlFor = input.id;
      output.textContent = "0";
      input.addEventListener("input", () => {
        output.textContent = input.value;
        scheduleUpdate();
      });
      sliders.append(label, input, output);
    });
    $("blend").checked = false;
    sliders.hidden = true;
    select.disabled = false;
  }

  function selectModel(name) {
    const card = state.models.find((m) => m.name === name) || state.models[0];
    state.card = card;
    $("model").value = card.name;
    renderCard(card);
    renderClasses(card);
  }

  // ---------- the generate request ----------

  function weights() {
    return Array.from(document.querySelectorAll("#blend-sliders .weight")).map((el) => Number(el.value));
  }

  // The request's label: a class name, {name: weight} for a blend, or null.
  function currentLabel() {
    const card = state.card;
    if (!card || card.class_names.length === 0) return null;
    if ($("blend").checked) {
      const mixture = {};
      weights().forEach((w, i) => {
        if (w > 0) mixture[card.class_names[i]] = w;
      });
      return Object.keys(mixture).length ? mixture : null;
    }
    return $("label").value || null;
  }

  function generateBody() {
    const body = {
      model: state.card.name,
      n: intIn($("n"), 1, 64, 1),
      seed: intIn($("seed"), 0, 4294967295, 0),
    };
    const label = currentLabel();
    if (label !== null) body.label = label;
    body.truncation = Number($("truncation").value);
    body.format = $("format").value;
    return body;
  }

  // The GET URL of a body: a mixture goes as class-index:weight pairs (safe in any name).
  function imageUrl(body) {
    const params = new URLSearchParams();
    params.set("n", String(body.n));
    params.set("seed", String(body.seed));
    if (typeof body.label === "string") params.set("label", body.label);
    else if (body.label) {
      const names = state.card.class_names;
      params.set("label", Object.entries(body.label).map(([k, w]) => `${names.indexOf(k)}:${w}`).join(","));
    }
    params.set("truncation", String(body.truncation));
    params.set("format", body.format);
    return new URL(`image/${encodeURIComponent(body.model)}?${params}`, API);
  }

  function showGenerateCode(body, url) {
    $("generate-curl").textContent = `curl -s ${shellQuote(url.href)} -o grid.${body.format}`;
    $("generate-python").textContent = [
      "import bentoml",
      "",
      `with bentoml.SyncHTTPClient(${JSON.stringify(clientBase())}) as client:`,
      `    image = client.generate(${pyDict(body, 4)})`,
      `    image.save(${JSON.stringify("grid." + body.format)})`,
    ].join("\n");
  }

  function saveToHash(body) {
    const params = new URLSearchParams({ model: body.model, n: body.n, seed: body.seed });
    if ($("blend").checked) params.set("blend", weights().join(","));
    else if (body.label) params.set("label", body.label);
    params.set("truncation", body.truncation);
    params.set("format", body.format);
    history.replaceState(null, "", "#" + params);
  }

  function restoreFromHash() {
    const params = new URLSearchParams(location.hash.slice(1));
    if (params.has("model")) selectModel(params.get("model"));
    for (const key of ["n", "seed", "truncation", "format"]) {
      if (params.has(key)) $(key).value = params.get(key);
    }
    if (params.has("label")) $("label").value = params.get("label");
    if (params.has("blend")) {
      $("blend").checked = true;
      toggleBlend();
      const values = params.get("blend").split(",");
      document.querySelectorAll("#blend-sliders .weight").forEach((el, i) => {
        el.value = values[i] || "0";
        el.nextElementSibling.textContent = el.value;
      });
    }
    $("truncation-value").textContent = Number($("truncation").value).toFixed(2);
  }

  let updateTimer = null;
  function scheduleUpdate() {
    clearTimeout(updateTimer);
    updateTimer = setTimeout(updateImage, 150);
  }

  function updateImage() {
    if (!state.card) return;
    if ($("blend").checked && currentLabel() === null) {
      setStatus($("generate-status"), "Give at least one class a weight above 0.", true);
      return;
    }
    const body = generateBody();
    const url = imageUrl(body);
    showGenerateCode(body, url);
    saveToHash(body);
    const img = $("grid");
    if (img.src === url.href) return;
    setStatus($("generate-status"), "Generating…");
    img.src = url.href;
  }

  function onImageLoad() {
    const img = $("grid");
    const scale = Math.max(1, Math.floor(DISPLAY_WIDTH / img.naturalWidth));
    img.width = img.naturalWidth * scale;
    img.height = img.naturalHeight * scale;
    img.hidden = false;
    const body = generateBody();
    img.alt = `${body.n} generated image${body.n > 1 ? "s" : ""} from ${body.model}, seed ${body.seed}`;
    setStatus($("generate-status"), `${body.model}: images from seed ${body.seed} to ${body.seed + body.n - 1}.`);
  }

  async function onImageError() {
    const img = $("grid");
    if (!img.getAttribute("src")) return;
    const response = await fetch(img.src);
    setStatus($("generate-status"), response.ok ? "The image could not be shown." : await errorText(response), true);
  }

  function toggleBlend() {
    const blend = $("blend").checked;
    $("blend-sliders").hidden = !blend;
    $("label").disabled = blend;
    if (blend && weights().every((w) => w === 0)) {
      const names = state.card.class_names;
      const picked = names.indexOf($("label").value);
      const sliders = document.querySelectorAll("#blend-sliders .weight");
      const first = picked >= 0 ? picked : 0;
      sliders[first].value = "50";
      sliders[(first + 1) % names.length].value = "50";
      sliders.forEach((el) => (el.nextElementSibling.textContent = el.value));
    }
  }

  // ---------- walks ----------

  function waypointLabelSelect(point, i) {
    const select = document.createElement("select");
    select.id = `point-label-${i}`;
    select.append(classOption("", "(previous waypoint's)"));
    state.card.class_names.forEach((name) => select.append(classOption(name, name)));
    if (typeof point.label === "object" && point.label !== null) {
      select.append(classOption("__mix", "blend: " + Object.keys(point.label).join(" + ")));
      select.value = "__mix";
    } else select.value = point.label || "";
    select.addEventListener("change", () => {
      if (select.value !== "__mix") point.label = select.value || null;
      showWalkCode();
    });
    return select;
  }

  function field(labelText, control) {
    const wrap = document.createElement("div");
    wrap.className = "field";
    const label = document.createElement("label");
    label.htmlFor = control.id;
    label.textContent = labelText;
    wrap.append(label, control);
    return wrap;
  }

  function renderWaypoints() {
    const list = $("waypoints");
    list.replaceChildren();
    state.points.forEach((point, i) => {
      const li = document.createElement("li");
      const row = document.createElement("div");
      row.className = "controls";
      const seed = document.createElement("input");
      seed.type = "number";
      seed.id = `point-seed-${i}`;
      seed.min = "0";
      seed.max = "4294967295";
      seed.value = String(point.seed);
      seed.addEventListener("input", () => {
        point.seed = intIn(seed, 0, 4294967295, point.seed);
        showWalkCode();
      });
      row.append(field(`Waypoint ${i + 1} seed`, seed));
      if (state.card.class_names.length) row.append(field(`Waypoint ${i + 1} class`, waypointLabelSelect(point, i)));
      const remove = document.createElement("button");
      remove.type = "button";
      remove.textContent = "Remove";
      remove.setAttribute("aria-label", `Remove waypoint ${i + 1}`);
      remove.disabled = state.points.length <= 2;
      remove.addEventListener("click", () => {
        state.points.splice(i, 1);
        renderWaypoints();
      });
      row.append(remove);
      li.append(row);
      list.append(li);
    });
    $("add-point").disabled = state.points.length >= 16;
    showWalkCode();
  }

  function defaultWaypoints() {
    const seed = intIn($("seed"), 0, 4294967295, 0);
    const names = state.card.class_names;
    const label = currentLabel();
    state.points = [0, 1, 2].map((i) => ({
      seed: seed + i,
      label: names.length ? label || names[(names.indexOf("Sneaker") + i + names.length) % names.length] : null,
    }));
    renderWaypoints();
  }

  function walkBody(format) {
    const body = { model: state.card.name, points: state.points.map((p) => ({ seed: p.seed })) };
    state.points.forEach((p, i) => {
      if (p.label) body.points[i].label = p.label;
    });
    body.steps = intIn($("steps"), 2, 64, 12);
    body.loop = $("loop").checked;
    body.method = $("method").value;
    body.truncation = Number($("truncation").value);
    body.format = format;
    if (format !== "png") {
      body.frame_ms = intIn($("frame-ms"), 20, 2000, 80);
      body.hold_ms = intIn($("hold-ms"), 0, 5000, 0);
    }
    return body;
  }

  function showWalkCode() {
    if (!state.card) return;
    const body = walkBody("webp");
    const url = new URL("walk", API).href;
    $("walk-curl").textContent =
      `curl -s -X POST ${shellQuote(url)} -H 'content-type: application/json' \\\n` +
      `     -d ${shellQuote(JSON.stringify(body))} -o walk.webp`;
    $("walk-python").textContent = [
      "import bentoml",
      "",
      `with bentoml.SyncHTTPClient(${JSON.stringify(clientBase())}) as client:`,
      `    walk = client.walk(${pyDict(body, 4)})`,
      '    walk.save("walk.webp", save_all=True)',
    ].join("\n");
  }

  async function postWalk(format) {
    const response = await fetch(new URL("walk", API), {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(walkBody(format)),
    });
    if (!response.ok) throw new Error(await errorText(response));
    return response;
  }

  function frameDurations(count) {
    const body = walkBody("webp");
    const per = body.steps - 1;
    return Array.from({ length: count }, (_, i) => body.frame_ms + (i % per === 0 || i === count - 1 ? body.hold_ms : 0));
  }

  async function makeWalk() {
    stop();
    setStatus($("walk-status"), "Walking…");
    try {
      const response = await postWalk("png");
      const strip = await createImageBitmap(await response.blob());
      const { width, height } = state.card.image;
      state.strip = strip;
      state.frames = Math.round((strip.width - 2) / (width + 2));
      state.durations = frameDurations(state.frames);
      const scrub = $("scrub");
      scrub.max = String(state.frames - 1);
      scrub.value = "0";
      const canvas = $("frame");
      const scale = Math.max(1, Math.floor(DISPLAY_WIDTH / 2 / width));
      canvas.width = width * scale;
      canvas.height = height * scale;
      $("player").hidden = false;
      drawFrame(0);
      setStatus($("walk-status"), `${state.frames} frames through ${state.points.length} waypoints.`);
    } catch (err) {
      setStatus($("walk-status"), err.message, true);
    }
  }

  function drawFrame(i) {
    if (!state.strip) return;
    const { width, height } = state.card.image;
    const canvas = $("frame");
    const ctx = canvas.getContext("2d");
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(state.strip, 2 + i * (width + 2), 2, width, height, 0, 0, canvas.width, canvas.height);
    $("scrub-value").textContent = `${i + 1} / ${state.frames}`;
    canvas.setAttribute("aria-label", `Walk frame ${i + 1} of ${state.frames}`);
  }

  function stop() {
    clearTimeout(state.timer);
    state.timer = null;
    $("play").setAttribute("aria-pressed", "false");
    $("play").textContent = "Play";
  }

  function play() {
    if (state.timer !== null) return stop();
    $("play").setAttribute("aria-pressed", "true");
    $("play").textContent = "Pause";
    const tick = () => {
      const scrub = $("scrub");
      const next = (Number(scrub.value) + 1) % state.frames;
      scrub.value = String(next);
      drawFrame(next);
      state.timer = setTimeout(tick, state.durations[next] || 80);
    };
    state.timer = setTimeout(tick, state.durations[Number($("scrub").value)] || 80);
  }

  async function download(format) {
    setStatus($("walk-status"), `Making ${format.toUpperCase()}…`);
    try {
      const blob = await (await postWalk(format)).blob();
      const link = document.createElement("a");
      link.href = URL.createObjectURL(blob);
      link.download = `walk.${format}`;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(link.href), 10000);
      setStatus($("walk-status"), `walk.${format}: ${blob.size.toLocaleString("en")} bytes.`);
    } catch (err) {
      setStatus($("walk-status"), err.message, true);
    }
  }

  // ---------- copy buttons ----------

  async function copy(button) {
    const text = $(button.dataset.copy).textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // No clipboard API (plain http off localhost): select the text for Ctrl+C instead.
      const range = document.createRange();
      range.selectNodeContents($(button.dataset.copy));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      button.textContent = "Selected: press Ctrl+C";
      return;
    }
    const original = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = original), 1500);
  }

  // ---------- wiring ----------

  async function start() {
    let body;
    try {
      const response = await fetch(new URL("models", API));
      if (!response.ok) throw new Error(await errorText(response));
      body = await response.json();
    } catch (err) {
      setStatus($("generate-status"), `Could not list the models: ${err.message}`, true);
      return;
    }
    state.models = body.models;
    const select = $("model");
    state.models.forEach((m) => select.append(classOption(m.name, m.name)));
    selectModel(body.default);
    restoreFromHash();
    defaultWaypoints();
    updateImage();
  }

  $("model").addEventListener("change", () => {
    selectModel($("model").value);
    defaultWaypoints();
    updateImage();
  });
  for (const id of ["seed", "n", "format", "label"]) $(id).addEventListener("input", scheduleUpdate);
  $("truncation").addEventListener("input", () => {
    $("truncation-value").textContent = Number($("truncation").value).toFixed(2);
    scheduleUpdate();
    showWalkCode();
  });
  $("blend").addEventListener("change", () => {
    toggleBlend();
    updateImage();
  });
  $("dice").addEventListener("click", () => {
    $("seed").value = String(Math.floor(Math.random() * 2 ** 31));
    updateImage();
  });
  $("grid").addEventListener("load", onImageLoad);
  $("grid").addEventListener("error", onImageError);
  $("add-point").addEventListener("click", () => {
    state.points.push({ seed: intIn($("seed"), 0, 4294967295, 0), label: currentLabel() });
    renderWaypoints();
  });
  for (const id of ["steps", "loop", "method", "frame-ms", "hold-ms"]) $(id).addEventListener("input", showWalkCode);
  $("make-walk").addEventListener("click", makeWalk);
  $("scrub").addEventListener("input", () => {
    stop();
    drawFrame(Number($("scrub").value));
  });
  $("play").addEventListener("click", play);
  $("download-gif").addEventListener("click", () => download("gif"));
  $("download-webp").addEventListener("click", () => download("webp"));
  document.querySelectorAll("button.copy").forEach((b) => b.addEventListener("click", () => copy(b)));

  start();
})();
