// Validates Prometheus Operator objects (PodMonitor, ServiceMonitor, ...)
// against the operator's CRD schemas, as npm @kubernetes-models/prometheus-operator
// compiles them (tests/deploy/package.json pins it; `npm ci` there installs it).
//
// Input on stdin: JSON [{"where": "file name", "document": {...}}, ...].
// Prints one line per problem and exits 1 if there is any, else prints
// "N objects match the Prometheus Operator's CRD schemas".
//
// The schemas do not forbid fields they do not declare, but the API server
// drops such a field (a typo in "authorization" would scrape without a
// token), so every field is also checked to be declared: a field is
// declared when putting a value of the wrong type there is an error at that
// very path (true, then 1.5 for the boolean fields).
import { readFileSync } from "node:fs";

const models = await import("@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1");

function errorsOf(Kind, document) {
  try {
    new Kind(document).validate();
    return [];
  } catch (error) {
    return (error.errors || [{ instancePath: "", message: error.message }]);
  }
}

function pointer(path) {
  return path.map((key) => "/" + String(key).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
}

function withValue(document, path, value) {
  const copy = structuredClone(document);
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key];
  node[path[path.length - 1]] = value;
  return copy;
}

function fieldPaths(value, path = []) {
  if (Array.isArray(value)) return value.flatMap((item, index) => fieldPaths(item, [...path, index]));
  if (value === null || typeof value !== "object") return [];
  return Object.entries(value).flatMap(([key, item]) => [[...path, key], ...fieldPaths(item, [...path, key])]);
}

function declared(Kind, document, path) {
  const at = pointer(path);
  return [true, 1.5].some((probe) =>
    errorsOf(Kind, withValue(document, path, probe)).some((e) => e.instancePath === at));
}

const entries = JSON.parse(readFileSync(0, "utf8"));
const problems = [];
for (const { where, document } of entries) {
  const Kind = models[document.kind];
  if (!Kind || document.apiVersion !== Kind.apiVersion) {
    problems.push(`${where}: ${document.apiVersion} ${document.kind} is not a Prometheus Operator kind`);
    continue;
  }
  const errors = errorsOf(Kind, document);
  for (const error of errors) {
    problems.push(`${where}: ${error.instancePath || "/"} ${error.message}`);
  }
  if (errors.length) continue;
  const undeclared = [];
  for (const path of fieldPaths(document)) {
    if (path.length < 2 && ["apiVersion", "kind"].includes(path[0])) continue;
    if (undeclared.some((p) => pointer(path).startsWith(p + "/"))) continue;
    if (!declared(Kind, document, path)) {
      undeclared.push(pointer(path));
      problems.push(`${where}: ${pointer(path)} is not a field of ${document.kind}`);
    }
  }
}
for (const problem of problems) console.log(problem);
if (problems.length) process.exit(1);
console.log(`${entries.length} objects match the Prometheus Operator's CRD schemas`);
