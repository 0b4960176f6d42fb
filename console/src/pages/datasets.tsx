/** Datasets: list and create; a dataset's versions, uploads with progress, publishing, preview, tasks. */
import { useState } from "react";

import { RESUMABLE_FROM_BYTES, api, uploadFile, uploadResumable } from "../api";
import {
  ActionButton,
  Badge,
  ErrorBox,
  FormCard,
  Link,
  Loading,
  ProgressBar,
  Table,
  bytes,
  duration,
  newest,
  useAccess,
  useLoad,
  when,
} from "../components";
import { useT } from "../i18n";
import { DiffPanel, ImportPanel, MediaPreview, SharingPanel, StatsPanel, TaskReport, type MediaLinks, type Task } from "./dataset_tools";

export interface Dataset {
  id: string;
  name: string;
  description: string;
  modality: string;
  secrecy: string;
  licence: string;
  version_count: number;
  created_at: string;
}

export interface Version {
  id: string;
  number: number;
  state: string;
  item_count: number;
  size_bytes: number;
  created_at: string;
  published_at: string | null;
  files: { name: string; size_bytes: number; record_count: number }[];
  errors: unknown[];
}


export function DatasetsPage({ go }: { go: (to: string) => void }) {
  const t = useT();
  const { can } = useAccess();
  const datasets = useLoad(() => api<Dataset[]>("dataset", "/datasets"), []);
  const [creating, setCreating] = useState(false);
  return (
    <section>
      <header className="page-head">
        <h1>{t("nav.datasets")}</h1>
        {can("dataset.write") && (
          <button type="button" className="primary" onClick={() => setCreating(!creating)} data-testid="new-dataset">
            {t("datasets.new")}
          </button>
        )}
      </header>
      {creating && <CreateDataset onCreated={(id) => go(`/datasets/${id}`)} />}
      <Loading loaded={datasets}>
        {(items) => (
          <Table
            testId="datasets"
            head={[t("common.name"), t("datasets.modality"), t("datasets.secrecy"), t("datasets.versions"), t("common.created")]}
            rows={newest(items).map((d) => [
              <Link to={`/datasets/${d.id}`}>{d.name}</Link>,
              d.modality,
              d.secrecy,
              d.version_count,
              when(d.created_at),
            ])}
          />
        )}
      </Loading>
    </section>
  );
}

function CreateDataset({ onCreated }: { onCreated: (id: string) => void }) {
  const t = useT();
  return (
    <FormCard
      testId="create-dataset"
      submitLabel={t("common.create")}
      onSubmit={async (form) => {
        const created = await api<Dataset>("dataset", "/datasets", {
          body: {
            name: form.get("name"),
            description: form.get("description"),
            modality: form.get("modality"),
            secrecy: form.get("secrecy"),
            licence: form.get("licence"),
            source: "upload",
          },
        });
        onCreated(created.id);
      }}
    >
      <label>
        {t("common.name")} <input name="name" required pattern="[A-Za-z0-9][A-Za-z0-9 ._\-]*" />
      </label>
      <label>
        {t("common.description")} <input name="description" />
      </label>
      <label>
        {t("datasets.modality")}
        <select name="modality" defaultValue="text">
          {["text", "image", "audio", "video"].map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <label>
        {t("datasets.secrecy")}
        <select name="secrecy" defaultValue="internal">
          {["public", "internal", "confidential", "secret"].map((m) => (
            <option key={m}>{m}</option>
          ))}
        </select>
      </label>
      <label>
        {t("datasets.licence")} <input name="licence" defaultValue="proprietary" required />
      </label>
    </FormCard>
  );
}

export function DatasetPage({ id }: { id: string }) {
  const t = useT();
  const { can } = useAccess();
  const dataset = useLoad(() => api<Dataset>("dataset", `/datasets/${id}`), [id]);
  const versions = useLoad(() => api<Version[]>("dataset", `/datasets/${id}/versions`), [id]);
  const tasks = useLoad(
    () => api<Task[]>("dataset", `/datasets/${id}/tasks`),
    [id],
    2000,
    (items) => items.some((task) => !["succeeded", "failed", "cancelled"].includes(task.state)),
  );
  const [open, setOpen] = useState<string | null>(null);
  const [taskId, setTaskId] = useState<string | null>(null);
  const shownTask = (tasks.data ?? []).find((task) => task.id === taskId) ?? null;
  return (
    <section>
      <Loading loaded={dataset}>
        {(d) => (
          <header className="page-head">
            <h1>{d.name}</h1>
            <span className="muted">
              {d.modality} · {d.secrecy} · {d.licence}
            </span>
          </header>
        )}
      </Loading>
      <header className="page-head">
        <h2>{t("datasets.versions")}</h2>
        {can("dataset.write") && (
          <ActionButton
            testId="new-version"
            onClick={async () => {
              const created = await api<Version>("dataset", `/datasets/${id}/versions`, { method: "POST" });
              setOpen(created.id);
              versions.reload();
            }}
          >
            {t("datasets.newVersion")}
          </ActionButton>
        )}
      </header>
      <Loading loaded={versions}>
        {(items) => (
          <Table
            testId="versions"
            head={[t("datasets.version"), t("common.state"), t("datasets.items"), t("datasets.size"), t("common.created"), ""]}
            rows={newest(items).map((v) => [
              `v${v.number}`,
              <Badge state={v.state} />,
              v.item_count,
              bytes(v.size_bytes),
              when(v.created_at),
              <button type="button" onClick={() => setOpen(open === v.id ? null : v.id)} data-testid={`open-version-${v.number}`}>
                {t("common.details")}
              </button>,
            ])}
          />
        )}
      </Loading>
      {open && <VersionPanel datasetId={id} versionId={open} onChange={versions.reload} />}
      <h2>{t("datasets.tasks")}</h2>
      <Loading loaded={tasks}>
        {(items) => (
          <Table
            head={[t("datasets.kind"), t("common.state"), t("common.progress"), t("common.eta"), t("common.created")]}
            rows={newest(items).map((task) => [
              <button type="button" className="link" onClick={() => setTaskId(task.id === taskId ? null : task.id)}>
                {task.kind}
              </button>,
              <Badge state={task.state} />,
              <ProgressBar value={task.progress * 100} />,
              duration(task.eta_s),
              when(task.created_at),
            ])}
          />
        )}
      </Loading>
      {shownTask && <TaskReport datasetId={id} task={shownTask} />}
      {can("dataset.write") && <ImportPanel datasetId={id} onStarted={tasks.reload} />}
      {versions.data && <DiffPanel datasetId={id} versions={versions.data.filter((v) => v.state === "published")} />}
      {can("dataset.share") && <SharingPanel datasetId={id} />}
    </section>
  );
}

/** A version still taking files: a draft, or one whose upload has started. */
const open_ = (state: string) => state === "draft" || state === "uploading";

interface Preview {
  records: Record<string, unknown>[];
  media: MediaLinks[];
}

function VersionPanel({ datasetId, versionId, onChange }: { datasetId: string; versionId: string; onChange: () => void }) {
  const t = useT();
  const { can } = useAccess();
  const base = `/datasets/${datasetId}/versions/${versionId}`;
  const version = useLoad(() => api<Version>("dataset", base), [base]);
  const [uploads, setUploads] = useState<Record<string, number>>({});
  const [error, setError] = useState<unknown>(null);
  const preview = useLoad(
    () =>
      version.data?.state === "published"
        ? api<Preview>("dataset", `${base}/preview`, { query: { limit: 5 } })
        : Promise.resolve({ records: [], media: [] }),
    [base, version.data?.state],
  );
  return (
    <div className="card" data-testid="version-panel">
      <Loading loaded={version}>
        {(v) => (
          <>
            <h3>
              {t("datasets.version")} v{v.number} <Badge state={v.state} />
            </h3>
            {open_(v.state) && <p className="muted">{t("datasets.draftHint")}</p>}
            {v.errors.length > 0 && <ErrorBox error={v.errors.map((e) => (typeof e === "string" ? e : JSON.stringify(e))).join("\n")} />}
            <Table
              head={[t("datasets.files"), t("datasets.items"), t("datasets.size")]}
              rows={v.files.map((f) => [f.name, f.record_count, bytes(f.size_bytes)])}
            />
            {open_(v.state) && can("dataset.write") && (
              <div className="row">
                <label className="file">
                  {t("datasets.upload")}
                  <input
                    type="file"
                    multiple
                    data-testid="upload-input"
                    onChange={async (event) => {
                      const files = Array.from(event.currentTarget.files ?? []);
                      setError(null);
                      try {
                        for (const file of files) {
                          const progress = (sent: number, total: number) =>
                            setUploads((now) => ({ ...now, [file.name]: total ? (100 * sent) / total : 100 }));
                          if (file.size >= RESUMABLE_FROM_BYTES) await uploadResumable(base, file.name, file, progress);
                          else await uploadFile("dataset", `${base}/files/${encodeURIComponent(file.name)}`, file, progress);
                        }
                      } catch (caught) {
                        setError(caught);
                      }
                      version.reload();
                    }}
                  />
                </label>
                <ActionButton
                  kind="primary"
                  testId="publish"
                  onClick={async () => {
                    await api("dataset", `${base}/publish`, { method: "POST" });
                    version.reload();
                    onChange();
                  }}
                >
                  {t("datasets.publish")}
                </ActionButton>
              </div>
            )}
            {Object.entries(uploads).map(([name, percent]) => (
              <div key={name} className="upload" data-testid={`upload-${name}`}>
                <span>{name}</span> <ProgressBar value={percent} />
              </div>
            ))}
            <ErrorBox error={error} />
            {v.state === "published" && (
              <Loading loaded={preview}>
                {(p) => (
                  <>
                    <h4>{t("datasets.preview")}</h4>
                    <MediaPreview media={p.media} />
                    <pre className="preview">{p.records.map((r) => JSON.stringify(r)).join("\n")}</pre>
                    <StatsPanel datasetId={datasetId} versionId={versionId} />
                  </>
                )}
              </Loading>
            )}
          </>
        )}
      </Loading>
    </div>
  );
}
