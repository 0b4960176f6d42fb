/** Submit a training job: from a built-in template, a form, or a config file (JSON or YAML). */
import { useState } from "react";

import { api } from "../api";
import { ErrorBox, FormCard, useAccess } from "../components";
import { useT } from "../i18n";
import { Choice, DatasetVersionPicker, usePickLists } from "../pickers";
import type { Job } from "./jobs";

/** Built-in starting points; the form can change every value before it is sent. */
export const TEMPLATES: Record<string, { steps: number; learningRate: number; schedule: string; rank: number; batch: number }> = {
  "lora-sft-quick": { steps: 20, learningRate: 0.02, schedule: "constant", rank: 4, batch: 16 },
  "lora-sft-quality": { steps: 400, learningRate: 0.0002, schedule: "cosine", rank: 16, batch: 8 },
};

/** The request body a config file holds, parsed as JSON or YAML (js-yaml is loaded only when needed). */
export async function parseConfig(name: string, text: string): Promise<unknown> {
  if (/\.ya?ml$/i.test(name)) {
    const { load } = await import("js-yaml");
    return load(text);
  }
  return JSON.parse(text);
}

export function SubmitJobPage({ go }: { go: (to: string) => void }) {
  const t = useT();
  const [mode, setMode] = useState<"form" | "file">("form");
  const [template, setTemplate] = useState("lora-sft-quick");
  const [config, setConfig] = useState("");
  const [error, setError] = useState<unknown>(null);
  const { baseModels, projects, schedulerProjects } = usePickLists();
  const { project } = useAccess();
  const preset = TEMPLATES[template] ?? TEMPLATES["lora-sft-quick"]!;
  const submit = async (body: unknown) => {
    const job = await api<Job>("training", "/training-jobs", { body });
    go(`/jobs/${job.id}`);
  };
  return (
    <section>
      <header className="page-head">
        <h1>{t("jobs.submit")}</h1>
        <label>
          <input type="radio" checked={mode === "form"} onChange={() => setMode("form")} /> {t("jobs.fromForm")}
        </label>
        <label>
          <input type="radio" checked={mode === "file"} onChange={() => setMode("file")} data-testid="from-file" />{" "}
          {t("jobs.fromFile")}
        </label>
      </header>
      {mode === "form" ? (
        <FormCard
          key={template}
          testId="job-form"
          submitLabel={t("jobs.submit")}
          submitTestId="submit-job"
          extraError={baseModels.error ?? projects.error}
          onSubmit={async (form) => {
            const text = (name: string) => String(form.get(name) ?? "");
            const number = (name: string) => Number(text(name));
            await submit({
              name: text("name"),
              project_id: text("project_id"),
              base_model: { id: text("base_model_id") },
              dataset: {
                dataset_id: text("dataset_id"),
                version_id: text("version_id"),
                train_file: text("train_file"),
                validation_file: text("validation_file") || null,
              },
              hyperparameters: {
                max_steps: number("max_steps"),
                learning_rate: number("learning_rate"),
                lr_schedule: text("lr_schedule"),
                batch_size: number("batch_size"),
              },
              lora: { rank: number("rank"), alpha: number("rank") * 2 },
              scheduler_project_id: text("scheduler_project_id") || null,
            });
          }}
        >
          <label>
            {t("jobs.template")}
            <select value={template} onChange={(e) => setTemplate(e.target.value)} data-testid="template">
              {Object.keys(TEMPLATES).map((name) => (
                <option key={name}>{name}</option>
              ))}
            </select>
          </label>
          <label>
            {t("common.name")} <input name="name" required />
          </label>
          <Choice name="project_id" label={t("chains.modelProject")} items={projects.data} />
          <Choice name="base_model_id" label={t("chains.baseModel")} items={baseModels.data} />
          <DatasetVersionPicker datasetField="dataset_id" versionField="version_id" />
          <label>
            {t("jobs.trainFile")} <input name="train_file" defaultValue="train.jsonl" required />
          </label>
          <label>
            {t("jobs.validationFile")} <input name="validation_file" defaultValue="validation.jsonl" />
          </label>
          <label>
            {t("chains.steps")} <input name="max_steps" type="number" min={1} defaultValue={preset.steps} />
          </label>
          <label>
            {t("chains.learningRate")} <input name="learning_rate" type="number" step="any" defaultValue={preset.learningRate} />
          </label>
          <label>
            {t("jobs.schedule")}
            <select name="lr_schedule" defaultValue={preset.schedule}>
              {["cosine", "linear", "constant"].map((s) => (
                <option key={s}>{s}</option>
              ))}
            </select>
          </label>
          <label>
            {t("jobs.batch")} <input name="batch_size" type="number" min={1} defaultValue={preset.batch} />
          </label>
          <label>
            LoRA rank <input name="rank" type="number" min={1} defaultValue={preset.rank} />
          </label>
          <label>
            {t("chains.schedulerProject")}
            <select name="scheduler_project_id" defaultValue={project ?? ""} key={(schedulerProjects.data ?? []).length}>
              <option value="">–</option>
              {(schedulerProjects.data ?? []).map((p) => (
                <option key={p.id} value={p.id}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
        </FormCard>
      ) : (
        <div className="card">
          <p className="muted">{t("jobs.fileHint")}</p>
          <input
            type="file"
            accept=".json,.yaml,.yml"
            data-testid="config-file"
            onChange={async (event) => {
              const file = event.currentTarget.files?.[0];
              if (!file) return;
              setError(null);
              try {
                setConfig(JSON.stringify(await parseConfig(file.name, await file.text()), null, 2));
              } catch (caught) {
                setError(caught);
              }
            }}
          />
          <textarea className="config" rows={18} value={config} onChange={(e) => setConfig(e.target.value)} data-testid="config" />
          <button
            type="button"
            className="primary"
            data-testid="submit-config"
            disabled={!config.trim()}
            onClick={async () => {
              setError(null);
              try {
                await submit(JSON.parse(config));
              } catch (caught) {
                setError(caught);
              }
            }}
          >
            {t("jobs.submit")}
          </button>
        </div>
      )}
      <ErrorBox error={error} />
    </section>
  );
}
