/**
 * Sign-in through the identity provider: OAuth 2.0 authorization code flow with PKCE (S256), the
 * `forge-console` public client. Tokens stay in this tab's sessionStorage (never localStorage) and the
 * access token is renewed with the refresh token a minute before it expires.
 */
import type { Config } from "./config";

const SESSION = "forge.session";
const PENDING = "forge.pkce";

export interface Session {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  expires_at: number;
  username: string;
}

interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  id_token?: string;
  expires_in: number;
}

function base64url(bytes: Uint8Array): string {
  let text = "";
  for (const byte of bytes) text += String.fromCharCode(byte);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function randomString(size = 48): string {
  return base64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function challengeOf(verifier: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier));
  return base64url(new Uint8Array(digest));
}

function claims(token: string): Record<string, unknown> {
  const part = token.split(".")[1] ?? "";
  const json = atob(part.replace(/-/g, "+").replace(/_/g, "/"));
  return JSON.parse(decodeURIComponent(escape(json))) as Record<string, unknown>;
}

function endpoint(config: Config, name: string): string {
  return `${config.issuer}/protocol/openid-connect/${name}`;
}

/** A grant at the token endpoint, as the console's public client. */
function tokenRequest(config: Config, grant: Record<string, string>): Promise<Response> {
  return fetch(endpoint(config, "token"), {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ ...grant, client_id: config.client_id }),
  });
}

function redirectUri(): string {
  return `${window.location.origin}/`;
}

function store(response: TokenResponse): Session {
  const session: Session = {
    access_token: response.access_token,
    refresh_token: response.refresh_token,
    id_token: response.id_token,
    expires_at: Date.now() + response.expires_in * 1000,
    username: String(claims(response.access_token).preferred_username ?? ""),
  };
  sessionStorage.setItem(SESSION, JSON.stringify(session));
  return session;
}

export function currentSession(): Session | null {
  const saved = sessionStorage.getItem(SESSION);
  return saved ? (JSON.parse(saved) as Session) : null;
}

/** Send the browser to the identity provider; it comes back to `/` with a code. */
export async function signIn(config: Config, locale: string): Promise<void> {
  const verifier = randomString();
  const state = randomString(16);
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: window.location.hash }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: config.client_id,
    redirect_uri: redirectUri(),
    scope: "openid profile",
    state,
    code_challenge: await challengeOf(verifier),
    code_challenge_method: "S256",
    ui_locales: locale,
  });
  window.location.assign(`${endpoint(config, "auth")}?${params}`);
}

/** If the URL carries the identity provider's answer, exchange the code; returns the hash to go back to. */
export async function completeSignIn(config: Config): Promise<string | null> {
  const query = new URLSearchParams(window.location.search);
  const code = query.get("code");
  const error = query.get("error");
  if (!code && !error) return null;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) ?? "null") as {
    verifier: string;
    state: string;
    back: string;
  } | null;
  sessionStorage.removeItem(PENDING);
  window.history.replaceState(null, "", "/");
  if (error) throw new Error(`${error}: ${query.get("error_description") ?? ""}`);
  if (!pending || pending.state !== query.get("state")) throw new Error("sign-in state mismatch; try again");
  const response = await tokenRequest(config, {
    grant_type: "authorization_code",
    code: code ?? "",
    redirect_uri: redirectUri(),
    code_verifier: pending.verifier,
  });
  if (!response.ok) throw new Error(`token exchange failed (${response.status}): ${await response.text()}`);
  store((await response.json()) as TokenResponse);
  return pending.back || "#/";
}

let renewing: Promise<Session | null> | null = null;

/** The bearer token, renewed first when it expires within a minute; null when signed out. */
export async function accessToken(config: Config): Promise<string | null> {
  const session = currentSession();
  if (!session) return null;
  if (session.expires_at - Date.now() > 60_000) return session.access_token;
  if (!session.refresh_token) return null;
  renewing ??= (async () => {
    const response = await tokenRequest(config, {
      grant_type: "refresh_token",
      refresh_token: session.refresh_token ?? "",
    });
    if (!response.ok) {
      sessionStorage.removeItem(SESSION);
      return null;
    }
    return store((await response.json()) as TokenResponse);
  })().finally(() => {
    renewing = null;
  });
  const renewed = await renewing;
  return renewed?.access_token ?? null;
}

/** End the session here and at the identity provider. */
export function signOut(config: Config): void {
  const session = currentSession();
  sessionStorage.removeItem(SESSION);
  const params = new URLSearchParams({ client_id: config.client_id, post_logout_redirect_uri: redirectUri() });
  if (session?.id_token) params.set("id_token_hint", session.id_token);
  window.location.assign(`${endpoint(config, "logout")}?${params}`);
}
