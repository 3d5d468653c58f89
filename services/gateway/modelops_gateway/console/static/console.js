// The ModelOps console: one page, hash-routed, no build step. Every figure comes from the gateway's API, called with
// the API key the user signed in with (kept in this tab's sessionStorage only), so each action is allowed or refused
// by the server for that key's role; the page only hides what the role cannot do. Text from the server is always
// set as text (never parsed as HTML): payloads and error messages are other people's data.

const KEY = "modelops.apiKey";
const REFRESH_MS = 2000;
const ROLES = ["viewer", "developer", "approver", "admin"];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
let me = null;
let timer = null;

// --- DOM and HTTP helpers --------------------------------------------------------------------------------------

function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else el.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs = {}, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, value);
  for (const child of children.flat())
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  return el;
}

class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
  }
}

async function api(path, options = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` };
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, {
    method: options.method || "GET",
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status === 401) {
    signOut();
    throw new ApiError(401, { detail: "the API key is no longer accepted" });
  }
  const body = response.headers.get("content-type")?.includes("json") ? await response.json() : await response.text();
  if (!response.ok) throw new ApiError(response.status, typeof body === "object" ? body : { detail: body });
  return body;
}

// Replace an element's children, leaving out the parts a page did not show (null, false).
const fill = (el, ...children) =>
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
const can = (role) => me && ROLES.indexOf(me.role) >= ROLES.indexOf(role);
const badge = (text) => h("span", { class: `badge ${text}` }, text);
const when = (iso) => (iso ? new Date(iso).toLocaleString() : "—");
const clock = (iso) => (iso ? new Date(iso).toISOString().slice(11, 23) : "—");
const short = (id, n = 12) => (id && id.length > n ? `${id.slice(0, n)}…` : id || "—");
const seconds = (s) =>
  s === null || s === undefined ? "—" : s < 1 ? `${Math.round(s * 1000)} ms` : `${s.toFixed(2)} s`;
const place = (x) => `${x.topic}[${x.partition}]@${x.offset}`;
const errorBox = (error) => h("p", { class: "error", role: "alert" }, error.message);

function table(columns, rows, empty = "Nothing yet.", id = null) {
  if (!rows.length) return h("p", { class: "muted", id }, empty);
  return h(
    "table",
    { id },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        columns.map(([title, , cls]) => h("th", { class: cls }, title)),
      ),
    ),
    h(
      "tbody",
      {},
      rows.map((row) =>
        h(
          "tr",
          {},
          columns.map(([, cell, cls]) => h("td", { class: cls }, cell(row))),
        ),
      ),
    ),
  );
}

// --- sign-in ---------------------------------------------------------------------------------------------------

function signOut() {
  sessionStorage.removeItem(KEY);
  me = null;
  render();
}

function signInPage(main) {
  const input = h("input", {
    type: "password",
    name: "api-key",
    placeholder: "mo_…",
    autocomplete: "off",
    required: true,
  });
  const problem = h("div");
  const form = h(
    "form",
    {
      class: "card signin",
      onsubmit: async (event) => {
        event.preventDefault();
        sessionStorage.setItem(KEY, input.value.trim());
        try {
          me = await api("/v1/api-keys/me");
          render();
        } catch (error) {
          sessionStorage.removeItem(KEY);
          problem.replaceChildren(errorBox(error));
        }
      },
    },
    h("h1", {}, "Sign in"),
    h("p", { class: "muted" }, "With an API key. The console can do what the key's role allows."),
    input,
    h("button", { class: "primary", type: "submit" }, "Sign in"),
    problem,
  );
  fill(main, form);
  input.focus();
}

// --- pages -----------------------------------------------------------------------------------------------------

async function jobsPage(main) {
  const kind = new URLSearchParams(location.hash.split("?")[1]).get("kind") || "";
  const filter = h(
    "select",
    { name: "kind", onchange: (e) => (location.hash = `#/jobs${e.target.value ? `?kind=${e.target.value}` : ""}`) },
    ["", "training", "quantization", "evaluation", "indexing"].map((k) =>
      h("option", { value: k, selected: k === kind }, k || "every kind"),
    ),
  );
  const list = h("div", { id: "jobs" });
  fill(
    main,
    h("h1", {}, "Jobs"),
    can("developer") ? trainingForm() : null,
    h("div", { class: "toolbar" }, filter, h("span", { class: "muted" }, "live: refreshed every 2 s")),
    list,
  );
  const refresh = async () => {
    const jobs = await api(`/v1/console/jobs?limit=100${kind ? `&kind=${kind}` : ""}`);
    fill(
      list,
      table(
        [
          ["Job", (j) => h("a", { href: `#/jobs/${encodeURIComponent(j.id)}`, class: "mono" }, j.id)],
          ["Kind", (j) => j.kind],
          ["Status", (j) => badge(j.status)],
          ["Submitted", (j) => when(j.submitted_at)],
          ["Last event", (j) => `${j.last_event.split(".").slice(-2, -1)[0]} · ${when(j.last_event_at)}`],
          ["Trace", (j) => h("span", { class: "mono" }, short(j.trace_id))],
        ],
        jobs,
        "No job recorded yet.",
      ),
    );
  };
  await refresh();
  return refresh;
}

function trainingForm() {
  const field = (label, input) => h("label", {}, label, input);
  const problem = h("div");
  // What is registered, offered as the user types (a datalist each, filled once the lists arrive).
  const bases = h("datalist", { id: "base-models" });
  const datasets = h("datalist", { id: "datasets" });
  api("/v1/artifacts?kind=base_model&limit=100")
    .then((page) =>
      bases.replaceChildren(...[...new Set(page.data.map((a) => a.name))].map((n) => h("option", { value: n }))),
    )
    .catch(() => undefined);
  api("/v1/datasets")
    .then((page) => datasets.replaceChildren(...page.data.map((d) => h("option", { value: d.name }, `v${d.version}`))))
    .catch(() => undefined);
  const base = h("input", {
    name: "base_model",
    required: true,
    list: "base-models",
    placeholder: "a base model",
    size: 24,
  });
  const dataset = h("input", { name: "dataset", required: true, list: "datasets", placeholder: "a dataset", size: 18 });
  const version = h("input", { name: "dataset_version", type: "number", min: 0, placeholder: "latest", size: 6 });
  const method = h(
    "select",
    { name: "method" },
    ["sft", "dpo"].map((m) => h("option", { value: m }, m)),
  );
  const steps = h("input", { name: "max_steps", type: "number", min: 1, value: 30, size: 6 });
  return h(
    "form",
    {
      class: "inline card",
      onsubmit: async (event) => {
        event.preventDefault();
        const body = {
          base_model: base.value.trim(),
          dataset: dataset.value.trim(),
          method: method.value,
          hyperparameters: { max_steps: Number(steps.value) },
        };
        if (version.value !== "") body.dataset_version = Number(version.value);
        try {
          const accepted = await api("/v1/jobs/training", { method: "POST", body });
          location.hash = `#/jobs/${encodeURIComponent(accepted.id)}`;
        } catch (error) {
          problem.replaceChildren(errorBox(error));
        }
      },
    },
    h("strong", {}, "New training job"),
    field("Base model", base),
    field("Dataset", dataset),
    field("Version", version),
    field("Method", method),
    field("Max steps", steps),
    h("button", { class: "primary", type: "submit" }, "Submit"),
    bases,
    datasets,
    problem,
  );
}

async function jobPage(main, id) {
  const draw = () => drawJob(main, id);
  await draw();
  return draw; // live: a finished job's adapter may still be registered and deployed
}

async function drawJob(main, id) {
  const [flow, jobs] = await Promise.all([
    api(`/v1/console/flows/${encodeURIComponent(id)}`).catch((e) => (e.status === 404 ? null : Promise.reject(e))),
    api("/v1/console/jobs?limit=200"),
  ]);
  const job = jobs.find((j) => j.id === id);
  const traceLinks = (flow?.trace_ids || []).map((t) =>
    flow.trace_url
      ? h("a", { href: flow.trace_url.replace("{trace_id}", t), target: "_blank", rel: "noopener", class: "mono" }, t)
      : h("span", { class: "mono" }, t),
  );
  const cancel =
    job && job.kind === "training" && !TERMINAL.has(job.status) && can("developer")
      ? h(
          "button",
          { onclick: () => api(`/v1/jobs/${encodeURIComponent(id)}/cancel`, { method: "POST", body: {} }) },
          "Cancel job",
        )
      : null;
  fill(
    main,
    h("h1", {}, "Job ", h("span", { class: "mono" }, id)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Kind"),
      h("dd", {}, job?.kind || "—"),
      h("dt", {}, "Status"),
      h("dd", { id: "job-status" }, job ? badge(job.status) : "—"),
      h("dt", {}, "Trace"),
      h("dd", {}, traceLinks.length ? traceLinks : "—"),
    ),
    cancel,
    h("h2", {}, "Timeline across services"),
    flow ? lanes(flow.hops) : h("p", { class: "muted" }, "No message of this job recorded yet."),
    flow
      ? table(
          [
            ["Time (UTC)", (x) => h("span", { class: "mono" }, clock(x.at))],
            ["Gap", (x) => (x.gap_s === null ? "—" : seconds(x.gap_s)), "num"],
            ["Service", (x) => x.service || "—"],
            ["Message", (x) => h("span", { class: "mono" }, x.type || "(no CloudEvent)")],
            ["Topic", (x) => (can("admin") ? h("a", { href: `#/topics/${x.topic}` }, place(x)) : place(x))],
            ["Trace", (x) => h("span", { class: "mono" }, short(x.trace_id, 8))],
          ],
          flow.hops,
          "No message yet.",
          "timeline",
        )
      : null,
  );
}

function lanes(hops) {
  const services = [...new Set(hops.map((x) => x.service || "?"))];
  const times = hops.map((x) => Date.parse(x.at));
  const start = Math.min(...times);
  const span = Math.max(1, Math.max(...times) - start);
  const width = 1000,
    left = 110,
    laneH = 28,
    height = services.length * laneH + 30;
  const x = (t) => left + ((t - start) / span) * (width - left - 20);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: "100%",
    role: "img",
    "aria-label": "timeline lanes",
  });
  services.forEach((service, i) => {
    const y = 14 + i * laneH;
    svg.append(s("text", { x: 4, y: y + 4, class: "lane-label" }, service));
    svg.append(s("line", { x1: left, x2: width - 10, y1: y, y2: y, stroke: "#e4e7ec" }));
  });
  hops.forEach((hop, i) => {
    const y = 14 + services.indexOf(hop.service || "?") * laneH;
    const dot = s("circle", { cx: x(times[i]), cy: y, r: 5, fill: hop.topic.endsWith(".dlq") ? "#b42318" : "#3358d4" });
    dot.append(s("title", {}, `${clock(hop.at)} ${hop.type || hop.topic}`));
    svg.append(dot);
  });
  svg.append(
    s("text", { x: left, y: height - 4, class: "lane-label" }, `${seconds(span / 1000)} from first to last message`),
  );
  return h("div", { class: "card" }, svg);
}

async function artifactsPage(main) {
  const page = await api("/v1/artifacts?limit=100");
  fill(
    main,
    h("h1", {}, "Artifacts"),
    table(
      [
        ["Name", (a) => h("a", { href: `#/artifacts/${encodeURIComponent(a.id)}` }, a.name)],
        ["Kind", (a) => a.kind],
        ["Version", (a) => a.version],
        ["Stage", (a) => badge(a.stage)],
        ["Created", (a) => `${when(a.created_at)} by ${a.created_by}`],
      ],
      page.data,
    ),
  );
}

async function artifactPage(main, id) {
  const e = encodeURIComponent(id);
  const [artifact, signature, promotions, lineage] = await Promise.all([
    api(`/v1/artifacts/${e}`),
    api(`/v1/console/artifacts/${e}/signature`),
    api(`/v1/artifacts/${e}/promotions`),
    api(`/v1/artifacts/${e}/lineage`),
  ]);
  const ids = new Set([
    id,
    ...[...lineage.ancestors, ...lineage.descendants].flatMap((x) => [x.parent_id, x.child_id]),
  ]);
  const nodes = Object.fromEntries(
    await Promise.all(
      [...ids].map(async (n) => [
        n,
        await api(`/v1/artifacts/${encodeURIComponent(n)}`).catch(() => ({ id: n, name: n, kind: "?" })),
      ]),
    ),
  );
  fill(
    main,
    h("h1", {}, artifact.name, " ", h("span", { class: "muted" }, artifact.version)),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Id"),
      h("dd", { class: "mono" }, artifact.id),
      h("dt", {}, "Kind"),
      h("dd", {}, artifact.kind),
      h("dt", {}, "Stage"),
      h("dd", {}, badge(artifact.stage)),
      h("dt", {}, "Signature"),
      h("dd", { id: "signature" }, badge(signature.status), " ", h("span", { class: "muted" }, signature.detail)),
      h("dt", {}, "Digest"),
      h("dd", { class: "mono" }, artifact.digest),
      h("dt", {}, "Job"),
      h(
        "dd",
        {},
        artifact.job_id
          ? h("a", { href: `#/jobs/${encodeURIComponent(artifact.job_id)}`, class: "mono" }, artifact.job_id)
          : "—",
      ),
      h("dt", {}, "Metrics"),
      h("dd", { class: "mono" }, JSON.stringify(artifact.metrics)),
    ),
    h("h2", {}, "Lineage"),
    lineageGraph(id, [...lineage.ancestors, ...lineage.descendants], nodes),
    h("h2", {}, "Stage history"),
    table(
      [
        ["When", (p) => when(p.at)],
        ["From → to", (p) => h("span", {}, badge(p.from_stage), " → ", badge(p.to_stage))],
        ["By", (p) => p.actor],
        ["Reason", (p) => p.reason],
        ["Signed by", (p) => h("span", { class: "mono" }, short(p.key_id))],
      ],
      promotions,
      "Never promoted.",
    ),
  );
}

function lineageGraph(self, edges, nodes) {
  // Layered drawing: an artifact's layer is one more than its deepest parent's; parents sit left of children.
  const depth = { [self]: 0 };
  const ids = Object.keys(nodes);
  ids.forEach((n) => (depth[n] ??= 0));
  for (let pass = 0; pass < ids.length; pass++) {
    for (const edge of edges) depth[edge.child_id] = Math.max(depth[edge.child_id], depth[edge.parent_id] + 1);
  }
  const layers = {};
  ids.forEach((n) => (layers[depth[n]] ??= []).push(n));
  const boxW = 190,
    boxH = 40,
    gapX = 120,
    gapY = 16;
  const where = {};
  Object.entries(layers).forEach(([d, members]) =>
    members.forEach((n, i) => (where[n] = { x: 10 + Number(d) * (boxW + gapX), y: 10 + i * (boxH + gapY) })),
  );
  const width = 20 + Object.keys(layers).length * (boxW + gapX);
  const height = 20 + Math.max(...Object.values(layers).map((m) => m.length)) * (boxH + gapY);
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    width: Math.min(width, 1300),
    role: "img",
    "aria-label": "lineage graph",
    id: "lineage",
  });
  for (const edge of edges) {
    const a = where[edge.parent_id],
      b = where[edge.child_id];
    if (!a || !b) continue;
    const x1 = a.x + boxW,
      y1 = a.y + boxH / 2,
      x2 = b.x,
      y2 = b.y + boxH / 2;
    svg.append(s("path", { class: "graph-edge", d: `M${x1},${y1} C${x1 + 35},${y1} ${x2 - 35},${y2} ${x2},${y2}` }));
    svg.append(s("text", { x: x1 + 6, y: y1 - 5, class: "lane-label" }, edge.relation));
  }
  for (const [n, at] of Object.entries(where)) {
    const node = nodes[n];
    const g = s("g", { class: `graph-node${n === self ? " self" : ""}`, transform: `translate(${at.x},${at.y})` });
    g.append(s("rect", { width: boxW, height: boxH, rx: 6 }));
    g.append(s("text", { x: 8, y: 16 }, short(node.name, 26)));
    g.append(s("text", { x: 8, y: 31, class: "lane-label" }, `${node.kind} ${node.version || ""}`));
    const link = s("a", { href: `#/artifacts/${encodeURIComponent(n)}` });
    link.append(g);
    svg.append(link);
  }
  return h("div", { class: "card" }, svg);
}

async function deploymentsPage(main) {
  const draw = () => drawDeployments(main);
  await draw();
  return draw;
}

async function drawDeployments(main) {
  const deployments = await api("/v1/deployments");
  fill(
    main,
    h("h1", {}, "Deployments"),
    table(
      [
        ["Name", (d) => h("a", { href: `#/deployments/${encodeURIComponent(d.name)}` }, d.name)],
        ["Status", (d) => badge(d.status)],
        ["Base model", (d) => d.base_model],
        ["Adapters", (d) => d.adapters.join(", ") || "—"],
        ["Serves", (d) => d.models.join(", ")],
      ],
      deployments,
      "Nothing deployed.",
    ),
  );
}

async function deploymentPage(main, name) {
  const draw = () => drawDeployment(main, name);
  await draw();
  return draw;
}

async function drawDeployment(main, name) {
  const e = encodeURIComponent(name);
  const [deployment, serving] = await Promise.all([
    api(`/v1/deployments/${e}`),
    api(`/v1/console/deployments/${e}/serving`),
  ]);
  const total = (m) => Object.values(m.requests).reduce((a, b) => a + b, 0);
  fill(
    main,
    h("h1", {}, "Deployment ", name),
    h(
      "dl",
      { class: "facts" },
      h("dt", {}, "Status"),
      h("dd", {}, badge(deployment.status), deployment.reason ? ` ${deployment.reason}` : ""),
      h("dt", {}, "Base model"),
      h("dd", {}, deployment.base_model),
      h("dt", {}, "Adapters"),
      h("dd", {}, deployment.adapters.join(", ") || "—"),
    ),
    h("h2", {}, "Serving (this inference replica; Prometheus has every replica)"),
    table(
      [
        ["Model", (m) => m.model],
        [
          "Requests",
          (m) =>
            `${total(m)} (${Object.entries(m.requests)
              .map(([k, v]) => `${k} ${v}`)
              .join(", ")})`,
        ],
        ["Prompt tokens", (m) => m.prompt_tokens, "num"],
        ["Completion tokens", (m) => m.completion_tokens, "num"],
        ["TTFT p50", (m) => seconds(m.time_to_first_token.p50_s), "num"],
        ["TTFT p95", (m) => seconds(m.time_to_first_token.p95_s), "num"],
        ["Inter-token p50", (m) => seconds(m.inter_token_latency.p50_s), "num"],
        ["Inter-token p95", (m) => seconds(m.inter_token_latency.p95_s), "num"],
      ],
      serving.models,
      "No request served yet.",
      "serving",
    ),
  );
}

async function topicsPage(main) {
  const draw = () => drawTopics(main);
  await draw();
  return draw;
}

async function drawTopics(main) {
  const [topics, groups] = await Promise.all([api("/v1/console/topics"), api("/v1/console/groups")]);
  fill(
    main,
    h("h1", {}, "Topics"),
    table(
      [
        ["Topic", (t) => (can("admin") ? h("a", { href: `#/topics/${t.name}` }, t.name) : t.name)],
        ["Partitions", (t) => t.partitions.length, "num"],
        ["Messages", (t) => t.messages, "num"],
        ["End offsets", (t) => h("span", { class: "mono" }, t.partitions.map((p) => p.latest).join(" "))],
        ["Producers → consumers", (t) => `${t.producers.join(", ") || "—"} → ${t.consumers.join(", ") || "operators"}`],
      ],
      topics.filter((t) => !t.dead_letter_topic || t.messages),
    ),
    h("h2", {}, "Consumer groups"),
    table(
      [
        ["Group", (g) => g.group],
        ["State", (g) => (g.state === "Unknown" ? "—" : g.state)],
        ["Lag", (g) => g.lag, "num"],
        [
          "Partitions (committed / end)",
          (g) =>
            h(
              "span",
              { class: "mono" },
              g.partitions
                .filter((p) => p.lag)
                .map((p) => `${p.topic}[${p.partition}] ${p.committed}/${p.latest}`)
                .join("  ") || `${g.partitions.length} caught up`,
            ),
        ],
      ],
      groups,
      "No consumer group.",
      "groups",
    ),
  );
}

function messageRows(messages) {
  return table(
    [
      ["Time", (m) => when(m.timestamp)],
      ["Where", (m) => h("span", { class: "mono" }, `[${m.partition}]@${m.offset}`)],
      ["Key", (m) => h("span", { class: "mono" }, m.key || "—")],
      [
        "Headers",
        (m) =>
          h(
            "pre",
            {},
            Object.entries(m.headers)
              .map(([k, v]) => `${k}: ${v}`)
              .join("\n"),
          ),
      ],
      [
        "Payload",
        (m) =>
          h(
            "details",
            {},
            h("summary", {}, `${m.payload_bytes} bytes${m.truncated ? " (first 16 KiB)" : ""}`),
            h("pre", {}, typeof m.payload === "string" ? m.payload : JSON.stringify(m.payload, null, 2)),
          ),
      ],
    ],
    messages,
    "No message on this topic.",
  );
}

async function topicPage(main, name) {
  const messages = await api(`/v1/console/topics/${encodeURIComponent(name)}/messages?limit=30`);
  fill(
    main,
    h("h1", {}, name),
    h("p", { class: "muted" }, "The latest messages, newest first."),
    messageRows(messages),
  );
}

async function deadLettersPage(main) {
  const letters = await api("/v1/console/dead-letters?limit=100");
  const outcome = h("div");
  const replay = (topic, consumer) =>
    h(
      "button",
      {
        onclick: async (event) => {
          event.target.disabled = true;
          try {
            const sent = await api("/v1/console/dead-letters/replay", { method: "POST", body: { topic, consumer } });
            outcome.replaceChildren(h("p", {}, `${sent.length} dead letter(s) of ${topic} replayed.`));
          } catch (error) {
            outcome.replaceChildren(errorBox(error));
          }
        },
      },
      "Replay",
    );
  const dlq = (m, name) => m.headers[`dlq_${name}`] || "—";
  fill(
    main,
    h("h1", {}, "Dead letters"),
    h(
      "p",
      { class: "muted" },
      "Messages a consumer could not handle. Fix the cause, then replay: consumers are idempotent.",
    ),
    outcome,
    table(
      [
        ["Failed", (m) => when(dlq(m, "failed_at"))],
        [
          "Original",
          (m) =>
            h(
              "span",
              { class: "mono" },
              `${dlq(m, "original_topic")}[${dlq(m, "original_partition")}]@${dlq(m, "original_offset")}`,
            ),
        ],
        ["Consumer", (m) => dlq(m, "consumer")],
        ["Error", (m) => h("span", {}, h("strong", {}, dlq(m, "error_type")), " ", dlq(m, "error"))],
        ["Attempts", (m) => dlq(m, "attempts"), "num"],
        ["", (m) => replay(dlq(m, "original_topic"), m.headers.dlq_consumer || null)],
      ],
      letters,
      "No dead letters.",
    ),
  );
}

// --- routing ---------------------------------------------------------------------------------------------------

const ROUTES = [
  [/^#\/jobs\/(.+)$/, jobPage],
  [/^#\/jobs(\?.*)?$/, jobsPage],
  [/^#\/artifacts\/(.+)$/, artifactPage],
  [/^#\/artifacts$/, artifactsPage],
  [/^#\/deployments\/(.+)$/, deploymentPage],
  [/^#\/deployments$/, deploymentsPage],
  [/^#\/topics\/(.+)$/, topicPage],
  [/^#\/topics$/, topicsPage],
  [/^#\/dead-letters$/, deadLettersPage],
];

async function render() {
  clearTimeout(timer);
  const main = document.getElementById("main");
  const nav = document.getElementById("nav");
  const who = document.getElementById("who");
  if (!sessionStorage.getItem(KEY)) {
    nav.hidden = true;
    who.replaceChildren();
    return signInPage(main);
  }
  if (!me) {
    try {
      me = await api("/v1/api-keys/me");
    } catch (error) {
      return signInPage(main);
    }
  }
  nav.hidden = false;
  who.replaceChildren(h("span", {}, `${me.name} · ${me.role}`), h("button", { onclick: signOut }, "Sign out"));
  nav.querySelectorAll("[data-role]").forEach((a) => (a.hidden = !can(a.dataset.role)));
  const hash = location.hash || "#/jobs";
  nav.querySelectorAll("a").forEach((a) => a.classList.toggle("active", hash.startsWith(`#/${a.dataset.page}`)));
  const [pattern, page] = ROUTES.find(([p]) => p.test(hash)) || ROUTES[1];
  const argument = decodeURIComponent(hash.match(pattern)?.[1] || "");
  try {
    const refresh = await page(main, argument);
    if (refresh) schedule(hash, refresh);
  } catch (error) {
    fill(main, errorBox(error));
  }
}

// A live page redraws every REFRESH_MS while it is the one shown; a failed redraw keeps the last one and tries again.
function schedule(shown, refresh) {
  timer = setTimeout(async () => {
    if ((location.hash || "#/jobs") !== shown || !me) return;
    await refresh().catch(() => undefined);
    schedule(shown, refresh);
  }, REFRESH_MS);
}

window.addEventListener("hashchange", render);
window.addEventListener("DOMContentLoaded", render);
