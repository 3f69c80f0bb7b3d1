"use strict";
// devmig fleet web view: four hash-routed pages (#hosts, #map, #explain, #what-if) over the
// fleet's JSON API. No framework; the DOM is built with createElement/textContent only, so no
// text from the API is ever parsed as HTML. Each page sets document.body.dataset.ready (and
// readyMs) once it has rendered, which the browser test and the load bench wait for.
(() => {
  const TOKEN_KEY = "devmig.token";
  const PAGE_SIZE = 100;
  const DEFAULT_MODELS = ["i915", "nvme", "qat", "mtty"];
  const SOURCE_KINDS = new Set(["mdev", "sriov_vf"]);
  const PAGES = {
    hosts: { title: "Hosts", enter: enterHosts },
    map: { title: "Compatibility map", enter: enterMap },
    explain: { title: "Placement explainer", enter: enterExplain },
    "what-if": { title: "What-if", enter: enterWhatIf },
  };

  const state = {
    page: null, // the page shown: a key of PAGES, or "login"
    navStart: 0, // performance.now() of the navigation being served (0: the document's load)
    lastHref: "", // the URL the router last served (popstate and hashchange both report one)
    epoch: 0, // bumped when the token is forgotten: answers of older requests are dropped
    hosts: null, // the last GET /api/v1/hosts host list
    hostsLoading: null,
    hostsView: { filter: "", page: 0, rows: [] },
    compat: null, // the last GET /api/v1/compatibility answer
    compatLoading: null,
    seq: { explain: 0, whatif: 0, devices: 0 },
  };

  // ---------------------------------------------------------------- small helpers

  const $ = (id) => document.getElementById(id);

  /** An element with attributes (text, className, or any attribute) and children (nodes or strings). */
  function el(tag, attrs = {}, children = []) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs)) {
      if (v === undefined || v === null) continue;
      if (k === "text") node.textContent = String(v);
      else if (k === "className") node.className = v;
      else node.setAttribute(k, String(v));
    }
    for (const c of children) node.append(c); // strings become text nodes
    return node;
  }

  const fmt = (n) => Number(n || 0).toLocaleString("en-US");
  /** "1 host", "2 hosts", "10,000 hosts". */
  const plural = (n, one, many = `${one}s`) => `${fmt(n)} ${Number(n) === 1 ? one : many}`;
  const elapsed = (t0) => `${fmt(Math.round(performance.now() - t0))} ms`;
  const asArray = (v) => (Array.isArray(v) ? v : []);

  /** "12 s ago", "3 min ago", "2 h ago", "4 d ago". */
  function relativeTime(ms, now) {
    const s = Math.max(0, Math.round((now - ms) / 1000));
    if (s < 60) return `${s} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 172800) return `${Math.floor(s / 3600)} h ago`;
    return `${fmt(Math.floor(s / 86400))} d ago`;
  }

  /**
   * A version string in at most two short lines for a matrix column header, without the model
   * prefix ("i915-v1.3.0-8086-591d-…-GVTg_V5_8-4" -> "v1.3.0-8…", "…V5_8-4"); the full one is
   * in the header's title and in visually hidden text.
   */
  function shortVersion(model, version) {
    let s = String(version || "");
    if (model && s.startsWith(`${model}-`) && s.length > model.length + 1) s = s.slice(model.length + 1);
    if (s.length <= 9) return [s];
    if (s.length <= 16) return [s.slice(0, Math.ceil(s.length / 2)), s.slice(Math.ceil(s.length / 2))];
    return [`${s.slice(0, 8)}…`, `…${s.slice(-8)}`];
  }

  /** "a=1&b=2" (values encoded with encodeURIComponent) into an object; bad escapes kept raw. */
  function parseParams(query) {
    const out = {};
    for (const part of query.split("&")) {
      if (!part) continue;
      const i = part.indexOf("=");
      const [k, v] = i < 0 ? [part, ""] : [part.slice(0, i), part.slice(i + 1)];
      try {
        out[decodeURIComponent(k)] = decodeURIComponent(v);
      } catch {
        out[k] = v;
      }
    }
    return out;
  }

  const buildParams = (obj) =>
    Object.entries(obj)
      .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
      .join("&");

  /** A host-name matcher: a glob when the text has * or ?, else a substring (case-insensitive). */
  function hostMatcher(text) {
    const q = text.trim().toLowerCase();
    if (!q) return null;
    if (!/[*?]/.test(q)) return (name) => name.toLowerCase().includes(q);
    const body = q.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    const re = new RegExp(`^${body}$`);
    return (name) => re.test(name.toLowerCase());
  }

  // ---------------------------------------------------------------- status, errors, readiness

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(text) {
    $("error").textContent = text;
  }

  function clearError() {
    $("error").textContent = "";
  }

  function clearReady() {
    delete document.body.dataset.ready;
  }

  /** Marks `page` as rendered, if it is still the page shown. */
  function markReady(page) {
    if (state.page !== page) return;
    document.body.dataset.readyMs = String(Math.round(performance.now() - state.navStart));
    document.body.dataset.ready = page;
  }

  /** A failed load or action: a 401 already sent the user to the login form; others show #error. */
  function fail(err, page) {
    if (err && err.status === 401) return;
    const msg = err instanceof ApiError ? err.message : `Something went wrong: ${err && err.message ? err.message : err}`;
    showError(msg);
    setStatus("");
    markReady(page);
  }

  // ---------------------------------------------------------------- token and API

  function getToken() {
    try {
      return sessionStorage.getItem(TOKEN_KEY) || "";
    } catch {
      return "";
    }
  }

  function setToken(token) {
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      /* storage disabled: the token cannot be kept */
    }
  }

  /** Forgets the token and every answer fetched with it, and shows the login form. */
  function forgetToken(message) {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      /* nothing to remove */
    }
    state.epoch += 1;
    state.hosts = null;
    state.compat = null;
    $("explain-results").hidden = true;
    $("whatif-results").hidden = true;
    showLogin(message);
  }

  class ApiError extends Error {
    constructor(status, message) {
      super(message);
      this.status = status;
    }
  }

  /** The human words of an RFC 9457 problem answer (detail, else title, else the status line). */
  function problemMessage(body, res) {
    if (body && typeof body.detail === "string" && body.detail) return body.detail;
    if (body && typeof body.title === "string" && body.title) return body.title;
    return `The fleet answered ${res.status} ${res.statusText}`.trim();
  }

  /** One API call with the bearer token; resolves to the JSON body, rejects with an ApiError. */
  async function api(path, { method = "GET", body } = {}) {
    const headers = { Authorization: `Bearer ${getToken()}`, Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(path, { method, headers, cache: "no-store", body: body === undefined ? undefined : JSON.stringify(body) });
    } catch {
      throw new ApiError(0, "Could not reach the fleet service. Check the connection and try again.");
    }
    const text = await res.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      data = null;
    }
    if (!res.ok) {
      const msg = problemMessage(data, res);
      if (res.status === 401) forgetToken(msg);
      throw new ApiError(res.status, msg);
    }
    if (data === null || typeof data !== "object") throw new ApiError(res.status, "The fleet's answer is not JSON.");
    return data;
  }

  // ---------------------------------------------------------------- router and page switching

  function parseHash() {
    const raw = location.hash.replace(/^#/, "");
    const q = raw.indexOf("?");
    const name = q < 0 ? raw : raw.slice(0, q);
    return { page: PAGES[name] ? name : "hosts", params: parseParams(q < 0 ? "" : raw.slice(q + 1)) };
  }

  /** Shows the page the URL names (or the login form without a token) and lets it load. */
  function route(focusHeading) {
    state.lastHref = location.href;
    if (!getToken()) {
      showLogin("");
      return;
    }
    clearError();
    const { page, params } = parseHash();
    showPage(page);
    if (focusHeading) document.querySelector(`#page-${page} h2`).focus();
    PAGES[page].enter(params);
  }

  /** A navigation in the document (a link, Back, a new URL): popstate comes first where it fires at all. */
  function onNavigate(event) {
    if (event.type === "hashchange" && location.href === state.lastHref) return;
    state.navStart = event.timeStamp || performance.now();
    route(true);
  }

  /** Replaces the URL (no navigation) so the current form's input can be bookmarked or shared. */
  function replaceUrl(hash) {
    history.replaceState(history.state, "", hash);
    state.lastHref = location.href;
  }

  function showSection(id) {
    for (const s of document.querySelectorAll("main > section.page")) s.hidden = s.id !== id;
  }

  function showPage(page) {
    state.page = page;
    clearReady();
    showSection(`page-${page}`);
    $("nav").hidden = false;
    $("forget-token").hidden = false;
    for (const a of document.querySelectorAll("#nav a")) {
      if (a.dataset.page === page) a.setAttribute("aria-current", "page");
      else a.removeAttribute("aria-current");
    }
    document.title = `${PAGES[page].title} · devmig fleet`;
  }

  function showLogin(message) {
    state.page = "login";
    showSection("page-login");
    $("nav").hidden = true;
    $("forget-token").hidden = true;
    document.title = "Sign in · devmig fleet";
    setStatus("");
    if (message) showError(message);
    $("login-token").focus();
    document.body.dataset.ready = "login";
  }

  function onLogin(event) {
    event.preventDefault();
    const input = $("login-token");
    const token = input.value.trim();
    if (!/^[\x21-\x7e]+$/.test(token)) {
      showError(token ? "A token is printable ASCII without spaces." : "Enter a bearer token.");
      input.focus();
      return;
    }
    setToken(token);
    input.value = "";
    focusDocumentStart();
    route(false);
  }

  /** Puts the keyboard's starting point back at the top (as a page load does): next Tab = skip link. */
  function focusDocumentStart() {
    const body = document.body;
    body.setAttribute("tabindex", "-1");
    body.focus({ preventScroll: true });
    body.blur();
    body.removeAttribute("tabindex");
  }

  function onForget() {
    clearError();
    forgetToken("");
    setStatus("Token forgotten.");
  }

  // ---------------------------------------------------------------- hosts page

  /** Shows the cached hosts at once (if any) and fetches them again; ready once fresh data is in. */
  function enterHosts() {
    if (state.hosts) renderHosts();
    return loadHosts();
  }

  function loadHosts() {
    if (!state.hostsLoading) state.hostsLoading = fetchHosts().finally(() => (state.hostsLoading = null));
    return state.hostsLoading;
  }

  async function fetchHosts() {
    const epoch = state.epoch;
    const t0 = performance.now();
    setStatus("Loading hosts…");
    try {
      const data = await api("/api/v1/hosts");
      if (epoch !== state.epoch) return;
      state.hosts = asArray(data.hosts);
      renderHosts();
      setStatus(`Loaded ${plural(state.hosts.length, "host")} in ${elapsed(t0)}`);
      markReady("hosts");
    } catch (err) {
      fail(err, "hosts");
    }
  }

  function renderHosts() {
    renderHostsSummary(state.hosts);
    applyHostsFilter(false);
  }

  /** "10,000 hosts: 9,990 fresh, 10 stale; 160,000 devices, 120,000 free". */
  function renderHostsSummary(hosts) {
    let stale = 0;
    let devices = 0;
    let free = 0;
    for (const h of hosts) {
      if (h.stale) stale += 1;
      devices += Number(h.devices) || 0;
      free += Number(h.free) || 0;
    }
    $("hosts-summary").textContent =
      `${plural(hosts.length, "host")}: ${fmt(hosts.length - stale)} fresh, ${fmt(stale)} stale; ` +
      `${plural(devices, "device")}, ${fmt(free)} free`;
  }

  /** Filters by the input's text; `resetPage` goes back to the first page (a new filter). */
  function applyHostsFilter(resetPage) {
    const view = state.hostsView;
    view.filter = $("hosts-filter").value;
    const match = hostMatcher(view.filter);
    const all = state.hosts || [];
    view.rows = match ? all.filter((h) => match(String(h.name))) : all;
    if (resetPage) view.page = 0;
    renderHostsPage();
  }

  /** Renders one page of at most PAGE_SIZE rows, the range text and the pager buttons. */
  function renderHostsPage() {
    const view = state.hostsView;
    const total = view.rows.length;
    const pages = Math.max(1, Math.ceil(total / PAGE_SIZE));
    view.page = Math.min(Math.max(0, view.page), pages - 1);
    const start = view.page * PAGE_SIZE;
    const end = Math.min(total, start + PAGE_SIZE);
    const now = Date.now();
    const frag = document.createDocumentFragment();
    for (let i = start; i < end; i += 1) frag.append(hostRow(view.rows[i], now));
    $("hosts-table").tBodies[0].replaceChildren(frag);
    $("hosts-range").textContent = total ? `rows ${fmt(start + 1)}–${fmt(end)} of ${fmt(total)}` : "no matching hosts";
    setPagerButtons(view.page > 0, end < total);
  }

  /** Enables the pager buttons; focus on a button that becomes disabled moves to the other one. */
  function setPagerButtons(hasPrev, hasNext) {
    const prev = $("hosts-prev");
    const next = $("hosts-next");
    const focused = document.activeElement;
    prev.disabled = !hasPrev;
    next.disabled = !hasNext;
    if (focused === prev && !hasPrev && hasNext) next.focus();
    if (focused === next && !hasNext && hasPrev) prev.focus();
  }

  function hostRow(h, now) {
    const seen = Number(h.last_seen_ms);
    const iso = seen ? new Date(seen).toISOString() : "";
    const when = seen
      ? el("time", { datetime: iso, title: iso, text: relativeTime(seen, now) })
      : el("span", { text: "never" });
    const badge = h.stale
      ? el("span", { className: "badge badge-stale", text: "stale" })
      : el("span", { className: "badge badge-fresh", text: "fresh" });
    return el("tr", {}, [
      el("th", { scope: "row", text: h.name }),
      el("td", {}, [badge]),
      el("td", { className: "num", text: fmt(h.devices) }),
      el("td", { className: "num", text: fmt(h.free) }),
      el("td", {}, [when]),
      el("td", { className: "mono", text: h.url || "" }),
    ]);
  }

  function turnHostsPage(delta) {
    state.hostsView.page += delta;
    renderHostsPage();
  }

  // ---------------------------------------------------------------- compatibility map page

  function enterMap() {
    if (state.compat) {
      markReady("map");
      return Promise.resolve();
    }
    return loadMap();
  }

  function loadMap() {
    if (!state.compatLoading) state.compatLoading = fetchMap().finally(() => (state.compatLoading = null));
    return state.compatLoading;
  }

  async function fetchMap() {
    const epoch = state.epoch;
    const t0 = performance.now();
    setStatus("Loading the compatibility map…");
    try {
      const data = await api("/api/v1/compatibility");
      if (epoch !== state.epoch) return;
      state.compat = data;
      renderMap(data);
      const classes = asArray(data.classes).length;
      const pools = asArray(data.pools).length;
      setStatus(`Loaded ${plural(classes, "class", "classes")} and ${plural(pools, "pool")} in ${elapsed(t0)}`);
      markReady("map");
    } catch (err) {
      fail(err, "map");
    }
  }

  function renderMap(data) {
    const classes = asArray(data.classes);
    const pools = asArray(data.pools);
    const fresh = Number(data.fresh_hosts) || 0;
    $("map-summary").textContent =
      `${plural(fresh, "fresh host")}, ${fmt(data.stale_hosts)} stale; ` +
      `${plural(classes.length, "source class", "source classes")} in use; ${plural(pools.length, "pool")}`;
    const empty = !classes.length || !pools.length;
    $("map-empty").hidden = !empty;
    $("map-empty").textContent = empty ? "No fresh host carries an mdev or VF source class yet." : "";
    $("map-wrap").hidden = empty;
    renderMatrixHead(classes);
    const frag = document.createDocumentFragment();
    pools.forEach((p, i) => frag.append(poolRow(p, i + 1, classes)));
    $("map-table").tBodies[0].replaceChildren(frag);
    renderClassList(classes, fresh);
  }

  /** The header: a corner cell, then per class its number, model and shortened version. */
  function renderMatrixHead(classes) {
    const row = el("tr", {}, [el("th", { scope: "col", className: "corner", text: "Pool" })]);
    classes.forEach((c, i) => {
      row.append(
        el("th", { scope: "col", className: "class-head", title: `${c.model} ${c.version}` }, [
          el("span", { className: "class-num", text: `#${i + 1}` }),
          el("span", { className: "class-model", text: c.model }),
          ...shortVersion(c.model, c.version).map((line) => el("span", { className: "class-version", "aria-hidden": "true", text: line })),
          el("span", { className: "vh", text: ` ${c.version}` }),
        ]),
      );
    });
    $("map-table").tHead.replaceChildren(row);
  }

  /** One pool: a row header with its members in a <details>, then one ✓/– cell per class. */
  function poolRow(pool, n, classes) {
    const members = asArray(pool.members);
    const details = el("details", {}, [
      el("summary", { text: `${plural(members.length + (Number(pool.more) || 0), "member")}` }),
      el("ul", { className: "members" }, members.map((m) => el("li", { text: m }))),
    ]);
    if (Number(pool.more) > 0) details.append(el("p", { className: "more", text: `and ${fmt(pool.more)} more` }));
    const row = el("tr", {}, [
      el("th", { scope: "row", className: "pool-head" }, [el("span", { className: "pool-label", text: `pool ${n}: ${plural(pool.hosts, "host")}` }), details]),
    ]);
    const accepts = new Set(asArray(pool.accepts));
    classes.forEach((c, i) => {
      const yes = accepts.has(i);
      const label = `pool ${n} ${yes ? "accepts" : "does not accept"} ${c.model} ${c.version}`;
      row.append(el("td", { className: yes ? "cell-yes" : "cell-no", "aria-label": label, title: label, text: yes ? "✓" : "–" }));
    });
    return row;
  }

  /** Per class: "accepted by H of F fresh hosts", and a link to explain it as a source. */
  function renderClassList(classes, fresh) {
    const items = classes.map((c) =>
      el("li", {}, [
        el("span", { className: "class-model", text: c.model }),
        " ",
        el("span", { className: "mono", text: c.version }),
        el("br"),
        `${plural(c.sources, "source device")}; accepted by ${fmt(c.hosts)} of ${plural(fresh, "fresh host")} `,
        el("a", { href: `#explain?${buildParams({ version: c.version })}`, text: "explain placement" }),
      ]),
    );
    $("map-classes").replaceChildren(...items);
  }

  function refreshMap() {
    clearError();
    clearReady();
    return loadMap();
  }

  // ---------------------------------------------------------------- placement explainer page

  function explainMode() {
    return $("explain-mode-version").checked ? "version" : "device";
  }

  function setExplainMode(mode) {
    $("explain-mode-version").checked = mode === "version";
    $("explain-mode-device").checked = mode !== "version";
    $("explain-by-device").hidden = mode === "version";
    $("explain-by-version").hidden = mode !== "version";
  }

  /** Prefills from #explain?version=V or #explain?host=H&device=D and runs; else just shows the form. */
  async function enterExplain(params) {
    if (params.version) {
      setExplainMode("version");
      $("explain-version").value = params.version;
      return runExplain();
    }
    if (params.host) {
      setExplainMode("device");
      $("explain-host").value = params.host;
      const loaded = await loadDevices(params.host, params.device || "");
      if (loaded && params.device) return runExplain();
    }
    return markReady("explain");
  }

  /** Fills #explain-device with the host's mdevs and VFs; `wanted` is selected (added if absent). */
  async function loadDevices(host, wanted) {
    const select = $("explain-device");
    if (!host) {
      showError("Enter a host name first.");
      $("explain-host").focus();
      return false;
    }
    const seq = ++state.seq.devices;
    clearError();
    setStatus(`Loading the devices of ${host}…`);
    try {
      const data = await api(`/api/v1/devices?hosts=${encodeURIComponent(host)}`);
      if (seq !== state.seq.devices) return false;
      const devices = asArray(data.devices).filter((d) => SOURCE_KINDS.has(d.kind));
      const options = devices.map((d) => {
        const name = d.host === host ? d.device : `${d.host}:${d.device}`;
        const o = el("option", { value: d.device, text: `${name} (${d.model}, ${d.kind})` });
        o.dataset.host = d.host;
        return o;
      });
      if (!options.length) options.push(el("option", { value: "", text: `No mdev or SR-IOV VF on ${host}` }));
      if (wanted && !devices.some((d) => d.device === wanted)) {
        const o = el("option", { value: wanted, text: wanted });
        o.dataset.host = host;
        options.unshift(o);
      }
      select.replaceChildren(...options);
      if (wanted) select.value = wanted;
      setStatus(`Loaded ${plural(devices.length, "source device")} of ${host}`);
      return true;
    } catch (err) {
      fail(err, "explain");
      return false;
    }
  }

  /** The request the form describes ({body, query}), or null after showing what is missing. */
  function explainRequest() {
    const limit = Number($("explain-limit").value);
    if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
      showError("Candidates to list: a whole number from 1 to 1000.");
      $("explain-limit").focus();
      return null;
    }
    const exclude = $("explain-exclude").value.split(/[\s,]+/).filter(Boolean);
    if (explainMode() === "version") {
      const versions = $("explain-version").value.split(/\r?\n/).map((v) => v.trim()).filter(Boolean);
      if (!versions.length) {
        showError("Enter a version string.");
        $("explain-version").focus();
        return null;
      }
      const sources = versions.map((version) => ({ version }));
      return { body: { sources, exclude_hosts: exclude, limit }, query: buildParams({ version: versions.join("\n") }) };
    }
    const opt = $("explain-device").selectedOptions[0];
    if (!opt || !opt.value) {
      showError("Choose a device: enter a host, press Load devices, then pick one.");
      $("explain-host").focus();
      return null;
    }
    const host = opt.dataset.host || $("explain-host").value.trim();
    return {
      body: { sources: [{ host, device: opt.value }], exclude_hosts: exclude, limit },
      query: buildParams({ host, device: opt.value }),
    };
  }

  async function runExplain() {
    clearError();
    const req = explainRequest();
    if (!req) return markReady("explain");
    const seq = ++state.seq.explain;
    clearReady();
    const t0 = performance.now();
    setStatus("Explaining…");
    try {
      const data = await api("/api/v1/candidates", { method: "POST", body: req.body });
      if (seq !== state.seq.explain) return undefined;
      renderExplain(data);
      if (state.page === "explain") replaceUrl(`#explain?${req.query}`);
      setStatus(`Explained in ${elapsed(t0)}`);
    } catch (err) {
      if (seq !== state.seq.explain) return undefined;
      $("explain-results").hidden = true;
      return fail(err, "explain");
    }
    return markReady("explain");
  }

  function renderExplain(data) {
    const sources = asArray(data.sources);
    const candidates = asArray(data.candidates);
    const explanation = data.explanation || {};
    $("explain-sources").replaceChildren(
      ...sources.map((s) =>
        el("li", {}, ["Source ", el("strong", { text: s.label }), `: ${s.model} `, el("span", { className: "mono", text: s.version })]),
      ),
    );
    const n = Number(data.candidate_hosts) || 0;
    $("explain-count").textContent = `${fmt(n)} ${n === 1 ? "host passes" : "hosts pass"} step a`;
    $("explain-more").textContent = data.more ? `(showing the first ${fmt(candidates.length)})` : "";
    $("explain-candidates-empty").hidden = candidates.length > 0;
    $("explain-candidates").tBodies[0].replaceChildren(...candidates.map((c, i) => candidateRow(c, i + 1, sources)));
    const groups = asArray(explanation.groups);
    $("explain-groups-empty").hidden = groups.length > 0;
    $("explain-groups").tBodies[0].replaceChildren(...groups.map(groupRow));
    const closest = asArray(explanation.closest);
    $("explain-closest-empty").hidden = closest.length > 0;
    $("explain-closest").replaceChildren(...closest.map(closestItem));
    $("explain-results").hidden = false;
  }

  /** Rank, host, how many sources it has an identical version for, and the targets per source. */
  function candidateRow(c, rank, sources) {
    const targets = asArray(c.targets);
    const list = el(
      "ul",
      { className: "plain" },
      targets.map((t, i) => {
        const label = sources.length > 1 && sources[i] ? `${sources[i].label} → ` : "";
        return el("li", { className: "mono", text: `${label}${asArray(t).join(", ")}` });
      }),
    );
    return el("tr", {}, [
      el("td", { className: "num", text: String(rank) }),
      el("th", { scope: "row", text: c.host }),
      el("td", { text: `${fmt(c.identical)} of ${fmt(sources.length || targets.length)}` }),
      el("td", {}, [list, el("span", { className: "hint", text: `${plural(c.free_targets, "free target")}` })]),
    ]);
  }

  /** One reason group, cells exactly as the API (and the CLI) give them: no number formatting. */
  function groupRow(g) {
    return el("tr", {}, [
      el("td", { className: "num", text: String(g.hosts) }),
      el("td", { text: g.source }),
      el("td", { className: "mono", text: g.code }),
      el("td", { text: g.detail }),
    ]);
  }

  function closestItem(c) {
    return el("li", {}, [
      el("strong", { text: c.host }),
      ` — ${plural(c.unmet, "unmet condition")}`,
      el("ul", {}, asArray(c.detail).map((d) => el("li", { text: d }))),
    ]);
  }

  function onExplainSubmit(event) {
    event.preventDefault();
    runExplain();
  }

  function onExplainLoad() {
    loadDevices($("explain-host").value.trim(), "");
  }

  /** Enter in the host field loads its devices (rather than submitting the form). */
  function onExplainHostKey(event) {
    if (event.key !== "Enter") return;
    event.preventDefault();
    onExplainLoad();
  }

  // ---------------------------------------------------------------- what-if page

  /** The driver models: the defaults plus every model of the compatibility map's classes. */
  function fillModels(wanted) {
    const select = $("whatif-model");
    const models = new Set(DEFAULT_MODELS);
    if (state.compat) for (const c of asArray(state.compat.classes)) if (c.model) models.add(c.model);
    if (wanted) models.add(wanted);
    const keep = wanted || select.value || DEFAULT_MODELS[0];
    const list = [...models].sort();
    if (list.join("\n") !== [...select.options].map((o) => o.value).join("\n")) {
      select.replaceChildren(...list.map((m) => el("option", { value: m, text: m })));
    }
    select.value = keep;
  }

  /** Prefills from #what-if?hosts=G&model=M&version=V and runs; else just shows the form. */
  function enterWhatIf(params) {
    fillModels(params.model);
    if (params.hosts) $("whatif-hosts").value = params.hosts;
    if (params.version) $("whatif-version").value = params.version;
    if (params.hosts && params.model && params.version) return runWhatIf();
    return markReady("what-if");
  }

  function whatIfRequest() {
    const hosts = $("whatif-hosts").value.trim();
    const model = $("whatif-model").value;
    const version = $("whatif-version").value.trim();
    const missing = !hosts ? "whatif-hosts" : !model ? "whatif-model" : !version ? "whatif-version" : "";
    if (missing) {
      showError("Enter a host pattern, a driver model and the new driver version.");
      $(missing).focus();
      return null;
    }
    return { hosts, driver: { model, version } };
  }

  async function runWhatIf() {
    clearError();
    const body = whatIfRequest();
    if (!body) return markReady("what-if");
    const seq = ++state.seq.whatif;
    clearReady();
    const t0 = performance.now();
    setStatus("Computing what the upgrade changes…");
    try {
      const data = await api("/api/v1/what-if", { method: "POST", body });
      if (seq !== state.seq.whatif) return undefined;
      renderWhatIf(data, body.hosts);
      if (state.page === "what-if") replaceUrl(`#what-if?${buildParams({ hosts: body.hosts, ...body.driver })}`);
      setStatus(`Computed in ${elapsed(t0)}`);
    } catch (err) {
      if (seq !== state.seq.whatif) return undefined;
      $("whatif-results").hidden = true;
      return fail(err, "what-if");
    }
    return markReady("what-if");
  }

  /** "i915=1.4.0 on 40 hosts (sim-r01-*): 300 devices change version", then one row per shift. */
  function renderWhatIf(data, pattern) {
    const change = data.change || {};
    const changed = Number(data.devices_changed) || 0;
    $("whatif-summary").textContent =
      `${change.model}=${change.version} on ${plural(data.pool_hosts, "host")} (${pattern}): ` +
      `${fmt(changed)} ${changed === 1 ? "device changes" : "devices change"} version`;
    const rows = [
      ...asArray(data.into_pool).map((s) => whatIfRow("into pool", s)),
      ...asArray(data.out_of_pool).map((s) => whatIfRow("out of pool", s)),
    ];
    $("whatif-empty").hidden = rows.length > 0;
    $("whatif-table").tBodies[0].replaceChildren(...rows);
    $("whatif-results").hidden = false;
  }

  function hostList(names) {
    const list = asArray(names);
    return list.length ? list.join(", ") : "none";
  }

  function whatIfRow(direction, s) {
    return el("tr", {}, [
      el("td", { text: direction }),
      el("td", { className: "mono", text: s.version }),
      el("td", { className: "num", text: fmt(s.before) }),
      el("td", { className: "num", text: fmt(s.after) }),
      el("td", { className: "hosts-cell", text: hostList(s.broken_on) }),
      el("td", { className: "hosts-cell", text: hostList(s.enabled_on) }),
    ]);
  }

  function onWhatIfSubmit(event) {
    event.preventDefault();
    runWhatIf();
  }

  // ---------------------------------------------------------------- wiring

  /** The skip link moves focus to <main> without touching the hash (the hash is the router's). */
  function onSkip(event) {
    event.preventDefault();
    $("content").focus();
  }

  function init() {
    $("skip-link").addEventListener("click", onSkip);
    $("login-form").addEventListener("submit", onLogin);
    $("forget-token").addEventListener("click", onForget);
    $("hosts-filter").addEventListener("input", () => applyHostsFilter(true));
    $("hosts-prev").addEventListener("click", () => turnHostsPage(-1));
    $("hosts-next").addEventListener("click", () => turnHostsPage(1));
    $("hosts-refresh").addEventListener("click", () => {
      clearError();
      clearReady();
      loadHosts();
    });
    $("map-refresh").addEventListener("click", refreshMap);
    for (const r of document.querySelectorAll("input[name=explain-mode]")) {
      r.addEventListener("change", () => setExplainMode(explainMode()));
    }
    $("explain-load").addEventListener("click", onExplainLoad);
    $("explain-host").addEventListener("keydown", onExplainHostKey);
    $("explain-form").addEventListener("submit", onExplainSubmit);
    $("whatif-form").addEventListener("submit", onWhatIfSubmit);
    window.addEventListener("popstate", onNavigate);
    window.addEventListener("hashchange", onNavigate);
    fillModels("");
    setExplainMode(explainMode());
    route(false);
  }

  init();
})();
