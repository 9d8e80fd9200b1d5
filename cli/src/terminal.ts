/**
 * How the CLI writes to a terminal: colour, spinners and progress bars only when stdout is a
 * terminal and NO_COLOR is unset; plain lines otherwise, so logs and pipes stay readable.
 */
import { createInterface } from "node:readline/promises";
import pc from "picocolors";

/** Whether stdout is a terminal that may get colour and animation. */
export const fancy = Boolean(process.stdout.isTTY) && !process.env.NO_COLOR;

/** Colour functions, no-ops when not `fancy`. */
export const color = pc.createColors(fancy);

/** Writes a line to stdout. */
export const say = (line: string) => process.stdout.write(`${line}\n`);

/** Writes a line to stderr (notices that are not the command's output). */
export const warn = (line: string) => process.stderr.write(`${line}\n`);

/** Asks a yes/no question on the terminal; anything but y/yes is no. */
export async function confirm(question: string): Promise<boolean> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await rl.question(`${question} [y/N] `);
    return /^y(es)?$/i.test(answer.trim());
  } finally {
    rl.close();
  }
}

/** Asks for a line of text on the terminal. */
export async function ask(question: string): Promise<string> {
  const rl = createInterface({ input: process.stdin, output: process.stderr });
  try {
    return (await rl.question(`${question}: `)).trim();
  } finally {
    rl.close();
  }
}

/** Asks for a secret: the terminal is put in raw mode so what is typed is not echoed. */
export function askSecret(question: string): Promise<string> {
  process.stderr.write(`${question}: `);
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  return new Promise((resolve, reject) => {
    let typed = "";
    const done = (end: () => void) => {
      stdin.off("data", onData);
      stdin.setRawMode(false);
      stdin.pause();
      process.stderr.write("\n");
      end();
    };
    const onData = (chunk: Buffer) => {
      for (const ch of chunk.toString("utf8")) {
        if (ch === "\r" || ch === "\n") return done(() => resolve(typed));
        if (ch === "\u0003") return done(() => reject(new Error("interrupted")));
        if (ch === "\u007f" || ch === "\b") typed = typed.slice(0, -1);
        else typed += ch;
      }
    };
    stdin.on("data", onData);
  });
}
