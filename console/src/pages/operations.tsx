/** The scheduler (projects, quotas, usage, allocations), the audit log and labeling projects. */
import { useState } from "react";

import { api } from "../api";
import { ActionButton, Badge, Loading, ProgressBar, Table, bytes, useAccess, useLoad, when } from "../components";
import { useT, type Key } from "../i18n";

interface SchedulerProject {
  id: string;
  name: string;
  queue: string;
  quota: { cpu_millis: number; memory_bytes: number; accelerators: Record<string, number> };
}

interface Usage {
  resources: { resource: string; used: number; quota: number; available: number }[];
}

interface Allocation {
  id: string;
  project_id: string;
  state: string;
  workload_kind: string;
  queue: string;
  created_at: string;
}

function amount(resource: string, value: number): string {
  if (resource.includes("memory")) return bytes(value);
  if (resource.includes("cpu")) return `${(value / 1000).toFixed(1)} CPU`;
  return String(value);
}

export function SchedulerPage() {
  const t = useT();
  const { can, project } = useAccess();
  const projects = useLoad(() => api<SchedulerProject[]>("scheduler", "/projects"), []);
  const allocations = useLoad(() => api<Allocation[]>("scheduler", "/allocations"), [], 5000);
  const [name, setName] = useState("");
  return (
    <section>
      <header className="page-head">
        <h1>{t("scheduler.projects")}</h1>
        {can("scheduler.projects.manage") && (
          <span className="row">
            <input placeholder={t("common.name")} value={name} onChange={(e) => setName(e.target.value)} data-testid="project-name" />
            <ActionButton
              kind="primary"
              disabled={!name.trim()}
              testId="create-project"
              onClick={async () => {
                await api("scheduler", "/projects", { body: { name: name.trim() } });
                setName("");
                projects.reload();
              }}
            >
              {t("scheduler.newProject")}
            </ActionButton>
          </span>
        )}
      </header>
      <Loading loaded={projects}>
        {(items) => (
          <div className="cards">
            {items
              .filter((p) => !project || p.id === project)
              .map((p) => (
                <ProjectUsage key={p.id} project={p} />
              ))}
          </div>
        )}
      </Loading>
      <h2>{t("scheduler.allocations")}</h2>
      <Loading loaded={allocations}>
        {(items) => (
          <Table
            head={[t("common.id"), t("common.state"), t("datasets.kind"), t("scheduler.queue"), t("common.created")]}
            rows={items
              .filter((a) => !project || a.project_id === project)
              .map((a) => [a.id.slice(0, 13), <Badge state={a.state} />, a.workload_kind, a.queue, when(a.created_at)])}
          />
        )}
      </Loading>
    </section>
  );
}

function ProjectUsage({ project }: { project: SchedulerProject }) {
  const t = useT();
  const { can } = useAccess();
  const usage = useLoad(() => api<Usage>("scheduler", `/projects/${project.id}/usage`), [project.id], 5000);
  const [cpus, setCpus] = useState(String(project.quota.cpu_millis / 1000));
  const [memory, setMemory] = useState(String(project.quota.memory_bytes / 1024 ** 3));
  return (
    <div className="card" data-testid={`project-${project.name}`}>
      <h3>{project.name}</h3>
      <p className="muted">
        {t("scheduler.queue")}: {project.queue}
      </p>
      <Loading loaded={usage}>
        {(u) => (
          <Table
            head={[t("scheduler.resource"), t("scheduler.used"), t("scheduler.quota")]}
            rows={u.resources.map((r) => [
              r.resource,
              <ProgressBar value={r.quota ? (100 * r.used) / r.quota : 0} label={amount(r.resource, r.used)} />,
              amount(r.resource, r.quota),
            ])}
          />
        )}
      </Loading>
      {can("scheduler.quota.manage") && (
        <div className="row">
          <label>
            CPU <input type="number" min={0} step="any" value={cpus} onChange={(e) => setCpus(e.target.value)} style={{ width: "6rem" }} />
          </label>
          <label>
            GiB <input type="number" min={0} step="any" value={memory} onChange={(e) => setMemory(e.target.value)} style={{ width: "6rem" }} />
          </label>
          <ActionButton
            onClick={async () => {
              await api("scheduler", `/projects/${project.id}/quota`, {
                method: "PUT",
                body: {
                  cpu_millis: Math.round(Number(cpus) * 1000),
                  memory_bytes: Math.round(Number(memory) * 1024 ** 3),
                  accelerators: project.quota.accelerators,
                },
              });
              usage.reload();
            }}
          >
            {t("scheduler.setQuota")}
          </ActionButton>
        </div>
      )}
    </div>
  );
}

interface AuditEntry {
  id: string;
  occurred_at: string;
  service: string;
  actor: string;
  action: string;
  resource_type: string;
  resource_id: string;
  outcome: string;
  status_code: number | null;
}

export function AuditPage() {
  const t = useT();
  const [before, setBefore] = useState<string | undefined>(undefined);
  const [filters, setFilters] = useState<Record<string, string>>({});
  const [draft, setDraft] = useState<Record<string, string>>({});
  const page = useLoad(
    () =>
      api<{ items: AuditEntry[]; next_before: string | null }>("scheduler", "/audit", {
        query: { limit: 100, before, ...Object.fromEntries(Object.entries(filters).filter(([, v]) => v)) },
      }),
    [before, filters],
  );
  const fields: [string, Key][] = [
    ["actor", "audit.actor"],
    ["action", "audit.action"],
    ["resource_type", "audit.resource"],
  ];
  return (
    <section>
      <h1>{t("nav.audit")}</h1>
      <form
        className="row"
        data-testid="audit-filter"
        onSubmit={(event) => {
          event.preventDefault();
          setBefore(undefined);
          setFilters(draft);
        }}
      >
        {fields.map(([name, key]) => (
          <input
            key={name}
            placeholder={t(key)}
            aria-label={t(key)}
            value={draft[name] ?? ""}
            onChange={(e) => setDraft({ ...draft, [name]: e.target.value })}
          />
        ))}
        <button type="submit">{t("audit.filter")}</button>
      </form>
      <Loading loaded={page}>
        {(p) => (
          <>
            <Table
              testId="audit"
              head={[t("audit.time"), t("audit.actor"), t("audit.action"), t("audit.resource"), t("audit.outcome")]}
              rows={p.items.map((e) => [
                when(e.occurred_at),
                e.actor,
                `${e.service}: ${e.action}`,
                `${e.resource_type} ${e.resource_id}`,
                <Badge state={e.outcome} />,
              ])}
            />
            {p.next_before && (
              <button type="button" onClick={() => setBefore(p.next_before ?? undefined)}>
                {t("audit.more")}
              </button>
            )}
          </>
        )}
      </Loading>
    </section>
  );
}

interface LabelingProject {
  id: string;
  name: string;
  task_count: number;
  progress: number;
  counts: Record<string, number>;
  created_at: string;
}

export function LabelingPage() {
  const t = useT();
  const projects = useLoad(() => api<LabelingProject[]>("labeling", "/projects"), []);
  return (
    <section>
      <h1>{t("labeling.projects")}</h1>
      <Loading loaded={projects}>
        {(items) => (
          <Table
            head={[t("common.name"), t("labeling.tasks"), t("common.progress"), t("common.created")]}
            rows={items.map((p) => [p.name, p.task_count, <ProgressBar value={p.progress * 100} />, when(p.created_at)])}
          />
        )}
      </Loading>
    </section>
  );
}
