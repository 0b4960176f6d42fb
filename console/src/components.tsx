/** Shared pieces of the pages: data loading with polling, errors, progress, tables, charts. */
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";

import { ApiError } from "./api";
import { useT } from "./i18n";

export interface TenantRoles {
  tenant_id: string;
  roles: string[];
  project_roles: Record<string, string[]>;
  actions: string[];
  project_actions: Record<string, string[]>;
}

export interface Profile {
  username: string;
  platform_admin: boolean;
  tenants: TenantRoles[];
  platform_actions: string[];
}

export interface Access {
  profile: Profile;
  tenant: TenantRoles | null;
  /** The scheduler project chosen in the header (lists show only its resources), or null for all. */
  project: string | null;
  /** Whether the caller's roles allow `action`: the tenant's, and the chosen project's own roles. */
  can: (action: string) => boolean;
}

export const AccessContext = createContext<Access | null>(null);

export function useAccess(): Access {
  const access = useContext(AccessContext);
  if (!access) throw new Error("no profile loaded");
  return access;
}

export interface Loaded<T> {
  data: T | null;
  error: unknown;
  reload: () => void;
}

/** Load with `load`, again every `everyMs` while `keepPolling(data)` says so (live pages). */
export function useLoad<T>(
  load: () => Promise<T>,
  deps: unknown[],
  everyMs?: number,
  keepPolling: (data: T) => boolean = () => true,
): Loaded<T> {
  const [data, setData] = useState<T | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((n) => n + 1), []);
  const loadRef = useRef(load);
  loadRef.current = load;
  useEffect(() => {
    let alive = true;
    let timer: number | undefined;
    const run = async () => {
      try {
        const next = await loadRef.current();
        if (!alive) return;
        setData(next);
        setError(null);
        if (everyMs && keepPolling(next)) timer = window.setTimeout(run, everyMs);
      } catch (caught) {
        if (!alive) return;
        setError(caught);
        if (everyMs) timer = window.setTimeout(run, everyMs * 2);
      }
    };
    void run();
    return () => {
      alive = false;
      window.clearTimeout(timer);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  return { data, error, reload };
}

export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const text =
    error instanceof ApiError
      ? `${error.status} ${error.title}${error.detail ? `: ${error.detail}` : ""}`
      : String(error instanceof Error ? error.message : error);
  return (
    <div className="error" role="alert">
      {text}
    </div>
  );
}

export function Loading<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ReactNode }) {
  const t = useT();
  if (loaded.data === null) {
    return loaded.error ? <ErrorBox error={loaded.error} /> : <p className="muted">{t("common.loading")}</p>;
  }
  return (
    <>
      <ErrorBox error={loaded.error} />
      {children(loaded.data)}
    </>
  );
}

export function ProgressBar({ value, label }: { value: number | null; label?: string }) {
  const percent = Math.max(0, Math.min(100, value ?? 0));
  return (
    <div className="progress" role="progressbar" aria-valuenow={Math.round(percent)} aria-valuemin={0} aria-valuemax={100}>
      <div className="progress-fill" style={{ width: `${percent}%` }} />
      <span className="progress-label">{label ?? `${percent.toFixed(0)}%`}</span>
    </div>
  );
}

export function Badge({ state }: { state: string }) {
  return <span className={`badge badge-${state.toLowerCase().replace(/[^a-z_]/g, "")}`}>{state}</span>;
}

export function Table({ head, rows, testId }: { head: ReactNode[]; rows: ReactNode[][]; testId?: string }) {
  const t = useT();
  if (rows.length === 0) return <p className="muted">{t("common.none")}</p>;
  return (
    <table data-testid={testId}>
      <thead>
        <tr>
          {head.map((cell, index) => (
            <th key={index}>{cell}</th>
          ))}
        </tr>
      </thead>
      <tbody>
        {rows.map((row, index) => (
          <tr key={index}>
            {row.map((cell, column) => (
              <td key={column}>{cell}</td>
            ))}
          </tr>
        ))}
      </tbody>
    </table>
  );
}

export interface Point {
  step: number;
  value: number | null;
}

/** A line chart of metric series by step (SVG, no chart library: the bundle stays small). */
export function LineChart({ series }: { series: { name: string; points: Point[] }[] }) {
  const drawn = series
    .map((s) => ({ name: s.name, points: s.points.filter((p): p is { step: number; value: number } => p.value !== null) }))
    .filter((s) => s.points.length > 0);
  if (drawn.length === 0) return null;
  const width = 560;
  const height = 200;
  const pad = 36;
  const all = drawn.flatMap((s) => s.points);
  const minX = Math.min(...all.map((p) => p.step));
  const maxX = Math.max(...all.map((p) => p.step), minX + 1);
  const minY = Math.min(...all.map((p) => p.value));
  const maxY = Math.max(...all.map((p) => p.value), minY + 1e-9);
  const x = (step: number) => pad + ((step - minX) / (maxX - minX)) * (width - 2 * pad);
  const y = (value: number) => height - pad + -((value - minY) / (maxY - minY)) * (height - 2 * pad);
  const colours = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c"];
  return (
    <svg className="chart" viewBox={`0 0 ${width} ${height}`} role="img" aria-label={drawn.map((s) => s.name).join(", ")}>
      <line x1={pad} y1={height - pad} x2={width - pad} y2={height - pad} stroke="#94a3b8" />
      <line x1={pad} y1={pad} x2={pad} y2={height - pad} stroke="#94a3b8" />
      <text x={pad} y={height - 8} fontSize="11">{minX}</text>
      <text x={width - pad} y={height - 8} fontSize="11" textAnchor="end">{maxX}</text>
      <text x={4} y={pad} fontSize="11">{maxY.toPrecision(3)}</text>
      <text x={4} y={height - pad} fontSize="11">{minY.toPrecision(3)}</text>
      {drawn.map((s, index) => (
        <g key={s.name}>
          <polyline
            fill="none"
            stroke={colours[index % colours.length]}
            strokeWidth="2"
            points={s.points.map((p) => `${x(p.step).toFixed(1)},${y(p.value).toFixed(1)}`).join(" ")}
          />
          {s.points.length <= 60 &&
            s.points.map((p) => (
              <circle key={p.step} cx={x(p.step)} cy={y(p.value)} r="2.5" fill={colours[index % colours.length]} />
            ))}
          <text x={width - pad} y={pad + 14 * index} fontSize="11" textAnchor="end" fill={colours[index % colours.length]}>
            {s.name}
          </text>
        </g>
      ))}
    </svg>
  );
}

export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : "–";
}

export function duration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined) return "–";
  const s = Math.round(seconds);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

export function bytes(size: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(unit === 0 ? 0 : 1)} ${units[unit]}`;
}

export function Link({ to, children, testId }: { to: string; children: ReactNode; testId?: string }) {
  return (
    <a href={`#${to}`} data-testid={testId}>
      {children}
    </a>
  );
}

/** A button that runs an async action, shows it running and the error it met. */
export function ActionButton({
  onClick,
  children,
  disabled,
  title,
  kind,
  testId,
}: {
  onClick: () => Promise<unknown>;
  children: ReactNode;
  disabled?: boolean;
  title?: string;
  kind?: "primary" | "danger";
  testId?: string;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <span className="action">
      <button
        type="button"
        className={kind ?? ""}
        disabled={disabled || busy}
        title={title}
        data-testid={testId}
        onClick={async () => {
          setBusy(true);
          setError(null);
          try {
            await onClick();
          } catch (caught) {
            setError(caught);
          } finally {
            setBusy(false);
          }
        }}
      >
        {children}
      </button>
      <ErrorBox error={error} />
    </span>
  );
}

/** Newest first, by an ISO timestamp field. */
export function newest<T extends { created_at: string }>(items: T[]): T[] {
  return [...items].sort((a, b) => b.created_at.localeCompare(a.created_at));
}

/** A form in a card: `onSubmit` gets its fields; while it runs the button is disabled, and what it
 * throws (a problem+json answer) is shown under it. */
export function FormCard({
  testId,
  submitLabel,
  submitTestId,
  onSubmit,
  children,
  extraError,
}: {
  testId: string;
  submitLabel: string;
  submitTestId?: string;
  onSubmit: (form: FormData) => Promise<void>;
  children: ReactNode;
  extraError?: unknown;
}) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  return (
    <form
      className="card form"
      data-testid={testId}
      onSubmit={async (event) => {
        event.preventDefault();
        setBusy(true);
        setError(null);
        try {
          await onSubmit(new FormData(event.currentTarget));
        } catch (caught) {
          setError(caught);
        } finally {
          setBusy(false);
        }
      }}
    >
      {children}
      <button type="submit" className="primary" disabled={busy} data-testid={submitTestId}>
        {submitLabel}
      </button>
      <ErrorBox error={error ?? extraError} />
    </form>
  );
}
