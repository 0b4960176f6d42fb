import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the gateway and the runtime configuration, so the dev server behaves like the
// console behind the gateway (FORGE_GATEWAY_URL, default the local stack's).
const gateway = process.env.FORGE_GATEWAY_URL ?? "http://127.0.0.1:18000";

export default defineConfig({
  plugins: [react()],
  build: {
    target: "es2022",
    outDir: process.env.FORGE_CONSOLE_OUT ?? "dist",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 400,
  },
  server: {
    host: "127.0.0.1",
    port: 5173,
    proxy: { "/api": gateway, "/config.json": gateway },
  },
});
