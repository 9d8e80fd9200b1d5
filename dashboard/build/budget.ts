import { gzipSync } from "node:zlib";
import type { Plugin } from "vite";

/**
 * Fails the build when the JavaScript a first visit loads (the entry chunk and everything it
 * imports statically) exceeds `limitBytes` gzip-compressed; prints the size either way.
 * Lazily imported chunks (the terminal, charts) are not part of the first page.
 */
export function budget(limitBytes: number): Plugin {
  return {
    name: "edgeplane-first-page-budget",
    apply: "build",
    generateBundle(_options, bundle) {
      const chunks = new Map<string, string>();
      for (const item of Object.values(bundle)) if (item.type === "chunk") chunks.set(item.fileName, item.code);
      const entries = Object.values(bundle).filter((item) => item.type === "chunk" && item.isEntry);
      const seen = new Set<string>();
      const visit = (fileName: string) => {
        if (seen.has(fileName)) return;
        seen.add(fileName);
        const item = bundle[fileName];
        if (item?.type === "chunk") for (const imported of item.imports) visit(imported);
      };
      for (const e of entries) visit(e.fileName);
      const bytes = [...seen].reduce((sum, f) => sum + gzipSync(chunks.get(f) ?? "").length, 0);
      const kb = (n: number) => `${(n / 1024).toFixed(1)} KB`;
      const line = `dashboard: first page JavaScript ${kb(bytes)} gzip (budget ${kb(limitBytes)}, ${seen.size} chunk${seen.size === 1 ? "" : "s"})`;
      if (bytes > limitBytes) this.error(`${line}: over budget`);
      this.info(line);
    },
  };
}
