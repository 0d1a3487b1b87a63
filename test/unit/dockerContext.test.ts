/**
 * The image is not built here (no container engine on the project's machines or CI), so its build is checked by
 * reading it: the Dockerfile's COPY sources exist and survive .dockerignore, the ENTRYPOINT runs what
 * `npm run build` produces, every base image is pinned by digest, the user is numeric and not root, and no
 * ENV or ARG carries a secret. hadolint (in .ci/run) lints the rest.
 */
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, posix, relative } from "node:path";
import { describe, expect, it } from "vitest";

const rootDir = new URL("../../", import.meta.url).pathname;
const read = (path: string) => readFileSync(join(rootDir, path), "utf8");

interface Instruction {
  readonly keyword: string;
  readonly args: string;
  readonly line: number;
}

/** Instructions with their continuation lines joined; comments and blank lines dropped. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let pending = "";
  let startLine = 0;
  text.split("\n").forEach((raw, index) => {
    const line = raw.trimEnd();
    if (pending === "" && (line.trim() === "" || line.trim().startsWith("#"))) return;
    if (pending !== "" && line.trim().startsWith("#")) return; // comments inside a continued instruction
    if (pending === "") startLine = index + 1;
    if (line.endsWith("\\")) {
      pending += `${line.slice(0, -1)} `;
      return;
    }
    const full = `${pending}${line}`.trim();
    pending = "";
    const match = /^(\S+)\s*(.*)$/.exec(full);
    if (match)
      out.push({ keyword: (match[1] as string).toUpperCase(), args: match[2] as string, line: startLine });
  });
  return out;
}

interface Stage {
  readonly image: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

function stagesOf(instructions: readonly Instruction[]): Stage[] {
  const stages: Stage[] = [];
  for (const instruction of instructions) {
    if (instruction.keyword === "FROM") {
      const [image, as, name] = instruction.args.replace(/--platform=\S+\s+/, "").split(/\s+/);
      stages.push({
        image: image as string,
        name: as?.toUpperCase() === "AS" ? name : undefined,
        instructions: [],
      });
    } else {
      stages.at(-1)?.instructions.push(instruction);
    }
  }
  return stages;
}

/** COPY's flags and paths: exec (JSON) or shell form; the last path is the destination. */
function copyArgs(args: string): { from: string | undefined; sources: string[]; destination: string } {
  const words = args.split(/\s+/);
  const flags = words.filter((w) => w.startsWith("--"));
  const rest = args
    .split(/\s+/)
    .filter((w) => !w.startsWith("--"))
    .join(" ");
  const paths = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
  return {
    from: flags.find((f) => f.startsWith("--from="))?.slice("--from=".length),
    sources: paths.slice(0, -1),
    destination: paths.at(-1) as string,
  };
}

/** .dockerignore as Docker reads it: patterns in order, `!` re-includes, the last match wins, a match on a parent folder counts. */
function dockerignore(text: string): (path: string) => boolean {
  const patterns = text
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"))
    .map((l) => {
      const negated = l.startsWith("!");
      const pattern = posix.normalize((negated ? l.slice(1) : l).trim()).replace(/^\/+|\/+$/g, "");
      let source = "";
      for (let i = 0; i < pattern.length; i++) {
        const c = pattern[i] as string;
        if (c === "*" && pattern[i + 1] === "*") {
          source += pattern[i + 2] === "/" ? "(?:.*/)?" : ".*";
          i += pattern[i + 2] === "/" ? 2 : 1;
        } else if (c === "*") source += "[^/]*";
        else if (c === "?") source += "[^/]";
        else source += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
      }
      return { negated, regex: new RegExp(`^${source}$`) };
    });
  return (path: string) => {
    const parts = path.split("/");
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join("/"));
    let excluded = false;
    for (const { negated, regex } of patterns) {
      if (candidates.some((candidate) => regex.test(candidate))) excluded = !negated;
    }
    return excluded;
  };
}

function filesUnder(path: string): string[] {
  const full = join(rootDir, path);
  if (!statSync(full).isDirectory()) return [path];
  return readdirSync(full).flatMap((name) => filesUnder(posix.join(path, name)));
}

const dockerfile = read("Dockerfile");
const instructions = parseDockerfile(dockerfile);
const stages = stagesOf(instructions);
const runtime = stages.at(-1) as Stage;
const isExcluded = dockerignore(read(".dockerignore"));

describe("Dockerfile", () => {
  it("is multi-stage, every FROM is the official Node 24 slim image pinned by the same digest", () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const stageNames = new Set(stages.map((s) => s.name).filter(Boolean));
    const bases = stages.filter((s) => !stageNames.has(s.image)).map((s) => s.image);
    for (const image of bases) expect(image).toMatch(/^node:24[\w.-]*-slim@sha256:[0-9a-f]{64}$/);
    const digests = new Set(bases.map((image) => image.split("@")[1]));
    expect(digests.size).toBe(1);
    const label = /org\.opencontainers\.image\.base\.digest="([^"]+)"/.exec(dockerfile)?.[1];
    expect(label).toBe([...digests][0]);
  });

  it("copies only sources that exist and that .dockerignore lets into the context", () => {
    const names = stages.map((s) => s.name);
    let checked = 0;
    stages.forEach((stage, index) => {
      for (const instruction of stage.instructions.filter(
        (i) => i.keyword === "COPY" || i.keyword === "ADD",
      )) {
        expect(instruction.keyword, `line ${instruction.line}: use COPY`).toBe("COPY");
        const { from, sources } = copyArgs(instruction.args);
        if (from !== undefined) {
          expect(names.slice(0, index), `line ${instruction.line}: --from=${from}`).toContain(from);
          continue;
        }
        for (const source of sources) {
          expect(existsSync(join(rootDir, source)), `line ${instruction.line}: ${source} exists`).toBe(true);
          for (const file of filesUnder(source)) {
            expect(isExcluded(file), `line ${instruction.line}: ${file} is in the build context`).toBe(false);
            checked++;
          }
        }
      }
    });
    expect(checked).toBeGreaterThan(10);
  });

  it("keeps secrets, local state and dependencies out of the build context", () => {
    for (const path of [
      ".env",
      "connector.env",
      ".npmrc",
      ".git/config",
      "node_modules/kafkajs/package.json",
      ".stack/local/state.json",
      ".tools/node/package.json",
      "dist/src/cli.js",
      "test/unit/config.test.ts",
      "helm/forecast-connector/values.yaml",
    ]) {
      expect(isExcluded(path), path).toBe(true);
    }
  });

  it("runs what npm run build produces: tsconfig.build.json's outDir plus the cli's path, as package.json's bin", () => {
    const build = JSON.parse(read("tsconfig.build.json")) as {
      compilerOptions: { outDir: string; rootDir: string };
      include: string[];
    };
    const pkg = JSON.parse(read("package.json")) as {
      scripts: { build: string };
      bin: Record<string, string>;
    };
    expect(pkg.scripts.build).toContain("tsc -p tsconfig.build.json");
    const built = posix.join(
      build.compilerOptions.outDir,
      posix.relative(build.compilerOptions.rootDir, "src/cli.ts").replace(/\.ts$/, ".js"),
    );
    expect(Object.values(pkg.bin)).toContain(built);

    const entrypoint = runtime.instructions.find((i) => i.keyword === "ENTRYPOINT");
    const argv = JSON.parse(entrypoint?.args ?? "null") as string[]; // exec form: signals reach the process
    const script = argv[argv.indexOf("node") + 1];
    const workdir = runtime.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)?.args as string;
    expect(posix.resolve(workdir, script as string)).toBe(posix.join(workdir, built));

    // The runtime stage gets outDir from the stage that ran the build.
    const buildStage = stages.find((s) =>
      s.instructions.some((i) => i.keyword === "RUN" && i.args.includes("npm run build")),
    );
    expect(buildStage?.name).toBeDefined();
    const buildWorkdir = buildStage?.instructions.filter((i) => i.keyword === "WORKDIR").at(-1)
      ?.args as string;
    const copiesDist = runtime.instructions
      .filter((i) => i.keyword === "COPY")
      .map((i) => copyArgs(i.args))
      .some(
        (c) =>
          c.from === buildStage?.name &&
          c.sources.some(
            (s) => posix.resolve(buildWorkdir, s) === posix.join(buildWorkdir, build.compilerOptions.outDir),
          ),
      );
    expect(copiesDist).toBe(true);

    // PID 1: an init that forwards SIGTERM (installed in the same stage), or node itself.
    if (argv[0]?.endsWith("tini")) {
      expect(
        runtime.instructions.some((i) => i.keyword === "RUN" && /apt-get install .*\btini\b/.test(i.args)),
      ).toBe(true);
    }
  });

  it("builds from what the context holds: src imports nothing outside src, runtime files are copied into outDir", () => {
    const sourceFiles = filesUnder("src").filter((f) => f.endsWith(".ts"));
    const buildStage = stages.find((s) =>
      s.instructions.some((i) => i.keyword === "RUN" && i.args.includes("npm run build")),
    ) as Stage;
    const copied = buildStage.instructions
      .filter((i) => i.keyword === "COPY")
      .flatMap((i) => copyArgs(i.args).sources);
    const buildScript = (JSON.parse(read("package.json")) as { scripts: { build: string } }).scripts.build;
    for (const file of sourceFiles) {
      const text = read(file);
      for (const [, specifier] of text.matchAll(/(?:from|import)\s*\(?\s*"(\.[^"]+)"/g)) {
        const target = relative(rootDir, join(rootDir, dirname(file), specifier as string));
        expect(target.startsWith("src/"), `${file} imports ${specifier}`).toBe(true);
      }
      for (const [, url] of text.matchAll(/new URL\(\s*"(\.[^"]+)",\s*import\.meta\.url\s*\)/g)) {
        // Read at run time relative to the compiled file: it must sit at the same place under outDir.
        const target = relative(rootDir, join(rootDir, dirname(file), url as string));
        const top = target.split("/")[0] as string;
        if (top === "src") continue;
        expect(existsSync(join(rootDir, target)), `${file} reads ${target}`).toBe(true);
        expect(buildScript, `${target} is copied into dist/ by the build`).toContain(`cp -r ${top} dist/`);
        expect(copied, `the build stage copies ${top}`).toContain(top);
      }
    }
  });

  it("installs production dependencies only, without running install scripts", () => {
    const installs = instructions.filter((i) => i.keyword === "RUN" && /\bnpm (ci|install)\b/.test(i.args));
    expect(installs.length).toBeGreaterThan(0);
    for (const install of installs)
      expect(install.args, `line ${install.line}`).toMatch(/npm ci .*--ignore-scripts/);
    const nodeModulesFrom = runtime.instructions
      .filter((i) => i.keyword === "COPY")
      .map((i) => copyArgs(i.args))
      .find((c) => c.sources.some((s) => s.endsWith("node_modules")))?.from;
    const depsStage = stages.find((s) => s.name === nodeModulesFrom);
    expect(
      depsStage?.instructions.some((i) => i.keyword === "RUN" && /npm ci .*--omit=dev/.test(i.args)),
    ).toBe(true);
    expect(runtime.instructions.some((i) => i.keyword === "RUN" && /\bnpm (ci|install)\b/.test(i.args))).toBe(
      false,
    );
  });

  it("runs as a numeric, non-root user", () => {
    const user = runtime.instructions.filter((i) => i.keyword === "USER").at(-1)?.args;
    expect(user).toMatch(/^\d+(:\d+)?$/);
    const [uid, gid] = (user as string).split(":").map(Number);
    expect(uid).not.toBe(0);
    if (gid !== undefined) expect(gid).not.toBe(0);
  });

  it("has no ENV or ARG that looks like a secret", () => {
    const secretName =
      /PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|ACCESS_?KEY|PRIVATE|CREDENTIAL|CONNECTION_STRING|\bSAS\b/i;
    const secretValue = /AccountKey=|SharedAccessSignature|sig=|-----BEGIN|Bearer /i;
    const settings = instructions.filter((i) => i.keyword === "ENV" || i.keyword === "ARG");
    for (const { args, line } of settings) {
      for (const [, name, value = ""] of args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)(?:=("[^"]*"|\S*))?/g)) {
        expect(name, `line ${line}`).not.toMatch(secretName);
        expect(value, `line ${line}`).not.toMatch(secretValue);
      }
    }
    expect(dockerfile).not.toMatch(/--mount=type=secret|FC_\w*(PASSWORD|CONNECTION_STRING)\s*=/);
  });

  it("labels the image with OCI annotations", () => {
    for (const key of [
      "title",
      "description",
      "version",
      "revision",
      "licenses",
      "base.name",
      "base.digest",
    ]) {
      expect(dockerfile).toContain(`org.opencontainers.image.${key}=`);
    }
  });
});

describe("the .dockerignore reader used above", () => {
  it("follows Docker's rules: last match wins, ! re-includes, parents count, ** spans folders", () => {
    const ignore = dockerignore("*\n!src\nsrc/secret.ts\n**/*.log\n# comment\n");
    expect(ignore("package.json")).toBe(true);
    expect(ignore("src/cli.ts")).toBe(false);
    expect(ignore("src/consumer/decode.ts")).toBe(false);
    expect(ignore("src/secret.ts")).toBe(true);
    expect(ignore("src/deep/x.log")).toBe(true);
    expect(dockerignore("node_modules\n")("node_modules/a/b.js")).toBe(true);
    expect(dockerignore("node_modules\n")("src/node_modules.ts")).toBe(false);
  });
});
