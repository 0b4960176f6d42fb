/** The scheduler (projects, quotas, usage, allocations), the audit log and labeling projects. */
import { useState } from "react";

import { api } from "../api";
import { Badge, Loading, ProgressBar, Table, bytes, useLoad, when } from "../components";
import { useT } from "../i18n";

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
  const projects = useLoad(() => api<SchedulerProject[]>("scheduler", "/projects"), []);
  const allocations = useLoad(() => api<Allocation[]>("scheduler", "/allocations"), [], 5000);
  return (
    <section>
      <h1>{t("scheduler.projects")}</h1>
      <Loading loaded={projects}>
        {(items) => (
          <div className="cards">
            {items.map((project) => (
              <ProjectUsage key={project.id} project={project} />
            ))}
          </div>
        )}
      </Loading>
      <h2>{t("scheduler.allocations")}</h2>
      <Loading loaded={allocations}>
        {(items) => (
          <Table
            head={[t("common.id"), t("common.state"), t("datasets.kind"), t("scheduler.queue"), t("common.created")]}
            rows={items.map((a) => [a.id.slice(0, 13), <Badge state={a.state} />, a.workload_kind, a.queue, when(a.created_at)])}
          />
        )}
      </Loading>
    </section>
  );
}

function ProjectUsage({ project }: { project: SchedulerProject }) {
  const t = useT();
  const usage = useLoad(() => api<Usage>("scheduler", `/projects/${project.id}/usage`), [project.id], 5000);
  return (
    <div className="card">
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
  const page = useLoad(
    () => api<{ items: AuditEntry[]; next_before: string | null }>("scheduler", "/audit", { query: { limit: 100, before } }),
    [before],
  );
  return (
    <section>
      <h1>{t("nav.audit")}</h1>
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
