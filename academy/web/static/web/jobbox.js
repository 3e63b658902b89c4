// The job box page: the box from GET /api/jobbox/, kept live by the event stream
// (GET /api/jobbox/stream), polling with an ETag while the stream is unavailable.
// Everything is written with textContent: nothing from the server is parsed as HTML.
(() => {
  "use strict";

  const L = JSON.parse(document.getElementById("labels").textContent);
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const list = document.getElementById("jobs");
  const empty = document.getElementById("empty");
  const connection = document.getElementById("connection");
  // A poll every 2 s while the stream is down: 1/5 of the seed's one poll per job per second
  // for 5 jobs, and a 304 most of the time.
  const POLL_INTERVAL_MS = 2000;
  // After the stream was refused (not merely dropped), try it again this often.
  const STREAM_RETRY_MS = 15000;

  const entries = new Map(); // "kind:id" -> {kind, id, job}
  const elements = new Map(); // "kind:id" -> <li>
  let order = []; // keys, newest change first
  let etag = null;
  let lastEventId = null;
  let pollTimer = null;
  let source = null;

  const keyOf = (entry) => `${entry.kind}:${entry.id}`;

  function setMode(mode) {
    connection.dataset.mode = mode;
    connection.textContent = L[mode] || mode;
  }

  function setBox(jobs) {
    entries.clear();
    order = jobs.map(keyOf);
    jobs.forEach((entry) => entries.set(keyOf(entry), entry));
    render();
  }

  function upsert(entry, moved) {
    const key = keyOf(entry);
    entries.set(key, entry);
    if (moved || !order.includes(key)) {
      order = [key, ...order.filter((k) => k !== key)];
    }
    render();
  }

  function viewOf(entry) {
    const job = entry.job || {};
    if (entry.kind === "video") {
      return {
        title: job.title, status: job.status, percent: job.encoding_progress,
        stepIndex: job.encoding_step_index, stepTotal: job.encoding_step_total,
        stepName: job.encoding_step_name, error: job.error_reason,
        playUrl: job.status === "READY" ? `/api/videos/${encodeURIComponent(entry.id)}/hls/master.m3u8` : null,
        result: null,
      };
    }
    const progress = job.progress;
    const detail = progress && typeof progress === "object" ? progress : {};
    return {
      title: (L.kind[entry.kind] || entry.kind) + (job.job_type ? ` (${job.job_type})` : ""),
      status: job.status,
      percent: typeof progress === "number" ? progress : detail.percent,
      stepIndex: detail.step_index, stepTotal: detail.step_total, stepName: detail.step_name,
      error: job.error_message, playUrl: null,
      result: job.status === "DONE" ? job.result : null,
    };
  }

  function make(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function skeleton(entry) {
    const li = make("li", "job");
    li.dataset.kind = entry.kind;
    li.dataset.id = entry.id;
    const head = make("div", "head");
    head.append(make("span", "kind", L.kind[entry.kind] || entry.kind), make("strong", "title"),
      make("span", "status"));
    const bar = make("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.append(make("div", "fill"));
    li.append(head, bar, make("div", "step"), make("div", "error"), make("div", "actions"),
      make("div", "player"), make("div", "result"));
    return li;
  }

  function update(li, entry) {
    const view = viewOf(entry);
    li.dataset.status = view.status || "";
    li.querySelector(".title").textContent = view.title || "";
    li.querySelector(".status").textContent = L.status[view.status] || view.status || "";
    const percent = Number.isFinite(view.percent) ? Math.max(0, Math.min(100, view.percent)) : 0;
    const bar = li.querySelector(".bar");
    bar.dataset.percent = String(percent);
    bar.setAttribute("aria-valuenow", String(percent));
    bar.querySelector(".fill").style.width = `${percent}%`;
    let step = "";
    if (view.stepName) {
      step = view.stepIndex && view.stepTotal
        ? `${L.step} ${view.stepIndex}/${view.stepTotal}: ${view.stepName}` : view.stepName;
    }
    li.querySelector(".step").textContent = view.status === "PROCESSING" ? step : "";
    li.querySelector(".error").textContent = view.status === "FAILED" ? (view.error || "") : "";
    const actions = li.querySelector(".actions");
    if (view.playUrl && !actions.querySelector("button.play")) {
      const play = make("button", "play", L.play);
      play.type = "button";
      play.addEventListener("click", () => startPlayer(li.querySelector(".player"), view.playUrl));
      actions.append(play);
    }
    const result = li.querySelector(".result");
    if (view.result && !result.dataset.shown) {
      result.dataset.shown = "1";
      renderResult(result, view.result);
    }
  }

  function render() {
    empty.hidden = order.length > 0;
    order.forEach((key) => {
      let li = elements.get(key);
      if (!li) {
        li = skeleton(entries.get(key));
        elements.set(key, li);
      }
      update(li, entries.get(key));
      list.append(li); // appending in order moves existing nodes; a playing video keeps playing
    });
    for (const [key, li] of elements) {
      if (!entries.has(key)) {
        li.remove();
        elements.delete(key);
      }
    }
  }

  function startPlayer(container, url) {
    if (container.querySelector("video")) return;
    const video = make("video");
    video.controls = true;
    video.muted = true; // autoplay of muted media is allowed without a gesture
    video.dataset.state = "loading";
    container.append(video);
    video.addEventListener("loadedmetadata", () => { video.dataset.state = "loaded"; });
    video.addEventListener("playing", () => { video.dataset.state = "playing"; });
    if (window.Hls && window.Hls.isSupported()) {
      const hls = new window.Hls();
      hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
        if (video.dataset.state === "loading") video.dataset.state = "manifest";
        video.play().catch(() => {});
      });
      hls.on(window.Hls.Events.ERROR, (_, data) => {
        if (data.fatal) video.dataset.state = `error:${data.details}`;
      });
      hls.loadSource(url);
      hls.attachMedia(video);
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = url; // Safari plays HLS itself
      video.play().catch(() => {});
    }
  }

  // An AI job's result as tables: a `*_url` field becomes the download link, a list of
  // records a table under its name, an object or scalars a two-column table.
  function renderResult(container, result) {
    container.append(make("h3", null, L.result));
    if (result === null || typeof result !== "object" || Array.isArray(result)) {
      container.append(make("p", null, cellText(result)));
      return;
    }
    const scalars = [];
    const links = [];
    const tables = [];
    Object.entries(result).forEach(([name, value]) => {
      if (typeof value === "string" && /url$/i.test(name)) {
        const link = make("a", "download", L.download);
        link.href = value;
        link.setAttribute("download", "");
        links.push(link);
      } else if (Array.isArray(value) && value.length && value[0] && typeof value[0] === "object") {
        const section = make("section", "result-section");
        section.dataset.name = name;
        section.append(make("h4", null, name), table(value));
        tables.push(section);
      } else if (value && typeof value === "object" && !Array.isArray(value)) {
        Object.entries(value).forEach(([key, inner]) => scalars.push([key, inner]));
      } else if (!(Array.isArray(value) && !value.length)) {
        scalars.push([name, value]);
      }
    });
    container.append(...links, ...(scalars.length ? [pairs(scalars)] : []), ...tables);
  }

  function cellText(value) {
    if (value === null || value === undefined) return "";
    if (Array.isArray(value)) return value.map(cellText).join(", ");
    if (typeof value === "object") {
      return Object.entries(value).map(([k, v]) => `${k}: ${cellText(v)}`).join(", ");
    }
    return String(value);
  }

  function table(rows) {
    const node = make("table", "result-table");
    const names = Array.isArray(rows[0]) ? rows[0].map((_, i) => String(i + 1))
      : [...new Set(rows.flatMap((row) => Object.keys(row)))];
    const head = node.createTHead().insertRow();
    names.forEach((name) => head.append(make("th", null, name)));
    const body = node.createTBody();
    rows.forEach((row) => {
      const tr = body.insertRow();
      const cells = Array.isArray(row) ? row : names.map((n) => row[n]);
      cells.forEach((cell) => tr.append(make("td", null, cellText(cell))));
    });
    return node;
  }

  function pairs(entries) {
    const node = make("table", "result-table summary");
    const body = node.createTBody();
    entries.forEach(([name, value]) => {
      const tr = body.insertRow();
      tr.append(make("th", null, name), make("td", null, cellText(value)));
    });
    return node;
  }

  async function poll() {
    const headers = { Accept: "application/json" };
    if (etag) headers["If-None-Match"] = etag;
    try {
      const response = await fetch("/api/jobbox/", { headers, credentials: "same-origin" });
      if (response.status === 200) {
        etag = response.headers.get("ETag");
        const eventId = response.headers.get("X-Jobbox-Event-Id");
        if (eventId && !source) lastEventId = eventId;
        setBox((await response.json()).jobs);
      } else if (response.status === 401 || response.status === 403) {
        window.location.assign("/login/?next=/");
      }
    } catch (error) {
      // The network blinked: the next poll tries again.
    }
  }

  function startPolling() {
    if (pollTimer) return;
    setMode("polling");
    pollTimer = window.setInterval(poll, POLL_INTERVAL_MS);
  }

  function stopPolling() {
    if (pollTimer) window.clearInterval(pollTimer);
    pollTimer = null;
  }

  function openStream() {
    if (!window.EventSource) {
      startPolling();
      return;
    }
    const query = lastEventId ? `?last_event_id=${encodeURIComponent(lastEventId)}` : "";
    source = new EventSource(`/api/jobbox/stream${query}`);
    source.addEventListener("open", () => {
      stopPolling();
      setMode("live");
    });
    ["box", "resync"].forEach((name) => source.addEventListener(name, (event) => {
      lastEventId = event.lastEventId || lastEventId;
      setBox(JSON.parse(event.data).jobs);
    }));
    ["changed", "progressed"].forEach((name) => source.addEventListener(name, (event) => {
      lastEventId = event.lastEventId || lastEventId;
      upsert(JSON.parse(event.data), name === "changed");
    }));
    source.addEventListener("error", () => {
      startPolling(); // until the stream is back
      if (source && source.readyState === EventSource.CLOSED) {
        // Refused (not a drop, which the browser resumes by itself): try again later.
        source = null;
        window.setTimeout(openStream, STREAM_RETRY_MS);
      }
    });
  }

  function messagesOf(body) {
    if (!body || typeof body !== "object") return [];
    return Object.values(body).flatMap((value) => (Array.isArray(value) ? value
      : typeof value === "object" ? messagesOf(value) : [value])).map(String);
  }

  function showMessages(form, lines, isError) {
    const box = form.querySelector(".messages");
    box.replaceChildren(...lines.map((line) => make("p", isError ? "error" : "ok", line)));
  }

  document.querySelectorAll("form[data-endpoint]").forEach((form) => {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button[type=submit]");
      button.disabled = true;
      try {
        const response = await fetch(form.dataset.endpoint, {
          method: "POST", body: new FormData(form), credentials: "same-origin",
          headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
        });
        if (response.ok) {
          showMessages(form, [L.uploaded], false);
          form.reset();
          poll();
        } else if (response.status === 413) {
          showMessages(form, [L.refused, L.too_large], true);
        } else {
          let lines = [];
          try { lines = messagesOf(await response.json()); } catch (error) { lines = []; }
          showMessages(form, [L.refused, ...(lines.length ? lines : [L.failed_upload])], true);
        }
      } catch (error) {
        showMessages(form, [L.failed_upload], true);
      } finally {
        button.disabled = false;
      }
    });
  });

  setMode("connecting");
  poll().then(openStream);
})();
