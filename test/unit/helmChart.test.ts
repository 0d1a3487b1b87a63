/**
 * The Helm chart's PromQL (PrometheusRule template, Grafana dashboard) against the metrics the connector really
 * exports, and the chart's FC_* settings against the connector's settings. Reads the chart's files as text:
 * no helm needed (`.ci/chart-checks` renders, lints and tests the chart with helm and promtool).
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Registry } from "prom-client";
import { describe, expect, it } from "vitest";
import { SETTING_NAMES, SETTINGS } from "../../src/config/index.ts";
import { createMetrics } from "../../src/observability/metrics.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
const CHART = join(ROOT, "helm/forecast-connector");
const read = (path: string) => readFileSync(join(ROOT, path), "utf8");

/** Labels Prometheus adds at scrape time (prometheus-operator's ServiceMonitor/PodMonitor), not the connector. */
const TARGET_LABELS = new Set(["namespace", "job", "pod", "instance", "container", "service", "endpoint"]);

interface ExportedMetric {
  readonly type: string;
  readonly labels: ReadonlySet<string>;
}

/** What the connector's /metrics exposes: every metric of createMetrics, default process/Node.js ones included. */
function exportedMetrics(): Map<string, ExportedMetric> {
  const { registry } = createMetrics(new Registry());
  const exported = new Map<string, ExportedMetric>();
  for (const metric of registry.getMetricsAsArray()) {
    const { name, type, labelNames } = metric as unknown as {
      name: string;
      type: string;
      labelNames: string[];
    };
    exported.set(name, { type, labels: new Set(labelNames) });
  }
  return exported;
}

/** A series name as PromQL uses it -> the metric it belongs to and its labels (histograms add le to _bucket). */
function resolveSeries(exported: Map<string, ExportedMetric>, series: string): ExportedMetric | undefined {
  const direct = exported.get(series);
  if (direct) return direct;
  const match = /^(.*)_(bucket|sum|count)$/.exec(series);
  if (!match) return undefined;
  const [, base, suffix] = match as unknown as [string, string, string];
  const metric = exported.get(base);
  if (!metric || (metric.type !== "histogram" && metric.type !== "summary")) return undefined;
  if (suffix === "bucket" && metric.type !== "histogram") return undefined;
  return { type: metric.type, labels: new Set([...metric.labels, ...(suffix === "bucket" ? ["le"] : [])]) };
}

interface Matcher {
  readonly label: string;
  readonly op: string;
  readonly value: string;
}
interface Selector {
  readonly metric: string;
  readonly matchers: readonly Matcher[];
}
interface ParsedQuery {
  readonly selectors: readonly Selector[];
  /** Labels of by / without / on / ignoring / group_left / group_right clauses. */
  readonly groupingLabels: readonly string[];
  /** Bare identifiers that are neither PromQL keywords nor functions: metric names outside our prefix. */
  readonly otherNames: readonly string[];
}

const KEYWORDS = new Set(["and", "or", "unless", "offset", "bool", "atan2", "inf", "nan", "Inf", "NaN"]);
/** Aggregations may be followed by their by/without clause before the parenthesis: sum by (le) (...). */
const AGGREGATIONS = new Set([
  "sum",
  "min",
  "max",
  "avg",
  "group",
  "stddev",
  "stdvar",
  "count",
  "count_values",
  "bottomk",
  "topk",
  "quantile",
  "limitk",
  "limit_ratio",
]);
const GROUPING = new Set(["by", "without", "on", "ignoring", "group_left", "group_right"]);

/**
 * A small PromQL scanner: enough to find every metric selector with its label matchers and every grouping
 * label, skipping strings, range/subquery brackets and numbers. Helm actions ({{ ... }}) are removed first.
 */
function parsePromQL(source: string): ParsedQuery {
  const query = source.replace(/\{\{.*?\}\}/gs, "");
  const selectors: Selector[] = [];
  const groupingLabels: string[] = [];
  const otherNames: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < query.length && /\s/.test(query[i] as string)) i++;
  };
  const readString = (): string => {
    const quote = query[i] as string;
    let value = "";
    i++;
    while (i < query.length && query[i] !== quote) {
      if (query[i] === "\\" && quote !== "`") i++;
      value += query[i];
      i++;
    }
    if (query[i] !== quote) throw new Error(`unterminated string in: ${source}`);
    i++;
    return value;
  };
  const readMatchers = (): Matcher[] => {
    const close = matchingBrace(query, i);
    const body = query.slice(i + 1, close);
    i = close + 1;
    const matchers: Matcher[] = [];
    const re =
      /\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)\s*(,|$)/y;
    let rest = body.replace(/^\s*,/, "");
    while (rest.trim() !== "") {
      re.lastIndex = 0;
      const m = re.exec(rest);
      if (!m) throw new Error(`cannot read label matchers {${body}} in: ${source}`);
      const [whole, label, op, quoted] = m as unknown as [string, string, string, string];
      matchers.push({ label, op, value: quoted.slice(1, -1) });
      rest = rest.slice(whole.length);
    }
    return matchers;
  };
  while (i < query.length) {
    const c = query[i] as string;
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'" || c === "`") {
      readString();
    } else if (c === "[") {
      // A range or subquery duration: [15m], [$__rate_interval], [30m:1m].
      i = query.indexOf("]", i) + 1;
      if (i === 0) throw new Error(`unterminated [ in: ${source}`);
    } else if (c === "{") {
      throw new Error(`a selector without a metric name ({...}) is not checkable: ${source}`);
    } else if (/[0-9.]/.test(c)) {
      while (i < query.length && /[0-9a-zA-Z.+_]/.test(query[i] as string)) {
        if ((query[i] === "+" || query[i] === "-") && !/[eE]/.test(query[i - 1] as string)) break;
        i++;
      }
    } else if (/[a-zA-Z_:]/.test(c)) {
      const start = i;
      while (i < query.length && /[a-zA-Z0-9_:]/.test(query[i] as string)) i++;
      const word = query.slice(start, i);
      skipSpace();
      if (GROUPING.has(word)) {
        if (query[i] !== "(") continue; // group_left without labels
        const close = query.indexOf(")", i);
        for (const label of query.slice(i + 1, close).split(",")) {
          if (label.trim() !== "") groupingLabels.push(label.trim());
        }
        i = close + 1;
      } else if (query[i] === "(") {
        // A function or aggregation: its arguments are scanned as the loop goes on.
      } else if (query[i] === "{") {
        selectors.push({ metric: word, matchers: readMatchers() });
      } else if (!KEYWORDS.has(word) && !AGGREGATIONS.has(word)) {
        selectors.push({ metric: word, matchers: [] });
      }
    } else {
      i++;
    }
  }
  for (const { metric } of selectors) if (!metric.startsWith("forecast_connector_")) otherNames.push(metric);
  return { selectors, groupingLabels, otherNames };
}

function matchingBrace(text: string, open: number): number {
  let i = open + 1;
  while (i < text.length && text[i] !== "}") {
    const c = text[i] as string;
    if (c === '"' || c === "'" || c === "`") {
      i++;
      while (i < text.length && text[i] !== c) i += text[i] === "\\" ? 2 : 1;
    }
    i++;
  }
  if (text[i] !== "}") throw new Error(`unterminated { in: ${text}`);
  return i;
}

/** Every string literal of the connector's source: where label values such as "missing_prediction" come from. */
function sourceLiterals(): Set<string> {
  const literals = new Set<string>();
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir)) {
      const path = join(dir, entry);
      if (statSync(path).isDirectory()) walk(path);
      else if (path.endsWith(".ts")) {
        for (const m of readFileSync(path, "utf8").matchAll(/"([^"\\\n]*)"/g)) literals.add(m[1] as string);
      }
    }
  };
  walk(join(ROOT, "src"));
  return literals;
}

/** The expr of each alert in the PrometheusRule template (block scalars or one-line values). */
function alertExpressions(template: string): { alert: string; expr: string }[] {
  const lines = template.split("\n");
  const alerts: { alert: string; expr: string }[] = [];
  let current: string | undefined;
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n] as string;
    const alert = /^\s*- alert:\s*(\S+)/.exec(line);
    if (alert) current = alert[1];
    const expr = /^(\s*)expr:\s*(.*)$/.exec(line);
    if (!expr) continue;
    const [, indent, inline] = expr as unknown as [string, string, string];
    let text = inline;
    if (/^[|>][-+]?$/.test(inline.trim())) {
      const body: string[] = [];
      while (n + 1 < lines.length) {
        const next = lines[n + 1] as string;
        if (next.trim() !== "" && next.search(/\S/) <= indent.length) break;
        body.push(next);
        n++;
      }
      text = body.join("\n");
    }
    if (!current) throw new Error(`an expr outside an alert rule: ${text}`);
    alerts.push({ alert: current, expr: text });
    current = undefined;
  }
  return alerts;
}

interface Panel {
  type: string;
  title: string;
  datasource?: { type?: string; uid?: string };
  targets?: { expr?: string; refId?: string; datasource?: { uid?: string } }[];
  panels?: Panel[];
}
interface Dashboard {
  uid: string;
  title: string;
  panels: Panel[];
  templating: {
    list: { name: string; type: string; definition?: string; query?: string | { query?: string } }[];
  };
}

const dashboardText = read("helm/forecast-connector/dashboards/forecast-connector.json");
const ruleTemplate = read("helm/forecast-connector/templates/prometheusrule.yaml");

function dashboardPanels(dashboard: Dashboard): Panel[] {
  return dashboard.panels.flatMap((panel) => [panel, ...(panel.panels ?? [])]);
}

/** Every PromQL the chart ships, with where it comes from. */
function chartQueries(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(dashboardText) as Dashboard;
  const queries = alertExpressions(ruleTemplate).map(({ alert, expr }) => ({
    where: `alert ${alert}`,
    expr,
  }));
  for (const panel of dashboardPanels(dashboard)) {
    for (const target of panel.targets ?? []) {
      if (target.expr) queries.push({ where: `panel "${panel.title}" ${target.refId}`, expr: target.expr });
    }
  }
  for (const variable of dashboard.templating.list) {
    const query = typeof variable.query === "string" ? variable.query : variable.query?.query;
    if (variable.type !== "query" || !query) continue;
    // label_values(<selector>, <label>): the selector is PromQL, the label must be one of its metric's.
    const m = /^label_values\((.*),\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\)$/s.exec(query);
    if (!m) throw new Error(`variable ${variable.name}: unsupported query ${query}`);
    queries.push({ where: `variable ${variable.name}`, expr: `${m[1]} and on (${m[2]}) vector(1)` });
  }
  return queries;
}

describe("Helm chart: PromQL against the exported metrics", () => {
  const exported = exportedMetrics();
  const literals = sourceLiterals();

  it("finds the alerts and the dashboard's queries", () => {
    const alerts = alertExpressions(ruleTemplate);
    expect(alerts.length).toBeGreaterThanOrEqual(9);
    expect(new Set(alerts.map((a) => a.alert)).size).toBe(alerts.length);
    expect(chartQueries().length).toBeGreaterThan(alerts.length + 30);
  });

  it("uses only metrics the connector exports, with labels they have and label values the code sets", () => {
    const problems: string[] = [];
    for (const { where, expr } of chartQueries()) {
      const parsed = parsePromQL(expr);
      if (parsed.selectors.length === 0) problems.push(`${where}: no metric in ${expr}`);
      for (const name of parsed.otherNames)
        problems.push(`${where}: ${name} is not a forecast_connector_ metric`);
      const labelsInQuery = new Set<string>(TARGET_LABELS);
      for (const { metric, matchers } of parsed.selectors) {
        if (!metric.startsWith("forecast_connector_")) continue;
        const resolved = resolveSeries(exported, metric);
        if (!resolved) {
          problems.push(
            `${where}: ${metric} is not exported by createMetrics (src/observability/metrics.ts)`,
          );
          continue;
        }
        for (const label of resolved.labels) labelsInQuery.add(label);
        for (const { label, op, value } of matchers) {
          if (TARGET_LABELS.has(label)) continue;
          if (!resolved.labels.has(label)) {
            problems.push(
              `${where}: ${metric} has no label ${label} (it has: ${[...resolved.labels].join(", ")})`,
            );
          } else if ((op === "=" || op === "!=") && label !== "le" && !literals.has(value)) {
            problems.push(`${where}: ${metric}{${label}${op}"${value}"}: "${value}" appears nowhere in src/`);
          }
        }
      }
      for (const label of parsed.groupingLabels) {
        if (!labelsInQuery.has(label))
          problems.push(`${where}: grouping label ${label} is on none of its metrics`);
      }
    }
    expect(problems).toEqual([]);
  });

  it("the scanner itself finds names, histogram suffixes, matchers and grouping labels", () => {
    const parsed = parsePromQL(
      'histogram_quantile(0.99, sum by (le) (rate(forecast_connector_job_duration_seconds_bucket{ {{- $s -}}, status="Completed"}[{{ .window }}]))) > 1e+03 unless on (pod) up',
    );
    expect(parsed.selectors.map((s) => s.metric)).toEqual([
      "forecast_connector_job_duration_seconds_bucket",
      "up",
    ]);
    expect(parsed.selectors[0]?.matchers).toEqual([{ label: "status", op: "=", value: "Completed" }]);
    expect(parsed.groupingLabels).toEqual(["le", "pod"]);
    expect(parsed.otherNames).toEqual(["up"]);
    expect(resolveSeries(exported, "forecast_connector_job_duration_seconds_bucket")?.labels).toEqual(
      new Set(["status", "le"]),
    );
    expect(resolveSeries(exported, "forecast_connector_events_consumed_total_count")).toBeUndefined();
    expect(resolveSeries(exported, "forecast_connector_nodejs_gc_duration_seconds_sum")?.labels).toEqual(
      new Set(["kind"]),
    );
  });
});

describe("Helm chart: Grafana dashboard", () => {
  it("parses, and every panel has a datasource and targets with an expression", () => {
    const dashboard = JSON.parse(dashboardText) as Dashboard;
    expect(dashboard.uid).toBe("forecast-connector");
    const problems: string[] = [];
    for (const panel of dashboardPanels(dashboard)) {
      if (panel.type === "row") continue;
      if (!panel.datasource?.uid) problems.push(`panel "${panel.title}" has no datasource`);
      if (!panel.targets?.length) problems.push(`panel "${panel.title}" has no targets`);
      for (const target of panel.targets ?? []) {
        if (!target.expr || !target.refId || !target.datasource?.uid)
          problems.push(`panel "${panel.title}": a target lacks expr, refId or datasource`);
      }
    }
    expect(problems).toEqual([]);
    // The Grafana sidecar imports the JSON as it is: the datasource must be a variable, not a fixed uid.
    expect(dashboard.templating.list.find((v) => v.name === "datasource")?.type).toBe("datasource");
  });

  it("shows throughput, lag, jobs, latency percentiles, dead letters, tokens, commits and the process", () => {
    const text = dashboardText;
    for (const needle of [
      "forecast_connector_events_consumed_total",
      "forecast_connector_predictions_published_total",
      "forecast_connector_consumer_lag_messages",
      "forecast_connector_jobs_in_flight",
      "histogram_quantile(0.99, sum by (le) (rate(forecast_connector_job_duration_seconds_bucket",
      "histogram_quantile(0.5, sum by (le) (rate(forecast_connector_end_to_end_latency_seconds_bucket",
      "histogram_quantile(0.9, sum by (le) (rate(forecast_connector_end_to_end_latency_seconds_bucket",
      "histogram_quantile(0.99, sum by (le) (rate(forecast_connector_end_to_end_latency_seconds_bucket",
      "sum by (reason) (rate(forecast_connector_dead_letters_total",
      "forecast_connector_token_renewals_total",
      "forecast_connector_offset_commits_total",
      "forecast_connector_process_resident_memory_bytes",
      "forecast_connector_nodejs_eventloop_lag_p99_seconds",
      "forecast_connector_nodejs_gc_duration_seconds_sum",
      "forecast_connector_nodejs_heap_size_used_bytes",
    ]) {
      expect(text, needle).toContain(needle);
    }
  });
});

describe("Helm chart: settings and start position", () => {
  const chartFiles = (): string[] => {
    const files: string[] = [];
    const walk = (dir: string) => {
      for (const entry of readdirSync(dir)) {
        const path = join(dir, entry);
        if (statSync(path).isDirectory()) walk(path);
        else if (/\.(ya?ml|tpl|txt|json)$/.test(path)) files.push(path);
      }
    };
    walk(CHART);
    return files;
  };

  it("names only FC_* settings the connector knows (an unknown one stops it at start)", () => {
    const known = new Set<string>(SETTING_NAMES);
    const unknown = new Set<string>();
    for (const file of chartFiles()) {
      for (const m of readFileSync(file, "utf8").matchAll(/\bFC_[A-Z0-9_]*[A-Z0-9]\b/g)) {
        if (!known.has(m[0])) unknown.add(`${m[0]} (${file.slice(CHART.length + 1)})`);
      }
    }
    expect([...unknown]).toEqual([]);
  });

  it("refuses every secret setting in the ConfigMap (its list matches the settings marked secret)", () => {
    const helpers = read("helm/forecast-connector/templates/_helpers.tpl");
    const list = /\$secretSettings := list ((?:"FC_[A-Z0-9_]+"\s*)+)/.exec(helpers);
    expect(list, "the $secretSettings list in _helpers.tpl").toBeTruthy();
    const inChart = [...(list?.[1] ?? "").matchAll(/"(FC_[A-Z0-9_]+)"/g)].map((m) => m[1]).sort();
    const secret = Object.values(SETTINGS)
      .filter((setting) => setting.secret)
      .map((setting) => setting.env)
      .sort();
    expect(inChart).toEqual(secret);
  });

  it("derives the grace period and the stall window from the connector's own defaults", () => {
    const helpers = read("helm/forecast-connector/templates/_helpers.tpl");
    const values = read("helm/forecast-connector/values.yaml");
    const shutdownDefault = SETTINGS.FC_SHUTDOWN_TIMEOUT_MS.default;
    expect(helpers).toContain(`-}}${shutdownDefault}{{- else -}}`);
    expect(values).toContain(`FC_SHUTDOWN_TIMEOUT_MS: "${shutdownDefault}"`);
    expect(ruleTemplate).toContain(`FC_JOB_TIMEOUT_MS | default ${SETTINGS.FC_JOB_TIMEOUT_MS.default} |`);
    // The connector exits by itself FC_SHUTDOWN_TIMEOUT_MS + N ms after SIGTERM: the margin must be longer.
    const hardStop = /shutdownTimeoutMs\s*\+\s*([\d_]+)/.exec(read("src/cli.ts"));
    expect(hardStop, "the hard-stop delay in src/cli.ts").toBeTruthy();
    const hardStopSeconds = Number((hardStop?.[1] ?? "").replaceAll("_", "")) / 1000;
    const margin = Number(/^shutdownGraceMarginSeconds:\s*(\d+)/m.exec(values)?.[1]);
    expect(margin).toBeGreaterThan(hardStopSeconds);
    const schema = JSON.parse(read("helm/forecast-connector/values.schema.json"));
    expect(schema.properties.shutdownGraceMarginSeconds.minimum).toBeGreaterThan(hardStopSeconds);
  });

  it("makes KEDA count lag from where a new group starts reading", () => {
    const consumer = read("src/consumer/inputConsumer.ts");
    const fromBeginning = /fromBeginning:\s*(true|false)/.exec(consumer)?.[1];
    expect(fromBeginning, "fromBeginning in src/consumer/inputConsumer.ts").toBeDefined();
    const policy = /offsetResetPolicy:\s*(\w+)/.exec(
      read("helm/forecast-connector/templates/scaledobject.yaml"),
    )?.[1];
    expect(policy).toBe(fromBeginning === "true" ? "earliest" : "latest");
  });

  it("lists every alert in the README", () => {
    const readme = read("README.md");
    for (const { alert } of alertExpressions(ruleTemplate)) expect(readme, alert).toContain(`\`${alert}\``);
  });
});
