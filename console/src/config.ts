/** The runtime configuration the console server writes at `/config.json` (forge_cli.console). */
export interface Config {
  issuer: string;
  client_id: string;
  api: string;
  temporal_ui: string;
  version: string;
}

export async function loadConfig(): Promise<Config> {
  const response = await fetch("/config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`/config.json: ${response.status}`);
  return (await response.json()) as Config;
}
