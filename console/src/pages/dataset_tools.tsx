/** A dataset's imports, diffs between versions, sharing with other tenants, media previews and task
 * reports: the panels of the dataset page. */
import { useEffect, useState } from "react";

import { api, blobUrl } from "../api";
import { ActionButton, Badge, ErrorBox, Loading, ProgressBar, Table, duration, useAccess, useLoad, when } from "../components";
import { useT } from "../i18n";
import type { Version } from "./datasets";

export interface Task {
  id: string;
  kind: string;
  state: string;
  progress: number;
  eta_s: number | null;
  stats: Record<string, unknown>;
  result: Record<string, unknown>;
  error: string | null;
  output_version_id: string | null;
  created_by: string | null;
  created_at: string;
}

const FINAL = ["succeeded", "failed", "cancelled"];

/** Import files from links (HTTP/HTTPS) into a new published version, as a background task. */
export function ImportPanel({ datasetId, onStarted }: { datasetId: string; onStarted: () => void }) {
  const t = useT();
  const [lines, setLines] = useState("");
  return (
    <div className="card" data-testid="import">
      <h3>{t("datasets.import")}</h3>
      <p className="muted">{t("datasets.importHint")}</p>
      <textarea className="config" rows={3} value={lines} onChange={(e) => setLines(e.target.value)} placeholder="https://example.org/data/train.jsonl train.jsonl" />
      <ActionButton
        disabled={!lines.trim()}
        onClick={async () => {
          const files = lines
            .split("\n")
            .map((line) => line.trim().split(/\s+/))
            .filter((parts) => parts[0])
            .map(([link, name]) => ({ url: link, name: name ?? link!.split("/").pop() }));
          await api("dataset", `/datasets/${datasetId}/imports`, { body: { source: { type: "link", files } } });
          setLines("");
          onStarted();
        }}
      >
        {t("datasets.startImport")}
      </ActionButton>
    </div>
  );
}

interface DiffView {
  task: Task;
  files: { name: string; change: string; base_size_bytes: number | null; size_bytes: number | null }[];
  summary: Record<string, number> | null;
}

/** Compare two versions: files at once, records by a key (changed) or by content (added/removed). */
export function DiffPanel({ datasetId, versions }: { datasetId: string; versions: Version[] }) {
  const t = useT();
  const sorted = [...versions].sort((a, b) => a.number - b.number);
  // Until the user picks, the two newest published versions (the list grows while the page is open).
  const [pickedBase, setBase] = useState("");
  const [pickedNext, setNext] = useState("");
  const base = pickedBase || (sorted.at(-2)?.id ?? "");
  const next = pickedNext || (sorted.at(-1)?.id ?? "");
  const [key, setKey] = useState("");
  const [taskId, setTaskId] = useState<string | null>(null);
  const diff = useLoad(
    () => (taskId ? api<DiffView>("dataset", `/datasets/${datasetId}/diffs/${taskId}`) : Promise.resolve(null)),
    [taskId],
    1000,
    (view) => view !== null && !FINAL.includes(view.task.state),
  );
  const [change, setChange] = useState("added");
  const records = useLoad(
    () =>
      taskId && diff.data?.task.state === "succeeded"
        ? api<{ records: Record<string, unknown>[]; total: number }>("dataset", `/datasets/${datasetId}/diffs/${taskId}/changes`, {
            query: { change, limit: 20 },
          })
        : Promise.resolve(null),
    [taskId, diff.data?.task.state, change],
  );
  if (versions.length < 2) return null;
  const choice = (value: string, set: (v: string) => void, testId: string) => (
    <select value={value} onChange={(e) => set(e.target.value)} data-testid={testId}>
      {sorted.map((v) => (
        <option key={v.id} value={v.id}>
          v{v.number}
        </option>
      ))}
    </select>
  );
  return (
    <div className="card" data-testid="diff">
      <h3>{t("datasets.diff")}</h3>
      <div className="row">
        {choice(base, setBase, "diff-base")} → {choice(next, setNext, "diff-new")}
        <input placeholder={t("datasets.diffKey")} value={key} onChange={(e) => setKey(e.target.value)} />
        <ActionButton
          testId="run-diff"
          onClick={async () => {
            const view = await api<DiffView>("dataset", `/datasets/${datasetId}/diffs`, {
              body: { base_version_id: base, version_id: next, key: key || null },
            });
            setTaskId(view.task.id);
          }}
        >
          {t("datasets.compare")}
        </ActionButton>
      </div>
      {diff.data && (
        <>
          <ProgressBar value={diff.data.task.progress * 100} />
          <Table
            head={[t("datasets.files"), t("datasets.change"), t("datasets.size")]}
            rows={diff.data.files.map((f) => [f.name, <Badge state={f.change} />, `${f.base_size_bytes ?? "–"} → ${f.size_bytes ?? "–"}`])}
          />
          {diff.data.summary && (
            <p data-testid="diff-summary">
              {Object.entries(diff.data.summary)
                .map(([name, count]) => `${name}: ${count}`)
                .join(" · ")}
            </p>
          )}
          {diff.data.task.state === "succeeded" && (
            <>
              <select value={change} onChange={(e) => setChange(e.target.value)}>
                {["added", "removed", "changed"].map((c) => (
                  <option key={c}>{c}</option>
                ))}
              </select>
              {records.data && <pre className="preview">{records.data.records.map((r) => JSON.stringify(r)).join("\n")}</pre>}
            </>
          )}
          <ErrorBox error={diff.data.task.error ?? diff.error ?? records.error} />
        </>
      )}
    </div>
  );
}

interface Grant {
  id: string;
  grantee_tenant: string;
  version_id: string | null;
  access: string;
  granted_by: string | null;
  granted_at: string;
}

/** Share the dataset with other tenants (read, or read + derive), and revoke. */
export function SharingPanel({ datasetId }: { datasetId: string }) {
  const t = useT();
  const grants = useLoad(() => api<Grant[]>("dataset", `/datasets/${datasetId}/grants`), [datasetId]);
  const [tenant, setTenant] = useState("");
  const [access, setAccess] = useState("read");
  return (
    <div className="card" data-testid="sharing">
      <h3>{t("datasets.sharing")}</h3>
      <Loading loaded={grants}>
        {(items) => (
          <Table
            head={[t("tenant.label"), t("datasets.access"), t("datasets.version"), t("common.created"), ""]}
            rows={items.map((g) => [
              g.grantee_tenant,
              g.access,
              g.version_id ?? "*",
              when(g.granted_at),
              <ActionButton
                kind="danger"
                onClick={async () => {
                  await api("dataset", `/datasets/${datasetId}/grants/${g.id}`, { method: "DELETE" });
                  grants.reload();
                }}
              >
                {t("datasets.revoke")}
              </ActionButton>,
            ])}
          />
        )}
      </Loading>
      <div className="row">
        <input placeholder={t("tenant.label")} value={tenant} onChange={(e) => setTenant(e.target.value)} />
        <select value={access} onChange={(e) => setAccess(e.target.value)}>
          <option value="read">read</option>
          <option value="read+derive">read+derive</option>
        </select>
        <ActionButton
          disabled={!tenant.trim()}
          onClick={async () => {
            await api("dataset", `/datasets/${datasetId}/grants`, { body: { grantee_tenant: tenant.trim(), access } });
            setTenant("");
            grants.reload();
          }}
        >
          {t("datasets.share")}
        </ActionButton>
      </div>
    </div>
  );
}

export interface MediaLinks {
  name: string;
  modality: string;
  content: string;
  thumbnail: string | null;
  poster: string | null;
}

/** Image thumbnails, video posters and playable audio of a version's media files. */
export function MediaPreview({ media }: { media: MediaLinks[] }) {
  if (media.length === 0) return null;
  return (
    <div className="media" data-testid="media">
      {media.slice(0, 24).map((m) => (
        <MediaTile key={m.name} media={m} />
      ))}
    </div>
  );
}

function MediaTile({ media }: { media: MediaLinks }) {
  const [src, setSrc] = useState<string | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    let made: string | null = null;
    const path =
      media.modality === "image" && media.thumbnail
        ? `${media.thumbnail}?size=160`
        : media.modality === "video" && media.poster
          ? media.poster
          : media.content;
    blobUrl("dataset", path)
      .then((url) => {
        made = url;
        setSrc(url);
      })
      .catch(setError);
    return () => {
      if (made) URL.revokeObjectURL(made);
    };
  }, [media]);
  return (
    <figure className="tile">
      {src && media.modality === "audio" ? <audio controls src={src} /> : src && <img src={src} alt={media.name} />}
      <figcaption>{media.name}</figcaption>
      <ErrorBox error={error} />
    </figure>
  );
}

/** A task's report: what it counted, what it made, and why it failed. */
export function TaskReport({ datasetId, task }: { datasetId: string; task: Task }) {
  const t = useT();
  const { can } = useAccess();
  return (
    <div className="card" data-testid="task-report">
      <h3>
        {task.kind} <Badge state={task.state} />
      </h3>
      <ProgressBar value={task.progress * 100} label={`${(task.progress * 100).toFixed(0)}% · ${t("common.eta")} ${duration(task.eta_s)}`} />
      {task.error && <ErrorBox error={task.error} />}
      <h4>{t("datasets.report")}</h4>
      <pre className="preview">{JSON.stringify({ stats: task.stats, result: task.result }, null, 2)}</pre>
      {!FINAL.includes(task.state) && can("dataset.write") && (
        <ActionButton kind="danger" onClick={() => api("dataset", `/datasets/${datasetId}/tasks/${task.id}/cancel`, { body: {} })}>
          {t("common.cancel")}
        </ActionButton>
      )}
    </div>
  );
}

interface FieldStats {
  present: number;
  missing: number;
  types: Record<string, number>;
  distinct_values: number | null;
  values?: { value: unknown; count: number; share: number }[];
  length?: { min: number; max: number; mean: number };
}

/** A version's statistics: per field, coverage, types, lengths and the most common values as bars
 * (the label distribution). */
export function StatsPanel({ datasetId, versionId }: { datasetId: string; versionId: string }) {
  const t = useT();
  const stats = useLoad(
    () =>
      api<{ records: number; fields: Record<string, FieldStats> }>("dataset", `/datasets/${datasetId}/versions/${versionId}/stats`, {
        query: { top: 8 },
      }),
    [datasetId, versionId],
  );
  return (
    <div data-testid="stats">
      <h4>{t("datasets.stats")}</h4>
      <Loading loaded={stats}>
        {(found) => (
          <Table
            head={[t("datasets.field"), t("datasets.coverage"), t("datasets.types"), t("datasets.values")]}
            rows={Object.entries(found.fields).map(([name, field]) => [
              <strong>{name}</strong>,
              <ProgressBar value={(100 * field.present) / Math.max(1, found.records)} />,
              Object.entries(field.types)
                .map(([type, count]) => `${type} ${count}`)
                .join(", ") + (field.length ? ` · len ${field.length.min}–${field.length.max}` : ""),
              field.values ? (
                <div className="bars">
                  {field.values.map((v) => (
                    <div key={JSON.stringify(v.value)} className="bar-row">
                      <span className="bar-label">{String(v.value).slice(0, 40)}</span>
                      <span className="bar" style={{ width: `${Math.max(2, v.share * 160)}px` }} />
                      <span className="muted">{(v.share * 100).toFixed(1)}%</span>
                    </div>
                  ))}
                </div>
              ) : (
                `${t("datasets.distinct")}: ${field.distinct_values ?? "> 100"}`
              ),
            ])}
          />
        )}
      </Loading>
    </div>
  );
}
