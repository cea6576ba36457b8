/** Named sources against a local HTTP server: download once, cache atomically, fail clearly. */
import { once } from "node:events";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { homedir, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadMathFile } from "../datasets/math.js";
import {
  cachedFilePath,
  DownloadError,
  fetchDataset,
  loadNamedDataset,
  resolveDatasetFile,
  sourceUrls,
} from "../datasets/sources.js";

const shared = (name: string) => fileURLToPath(new URL(`../../shared/datasets/${name}`, import.meta.url));
const math500 = await readFile(shared("math500.jsonl"));

type Handler = (request: IncomingMessage, response: ServerResponse) => void;

interface LocalServer {
  baseUrl: string;
  requests: string[];
  close(): Promise<void>;
}

async function startServer(handler: Handler): Promise<LocalServer> {
  const requests: string[] = [];
  const server: Server = createServer((request, response) => {
    requests.push(request.url ?? "");
    handler(request, response);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as AddressInfo;
  return {
    baseUrl: `http://127.0.0.1:${port}`,
    requests,
    close: async () => {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}

/** Serves `files` by path; anything else is a 404. */
function serveFiles(files: Record<string, Buffer>): Handler {
  return (request, response) => {
    const body = files[request.url ?? ""];
    if (body === undefined) {
      response.writeHead(404).end("not found");
      return;
    }
    response.writeHead(200, { "content-type": "application/jsonl", "content-length": body.length }).end(body);
  };
}

let cacheDir: string;
let server: LocalServer | undefined;

beforeEach(async () => {
  cacheDir = await mkdtemp(join(tmpdir(), "deliberate-cache-"));
});

afterEach(async () => {
  await server?.close();
  server = undefined;
  vi.unstubAllEnvs();
  await rm(cacheDir, { recursive: true, force: true });
});

/** Downloads must leave either the complete file or nothing (no partial or temporary files). */
async function expectEmptyCache(): Promise<void> {
  expect(await readdir(cacheDir)).toEqual([]);
}

describe("named dataset sources", () => {
  it("downloads once into the cache, then reads the cache with the server gone", async () => {
    server = await startServer(serveFiles({ "/test.jsonl": math500 }));
    const options = { cacheDir, baseUrl: server.baseUrl };

    const first = await loadNamedDataset("math500", options);
    expect(first.problems).toHaveLength(500);
    expect(server.requests).toEqual(["/test.jsonl"]);
    expect(await readdir(cacheDir)).toEqual(["math500.jsonl"]);
    expect(await readFile(join(cacheDir, "math500.jsonl"))).toEqual(math500);

    await server.close();
    server = undefined;
    const second = await loadNamedDataset("math500", { ...options, levels: [5], limit: 4 });
    expect(second.problems).toHaveLength(4);
    expect(second.problems.every((p) => p.level === 5)).toBe(true);
    expect(await fetchDataset("math500", options)).toEqual({
      file: join(cacheDir, "math500.jsonl"),
      problems: 500,
      downloaded: false,
    });
  });

  it("fetchDataset reports a fresh download with its problem count", async () => {
    server = await startServer(serveFiles({ "/test.jsonl": math500 }));
    const result = await fetchDataset("math500", { cacheDir, baseUrl: `${server.baseUrl}/` });
    expect(result).toEqual({ file: join(cacheDir, "math500.jsonl"), problems: 500, downloaded: true });
  });

  it("leaves no cache file when the server drops the connection half-way", async () => {
    server = await startServer((_request, response) => {
      response.writeHead(200, { "content-length": math500.length });
      response.write(math500.subarray(0, math500.length / 2), () => response.destroy());
    });
    const load = loadNamedDataset("math500", { cacheDir, baseUrl: server.baseUrl });
    await expect(load).rejects.toThrow(DownloadError);
    await expect(load).rejects.toThrow(`could not download ${server.baseUrl}/test.jsonl`);
    await expect(load).rejects.toThrow("--data-file PATH");
    await expectEmptyCache();
  });

  it("leaves no cache file when the content is cut in the middle of a line", async () => {
    server = await startServer((_request, response) => {
      response.end(math500.subarray(0, 1000)); // no content-length: nothing tells fetch it is short
    });
    await expect(resolveDatasetFile("math500", { cacheDir, baseUrl: server.baseUrl })).rejects.toThrow(
      /download of math500 from http:\/\/127\.0\.0\.1:\d+\/test\.jsonl is not valid MATH JSONL \(line 2: invalid JSON/,
    );
    await expectEmptyCache();
  });

  it("leaves no cache file when the content ends early on a line boundary", async () => {
    const lines = math500.toString("utf8").split("\n").slice(0, 250).join("\n");
    server = await startServer(serveFiles({ "/test.jsonl": Buffer.from(lines) }));
    await expect(resolveDatasetFile("math500", { cacheDir, baseUrl: server.baseUrl })).rejects.toThrow(
      /has 250 problems, expected 500/,
    );
    await expectEmptyCache();
  });

  it("reports an HTTP error status", async () => {
    server = await startServer((_request, response) => {
      response.writeHead(500).end("internal error");
    });
    await expect(resolveDatasetFile("math500", { cacheDir, baseUrl: server.baseUrl })).rejects.toThrow(
      /could not download http:\/\/127\.0\.0\.1:\d+\/test\.jsonl: HTTP 500/,
    );
    await expectEmptyCache();
  });

  it("reports an unreachable server (offline) with the URL and the --data-file hint", async () => {
    server = await startServer(serveFiles({}));
    const { baseUrl } = server;
    await server.close();
    server = undefined;
    await expect(resolveDatasetFile("math500", { cacheDir, baseUrl })).rejects.toThrow(
      new RegExp(`could not download ${baseUrl}/test\\.jsonl: fetch failed.*ECONNREFUSED.*--data-file PATH`),
    );
    await expectEmptyCache();
  });

  it("gives up after the timeout", async () => {
    server = await startServer(() => {}); // never answers
    await expect(resolveDatasetFile("math500", { cacheDir, baseUrl: server.baseUrl, timeoutMs: 200 })).rejects.toThrow(
      /no complete answer within 0.2 s/,
    );
    await expectEmptyCache();
  });

  it("takes the cache directory and base URL from the environment", async () => {
    server = await startServer(serveFiles({ "/mirror/test.jsonl": math500 }));
    vi.stubEnv("DELIBERATE_CACHE", cacheDir);
    vi.stubEnv("DELIBERATE_DATA_URL_MATH500", `${server.baseUrl}/mirror`);
    expect(sourceUrls("math500")).toEqual([`${server.baseUrl}/mirror/test.jsonl`]);
    expect(await resolveDatasetFile("math500")).toBe(join(cacheDir, "math500.jsonl"));
  });

  it("defaults to Hugging Face and ~/.cache/deliberate", () => {
    vi.stubEnv("DELIBERATE_CACHE", "");
    vi.stubEnv("DELIBERATE_DATA_URL_MATH500", "");
    expect(cachedFilePath("math500")).toBe(join(homedir(), ".cache", "deliberate", "math500.jsonl"));
    expect(sourceUrls("math500")).toEqual(["https://huggingface.co/datasets/HuggingFaceH4/MATH-500/resolve/main/test.jsonl"]);
    expect(sourceUrls("math")).toHaveLength(7);
    expect(sourceUrls("math")[0]).toBe("https://huggingface.co/datasets/HuggingFaceTB/MATH/resolve/main/data/algebra_test.jsonl");
  });

  it("rejects an unknown name", async () => {
    await expect(loadNamedDataset("gsm8k", { cacheDir })).rejects.toThrow(/unknown dataset "gsm8k"; known: math500, math/);
  });

  it("assembles MATH from per-subject files in the original Hendrycks format", async () => {
    // Rebuild the seven upstream files from the shared copy: `type` for the subject, "Level N", no answer.
    const reference = (await loadMathFile(shared("math_test.jsonl"))).problems;
    const parts: Record<string, string[]> = {};
    for (const p of reference) {
      const file = `/data/${(p.subject ?? "").toLowerCase().replace(" & ", "_and_").replace(" ", "_")}_test.jsonl`;
      (parts[file] ??= []).push(JSON.stringify({ problem: p.problem, level: `Level ${p.level}`, type: p.subject, solution: p.solution }));
    }
    expect(Object.keys(parts)).toHaveLength(7);
    // One part without a final newline: the parts must still be joined line by line.
    const files = Object.fromEntries(
      Object.entries(parts).map(([path, lines], i) => [path, Buffer.from(lines.join("\n") + (i === 0 ? "" : "\n"))]),
    );
    server = await startServer(serveFiles(files));

    const { problems } = await loadNamedDataset("math", { cacheDir, baseUrl: server.baseUrl });
    expect(problems).toHaveLength(5000);
    expect(server.requests).toHaveLength(7);
    const byText = new Map(reference.map((p) => [p.problem, p]));
    for (const p of problems) {
      const original = byText.get(p.problem);
      // The shared copy keeps the boxed content verbatim; extractAnswer trims it.
      expect([p.answer, p.level, p.subject]).toEqual([original?.answer.trim(), original?.level, original?.subject]);
    }
    expect(problems[0]?.id).toBe("math.jsonl:1");
  });
});
