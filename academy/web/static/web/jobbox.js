// The job box page: the box from GET /api/jobbox/, kept live by the event stream
// (GET /api/jobbox/stream), polling with an ETag while the stream is unavailable.
// Everything is written with textContent: nothing from the server is parsed as HTML.
(() => {
  "use strict";

  const L = JSON.parse(document.getElementById("labels").textContent);
  const R = L.report;
  const LANG = document.documentElement.lang || "ko";
  const csrfToken = document.querySelector("input[name=csrfmiddlewaretoken]").value;
  const list = document.getElementById("jobs");
  const empty = document.getElementById("empty");
  const connection = document.getElementById("connection");
  // A poll every 2 s while the stream is down: 1/5 of the seed's one poll per job per second
  // for 5 jobs, and a 304 most of the time.
  const POLL_INTERVAL_SECONDS = 2;
  // After the stream was refused (not merely dropped), try it again this often.
  const STREAM_RETRY_SECONDS = 15;
  // "5 minutes ago" goes stale: the cards' times are written again this often.
  const TIME_REFRESH_SECONDS = 30;
  // Rows per page of a report's tables: one screen, and the server's preview of a large
  // result (AI_RESULT_PREVIEW_ITEMS) covers the first page.
  const PAGE_ROWS = 20;
  const TERMINAL = new Set(["READY", "DONE", "FAILED", "CANCELLED"]);
  // States a person may stop, and states a person may run again (the cancel and retry API).
  const CANCELLABLE = new Set(["UPLOADED", "PENDING", "PROCESSING"]);
  const RETRYABLE = new Set(["FAILED", "CANCELLED"]);
  // An open log is read again at most this often while its job runs.
  const LOG_REFRESH_MS = 2000;
  const SVG_NS = "http://www.w3.org/2000/svg";

  // Texts the API sends (step names, failure reasons) in the page's language: each template
  // ("score for {subject} is not a number ({value})") becomes a pattern whose parts fill its
  // translation (academy.web.messages). A text no template fits is shown as sent.
  function compile(catalog) {
    return catalog.map(([template, translated]) => {
      const parts = template.split(/\{(\w+)\}/);
      const names = parts.filter((_, i) => i % 2 === 1);
      // A part never spans "; " (the joint of a bad row's reasons), unless it holds messages
      // itself: each reason of a row is then matched, and translated, on its own.
      const source = parts.map((part, i) => {
        if (i % 2 === 0) return part.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
        return NESTED.has(part) ? "(.+?)" : "((?:(?!; ).)+?)";
      }).join("");
      const literal = parts.filter((_, i) => i % 2 === 0).join("").length;
      return { pattern: new RegExp(`^${source}$`, "s"), names, translated, literal };
    // The most specific template first: "The file is larger than {limit} bytes." must not
    // take "The file is larger than the limit of 9 bytes." with "the limit of 9" as its part.
    }).sort((a, b) => b.literal - a.literal);
  }
  const NESTED = new Set(["reason", "rows"]); // parts that are messages themselves
  const STEPS = compile(L.steps);
  const REASONS = compile(L.reasons);

  function translate(text, catalog) {
    if (typeof text !== "string" || !text) return text || "";
    for (const entry of catalog) {
      const match = entry.pattern.exec(text);
      if (!match) continue;
      const values = {};
      entry.names.forEach((name, i) => {
        values[name] = NESTED.has(name) ? translate(match[i + 1], catalog) : match[i + 1];
      });
      return entry.translated.replace(/\{(\w+)\}/g, (whole, name) => (
        name in values ? values[name] : whole));
    }
    if (text.includes("; ")) {
      return text.split("; ").map((part) => translate(part, catalog)).join("; ");
    }
    return text;
  }

  const entries = new Map(); // "kind:id" -> {kind, id, version, job}
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

  // The entry to show: the one already held when it is newer (a job's version never goes
  // back on this page, whichever server process answered).
  function newest(entry) {
    const held = entries.get(keyOf(entry));
    return held && (held.version || 0) > (entry.version || 0) ? held : entry;
  }

  function setBox(jobs) {
    const shown = jobs.map(newest);
    entries.clear();
    order = shown.map(keyOf);
    shown.forEach((entry) => entries.set(keyOf(entry), entry));
    render();
  }

  // What this page holds, sent with a box poll: the server answers no job older than that.
  function versionsHeld() {
    return [...entries.values()].filter((entry) => Number.isInteger(entry.version))
      .map((entry) => `${entry.kind}:${entry.id}=${entry.version}`).join(",");
  }

  function upsert(entry, moved) {
    const key = keyOf(entry);
    entry = newest(entry);
    entries.set(key, entry);
    if (moved || !order.includes(key)) {
      order = [key, ...order.filter((k) => k !== key)];
    }
    render();
  }

  function drop(entry) {
    const key = keyOf(entry);
    entries.delete(key);
    order = order.filter((k) => k !== key);
    render();
  }

  function viewOf(entry) {
    const job = entry.job || {};
    const control = {
      apiUrl: entry.kind === "video" ? `/api/videos/${encodeURIComponent(entry.id)}/`
        : `/api/ai/jobs/${encodeURIComponent(entry.id)}/`,
      eta: Number.isFinite(job.eta_seconds) ? job.eta_seconds : null,
      attempt: Number.isFinite(job.attempt) ? job.attempt : 1,
    };
    if (entry.kind === "video") {
      return {
        ...control,
        title: job.title, status: job.status, percent: job.encoding_progress,
        stepIndex: job.encoding_step_index, stepTotal: job.encoding_step_total,
        stepName: job.encoding_step_name, error: job.error_reason,
        // Only a video with a rendition has something to play.
        playUrl: job.status === "READY" && job.hls_path
          ? `/api/videos/${encodeURIComponent(entry.id)}/hls/master.m3u8` : null,
        started: null, changed: job.updated_at, result: null, reportUrl: null,
      };
    }
    const progress = job.progress;
    const detail = progress && typeof progress === "object" ? progress : {};
    const result = job.status === "DONE" ? job.result : null;
    return {
      ...control,
      title: job.file_name || L.kind[entry.kind] || entry.kind,
      status: job.status,
      percent: typeof progress === "number" ? progress : detail.percent,
      stepIndex: detail.step_index, stepTotal: detail.step_total, stepName: detail.step_name,
      error: job.error_message, playUrl: null,
      started: job.created_at, changed: job.updated_at, result,
      reportUrl: result && typeof result.report_url === "string" ? result.report_url : null,
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
      make("span", "percent"), make("span", "status"));
    const bar = make("div", "bar");
    bar.setAttribute("role", "progressbar");
    bar.setAttribute("aria-valuemin", "0");
    bar.setAttribute("aria-valuemax", "100");
    bar.append(make("div", "fill"));
    li.append(head, bar, make("div", "times"), make("div", "step"), make("div", "error"),
      make("div", "actions"), make("pre", "log"), make("div", "player"), make("div", "result"));
    li.querySelector(".log").hidden = true;
    return li;
  }

  // What the bar and the number say: a finished job is full (green, or red if it failed),
  // a waiting one empty, a running one at its progress.
  function shownPercent(view) {
    if (TERMINAL.has(view.status)) return 100;
    if (view.status !== "PROCESSING") return 0;
    return Number.isFinite(view.percent) ? Math.max(0, Math.min(100, view.percent)) : 0;
  }

  function update(li, entry) {
    const view = viewOf(entry);
    li.dataset.status = view.status || "";
    li.querySelector(".title").textContent = view.title || "";
    // A job without a name of its own is titled by its kind: the label would say it twice.
    li.querySelector(".kind").hidden = view.title === (L.kind[entry.kind] || entry.kind);
    li.querySelector(".status").textContent = L.status[view.status] || view.status || "";
    const percent = shownPercent(view);
    li.querySelector(".percent").textContent = RETRYABLE.has(view.status) ? ""
      : `${Math.floor(percent)}%`;
    const bar = li.querySelector(".bar");
    bar.dataset.percent = String(percent);
    bar.setAttribute("aria-valuenow", String(percent));
    bar.querySelector(".fill").style.width = `${percent}%`;
    writeTimes(li.querySelector(".times"), view);
    let step = "";
    if (view.stepName) {
      const name = translate(view.stepName, STEPS);
      step = view.stepIndex && view.stepTotal
        ? `${L.step} ${view.stepIndex}/${view.stepTotal}: ${name}` : name;
    }
    if (view.status === "PROCESSING" && view.eta !== null) {
      step = [step, L.eta.replace("{time}", formatDuration(view.eta))].filter(Boolean)
        .join(" · ");
    }
    if (view.attempt > 1) step = [step, `${L.attempt} ${view.attempt}`].filter(Boolean)
      .join(" · ");
    li.querySelector(".step").textContent = TERMINAL.has(view.status) && view.attempt < 2
      ? "" : step;
    li.querySelector(".error").textContent = view.status === "FAILED"
      ? translate(view.error || "", REASONS) : "";
    updateActions(li, view);
    updateControls(li, view);
    const result = li.querySelector(".result");
    if (view.result && !result.dataset.shown) {
      result.dataset.shown = "1";
      renderResult(result, view.result);
    }
  }

  function updateActions(li, view) {
    const actions = li.querySelector(".actions");
    if (view.playUrl && !actions.querySelector("button.play")) {
      const play = make("button", "play", L.play);
      play.type = "button";
      play.addEventListener("click", () => startPlayer(li.querySelector(".player"), view.playUrl));
      actions.append(play);
    }
    if (view.reportUrl && !actions.querySelector("a.download")) {
      const link = make("a", "download button", L.download);
      link.href = view.reportUrl;
      link.setAttribute("download", "");
      actions.append(link);
    }
  }

  // "about 3 min left": whole minutes from a minute on, seconds below (the page's language).
  const minutes = new Intl.NumberFormat(LANG, { style: "unit", unit: "minute" });
  const seconds = new Intl.NumberFormat(LANG, { style: "unit", unit: "second" });
  function formatDuration(total) {
    return total >= 60 ? minutes.format(Math.round(total / 60)) : seconds.format(total);
  }

  // Cancel while it may still be stopped, Retry once it failed or was cancelled, and the
  // job's own log behind a toggle; drawn again only when the job's state changes.
  function updateControls(li, view) {
    const actions = li.querySelector(".actions");
    if (actions.dataset.controlsFor !== view.status) {
      actions.dataset.controlsFor = view.status || "";
      actions.querySelectorAll("button.control").forEach((node) => node.remove());
      if (CANCELLABLE.has(view.status)) actions.append(controlButton(li, view, "cancel"));
      if (RETRYABLE.has(view.status)) actions.append(controlButton(li, view, "retry"));
      const toggle = make("button", "control secondary log-toggle", L.log);
      toggle.type = "button";
      toggle.setAttribute("aria-expanded", String(!li.querySelector(".log").hidden));
      toggle.addEventListener("click", () => toggleLog(li, view, toggle));
      actions.append(toggle);
    }
    const log = li.querySelector(".log");
    if (!log.hidden && Date.now() - Number(log.dataset.readAt || 0) > LOG_REFRESH_MS) {
      readLog(log, view.apiUrl);
    }
  }

  function controlButton(li, view, action) {
    const button = make("button", `control ${action}${action === "cancel" ? " secondary" : ""}`,
      L[action]);
    button.type = "button";
    button.addEventListener("click", async () => {
      button.disabled = true;
      const response = await fetch(`${view.apiUrl}${action}/`, {
        method: "POST", credentials: "same-origin",
        headers: { "X-CSRFToken": csrfToken, Accept: "application/json" },
      }).catch(() => null);
      const body = response ? await response.json().catch(() => ({})) : {};
      if (response && response.status === 202) {
        upsert({ kind: li.dataset.kind, id: li.dataset.id, job: body }, true);
        return;
      }
      button.disabled = false;
      li.querySelector(".error").textContent = body.detail || L.failed_action;
    });
    return button;
  }

  function toggleLog(li, view, toggle) {
    const log = li.querySelector(".log");
    log.hidden = !log.hidden;
    toggle.setAttribute("aria-expanded", String(!log.hidden));
    if (!log.hidden) readLog(log, view.apiUrl);
  }

  async function readLog(log, apiUrl) {
    log.dataset.readAt = String(Date.now());
    const response = await fetch(`${apiUrl}log/`, {
      credentials: "same-origin", headers: { Accept: "application/json" },
    }).catch(() => null);
    const body = response && response.ok ? await response.json().catch(() => null) : null;
    if (body && Array.isArray(body.lines)) {
      log.textContent = body.lines.length ? body.lines.join("\n") : L.log_empty;
    }
  }

  const clock = new Intl.DateTimeFormat(LANG, { hour: "2-digit", minute: "2-digit" });
  const calendar = new Intl.DateTimeFormat(LANG, { dateStyle: "medium", timeStyle: "short" });
  const relative = new Intl.RelativeTimeFormat(LANG, { numeric: "auto" });
  const UNITS = [["day", 86400], ["hour", 3600], ["minute", 60], ["second", 1]];

  function timeNode(label, iso) {
    const when = new Date(iso);
    if (Number.isNaN(when.getTime())) return null;
    const node = make("span", "time");
    const seconds = (when.getTime() - Date.now()) / 1000;
    const [unit, size] = UNITS.find(([, s]) => Math.abs(seconds) >= s) || UNITS[3];
    const sameDay = when.toDateString() === new Date().toDateString();
    const stamp = make("time", null, sameDay ? clock.format(when) : calendar.format(when));
    stamp.dateTime = when.toISOString();
    stamp.title = calendar.format(when);
    node.append(`${label} `, stamp, ` (${relative.format(Math.round(seconds / size), unit)})`);
    return node;
  }

  // Started (when it was sent) and finished (its last change, once it ended); a video, whose
  // representation has no start time, shows when it last changed while it runs.
  function writeTimes(container, view) {
    const parts = [];
    if (view.started) parts.push(timeNode(L.times.started, view.started));
    if (TERMINAL.has(view.status) && view.changed) {
      parts.push(timeNode(L.times.finished, view.changed));
    } else if (!view.started && view.changed) {
      parts.push(timeNode(L.times.updated, view.changed));
    }
    container.replaceChildren(...parts.filter(Boolean).flatMap((node, i) => (
      i ? [make("span", "sep", " · "), node] : [node])));
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

  function renderResult(container, result) {
    const isReport = result && Array.isArray(result.subjects) && Array.isArray(result.students)
      && Array.isArray(result.subject_stats);
    if (isReport) renderReport(container, result);
    else renderGenericResult(container, result);
  }

  // A grade report as a teacher reads it: the counts, a chart of each subject's scores, the
  // subjects' statistics, then the students (the student first, the subjects in the sheet's
  // order, total, average, rank) and the rows left out, page by page.
  function renderReport(container, result) {
    const section = make("section", "report");
    const summary = result.summary || {};
    const facts = [[R.sheet, result.sheet], [R.rows, summary.rows],
      [R.valid_rows, summary.valid_rows], [R.bad_rows, summary.bad_rows]];
    const line = make("p", "report-summary");
    facts.filter(([, value]) => value !== undefined && value !== null).forEach(([name, value]) => {
      const fact = make("span", "fact");
      fact.append(make("span", "name", name), " ", make("strong", null, number(value)));
      line.append(fact);
    });
    section.append(make("h3", null, L.result), line);
    if (result.subject_stats.length) section.append(chartOf(result.subject_stats));
    section.append(make("h4", null, R.subjects), statsTable(result.subject_stats));
    const subjects = result.subjects;
    section.append(make("h4", null, R.students), pagedTable(
      "students", pagedSource(result, "students"),
      [R.student, ...subjects, R.total, R.average, R.rank],
      (s) => [s.student, ...subjects.map((name) => (s.scores || {})[name]), s.total,
        new Decimal(s.average), s.rank],
    ));
    const bad = pagedSource(result, "bad_rows");
    if (bad.count) {
      const details = make("details", "bad-rows");
      details.append(make("summary", null, `${R.bad_rows} (${number(bad.count)})`),
        pagedTable("bad_rows", bad, [R.row, R.reason],
          (b) => [b.row, translate(b.reason, REASONS)]));
      section.append(details);
    }
    container.append(section);
  }

  function number(value) {
    if (value instanceof Decimal) return value.format();
    return typeof value === "number"
      ? value.toLocaleString(LANG, { maximumFractionDigits: 2 }) : cellText(value);
  }

  // A column of averages reads alike row after row: always two decimals ("84.00", "83.75"),
  // as the report's workbook writes them. Counts, scores and ranks stay whole numbers.
  const TWO_DECIMALS = new Intl.NumberFormat(LANG, {
    minimumFractionDigits: 2, maximumFractionDigits: 2 });
  function Decimal(value) { this.value = value; }
  Decimal.prototype.format = function format() {
    return typeof this.value === "number" ? TWO_DECIMALS.format(this.value)
      : cellText(this.value);
  };
  const DECIMAL_STATS = new Set(["mean", "median", "stdev"]);

  function statsTable(stats) {
    const keys = ["count", "mean", "median", "min", "max", "stdev"];
    const node = make("table", "result-table subject-stats");
    const head = node.createTHead().insertRow();
    [R.subject, ...keys.map((key) => R[key])].forEach((name) => head.append(make("th", null, name)));
    const body = node.createTBody();
    stats.forEach((s) => {
      const tr = body.insertRow();
      tr.append(make("th", null, s.subject));
      keys.forEach((key) => tr.append(make("td", "num", number(
        DECIMAL_STATS.has(key) ? new Decimal(s[key]) : s[key]))));
    });
    return node;
  }

  // A list of the result, whole in the poll, or (a large result) its first items in the poll
  // and every page from its endpoint (`pages[name].url`, GET /api/ai/jobs/<id>/result/<name>/).
  function pagedSource(result, name) {
    const inline = Array.isArray(result[name]) ? result[name] : [];
    const remote = result.pages && result.pages[name];
    const count = remote ? remote.count : inline.length;
    async function page(n) {
      const start = (n - 1) * PAGE_ROWS;
      if (!remote || start + PAGE_ROWS <= inline.length) return inline.slice(start, start + PAGE_ROWS);
      const response = await fetch(`${remote.url}?page=${n}&page_size=${PAGE_ROWS}`, {
        credentials: "same-origin", headers: { Accept: "application/json" } });
      if (!response.ok) throw new Error(`page ${n}: ${response.status}`);
      return (await response.json()).items;
    }
    return { count, page };
  }

  function pagedTable(name, source, columns, cellsOf) {
    const box = make("div", "paged");
    box.dataset.section = name;
    const node = make("table", `result-table ${name}`);
    const head = node.createTHead().insertRow();
    columns.forEach((column) => head.append(make("th", null, column)));
    const body = node.createTBody();
    const pages = Math.max(1, Math.ceil(source.count / PAGE_ROWS));
    const pager = make("nav", "pager");
    const previous = make("button", "secondary", R.previous);
    const next = make("button", "secondary", R.next);
    const where = make("span", "where");
    previous.type = next.type = "button";
    pager.append(previous, where, next);
    pager.hidden = pages < 2;
    let current = 1;

    async function show(n) {
      previous.disabled = next.disabled = true;
      where.textContent = R.loading;
      try {
        const items = await source.page(n);
        body.replaceChildren(...items.map((item) => {
          const tr = document.createElement("tr");
          cellsOf(item).forEach((cell, i) => tr.append(make(i ? "td" : "th",
            typeof cell === "number" || cell instanceof Decimal ? "num" : null,
            number(cell))));
          return tr;
        }));
        current = n;
      } catch (error) {
        // The page could not be read (the network blinked): the buttons try again.
      }
      where.textContent = `${R.page} ${number(current)} / ${number(pages)}`;
      previous.disabled = current <= 1;
      next.disabled = current >= pages;
    }
    previous.addEventListener("click", () => show(current - 1));
    next.addEventListener("click", () => show(current + 1));
    box.append(node, pager);
    show(1);
    return box;
  }

  function svg(tag, attributes, text) {
    const node = document.createElementNS(SVG_NS, tag);
    Object.entries(attributes || {}).forEach(([key, value]) => node.setAttribute(key, String(value)));
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  // Each subject's scores on one 0-100 scale: a bar to the mean, a box of mean ± one standard
  // deviation, a line from the lowest to the highest score. Plain SVG, no library.
  function chartOf(stats) {
    const slot = 72; const left = 36; const top = 18; const bottom = 44;
    const width = left + slot * stats.length + 8;
    const height = 240;
    const plot = height - top - bottom;
    const y = (value) => top + plot * (1 - Math.max(0, Math.min(100, Number(value) || 0)) / 100);
    const chart = svg("svg", { viewBox: `0 0 ${width} ${height}`, width, height, role: "img",
      "aria-label": R.chart, class: "chart" });
    chart.append(svg("title", {}, R.chart));
    [0, 25, 50, 75, 100].forEach((tick) => {
      chart.append(svg("line", { x1: left, x2: width - 4, y1: y(tick), y2: y(tick), class: "grid" }),
        svg("text", { x: left - 6, y: y(tick) + 4, class: "tick" }, tick));
    });
    stats.forEach((s, i) => {
      const cx = left + slot * i + slot / 2;
      const group = svg("g", { class: "subject", "data-subject": s.subject });
      group.append(svg("title", {}, `${s.subject}: ${R.mean} ${number(s.mean)}, ${R.stdev} `
        + `${number(s.stdev)}, ${R.min} ${number(s.min)}, ${R.max} ${number(s.max)}`));
      group.append(svg("rect", { x: cx - 14, width: 28, y: y(s.mean), height: y(0) - y(s.mean),
        class: "mean" }));
      const sd = Number(s.stdev) || 0;
      group.append(svg("rect", { x: cx - 20, width: 40, y: y(s.mean + sd),
        height: Math.max(1, y(s.mean - sd) - y(s.mean + sd)), class: "spread" }));
      group.append(svg("line", { x1: cx, x2: cx, y1: y(s.max), y2: y(s.min), class: "range" }));
      [s.min, s.max].forEach((v) => group.append(svg("line", { x1: cx - 6, x2: cx + 6, y1: y(v),
        y2: y(v), class: "range" })));
      group.append(svg("text", { x: cx, y: y(s.max) - 5, class: "value" }, number(s.mean)));
      const label = String(s.subject);
      group.append(svg("text", { x: cx, y: height - bottom + 18, class: "label" },
        label.length > 9 ? `${label.slice(0, 8)}…` : label));
      chart.append(group);
    });
    const figure = make("figure", "chart-box");
    const scroller = make("div", "chart-scroll");
    scroller.append(chart);
    figure.append(make("figcaption", "chart-title", R.chart), scroller,
      make("p", "chart-legend", R.chart_legend));
    return figure;
  }

  // Any other job type's result as tables: a list of records a table under its name, an
  // object or scalars a two-column table (links and page links are the card's own).
  function renderGenericResult(container, result) {
    container.append(make("h3", null, L.result));
    if (result === null || typeof result !== "object" || Array.isArray(result)) {
      container.append(make("p", null, cellText(result)));
      return;
    }
    const scalars = [];
    const tables = [];
    Object.entries(result).forEach(([name, value]) => {
      if ((typeof value === "string" && /url$/i.test(name)) || name === "pages") return;
      if (Array.isArray(value) && value.length && value[0] && typeof value[0] === "object") {
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
    container.append(...(scalars.length ? [pairs(scalars)] : []), ...tables);
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
    const held = versionsHeld();
    if (held) headers["X-Jobbox-Versions"] = held;
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
    pollTimer = window.setInterval(poll, POLL_INTERVAL_SECONDS * 1000);
  }

  function stopPolling() {
    if (pollTimer) window.clearInterval(pollTimer);
    pollTimer = null;
  }

  // An event from this tab's stream or shared by the leader tab: the same for both.
  function applyEvent(message) {
    lastEventId = message.lastEventId || lastEventId;
    const data = JSON.parse(message.data);
    if (message.name === "box" || message.name === "resync") {
      setBox(data.jobs);
      return;
    }
    if (message.name === "deleted") {
      drop(data);
      return;
    }
    const before = entries.get(keyOf(data));
    upsert(data, message.name === "changed");
    if (message.name === "changed") tellIfEnded(before, data);
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
      tabs.shareMode("live");
    });
    ["box", "resync", "changed", "progressed", "deleted"].forEach((name) => source.addEventListener(
      name, (event) => {
        const message = { name, data: event.data, lastEventId: event.lastEventId };
        applyEvent(message);
        tabs.shareEvent(message);
      }));
    source.addEventListener("error", () => {
      startPolling(); // until the stream is back
      tabs.shareMode("polling");
      if (source && source.readyState === EventSource.CLOSED) {
        // Refused (not a drop, which the browser resumes by itself): try again later.
        source = null;
        window.setTimeout(openStream, STREAM_RETRY_SECONDS * 1000);
      }
    });
  }

  // The leader's connection, mirrored by the other tabs: they poll only while it cannot stream.
  function followMode(mode) {
    if (mode === "live") {
      stopPolling();
      setMode("live");
    } else {
      startPolling();
    }
  }

  // A job that has just ended, told by a system notification when no tab of the page is seen
  // (the leader tells; the others would repeat it).
  function tellIfEnded(before, entry) {
    const status = entry.job && entry.job.status;
    if (!TERMINAL.has(status) || (before && before.job && before.job.status === status)) return;
    if (!tabs.isLeader() || !tabs.allHidden()) return;
    const view = viewOf(entry);
    const key = keyOf(entry);
    notifications.show(key, `${L.status[status] || status}: ${view.title || ""}`,
      L.notify.body, () => {
        const li = elements.get(key);
        if (li) {
          li.scrollIntoView({ block: "center" });
          li.classList.add("focused");
        }
      });
  }

  function offerNotifications() {
    if (!notifications.supported || Notification.permission !== "default") return;
    const button = make("button", "notify", L.notify.enable);
    button.type = "button";
    button.addEventListener("click", () => {
      notifications.askPermission().finally(() => button.remove());
    });
    connection.after(button);
  }

  function messagesOf(body) {
    if (!body || typeof body !== "object") return [];
    return Object.entries(body).filter(([key]) => key !== "code").flatMap(([, value]) => (
      Array.isArray(value) ? value : typeof value === "object" ? messagesOf(value) : [value]))
      .map(String);
  }

  // A refusal in the page's language: by its code when it has one, else its message
  // translated; never the code itself.
  function refusalLines(body) {
    if (body && typeof body.code === "string" && L.refusals[body.code]) return [L.refusals[body.code]];
    return messagesOf(body).map((line) => translate(line, REASONS));
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
          try { lines = refusalLines(await response.json()); } catch (error) { lines = []; }
          showMessages(form, [L.refused, ...(lines.length ? lines : [L.failed_upload])], true);
        }
      } catch (error) {
        showMessages(form, [L.failed_upload], true);
      } finally {
        button.disabled = false;
      }
    });
  });

  const tabs = window.JobboxTabs.join(document.getElementById("who").textContent, {
    lead: openStream, event: applyEvent, mode: followMode,
  });
  window.JobboxTabs.isLeader = tabs.isLeader; // for a person (or a test) looking in
  const notifications = window.JobboxTabs.notifier({ lang: LANG });
  setMode("connecting");
  offerNotifications();
  poll().then(() => tabs.start());
  window.setInterval(render, TIME_REFRESH_SECONDS * 1000);
})();
