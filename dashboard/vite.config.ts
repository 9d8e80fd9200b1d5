import { defineConfig } from "vite";
import { budget } from "./build/budget.ts";

/** The first page's JavaScript, compressed, may not exceed this (issue 14). */
const firstPageBudgetBytes = 150 * 1024;

export default defineConfig({
  root: import.meta.dirname,
  // Served by the Worker from the same origin as the API (wrangler.toml [assets]).
  base: "/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    sourcemap: false,
  },
  plugins: [budget(firstPageBudgetBytes)],
});
