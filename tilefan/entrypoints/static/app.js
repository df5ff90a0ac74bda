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
      spec.grid = numberOrText(f.grid.value);
      spec.atoms = f.atoms_file.files.length ? await upload(f.atoms_file.files[0])
                                             : { count: Number(f.count.value), seed: Number(f.seed.value) };
      spec.spacing = Number(f.spacing.value);
      spec.softening = Number(f.softening.value);
      spec.precision = f.precision.value;
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

  const COLOURS = { lambda: "#4c72b0", spot: "#dd8452", local: "#55a868" };

  function drawGantt(canvas, tiles) {
    const done = tiles.filter((t) => t.started_at !== null && t.finished_at !== null);
    const workers = [...new Set(done.map((t) => t.worker || "?"))].sort();
    const rowH = 26, left = 120, top = 8;
    canvas.height = Math.max(60, top * 2 + rowH * workers.length + 20);
    const g = canvas.getContext("2d");
    g.clearRect(0, 0, canvas.width, canvas.height);
    if (!done.length) { g.fillText("no tile has finished yet", 10, 30); return; }
    const t0 = Math.min(...done.map((t) => t.started_at));
    const span = Math.max(...done.map((t) => t.finished_at)) - t0 || 1;
    const scale = (canvas.width - left - 10) / span;
    g.font = "12px system-ui, sans-serif";
    workers.forEach((w, row) => {
      g.fillStyle = "#1d2430";
      g.fillText(w, 6, top + row * rowH + 17);
      for (const t of done.filter((t) => (t.worker || "?") === w)) {
        g.fillStyle = t.status === "failed" ? "#c44e52" : COLOURS[t.route] || "#8172b2";
        g.fillRect(left + (t.started_at - t0) * scale, top + row * rowH + 3,
                   Math.max(1.5, (t.finished_at - t.started_at) * scale - 1), rowH - 6);
      }
    });
    g.fillStyle = "#5b6675";
    g.fillText(`0 – ${span.toFixed(2)} s after the first tile started`, left, canvas.height - 6);
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
      rows.push(["minimum φ", r.min_value.toPrecision(10)], ["at grid index", `(${r.min_index.join(", ")})`],
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
          drawGantt($("gantt"), (await api("GET", `/jobs/${id}/report`)).tiles);
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

  async function listPage() {
    try {
      const page = await api("GET", "/jobs?limit=100");
      for (const job of page.jobs) {
        const tr = $("jobs").insertRow();
        const a = document.createElement("a");
        a.href = `/ui/jobs/${job.job_id}`; a.textContent = job.job_id;
        tr.insertCell().appendChild(a);
        tr.insertCell().textContent = job.kind;
        tr.insertCell().textContent = job.status;
        tr.insertCell().textContent = `${job.progress.tiles_done}/${job.progress.tiles_total}`;
        tr.insertCell().textContent = job.timings.wall_s ? `${job.timings.wall_s.toFixed(2)} s` : "";
      }
      if (!page.jobs.length) $("error").textContent = "no jobs yet";
    } catch (err) {
      $("error").textContent = err.message;
    }
  }

  return { formPage, jobPage, listPage };
})();
