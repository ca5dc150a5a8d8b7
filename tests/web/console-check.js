// Drives seqserve's web console in Debian's chromium (puppeteer-core, no
// browser download) against a live server whose repository holds the
// species sample, a binary model named "churn" (the mammal reference with
// labels "stays" and "churns"), a model named "hostile" whose labels
// are HTML and one named "canary" whose version 1 is labelled "stable"
// and takes every call while version 2 shadows them:
//   [SEQSERVE_CA_DIR=DIR] node console-check.js http://127.0.0.1:8501 screenshot.png GRPC_PORT [TOKEN]
// With an https: URL, SEQSERVE_CA_DIR names a directory whose ca.pem
// signed the server's certificate.
// Prints what it checked; exit 0 when every check passed, 1 when one
// failed, 77 when chromium cannot start here.
const { execFileSync } = require("child_process");
const puppeteer = require("puppeteer-core");

// With TOKEN, the server requires it: the page must say so, then work once
// it is typed in.
const [base, screenshot, grpcPort, token] = process.argv.slice(2);
const tls = base.startsWith("https:");
const caDir = process.env.SEQSERVE_CA_DIR || "";
const failures = [];
function check(ok, what) {
  console.log((ok ? "ok   " : "FAIL ") + what);
  if (!ok) failures.push(what);
}

// curl with `args`, from outside the page (whose own requests must all
// succeed), trusting the test CA and sending the token when there are.
function curlOutside(args) {
  const trust = tls ? ["--cacert", caDir + "/ca.pem"] : [];
  const auth = token ? ["-H", "Authorization: Bearer " + token] : [];
  return execFileSync("curl", ["-s", ...trust, ...auth, ...args], { encoding: "utf8" });
}

// POSTs `body` to `path`; returns the HTTP status.
function post(path, body) {
  return curlOutside(["-o", "/dev/null", "-w", "%{http_code}", "-X", "POST",
               "-H", "Content-Type: application/json", "--data-binary", body, base + path]);
}

async function restScores(page, model, output) {
  return page.evaluate(async (model, output, token) => {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const response = await fetch(`/v1/models/${model}:classify`, {
      method: "POST", headers,
      body: JSON.stringify({ features: [4, 0, 1], rows: 1, output }) });
    const answer = await response.json();
    return answer.results[0].scores.map(String);
  }, model, output, token || "");
}

// The first row of a REST classify of `features`, with the top two classes.
async function restAnswer(page, model, output, features) {
  return page.evaluate(async (model, output, features, token) => {
    const headers = { "Content-Type": "application/json" };
    if (token) headers["Authorization"] = "Bearer " + token;
    const response = await fetch(`/v1/models/${model}:classify`, {
      method: "POST", headers,
      body: JSON.stringify({ features, rows: 1, output, top_k: 2 }) });
    return (await response.json()).results[0];
  }, model, output, features, token || "");
}

async function typeFeatures(page, values) {
  const inputs = await page.$$("#feature-fields input");
  for (let i = 0; i < values.length; ++i) {
    await inputs[i].click({ clickCount: 3 });
    await inputs[i].type(String(values[i]));
  }
}

async function classifyInPage(page, output) {
  await page.select("#output-mode", output);
  await page.evaluate(() => { document.getElementById("predicted").textContent = ""; });
  await page.click("#classify-button");
  await page.waitForFunction(() => document.getElementById("predicted").textContent !== "" ||
                                   !document.getElementById("error").hidden);
  return page.evaluate(() => ({
    predicted: document.getElementById("predicted").textContent,
    score: (document.getElementById("predicted-score") || {}).textContent,
    scores: Array.from(document.querySelectorAll("#scores-chart .score-value"))
      .map((node) => node.textContent),
    labels: Array.from(document.querySelectorAll("#scores-chart .score-label"))
      .map((node) => node.textContent),
    bars: Array.from(document.querySelectorAll("#scores-chart rect"))
      .map((node) => Number(node.getAttribute("width"))),
    raw: Array.from(document.querySelectorAll("#scores-chart .score-raw"))
      .map((node) => node.textContent),
    tooltips: Array.from(document.querySelectorAll("#scores-chart title"))
      .map((node) => node.textContent),
    note: (document.getElementById("scores-note") || { hidden: true }).hidden ? ""
      : document.getElementById("scores-note").textContent,
    error: document.getElementById("error").hidden ? "" : document.getElementById("error").textContent,
  }));
}

// Waits for the chosen model's own title: the form's width alone cannot
// tell two models of the same width apart.
async function chooseModel(page, name, width) {
  await page.click(`#models tbody tr[data-model="${name}"]`);
  await page.waitForFunction((name, width) =>
    document.getElementById("model-title").textContent.startsWith(name + " version ") &&
    document.querySelectorAll("#feature-fields input").length === width, {}, name, width);
}

(async () => {
  let browser;
  try {
    browser = await puppeteer.launch({
      executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
      headless: true,
      // Over TLS the page comes from a server whose CA chromium does not
      // know; curl below trusts it by name.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]
        .concat(tls ? ["--ignore-certificate-errors"] : []),
    });
  } catch (error) {
    console.log(`chromium cannot start here: ${error.message}`);
    process.exit(77);
  }
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1200, height: 800 });
    const problems = [];
    let tokenTyped = !token;
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      if (!tokenTyped && message.text().includes("status of 401")) return;
      problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) =>
      problems.push(`request failed: ${request.url()} ${request.failure().errorText}`));
    page.on("response", (response) => {
      // Before the token is typed in, its absence is the expected answer.
      if (response.status() === 401 && !tokenTyped) return;
      if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.url()}`);
    });

    await page.goto(base + "/", { waitUntil: "networkidle0" });
    if (token) {
      const refused = await page.$eval("#error", (node) => node.hidden ? "" : node.textContent);
      check(refused.includes("UNAUTHENTICATED") && refused.includes("enter a bearer token"),
            `without a token the page says why: ${refused}`);
      await page.type("#token", token);
      await page.click("#token-button");
      // A refresh sent before the click may still come back 401.
      await page.waitForSelector("#models tbody tr");
      await page.waitForNetworkIdle({ idleTime: 300 });
      tokenTyped = true;
    }
    await page.waitForSelector("#models tbody tr");
    const models = await page.$$eval("#models tbody tr", (rows) =>
      rows.map((row) => row.getAttribute("data-model")));
    check(JSON.stringify(models) === JSON.stringify(["canary", "churn", "hostile", "species"]),
          `models listed: ${models}`);
    const version = await page.$eval("#version", (node) => node.textContent);
    check(/^version \d/.test(version), `server version shown: ${version}`);
    const health = await page.$eval("#health", (node) => node.textContent);
    check(health === "ready", `health shown: ${health}`);

    await chooseModel(page, "species", 3);
    const facts = await page.$eval("#model-facts", (node) => node.textContent);
    check(facts.includes("bird, mammal, reptile"), "species labels shown");
    const layers = await page.$$eval("#model-layers li", (items) => items.map((i) => i.textContent));
    check(layers[0] === "Linear(3, 16)", `layers shown as PyTorch prints them: ${layers}`);
    const inputs = await page.$$("#feature-fields input");
    for (const [input, value] of [[inputs[0], "4"], [inputs[1], "0"], [inputs[2], "1"]]) {
      await input.click({ clickCount: 3 });
      await input.type(value);
    }
    for (const output of ["default", "logits", "sigmoid"]) {
      const shown = await classifyInPage(page, output);
      const rest = await restScores(page, "species", output);
      check(shown.error === "", `${output}: no error ${shown.error}`);
      check(shown.predicted === "mammal", `${output}: predicted ${shown.predicted}`);
      check(JSON.stringify(shown.scores) === JSON.stringify(rest),
            `${output}: chart scores ${shown.scores} equal REST ${rest}`);
    }
    // Under log_softmax the scores are log-probabilities, all negative: the
    // bars draw their probabilities, so the likeliest class has the
    // longest bar; each row prints the probability and keeps the score the
    // server answered beside it and in its tooltip.
    {
      const shown = await classifyInPage(page, "log_softmax");
      const rest = await restScores(page, "species", "log_softmax");
      const probabilities = rest.map((score) => Math.exp(Number(score)));
      const likeliest = probabilities.indexOf(Math.max(...probabilities));
      check(shown.error === "" && shown.predicted === "mammal" &&
            shown.labels[likeliest] === "mammal",
            `log_softmax: predicted ${shown.predicted}, likeliest by REST ${shown.labels[likeliest]}`);
      check(shown.bars.length === 3 &&
            shown.bars.every((width, i) => i === likeliest || width < shown.bars[likeliest]),
            `log_softmax: the likeliest class has the longest bar: widths ${shown.bars}`);
      const ratios = shown.bars.map((width, i) => width / probabilities[i]);
      check(ratios.every((r, i) => shown.bars[i] <= 1 ||
                                   Math.abs(r - ratios[likeliest]) <= 0.01 * ratios[likeliest]),
            `log_softmax: bars are proportional to exp(score): widths ${shown.bars}, p ${probabilities}`);
      check(shown.scores.length === 3 && shown.scores.every((text, i) =>
              /^p = /.test(text) &&
              Math.abs(Number(text.slice(4)) - probabilities[i]) <= 1e-3 * probabilities[i]),
            `log_softmax: values printed as probabilities ${shown.scores}, REST exp ${probabilities}`);
      check(JSON.stringify(shown.raw) === JSON.stringify(rest.map((score) => "log p = " + score)) &&
            shown.tooltips.length === 3 &&
            shown.tooltips.every((tip, i) => tip.includes(rest[i]) && tip.includes("probability")),
            `log_softmax: REST's scores kept beside the bars ${shown.raw} and in tooltips ${shown.tooltips}`);
      check(/probabilit/.test(shown.note) && /exp/.test(shown.note),
            `log_softmax: the chart says what its bars are: ${shown.note}`);
      check(shown.score.startsWith(String(Math.max(...rest.map(Number)))) && /\(p = /.test(shown.score),
            `log_softmax: predicted score with its probability: ${shown.score}`);
      // Back to a mode whose bars are the scores: no probabilities, no note.
      const plain = await classifyInPage(page, "softmax");
      check(plain.raw.length === 0 && plain.tooltips.length === 0 && plain.note === "" &&
            JSON.stringify(plain.scores) === JSON.stringify(await restScores(page, "species", "softmax")),
            `softmax after log_softmax: chart scores ${plain.scores} are REST's again`);
    }

    const curl = await page.$eval("#curl-command", (node) => node.textContent);
    check(curl.includes("/v1/models/species/versions/1:classify") &&
          curl.includes('"features":[4,0,1]'), `curl command: ${curl}`);
    // Over TLS it trusts the CA by the README's name for it, ca.pem; with a
    // token it sends the one in $SEQSERVE_TOKEN (never the token itself).
    check(curl.startsWith(tls ? "curl -s --cacert ca.pem -X POST https://" : "curl -s -X POST http://") &&
          curl.includes("--cacert") === tls &&
          curl.includes(' -H "Authorization: Bearer $SEQSERVE_TOKEN" ') === Boolean(token) &&
          !(token && curl.includes(token)),
          `curl command names the CA ${tls ? "" : "not "}and the token ${token ? "" : "not "}: ${curl}`);
    // The command as shown, run by a shell where ca.pem is the test's CA
    // and $SEQSERVE_TOKEN the token, answers as the page's call did.
    {
      let ran = "";
      try {
        ran = execFileSync("bash", ["-c", curl], {
          encoding: "utf8", cwd: tls ? caDir : require("os").tmpdir(),
          env: Object.assign({}, process.env, { SEQSERVE_TOKEN: token || "" }) });
      } catch (error) {
        ran = `exit ${error.status}: ${error.stdout}${error.stderr}`;
      }
      let answer = null;
      try { answer = JSON.parse(ran); } catch (e) { /* shown below */ }
      const rest = await restScores(page, "species", "softmax");
      check(answer !== null && answer.results && answer.results[0].predicted_label === "mammal" &&
            JSON.stringify(answer.results[0].scores.map(String)) === JSON.stringify(rest),
            `curl command runs and answers as REST does: ${ran.slice(0, 300)}`);
    }
    const seqclient = await page.$eval("#seqclient-command", (node) => node.textContent);
    check(seqclient.includes("seqclient classify") && seqclient.includes("4,0,1") &&
          seqclient.includes(`:${grpcPort} `) &&
          seqclient.includes(" --tls_ca_file ca.pem ") === tls, `seqclient command: ${seqclient}`);

    // A binary model (one sigmoid output, labels "stays" and "churns"): the
    // chart draws its two classes by label, 1 - p and p (under logits -z
    // and z), as REST's top two say; the score shown is the predicted
    // class's. The row is a bird: p is small, the row stays.
    await chooseModel(page, "churn", 3);
    await typeFeatures(page, [2, 1, 0]);
    for (const output of ["default", "logits"]) {
      const shown = await classifyInPage(page, output);
      const rest = await restAnswer(page, "churn", output, [2, 1, 0]);
      const byIndex = rest.top_k.slice().sort((a, b) => a.index - b.index);
      check(shown.error === "", `churn ${output}: no error ${shown.error}`);
      check(shown.predicted === "stays" && rest.predicted_label === "stays" &&
            rest.predicted_index === 0, `churn ${output}: predicted ${shown.predicted}`);
      check(shown.score === String(rest.score) && rest.score === byIndex[0].score,
            `churn ${output}: score shown ${shown.score} is the class's, REST ${rest.score}`);
      check(JSON.stringify(shown.labels) === JSON.stringify(["stays", "churns"]),
            `churn ${output}: chart labels ${shown.labels}`);
      check(JSON.stringify(shown.scores) === JSON.stringify(byIndex.map((e) => String(e.score))) &&
            shown.scores[1] === String(rest.scores[0]),
            `churn ${output}: chart scores ${shown.scores} are both classes, REST ${rest.scores}`);
    }

    await chooseModel(page, "hostile", 3);
    const hostileFacts = await page.$eval("#model-facts", (node) => node.textContent);
    check(hostileFacts.includes("<script>window.pwned=1</script>") &&
          hostileFacts.includes("<img src=x onerror=window.pwned=2>"),
          "hostile labels shown as text");
    const shown = await classifyInPage(page, "default");
    check(shown.labels.includes("<script>window.pwned=1</script>"),
          `hostile labels drawn as text in the chart: ${shown.labels}`);
    const injected = await page.evaluate(() => ({
      pwned: window.pwned === undefined ? "no" : String(window.pwned),
      elements: document.querySelectorAll("main script, main img").length,
    }));
    check(injected.pwned === "no" && injected.elements === 0,
          `nothing from a label ran or became an element: ${JSON.stringify(injected)}`);

    // The live panel reads /metrics: the calls above appear under their model.
    await page.waitForFunction(() =>
      Array.from(document.querySelectorAll("#live tbody td")).some((td) => td.textContent === "species"),
      { timeout: 10000 });
    check(true, "live panel lists species");

    // Calls no served model answers: the server counts a name it does not
    // hold as model="_unknown" and a call refused before its model was read
    // (here a malformed body) as model="". The live panel counts both in one
    // labelled row, after the served models, never as "_unknown" or blank.
    const statuses = [
      post("/v1/models/no-such-model:classify", JSON.stringify({ features: [4, 0, 1], rows: 1 })),
      post("/v1/models/no-such-model/versions/1:classify", JSON.stringify({ features: [4, 0, 1], rows: 1 })),
      post("/v1/models/no-such-model:classify", "{"),
    ];
    const metrics = curlOutside([base + "/metrics"]);
    check(JSON.stringify(statuses) === JSON.stringify(["404", "404", "400"]) &&
          /seqserve_requests_total\{[^}]*method="Classify",model="_unknown",[^}]*\} 2\n/.test(metrics) &&
          /seqserve_requests_total\{[^}]*method="Classify",model="",[^}]*\} 1\n/.test(metrics),
          `unserved calls answered ${statuses}, counted as model="_unknown" (2) and model="" (1)`);
    // Rows drawn before those calls are marked; wait for a table without them.
    await page.evaluate(() => {
      for (const row of document.querySelectorAll("#live tbody tr")) row.setAttribute("data-stale", "");
    });
    await page.waitForFunction(() => {
      const rows = document.querySelectorAll("#live tbody tr");
      return rows.length > 0 && !Array.from(rows).some((row) => row.hasAttribute("data-stale"));
    }, { timeout: 10000 });
    // Wait for the calls to show up, or give up and report what is there.
    await page.waitForFunction(() => Array.from(document.querySelectorAll("#live tbody tr"))
      .some((row) => row.getAttribute("data-calls") === "3"), { timeout: 6000 }).catch(() => {});
    const live = await page.$$eval("#live tbody tr", (rows) => rows.map((row) => ({
      model: row.cells[0].textContent, calls: row.getAttribute("data-calls"),
      title: row.cells[0].getAttribute("title") || "" })));
    const names = live.map((row) => row.model);
    const unserved = live.filter((row) => row.model === "unknown models");
    check(!names.includes("") && !names.includes("_unknown") && unserved.length === 1 &&
          names[names.length - 1] === "unknown models" && unserved[0].calls === "3" &&
          unserved[0].title.includes("_unknown"),
          `live panel counts the 3 unserved calls in one row: ${JSON.stringify(live)}`);

    // A model with a label and a shadow: the model list shows the label,
    // the live panel the calls by version and the shadow's agreement.
    const labelled = await page.$$eval("#models tbody tr", (rows) => rows
      .filter((row) => row.getAttribute("data-model") === "canary")
      .map((row) => row.cells[1].textContent));
    check(labelled.length === 1 && labelled[0].includes("1 available (stable)"),
          `the model list shows version labels: ${JSON.stringify(labelled)}`);
    const canaryCalls = [1, 2, 3, 4].map(() =>
      post("/v1/models/canary:classify", JSON.stringify({ features: [4, 0, 1], rows: 1 })));
    check(canaryCalls.every((status) => status === "200"), `canary calls answered ${canaryCalls}`);
    const shadowRow = () => page.$$eval("#shadows tbody tr", (rows) => rows.map((row) =>
      Array.from(row.cells).map((cell) => cell.textContent).join(" | ")));
    await page.waitForFunction(() => Array.from(document.querySelectorAll("#shadows tbody tr"))
      .some((row) => row.cells[2].textContent === "4"), { timeout: 10000 }).catch(() => {});
    const shadows = await shadowRow();
    check(shadows.length === 1 && shadows[0] === "canary | 1 → 2 | 4 | 100.00%",
          `live panel shows the shadow's agreement: ${JSON.stringify(shadows)}`);
    const byVersion = await page.$$eval("#versions tbody tr", (rows) => rows.map((row) =>
      Array.from(row.cells).map((cell) => cell.textContent).join(" | ")));
    check(byVersion.includes("canary | 1 | 4 | 100.0%"),
          `live panel shows the calls by version: ${JSON.stringify(byVersion)}`);

    if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
    check(problems.length === 0, `no console errors or failed requests: ${problems.join("; ")}`);
  } catch (error) {
    check(false, `unexpected: ${error.stack || error}`);
  } finally {
    await browser.close();
  }
  process.exit(failures.length === 0 ? 0 : 1);
})();
