// The web page's only script: plain JavaScript over the REST API, no build step.
"use strict";
const tilefan = (() => {
  const $ = (id) => document.getElementById(id);

  async function api(method, path, body) {
    const init = { method, headers: {} };
    if (body !== undefined) { init.body = JSON.stringify(body); init.headers["Content-Type"] = "application/json"; }
    const resp = await fetch(path, init);
    const doc = await resp.json().catch(() => null);
    if (!resp.ok) {
      const err = (doc && doc.error) || { message: `HTTP ${resp.status}` };
      const msg = err.field && !String(err.message).startsWith(err.field) ? `${err.field}: ${err.message}` : err.message;
      throw new Error(msg);
    }
    return doc;
  }

  // The file goes where POST /uploads says (a PUT here, or a form POST to S3), then the
  // server checks it and records the upload complete; only then may a job name it.
  async function upload(file) {
    const ticket = await api("POST", "/uploads", { filename: file.name });
    let init = { method: "PUT", body: file, headers: { "Content-Type": "application/octet-stream" } };
    if (ticket.method === "POST") {
      const form = new FormData();
      for (const [name, value] of Object.entries(ticket.fields || {})) form.append(name, value);
      form.append("file", file);  // last: S3 ignores fields after the file
      init = { method: "POST", body: form };
    }
    const resp = await fetch(ticket.url, init);
    if (!resp.ok) throw new Error(`upload of ${file.name} failed: HTTP ${resp.status}`);
    return (await api("POST", ticket.complete)).use_as;
  }

  const numberOrText = (text) => (/^\d+$/.test(text.trim()) ? Number(text) : text.trim());

  async function specFrom(form) {
    const f = form.elements, kind = f.kind.value;
    const spec = { kind, verify: f.verify.checked };
    if (f.tile.value.trim()) spec.tile = numberOrText(f.tile.value);
    if (kind === "atoms") {
      spec.atoms = f.atoms_file.files.length ? await upload(f.atoms_file.files[0])
                                             : { count: Number(f.count.value), seed: Number(f.seed.value) };
      // Around a molecule, its bounding box and the margin place the grid; otherwise the size does.
      if (f.around.checked) spec.around = { margin: Number(f.margin.value) };
      else spec.grid = numberOrText(f.grid.value);
      spec.spacing = Number(f.spacing.value);
      spec.softening = Number(f.softening.value);
      spec.precision = f.precision.value;
      spec.units = f.units.value;
      spec.field = f.field.checked;
    } else {
      spec.a = f.a_file.files.length ? await upload(f.a_file.files[0]) : { shape: f.shape_a.value.trim() };
      spec.b = f.b_file.files.length ? await upload(f.b_file.files[0]) : { shape: f.shape_b.value.trim() };
      spec.seed = Number(f.mseed.value);
      spec.dtype = f.dtype.value;
    }
    return spec;
  }

  function formPage() {
    const form = $("job-form");
    const showKind = () => {
      for (const el of document.querySelectorAll(".kind-only"))
        el.style.display = el.dataset.kinds.split(" ").includes(form.elements.kind.value) ? "block" : "none";
    };
    for (const radio of form.elements.kind) radio.addEventListener("change", showKind);
    showKind();
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      $("error").textContent = "";
      $("submit").disabled = true;
      try {
        const job = await api("POST", "/jobs", await specFrom(form));
        window.location.href = `/ui/jobs/${job.job_id}`;
      } catch (err) {
        $("error").textContent = err.message;
        $("submit").disabled = false;
      }
    });
  }

  // As runtime.png (gantt.py): counted attempts in their route's colour, a failed attempt
  // red and hatched, a lost one (its worker died) a dashed hatched outline, one that
  // computed without counting (a duplicate, or cancelled with its job) grey.
  const COLOURS = { lambda: "#4c72b0", spot: "#dd8452", local: "#55a868" };
  const FAILED = "#c44e52", UNCOUNTED = "#b0b0b0";
  const MARKED = { failed: "failed", lost: "lost (worker died)", duplicate: "duplicate", cancelled: "cancelled",
                   running: "running" };
  const known = (x) => x !== null && x !== undefined;

  // One bar per attempt at a tile with a start: a lost attempt ends where its tile's next
  // began, a running one at the report's latest moment (its bar grows as the job runs).
  function ganttBars(report) {
    const attempts = report.attempts || report.tiles;  // an older server's report: one per tile
    const stamps = attempts.flatMap((a) => [a.started_at, a.finished_at]).filter(known);
    const latest = stamps.length ? Math.max(...stamps) : 0;
    const bars = [];
    for (const a of attempts) {
      if (!known(a.started_at)) continue;
      let end = a.finished_at;
      if (!known(end) && a.status === "lost") {
        const later = attempts.filter((b) => b.tile_id === a.tile_id && known(b.started_at) && b.started_at > a.started_at);
        end = later.length ? Math.min(...later.map((b) => b.started_at)) : null;
      }
      if (!known(end) && a.status === "running") end = latest;
      if (known(end)) bars.push({ ...a, end });
    }
    return bars;
  }

  function barStyle(bar) {
    if (bar.status === "failed") return { fill: FAILED, hatch: "#ffffff" };
    if (bar.status === "lost") return { fill: null, hatch: FAILED, outline: FAILED };
    if (bar.status === "duplicate" || bar.status === "cancelled") return { fill: UNCOUNTED };
    return { fill: COLOURS[bar.route] || "#8172b2", alpha: bar.status === "running" ? 0.45 : 1 };
  }

  function paintBar(g, style, x, y, w, h) {
    g.save();
    g.globalAlpha = style.alpha || 1;
    if (style.fill) { g.fillStyle = style.fill; g.fillRect(x, y, w, h); }
    if (style.hatch) {
      g.beginPath(); g.rect(x, y, w, h); g.clip();
      g.strokeStyle = style.hatch; g.lineWidth = 1.5;
      g.beginPath();
      for (let d = -h; d < w; d += 6) { g.moveTo(x + d, y + h); g.lineTo(x + d + h, y); }
      g.stroke();
    }
    if (style.outline) {
      g.setLineDash([4, 3]); g.strokeStyle = style.outline; g.lineWidth = 1.5;
      g.strokeRect(x + 0.75, y + 0.75, w - 1.5, h - 1.5);
    }
    g.restore();
  }

  function ganttLegend(box, bars) {
    const keys = Object.entries(COLOURS).filter(([route]) => bars.some(
      (b) => b.route === route && (b.status === "done" || b.status === "running"))).map(([route, fill]) => [route, { fill }]);
    for (const [status, label] of Object.entries(MARKED)) {
      const first = bars.find((b) => b.status === status);  // a running bar keeps its route's colour
      if (first) keys.push([label, barStyle(first)]);
    }
    box.innerHTML = "";
    for (const [label, style] of keys) {
      const key = document.createElement("span"), swatch = document.createElement("canvas");
      key.className = "key"; key.dataset.label = label;
      swatch.width = 18; swatch.height = 12;
      paintBar(swatch.getContext("2d"), style, 0, 0, 18, 12);
      key.append(swatch, label);
      box.append(key);
    }
  }

  function drawGantt(canvas, report) {
    const bars = ganttBars(report);
    const workers = [...new Set(bars.map((b) => b.worker || "?"))].sort();
    const tiles = new Set(bars.map((b) => b.tile_id)).size;
    // What is drawn, for tests and tools: bars, tiles, failed or lost attempts.
    Object.assign(canvas.dataset, { bars: bars.length, tiles,
                                    failed: bars.filter((b) => b.status === "failed" || b.status === "lost").length });
    if (canvas.nextElementSibling && canvas.nextElementSibling.id === "gantt-legend") ganttLegend(canvas.nextElementSibling, bars);
    const rowH = 26, left = 120, top = 8;
    canvas.height = Math.max(60, top * 2 + rowH * workers.length + 20);
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!bars.length) { g.fillText("no tile has started yet", 10, 30); return; }
    const t0 = Math.min(...bars.map((b) => b.started_at));
    const span = Math.max(...bars.map((b) => b.end)) - t0 || 1;
    const scale = (canvas.width - left - 10) / span;
    g.font = "12px system-ui, sans-serif";
    workers.forEach((w, row) => {
      g.fillStyle = "#1d2430";
      g.fillText(w, 6, top + row * rowH + 17);
      for (const b of bars.filter((b) => (b.worker || "?") === w))
        paintBar(g, barStyle(b), left + (b.started_at - t0) * scale, top + row * rowH + 3,
                 Math.max(1.5, (b.end - b.started_at) * scale - 1), rowH - 6);
    });
    g.fillStyle = "#5b6675";
    const retries = bars.length - tiles;
    g.fillText(`0 – ${span.toFixed(2)} s after the first tile started` + (retries ? `; ${retries} more attempts` : ""),
               left, canvas.height - 6);
  }

  // A perceptual ramp (dark blue → green → yellow), enough to read a potential's valleys.
  const RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function ramp(x) {
    const p = Math.min(Math.max(x, 0), 1) * (RAMP.length - 1), i = Math.min(Math.floor(p), RAMP.length - 2);
    const f = p - i;
    return RAMP[i].map((c, n) => Math.round(c + f * (RAMP[i + 1][n] - c)));
  }

  function drawHeatmap(canvas, slice) {
    const nx = slice.values.length, ny = slice.values[0].length;
    const cell = Math.max(1, Math.floor(Math.min(420 / nx, 420 / ny)));
    canvas.width = nx * cell; canvas.height = ny * cell;
    const g = canvas.getContext("2d"), img = g.createImageData(canvas.width, canvas.height);
    // Clip the colour scale at the 2nd and 98th percentiles: the potential spikes near atoms.
    const sorted = slice.values.flat().sort((a, b) => a - b);
    const lo = sorted[Math.floor(0.02 * (sorted.length - 1))], hi = sorted[Math.floor(0.98 * (sorted.length - 1))];
    for (let i = 0; i < nx; i++) for (let j = 0; j < ny; j++) {
      const [r, gr, b] = ramp((slice.values[i][j] - lo) / (hi - lo || 1));
      for (let di = 0; di < cell; di++) for (let dj = 0; dj < cell; dj++) {
        const o = 4 * ((j * cell + dj) * canvas.width + i * cell + di);
        img.data[o] = r; img.data[o + 1] = gr; img.data[o + 2] = b; img.data[o + 3] = 255;
      }
    }
    g.putImageData(img, 0, 0);
    const [mi, mj] = [slice.min_index[0] / slice.step, slice.min_index[1] / slice.step];
    g.strokeStyle = "#ff2d55"; g.lineWidth = 2;
    g.beginPath(); g.arc((mi + 0.5) * cell, (mj + 0.5) * cell, Math.max(5, cell * 1.5), 0, 2 * Math.PI); g.stroke();
  }

  function facts(rows) {
    $("facts").innerHTML = "";
    for (const [k, v] of rows) {
      const tr = $("facts").insertRow();
      tr.insertCell().textContent = k;
      tr.insertCell().textContent = v;
    }
  }

  async function showResult(job) {
    const r = job.result || {}, id = job.job_id;
    $("result").hidden = false;
    const rows = [];
    if (job.kind === "atoms") {
      const units = { "e/A": "e/Å", "kcal/mol/e": "kcal/(mol·e)", "kT/e": "kT/e" }[job.spec.units || "e/A"];
      rows.push(["minimum φ", `${r.min_value.toPrecision(10)} ${units}`], ["at grid index", `(${r.min_index.join(", ")})`],
                ["at point", `(${r.min_point.map((x) => +x.toFixed(6)).join(", ")})`]);
    } else {
      rows.push(["C", `${r.shape.join("×")} ${r.dtype}`], ["checksum: sum", r.checksums.sum.toPrecision(10)],
                ["checksum: Frobenius", r.checksums.frobenius.toPrecision(10)]);
    }
    if (r.verification) rows.push(["verified", r.verification.passed ? `yes (${r.verification.method})` : "FAILED"]);
    if (job.timings && job.timings.wall_s) rows.push(["wall time", `${job.timings.wall_s.toFixed(2)} s`]);
    facts(rows);
    const links = [`<a href="/jobs/${id}/report/performance.txt">performance.txt</a>`,
                   `<a href="/jobs/${id}/report/logs.csv">logs.csv</a>`,
                   `<a href="/jobs/${id}/report/runtime.png">runtime.png</a>`];
    if (job.kind !== "atoms") links.unshift(`<a id="download" href="/jobs/${id}/result" download="C.npy">download C.npy</a>`);
    if (job.kind === "atoms" && r.field) {
      // A map viewers open (VMD, ChimeraX, PyMOL); DX is text, offered up to 128³ points.
      const maps = [`<a id="download-mrc" href="/jobs/${id}/field?format=mrc" download="${id}-phi.mrc">φ as .mrc</a>`];
      if (job.spec.grid.reduce((a, b) => a * b, 1) <= 128 ** 3)
        maps.push(`<a id="download-dx" href="/jobs/${id}/field?format=dx" download="${id}-phi.dx">.dx</a>`);
      maps.push(`<a id="download-field" href="/jobs/${id}/field" download="${id}-phi.npy">.npy</a>`);
      links.unshift(maps.join(" "));
    }
    $("files").innerHTML = links.join(" · ");
    if (job.kind === "atoms") {
      const slice = await api("GET", `/jobs/${id}/slice`);
      $("heatmap-title").textContent = `φ on the plane z index = ${slice.k}, through the minimum (circled)`;
      $("heatmap-box").hidden = false;
      drawHeatmap($("heatmap"), slice);
    }
  }

  function jobPage() {
    const id = window.location.pathname.split("/").pop();
    $("title").textContent = `Job ${id}`;
    let lastReport = 0;
    const tick = async () => {
      try {
        const job = await api("GET", `/jobs/${id}`);
        const p = job.progress, eta = p.eta_s === null || p.eta_s === undefined ? "" : `, ETA ${p.eta_s.toFixed(1)} s`;
        $("status").textContent = `${job.kind}: ${job.status}`;
        $("bar").style.width = `${p.percent}%`;
        $("counts").textContent = `${p.tiles_done}/${p.tiles_total} tiles, ${p.percent.toFixed(1)}%${eta}`;
        const ended = ["SUCCEEDED", "FAILED", "CANCELLED"].includes(job.status);
        if (ended || Date.now() - lastReport > 700) {
          lastReport = Date.now();
          drawGantt($("gantt"), await api("GET", `/jobs/${id}/report`));
        }
        if (job.status === "SUCCEEDED") return showResult(job);
        if (ended) { $("error").textContent = job.error ? job.error.message : job.status; return; }
        setTimeout(tick, 250);
      } catch (err) {
        $("error").textContent = err.message;
      }
    };
    tick();
  }

  return { formPage, jobPage, ganttBars, api };
})();
