/** Form fields that pick Forge resources by name (sent as ids): the forms of chains and jobs share them. */
import { useState } from "react";

import { api } from "./api";
import { useLoad } from "./components";
import { useT } from "./i18n";
import type { Dataset, Version } from "./pages/datasets";

export interface Named {
  id: string;
  name: string;
  version?: string;
}

/** A required `<select name>` of `items`, shown as `name` (`name:version` for hub models). */
export function Choice({
  name,
  label,
  items,
  defaultValue,
}: {
  name: string;
  label: string;
  items: Named[] | null;
  defaultValue?: string;
}) {
  return (
    <label>
      {label}
      {/* keyed by the items: the default applies once they are there */}
      <select name={name} required defaultValue={defaultValue} key={(items ?? []).length}>
        {(items ?? []).map((item) => (
          <option key={item.id} value={item.id}>
            {item.name}
            {item.version ? `:${item.version}` : ""}
          </option>
        ))}
      </select>
    </label>
  );
}

/** A dataset, then one of its published versions (and `latest`, when `latest` is set): two fields of the
 * form, named `datasetField` and `versionField`. */
export function DatasetVersionPicker({
  datasetField,
  versionField,
  latest = false,
}: {
  datasetField: string;
  versionField: string;
  latest?: boolean;
}) {
  const t = useT();
  const datasets = useLoad(() => api<Dataset[]>("dataset", "/datasets"), []);
  const [datasetId, setDatasetId] = useState("");
  const versions = useLoad(
    () => (datasetId ? api<Version[]>("dataset", `/datasets/${datasetId}/versions`) : Promise.resolve([])),
    [datasetId],
  );
  const published = (versions.data ?? []).filter((v) => v.state === "published");
  return (
    <>
      <label>
        {t("chains.dataset")}
        <select name={datasetField} required value={datasetId} onChange={(e) => setDatasetId(e.target.value)}>
          <option value="" />
          {(datasets.data ?? []).map((d) => (
            <option key={d.id} value={d.id}>
              {d.name}
            </option>
          ))}
        </select>
      </label>
      <label>
        {t("chains.datasetVersion")}
        <select name={versionField} required>
          {latest && published.length > 0 && <option value="latest">latest</option>}
          {published.map((v) => (
            <option key={v.id} value={v.id}>
              v{v.number}
            </option>
          ))}
        </select>
      </label>
    </>
  );
}

/** The lists the forms pick from: hub base models, model projects, scheduler projects. */
export function usePickLists() {
  return {
    baseModels: useLoad(() => api<Named[]>("registry", "/base-models"), []),
    projects: useLoad(() => api<Named[]>("registry", "/model-projects"), []),
    schedulerProjects: useLoad(() => api<Named[]>("scheduler", "/projects"), []),
  };
}
