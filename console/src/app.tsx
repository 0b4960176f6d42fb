/** The console's frame: sign-in, tenant and language switchers, navigation, and the hash routes. */
import { useEffect, useMemo, useState, type ReactNode } from "react";

import { api, setTenant } from "./api";
import { signIn, signOut, type Session } from "./auth";
import { AccessContext, ErrorBox, Loading, useAccess, useLoad, type Access, type Profile } from "./components";
import type { Config } from "./config";
import { LocaleContext, saveLocale, savedLocale, defaultLocale, translate, useT, type Key, type Locale } from "./i18n";
import { ChainPage, ChainTable, ChainsPage, NewChainPage } from "./pages/chains";
import { DatasetPage, DatasetsPage } from "./pages/datasets";
import { JobPage, JobsPage } from "./pages/jobs";
import { SubmitJobPage } from "./pages/submit";
import { ModelProjectPage, ModelVersionPage, ModelsPage } from "./pages/models";
import { AuditPage, LabelingPage, SchedulerPage } from "./pages/operations";

function useHash(): string {
  const [hash, setHash] = useState(window.location.hash);
  useEffect(() => {
    const changed = () => setHash(window.location.hash);
    window.addEventListener("hashchange", changed);
    return () => window.removeEventListener("hashchange", changed);
  }, []);
  return hash.replace(/^#/, "") || "/";
}

const go = (to: string) => {
  window.location.hash = to;
};

const NAV: [string, Key, string | null][] = [
  ["/", "nav.overview", null],
  ["/datasets", "nav.datasets", "dataset.read"],
  ["/labeling", "nav.labeling", "labeling.read"],
  ["/chains", "nav.chains", "training.read"],
  ["/jobs", "nav.jobs", "training.read"],
  ["/models", "nav.models", "registry.read"],
  ["/scheduler", "nav.scheduler", "scheduler.read"],
  ["/audit", "nav.audit", "audit.read"],
];

function route(path: string): ReactNode {
  const parts = path.split("/").filter(Boolean);
  const [section, id, sub, subId] = parts;
  switch (section) {
    case undefined:
      return <Overview />;
    case "datasets":
      return id ? <DatasetPage id={id} /> : <DatasetsPage go={go} />;
    case "chains":
      if (id === "new") return <NewChainPage go={go} />;
      return id ? <ChainPage id={id} /> : <ChainsPage />;
    case "jobs":
      if (id === "new") return <SubmitJobPage go={go} />;
      return id ? <JobPage id={id} /> : <JobsPage />;
    case "models":
      if (id && sub === "versions" && subId) return <ModelVersionPage projectId={id} id={subId} />;
      return id ? <ModelProjectPage id={id} /> : <ModelsPage go={go} />;
    case "labeling":
      return <LabelingPage />;
    case "scheduler":
      return <SchedulerPage />;
    case "audit":
      return <AuditPage />;
    default:
      return <p>404</p>;
  }
}

function Overview() {
  const t = useT();
  const { can } = useAccess();
  const chains = useLoad(() => api<{ items: Parameters<typeof ChainTable>[0]["items"] }>("training", "/chains", { query: { limit: 5 } }), [], 5000);
  const counts = useLoad(async () => {
    const count = async (allowed: boolean, load: () => Promise<unknown[] | { items: unknown[] }>) => {
      if (!allowed) return null;
      const found = await load();
      return Array.isArray(found) ? found.length : found.items.length;
    };
    return Promise.all([
      count(can("dataset.read"), () => api<unknown[]>("dataset", "/datasets")),
      count(can("training.read"), () => api<{ items: unknown[] }>("training", "/training-jobs", { query: { limit: 500 } })),
      count(can("registry.read"), () => api<unknown[]>("registry", "/model-projects")),
    ]);
  }, []);
  const tiles: [Key, string, number | null | undefined][] = [
    ["overview.datasets", "/datasets", counts.data?.[0]],
    ["overview.jobs", "/jobs", counts.data?.[1]],
    ["overview.models", "/models", counts.data?.[2]],
  ];
  return (
    <section>
      <h1>{t("nav.overview")}</h1>
      <div className="tiles" data-testid="overview">
        {tiles
          .filter(([, , value]) => value !== null)
          .map(([key, to, value]) => (
            <a key={key} href={`#${to}`}>
              <strong>{value ?? "…"}</strong>
              {t(key)}
            </a>
          ))}
      </div>
      <h2>{t("overview.recentChains")}</h2>
      <Loading loaded={chains}>{(page) => <ChainTable items={page.items} />}</Loading>
    </section>
  );
}

const TENANT_KEY = "forge.tenant";
const PROJECT_KEY = "forge.project";

export function App({ config, session }: { config: Config; session: Session }) {
  const [locale, setLocale] = useState<Locale>(savedLocale(session.username) ?? defaultLocale());
  const profile = useLoad(async () => {
    const me = await api<Profile>("scheduler", "/me");
    if (!me.platform_admin) return me;
    // A platform admin may act in every tenant: those they are not a member of come with the platform
    // admin's own actions.
    const all = await api<{ id: string }[]>("scheduler", "/tenants");
    const member = new Set(me.tenants.map((t) => t.tenant_id));
    const others = all
      .filter((tenant) => !member.has(tenant.id))
      .map((tenant) => ({
        tenant_id: tenant.id,
        roles: ["platform-admin"],
        project_roles: {} as Record<string, string[]>,
        actions: me.platform_actions,
        project_actions: {} as Record<string, string[]>,
      }));
    return { ...me, tenants: [...me.tenants, ...others] };
  }, []);
  const [tenantId, setTenantId] = useState<string | null>(localStorage.getItem(TENANT_KEY));
  const path = useHash();
  const tenants = profile.data?.tenants ?? [];
  const chosen = tenants.find((t) => t.tenant_id === tenantId) ?? tenants[0] ?? null;
  setTenant(chosen?.tenant_id ?? null);
  useEffect(() => {
    document.documentElement.lang = locale;
  }, [locale]);
  const projects = useLoad(
    () => (chosen ? api<{ id: string; name: string }[]>("scheduler", "/projects") : Promise.resolve([])),
    [chosen?.tenant_id],
  );
  const [projectId, setProjectId] = useState<string | null>(null);
  useEffect(() => {
    setProjectId(chosen ? localStorage.getItem(`${PROJECT_KEY}.${chosen.tenant_id}`) || null : null);
  }, [chosen?.tenant_id]);
  const project = (projects.data ?? []).some((p) => p.id === projectId) ? projectId : null;
  const access = useMemo<Access | null>(
    () =>
      profile.data
        ? {
            profile: profile.data,
            tenant: chosen,
            project,
            can: (action: string) =>
              (project ? chosen?.project_actions[project] : undefined)?.includes(action) ||
              (chosen?.actions.includes(action) ?? false),
          }
        : null,
    [profile.data, chosen, project],
  );
  const t = (key: Key) => translate(locale, key);
  return (
    <LocaleContext.Provider value={locale}>
      <div className="layout">
        <header className="top">
          <strong className="brand">Forge</strong>
          {tenants.length > 0 && (
            <label>
              {t("tenant.label")}{" "}
              <select
                data-testid="tenant"
                value={chosen?.tenant_id ?? ""}
                onChange={(event) => {
                  localStorage.setItem(TENANT_KEY, event.target.value);
                  setTenantId(event.target.value);
                }}
              >
                {tenants.map((tenant) => (
                  <option key={tenant.tenant_id}>{tenant.tenant_id}</option>
                ))}
              </select>
            </label>
          )}
          {chosen && (projects.data ?? []).length > 0 && (
            <label>
              {t("project.label")}{" "}
              <select
                data-testid="project"
                value={project ?? ""}
                onChange={(event) => {
                  localStorage.setItem(`${PROJECT_KEY}.${chosen.tenant_id}`, event.target.value);
                  setProjectId(event.target.value || null);
                }}
              >
                <option value="">{t("project.all")}</option>
                {(projects.data ?? []).map((p) => (
                  <option key={p.id} value={p.id}>
                    {p.name}
                  </option>
                ))}
              </select>
            </label>
          )}
          <label>
            {t("lang.label")}{" "}
            <select
              data-testid="locale"
              value={locale}
              onChange={(event) => {
                const next = event.target.value as Locale;
                saveLocale(session.username, next);
                setLocale(next);
              }}
            >
              <option value="en">English</option>
              <option value="zh-CN">简体中文</option>
            </select>
          </label>
          <span className="user" data-testid="user">
            {session.username}
            {chosen && <span className="muted"> ({chosen.roles.join(", ")})</span>}
          </span>
          <button type="button" onClick={() => signOut(config)}>
            {t("auth.signOut")}
          </button>
        </header>
        <nav className="side">
          {NAV.filter(([, , action]) => !action || chosen?.actions.includes(action)).map(([to, key]) => (
            <a key={to} href={`#${to}`} className={(to === "/" ? path === "/" : path.startsWith(to)) ? "active" : ""}>
              {t(key)}
            </a>
          ))}
          <a href={config.temporal_ui} target="_blank" rel="noreferrer">
            Temporal UI ↗
          </a>
        </nav>
        <main>
          <ErrorBox error={profile.error} />
          {access && !chosen && <p>{t("tenant.none")}</p>}
          {access && chosen && (
            <AccessContext.Provider value={access}>
              {/* keyed by tenant and project: switching reloads every page's data */}
              <div key={`${chosen.tenant_id}/${project ?? ""}`}>{route(path)}</div>
            </AccessContext.Provider>
          )}
        </main>
      </div>
    </LocaleContext.Provider>
  );
}

export function SignedOut({ config, error }: { config: Config; error?: unknown }) {
  const locale = defaultLocale();
  const t = (key: Key) => translate(locale, key);
  return (
    <div className="signin">
      <h1>Forge</h1>
      <p>{t("auth.welcome")}</p>
      <ErrorBox error={error} />
      <button type="button" className="primary" data-testid="sign-in" onClick={() => void signIn(config, locale)}>
        {t("auth.signIn")}
      </button>
    </div>
  );
}
