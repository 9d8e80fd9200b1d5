import { execFileSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { edgeplane, type Home, newHome } from "./run";

let home: Home;
beforeAll(async () => {
  home = await newHome();
});
afterAll(() => home.remove());

describe("edgeplane completion", () => {
  it("bash completes subcommands and flags of the command typed so far, global flags' values skipped", async () => {
    const script = await edgeplane(home, ["completion", "bash"]);
    expect(script.code).toBe(0);
    const file = join(home.dir, "completion.bash");
    writeFileSync(file, script.stdout);
    const complete = (...words: string[]) =>
      execFileSync("bash", ["-c", `source ${file}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}; _edgeplane; echo "\${COMPREPLY[@]}"`], { encoding: "utf8" }).trim().split(" ");
    expect(complete("edgeplane", "cap")).toEqual(["capsule"]);
    expect(complete("edgeplane", "-P", "shop", "capsule", "r")).toEqual(["rollout"]);
    expect(complete("edgeplane", "capsule", "rollout", "")).toEqual(expect.arrayContaining(["list", "get", "abort", "rollback", "-P", "--help"]));
    expect(complete("edgeplane", "capsule", "deploy", "web", "--no-")).toEqual(["--no-wait", "--no-rollback"]);
  });

  it("refuses an unknown shell (exit 2)", async () => {
    const res = await edgeplane(home, ["completion", "tcsh"]);
    expect(res.code).toBe(2);
    expect(res.stderr).toMatch(/Allowed choices are bash, zsh, fish/);
  });
});
