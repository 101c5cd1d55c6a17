// device-jobs portal: live regions, confirmations, the target counter. Plain JS, no build.
"use strict";

// A [data-live] element is refreshed from its URL (an HTML fragment rendered by the server,
// escaped there) every data-live-every ms while the tab is visible, until the fragment says
// data-ended="true"; after an error the wait doubles, up to a minute.
function startLive(container) {
  const url = container.dataset.live;
  const every = parseInt(container.dataset.liveEvery || "3000", 10);
  let wait = every;
  let timer = null;
  let last = null;

  function ended() {
    const region = container.querySelector(".live-region");
    return region !== null && region.dataset.ended === "true";
  }

  function schedule() {
    clearTimeout(timer);
    if (!document.hidden && !ended()) {
      timer = setTimeout(refresh, wait);
    }
  }

  async function refresh() {
    try {
      const response = await fetch(url, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (response.redirected || !response.ok) {
        throw new Error("HTTP " + response.status);
      }
      const html = await response.text();
      if (html !== last) {
        last = html;
        container.innerHTML = html;
        wire(container);
      }
      wait = every;
      container.removeAttribute("data-live-error");
    } catch (error) {
      wait = Math.min(wait * 2, 60000);
      container.setAttribute("data-live-error", String(error));
    }
    schedule();
  }

  document.addEventListener("visibilitychange", schedule);
  schedule();
}

// Forms with data-confirm ask first, stating what will happen.
function wire(root) {
  root.querySelectorAll("form[data-confirm]").forEach((form) => {
    if (form.dataset.wired) return;
    form.dataset.wired = "1";
    form.addEventListener("submit", (event) => {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  });
}

// "N device(s) match" (or what is wrong with the target) in ``output``, from the count URL.
async function showCount(output, url, params) {
  try {
    const response = await fetch(url + "?" + params, { credentials: "same-origin" });
    const answer = await response.json();
    output.textContent = answer.error ? answer.error : answer.devices + " device(s) match";
    output.classList.toggle("field-error", Boolean(answer.error));
  } catch (error) {
    output.textContent = "Could not count the devices just now.";
  }
}

// The execute form: show the part of the target that applies, and how many devices it reaches.
function startTargetCount(output) {
  const form = output.closest("form");
  let timer = null;

  function targetType() {
    const checked = form.querySelector("input[name=target_type]:checked");
    return checked ? checked.value : "group";
  }

  function showParts() {
    form.querySelectorAll(".target-part").forEach((part) => {
      part.hidden = part.dataset.for !== targetType();
    });
  }

  async function count() {
    const params = new URLSearchParams({ target_type: targetType() });
    if (targetType() === "group") {
      const group = form.querySelector("#group_name");
      if (group && group.value) params.set("group", group.value);
      params.set("device_type", form.querySelector("#device_type").value);
      params.set("attributes", form.querySelector("#attributes").value);
    } else if (targetType() === "device") {
      const picked = Array.from(form.querySelector("#target_devices").selectedOptions).map((o) => o.value);
      params.set("target_devices", picked.join(","));
    }
    await showCount(output, output.dataset.countUrl, params);
  }

  function changed() {
    showParts();
    clearTimeout(timer);
    timer = setTimeout(count, 300);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  changed();
}

// The devices page: how many devices the filter being typed matches, debounced.
function startFilterCount(output) {
  const form = output.closest("form");
  let timer = null;

  // A group's form counts its filter (#filter) or its list of devices (#devices).
  const field = output.dataset.filterField;

  async function count() {
    if (field === "#devices") {
      const picked = form.querySelector(field).value.trim();
      const params = new URLSearchParams({ target_type: "device", target_devices: picked });
      await showCount(output, output.dataset.filterCountUrl, params);
      return;
    }
    const typeBox = form.querySelector("#device_type");
    const deviceType = typeBox ? typeBox.value.trim() : "";
    const attributes = form.querySelector(field || "#attributes").value.trim();
    const params = new URLSearchParams({ target_type: "all" });
    if (deviceType || (attributes && attributes !== "{}")) {
      params.set("target_type", "group");
      params.set("device_type", deviceType);
      params.set("attributes", attributes);
    }
    await showCount(output, output.dataset.filterCountUrl, params);
  }

  form.addEventListener("input", (event) => {
    if (event.target.id === "columns") return;
    // The server's refusal of what the field held before is no longer about what it holds.
    const stale = field && event.target.matches(field) && form.querySelector(field + "-error");
    if (stale) stale.hidden = true;
    clearTimeout(timer);
    timer = setTimeout(count, 400);
  });
  count();
}

// A search box narrows the options of a device picker to those whose name contains the text;
// chosen options stay visible so a choice is never hidden.
function startPickerSearch(input) {
  const select = document.getElementById(input.dataset.filters);
  input.addEventListener("input", () => {
    const text = input.value.trim().toLowerCase();
    Array.from(select.options).forEach((option) => {
      option.hidden = text !== "" && !option.selected && !option.text.toLowerCase().includes(text);
    });
  });
}

// The execute form's stage rows: the preset fills them (canary, then 10 %, then the rest), and
// "Add a stage" appends a blank row copied from the first.
function startStageRows(table) {
  const body = table.tBodies[0];
  const blankRow = () => {
    const row = body.rows[0].cloneNode(true);
    row.querySelectorAll("input").forEach((input) => { input.value = ""; });
    row.querySelectorAll("select").forEach((select) => { select.selectedIndex = 0; });
    return row;
  };
  const fill = (row, values) => {
    const fields = { name: "stage_name", size: "stage_size", max_failure: "stage_max_failure",
                     soak_minutes: "stage_soak_minutes", after: "stage_after" };
    Object.entries(fields).forEach(([key, name]) => {
      row.querySelector(`[name="${name}"]`).value = values[key];
    });
  };
  const preset = document.getElementById("stage-preset");
  preset.addEventListener("click", () => {
    const rows = JSON.parse(preset.dataset.preset);
    while (body.rows.length < rows.length) body.appendChild(blankRow());
    while (body.rows.length > rows.length) body.deleteRow(-1);
    rows.forEach((values, i) => fill(body.rows[i], values));
  });
  document.getElementById("add-stage").addEventListener("click", () => {
    body.appendChild(blankRow());
  });
}

// An artifact upload: sent by XMLHttpRequest so that a progress bar can follow it; the page
// the server answers with (the list, with its message) then replaces this one.
function startUpload(form) {
  const bar = form.querySelector("progress");
  const line = form.querySelector("[role=status]");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.action);
    request.responseType = "document";
    request.upload.addEventListener("progress", (progress) => {
      if (!progress.lengthComputable) return;
      bar.value = Math.round((100 * progress.loaded) / progress.total);
      line.textContent = `${bar.value} % (${progress.loaded} of ${progress.total} bytes)`;
    });
    request.addEventListener("load", () => {
      if (request.status < 400 && request.response) {
        history.replaceState(null, "", request.responseURL);
        document.body.replaceWith(document.adoptNode(request.response.body));
        start(document);
      } else {
        line.textContent = request.status === 413 ? "Upload refused: the file is too large"
          : `Upload failed: HTTP ${request.status}`;
      }
    });
    request.addEventListener("error", () => { line.textContent = "Upload failed: connection lost"; });
    bar.hidden = false;
    line.textContent = "Uploading…";
    request.send(new FormData(form));
  });
}

// The template editor: an offered artifact becomes a download-file step of the document
// (or, when the document is not JSON yet, its reference is inserted where the cursor is).
function offerArtifacts(list) {
  const editor = document.getElementById("job_document");
  list.querySelectorAll("[data-insert-artifact]").forEach((button) => {
    button.addEventListener("click", () => {
      const reference = button.dataset.insertArtifact;
      let documentValue = null;
      try { documentValue = JSON.parse(editor.value || "{}"); } catch (error) { documentValue = null; }
      if (documentValue === null || typeof documentValue !== "object" || Array.isArray(documentValue)) {
        editor.setRangeText(reference, editor.selectionStart, editor.selectionEnd, "end");
        return;
      }
      documentValue.version = documentValue.version || "1.0";
      documentValue.steps = Array.isArray(documentValue.steps) ? documentValue.steps : [];
      documentValue.steps.push({
        name: `Download ${reference.slice("artifact:".length)}`, type: "runHandler",
        input: { handler: "download-file", args: [reference, "{{DESTINATION}}"] },
      });
      editor.value = JSON.stringify(documentValue, null, 2);
      const parameters = document.getElementById("parameters");
      try {
        const declared = JSON.parse(parameters.value || "{}");
        if (!("DESTINATION" in declared)) {
          declared.DESTINATION = null;
          parameters.value = JSON.stringify(declared);
        }
      } catch (error) { /* left for the operator to fix; the server says what is wrong */ }
    });
  });
}

function start(root) {
  wire(root);
  root.querySelectorAll("form[data-upload]").forEach(startUpload);
  root.querySelectorAll("#artifact-choices").forEach(offerArtifacts);
  root.querySelectorAll("#stage-rows").forEach(startStageRows);
  root.querySelectorAll("[data-live]").forEach(startLive);
  root.querySelectorAll("[data-count-url]").forEach(startTargetCount);
  root.querySelectorAll("[data-filter-count-url]").forEach(startFilterCount);
  root.querySelectorAll("input[data-filters]").forEach(startPickerSearch);
}

document.addEventListener("DOMContentLoaded", () => start(document));
