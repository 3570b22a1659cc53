/**
 * Static checks of the container files (Dockerfile, .dockerignore, docker-compose.yml): no Docker engine
 * runs in CI, so this is what keeps them in step with the build (the CLI's compiled path, the port,
 * the health command, the files the image copies).
 */
import { strict as assert } from "node:assert";
import { execFileSync } from "node:child_process";
import * as fs from "node:fs";
import * as path from "node:path";
import * as ts from "typescript";
import { parse as parseYaml } from "yaml";
import { SERVER_NODE_FLAGS } from "../server/launch-flags";
import {
  type ComposeService,
  argv,
  assertSaneTimings,
  commandArgv,
  dockerignore,
  envVars,
  flagValue,
  healthArgv,
  last,
  options,
  parseDockerfile,
  portPair,
} from "./container-files";

const ROOT = path.join(__dirname, "../..");
const read = (rel: string): string => fs.readFileSync(path.join(ROOT, rel), "utf8");
const exists = (rel: string): boolean => fs.existsSync(path.join(ROOT, rel));

const PORT = 50051;
const CLI = "dist/cli/cli.js";
const HEALTH = ["node", CLI, "health", "--address", `127.0.0.1:${PORT}`];
const SERVE = ["serve", "meshstats", "--port", String(PORT)];

/** The service's build resolves to the repo's Dockerfile with the repo as context. */
function assertBuiltFromRepo(name: string, service: ComposeService): void {
  const build = typeof service.build === "string" ? { context: service.build } : service.build;
  assert.ok(build, `services.${name} has no build`);
  const context = path.resolve(ROOT, build.context ?? ".");
  assert.equal(context, path.resolve(ROOT), `services.${name}: build context`);
  const dockerfile = path.resolve(context, build.dockerfile ?? "Dockerfile");
  assert.equal(dockerfile, path.join(path.resolve(ROOT), "Dockerfile"), `services.${name}: Dockerfile`);
  assert.ok(fs.existsSync(dockerfile));
}

describe("container files", () => {
  const stages = parseDockerfile(read("Dockerfile"));
  const runtime = stages[stages.length - 1];
  const ignored = dockerignore(read(".dockerignore"));
  const compose = parseYaml(read("docker-compose.yml")) as { services?: Record<string, ComposeService> };
  const service = compose.services?.meshstats;
  const dockerHealth = (() => {
    const check = last(runtime, "HEALTHCHECK");
    assert.ok(check, "the runtime stage has no HEALTHCHECK");
    const { opts, rest } = options(check.args);
    const cmd = /^CMD\s+(.*)$/s.exec(rest);
    assert.ok(cmd, `HEALTHCHECK is not a CMD: ${check.args}`);
    return { opts, argv: argv(cmd[1]) };
  })();

  describe("Dockerfile", () => {
    it("is multi-stage on node:20-bookworm-slim", () => {
      assert.ok(stages.length >= 2, `${stages.length} stage(s)`);
      const stageNames = new Set(stages.map((s) => s.name));
      for (const stage of stages) {
        if (!stageNames.has(stage.image)) assert.equal(stage.image, "node:20-bookworm-slim");
      }
    });

    it("builds with npm ci (whose prepare script generates and compiles) and then prunes dev dependencies", () => {
      const froms = runtime.instructions
        .filter((i) => i.keyword === "COPY")
        .map((i) => options(i.args).opts.get("from"))
        .filter((f): f is string => f !== undefined);
      assert.ok(froms.length > 0, "the runtime stage copies nothing from a build stage");
      const build = stages.find((s) => s.name === froms[0]);
      assert.ok(build, `no stage named ${froms[0]}`);
      const run = build.instructions.filter((i) => i.keyword === "RUN").map((i) => i.args).join(" && ");
      const ci = run.search(/\bnpm ci\b/);
      const prune = run.search(/\bnpm prune\b[^&;]*--omit=dev/);
      assert.ok(ci >= 0, "the build stage does not run npm ci");
      assert.ok(prune > ci, "the build stage does not run npm prune --omit=dev after npm ci");
      const scripts = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts;
      assert.match(scripts.prepare, /npm run build/);
      assert.match(scripts.build, /buf generate/);
      assert.match(scripts.build, /\btsc\b/);
    });

    it("runs as the non-root node user, listens on all interfaces and exposes 50051", () => {
      assert.equal(last(runtime, "USER")?.args, "node");
      const exposed = runtime.instructions
        .filter((i) => i.keyword === "EXPOSE")
        .flatMap((i) => i.args.split(/\s+/).map((p) => p.replace(/\/tcp$/, "")));
      assert.ok(exposed.includes(String(PORT)), `EXPOSE ${exposed.join(" ")}`);
      const env = new Map(runtime.instructions.filter((i) => i.keyword === "ENV").flatMap((i) => [...envVars(i.args)]));
      assert.equal(env.get("TESSERACT_GRPC_HOST"), "0.0.0.0");
    });

    it("ENTRYPOINT runs the CLI at the path that tsc compiles cli/cli.ts to, with the server's Node flags (as npm start does)", () => {
      const entrypoint = last(runtime, "ENTRYPOINT");
      assert.ok(entrypoint, "no ENTRYPOINT");
      assert.ok(entrypoint.args.startsWith("["), "ENTRYPOINT must be exec form (signals reach node)");
      assert.deepEqual(argv(entrypoint.args), ["node", ...SERVER_NODE_FLAGS, CLI]);
      // npm start execs node, so that a signal to npm's child reaches the server (lifecycle.test.ts).
      const start = (JSON.parse(read("package.json")) as { scripts: Record<string, string> }).scripts.start.split(" ");
      assert.deepEqual(start.slice(0, 3 + SERVER_NODE_FLAGS.length), ["exec", "node", ...SERVER_NODE_FLAGS, CLI]);
      const tsconfig = JSON.parse(read("tsconfig.json")) as { compilerOptions: { outDir: string; rootDir: string } };
      const source = path.posix.join(
        tsconfig.compilerOptions.rootDir,
        path.posix.relative(tsconfig.compilerOptions.outDir, CLI).replace(/\.js$/, ".ts"),
      );
      assert.equal(source, "cli/cli.ts");
    });

    it("the CLI's compiled file exists after npm run build", () => {
      assert.ok(exists(CLI), `${CLI} is missing: is cli/cli.ts written, and was \`npm run build\` run?`);
    });

    it("package.json's bin tesseract-grpc is the same CLI", () => {
      const { bin } = JSON.parse(read("package.json")) as { bin?: string | Record<string, string> };
      const target = typeof bin === "string" ? bin : bin?.["tesseract-grpc"];
      assert.ok(target, "package.json has no bin tesseract-grpc");
      assert.equal(path.posix.normalize(target), CLI);
    });

    it("CMD serves the bundled meshstats Tesseract on port 50051", () => {
      const cmd = last(runtime, "CMD");
      assert.ok(cmd, "no CMD");
      assert.deepEqual(argv(cmd.args), SERVE);
      assert.ok(exists("server/tesseracts/meshstats.ts"), "meshstats is not a bundled Tesseract");
    });

    it("HEALTHCHECK asks the CLI's health command about the exposed port", () => {
      assert.deepEqual(dockerHealth.argv, HEALTH);
      assertSaneTimings("Dockerfile HEALTHCHECK", {
        interval: dockerHealth.opts.get("interval"),
        timeout: dockerHealth.opts.get("timeout"),
        retries: dockerHealth.opts.has("retries") ? Number(dockerHealth.opts.get("retries")) : undefined,
        startPeriod: dockerHealth.opts.get("start-period"),
      });
    });

    it("every path it COPYs exists in the repo or is made by the build, and keeps its place", () => {
      const workdirs = new Map<string | undefined, string>();
      const buildOutputs = new Set(["dist", "node_modules", "generated"]);
      for (const stage of stages) {
        let workdir = "/";
        for (const instruction of stage.instructions) {
          if (instruction.keyword === "WORKDIR") workdir = path.posix.resolve(workdir, instruction.args);
          if (instruction.keyword !== "COPY" && instruction.keyword !== "ADD") continue;
          const { opts, rest } = options(instruction.args);
          const paths = rest.startsWith("[") ? (JSON.parse(rest) as string[]) : rest.split(/\s+/);
          const dest = paths.pop()!;
          const from = opts.get("from");
          for (const source of paths) {
            if (from === undefined) {
              // From the build context: the repo, filtered by .dockerignore.
              const rel = path.posix.normalize(source).replace(/\/$/, "");
              assert.ok(exists(rel), `COPY ${source}: not in the repo`);
              if (rel !== ".") assert.ok(!ignored(rel), `COPY ${source}: excluded by .dockerignore`);
              continue;
            }
            const fromDir = workdirs.get(from);
            assert.ok(fromDir, `COPY --from=${from}: no earlier stage of that name`);
            const rel = path.posix.relative(fromDir, path.posix.resolve(fromDir, source));
            assert.ok(!rel.startsWith(".."), `COPY --from=${from} ${source}: outside the build's workdir`);
            if (buildOutputs.has(rel)) {
              // Made in the image by npm ci (install + build); here by npm install / npm run build.
              assert.ok(exists(rel), `COPY --from=${from} ${source}: ${rel} was not made by the build here`);
            } else {
              assert.ok(exists(rel), `COPY --from=${from} ${source}: not in the repo`);
              assert.ok(!ignored(rel), `COPY --from=${from} ${source}: never reaches the build (.dockerignore)`);
            }
            // dist/ next to proto/ and node_modules/, as in the repo: proto-dir.ts walks up to proto/.
            const destRel = path.posix.relative(workdir, path.posix.resolve(workdir, dest));
            assert.equal(destRel, rel, `COPY --from=${from} ${source} ${dest}: moved from ${rel} to ${destRel}`);
          }
        }
        if (stage.name) workdirs.set(stage.name, workdir);
      }
    });
  });

  describe(".dockerignore", () => {
    it("keeps local installs and build outputs out of the build context", () => {
      for (const rel of ["node_modules", "dist", "generated", "bench/results", ".git"]) {
        assert.ok(ignored(rel), `${rel} is not ignored`);
        assert.ok(ignored(`${rel}/some/file.js`), `${rel}/some/file.js is not ignored`);
      }
    });

    it("lets every build input through", () => {
      const inputs = ["package.json", "package-lock.json", "tsconfig.json", "buf.yaml", "buf.gen.yaml"];
      for (const rel of inputs) {
        assert.ok(exists(rel), `${rel} is missing`);
        assert.ok(!ignored(rel), `${rel} is ignored`);
      }
      assert.ok(!ignored("proto/tesseract/v1/tensor.proto"), "proto/ is ignored");
    });

    it("lets through every file the build compiles (the image's `npm ci` runs tsc on tsconfig.json's include)", () => {
      // bench/ imports test fixtures: a context without test/ failed to compile (TS2307).
      const config = ts.readConfigFile(path.join(ROOT, "tsconfig.json"), ts.sys.readFile);
      const files = ts.parseJsonConfigFileContent(config.config, ts.sys, ROOT).fileNames.map((f) => path.relative(ROOT, f));
      assert.ok(files.includes("bench/bridge.ts") && files.includes("test/raw-grpc.ts"), files.join(", "));
      // generated/ is made in the image by buf generate.
      const missing = files.filter((f) => !f.startsWith("generated/") && ignored(f));
      assert.deepEqual(missing, [], `compiled but excluded from the build context: ${missing.join(", ")}`);
    });
  });

  describe("docker-compose.yml", () => {
    it("has a meshstats service built from the repo's Dockerfile", () => {
      assert.ok(service, "no services.meshstats");
      assertBuiltFromRepo("meshstats", service);
    });

    it("publishes port 50051", () => {
      const pairs = (service?.ports ?? []).map(portPair);
      assert.ok(
        pairs.some(([host, container]) => host === String(PORT) && container === String(PORT)),
        `ports: ${JSON.stringify(service?.ports)}`,
      );
    });

    it("serves meshstats on 50051 (its command, if set, is the image's CMD)", () => {
      if (service?.command === undefined) return;
      const command = typeof service.command === "string" ? service.command.trim().split(/\s+/) : service.command;
      assert.deepEqual(command, SERVE);
    });

    it("health check runs the CLI's gRPC health command against 50051, as the image does", () => {
      const check = service?.healthcheck;
      assert.ok(check, "no healthcheck");
      assert.notEqual(check.disable, true);
      assert.deepEqual(healthArgv(check.test), HEALTH);
      assert.deepEqual(healthArgv(check.test), dockerHealth.argv);
      assertSaneTimings("compose healthcheck", {
        interval: check.interval,
        timeout: check.timeout,
        retries: check.retries,
        startPeriod: check.start_period,
      });
    });

    it("restarts the service when it fails", () => {
      assert.ok(service?.restart, "no restart policy");
      assert.match(service.restart, /^(always|unless-stopped|on-failure(:\d+)?)$/);
    });
  });

  // docs/distributed.md: one gradient engine (`gradient`) whose evaluations are Apply calls to N
  // replicas (`apply`), reached by the service's DNS name over one round_robin channel.
  describe("docker-compose.yml: the distributed layout", () => {
    const PROFILE = "distributed";
    const services = compose.services ?? {};
    const gradient = services.gradient;
    const apply = services.apply;
    const gradientArgs = commandArgv(gradient?.command);
    const applyArgs = commandArgv(apply?.command);
    /** `serve --help` of the compiled CLI: the flags it really has. */
    const serveFlags = (() => {
      let help = "";
      try {
        help = execFileSync(process.execPath, [path.join(ROOT, CLI), "serve", "--help"], { encoding: "utf8" });
      } catch (e) {
        help = `serve --help failed: ${(e as Error).message}`;
      }
      return { help, flags: new Set(help.match(/--[a-z][a-z-]*/g) ?? []) };
    })();

    it("a gradient and an apply service under the distributed profile; plain `docker compose up` still runs meshstats alone", () => {
      assert.ok(gradient, "no services.gradient");
      assert.ok(apply, "no services.apply");
      assert.ok(gradient.profiles?.includes(PROFILE), `gradient's profiles: ${JSON.stringify(gradient.profiles)}`);
      assert.ok(apply.profiles?.includes(PROFILE), `apply's profiles: ${JSON.stringify(apply.profiles)}`);
      assert.equal(service?.profiles, undefined, "meshstats must stay in the default set (no profiles)");
      const defaults = Object.entries(services).filter(([, s]) => s.profiles === undefined).map(([name]) => name);
      assert.deepEqual(defaults, ["meshstats"]);
    });

    it("both build the repo's image and serve the same Tesseract (the engine encodes the replicas' inputs with its own schema)", () => {
      for (const [name, s] of [["gradient", gradient], ["apply", apply]] as const) {
        assert.ok(s, `no services.${name}`);
        assertBuiltFromRepo(name, s);
        assert.equal(s.image, service?.image, `services.${name}.image: one image for every service`);
      }
      assert.equal(gradientArgs[0], "serve");
      assert.equal(applyArgs[0], "serve");
      assert.equal(gradientArgs[1], applyArgs[1], "gradient and apply serve different Tesseracts");
      assert.equal(gradientArgs[1], "meshstats");
    });

    it("gradient evaluates on the replicas: --replicas dns:///apply:<apply's port>, after apply is healthy", () => {
      assert.equal(flagValue(gradientArgs, "--replicas"), `dns:///apply:${PORT}`);
      const target = /^dns:\/\/\/([^:/]+):(\d+)$/.exec(flagValue(gradientArgs, "--replicas") ?? "");
      assert.ok(target);
      assert.ok(services[target[1]], `--replicas names "${target[1]}", which is not a service`);
      assert.equal(target[2], flagValue(applyArgs, "--port"), "--replicas port is not the port apply serves on");
      const concurrency = flagValue(gradientArgs, "--concurrency");
      if (concurrency !== undefined) assert.ok(Number.isInteger(Number(concurrency)) && Number(concurrency) >= 1, `--concurrency ${concurrency}`);
      const deps = gradient?.depends_on;
      assert.ok(deps, "gradient has no depends_on");
      if (Array.isArray(deps)) assert.ok(deps.includes("apply"), `depends_on: ${JSON.stringify(deps)}`);
      else assert.equal(deps.apply?.condition, "service_healthy", `depends_on: ${JSON.stringify(deps)}`);
    });

    it("gradient is published on a host port of its own; apply is not published at all", () => {
      assert.equal(flagValue(gradientArgs, "--port"), String(PORT));
      const pairs = (gradient?.ports ?? []).map(portPair);
      assert.equal(pairs.length, 1, `gradient ports: ${JSON.stringify(gradient?.ports)}`);
      const [host, container] = pairs[0];
      assert.equal(container, String(PORT));
      assert.match(host, /^\d+$/);
      const taken = Object.entries(services)
        .filter(([name]) => name !== "gradient")
        .flatMap(([, s]) => (s.ports ?? []).map((p) => portPair(p)[0]));
      assert.ok(!taken.includes(host), `host port ${host} is also published by another service`);
      assert.equal(apply?.ports, undefined, "apply must not be published: its replicas share one container port");
    });

    it("apply runs at least 2 replicas, inline (--workers 0), with no fixed container name", () => {
      const replicas = apply?.deploy?.replicas;
      assert.ok(Number.isInteger(replicas) && replicas! >= 2, `deploy.replicas: ${replicas}`);
      assert.equal(apply?.container_name, undefined, "a container_name allows one container only");
      assert.equal(flagValue(applyArgs, "--workers"), "0");
      assert.equal(flagValue(applyArgs, "--port"), String(PORT));
      assert.equal(flagValue(applyArgs, "--replicas"), undefined, "a replica evaluating on replicas");
    });

    it("both have the CLI's gRPC health check against their own port, and a restart policy", () => {
      for (const [name, s] of [["gradient", gradient], ["apply", apply]] as const) {
        const check = s?.healthcheck;
        assert.ok(check, `services.${name} has no healthcheck`);
        assert.notEqual(check.disable, true);
        assert.deepEqual(healthArgv(check.test), HEALTH, `services.${name} health check`);
        assertSaneTimings(`services.${name} healthcheck`, { interval: check.interval, timeout: check.timeout, retries: check.retries, startPeriod: check.start_period });
        assert.match(s?.restart ?? "", /^(always|unless-stopped|on-failure(:\d+)?)$/, `services.${name} restart`);
      }
    });

    it("--replicas, --workers and --concurrency are real flags of `serve` (its --help), and so is every flag the services pass", () => {
      for (const flag of ["--replicas", "--workers", "--concurrency", "--port"]) {
        assert.ok(serveFlags.flags.has(flag), `serve --help lacks ${flag}:\n${serveFlags.help}`);
      }
      for (const [name, s] of Object.entries(services)) {
        const args = commandArgv(s.command);
        if (args[0] !== "serve") continue;
        for (const word of args) {
          const flag = /^(--[a-z][a-z-]*)/.exec(word)?.[1];
          if (flag) assert.ok(serveFlags.flags.has(flag), `services.${name} passes ${flag}, which serve does not have`);
        }
      }
    });
  });
});

// docs/writing-a-tesseract.md, "Containerise your own Tesseract": a Dockerfile that starts from this project's image and
// adds a module and its .proto files (examples/tesseract-ts), and a compose file for it.
describe("container files: your own Tesseract on this project's image (examples/tesseract-ts)", () => {
  const EXAMPLE = "examples/tesseract-ts";
  const stages = parseDockerfile(read(`${EXAMPLE}/Dockerfile`));
  const base = parseDockerfile(read("Dockerfile")).pop()!;
  const baseWorkdir = last(base, "WORKDIR")?.args ?? "/";
  const ignoredHere = dockerignore(read(`${EXAMPLE}/.dockerignore`));
  const compose = parseYaml(read("docker-compose.yml")) as { services: Record<string, ComposeService> };
  const exampleCompose = parseYaml(read(`${EXAMPLE}/docker-compose.yml`)) as { services?: Record<string, ComposeService> };
  const { rootDir, outDir } = (JSON.parse(read(`${EXAMPLE}/tsconfig.json`)) as { compilerOptions: { rootDir: string; outDir: string } }).compilerOptions;
  const copies = stages[0].instructions
    .filter((i) => i.keyword === "COPY")
    .map((i) => {
      const paths = options(i.args).rest.split(/\s+/);
      return { sources: paths.slice(0, -1).map((p) => path.posix.normalize(p).replace(/\/$/, "")), dest: path.posix.normalize(paths[paths.length - 1]).replace(/\/$/, "") };
    });
  /** The example's file that lands at `target` in the image (a COPY of a folder keeps what is below it). */
  const sourceOf = (target: string): string | undefined => {
    for (const { sources, dest } of copies) {
      const rel = path.posix.relative(dest, target);
      if (sources.length === 1 && !rel.startsWith("..")) return path.posix.join(sources[0], rel);
    }
    return undefined;
  };

  it("is one stage FROM the image this project's compose file builds", () => {
    assert.equal(stages.length, 1);
    assert.equal(stages[0].image, compose.services.meshstats.image);
    assert.equal(stages[0].image, "tesseract-grpc:latest");
  });

  it("copies the compiled module (tsc's outDir) and its .proto files below the image's package root, and no package.json", () => {
    assert.deepEqual(copies.map((c) => c.sources).flat(), [outDir, "proto"]);
    for (const { sources, dest } of copies) {
      for (const source of sources) {
        assert.ok(source === outDir || exists(`${EXAMPLE}/${source}`), `COPY ${source}: not in ${EXAMPLE}`);
        assert.ok(!ignoredHere(source), `COPY ${source}: excluded by ${EXAMPLE}/.dockerignore`);
      }
      // The module resolves "tesseract-grpc" by self-reference: /app/package.json must stay its nearest.
      assert.ok(dest.startsWith(`${baseWorkdir}/`), `COPY to ${dest}: not below ${baseWorkdir}`);
      assert.ok(!sources.some((s) => s.endsWith("package.json")), "a package.json would hide the image's own from the module");
    }
    assert.ok(ignoredHere("node_modules"), "node_modules is sent to the build");
  });

  it("keeps the image's entrypoint, health check, user and workdir", () => {
    const overridden = stages[0].instructions.filter((i) => ["ENTRYPOINT", "HEALTHCHECK", "USER", "WORKDIR"].includes(i.keyword));
    assert.deepEqual(overridden, []);
  });

  it("serves the compiled module where the copies put it, and its protoFiles resolve to the copied .proto files", () => {
    const cmd = argv(last(stages[0], "CMD")!.args);
    assert.deepEqual([cmd[0], cmd[2], cmd[3]], ["serve", "--port", "50051"]);
    const moduleInImage = path.posix.resolve(baseWorkdir, cmd[1]);
    const compiled = sourceOf(moduleInImage);
    assert.ok(compiled, `${moduleInImage} is not copied into the image`);
    const source = path.posix.join(rootDir, path.posix.relative(outDir, compiled).replace(/\.js$/, ".ts"));
    assert.ok(exists(`${EXAMPLE}/${source}`), `${compiled} is compiled from ${source}, which does not exist`);
    const protoFiles = [...(/protoFiles:\s*\[([^\]]*)\]/.exec(read(`${EXAMPLE}/${source}`))?.[1] ?? "").matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(protoFiles, ["../proto/springs.proto"]);
    for (const proto of protoFiles) {
      const fromImage = sourceOf(path.posix.resolve(path.posix.dirname(moduleInImage), proto));
      assert.ok(fromImage && exists(`${EXAMPLE}/${fromImage}`), `protoFiles ${proto} is not in the image`);
      // The same path holds from the source folder (serve src/springs.ts).
      assert.ok(exists(path.posix.join(EXAMPLE, path.posix.dirname(source), proto)), `protoFiles ${proto} does not resolve from ${source}`);
    }
  });

  it("its compose file builds it from its own folder, publishes 50051 and checks health as the image does", () => {
    const [name, service] = Object.entries(exampleCompose.services ?? {})[0] ?? [];
    assert.equal(Object.keys(exampleCompose.services ?? {}).length, 1);
    assert.ok(service, "no service");
    const build = typeof service.build === "string" ? { context: service.build } : service.build;
    assert.equal(path.resolve(ROOT, EXAMPLE, build?.context ?? "."), path.resolve(ROOT, EXAMPLE), `services.${name}: build context`);
    assert.equal(build?.dockerfile ?? "Dockerfile", "Dockerfile");
    assert.ok((service.ports ?? []).map(portPair).some(([host, container]) => host === String(PORT) && container === String(PORT)));
    assert.deepEqual(healthArgv(service.healthcheck?.test), HEALTH);
    assertSaneTimings(`${EXAMPLE} healthcheck`, { interval: service.healthcheck?.interval, timeout: service.healthcheck?.timeout, retries: service.healthcheck?.retries, startPeriod: service.healthcheck?.start_period });
    assert.match(service.restart ?? "", /^(always|unless-stopped|on-failure(:\d+)?)$/);
    assert.equal(service.command, undefined, "the Dockerfile's CMD is the command");
  });
});
