/**
 * `deliberate serve` as a child process, for tests and benchmark scripts: started from the sources
 * (through tsx) with the given arguments, resolved once it prints the URL it listens on.
 */
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const CLI = fileURLToPath(new URL(join("..", "..", "src", "cli.ts"), import.meta.url));
// Resolved here, so that the process may start in any working directory.
const TSX = import.meta.resolve("tsx");

export interface ServeProcess {
  url: string;
  child: ChildProcessWithoutNullStreams;
  /** Resolves with the exit status once the process ends. */
  exited: Promise<number | null>;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
}

export async function spawnServe(args: readonly string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ServeProcess> {
  const child = spawn(process.execPath, ["--import", TSX, CLI, "serve", ...args], { cwd: options.cwd, env: options.env ?? process.env });
  let output = "";
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const collect = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /^deliberate serve listening on (http:\/\/\S+)$/m.exec(output);
      if (match) resolve(match[1] as string);
    };
    child.stdout.on("data", collect);
    child.stderr.on("data", collect);
    child.on("exit", () => reject(new Error(`deliberate serve exited before listening: ${output}`)));
  });
  return { url, child, exited, output: () => output };
}
