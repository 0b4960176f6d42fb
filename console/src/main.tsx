import { StrictMode } from "react";
import { createRoot } from "react-dom/client";

import { configure } from "./api";
import { App, SignedOut } from "./app";
import { completeSignIn, currentSession } from "./auth";
import { loadConfig } from "./config";
import "./styles.css";

async function start(): Promise<void> {
  const root = createRoot(document.getElementById("root") as HTMLElement);
  const config = await loadConfig();
  configure(config);
  let error: unknown = null;
  try {
    const back = await completeSignIn(config);
    if (back) window.location.hash = back;
  } catch (caught) {
    error = caught;
  }
  const session = currentSession();
  root.render(
    <StrictMode>{session ? <App config={config} session={session} /> : <SignedOut config={config} error={error} />}</StrictMode>,
  );
}

void start();
