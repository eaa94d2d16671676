// The console of `connector serve`: every form here is generated from the manifests the
// service publishes. Data reaches the page only through textContent and form values, and
// secrets (the API key, secret config fields) live only in password inputs.
"use strict";

const $ = (id) => document.getElementById(id);
const state = { capabilities: [], connectors: [], connections: [], described: null };

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === undefined || value === null) continue;
    if (key === "text") node.textContent = value;
    else if (key === "className") node.className = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children) if (child) node.append(child);
  return node;
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  const key = $("api-key").value.trim();
  if (key) headers.Authorization = "Bearer " + key;
  const init = { method, headers, credentials: "omit", cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  let data = null;
  try { data = await response.json(); } catch (_) { data = { code: "invalid_response", message: "the service did not answer JSON" }; }
  return { ok: response.ok, status: response.status, data };
}

function typesOf(schema) {
  if (Array.isArray(schema.type)) return schema.type;
  return schema.type ? [schema.type] : [];
}

// One input for one schema property: select for enums, checkbox for booleans, number
// inputs for numbers, a JSON text area for objects and arrays, a password input for secrets.
function field(prefix, name, schema, required, example) {
  const id = `${prefix}-${name}`;
  const types = typesOf(schema);
  let input;
  if (Array.isArray(schema.enum)) {
    input = el("select", { id, name });
    if (!required) input.append(el("option", { value: "", text: "(none)" }));
    for (const value of schema.enum) input.append(el("option", { value: JSON.stringify(value), text: String(value) }));
  } else if (types.length === 1 && types[0] === "boolean") {
    input = el("input", { id, name, type: "checkbox" });
  } else if (types.includes("object") || types.includes("array")) {
    input = el("textarea", { id, name, spellcheck: "false", placeholder: example === undefined ? "JSON" : "e.g. " + JSON.stringify(example) });
  } else {
    const secret = schema.secret === true || schema.writeOnly === true || schema.format === "password";
    const numeric = types.length > 0 && types.every((t) => t === "number" || t === "integer");
    input = el("input", {
      id, name,
      type: secret ? "password" : numeric ? "number" : "text",
      autocomplete: secret ? "new-password" : "off",
      spellcheck: "false",
      placeholder: example === undefined || secret ? (schema.default !== undefined ? "default " + schema.default : "") : "e.g. " + example,
    });
    if (numeric && schema.minimum !== undefined) input.min = schema.minimum;
    if (numeric && schema.maximum !== undefined) input.max = schema.maximum;
  }
  input.dataset.types = JSON.stringify(types);
  if (required) input.setAttribute("aria-required", "true");
  const label = el("label", { for: id }, schema.title || name, required ? el("span", { className: "required", text: " *" }) : null);
  const wrap = el("div", { className: "field", id: `field-${id}` }, label, input);
  const description = schema.description || "";
  if (description) wrap.append(el("p", { className: "hint", text: description }));
  wrap.append(el("p", { className: "fault", id: `fault-${id}`, role: "alert", hidden: true }));
  return wrap;
}

function buildForm(container, prefix, schema, example) {
  container.replaceChildren();
  const required = new Set(schema.required || []);
  const properties = schema.properties || {};
  for (const [name, spec] of Object.entries(properties)) {
    container.append(field(prefix, name, spec, required.has(name), example ? example[name] : undefined));
  }
  if (!Object.keys(properties).length) container.append(el("p", { className: "hint", text: "This capability takes no input." }));
}

function readForm(container) {
  const out = {};
  for (const input of container.querySelectorAll("input, select, textarea")) {
    const types = JSON.parse(input.dataset.types || "[]");
    if (input.type === "checkbox") { out[input.name] = input.checked; continue; }
    const text = input.value;
    if (text === "") continue;
    if (input.tagName === "SELECT") out[input.name] = JSON.parse(text);
    else if (input.type === "number") out[input.name] = Number(text);
    else if (input.tagName === "TEXTAREA" && !types.includes("string")) {
      try { out[input.name] = JSON.parse(text); } catch (_) { out[input.name] = text; }
    } else out[input.name] = text;
  }
  return out;
}

function fillForm(container, values) {
  for (const input of container.querySelectorAll("input, select, textarea")) {
    if (!(input.name in values) || input.type === "password") continue;
    const value = values[input.name];
    if (input.type === "checkbox") input.checked = Boolean(value);
    else if (input.tagName === "SELECT") input.value = JSON.stringify(value);
    else input.value = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
}

function clearFaults() {
  for (const node of document.querySelectorAll(".fault")) { node.hidden = true; node.textContent = ""; }
  for (const node of document.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
}

// `$.accountId` or `$.jsonBody[3].events` names the field `accountId` / `jsonBody`.
function fieldOf(path) {
  const match = /^\$\.([^.[\]]+)/.exec(path || "");
  return match ? match[1] : null;
}

function showOutcome({ ok, data }) {
  $("outcome").hidden = false;
  clearFaults();
  const error = $("error");
  const result = $("result");
  if (ok) {
    error.hidden = true;
    result.hidden = false;
    result.textContent = JSON.stringify(data, null, 2);
    return;
  }
  result.hidden = true;
  error.hidden = false;
  error.replaceChildren(el("strong", { text: data.message || "the call failed" }),
    el("div", { className: "code", text: `${data.code || "error"} (${data.category || "?"}) · correlation id ${data.correlation_id || "-"}` }));
  const prefix = data.category === "config" && mode() === "config" ? "config" : "input";
  const unplaced = el("ul");
  for (const fault of data.faults || []) {
    const name = fieldOf(fault.path);
    const slot = name && $(`fault-${prefix}-${name}`);
    if (slot) {
      slot.hidden = false;
      slot.textContent = (slot.textContent ? slot.textContent + "; " : "") + (fault.path === `$.${name}` ? "" : fault.path + ": ") + fault.message;
      $(`field-${prefix}-${name}`).classList.add("invalid");
    } else {
      unplaced.append(el("li", { text: `${fault.path}: ${fault.message}` }));
    }
  }
  if (unplaced.childElementCount) error.append(unplaced);
}

function mode() { return $("mode-config").checked ? "config" : "connection"; }

function renderConnections() {
  const select = $("connection");
  select.replaceChildren(...state.connections.map((c) => el("option", { value: c.name, text: `${c.name} (${c.connector})` })));
  if (!state.connections.length) {
    select.append(el("option", { value: "", text: "(no named connections)" }));
  }
  const noneNamed = !state.connections.length;
  if (noneNamed) { $("mode-config").checked = true; }
  onModeChange();
}

function allowedCapabilities() {
  if (mode() === "config") return state.capabilities.filter((c) => c.connector === $("connector").value);
  const connection = state.connections.find((c) => c.name === $("connection").value);
  if (!connection) return [];
  return state.capabilities.filter((c) => c.connector === connection.connector &&
    (connection.capabilities === null || connection.capabilities.includes(c.name) || connection.capabilities.includes(c.id)));
}

function renderCapabilities() {
  const select = $("capability");
  const previous = select.value;
  const allowed = allowedCapabilities();
  select.replaceChildren(...allowed.map((c) => el("option", { value: c.id, text: `${c.title} (${c.id})` })));
  if (allowed.some((c) => c.id === previous)) select.value = previous;
  return onCapabilityChange();
}

function onModeChange() {
  $("connection-box").hidden = mode() !== "connection";
  $("config-box").hidden = mode() !== "config";
  const connection = state.connections.find((c) => c.name === $("connection").value);
  $("connection-description").textContent = connection ? connection.description : "";
  if (mode() === "config") {
    const connector = state.connectors.find((c) => c.id === $("connector").value);
    if (connector && $("config-form").dataset.connector !== connector.id) {
      buildForm($("config-form"), "config", connector.configSchema);
      $("config-form").dataset.connector = connector.id;
    }
  }
  return renderCapabilities();
}

async function onCapabilityChange() {
  const id = $("capability").value;
  if (!id) { $("form").replaceChildren(); state.described = null; return; }
  const answer = await api("GET", `/v1/capabilities/${encodeURIComponent(id)}`);
  if (!answer.ok) { showOutcome(answer); return; }
  state.described = answer.data;
  $("capability-description").textContent = `${answer.data.description} (${answer.data.effect})`;
  const example = (answer.data.examples[0] || {}).input;
  buildForm($("form"), "input", answer.data.inputSchema, example);
  $("example").disabled = !example;
}

async function load() {
  $("status").textContent = "Loading…";
  const [capabilities, connectors, connections] = await Promise.all(
    ["/v1/capabilities", "/v1/connectors", "/v1/connections"].map((path) => api("GET", path)));
  const failed = [capabilities, connectors, connections].find((a) => !a.ok);
  if (failed) {
    $("status").textContent = failed.status === 401 ? "This service requires an API key: enter it above and press Load."
      : `${failed.data.code}: ${failed.data.message}`;
    return;
  }
  state.capabilities = capabilities.data;
  state.connectors = connectors.data;
  state.connections = connections.data;
  $("connector").replaceChildren(...state.connectors.map((c) => el("option", { value: c.id, text: c.title })));
  $("status").textContent = `${state.capabilities.length} capabilities, ${state.connections.length} named connections.`;
  renderConnections();
}

async function run() {
  const id = $("capability").value;
  if (!id) return;
  const body = { properties: readForm($("form")) };
  if (mode() === "config") body.config = readForm($("config-form"));
  else body.connection = $("connection").value;
  $("run").disabled = true;
  try {
    showOutcome(await api("POST", `/v1/capabilities/${encodeURIComponent(id)}/execute`, body));
  } catch (error) {
    showOutcome({ ok: false, data: { code: "network", message: String(error) } });
  } finally {
    $("run").disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("load").addEventListener("click", load);
  $("api-key").addEventListener("keydown", (event) => { if (event.key === "Enter") load(); });
  for (const id of ["mode-connection", "mode-config"]) $(id).addEventListener("change", onModeChange);
  $("connection").addEventListener("change", onModeChange);
  $("connector").addEventListener("change", onModeChange);
  $("capability").addEventListener("change", onCapabilityChange);
  $("run").addEventListener("click", run);
  $("example").addEventListener("click", () => {
    const example = state.described && (state.described.examples[0] || {}).input;
    if (example) fillForm($("form"), example);
  });
  $("form").addEventListener("submit", (event) => { event.preventDefault(); run(); });
  load();
});
