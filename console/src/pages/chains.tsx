/** Chains: the model chain from a dataset version to a delivered bundle — start one, follow its stages,
 * its training run's progress and loss, approve a release whose gate failed, cancel it. */
import { useState } from "react";

import { api } from "../api";
import {
  ActionButton,
  Badge,
  ErrorBox,
  FormCard,
  LineChart,
  Link,
  Loading,
  Table,
  duration,
  useAccess,
  useLoad,
  when,
} from "../components";
import { useT } from "../i18n";
import { Choice, DatasetVersionPicker, usePickLists } from "../pickers";
import { JobProgress, type Job, type Metrics } from "./jobs";

interface ChainSummary {
  chain_id: string;
  workflow_status: string;
  temporal_ui: string;
  started_at: string | null;
  closed_at: string | null;
  model_name: string | null;
  started_by: string | null;
  scheduler_project_id: string | null;
}

interface ChainStatus {
  stage: string;
  stages: { stage: string; at: string }[];
  training_job_id: string | null;
  allocation_id: string | null;
  evaluation_job_id: string | null;
  metrics: Record<string, number>;
  model_version_id: string | null;
  gate_passed: boolean | null;
  failed_checks: unknown[];
  approved_by: string | null;
  cancelled_by: string | null;
  cancel_reason: string | null;
  delivery_order_id: string | null;
  bundle_uri: string | null;
  error: string | null;
}

export interface ChainView {
  chain_id: string;
  workflow_id: string;
  workflow_status: string;
  temporal_ui: string;
  status: ChainStatus | null;
  model_name: string | null;
  model_project_id: string | null;
  dataset_id: string | null;
}

export function ChainsPage() {
  const t = useT();
  const { can, project } = useAccess();
  const chains = useLoad(() => api<{ items: ChainSummary[] }>("training", "/chains", { query: { limit: 50 } }), [], 5000);
  return (
    <section>
      <header className="page-head">
        <h1>{t("nav.chains")}</h1>
        {can("training.run") && (
          <a className="button primary" href="#/chains/new" data-testid="new-chain">
            {t("chains.new")}
          </a>
        )}
      </header>
      <Loading loaded={chains}>
        {(page) => <ChainTable items={page.items.filter((c) => !project || c.scheduler_project_id === project)} />}
      </Loading>
    </section>
  );
}

export function ChainTable({ items }: { items: ChainSummary[] }) {
  const t = useT();
  return (
    <Table
      testId="chains"
      head={[t("chains.modelName"), t("common.state"), t("chains.startedBy"), t("chains.started"), t("chains.closed"), ""]}
      rows={items.map((c) => [
        <Link to={`/chains/${c.chain_id}`}>{c.model_name ?? `${c.chain_id.slice(0, 13)}…`}</Link>,
        <Badge state={c.workflow_status} />,
        c.started_by ?? "–",
        when(c.started_at),
        when(c.closed_at),
        <a href={c.temporal_ui} target="_blank" rel="noreferrer">
          Temporal
        </a>,
      ])}
    />
  );
}

export function NewChainPage({ go }: { go: (to: string) => void }) {
  const t = useT();
  const { project } = useAccess();
  const { baseModels, projects, schedulerProjects } = usePickLists();
  return (
    <section>
      <h1>{t("chains.new")}</h1>
      <FormCard
        testId="chain-form"
        submitLabel={t("chains.start")}
        submitTestId="start-chain"
        extraError={baseModels.error ?? projects.error ?? schedulerProjects.error}
        onSubmit={async (form) => {
          const text = (name: string) => String(form.get(name) ?? "");
          const started = await api<ChainView>("training", "/chains", {
            body: {
              dataset_id: text("dataset_id"),
              dataset_version_id: text("dataset_version_id"),
              base_model_id: text("base_model_id"),
              model_project_id: text("model_project_id"),
              scheduler_project_id: text("scheduler_project_id"),
              model_name: text("model_name"),
              training: {
                max_steps: Number(text("max_steps")),
                learning_rate: Number(text("learning_rate")),
                batch_size: 16,
                lora_rank: 4,
                lora_alpha: 8,
                checkpoint_every_steps: 10,
              },
              gate: { perplexity: { max: Number(text("max_perplexity")) } },
              eval_max_records: 8,
              eval_max_new_tokens: 8,
              card: {
                description: text("description"),
                intended_use: text("intended_use"),
                limitations: text("limitations"),
              },
            },
          });
          go(`/chains/${started.chain_id}`);
        }}
      >
        <DatasetVersionPicker datasetField="dataset_id" versionField="dataset_version_id" latest />
        <Choice name="base_model_id" label={t("chains.baseModel")} items={baseModels.data} />
        <Choice name="model_project_id" label={t("chains.modelProject")} items={projects.data} />
        <Choice
          name="scheduler_project_id"
          label={t("chains.schedulerProject")}
          items={schedulerProjects.data}
          defaultValue={project ?? undefined}
        />
        <label>
          {t("chains.modelName")} <input name="model_name" required pattern="[A-Za-z0-9][A-Za-z0-9._\-]*" />
        </label>
        <label>
          {t("chains.steps")} <input name="max_steps" type="number" min={1} defaultValue={20} />
        </label>
        <label>
          {t("chains.learningRate")} <input name="learning_rate" type="number" step="any" min={0} defaultValue={0.02} />
        </label>
        <label>
          {t("chains.gate")} <input name="max_perplexity" type="number" step="any" min={0} defaultValue={1000} />
        </label>
        <label>
          {t("chains.cardDescription")} <input name="description" required defaultValue="Fine-tuned with Forge." />
        </label>
        <input type="hidden" name="intended_use" value="Evaluation and internal use." />
        <input type="hidden" name="limitations" value="Trained on a small dataset; verify before production use." />
      </FormCard>
    </section>
  );
}

const ENDED = ["delivered", "failed", "blocked", "cancelled"];

export function ChainPage({ id }: { id: string }) {
  const t = useT();
  const { can } = useAccess();
  const chain = useLoad(
    () => api<ChainView>("training", `/chains/${id}`),
    [id],
    1500,
    (view) => view.workflow_status === "RUNNING" && !ENDED.includes(view.status?.stage ?? ""),
  );
  const jobId = chain.data?.status?.training_job_id ?? null;
  const stage = chain.data?.status?.stage ?? "";
  const job = useLoad(
    () => (jobId ? api<Job>("training", `/training-jobs/${jobId}`) : Promise.resolve(null)),
    [jobId],
    1500,
    (found) => found !== null && !["succeeded", "failed", "cancelled"].includes(found.state),
  );
  const metrics = useLoad(
    () => (jobId ? api<Metrics>("training", `/training-jobs/${jobId}/metrics`) : Promise.resolve(null)),
    [jobId, job.data?.progress.step],
  );
  const [reason, setReason] = useState("");
  return (
    <section>
      <Loading loaded={chain}>
        {(view) => {
          const status = view.status;
          const marks = status?.stages ?? [];
          return (
            <>
              <header className="page-head">
                <h1>{view.model_name ?? `${t("nav.chains")} ${view.chain_id.slice(0, 13)}…`}</h1>
                <span data-testid="chain-stage">
                  <Badge state={status?.stage ?? view.workflow_status} />
                </span>
                <a href={view.temporal_ui} target="_blank" rel="noreferrer" data-testid="temporal-link">
                  {t("chains.temporal")}
                </a>
              </header>
              <ol className="stages" data-testid="chain-stages">
                {marks.map((mark, index) => {
                  const next = marks[index + 1];
                  const took = next ? (Date.parse(next.at) - Date.parse(mark.at)) / 1000 : null;
                  return (
                    <li key={`${mark.stage}-${index}`} className={next ? "done" : "current"}>
                      <strong>{mark.stage}</strong> <span className="muted">{when(mark.at)}</span>{" "}
                      {took !== null && <span className="muted">({duration(took)})</span>}
                    </li>
                  );
                })}
              </ol>
              {job.data && (
                <div className="card">
                  <h3>
                    {t("chains.training")} <Link to={`/jobs/${job.data.id}`}>{job.data.name}</Link>
                  </h3>
                  <JobProgress job={job.data} />
                  {metrics.data && <LineChart series={metrics.data.series.filter((s) => s.name.endsWith("loss"))} />}
                </div>
              )}
              {stage === "awaiting_approval" && (
                <div className="card warn" data-testid="approval">
                  <p>{t("chains.awaiting")}</p>
                  <p>
                    {t("chains.failedChecks")}: <code>{JSON.stringify(status?.failed_checks)}</code>
                  </p>
                  {can("registry.approve") ? (
                    <div className="row">
                      <input
                        data-testid="approve-reason"
                        placeholder={t("chains.approveReason")}
                        value={reason}
                        onChange={(e) => setReason(e.target.value)}
                      />
                      <ActionButton
                        kind="primary"
                        testId="approve"
                        disabled={!reason.trim()}
                        onClick={async () => {
                          await api("training", `/chains/${id}/approve-release`, { body: { reason } });
                          chain.reload();
                        }}
                      >
                        {t("chains.approve")}
                      </ActionButton>
                    </div>
                  ) : (
                    <p className="muted" data-testid="approve-refused">
                      <button type="button" disabled>
                        {t("chains.approve")}
                      </button>{" "}
                      {t("chains.approveNeedsRole")}
                    </p>
                  )}
                </div>
              )}
              {status && Object.keys(status.metrics).length > 0 && (
                <p data-testid="chain-metrics">
                  {t("chains.metrics")}:{" "}
                  {Object.entries(status.metrics)
                    .map(([name, value]) => `${name} = ${value.toPrecision(4)}`)
                    .join(", ")}
                </p>
              )}
              {status?.approved_by && (
                <p>
                  {t("chains.approvedBy")}: <strong data-testid="approved-by">{status.approved_by}</strong>
                </p>
              )}
              {status?.model_version_id && view.model_project_id && (
                <p>
                  {t("chains.modelVersion")}:{" "}
                  <Link to={`/models/${view.model_project_id}/versions/${status.model_version_id}`} testId="model-version-link">
                    {status.model_version_id}
                  </Link>
                </p>
              )}
              {status?.bundle_uri && (
                <p>
                  {t("chains.bundle")}: <code data-testid="bundle-uri">{status.bundle_uri}</code>
                </p>
              )}
              {status?.error && <ErrorBox error={`${t("chains.error")}: ${status.error}`} />}
              {view.workflow_status === "RUNNING" && !ENDED.includes(stage) && can("training.run") && (
                <ActionButton
                  kind="danger"
                  onClick={async () => {
                    await api("training", `/chains/${id}/cancel`, { body: { reason: "cancelled in the console" } });
                    chain.reload();
                  }}
                >
                  {t("chains.cancel")}
                </ActionButton>
              )}
            </>
          );
        }}
      </Loading>
    </section>
  );
}
