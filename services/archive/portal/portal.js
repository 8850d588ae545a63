// The archive portal: search, observation pages, a download basket, subscriptions and
// reprocessing. A client of this archive's HTTP API and nothing else (docs/portal.md).
//
// State: the route lives in the URL's fragment (#/search?..., #/observation/<obs_id>, ...);
// the basket in localStorage (it outlives a search and a reload); the token in
// sessionStorage only (forgotten when the tab closes or on signing out).

const TOKEN_KEY = "dms.token";
const BASKET_KEY = "dms.basket";
const MJD_UNIX_EPOCH = 40587;
const SEARCH_FIELDS = ["program", "target_name", "ra", "dec", "radius", "instrument_name", "filters",
  "calib_level", "from", "to", "dataRights"];
const LEVEL_NAMES = {
  3: "Level 3: combined products", 2: "Level 2: calibrated exposures", 1: "Level 1: raw exposures",
  0: "Level 0: telemetry", [-1]: "Planned",
};
const MRP = "Minimum Recommended Products";

let config = { bundle_max_bytes: 5.12e9, bundle_max_files: 5000 };
let whoami = null; // the signed-in user's name, or null

// ---- small DOM helpers -------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.setAttribute("class", value);
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace what `el` holds (children as for h(): nested lists flattened, null skipped). */
function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

function message(kind, ...text) {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : null }, ...text);
}

function announce(text) {
  const status = document.getElementById("status");
  status.textContent = "";
  setTimeout(() => { status.textContent = text; }, 50);
}

// ---- formatting ----------------------------------------------------------------------

function humanSize(bytes) {
  if (bytes === null || bytes === undefined) return "";
  const units = ["B", "kB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) { value /= 1000; unit += 1; }
  return `${unit === 0 ? value : value.toFixed(value < 10 ? 2 : 1)} ${units[unit]}`;
}

function mjdToIso(mjd, withTime = true) {
  if (mjd === null || mjd === undefined) return "";
  const iso = new Date((mjd - MJD_UNIX_EPOCH) * 86400000).toISOString();
  return withTime ? iso.slice(0, 16).replace("T", " ") : iso.slice(0, 10);
}

function dateOnly(value) {
  return value ? String(value).slice(0, 10) : "";
}

function rightsBadge(rights, release) {
  if (rights === "PUBLIC") return h("span", { class: "badge public" }, "Public");
  return h("span", { class: "badge exclusive" }, release ? `Exclusive until ${release}` : "Exclusive access");
}

function basename(url) {
  if (!url) return null;
  try {
    const path = new URL(url, location.href).pathname;
    return decodeURIComponent(path.slice(path.lastIndexOf("/") + 1));
  } catch {
    return null;
  }
}

// ---- the API -------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
    this.detail = detail;
  }
}

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function apiUrl(path, params) {
  // Relative to the page (served at <base>/portal), so the API's own base is kept.
  const url = new URL(path, location.href);
  url.hash = "";
  for (const [key, value] of params || []) url.searchParams.append(key, value);
  return url;
}

async function api(path, { method = "GET", body, params, raw = false, anonymous = false } = {}) {
  const headers = { Accept: "application/json" };
  const bearer = token();
  if (bearer && !anonymous) headers.Authorization = `Bearer ${bearer}`;
  const init = { method, headers };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(apiUrl(path, params), init);
  } catch (exc) {
    throw new ApiError(0, `the archive did not answer (${exc.message})`);
  }
  if (!response.ok) {
    let detail = `${response.status} ${response.statusText}`;
    try {
      const answer = await response.json();
      if (typeof answer.detail === "string") detail = answer.detail;
      else if (answer.detail) detail = JSON.stringify(answer.detail);
    } catch { /* not JSON: keep the status line */ }
    throw new ApiError(response.status, detail);
  }
  if (raw) return response;
  return response.status === 204 ? null : response.json();
}

/** Every row of a paged search (pages of `pagesize`), up to `limit` rows. */
async function allRows(path, params, { pagesize = 1000, limit = 20000 } = {}) {
  const rows = [];
  for (let page = 1; ; page += 1) {
    const answer = await api(path, { params: [...params, ["page", page], ["pagesize", pagesize]] });
    rows.push(...answer.rows);
    if (rows.length >= answer.total || answer.rows.length === 0 || rows.length >= limit) {
      return { total: answer.total, rows };
    }
  }
}

/** Show an image the archive serves under the data rule: previews of exclusive data need
 *  the token, which an <img src> cannot send, so the image is fetched and shown as a blob. */
async function showImage(img, path, { brief = false } = {}) {
  try {
    const response = await api(path, { raw: true });
    const blob = await response.blob();
    img.src = URL.createObjectURL(blob);
  } catch (exc) {
    const refused = exc.status === 401 || exc.status === 403;
    const why = refused ? `Preview under exclusive access: ${exc.detail}` : `No preview (${exc.detail || exc.message})`;
    // Anonymous: a short hint (the archive's whole reason as the tooltip); signed in: the reason.
    const text = brief ? (refused ? "Exclusive" : "No preview")
      : exc.status === 401 ? "Preview under exclusive access: sign in as the program's PI or an authorized user to see it."
        : why;
    img.replaceWith(h("span", { class: "note", title: why }, text));
  }
}

/** Save what the archive answered as a file, under the name it gave. */
async function saveAs(response, fallback) {
  const disposition = response.headers.get("Content-Disposition") || "";
  const match = /filename="([^"]+)"/.exec(disposition);
  const blob = await response.blob();
  const link = h("a", { href: URL.createObjectURL(blob), download: match ? match[1] : fallback, hidden: true });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 60000);
}

// ---- the basket ----------------------------------------------------------------------

const basket = {
  items() {
    try {
      return JSON.parse(localStorage.getItem(BASKET_KEY)) || {};
    } catch {
      return {};
    }
  },
  save(items) {
    localStorage.setItem(BASKET_KEY, JSON.stringify(items));
    showBasketCount();
  },
  has(name) {
    return name in this.items();
  },
  add(rows) {
    const items = this.items();
    for (const row of rows) {
      items[row.productFilename] = {
        filename: row.productFilename, size: row.size, obs_id: row.obs_id, type: row.productType,
        suffix: row.productSubGroupDescription, level: row.calib_level, rights: row.dataRights,
        release: dateOnly(row.public_release_date), added: new Date().toISOString(),
      };
    }
    this.save(items);
  },
  remove(names) {
    const items = this.items();
    for (const name of names) delete items[name];
    this.save(items);
  },
};

/** The basket's count in the header, and every add/remove button on the page. */
function showBasketCount() {
  const items = basket.items();
  document.getElementById("basket-count").textContent = String(Object.keys(items).length);
  for (const button of document.querySelectorAll("button[data-basket]")) labelToggle(button, items);
}

/** A button that adds a product to the basket or removes it, saying which it will do. */
function basketToggle(row) {
  const button = h("button", {
    type: "button", class: "secondary", "data-basket": row.productFilename,
    onclick: () => {
      if (basket.has(row.productFilename)) basket.remove([row.productFilename]);
      else basket.add([row]);
      announce(`${row.productFilename}: ${basket.has(row.productFilename) ? "added to" : "removed from"} the basket`);
    },
  });
  labelToggle(button, basket.items());
  return button;
}

function labelToggle(button, items) {
  const name = button.dataset.basket;
  const text = name in items ? "Remove from basket" : "Add to basket";
  button.textContent = text;
  button.setAttribute("aria-label", `${text}: ${name}`);
}

// ---- signing in -------------------------------------------------------------------------

async function signIn(secret) {
  sessionStorage.setItem(TOKEN_KEY, secret);
  try {
    const who = await api("whoami");
    if (who.anon) throw new ApiError(401, "the archive did not take the token");
    whoami = who.user;
  } catch (exc) {
    sessionStorage.removeItem(TOKEN_KEY);
    whoami = null;
    throw exc;
  }
  showAccount();
}

function signOut() {
  sessionStorage.removeItem(TOKEN_KEY);
  whoami = null;
  showAccount();
}

function showAccount() {
  document.getElementById("account-link").textContent = whoami ? `Account (${whoami})` : "Sign in";
}

// ---- routing ---------------------------------------------------------------------------

// Each page is called with (view, state, name, query): the name in the path (an observation,
// a product), URL-decoded, and the query string as it stands (URLSearchParams decodes it).
const ROUTES = [
  [/^#\/observation\/(?<name>[^?]+)(?:\?(?<query>.*))?$/, observationPage],
  [/^#\/product\/(?<name>[^?]+)$/, productPage],
  [/^#\/basket$/, basketPage],
  [/^#\/account(?:\?(?<query>.*))?$/, accountPage],
  [/^#\/search(?:\?(?<query>.*))?$/, searchPage],
];

let current = null; // {page, form}: what is on screen, so a new search keeps its form
let routed = false; // whether a page was shown before

async function route() {
  const hash = location.hash || "#/search";
  for (const [pattern, page] of ROUTES) {
    const match = pattern.exec(hash);
    if (!match) continue;
    const groups = match.groups || {};
    const args = [groups.name === undefined ? undefined : decodeURIComponent(groups.name), groups.query];
    for (const link of document.querySelectorAll("[data-nav]")) {
      if (link.dataset.nav === page.nav) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
    const main = document.getElementById("main");
    if (current && current.page === page && page.update) {
      await page.update(current, ...args);
      return;
    }
    // A page draws into a view of its own: one left behind by a quicker move draws nowhere.
    const view = h("div", {});
    main.replaceChildren(view);
    const state = { page };
    current = state;
    try {
      await page(view, state, ...args);
    } catch (exc) {
      view.append(message("error", `Could not show this page: ${exc.detail || exc.message}`));
    }
    const heading = view.querySelector("h1");
    if (heading && current === state) {
      document.title = `${heading.textContent} · jwst-dms archive`;
      heading.setAttribute("tabindex", "-1");
      // After a move inside the page, focus goes to the new page's heading (a screen reader
      // reads it); on first load it stays at the top, where the skip link is.
      if (routed) heading.focus();
    }
    routed = true;
    return;
  }
  location.hash = "#/search";
}

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

// ---- the search page -----------------------------------------------------------------

function searchParamsOf(query) {
  return new URLSearchParams(query || "");
}

function field(id, labelText, input, hint) {
  input.id = id;
  input.name = id;
  return h("div", { class: "field" },
    h("label", { for: id }, labelText, hint ? h("span", { class: "hint" }, ` ${hint}`) : null), input);
}

function select(options, value) {
  return h("select", {}, options.map(([v, text]) => h("option", { value: v, selected: v === value }, text)));
}

async function searchPage(main, state, _name, query) {
  const params = searchParamsOf(query);
  const value = (name) => params.get(name) || "";
  const form = h("form", { class: "search", role: "search", "aria-label": "Search observations" },
    field("program", "Program", h("input", { value: value("program"), inputmode: "numeric", placeholder: "e.g. 1234" })),
    field("target_name", "Target", h("input", { value: value("target_name"), placeholder: "name or alias" })),
    h("fieldset", {},
      h("legend", {}, "Position (ICRS, degrees) and radius"),
      field("ra", "RA", h("input", { value: value("ra"), inputmode: "decimal", size: 8 })),
      field("dec", "Dec", h("input", { value: value("dec"), inputmode: "decimal", size: 8 })),
      field("radius", "Radius", h("input", { value: value("radius"), inputmode: "decimal", size: 6, placeholder: "0.2" }))),
    field("instrument_name", "Instrument/mode",
      h("input", { value: value("instrument_name"), list: "instrument-modes", placeholder: "e.g. NIRCAM/IMAGE" })),
    h("datalist", { id: "instrument-modes" },
      ["NIRCAM/IMAGE", "NIRCAM/GRISM", "NIRCAM/CORON", "NIRISS/IMAGE", "NIRISS/WFSS", "NIRISS/SOSS", "NIRISS/AMI",
        "NIRSPEC/SLIT", "NIRSPEC/MSA", "NIRSPEC/IFU", "MIRI/IMAGE", "MIRI/SLIT", "MIRI/IFU", "MIRI/CORON", "FGS/IMAGE"]
        .map((mode) => h("option", { value: mode }))),
    field("filters", "Filter", h("input", { value: value("filters"), placeholder: "e.g. F200W" })),
    field("calib_level", "Calibration level", select([["", "Any"], ["3", "3 (combined)"], [">=2", "2 or 3"],
      ["2", "2 (calibrated)"], ["1", "1 (raw)"]], value("calib_level"))),
    field("from", "Observed from", h("input", { type: "date", value: value("from") })),
    field("to", "Observed to", h("input", { type: "date", value: value("to") })),
    field("dataRights", "Release state", select([["", "Any"], ["PUBLIC", "Public"],
      ["EXCLUSIVE_ACCESS", "Exclusive access"]], value("dataRights"))),
    field("pagesize", "Rows per page", select([["10", "10"], ["25", "25"], ["50", "50"], ["100", "100"]],
      value("pagesize") || "25")),
    h("div", { class: "actions" },
      h("button", { type: "submit" }, "Search"),
      h("button", { type: "button", class: "secondary", onclick: () => go("#/search") }, "Clear")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const next = new URLSearchParams();
    for (const name of [...SEARCH_FIELDS, "pagesize"]) {
      const input = form.elements[name];
      const text = input.value.trim();
      if (text) next.set(name, text);
    }
    const sort = searchParamsOf(location.hash.split("?")[1]).get("sort");
    if (sort) next.set("sort", sort);
    go(`#/search?${next}`);
  });
  const results = h("section", { "aria-labelledby": "results-heading" });
  main.append(h("h1", {}, "Search observations"), form, results);
  state.form = form;
  state.results = results;
  await runSearch(state, params);
}

searchPage.nav = "search";
searchPage.update = async (state, _name, query) => {
  const params = searchParamsOf(query);
  for (const name of [...SEARCH_FIELDS, "pagesize"]) {
    const input = state.form.elements[name];
    if (input) input.value = params.get(name) || (name === "pagesize" ? "25" : "");
  }
  await runSearch(state, params);
};

/** The archive's query of a portal search (the parameters of GET /observations). */
function observationQuery(params) {
  const query = [];
  for (const name of ["program", "target_name", "instrument_name", "filters", "calib_level", "dataRights", "sort"]) {
    if (params.get(name)) query.push([name, params.get(name)]);
  }
  if (params.get("ra") || params.get("dec")) {
    query.push(["ra", params.get("ra")], ["dec", params.get("dec")]);
    if (params.get("radius")) query.push(["radius", params.get("radius")]);
  }
  const from = params.get("from");
  const to = params.get("to");
  // Started within the dates, both days included ("to" a date alone would mean its midnight).
  if (from || to) query.push(["t_min", `${from || ""}..${to ? `${to}T23:59:59.999` : ""}`]);
  return query;
}

// [sort key of GET /observations (null: not sortable), heading, class]
const COLUMNS = [
  ["obs_id", "Observation"], ["target_name", "Target"], ["instrument_name", "Instrument"], ["filters", "Filters"],
  ["calib_level", "Level", "num"], ["t_min", "Start (UTC)"], [null, "Exposure (s)", "num"],
  ["t_obs_release", "Data"],
];

async function runSearch(state, params) {
  const { results } = state;
  const page = Math.max(1, parseInt(params.get("page") || "1", 10) || 1);
  const pagesize = params.get("pagesize") || "25";
  const query = observationQuery(params);
  fill(results, h("p", { class: "note" }, "Searching…"));
  results.setAttribute("aria-busy", "true");
  // A search answered after a newer one began is dropped: it must not replace the newer results.
  const search = (state.searches = (state.searches || 0) + 1);
  let answer;
  try {
    answer = await api("observations", { params: [...query, ["page", page], ["pagesize", pagesize]] });
  } catch (exc) {
    if (search !== state.searches) return;
    fill(results, message("error", `The search was refused: ${exc.detail}`));
    results.removeAttribute("aria-busy");
    announce("The search was refused");
    return;
  }
  if (search !== state.searches) return;
  const pages = Math.max(1, Math.ceil(answer.total / answer.pagesize));
  const heading = h("h2", { id: "results-heading" },
    `${answer.total} observation${answer.total === 1 ? "" : "s"}`);
  const hashWith = (changes) => {
    const next = new URLSearchParams(params);
    for (const [key, value] of Object.entries(changes)) {
      if (value === null) next.delete(key);
      else next.set(key, value);
    }
    return `#/search?${next}`;
  };
  const exportLink = (format, text) => h("a", {
    class: "button secondary", href: apiUrl("observations", [...query, ["format", format], ["page", "all"]]).href,
    download: "",
  }, text);
  const pager = h("nav", { class: "pager", "aria-label": "Result pages" },
    h("button", { type: "button", class: "secondary", disabled: page <= 1, onclick: () => go(hashWith({ page: page - 1 })) },
      "Previous"),
    h("span", {}, `Page ${page} of ${pages}`),
    h("button", { type: "button", class: "secondary", disabled: page >= pages, onclick: () => go(hashWith({ page: page + 1 })) },
      "Next"));
  const sort = params.get("sort") || "";
  const header = h("tr", {}, h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Preview")),
    COLUMNS.map(([key, text, cls]) => {
      if (!key) return h("th", { scope: "col", class: cls }, text);
      const direction = sort === key ? "ascending" : sort === `-${key}` ? "descending" : null;
      const next = direction === "ascending" ? `-${key}` : key;
      return h("th", { scope: "col", class: cls, "aria-sort": direction || "none" },
        h("button", { type: "button", class: "sort", onclick: () => go(hashWith({ sort: next, page: 1 })) }, text));
    }),
    h("th", { scope: "col" }, h("span", { class: "visually-hidden" }, "Basket")));
  const body = h("tbody", {}, answer.rows.map(resultRow));
  const table = h("table", {}, h("caption", { class: "visually-hidden" }, "Observations found; column headers sort"),
    h("thead", {}, header), body);
  const plot = h("div", {});
  fill(results, 
    heading,
    h("div", { class: "toolbar" }, pager, h("span", {}, "Export every page: "), exportLink("csv", "CSV"),
      exportLink("votable", "VOTable")),
    h("div", { class: "layout" }, h("div", { class: "scroll" }, table), plot),
  );
  results.removeAttribute("aria-busy");
  announce(`${answer.total} observations found; page ${page} of ${pages}`);
  await skyPlot(plot, answer.rows, params);
}

function resultRow(row) {
  const thumb = h("img", { alt: `Preview of ${row.obs_id}`, width: 64, height: 64 });
  const product = basename(row.dataURL);
  if (product) showImage(thumb, `thumbnails/${encodeURIComponent(product)}`, { brief: true });
  return h("tr", {},
    h("td", { class: "thumb" }, product ? thumb : h("span", { class: "note" }, "none")),
    h("td", {}, h("a", { href: `#/observation/${encodeURIComponent(row.obs_id)}` }, row.obs_id)),
    h("td", {}, row.target_name),
    h("td", {}, row.instrument_name),
    h("td", {}, row.filters),
    h("td", { class: "num" }, row.calib_level),
    h("td", {}, mjdToIso(row.t_min)),
    h("td", { class: "num" }, row.t_exptime === null ? "" : row.t_exptime.toFixed(1)),
    h("td", {}, rightsBadge(row.dataRights, mjdToIso(row.t_obs_release, false))),
    h("td", {}, h("button", {
      type: "button", class: "secondary", "aria-label": `Add the recommended products of ${row.obs_id} to the basket`,
      onclick: async (event) => {
        const button = event.currentTarget;
        try {
          const { rows } = await allRows(`observations/${encodeURIComponent(row.obs_id)}/products`, []);
          const mrp = rows.filter((r) => r.productGroupDescription === MRP && r.productType !== "PREVIEW");
          basket.add(mrp);
          button.textContent = `${mrp.length} added`;
          button.setAttribute("aria-label", `${mrp.length} recommended products of ${row.obs_id} added to the basket`);
          announce(`${mrp.length} recommended products of ${row.obs_id} added to the basket`);
        } catch (exc) {
          button.replaceWith(h("span", { class: "note" }, `Not added: ${exc.detail}`));
        }
      },
    }, "Add MRP")));
}

// ---- the sky plot ----------------------------------------------------------------------

const RAD = Math.PI / 180;

/** Polygons of an STC-S region (POLYGON and CIRCLE, ICRS degrees): lists of [ra, dec]. */
function regionPolygons(region) {
  const polygons = [];
  if (!region) return polygons;
  const parts = region.toUpperCase().split(/(?=POLYGON|CIRCLE)/);
  for (const part of parts) {
    const numbers = part.replace(/[A-Z]+/g, " ").trim().split(/\s+/).map(Number).filter((n) => !Number.isNaN(n));
    if (part.startsWith("POLYGON") && numbers.length >= 6) {
      const points = [];
      for (let i = 0; i + 1 < numbers.length; i += 2) points.push([numbers[i], numbers[i + 1]]);
      polygons.push(points);
    } else if (part.startsWith("CIRCLE") && numbers.length >= 3) {
      const [ra, dec, r] = numbers;
      const points = [];
      for (let k = 0; k < 48; k += 1) {
        const angle = (2 * Math.PI * k) / 48;
        points.push(offset(ra, dec, r, angle));
      }
      polygons.push(points);
    }
  }
  return polygons;
}

/** The point `distance` degrees from (ra, dec) towards position angle `angle` (radians, E of N). */
function offset(ra, dec, distance, angle) {
  const d = distance * RAD;
  const dec0 = dec * RAD;
  const sinDec = Math.sin(dec0) * Math.cos(d) + Math.cos(dec0) * Math.sin(d) * Math.cos(angle);
  const dec1 = Math.asin(sinDec);
  const ra1 = ra * RAD + Math.atan2(Math.sin(angle) * Math.sin(d) * Math.cos(dec0), Math.cos(d) - Math.sin(dec0) * sinDec);
  return [((ra1 / RAD) % 360 + 360) % 360, dec1 / RAD];
}

/** Gnomonic (tangent-plane) projection about (ra0, dec0): standard coordinates in degrees,
 *  xi towards the east, eta towards the north. */
function tangent(ra0, dec0, ra, dec) {
  const a = (ra - ra0) * RAD;
  const d0 = dec0 * RAD;
  const d = dec * RAD;
  const cosc = Math.sin(d0) * Math.sin(d) + Math.cos(d0) * Math.cos(d) * Math.cos(a);
  if (cosc <= 0.01) return [NaN, NaN]; // on or behind the plane's horizon: not drawn
  return [Math.cos(d) * Math.sin(a) / cosc / RAD, (Math.cos(d0) * Math.sin(d) - Math.sin(d0) * Math.cos(d) * Math.cos(a)) / cosc / RAD];
}

function meanPosition(points) {
  let x = 0;
  let y = 0;
  let z = 0;
  for (const [ra, dec] of points) {
    x += Math.cos(dec * RAD) * Math.cos(ra * RAD);
    y += Math.cos(dec * RAD) * Math.sin(ra * RAD);
    z += Math.sin(dec * RAD);
  }
  const ra = Math.atan2(y, x) / RAD;
  return [(ra + 360) % 360, Math.atan2(z, Math.hypot(x, y)) / RAD];
}

async function skyPlot(container, rows, params) {
  if (!rows.length) return;
  let footprints;
  try {
    const observations = rows.map((r) => ["observation", r.obs_id]);
    footprints = (await allRows("caom/observations", observations)).rows;
  } catch (exc) {
    fill(container, message("warn", `No footprints: ${exc.detail}`));
    return;
  }
  let centre = null;
  let cone = null;
  const ra = parseFloat(params.get("ra"));
  const dec = parseFloat(params.get("dec"));
  if (!Number.isNaN(ra) && !Number.isNaN(dec)) {
    centre = [ra, dec];
    cone = parseFloat(params.get("radius")) || 0.2;
  } else if (params.get("target_name")) {
    try {
      const answer = await api("resolve", { params: [["name", params.get("target_name")]] });
      const hit = answer.resolvedCoordinate.find((c) => c.ra !== null);
      if (hit) centre = [hit.ra, hit.decl];
    } catch { /* a wildcard or an unknown name: centre on the results */ }
  }
  const shapes = [];
  for (const row of footprints) {
    for (const polygon of regionPolygons(row.s_region)) shapes.push({ row, polygon });
  }
  if (!centre) {
    const points = shapes.flatMap((s) => s.polygon);
    if (!points.length) return;
    centre = meanPosition(points);
  }
  const size = 360;
  const half = size / 2;
  let extent = cone || 0;
  const projected = shapes.map((s) => ({ ...s, xy: s.polygon.map(([r, d]) => tangent(centre[0], centre[1], r, d)) }));
  for (const s of projected) for (const [x, y] of s.xy) extent = Math.max(extent, Math.abs(x), Math.abs(y));
  extent = (extent || 0.05) * 1.1;
  const scale = (half - 24) / extent; // pixels per degree
  const px = ([x, y]) => `${(half - x * scale).toFixed(1)},${(half - y * scale).toFixed(1)}`; // east to the left
  const drawn = projected
    .filter((s) => s.xy.every(([x, y]) => Number.isFinite(x) && Number.isFinite(y)))
    .sort((a, b) => a.row.calib_level - b.row.calib_level);
  const links = drawn.map((s) => {
    const target = s.row.observations && s.row.observations[0];
    const label = `${s.row.obs_id} (level ${s.row.calib_level}, ${s.row.filters})`;
    const xs = s.xy.map(([x]) => x * scale);
    const ys = s.xy.map(([, y]) => y * scale);
    const tiny = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) < 4;
    const middle = [xs.reduce((t, v) => t + v, 0) / xs.length / scale, ys.reduce((t, v) => t + v, 0) / ys.length / scale];
    const [cx, cy] = px(middle).split(",");
    // A footprint too small to see at this scale (results spread over the sky) is a dot.
    const shape = tiny
      ? svg("circle", { class: `footprint level${s.row.calib_level}`, cx, cy, r: 4 }, svg("title", {}, label))
      : svg("polygon", { class: `footprint level${s.row.calib_level}`, points: s.xy.map(px).join(" ") },
        svg("title", {}, label));
    return target ? svg("a", { href: `#/observation/${encodeURIComponent(target)}`, "aria-label": label }, shape) : shape;
  });
  const bar = niceBar(extent);
  const plot = svg("svg", {
    viewBox: `0 0 ${size} ${size}`, role: "group",
    "aria-label": `Footprints of ${footprints.length} rows around RA ${centre[0].toFixed(4)}, Dec ${centre[1].toFixed(4)}`,
  },
  links,
  cone ? svg("circle", { class: "cone", cx: half, cy: half, r: (cone * scale).toFixed(1) }) : null,
  svg("path", { class: "tick", d: `M${half - 6},${half}h12M${half},${half - 6}v12` }),
  svg("path", { class: "tick", d: `M${size - 20},${size - 20}v-28M${size - 20},${size - 20}h-28` }),
  svg("text", { class: "label", x: size - 24, y: size - 52 }, "N"),
  svg("text", { class: "label", x: size - 62, y: size - 16 }, "E"),
  svg("path", { class: "tick", d: `M14,${size - 16}h${(bar.degrees * scale).toFixed(1)}` }),
  svg("text", { class: "label", x: 14, y: size - 22 }, bar.label));
  fill(container, h("figure", { class: "sky" }, plot,
    h("figcaption", {}, `Footprints (s_region) of this page's observations around RA ${centre[0].toFixed(4)}°, `
      + `Dec ${centre[1].toFixed(4)}°${cone ? `; the dashed circle is the ${cone}° search radius` : ""}. `
      + "Blue: Level-3 products; yellow: exposures. North up, east left.")));
}

/** A scale bar no longer than half the plot's half-width: its length in degrees and its label. */
function niceBar(extent) {
  const arcsec = extent * 3600 * 0.5;
  const steps = [0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 18000, 36000];
  const step = steps.filter((s) => s <= arcsec).pop() || steps[0];
  const label = step >= 3600 ? `${step / 3600}°` : step >= 60 ? `${step / 60}′` : `${step}″`;
  return { degrees: step / 3600, label };
}

// ---- the observation page --------------------------------------------------------------

async function observationPage(main, state, obsId, query) {
  const params = searchParamsOf(query);
  const [observation, products] = await Promise.all([
    api(`observations/${encodeURIComponent(obsId)}`),
    allRows(`observations/${encodeURIComponent(obsId)}/products`, []),
  ]);
  const science = products.rows.filter((r) => r.productType !== "PREVIEW");
  const selected = params.get("product") || topProduct(science);
  main.append(
    h("p", {}, h("a", { href: "#/search" }, "Search"), " › ",
      h("a", { href: `#/search?program=${observation.proposal_id}` }, `Program ${observation.proposal_id}`)),
    h("h1", {}, `Observation ${observation.obs_id}: ${observation.target_name}`),
    h("div", { class: "panel" }, h("dl", { class: "facts" },
      fact("Program", `${observation.proposal_id}: ${observation.obs_title} (PI ${observation.proposal_pi})`),
      fact("Instrument", `${observation.instrument_name}, ${observation.filters}`),
      fact("Target", `${observation.target_name} at RA ${fixed(observation.s_ra)}°, Dec ${fixed(observation.s_dec)}°`),
      fact("Observed", `${mjdToIso(observation.t_min)} to ${mjdToIso(observation.t_max)} UTC, ${fixed(observation.t_exptime, 1)} s`),
      fact("Calibration level", observation.calib_level),
      fact("Data", rightsBadge(observation.dataRights, mjdToIso(observation.t_obs_release, false))))),
  );
  if (whoami) {
    const number = parseInt(observation.obs_id.slice(7, 10), 10);
    main.append(h("p", {}, h("a", {
      href: `#/account?program=${observation.proposal_id}&observation=${number}`,
    }, "Request reprocessing of this observation")));
  }
  const mrp = h("input", { type: "checkbox", id: "mrp", checked: params.get("mrp") === "1" });
  const listing = h("div", {});
  const detail = h("section", { class: "detail", "aria-labelledby": "detail-heading" });
  main.append(
    h("h2", {}, "Previews"), previewGallery(science, products.rows),
    h("h2", {}, "Selected product"), detail,
    h("h2", {}, `Products (${science.length})`),
    h("div", { class: "toolbar" },
      h("span", {}, mrp, " ", h("label", { for: "mrp" }, `${MRP} only`))),
    listing);
  const showProducts = () => {
    fill(listing, productTables(science.filter((r) => !mrp.checked || r.productGroupDescription === MRP),
      (name) => choose(name)));
  };
  const choose = async (name, chosen = true) => {
    for (const tr of listing.querySelectorAll("tr[data-name]")) tr.classList.toggle("selected", tr.dataset.name === name);
    fill(detail, h("p", { class: "note" }, "Loading…"));
    try {
      await productDetail(detail, name, 3);
    } catch (exc) {
      fill(detail, message("error", `No detail for ${name}: ${exc.detail || exc.message}`));
    }
    if (chosen) {
      // The address names the product shown, for a bookmark or a link (no new page: no hashchange).
      const next = new URLSearchParams(params);
      next.set("product", name);
      history.replaceState(null, "", `#/observation/${encodeURIComponent(obsId)}?${next}`);
      const heading = detail.querySelector("#detail-heading") || detail;
      heading.setAttribute("tabindex", "-1");
      heading.focus();
      heading.scrollIntoView({ block: "start" });
    }
  };
  mrp.addEventListener("change", showProducts);
  showProducts();
  if (selected) await choose(selected, false);
}

observationPage.nav = "search";

function fact(term, ...description) {
  return [h("dt", {}, term), h("dd", {}, ...description)];
}

function fixed(value, digits = 5) {
  return value === null || value === undefined ? "?" : Number(value).toFixed(digits);
}

/** The product an observation page opens on: its highest-level FITS science product,
 *  a minimum recommended one first. */
function topProduct(rows) {
  const score = (r) => r.calib_level * 4 + (r.productFilename.endsWith(".fits") ? 2 : 0)
    + (r.productGroupDescription === MRP ? 1 : 0);
  const data = rows.filter((r) => r.productType === "SCIENCE").sort((a, b) => score(b) - score(a));
  return data.length ? data[0].productFilename : null;
}

function previewGallery(science, all) {
  const top = Math.max(...science.map((r) => r.calib_level), 0);
  // A product's preview is <stem>_preview.png (docs/preview.md): …_i2d_preview.png, …_phot_preview.png.
  const names = new Set(all.filter((r) => r.productType === "PREVIEW").map((r) => r.productFilename));
  const shown = science.filter((r) => r.productType === "SCIENCE" && r.calib_level === top
    && names.has(`${r.productFilename.replace(/\.[a-z0-9]+$/i, "")}_preview.png`));
  if (!shown.length) return h("p", { class: "note" }, "No previews yet.");
  return h("div", { class: "previews" }, shown.slice(0, 8).map((row) => {
    const img = h("img", { alt: `Preview of ${row.productFilename}`, width: 260, height: 260 });
    showImage(img, `previews/${encodeURIComponent(row.productFilename)}`);
    return h("figure", {}, img, h("figcaption", {}, row.productFilename));
  }));
}

function productTables(rows, onSelect) {
  const levels = [...new Set(rows.map((r) => r.calib_level))].sort((a, b) => b - a);
  if (!levels.length) return [h("p", { class: "note" }, "No products match.")];
  return levels.map((level) => {
    const group = rows.filter((r) => r.calib_level === level);
    const heading = LEVEL_NAMES[level] || `Level ${level}`;
    const id = `level-${level}`.replace("-", "_");
    return h("section", { "aria-labelledby": id },
      h("h3", { id }, `${heading} (${group.length})`),
      h("div", { class: "toolbar" }, h("button", {
        type: "button", class: "secondary", onclick: () => {
          basket.add(group);
          announce(`${group.length} products added to the basket`);
        },
      }, `Add all ${group.length} to basket`)),
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["File", "Type", "Size", "Data", "Revision", ""].map((t, i) => h("th", {
          scope: "col", class: i === 2 || i === 4 ? "num" : null,
        }, t || h("span", { class: "visually-hidden" }, "Basket"))))),
        h("tbody", {}, group.map((row) => {
          const toggle = basketToggle(row);
          return h("tr", { "data-name": row.productFilename },
            h("td", { class: "filename" }, h("button", {
              type: "button", class: "link", onclick: () => onSelect(row.productFilename),
              "aria-label": `Show ${row.productFilename}`,
            }, row.productFilename)),
            h("td", {}, `${row.productSubGroupDescription} `, h("span", { class: "kind" }, row.productType.toLowerCase())),
            h("td", { class: "num" }, humanSize(row.size)),
            h("td", {}, rightsBadge(row.dataRights, dateOnly(row.public_release_date))),
            h("td", { class: "num" }, row.revision),
            h("td", {}, toggle));
        })))));
  });
}

// ---- one product: linkages, provenance, revisions -------------------------------------

async function productDetail(container, filename, headingLevel) {
  const detail = await api(`products/${encodeURIComponent(filename)}`);
  const product = detail.product;
  const hx = `h${headingLevel}`;
  const sub = `h${headingLevel + 1}`;
  const minor = `h${headingLevel + 2}`;
  const preview = detail.previews.find((p) => /\.(png|jpe?g)$/i.test(p.productFilename));
  let image = null;
  if (preview) {
    image = h("img", { class: "preview", alt: `Preview of ${filename}` });
    showImage(image, `previews/${encodeURIComponent(filename)}`);
  }
  const showSuperseded = h("input", { type: "checkbox", id: "superseded" });
  const revisions = h("div", {});
  const renderRevisions = () => fill(revisions, revisionTable(filename, detail.revisions, showSuperseded.checked));
  showSuperseded.addEventListener("change", renderRevisions);
  renderRevisions();
  const links = detail.linkages;
  fill(container, [
    h(hx, { id: "detail-heading", class: "filename" }, product.productFilename),
    h("div", { class: "layout" },
      h("div", {},
        h("dl", { class: "facts" },
          fact("Product", `${product.productSubGroupDescription} (${product.productType.toLowerCase()}), level ${product.calib_level}`),
          fact("Observation", /^jw\d{8}$/.test(links.observation)
            ? h("a", { href: `#/observation/${links.observation}` }, links.observation) : links.observation,
          ` (${links.linkage})`),
          fact("Size", `${humanSize(product.size)} (${product.size} bytes)`),
          fact("SHA-256", h("code", {}, product.sha256)),
          fact("Archived", `${String(product.archived_date).slice(0, 19).replace("T", " ")} UTC`),
          fact("Data", rightsBadge(product.dataRights, dateOnly(product.public_release_date)))),
        h("div", { class: "toolbar" }, downloadButton(product.productFilename), basketToggle(product))),
      image ? h("div", {}, image) : h("div", {})),
    h(sub, {}, "Linkages"),
    linkageSection(minor, "Made from", links.antecedents, "Nothing: a raw product."),
    linkageSection(minor, "Made into", links.children, "Nothing yet."),
    links.associations.length ? h("div", {}, h(minor, {}, "Associations listing it"),
      h("ul", { class: "tree" }, links.associations.map((row) => h("li", {}, productLink(row.productFilename),
        " ", h("span", { class: "kind" }, row.productSubGroupDescription.toLowerCase()))))) : null,
    links.guiding.length ? linkageSection(minor, "Guide-star data", links.guiding, "") : null,
    links.multiplicity.length ? linkageSection(minor, "Same exposure, other files", links.multiplicity, "") : null,
    h(sub, {}, "Provenance"),
    h("dl", { class: "facts" },
      fact("Software", detail.provenance.software_version),
      fact("Reference context", links.reference_context ? h("a", {
        href: apiUrl("references", [["context", links.reference_context.name]]).href,
      }, links.reference_context.name) : (detail.provenance.reference_context || "none")),
      fact("Inputs", detail.provenance.inputs.length ? h("ul", { class: "tree" }, detail.provenance.inputs.map((input) =>
        h("li", {}, input.is_product ? productLink(input.name) : h("span", { class: "filename" }, input.name))))
        : "none")),
    links.contributing.length ? h("div", {}, h(minor, {}, "Reference files"),
      h("ul", { class: "tree" }, links.contributing.map((ref) => h("li", {},
        ref.dataURL ? h("a", { href: ref.dataURL, class: "filename" }, ref.productFilename)
          : h("span", { class: "filename" }, ref.productFilename),
        " ", h("span", { class: "kind" }, `${ref.reftype || ref.productType.toLowerCase()}${ref.in_context ? "" : ", outside the context"}`))))) : null,
    h(sub, {}, "Revisions"),
    h("p", {}, showSuperseded, " ", h("label", { for: "superseded" }, "Show superseded revisions")),
    revisions,
  ]);
}

function productLink(name) {
  return h("a", { href: `#/product/${encodeURIComponent(name)}`, class: "filename" }, name);
}

function linkageSection(tag, title, nodes, empty) {
  return h("div", {}, h(tag, {}, title),
    nodes.length ? linkageTree(nodes) : h("p", { class: "note" }, empty));
}

function linkageTree(nodes) {
  return h("ul", { class: "tree" }, nodes.map((node) => h("li", {},
    h("span", { class: "badge level" }, `L${node.calib_level}`), " ",
    productLink(node.productFilename), " ",
    h("span", { class: "kind" }, node.kind === "prerequisite" ? "association that made it" : node.kind),
    node.links.length ? linkageTree(node.links) : null)));
}

const REVISION_FIELDS = [["prvversion", "software"], ["crds_context", "context"]];

/** Every revision of a product, newest first; superseded ones on request. Each says why it
 *  was made and what changed from the one before: the archive's comparison of the two
 *  files, and the software or reference context when they differ. */
function revisionTable(filename, revisions, showSuperseded) {
  const ordered = [...revisions].sort((a, b) => a.revision - b.revision);
  const changes = new Map();
  for (let i = 1; i < ordered.length; i += 1) {
    const before = ordered[i - 1];
    const after = ordered[i];
    const changed = REVISION_FIELDS.filter(([key]) => before[key] !== after[key])
      .map(([key, name]) => `${name} ${before[key]} → ${after[key]}`);
    if (after.changes) changed.push(after.changes);
    else if (before.sha256 !== after.sha256) changed.push(`new content (${humanSize(before.size)} → ${humanSize(after.size)})`);
    changes.set(after.revision, changed.length ? changed.join("; ") : "the same file remade");
  }
  const shown = ordered.filter((r) => showSuperseded || r.state !== "superseded").reverse();
  const hidden = ordered.length - shown.length;
  const when = (value) => (value ? String(value).slice(0, 16).replace("T", " ") : "");
  return h("div", {},
    h("table", {}, h("thead", {}, h("tr", {}, ["Revision", "State", "Archived", "Superseded", "Software", "Context",
      "Why", "What changed", ""].map((t) => h("th", { scope: "col" }, t || h("span", { class: "visually-hidden" }, "File"))))),
    h("tbody", {}, shown.map((r) => h("tr", {},
      h("td", { class: "num" }, r.revision), h("td", {}, r.state),
      h("td", {}, when(r.archived_date)), h("td", {}, when(r.superseded_date)),
      h("td", {}, r.prvversion), h("td", {}, r.crds_context || ""),
      h("td", {}, r.reason || (r.revision === 1 ? "" : "operational processing")),
      h("td", {}, changes.get(r.revision) || "first revision"),
      h("td", {}, r.is_current ? null : downloadButton(filename, { revision: r.revision, secondary: true })))))),
    hidden ? h("p", { class: "note" }, `${hidden} superseded revision${hidden === 1 ? "" : "s"} hidden.`) : null);
}

/** A button that downloads a product's file (its current revision, or ``revision``). */
function downloadButton(filename, { revision = null, label = "Download", secondary = false } = {}) {
  const status = h("span", { role: "status" });
  const button = h("button", {
    type: "button", class: secondary ? "secondary" : null,
    "aria-label": revision === null ? null : `Download revision ${revision} of ${filename}`,
    onclick: async () => {
      status.replaceChildren();
      try {
        const params = revision === null ? [] : [["revision", revision]];
        const response = await api(`download/${encodeURIComponent(filename)}`, { raw: true, params });
        await saveAs(response, filename);
      } catch (exc) {
        fill(status, message("error", `Download refused: ${exc.detail}`));
      }
    },
  }, label);
  return h("span", {}, button, status);
}

async function productPage(main, state, filename) {
  main.append(h("p", {}, h("a", { href: "#/search" }, "Search"), " › product"));
  const detail = h("section", { class: "detail", "aria-labelledby": "detail-heading" });
  main.append(detail);
  await productDetail(detail, filename, 1);
}

productPage.nav = "search";

// ---- the basket page -----------------------------------------------------------------

async function basketPage(main) {
  main.append(h("h1", {}, "Download basket"));
  const body = h("div", {});
  main.append(body);
  const render = () => {
    const items = Object.values(basket.items()).sort((a, b) => a.filename.localeCompare(b.filename));
    if (!items.length) {
      fill(body, h("p", {}, "The basket is empty. Add products from an observation's page: ",
        h("a", { href: "#/search" }, "search"), "."));
      return;
    }
    const total = items.reduce((sum, item) => sum + (item.size || 0), 0);
    const exclusive = items.filter((item) => item.rights !== "PUBLIC");
    const format = h("select", { id: "bundle-format" },
      [["zip", "zip"], ["tar", "tar"], ["tar.gz", "tar.gz"], ["curl", "curl script (any size; fetches each file)"]]
        .map(([v, t]) => h("option", { value: v }, t)));
    const outcome = h("div", { "aria-live": "polite" });
    const download = h("button", { type: "button", id: "download-basket" }, "Download");
    download.addEventListener("click", async () => {
      fill(outcome, h("p", { class: "note" }, "Preparing the bundle…"));
      download.disabled = true;
      try {
        const response = await api("bundles", {
          method: "POST", raw: true, body: { filenames: items.map((i) => i.filename), format: format.value },
        });
        await saveAs(response, `jwst-dms.${format.value === "curl" ? "sh" : format.value}`);
        fill(outcome, message("info", `Downloaded ${items.length} files as ${format.value}.`));
      } catch (exc) {
        const hint = exc.status === 401 ? " Sign in with a token of the PI or an authorized user to download them."
          : exc.status === 413 ? " Choose the curl script, or download fewer files at once." : "";
        fill(outcome, message("error", `Download refused: ${exc.detail}.${hint}`));
      } finally {
        download.disabled = false;
      }
    });
    const overCap = total > config.bundle_max_bytes;
    fill(body,
      h("p", { id: "basket-total" }, `${items.length} file${items.length === 1 ? "" : "s"}, ${humanSize(total)} in all. `,
        `A zip or tar bundle holds at most ${humanSize(config.bundle_max_bytes)}.`),
      overCap ? message("warn", `The basket is larger than the bundle cap (${humanSize(config.bundle_max_bytes)}): `
        + "download it as a curl script, or remove files.") : null,
      items.length > config.bundle_max_files ? message("warn", `One bundle holds at most ${config.bundle_max_files} `
        + "files: remove some, and download the rest in another bundle.") : null,
      exclusive.length > 0 && !whoami ? message("warn", `${exclusive.length} of these files are under exclusive access `
        + `(the earliest release is ${exclusive.map((i) => i.release).sort()[0]}). `, h("a", { href: "#/account" }, "Sign in"),
      " with a token of the program's PI or an authorized user to download them.") : null,
      h("div", { class: "toolbar" },
        h("label", { for: "bundle-format" }, "Format"), format, download,
        h("button", { type: "button", class: "danger", onclick: () => { basket.save({}); render(); announce("The basket is empty"); } },
          "Empty the basket")),
      outcome,
      h("div", { class: "scroll" }, h("table", {},
        h("thead", {}, h("tr", {}, ["File", "Observation", "Type", "Level", "Size", "Data", ""].map((t, i) => h("th", {
          scope: "col", class: i === 3 || i === 4 ? "num" : null,
        }, t || h("span", { class: "visually-hidden" }, "Remove"))))),
        h("tbody", {}, items.map((item) => h("tr", {},
          h("td", {}, productLink(item.filename)),
          h("td", {}, /^jw\d{8}$/.test(item.obs_id) ? h("a", { href: `#/observation/${item.obs_id}` }, item.obs_id) : item.obs_id),
          h("td", {}, `${item.suffix} `, h("span", { class: "kind" }, (item.type || "").toLowerCase())),
          h("td", { class: "num" }, item.level),
          h("td", { class: "num" }, humanSize(item.size)),
          h("td", {}, rightsBadge(item.rights, item.release)),
          h("td", {}, h("button", {
            type: "button", class: "secondary", "aria-label": `Remove ${item.filename}`,
            onclick: () => { basket.remove([item.filename]); render(); announce(`${item.filename} removed`); },
          }, "Remove"))))))),
    );
  };
  render();
}

basketPage.nav = "basket";

// ---- the account page: sign in, subscriptions, reprocessing -------------------------------

async function accountPage(main, state, _name, query) {
  const params = searchParamsOf(query);
  if (!whoami) {
    main.append(h("h1", {}, "Sign in"));
    const input = h("input", { type: "password", autocomplete: "off", spellcheck: "false", required: true });
    const outcome = h("div", {});
    const form = h("form", { class: "panel" },
      field("token", "API token", input),
      h("p", { class: "note" }, "Your archive operators make tokens (", h("code", {}, "dms token create <user>"),
        "). This page keeps yours in this tab's session storage only: it is forgotten when the tab closes or you sign out."),
      h("div", { class: "actions" }, h("button", { type: "submit" }, "Sign in")), outcome);
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      try {
        await signIn(input.value.trim());
        announce(`Signed in as ${whoami}`);
        route();
      } catch (exc) {
        fill(outcome, message("error", `Not signed in: ${exc.detail}`));
      }
    });
    main.append(form);
    return;
  }
  main.append(h("h1", {}, `Account: ${whoami}`),
    h("p", {}, h("button", { type: "button", class: "secondary", onclick: () => { signOut(); route(); } }, "Sign out")));
  const subscriptions = h("section", { "aria-labelledby": "subs-heading" });
  const reprocessing = h("section", { "aria-labelledby": "repro-heading" });
  const programs = h("section", { "aria-labelledby": "programs-heading" });
  main.append(programs, subscriptions, reprocessing);
  await Promise.all([programSection(programs), subscriptionSection(subscriptions),
    reprocessingSection(reprocessing, state, params)]);
}

/** The programs whose PI or authorized user the signed-in user is: what they may read
 *  before its release, and reprocess. */
async function programSection(section) {
  section.append(h("h2", { id: "programs-heading" }, "Your programs"));
  let rows;
  try {
    rows = await api("programs", { params: [["mine", "true"]] });
  } catch (exc) {
    section.append(message("error", `Could not list your programs: ${exc.detail}`));
    return;
  }
  if (!rows.length) {
    section.append(h("p", { class: "note" }, "You are no program's PI or authorized user: you read public data only."));
    return;
  }
  section.append(h("datalist", { id: "your-programs" }, rows.map((p) => h("option", { value: p.proposal_id }, p.title))),
    h("table", {}, h("thead", {}, h("tr", {}, ["Program", "Title", "You are", "Observations", ""]
      .map((t) => h("th", { scope: "col" }, t || h("span", { class: "visually-hidden" }, "Actions"))))),
    h("tbody", {}, rows.map((p) => h("tr", {},
      h("td", {}, h("a", { href: `#/search?program=${p.proposal_id}` }, p.program)),
      h("td", {}, p.title),
      h("td", {}, p.authorized_users === null ? "authorized" : "its PI"),
      h("td", {}, p.observations.map((o, i) => [i ? ", " : "", h("a", { href: `#/observation/${o}` }, o)])),
      h("td", {}, h("button", {
        type: "button", class: "secondary", "aria-label": `Reprocess program ${p.proposal_id}`,
        onclick: () => {
          const form = document.querySelector("form[aria-label='Request reprocessing']");
          form.elements["re-program"].value = p.proposal_id;
          form.elements["re-reason"].focus();
        },
      }, "Reprocess…")))))));
}

accountPage.nav = "account";

async function subscriptionSection(section) {
  const list = h("div", {});
  const history = h("div", {});
  const outcome = h("div", {});
  const types = ["new", "first", "reprocessed", "public", "reference"];
  const form = h("form", { class: "search", "aria-label": "Subscribe" },
    field("sub-program", "Program", h("input", { inputmode: "numeric", required: true, placeholder: "e.g. 1234" })),
    field("sub-channel", "Channel", select([["email", "e-mail"], ["webhook", "webhook"]], "email")),
    field("sub-target", "Address", h("input", { required: true, placeholder: "you@example.org or https://…" })),
    field("sub-frequency", "Frequency", select([["immediate", "immediately"], ["hourly", "hourly digest"],
      ["daily", "daily digest"], ["weekly", "weekly digest"]], "immediate")),
    h("fieldset", {}, h("legend", {}, "Notify me of"), types.map((t) => h("label", {},
      h("input", { type: "checkbox", name: "sub-types", value: t, checked: t === "new" || t === "reprocessed" }), ` ${t}`))),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Subscribe")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const el = form.elements;
    const body = {
      name: `program ${el["sub-program"].value.trim()}`,
      filters: {
        programs: [el["sub-program"].value.trim()],
        event_types: [...form.querySelectorAll("input[name=sub-types]:checked")].map((c) => c.value),
      },
      channel: el["sub-channel"].value, target: el["sub-target"].value.trim(), frequency: el["sub-frequency"].value,
    };
    try {
      const made = await api("subscriptions", { method: "POST", body });
      const note = made.secret ? ` Its webhook secret, shown this once: ${made.secret}`
        : made.channel === "email" ? " Follow the confirmation link sent to the address before anything is delivered." : "";
      await refresh(); // listed before it is announced
      fill(outcome, message("info", `Subscribed (subscription ${made.id}).${note}`));
    } catch (exc) {
      fill(outcome, message("error", `Not subscribed: ${exc.detail}`));
    }
  });
  const refresh = () => load().catch((exc) => fill(list, message("error", `Could not list your subscriptions: ${exc.detail}`)));
  const load = async () => {
    const rows = await api("subscriptions");
    if (!rows.length) {
      fill(list, h("p", { class: "note" }, "No subscriptions yet."));
      return;
    }
    fill(list, h("table", {},
      h("thead", {}, h("tr", {}, ["Id", "Name", "Programs", "Events", "Channel", "Frequency", "Confirmed", ""]
        .map((t) => h("th", { scope: "col" }, t || h("span", { class: "visually-hidden" }, "Actions"))))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        h("td", {}, row.id), h("td", {}, row.name), h("td", {}, (row.filters.programs || []).join(", ") || "any"),
        h("td", {}, (row.filters.event_types || []).join(", ") || "any"),
        h("td", {}, `${row.channel}: ${row.target}`), h("td", {}, row.frequency), h("td", {}, row.confirmed ? "yes" : "not yet"),
        h("td", {},
          h("button", { type: "button", class: "secondary", onclick: () => showDeliveries(row, history) }, "Deliveries"), " ",
          h("button", {
            type: "button", class: "danger", "aria-label": `Unsubscribe ${row.name}`, onclick: async () => {
              try {
                await api(`subscriptions/${row.id}`, { method: "DELETE" });
                await refresh();
              } catch (exc) {
                fill(outcome, message("error", `Not unsubscribed: ${exc.detail}`));
              }
            },
          }, "Unsubscribe")))))));
  };
  section.append(h("h2", { id: "subs-heading" }, "Subscriptions"), list, history, h("h3", {}, "Subscribe to a program"),
    form, outcome);
  await refresh();
}

async function showDeliveries(subscription, container) {
  fill(container, h("p", { class: "note" }, "Loading deliveries…"));
  try {
    const answer = await api(`subscriptions/${subscription.id}/deliveries`, { params: [["pagesize", 100]] });
    fill(container, h("h3", { id: "deliveries-heading", tabindex: "-1" },
      `Deliveries of "${subscription.name}" (${answer.total})`),
    answer.rows.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Event", "Type", "Status", "Attempts", "Created", "Delivered", "Last error"]
        .map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, answer.rows.map((d) => h("tr", {},
        h("td", { class: "filename" }, d.event_subject || d.event_id), h("td", {}, d.notification_type),
        h("td", {}, d.status), h("td", { class: "num" }, d.attempts),
        h("td", {}, String(d.created_at).slice(0, 16).replace("T", " ")),
        h("td", {}, d.delivered_at ? String(d.delivered_at).slice(0, 16).replace("T", " ") : ""),
        h("td", {}, d.last_error || "")))))
      : h("p", { class: "note" }, "Nothing delivered yet."));
    container.querySelector("h3").focus();
  } catch (exc) {
    fill(container, message("error", `Could not list the deliveries: ${exc.detail}`));
  }
}

async function reprocessingSection(section, state, params) {
  const list = h("div", {});
  const outcome = h("div", { "aria-live": "polite" });
  const form = h("form", { class: "search", "aria-label": "Request reprocessing" },
    field("re-program", "Program", h("input", {
      inputmode: "numeric", required: true, value: params.get("program") || "", list: "your-programs",
    })),
    field("re-observations", "Observations", h("input", { value: params.get("observation") || "", placeholder: "all, or 1, 2" }),
      "(numbers)"),
    field("re-stage", "From stage", select([["detector1", "detector1 (from raw)"], ["stage2", "stage 2"],
      ["stage3", "stage 3"]], "stage2")),
    field("re-context", "Reference context", h("input", { placeholder: "newest" })),
    h("div", { class: "field wide" }, h("label", { for: "re-reason" }, "Reason"),
      h("textarea", { id: "re-reason", name: "re-reason", rows: 2, required: true })),
    h("div", { class: "actions" }, h("button", { type: "submit" }, "Request reprocessing")));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const el = form.elements;
    const observations = el["re-observations"].value.split(/[\s,]+/).filter(Boolean).map(Number);
    if (observations.some((n) => !Number.isInteger(n) || n < 1)) {
      fill(outcome, message("error", "Observations are numbers, e.g. 1, 2 (or empty for all)."));
      return;
    }
    const body = {
      program: el["re-program"].value.trim(), scope: { observations }, from_stage: el["re-stage"].value,
      reason: el["re-reason"].value.trim(),
    };
    if (el["re-context"].value.trim()) body.reference_context = el["re-context"].value.trim();
    try {
      const made = await api("reprocessing", { method: "POST", body });
      await refresh();
      fill(outcome, message("info", `Reprocessing request ${made.id}: ${made.state}.`));
    } catch (exc) {
      fill(outcome, message("error", `Not requested: ${exc.detail}`));
    }
  });
  let timer = null;
  const refresh = () => load().catch((exc) => fill(list, message("error", `Could not list reprocessing requests: ${exc.detail}`)));
  const load = async () => {
    clearTimeout(timer);
    const rows = await api("reprocessing", { params: [["limit", 20]] });
    fill(list, rows.length ? h("table", {},
      h("thead", {}, h("tr", {}, ["Request", "Program", "From", "State", "Progress", "Reason", ""]
        .map((t) => h("th", { scope: "col" }, t || h("span", { class: "visually-hidden" }, "Actions"))))),
      h("tbody", {}, rows.map((row) => h("tr", {},
        h("td", { class: "mono" }, row.id.slice(0, 8)), h("td", {}, row.program), h("td", {}, row.from_stage),
        h("td", {}, row.state),
        h("td", {}, h("progress", { max: Math.max(row.progress.units, 1), value: row.progress.ended,
          "aria-label": `request ${row.id.slice(0, 8)} progress` }),
        ` ${row.progress.done}/${row.progress.units} done${row.progress.failed ? `, ${row.progress.failed} failed` : ""}`
          + (row.progress.eta_seconds ? `, about ${Math.ceil(row.progress.eta_seconds / 60)} min left` : "")),
        h("td", {}, row.reason),
        h("td", {}, ["queued", "running"].includes(row.state) ? h("button", {
          type: "button", class: "danger", onclick: async () => {
            try {
              await api(`reprocessing/${row.id}/cancel`, { method: "POST" });
              await refresh();
            } catch (exc) {
              fill(outcome, message("error", `Not cancelled: ${exc.detail}`));
            }
          },
        }, "Cancel") : null)))))
      : h("p", { class: "note" }, "No reprocessing requests of your programs."));
    if (rows.some((row) => ["queued", "running"].includes(row.state)) && current === state) {
      timer = setTimeout(refresh, 5000);
    }
  };
  section.append(h("h2", { id: "repro-heading" }, "Reprocessing"), list, h("h3", {}, "Request reprocessing"), form, outcome);
  await refresh();
}

// ---- start ------------------------------------------------------------------------------

async function start() {
  showBasketCount();
  window.addEventListener("storage", (event) => { if (event.key === BASKET_KEY) showBasketCount(); });
  try {
    config = await api("portal/config");
  } catch { /* keep the defaults */ }
  if (token()) {
    try {
      const who = await api("whoami");
      whoami = who.anon ? null : who.user;
    } catch {
      sessionStorage.removeItem(TOKEN_KEY);
    }
  }
  showAccount();
  // The skip link moves the focus to the content and leaves the address alone: "#main" is no
  // route, and following it would redraw the page under someone already typing in its form.
  document.querySelector("a.skip").addEventListener("click", (event) => {
    event.preventDefault();
    document.getElementById("main").focus();
  });
  window.addEventListener("hashchange", route);
  await route();
  document.body.dataset.ready = "true";
}

start();
