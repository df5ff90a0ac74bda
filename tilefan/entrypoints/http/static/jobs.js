// The job list (/ui/jobs): when each job was submitted, its progress, and a cancel button
// on the ones still queued or running. Uses app.js's API helper.
"use strict";
const tilefanJobs = (() => {
  const $ = (id) => document.getElementById(id);
  const api = tilefan.api;

  // When a job was submitted: the reader's local time, the exact instant in datetime.
  function submitted(seconds) {
    const t = document.createElement("time");
    if (seconds === undefined) return t;
    const at = new Date(seconds * 1000);
    t.dateTime = at.toISOString();
    t.textContent = at.toLocaleString();
    return t;
  }

  // A QUEUED or RUNNING job's cancel button: DELETE /jobs/{id}, then the row shows the answer.
  function cancelButton(job, statusCell, tr) {
    const button = document.createElement("button");
    button.className = "cancel"; button.textContent = "cancel";
    button.setAttribute("aria-label", `cancel job ${job.job_id}`);
    button.onclick = async () => {
      button.disabled = true;
      try {
        const doc = await api("DELETE", `/jobs/${job.job_id}`);
        statusCell.textContent = doc.status;
        tr.dataset.status = doc.status;
        button.remove();
      } catch (err) {
        button.disabled = false;
        $("error").textContent = err.message;
      }
    };
    return button;
  }

  async function listPage() {
    try {
      const page = await api("GET", "/jobs?limit=100");
      for (const job of page.jobs) {
        const tr = $("jobs").insertRow();
        tr.dataset.job = job.job_id; tr.dataset.status = job.status;
        const a = document.createElement("a");
        a.href = `/ui/jobs/${job.job_id}`; a.textContent = job.job_id;
        tr.insertCell().appendChild(a);
        tr.insertCell().textContent = job.kind;
        tr.insertCell().appendChild(submitted(job.timings.submitted_at));
        const statusCell = tr.insertCell();
        statusCell.textContent = job.status;
        tr.insertCell().textContent = `${job.progress.tiles_done}/${job.progress.tiles_total}`;
        tr.insertCell().textContent = job.timings.wall_s ? `${job.timings.wall_s.toFixed(2)} s` : "";
        const actions = tr.insertCell();
        if (job.status === "QUEUED" || job.status === "RUNNING") actions.appendChild(cancelButton(job, statusCell, tr));
      }
      if (!page.jobs.length) $("error").textContent = "no jobs yet";
    } catch (err) {
      $("error").textContent = err.message;
    }
  }

  return { listPage };
})();
