// Drives seqserve's web console in Debian's chromium (puppeteer-core, no
// browser download) against a live server whose repository holds the
// species sample (features limbs, lays_eggs and has_hair), a binary
// model named "churn" (the mammal reference with labels "stays" and
// "churns", and a limit of 16 rows a request, under the 50 that integrated
// gradients evaluate), "pets" (species behind preprocessing: limbs with a
// missing default, coat one_hot over feathers and hair), a model named
// "hostile" whose labels are HTML and
// one named "canary" whose version 1 is labelled "stable" and takes every
// call while version 2 shadows them:
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

// The server's answer to `body` POSTed to `path`, asked from outside the
// page (a refusal there is no failure of the page's).
function restExplain(path, body) {
  return JSON.parse(curlOutside(["-X", "POST", "-H", "Content-Type: application/json",
                                 "--data-binary", body, base + path]));
}

// The explain calls the page sent: [{path, body, authorization}].
const explainCalls = [];

// Picks `method`, presses "Why?" and reads what the page drew.
async function explainInPage(page, method) {
  await page.select("#explain-method", method);
  const sent = explainCalls.length;
  await page.evaluate(() => {
    document.getElementById("explanation").hidden = true;
    document.getElementById("error").hidden = true;
  });
  await page.click("#explain-button");
  await page.waitForFunction(() => !document.getElementById("explanation").hidden ||
                                   !document.getElementById("error").hidden);
  const shown = await page.evaluate(() => {
    const chart = document.getElementById("attributions-chart");
    const axis = chart.querySelector("line.attribution-axis");
    return {
      visible: !document.getElementById("explanation").hidden,
      title: document.getElementById("explanation-title").textContent,
      facts: Object.fromEntries(Array.from(document.querySelectorAll("#explanation-facts dd"))
        .map((node) => [node.getAttribute("data-fact"), node.textContent])),
      labels: Array.from(chart.querySelectorAll(".attribution-label"), (node) => node.textContent),
      values: Array.from(chart.querySelectorAll(".attribution-value"), (node) => node.textContent),
      bars: Array.from(chart.querySelectorAll("rect")).map((node) => ({
        x: Number(node.getAttribute("x")), width: Number(node.getAttribute("width")),
        sign: node.getAttribute("class") })),
      axis: axis ? Number(axis.getAttribute("x1")) : NaN,
      error: document.getElementById("error").hidden ? ""
        : document.getElementById("error").textContent,
    };
  });
  shown.calls = explainCalls.slice(sent);
  return shown;
}

// Checks that the page sent one explain call for the row it classified
// (`model` version 1, `features`, `output`, the predicted class), and drew
// what the server answers to that very call: one bar per feature, named
// by feature_names, as long as |attribution| on one scale, right of the
// axis and "positive" above zero, left and "negative" below, with the
// server's number printed; the class, score, method, and delta for
// integrated gradients. Returns the server's answer.
function checkExplanation(what, shown, model, features, output, method, predicted) {
  const call = shown.calls[0] || { path: "", body: "{}", authorization: "" };
  const sent = JSON.parse(call.body);
  check(shown.calls.length === 1 && call.path === `/v1/models/${model}/versions/1:explain` &&
        JSON.stringify(sent.features) === JSON.stringify(features) && sent.rows === 1 &&
        sent.output === output && sent.method === method && sent.target_index === predicted.index &&
        call.authorization === (token ? "Bearer " + token : ""),
        `${what}: the page explains the classified row: ${call.path} ${call.body}`);
  const answer = restExplain(call.path, call.body);
  const result = (answer.results || [{}])[0];
  const values = result.attributions || [];
  const names = answer.feature_names || [];
  check(shown.error === "" && shown.visible, `${what}: no error ${shown.error}`);
  check(names.length === features.length && values.length === names.length &&
        shown.bars.length === names.length && shown.values.length === names.length &&
        JSON.stringify(shown.labels) === JSON.stringify(names),
        `${what}: one bar per feature, named ${shown.labels}, REST ${names}`);
  const signOf = (text) => (text.startsWith("+") ? 1 : text.startsWith("-") ? -1 : 0);
  check(shown.values.every((text, i) => Number(text) === values[i] &&
                                        signOf(text) === Math.sign(values[i])),
        `${what}: values printed ${shown.values} are REST's ${values}`);
  const largest = Math.max(...values.map(Math.abs));
  const scale = shown.bars[values.map(Math.abs).indexOf(largest)].width / largest;
  check(largest > 0 && shown.bars.every((bar, i) =>
          Math.abs(bar.width - scale * Math.abs(values[i])) <= 1e-6 * scale * largest),
        `${what}: bar lengths ${shown.bars.map((bar) => bar.width)} proportional to |${values}|`);
  check(shown.bars.every((bar, i) =>
          values[i] > 0 ? bar.sign === "positive" && Math.abs(bar.x - shown.axis) < 1e-6
          : values[i] < 0
          ? bar.sign === "negative" && Math.abs(bar.x + bar.width - shown.axis) < 1e-6
          : bar.sign === "zero" && bar.width === 0),
        `${what}: up right of the axis at ${shown.axis}, down left: ` +
        JSON.stringify(shown.bars.map((bar) => [bar.sign, bar.x, bar.width])));
  const ig = method === "integrated_gradients";
  check(shown.title === `Why ${predicted.label}?` && result.target_label === predicted.label &&
        shown.facts.class === `${predicted.label} (class ${predicted.index})` &&
        shown.facts.score ===
          `${result.score} (${answer.output.replace("OUTPUT_MODE_", "").toLowerCase()})` &&
        shown.facts.method.startsWith(method) &&
        (ig ? shown.facts.delta === String(result.delta) && shown.facts.method.includes("50 steps")
            : !("delta" in shown.facts)),
        `${what}: ${shown.title} ${JSON.stringify(shown.facts)}, REST score ${result.score}` +
        ` delta ${result.delta}`);
  return answer;
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
    document.querySelectorAll("#feature-fields [name^=feature]").length === width, {}, name,
    width);
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
    // The path of the one refusal the check asks for (churn's row limit).
    let refusalExpected = null;
    const isExpectedRefusal = (url, status) =>
      status === 429 && refusalExpected !== null && new URL(url).pathname === refusalExpected;
    page.on("console", (message) => {
      if (message.type() !== "error") return;
      if (!tokenTyped && message.text().includes("status of 401")) return;
      if (isExpectedRefusal(message.location().url || base, 429) &&
          message.text().includes("status of 429")) return;
      problems.push(`console error: ${message.text()}`);
    });
    page.on("pageerror", (error) => problems.push(`page error: ${error.message}`));
    page.on("requestfailed", (request) =>
      problems.push(`request failed: ${request.url()} ${request.failure().errorText}`));
    page.on("request", (request) => {
      if (!request.url().endsWith(":explain")) return;
      const headers = request.headers();
      explainCalls.push({ path: new URL(request.url()).pathname, body: request.postData(),
                          authorization: headers.authorization || headers.Authorization || "" });
    });
    page.on("response", (response) => {
      // Before the token is typed in, its absence is the expected answer.
      if (response.status() === 401 && !tokenTyped) return;
      if (isExpectedRefusal(response.url(), response.status())) return;
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
    check(JSON.stringify(models) === JSON.stringify(["canary", "churn", "hostile", "pets", "species"]),
          `models listed: ${models}`);
    const version = await page.$eval("#version", (node) => node.textContent);
    check(/^version \d/.test(version), `server version shown: ${version}`);
    const health = await page.$eval("#health", (node) => node.textContent);
    check(health === "ready", `health shown: ${health}`);

    await chooseModel(page, "species", 3);
    const facts = await page.$eval("#model-facts", (node) => node.textContent);
    check(facts.includes("bird, mammal, reptile"), "species labels shown");
    check(facts.includes("precisionfp32"), "species precision shown: " + facts);
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
    // species has a drift baseline: once it has answered, a chart per
    // feature, then the classes.
    await page.waitForFunction(() => !document.getElementById("drift").hidden);
    const driftCharts = await page.$$eval("#drift-charts figcaption",
                                          (items) => items.map((i) => i.textContent));
    check(JSON.stringify(driftCharts) ===
          JSON.stringify(["limbs", "lays_eggs", "has_hair", "predicted class"]),
          `species drift: a chart per feature and the class: ${driftCharts}`);
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

    // "Why?" beside the prediction offers the server's methods, integrated
    // gradients chosen first, and explains the classified row under its
    // output mode. Under softmax limbs pushes mammal down and has_hair up:
    // both signs are drawn.
    {
      const methods = await page.$$eval("#explain-method option",
                                        (options) => options.map((option) => option.value));
      const chosen = await page.$eval("#explain-method", (node) => node.value);
      check(JSON.stringify(methods) ===
              JSON.stringify(["saliency", "input_x_gradient", "integrated_gradients", "shapley"]) &&
            chosen === "integrated_gradients",
            `explain methods offered ${methods}, ${chosen} chosen`);
      const mammal = { index: 1, label: "mammal" };
      await classifyInPage(page, "logits");
      for (const method of methods) {
        checkExplanation(`species logits ${method}`, await explainInPage(page, method),
                         "species", [4, 0, 1], "logits", method, mammal);
      }
      await classifyInPage(page, "softmax");
      check(await page.$eval("#explanation", (node) => node.hidden),
            "a new classification hides the last row's explanation");
      const why = await explainInPage(page, "integrated_gradients");
      const answer = checkExplanation("species softmax integrated_gradients", why, "species",
                                      [4, 0, 1], "softmax", "integrated_gradients", mammal);
      const attributions = answer.results[0].attributions;
      check(JSON.stringify(why.labels) === JSON.stringify(["limbs", "lays_eggs", "has_hair"]) &&
            attributions[0] < 0 && attributions[2] > 0 &&
            why.bars[0].sign === "negative" && why.bars[2].sign === "positive",
            `species softmax: limbs pushed mammal down, has_hair up: ${why.labels} ${attributions}`);
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

    // The binary model's class "stays" (index 0) explained; integrated
    // gradients' 50 evaluations are over churn's limit of 16 rows, and the
    // page shows the server's refusal as it shows other errors.
    {
      checkExplanation("churn logits saliency", await explainInPage(page, "saliency"),
                       "churn", [2, 1, 0], "logits", "saliency", { index: 0, label: "stays" });
      refusalExpected = "/v1/models/churn/versions/1:explain";
      const shown = await explainInPage(page, "integrated_gradients");
      const call = shown.calls[0] || { path: "", body: "{}" };
      const answer = restExplain(call.path, call.body);
      check(call.path === refusalExpected && answer.code === "RESOURCE_EXHAUSTED" &&
            shown.error === answer.code + ": " + answer.message && !shown.visible,
            `churn integrated_gradients: the server's refusal shown: ${shown.error}`);
    }

    // pets is species behind preprocessing: limbs with a missing default of
    // 4, coat one_hot over feathers (lays_eggs) and hair (has_hair). The
    // form offers coat's categories; limbs left empty and coat "hair" is
    // species' row 4, 0, 1.
    await chooseModel(page, "pets", 2);
    const petsFacts = await page.$eval("#model-facts", (node) => node.textContent);
    check(petsFacts.includes("model input width3") &&
          petsFacts.includes("coat: one_hot (2 categories)") &&
          petsFacts.includes("limbs: missing default"),
          `pets preprocessing shown: ${petsFacts}`);
    const coat = await page.$$eval("#feature-fields select option", (o) => o.map((x) => x.value));
    check(JSON.stringify(coat) === JSON.stringify(["feathers", "hair"]),
          `coat offered as its categories: ${coat}`);
    await page.select("#feature-fields select", "hair");
    const limbs = await page.$("#feature-fields input");
    await limbs.click({ clickCount: 3 });
    await page.keyboard.press("Backspace");
    const petsShown = await classifyInPage(page, "default");
    const speciesRest = await restScores(page, "species", "default");
    check(petsShown.error === "" && petsShown.predicted === "mammal" &&
          JSON.stringify(petsShown.scores) === JSON.stringify(speciesRest),
          `pets with limbs missing and coat hair answers species' 4, 0, 1: ${petsShown.scores} ` +
          `vs ${speciesRest} ${petsShown.error}`);
    const petsCurl = await page.$eval("#curl-command", (node) => node.textContent);
    check(petsCurl.includes('"categories":["","hair"]'),
          `the curl command sends the category: ${petsCurl}`);
    const petsSeqclient = await page.$eval("#seqclient-command", (node) => node.textContent);
    check(petsSeqclient.startsWith(`echo '{"limbs":null,"coat":"hair"}' | seqclient classify `) &&
          petsSeqclient.includes("--model 'pets' --version 1"),
          `the seqclient command sends the row by name: ${petsSeqclient}`);

    await chooseModel(page, "hostile", 3);
    const hostileFacts = await page.$eval("#model-facts", (node) => node.textContent);
    check(hostileFacts.includes("<script>window.pwned=1</script>") &&
          hostileFacts.includes("<img src=x onerror=window.pwned=2>"),
          "hostile labels shown as text");
    const shown = await classifyInPage(page, "default");
    check(shown.labels.includes("<script>window.pwned=1</script>"),
          `hostile labels drawn as text in the chart: ${shown.labels}`);
    const why = await explainInPage(page, "saliency");
    check(why.error === "" && why.title === `Why ${shown.predicted}?` &&
          why.facts.class.startsWith(shown.predicted) && shown.predicted.startsWith("<"),
          `hostile label shown as text in the explanation: ${why.title}`);
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
