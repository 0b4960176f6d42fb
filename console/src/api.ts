/** Calls to Forge's services through the gateway (`/api/<service>/...`) as the signed-in user. */
import { accessToken } from "./auth";
import type { Config } from "./config";

export type Service = "dataset" | "labeling" | "training" | "registry" | "scheduler" | "delivery";

/** A problem+json answer (RFC 9457) of 400 or above. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly problem: Record<string, unknown>;

  constructor(status: number, problem: Record<string, unknown>) {
    const title = String(problem.title ?? `HTTP ${status}`);
    const detail = typeof problem.detail === "string" ? problem.detail : JSON.stringify(problem.detail ?? "");
    super(`${title}: ${detail}`);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.problem = problem;
  }
}

let config: Config | null = null;
let tenant: string | null = null;

export function configure(next: Config): void {
  config = next;
}

export function setTenant(next: string | null): void {
  tenant = next;
}

export function currentTenant(): string | null {
  return tenant;
}

async function headers(json: boolean): Promise<Record<string, string>> {
  if (!config) throw new Error("the console is not configured");
  const token = await accessToken(config);
  if (!token) throw new ApiError(401, { title: "Unauthorized", detail: "sign in again" });
  const result: Record<string, string> = { authorization: `Bearer ${token}` };
  if (tenant) result["x-forge-tenant"] = tenant;
  if (json) result["content-type"] = "application/json";
  return result;
}

function url(service: Service, path: string, query?: Record<string, string | number | undefined>): string {
  const base = `${config?.api ?? "/api"}/${service}${path}`;
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query ?? {})) if (value !== undefined) params.set(key, String(value));
  const text = params.toString();
  return text ? `${base}?${text}` : base;
}

async function problemOf(response: Response): Promise<ApiError> {
  let problem: Record<string, unknown>;
  try {
    problem = (await response.json()) as Record<string, unknown>;
  } catch {
    problem = { title: response.statusText, detail: "" };
  }
  return new ApiError(response.status, problem);
}

export interface RequestOptions {
  method?: "GET" | "POST" | "PUT" | "DELETE";
  body?: unknown;
  query?: Record<string, string | number | undefined>;
}

export async function api<T>(service: Service, path: string, options: RequestOptions = {}): Promise<T> {
  const method = options.method ?? (options.body === undefined ? "GET" : "POST");
  const response = await fetch(url(service, path, options.query), {
    method,
    headers: await headers(options.body !== undefined),
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (response.status >= 400) throw await problemOf(response);
  if (response.status === 204) return undefined as T;
  return (await response.json()) as T;
}

/** PUT a file's bytes, reporting the bytes sent (XMLHttpRequest: fetch cannot report upload progress). */
export async function uploadFile(
  service: Service,
  path: string,
  file: Blob,
  onProgress: (sent: number, total: number) => void,
): Promise<unknown> {
  const sent = await headers(false);
  return new Promise((resolve, reject) => {
    const request = new XMLHttpRequest();
    request.open("PUT", url(service, path));
    for (const [key, value] of Object.entries(sent)) request.setRequestHeader(key, value);
    request.setRequestHeader("content-type", file.type || "application/octet-stream");
    request.upload.onprogress = (event) => onProgress(event.loaded, event.lengthComputable ? event.total : file.size);
    request.onload = () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(request.responseText) as Record<string, unknown>;
      } catch {
        body = { title: request.statusText };
      }
      if (request.status >= 400) reject(new ApiError(request.status, body));
      else {
        onProgress(file.size, file.size);
        resolve(body);
      }
    };
    request.onerror = () => reject(new ApiError(0, { title: "Network error", detail: "the upload was interrupted" }));
    request.send(file);
  });
}

/** A file of an API behind the gateway as an object URL (an <img> or <audio> cannot send the bearer
 * token itself); the caller revokes it when done. */
export async function blobUrl(service: Service, path: string): Promise<string> {
  const response = await fetch(url(service, path), { headers: await headers(false) });
  if (response.status >= 400) throw await problemOf(response);
  return URL.createObjectURL(await response.blob());
}

/** Files this large go up in parts (resumable): a lost part is sent again, and an upload cut off (a
 * closed tab, a dropped network) resumes where it stopped when the same file is chosen again. */
export const RESUMABLE_FROM_BYTES = 32 * 1024 ** 2;
const PART_BYTES = 16 * 1024 ** 2;

interface UploadState {
  id: string;
  state: string;
  part_bytes: number;
  parts: { number: number; size_bytes: number }[];
}

/** Upload `file` as `name` into the version at `base` (`/datasets/{id}/versions/{vid}`), resumably. */
export async function uploadResumable(
  base: string,
  name: string,
  file: File,
  onProgress: (sent: number, total: number) => void,
): Promise<unknown> {
  const key = `forge.upload.${base}.${name}.${file.size}.${file.lastModified}`;
  let upload: UploadState | null = null;
  const saved = localStorage.getItem(key);
  if (saved) {
    try {
      upload = await api<UploadState>("dataset", `${base}/uploads/${saved}`);
      if (upload.state !== "open") upload = null;
    } catch {
      upload = null; // gone, or another user's: start again
    }
  }
  upload ??= await api<UploadState>("dataset", `${base}/uploads`, {
    body: { name, part_bytes: PART_BYTES, size_bytes: file.size },
  });
  localStorage.setItem(key, upload.id);
  const count = Math.max(1, Math.ceil(file.size / upload.part_bytes));
  const received = new Set(upload.parts.map((part) => part.number));
  let sent = upload.parts.reduce((sum, part) => sum + part.size_bytes, 0);
  onProgress(sent, file.size);
  for (let number = 1; number <= count; number += 1) {
    if (received.has(number)) continue;
    const part = file.slice((number - 1) * upload.part_bytes, Math.min(file.size, number * upload.part_bytes));
    for (let attempt = 1; ; attempt += 1) {
      try {
        await uploadFile("dataset", `${base}/uploads/${upload.id}/parts/${number}`, part, (done) =>
          onProgress(sent + done, file.size),
        );
        break;
      } catch (error) {
        if (attempt >= 3 || (error instanceof ApiError && error.status >= 400 && error.status < 500)) throw error;
        await new Promise((resolve) => setTimeout(resolve, 1000 * attempt));
      }
    }
    sent += part.size;
  }
  const done = await api("dataset", `${base}/uploads/${upload.id}/complete`, { method: "POST" });
  localStorage.removeItem(key);
  onProgress(file.size, file.size);
  return done;
}
