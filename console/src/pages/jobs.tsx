/** Training jobs: state, progress and ETA, loss curves, live logs. */
import { useEffect, useRef, useState } from "react";

import { api } from "../api";
import { ActionButton, Badge, LineChart, Link, Loading, ProgressBar, Table, duration, useAccess, useLoad, when, type Point } from "../components";
import { useT } from "../i18n";

export interface Job {
  id: string;
  name: string;
  state: string;
  method: string;
  progress: { step: number; total_steps: number | null; percent: number | null; eta_s: number | null };
  latest_metrics: Record<string, number>;
  scheduler_project_id: string | null;
  error: string | null;
  created_at: string;
  started_at: string | null;
  finished_at: string | null;
}

export interface Metrics {
  series: { name: string; points: Point[] }[];
}

interface LogLine {
  seq: number;
  level: string;
  message: string;
  logged_at: string;
}

const FINAL = ["succeeded", "failed", "cancelled"];

export function JobProgress({ job }: { job: Job }) {
  const t = useT();
  const { step, total_steps, percent, eta_s } = job.progress;
  return (
    <div className="job-progress" data-testid="job-progress">
      <ProgressBar value={job.state === "succeeded" ? 100 : (percent ?? 0)} label={`${t("jobs.step")} ${step}/${total_steps ?? "?"}`} />
      <span className="muted">
        {t("common.eta")} {duration(eta_s)} · {t("jobs.loss")} {job.latest_metrics.train_loss?.toFixed(4) ?? "–"}
      </span>
    </div>
  );
}

export function JobsPage() {
  const t = useT();
  const { can, project } = useAccess();
  const jobs = useLoad(() => api<{ items: Job[] }>("training", "/training-jobs", { query: { limit: 100 } }), [], 3000);
  return (
    <section>
      <header className="page-head">
        <h1>{t("nav.jobs")}</h1>
        {can("training.run") && (
          <a className="button primary" href="#/jobs/new" data-testid="new-job">
            {t("jobs.submit")}
          </a>
        )}
      </header>
      <Loading loaded={jobs}>
        {(page) => (
          <Table
            testId="jobs"
            head={[t("common.name"), t("common.state"), t("jobs.method"), t("common.progress"), t("common.created")]}
            rows={page.items.filter((job) => !project || job.scheduler_project_id === project).map((job) => [
              <Link to={`/jobs/${job.id}`}>{job.name}</Link>,
              <Badge state={job.state} />,
              job.method,
              <JobProgress job={job} />,
              when(job.created_at),
            ])}
          />
        )}
      </Loading>
    </section>
  );
}

export function JobPage({ id }: { id: string }) {
  const t = useT();
  const { can } = useAccess();
  const job = useLoad(() => api<Job>("training", `/training-jobs/${id}`), [id], 1500, (found) => !FINAL.includes(found.state));
  const metrics = useLoad(() => api<Metrics>("training", `/training-jobs/${id}/metrics`), [id, job.data?.progress.step]);
  return (
    <section>
      <Loading loaded={job}>
        {(found) => (
          <>
            <header className="page-head">
              <h1>{found.name}</h1>
              <Badge state={found.state} />
              {!FINAL.includes(found.state) && can("training.run") && (
                <ActionButton kind="danger" onClick={() => api("training", `/training-jobs/${id}/cancel`, { method: "POST" })}>
                  {t("jobs.cancel")}
                </ActionButton>
              )}
            </header>
            <JobProgress job={found} />
            {found.error && <div className="error">{found.error}</div>}
            <h2>{t("jobs.metrics")}</h2>
            {metrics.data && <MetricCharts series={metrics.data.series} />}
            <h2>{t("jobs.logs")}</h2>
            <Logs id={id} live={!FINAL.includes(found.state)} />
          </>
        )}
      </Loading>
    </section>
  );
}

/** Losses on one chart (one scale), every other series (learning rate, ...) on its own. */
export function MetricCharts({ series }: { series: Metrics["series"] }) {
  const losses = series.filter((s) => s.name.includes("loss"));
  const others = series.filter((s) => !s.name.includes("loss"));
  return (
    <div className="charts">
      {losses.length > 0 && <LineChart series={losses} />}
      {others.map((s) => (
        <LineChart key={s.name} series={[s]} />
      ))}
    </div>
  );
}

/** The job's log, followed while it runs (new lines after the last sequence number). */
function Logs({ id, live }: { id: string; live: boolean }) {
  const [lines, setLines] = useState<LogLine[]>([]);
  const after = useRef<number | undefined>(undefined);
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const poll = async () => {
      try {
        const page = await api<{ lines: LogLine[]; next_after: number }>("training", `/training-jobs/${id}/logs`, {
          query: { after: after.current, tail: 500 },
        });
        if (!alive) return;
        if (page.lines.length) setLines((now) => [...now, ...page.lines].slice(-2000));
        after.current = page.next_after;
      } catch {
        /* shown by the job's own panel; keep polling */
      }
      if (alive && live) timer = window.setTimeout(poll, 1500);
    };
    void poll();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
  }, [id, live]);
  return (
    <pre className="logs" data-testid="job-logs">
      {lines.map((line) => `${new Date(line.logged_at).toLocaleTimeString()} ${line.level.padEnd(7)} ${line.message}`).join("\n")}
    </pre>
  );
}
