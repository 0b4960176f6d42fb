/** The model registry: projects, versions (state, metrics, evaluation), a version's audit and lineage,
 * overriding a failed gate (release approvers), and the hub's base models. */
import { useState } from "react";

import { api } from "../api";
import { ActionButton, Badge, FormCard, Link, Loading, Table, newest, useAccess, useLoad, when } from "../components";
import { useT } from "../i18n";

interface Project {
  id: string;
  name: string;
  desc: string;
  train_framework: string;
  inference_framework: string;
  gate: Record<string, unknown>;
  created_at: string;
}

interface ModelVersion {
  id: string;
  project_id: string;
  version: number;
  state: string;
  framework: string;
  training_job_id: string | null;
  base_model_id: string | null;
  dataset_versions: Record<string, unknown>[];
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, number>;
  evaluation_passed: boolean | null;
  bundle_uri: string | null;
  created_at: string;
}

interface AuditRow {
  id: string;
  action: string;
  from_state: string | null;
  to_state: string;
  actor: string | null;
  approved_by: string | null;
  reason: string | null;
  at: string;
}

interface Evaluation {
  id: string;
  passed: boolean;
  metrics: Record<string, number>;
  thresholds: Record<string, unknown>;
  failed_checks: string[];
  checks: string[];
  recorded_at: string;
}

interface BaseModel {
  id: string;
  name: string;
  version: string;
  architecture: string;
  parameter_count: number;
  licence: string;
}

interface Graph {
  nodes: { kind: string; id: string; distance: number; name?: string | null }[];
  edges: { source_kind: string; source_id: string; target_kind: string; target_id: string; relation: string }[];
}

const metricText = (metrics: Record<string, number>) =>
  Object.entries(metrics)
    .map(([name, value]) => `${name}=${Number(value).toPrecision(4)}`)
    .join(", ");

export function ModelsPage({ go }: { go: (to: string) => void }) {
  const t = useT();
  const { can } = useAccess();
  const projects = useLoad(() => api<Project[]>("registry", "/model-projects"), []);
  const baseModels = useLoad(() => api<BaseModel[]>("registry", "/base-models"), []);
  const [creating, setCreating] = useState(false);
  return (
    <section>
      <header className="page-head">
        <h1>{t("models.projects")}</h1>
        {can("registry.write") && (
          <button type="button" className="primary" onClick={() => setCreating(!creating)} data-testid="new-model-project">
            {t("models.newProject")}
          </button>
        )}
      </header>
      {creating && (
        <FormCard
          testId="create-model-project"
          submitLabel={t("common.create")}
          onSubmit={async (form) => {
            const created = await api<Project>("registry", "/model-projects", {
              body: {
                name: form.get("name"),
                desc: form.get("desc"),
                train_framework: "pytorch",
                inference_framework: "transformers",
              },
            });
            go(`/models/${created.id}`);
          }}
        >
          <label>
            {t("common.name")} <input name="name" required />
          </label>
          <label>
            {t("common.description")} <input name="desc" />
          </label>
        </FormCard>
      )}
      <Loading loaded={projects}>
        {(items) => (
          <Table
            testId="model-projects"
            head={[t("common.name"), t("common.description"), t("models.gate"), t("common.created")]}
            rows={newest(items).map((p) => [
              <Link to={`/models/${p.id}`}>{p.name}</Link>,
              p.desc,
              <code>{JSON.stringify(p.gate)}</code>,
              when(p.created_at),
            ])}
          />
        )}
      </Loading>
      <h2>{t("models.baseModels")}</h2>
      <Loading loaded={baseModels}>
        {(items) => (
          <Table
            head={[t("common.name"), t("models.architecture"), t("models.parameters"), t("datasets.licence")]}
            rows={items.map((m) => [`${m.name}:${m.version}`, m.architecture, m.parameter_count.toLocaleString(), m.licence])}
          />
        )}
      </Loading>
    </section>
  );
}

export function ModelProjectPage({ id }: { id: string }) {
  const t = useT();
  const { can } = useAccess();
  const project = useLoad(() => api<Project>("registry", `/model-projects/${id}`), [id]);
  const versions = useLoad(() => api<ModelVersion[]>("registry", `/model-projects/${id}/versions`), [id], 5000);
  const [chosen, setChosen] = useState<string[]>([]);
  const toggle = (versionId: string) =>
    setChosen((now) => (now.includes(versionId) ? now.filter((v) => v !== versionId) : [...now, versionId]));
  const compared = (versions.data ?? []).filter((v) => chosen.includes(v.id)).sort((a, b) => a.version - b.version);
  return (
    <section>
      <Loading loaded={project}>
        {(p) => (
          <>
            <header className="page-head">
              <h1>{p.name}</h1>
              <span className="muted">{p.desc}</span>
            </header>
            <GateEditor project={p} editable={can("registry.gate")} onSaved={project.reload} />
          </>
        )}
      </Loading>
      <h2>{t("models.versions")}</h2>
      <Loading loaded={versions}>
        {(items) => (
          <Table
            testId="model-versions"
            head={["", t("datasets.version"), t("common.state"), t("chains.metrics"), t("models.evaluation"), t("common.created")]}
            rows={newest(items).map((v) => [
              <input
                type="checkbox"
                aria-label={`compare v${v.version}`}
                checked={chosen.includes(v.id)}
                onChange={() => toggle(v.id)}
              />,
              <Link to={`/models/${id}/versions/${v.id}`}>v{v.version}</Link>,
              <Badge state={v.state} />,
              metricText(v.metrics),
              v.evaluation_passed === null ? "–" : v.evaluation_passed ? "✔" : "✘",
              when(v.created_at),
            ])}
          />
        )}
      </Loading>
      {compared.length >= 2 && <Compare versions={compared} />}
    </section>
  );
}

/** Any number of versions side by side: every metric and hyper-parameter any of them has, the best
 * value of each metric marked (lower is better for losses and perplexity, higher for the rest). */
function Compare({ versions }: { versions: ModelVersion[] }) {
  const t = useT();
  const metricNames = [...new Set(versions.flatMap((v) => Object.keys(v.metrics)))].sort();
  const paramNames = [...new Set(versions.flatMap((v) => Object.keys(v.hyperparameters)))].sort();
  const lowerIsBetter = (name: string) => /loss|perplexity|nll|error/.test(name);
  const best = (name: string) => {
    const values = versions.map((v) => v.metrics[name]).filter((x): x is number => typeof x === "number");
    return values.length ? (lowerIsBetter(name) ? Math.min(...values) : Math.max(...values)) : null;
  };
  return (
    <div className="card" data-testid="compare">
      <h3>{t("models.compare")}</h3>
      <Table
        head={["", ...versions.map((v) => `v${v.version}`)]}
        rows={[
          ...metricNames.map((name) => [
            <strong>{name}</strong>,
            ...versions.map((v) => {
              const value = v.metrics[name];
              if (typeof value !== "number") return "–";
              return <span className={value === best(name) ? "best" : ""}>{value.toPrecision(4)}</span>;
            }),
          ]),
          ...paramNames.map((name) => [name, ...versions.map((v) => JSON.stringify(v.hyperparameters[name] ?? null))]),
        ]}
      />
    </div>
  );
}

/** The project's release gate: shown to all, edited by tenant and project admins. */
function GateEditor({ project, editable, onSaved }: { project: Project; editable: boolean; onSaved: () => void }) {
  const t = useT();
  const [text, setText] = useState(JSON.stringify(project.gate, null, 2));
  if (!editable) {
    return (
      <p>
        {t("models.gate")}: <code>{JSON.stringify(project.gate)}</code>
      </p>
    );
  }
  return (
    <div className="row card" data-testid="gate">
      <label>
        {t("models.gate")}
        <textarea className="config" rows={3} value={text} onChange={(e) => setText(e.target.value)} />
      </label>
      <ActionButton
        onClick={async () => {
          await api("registry", `/model-projects/${project.id}/gate`, { method: "PUT", body: { gate: JSON.parse(text) } });
          onSaved();
        }}
      >
        {t("models.saveGate")}
      </ActionButton>
    </div>
  );
}

export function ModelVersionPage({ projectId, id }: { projectId: string; id: string }) {
  const t = useT();
  const { can } = useAccess();
  const base = `/model-projects/${projectId}/versions/${id}`;
  const version = useLoad(() => api<ModelVersion>("registry", base), [base]);
  const audit = useLoad(() => api<AuditRow[]>("registry", `${base}/audit`), [base]);
  const evaluations = useLoad(() => api<Evaluation[]>("registry", `${base}/evaluations`), [base]);
  const lineage = useLoad(() => api<Graph>("registry", `/lineage/model_version/${id}`, { query: { direction: "upstream" } }), [id]);
  const [reason, setReason] = useState("");
  return (
    <section>
      <Loading loaded={version}>
        {(v) => (
          <>
            <header className="page-head">
              <h1>
                {t("datasets.version")} v{v.version}
              </h1>
              <Badge state={v.state} />
            </header>
            <dl className="facts">
              <dt>{t("chains.metrics")}</dt>
              <dd>{metricText(v.metrics) || "–"}</dd>
              <dt>{t("chains.baseModel")}</dt>
              <dd>{v.base_model_id ?? "–"}</dd>
              <dt>{t("chains.training")}</dt>
              <dd>{v.training_job_id ? <Link to={`/jobs/${v.training_job_id}`}>{v.training_job_id}</Link> : "–"}</dd>
              <dt>{t("chains.bundle")}</dt>
              <dd>{v.bundle_uri ?? "–"}</dd>
            </dl>
            {v.state === "evaluation_failed" && can("registry.approve") && (
              <div className="row card warn">
                <input placeholder={t("chains.approveReason")} value={reason} onChange={(e) => setReason(e.target.value)} />
                <ActionButton
                  kind="primary"
                  disabled={!reason.trim()}
                  onClick={async () => {
                    await api("registry", `${base}/override-release`, { body: { reason } });
                    version.reload();
                    audit.reload();
                  }}
                >
                  {t("models.override")}
                </ActionButton>
              </div>
            )}
          </>
        )}
      </Loading>
      <h2>{t("models.evaluations")}</h2>
      <Loading loaded={evaluations}>
        {(rows) => (
          <Table
            testId="evaluations"
            head={[t("audit.time"), t("models.evaluation"), t("chains.metrics"), t("models.gate"), t("chains.failedChecks")]}
            rows={rows.map((e) => [
              when(e.recorded_at),
              e.passed ? "✔" : "✘",
              metricText(e.metrics),
              <code>{JSON.stringify(e.thresholds)}</code>,
              e.failed_checks.join("; "),
            ])}
          />
        )}
      </Loading>
      <h2>{t("models.lineage")}</h2>
      <Loading loaded={lineage}>
        {(graph) => (
          <>
          <LineageGraph graph={graph} />
          <Table
            testId="lineage"
            head={["", t("datasets.kind"), t("common.id")]}
            rows={graph.nodes.map((node) => [String(node.distance), node.kind, node.name ?? node.id])}
          />
          </>
        )}
      </Loading>
      <h2>{t("models.audit")}</h2>
      <Loading loaded={audit}>
        {(rows) => (
          <Table
            testId="version-audit"
            head={[t("audit.time"), t("audit.action"), t("common.state"), t("audit.actor"), t("chains.approvedBy"), ""]}
            rows={rows.map((row) => [
              when(row.at),
              row.action,
              `${row.from_state ?? "–"} → ${row.to_state}`,
              row.actor ?? "–",
              row.approved_by ?? "",
              row.reason ?? "",
            ])}
          />
        )}
      </Loading>
    </section>
  );
}

/** The lineage as a layered graph: one column per distance from the version (upstream to the left). */
function LineageGraph({ graph }: { graph: Graph }) {
  const columns = [...new Set(graph.nodes.map((n) => n.distance))].sort((a, b) => a - b);
  const boxW = 200;
  const boxH = 44;
  const gapX = 70;
  const gapY = 18;
  const place = new Map<string, { x: number; y: number }>();
  let height = 0;
  columns.forEach((distance, column) => {
    graph.nodes
      .filter((n) => n.distance === distance)
      .forEach((node, row) => {
        const y = 10 + row * (boxH + gapY);
        place.set(`${node.kind}:${node.id}`, { x: 10 + column * (boxW + gapX), y });
        height = Math.max(height, y + boxH + 10);
      });
  });
  const width = 20 + columns.length * (boxW + gapX) - gapX;
  const label = (text: string) => (text.length > 28 ? `${text.slice(0, 27)}…` : text);
  return (
    <svg className="lineage" viewBox={`0 0 ${width} ${height}`} width={width} height={height} data-testid="lineage-graph">
      <defs>
        <marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="6" markerHeight="6" orient="auto">
          <path d="M 0 0 L 10 5 L 0 10 z" fill="#64748b" />
        </marker>
      </defs>
      {graph.edges.map((edge, index) => {
        const from = place.get(`${edge.source_kind}:${edge.source_id}`);
        const to = place.get(`${edge.target_kind}:${edge.target_id}`);
        if (!from || !to) return null;
        return (
          <g key={index}>
            <line x1={from.x + boxW} y1={from.y + boxH / 2} x2={to.x} y2={to.y + boxH / 2} stroke="#64748b" markerEnd="url(#arrow)" />
            <text x={(from.x + boxW + to.x) / 2} y={(from.y + to.y + boxH) / 2 - 4} fontSize="10" textAnchor="middle" fill="#64748b">
              {edge.relation}
            </text>
          </g>
        );
      })}
      {graph.nodes.map((node) => {
        const at = place.get(`${node.kind}:${node.id}`);
        if (!at) return null;
        return (
          <g key={`${node.kind}:${node.id}`}>
            <rect x={at.x} y={at.y} width={boxW} height={boxH} rx="6" fill={node.distance === 0 ? "#dbeafe" : "#fff"} stroke="#94a3b8" />
            <text x={at.x + 8} y={at.y + 17} fontSize="11" fontWeight="600">
              {node.kind}
            </text>
            <text x={at.x + 8} y={at.y + 33} fontSize="11">
              {label(node.name ?? node.id)}
            </text>
          </g>
        );
      })}
    </svg>
  );
}
