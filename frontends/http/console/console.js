// seqserve's console: reads the REST API, /openapi.json and /metrics of the
// server that serves it. Every text from the server goes into the page
// through textContent (never as HTML), so a label like "<script>" shows
// as text. The token the user types stays in this page's memory.
"use strict";

// `classified`: the last row the form classified, which "Why?" explains.
const state = { token: "", outputModes: [], explainMethods: [], model: null, classified: null,
                lastMetrics: null };

function el(tag, text, attributes) {
  const node = document.createElement(tag);
  if (text !== undefined) node.textContent = String(text);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  return node;
}

function svg(tag, attributes, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [key, value] of Object.entries(attributes || {})) node.setAttribute(key, value);
  if (text !== undefined) node.textContent = String(text);
  return node;
}

async function api(path, options) {
  const headers = Object.assign({}, (options || {}).headers);
  if (state.token) headers["Authorization"] = "Bearer " + state.token;
  const response = await fetch(path, Object.assign({}, options, { headers }));
  const text = await response.text();
  let body = null;
  try { body = JSON.parse(text); } catch (e) { body = text; }
  if (!response.ok) {
    const message = body && body.message ? body.code + ": " + body.message : String(text);
    throw new Error(message);
  }
  return body;
}

function showError(error) {
  const box = document.getElementById("error");
  box.textContent = error ? String(error.message || error) : "";
  box.hidden = !error;
}

// REST answers carry the API's names of output modes ("OUTPUT_MODE_SOFTMAX");
// the page shows them as seqserve prints them everywhere else ("softmax").
function isApiModeName(mode) {
  return mode.startsWith("OUTPUT_MODE_");
}
function modeName(mode) {
  return isApiModeName(mode) ? mode.slice("OUTPUT_MODE_".length).toLowerCase() : mode;
}

// Attribution methods and integration rules likewise: the API's
// "ATTRIBUTION_METHOD_SHAPLEY" is seqserve's "shapley", which requests take too.
function methodName(method) {
  return method.replace(/^ATTRIBUTION_METHOD_/, "").toLowerCase();
}
function ruleName(rule) {
  // The default rule is Gauss-Legendre (classifier.proto).
  const name = rule.replace(/^INTEGRATION_RULE_/, "").toLowerCase();
  return name === "default" ? "gausslegendre" : name;
}

async function loadHeader() {
  const document_ = await api("/openapi.json");
  document.getElementById("version").textContent = "version " + document_.info.version;
  const request = document_.components.schemas["seqserve.v1.ClassifyRequest"];
  // Both spellings are listed; the page uses seqserve's, "softmax".
  state.outputModes = request.properties.output.enum.filter((mode) => !isApiModeName(mode));
  // The server's own list of methods, less DEFAULT (integrated gradients).
  const explain = document_.components.schemas["seqserve.v1.ExplainRequest"];
  state.explainMethods = explain.properties.method.enum
    .filter((method) => method !== "ATTRIBUTION_METHOD_DEFAULT").map(methodName);
  fillExplainMethods();
}

// Keeps the user's choice when the list is filled again (a new token).
function fillExplainMethods() {
  const select = document.getElementById("explain-method");
  const chosen = select.value || "integrated_gradients";
  select.replaceChildren();
  for (const method of state.explainMethods) {
    select.appendChild(el("option", method, { value: method }));
  }
  if (state.explainMethods.includes(chosen)) select.value = chosen;
}

async function refreshHealth() {
  const badge = document.getElementById("health");
  try {
    await api("/readyz");
    badge.textContent = "ready";
    badge.className = "badge ready";
  } catch (e) {
    badge.textContent = "not ready";
    badge.className = "badge not-ready";
  }
}

async function loadModels() {
  const list = await api("/v1/models");
  const body = document.querySelector("#models tbody");
  body.replaceChildren();
  for (const model of list.models || []) {
    const row = el("tr", undefined, { "data-model": model.name });
    row.appendChild(el("td", model.name));
    // "2 available (canary, stable)": a version's labels beside it.
    const versions = (model.versions || [])
      .map((v) => v.version + " " + v.state.replace("MODEL_STATE_", "").toLowerCase() +
                  ((v.labels || []).length ? " (" + v.labels.join(", ") + ")" : ""))
      .join(", ");
    row.appendChild(el("td", versions + (model.error ? " (" + model.error + ")" : "")));
    row.addEventListener("click", () => selectModel(model.name).catch(showError));
    body.appendChild(row);
  }
}

async function selectModel(name) {
  showError(null);
  // TF Serving's GetModelMetadataResponse carries seqserve's own metadata.
  const answer = await api("/v1/models/" + encodeURIComponent(name) + "/metadata");
  const metadata = answer.metadata.seqserve;
  state.model = metadata;
  state.classified = null;
  for (const row of document.querySelectorAll("#models tbody tr")) {
    row.classList.toggle("selected", row.getAttribute("data-model") === name);
  }
  document.getElementById("model-section").hidden = false;
  document.getElementById("result").hidden = true;
  document.getElementById("model-title").textContent = metadata.model + " version " + metadata.version;
  document.getElementById("model-description").textContent = metadata.description || "";
  const facts = document.getElementById("model-facts");
  facts.replaceChildren();
  const add = (term, value) => { facts.appendChild(el("dt", term)); facts.appendChild(el("dd", value)); };
  add("input width", metadata.input_width);
  if (metadata.model_input_width && metadata.model_input_width !== metadata.input_width) {
    add("model input width", metadata.model_input_width);
  }
  const transforms = new Map((metadata.preprocessing || []).map((t) => [t.feature, t]));
  if (transforms.size > 0) {
    add("preprocessing", Array.from(transforms.values()).map(transformName).join("; "));
  }
  add("output width", metadata.output_width);
  // The API's enum name, printed as the config and seqmodel spell it.
  add("precision", (metadata.precision || "PRECISION_FP32").replace("PRECISION_", "").toLowerCase());
  add("labels", (metadata.labels || []).join(", ") || "(none)");
  add("default output", modeName(metadata.default_output));
  add("parameters", metadata.parameter_count);
  const layers = document.getElementById("model-layers");
  layers.replaceChildren();
  for (const layer of metadata.layers || []) layers.appendChild(el("li", layer));

  const fields = document.getElementById("feature-fields");
  fields.replaceChildren();
  const names = metadata.feature_names || [];
  for (let i = 0; i < metadata.input_width; ++i) {
    const label = el("label", (names[i] || "feature " + i) + " ");
    const transform = transforms.get(names[i]);
    let input;
    if (transform && transform.one_hot) {
      // A categorical feature: its categories, as the config lists them.
      input = el("select", undefined, { name: "feature" + i, "data-categorical": "" });
      for (const category of transform.one_hot.categories) {
        input.appendChild(el("option", category, { value: category }));
      }
    } else {
      // A feature with a missing default may be left empty.
      const optional = transform && transform.missing_value !== undefined;
      input = el("input", undefined, Object.assign(
        { type: "number", step: "any", value: "0", name: "feature" + i },
        optional ? { placeholder: "missing" } : { required: "" }));
    }
    label.appendChild(input);
    fields.appendChild(label);
  }
  const select = document.getElementById("output-mode");
  select.replaceChildren();
  for (const mode of state.outputModes) {
    const multiOnly = mode === "softmax" || mode === "log_softmax";
    if (multiOnly && metadata.output_width < 2) continue;
    select.appendChild(el("option", mode, { value: mode }));
  }
  loadDrift(name);
}

// A feature's preprocessing in a few words: "weight: standardize".
function transformName(t) {
  const steps = [];
  if (t.clip) steps.push("clip");
  if (t.standardize) steps.push("standardize");
  if (t.min_max) steps.push("min_max");
  if (t.one_hot) steps.push("one_hot (" + t.one_hot.categories.length + " categories)");
  if (t.missing_value !== undefined || t.missing_category !== undefined) steps.push("missing default");
  return t.feature + ": " + (steps.join(", ") || "as sent");
}

// One small chart: per bin, the baseline's share (grey) over the window's
// (blue), with the PSI in the caption.
function driftChart(title, bins, baseline, recent, psi, threshold) {
  const figure = el("figure", undefined, { class: "drift-chart" });
  const caption = el("figcaption", title + (psi === undefined ? "" : " · PSI " + psi.toFixed(3)));
  if (psi !== undefined && psi > threshold) caption.className = "above";
  figure.appendChild(caption);
  const labelWidth = 90, barWidth = 120, rowHeight = 16;
  const chart = svg("svg", { width: labelWidth + barWidth + 40, height: bins.length * rowHeight,
                             role: "img", "aria-label": title });
  bins.forEach((bin, i) => {
    const y = i * rowHeight;
    const row = svg("g");
    row.appendChild(svg("title", {}, bin + ": baseline " + (100 * baseline[i]).toFixed(1) +
                                      "%, window " + (100 * recent[i]).toFixed(1) + "%"));
    row.appendChild(svg("text", Object.assign({ x: 0, y: y + 12 }, labelFit(bin, labelWidth)), bin));
    row.appendChild(svg("rect", { class: "baseline", x: labelWidth, y: y + 2,
                                  width: Math.max(baseline[i] * barWidth, 1), height: 5 }));
    row.appendChild(svg("rect", { class: "window", x: labelWidth, y: y + 8,
                                  width: Math.max(recent[i] * barWidth, 1), height: 5 }));
    chart.appendChild(row);
  });
  figure.appendChild(chart);
  return figure;
}

// GET /v1/models/{name}/drift: nothing shown for a model without a baseline,
// before its first answered row, or when the server keeps no metrics.
async function loadDrift(name) {
  const box = document.getElementById("drift");
  if (state.model === null || state.model.model !== name) box.hidden = true;
  let report;
  try { report = await api("/v1/models/" + encodeURIComponent(name) + "/drift"); } catch (e) { return; }
  const version = (report.versions || []).find((v) => v.drift);
  if (!version || state.model === null || state.model.model !== name) {
    box.hidden = true;
    return;
  }
  const drift = version.drift;
  document.getElementById("drift-note").textContent =
    "version " + version.version + ": the last " + drift.window_rows + " rows against the " +
    "training data" + (drift.evaluated ? "" : " (PSI from " + drift.min_rows + " rows)") +
    "; warning above PSI " + drift.psi_threshold.toFixed(2) +
    ". Grey: the training data's share of each bin; blue: the window's.";
  const charts = document.getElementById("drift-charts");
  charts.replaceChildren();
  for (const feature of drift.features) {
    charts.appendChild(driftChart(feature.name, feature.bins, feature.baseline, feature.window,
                                  feature.psi, drift.psi_threshold));
  }
  if (drift.prediction) {
    const p = drift.prediction;
    charts.appendChild(driftChart("predicted class", p.labels, p.baseline, p.window, p.psi,
                                  drift.psi_threshold));
  }
  box.hidden = false;
}

// The server's gRPC port, which it writes into the page.
function grpcPort() {
  const meta = document.querySelector('meta[name="seqserve-grpc-port"]');
  return meta && /^[0-9]+$/.test(meta.content) ? meta.content : "8500";
}

function shellQuote(text) {
  return "'" + String(text).replace(/'/g, "'\\''") + "'";
}

// A probability as the chart prints it: four significant digits, in
// exponent form below 0.001 so that it stays short.
function probabilityText(p) {
  return p !== 0 && p < 0.001 ? p.toExponential(3) : Number(p.toPrecision(4)).toString();
}

// A long label is squeezed into its column rather than over the bar.
function labelFit(label, labelWidth) {
  return String(label).length > 30
    ? { textLength: labelWidth - 8, lengthAdjust: "spacingAndGlyphs" } : {};
}

// Draws one bar per class. With `raw` (log_softmax), `scores` are the
// probabilities the bars draw and `raw` the log-probabilities the server
// answered, printed beside them and in each row's tooltip.
function drawScores(labels, scores, raw) {
  const chart = document.getElementById("scores-chart");
  chart.replaceChildren();
  const rowHeight = 22, labelWidth = 220, barWidth = 320;
  // Drawn in its own units and scaled to the column, however narrow.
  const valueWidth = raw ? 280 : 160;
  const chartWidth = labelWidth + barWidth + valueWidth, chartHeight = rowHeight * scores.length + 4;
  chart.setAttribute("viewBox", `0 0 ${chartWidth} ${chartHeight}`);
  chart.setAttribute("width", "100%");
  chart.setAttribute("preserveAspectRatio", "xMinYMin meet");
  chart.setAttribute("aria-label", raw ? "probabilities (exp of the log_softmax scores)" : "scores");
  const low = Math.min(0, ...scores), high = Math.max(0, ...scores);
  const span = high - low || 1;
  scores.forEach((score, i) => {
    const y = i * rowHeight + 2;
    const start = labelWidth + ((Math.min(score, 0) - low) / span) * barWidth;
    const width = (Math.abs(score) / span) * barWidth;
    const row = svg("g", { class: "score-row" });
    if (raw) {
      row.appendChild(svg("title", {}, labels[i] + ": probability " + probabilityText(score) +
                                       " = exp(" + raw[i] + "), log_softmax " + raw[i]));
    }
    row.appendChild(svg("text", Object.assign({ x: 0, y: y + 15, class: "score-label" },
                                              labelFit(labels[i], labelWidth)), labels[i]));
    row.appendChild(svg("rect", { x: start, y: y + 3, width: Math.max(width, 1), height: rowHeight - 6 }));
    const valueX = labelWidth + barWidth + 6;
    if (raw) {
      row.appendChild(svg("text", { x: valueX, y: y + 15, class: "score-value" },
                          "p = " + probabilityText(score)));
      row.appendChild(svg("text", { x: valueX + 100, y: y + 15, class: "score-raw" },
                          "log p = " + raw[i]));
    } else {
      row.appendChild(svg("text", { x: valueX, y: y + 15, class: "score-value" }, String(score)));
    }
    chart.appendChild(row);
  });
  const note = document.getElementById("scores-note");
  note.textContent = raw
    ? "Bars show probabilities, p = exp(log p); log p is the log_softmax score the server answered."
    : "";
  note.hidden = !raw;
}

async function classify(event) {
  event.preventDefault();
  showError(null);
  const metadata = state.model;
  // Numbers as numbers, an empty optional field as missing (NaN), and a
  // categorical feature's choice in `categories` beside them.
  const fields = Array.from(document.querySelectorAll("#feature-fields [name^=feature]"));
  const categorical = fields.some((field) => field.hasAttribute("data-categorical"));
  const features = fields.map((field) => field.hasAttribute("data-categorical") ? 0
    : field.value === "" ? "NaN" : Number(field.value));
  const output = document.getElementById("output-mode").value;
  // A model with one output is a binary classifier: two classes.
  const binary = metadata.output_width === 1;
  const classes = binary ? 2 : metadata.output_width;
  const request = { features, rows: 1, output, top_k: Math.min(3, classes) };
  if (categorical) {
    request.categories = fields.map((field) =>
      field.hasAttribute("data-categorical") ? field.value : "");
  }
  const path = "/v1/models/" + encodeURIComponent(metadata.model) + "/versions/" +
               metadata.version + ":classify";
  try {
    const answer = await api(path, { method: "POST", body: JSON.stringify(request),
                                     headers: { "Content-Type": "application/json" } });
    const result = answer.results[0];
    document.getElementById("result").hidden = false;
    // "Why?" explains this row as classified, whatever the form says later.
    state.classified = { path: path.replace(/:classify$/, ":explain"), features, output,
                         target: result.predicted_index || 0 };
    document.getElementById("explanation").hidden = true;
    document.getElementById("predicted").textContent =
      result.predicted_label || "class " + result.predicted_index;
    document.getElementById("predicted-score").textContent = String(result.score) +
      (modeName(answer.output) === "log_softmax"
        ? " (p = " + probabilityText(Math.exp(result.score)) + ")" : "");
    document.getElementById("output-used").textContent = "(" + modeName(answer.output) + ")";
    if (binary) {
      // Its one output scores two classes; the server names and scores both
      // (its top two), drawn in class order.
      const both = result.top_k.slice().sort((a, b) => a.index - b.index);
      drawScores(both.map((entry) => entry.label || "class " + entry.index),
                 both.map((entry) => entry.score));
    } else {
      const labels = metadata.labels && metadata.labels.length === result.scores.length
        ? metadata.labels : result.scores.map((_, i) => "output " + i);
      if (modeName(answer.output) === "log_softmax") {
        // Log-probabilities are all negative, the likeliest nearest zero:
        // the bars draw their probabilities instead.
        drawScores(labels, result.scores.map(Math.exp), result.scores);
      } else {
        drawScores(labels, result.scores);
      }
    }
    const top = document.getElementById("top-k");
    top.replaceChildren();
    for (const entry of result.top_k || []) top.appendChild(el("li", entry.label + ": " + entry.score));
    // The row just answered is in the drift window now.
    loadDrift(metadata.model);
    // Over TLS curl must trust the server's CA (ca.pem, as the README names
    // it); with a token, it sends the one seqclient reads, $SEQSERVE_TOKEN.
    const tls = location.protocol === "https:" ? " --cacert ca.pem" : "";
    const auth = state.token ? " -H \"Authorization: Bearer $SEQSERVE_TOKEN\"" : "";
    document.getElementById("curl-command").textContent =
      "curl -s" + tls + " -X POST " + location.origin + path +
      " -H 'Content-Type: application/json'" + auth + " -d " + shellQuote(JSON.stringify(request));
    // A categorical row goes to seqclient as a JSON Lines row by name on
    // stdin (a category's text, null for a missing value).
    let jsonRow = null;
    if (categorical) {
      const names = metadata.feature_names || [];
      jsonRow = {};
      fields.forEach((field, i) => {
        jsonRow[names[i]] = field.hasAttribute("data-categorical") ? field.value
          : features[i] === "NaN" ? null : features[i];
      });
    }
    document.getElementById("seqclient-command").textContent =
      (jsonRow ? "echo " + shellQuote(JSON.stringify(jsonRow)) + " | " : "") +
      "seqclient classify --target " + location.hostname + ":" + grpcPort() +
      (location.protocol === "https:" ? " --tls_ca_file ca.pem" : "") +
      " --model " + shellQuote(metadata.model) +
      " --version " + metadata.version + (output === "default" ? "" : " --output " + output) +
      (request.top_k ? " --top_k " + request.top_k : "") + (jsonRow ? "" : " " + features.join(","));
  } catch (error) {
    showError(error);
  }
}

// A number as the server answered it, with its sign: "+" pushed up.
function signed(value) {
  return value > 0 ? "+" + value : String(value);
}

// Draws one bar per feature from a zero axis, its length proportional to
// |attribution| (one scale for all, as drawScores does): right of the axis
// and "positive" for a push up, left and "negative" for a push down.
function drawAttributions(names, values) {
  const chart = document.getElementById("attributions-chart");
  chart.replaceChildren();
  const rowHeight = 22, labelWidth = 220, barWidth = 320, valueWidth = 200;
  const chartWidth = labelWidth + barWidth + valueWidth;
  const chartHeight = rowHeight * values.length + 4;
  chart.setAttribute("viewBox", `0 0 ${chartWidth} ${chartHeight}`);
  chart.setAttribute("width", "100%");
  chart.setAttribute("preserveAspectRatio", "xMinYMin meet");
  const low = Math.min(0, ...values), high = Math.max(0, ...values);
  const span = high - low || 1;
  const axis = labelWidth + (-low / span) * barWidth;
  values.forEach((value, i) => {
    const y = i * rowHeight + 2;
    const width = (Math.abs(value) / span) * barWidth;
    // -0 (a feature at its baseline) is neither.
    const sign = value > 0 ? "positive" : value < 0 ? "negative" : "zero";
    const row = svg("g", { class: "attribution-row " + sign });
    // A squeezed label reads in full in the tooltip.
    row.appendChild(svg("title", {}, names[i] + ": " + signed(value)));
    row.appendChild(svg("text", Object.assign({ x: 0, y: y + 15, class: "attribution-label" },
                                              labelFit(names[i], labelWidth)), names[i]));
    row.appendChild(svg("rect", { x: value < 0 ? axis - width : axis, y: y + 3, width,
                                  height: rowHeight - 6, class: sign }));
    row.appendChild(svg("text", { x: labelWidth + barWidth + 6, y: y + 15,
                                  class: "attribution-value" }, signed(value)));
    chart.appendChild(row);
  });
  chart.appendChild(svg("line", { x1: axis, y1: 0, x2: axis, y2: chartHeight,
                                  class: "attribution-axis" }));
}

// What was explained and how, beside the chart.
function showExplanationFacts(answer, result, target) {
  const facts = document.getElementById("explanation-facts");
  facts.replaceChildren();
  const add = (term, value) => {
    facts.appendChild(el("dt", term));
    facts.appendChild(el("dd", value, { "data-fact": term }));
  };
  const method = methodName(answer.method);
  add("class", target + " (class " + (result.target_index || 0) + ")");
  add("score", String(result.score) + " (" + modeName(answer.output) + ")");
  add("method", method === "integrated_gradients"
    ? method + " (" + ruleName(answer.rule) + ", " + answer.steps + " steps)" : method);
  // Integrated gradients and Shapley values measure from the baseline: the
  // attributions add up to score - baseline score (up to delta).
  if (method === "integrated_gradients" || method === "shapley") {
    add("baseline", (answer.baseline || []).join(", ") + " (score " + result.baseline_score + ")");
  }
  if (method === "integrated_gradients") add("delta", String(result.delta));
}

async function explain(event) {
  event.preventDefault();
  showError(null);
  const row = state.classified;
  if (!row) return;
  const box = document.getElementById("explanation");
  box.hidden = true;
  const method = document.getElementById("explain-method").value;
  const request = { features: row.features, rows: 1, method, output: row.output,
                    target_index: row.target };
  try {
    const answer = await api(row.path, { method: "POST", body: JSON.stringify(request),
                                         headers: { "Content-Type": "application/json" } });
    // A row classified since this call was sent has its own "Why?".
    if (state.classified !== row) return;
    const result = answer.results[0];
    const target = result.target_label || "class " + (result.target_index || 0);
    document.getElementById("explanation-title").textContent = "Why " + target + "?";
    showExplanationFacts(answer, result, target);
    const names = answer.feature_names || [];
    drawAttributions(result.attributions.map((_, i) => names[i] || "feature " + i),
                     result.attributions);
    // Saliency is a gradient's size, never negative: it has no direction.
    document.getElementById("explanation-note").textContent =
      methodName(answer.method) === "saliency"
        ? "Each bar is |d score / d feature|: how strongly " + target + "'s score " +
          "responds to the feature, not which way."
        : "Each bar is how much the feature moved " + target + "'s score: " +
          "right (+) pushed it up, left (-) down.";
    box.hidden = false;
  } catch (error) {
    showError(error);
  }
}

// The key under which parseMetrics counts Classify calls that no served
// model answered: the server labels a name it does not hold "_unknown", and
// a call refused before its model was read (a malformed body, an empty
// name) "". No served model can be named "" (a directory name).
const UNSERVED = "";
const UNSERVED_LABEL = "unknown models";

// The samples of the families `names` in Prometheus text: [{name, labels, value}].
function metricSamples(text, names) {
  const samples = [];
  const labelPattern = /(\w+)="((?:[^"\\]|\\.)*)"/g;
  for (const line of text.split("\n")) {
    const match = /^(\w+)\{(.*)\} (\S+)$/.exec(line);
    if (!match || !names.includes(match[1])) continue;
    const labels = {};
    for (const [, key, value] of match[2].matchAll(labelPattern)) labels[key] = value;
    samples.push({ name: match[1], labels, value: Number(match[3]) });
  }
  return samples;
}

// {model: {calls, errors, buckets: [[le, count]]}} from the metrics text.
function parseMetrics(text) {
  const byModel = {};
  for (const { name, labels, value } of metricSamples(
      text, ["seqserve_requests_total", "seqserve_request_duration_seconds_bucket"])) {
    if (labels.method !== "Classify") continue;
    const model = labels.model === "_unknown" ? UNSERVED : labels.model || UNSERVED;
    const entry = byModel[model] || (byModel[model] = { calls: 0, errors: 0, buckets: {} });
    if (name === "seqserve_requests_total") {
      entry.calls += value;
      if (labels.code !== "OK") entry.errors += value;
    } else {
      entry.buckets[labels.le] = (entry.buckets[labels.le] || 0) + value;
    }
  }
  return byModel;
}

// The calls each version answered, {model: {version: calls}}, over every
// method that classifies: how a traffic split works out.
function parseVersionCalls(text) {
  const byModel = {};
  for (const { labels, value } of metricSamples(text, ["seqserve_requests_total"])) {
    if (labels.code !== "OK" || !labels.version || labels.model === "_unknown") continue;
    if (!["Classify", "Predict", "ModelInfer"].includes(labels.method)) continue;
    const versions = byModel[labels.model] || (byModel[labels.model] = {});
    versions[labels.version] = (versions[labels.version] || 0) + value;
  }
  return byModel;
}

// Shadow comparisons: [{model, served, shadow, compared, agreement}].
function parseShadows(text) {
  const rows = {};
  for (const { name, labels, value } of metricSamples(
      text, ["seqserve_shadow_compared_rows_total", "seqserve_shadow_agreement_ratio"])) {
    const key = [labels.model, labels.served_version, labels.shadow_version].join("\u0000");
    const row = rows[key] || (rows[key] = { model: labels.model, served: labels.served_version,
                                            shadow: labels.shadow_version, compared: 0,
                                            agreement: NaN });
    if (name === "seqserve_shadow_compared_rows_total") row.compared = value;
    else row.agreement = value;
  }
  return Object.values(rows).sort((a, b) => (a.model < b.model ? -1 : a.model > b.model ? 1 : 0));
}

function showVersionCalls(byModel) {
  const body = document.querySelector("#versions tbody");
  body.replaceChildren();
  for (const model of Object.keys(byModel).sort()) {
    const versions = byModel[model];
    const total = Object.values(versions).reduce((a, b) => a + b, 0);
    for (const version of Object.keys(versions).sort((a, b) => Number(b) - Number(a))) {
      const row = el("tr");
      row.appendChild(el("td", model));
      row.appendChild(el("td", version));
      row.appendChild(el("td", versions[version]));
      row.appendChild(el("td", total ? (100 * versions[version] / total).toFixed(1) + "%" : "-"));
      body.appendChild(row);
    }
  }
}

function showShadows(shadows) {
  document.getElementById("shadows").hidden = shadows.length === 0;
  const body = document.querySelector("#shadows tbody");
  body.replaceChildren();
  for (const shadow of shadows) {
    const row = el("tr");
    row.appendChild(el("td", shadow.model));
    row.appendChild(el("td", shadow.served + " → " + shadow.shadow));
    row.appendChild(el("td", shadow.compared));
    row.appendChild(el("td", Number.isNaN(shadow.agreement) || shadow.compared === 0
      ? "-" : (100 * shadow.agreement).toFixed(2) + "%"));
    body.appendChild(row);
  }
}

function p99(before, after) {
  const bounds = Object.keys(after.buckets).sort((a, b) => Number(a) - Number(b));
  const delta = bounds.map((le) => [le, after.buckets[le] - ((before && before.buckets[le]) || 0)]);
  const total = delta.length ? delta[delta.length - 1][1] : 0;
  if (total <= 0) return "-";
  for (const [le, count] of delta) {
    if (count >= 0.99 * total) return le === "+Inf" ? "> 10 s" : "≤ " + (Number(le) * 1000) + " ms";
  }
  return "-";
}

async function refreshLive() {
  let text;
  try { text = await api("/metrics"); } catch (e) { return; }
  const now = { at: performance.now(), models: parseMetrics(String(text)) };
  showVersionCalls(parseVersionCalls(String(text)));
  showShadows(parseShadows(String(text)));
  const body = document.querySelector("#live tbody");
  body.replaceChildren();
  const before = state.lastMetrics;
  // Served models by name, then the calls no served model answered.
  const models = Object.keys(now.models).filter((model) => model !== UNSERVED).sort();
  if (UNSERVED in now.models) models.push(UNSERVED);
  for (const model of models) {
    const entry = now.models[model];
    const previous = before && before.models[model];
    const seconds = before ? (now.at - before.at) / 1000 : 0;
    const rate = (field) => (previous && seconds > 0
      ? ((entry[field] - previous[field]) / seconds).toFixed(1) : "-");
    const row = el("tr", undefined, { "data-calls": entry.calls });
    if (model === UNSERVED) {
      row.className = "unserved";
      row.appendChild(el("td", UNSERVED_LABEL, {
        title: "Classify calls no served model answered: names this server does not serve " +
               "(model=\"_unknown\" in /metrics) and calls refused before their model was " +
               "read (model=\"\"). " + entry.calls + " since the server started." }));
    } else {
      row.appendChild(el("td", model, { title: entry.calls + " calls since the server started" }));
    }
    row.appendChild(el("td", rate("calls")));
    row.appendChild(el("td", rate("errors")));
    row.appendChild(el("td", previous ? p99(previous, entry) : "-"));
    body.appendChild(row);
  }
  state.lastMetrics = now;
}

// Everything but health needs the token when the server has tokens.
async function load() {
  showError(null);
  try {
    await loadHeader();
    await Promise.all([refreshHealth(), loadModels()]);
  } catch (error) {
    if (String(error.message).startsWith("UNAUTHENTICATED")) {
      showError(new Error(error.message + " (enter a bearer token above)"));
    } else {
      showError(error);
    }
  }
  refreshLive();
}

async function useToken(event) {
  event.preventDefault();
  state.token = document.getElementById("token").value;
  await load();
}

async function start() {
  document.getElementById("classify-form").addEventListener("submit", classify);
  document.getElementById("explain-form").addEventListener("submit", explain);
  document.getElementById("token-form").addEventListener("submit", useToken);
  await load();
  setInterval(() => { refreshHealth(); refreshLive(); }, 2000);
}

document.addEventListener("DOMContentLoaded", start);
