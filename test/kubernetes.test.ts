/**
 * Static checks of deploy/kubernetes (no cluster, kubectl or kustomize here): each kustomization is
 * rendered by the small subset of `kustomize build` below, every object is validated against the
 * Kubernetes API schemas (kubernetes-models), and the facts the layout relies on are asserted: gRPC
 * probes on the served port, the engine's --replicas naming the headless Service, selectors, the
 * container arguments parsed by the CLI's own commander definition, images, resources, non-root.
 */
import { strict as assert } from "node:assert";
import * as fs from "node:fs";
import * as path from "node:path";
import { parseAllDocuments, parse as parseYaml } from "yaml";
import { Deployment } from "kubernetes-models/apps/v1/Deployment";
import { ConfigMap } from "kubernetes-models/v1/ConfigMap";
import { Namespace } from "kubernetes-models/v1/Namespace";
import { Service } from "kubernetes-models/v1/Service";
import { PodDisruptionBudget } from "kubernetes-models/policy/v1/PodDisruptionBudget";
import type { IContainer } from "kubernetes-models/v1/Container";
import type { IPodSpec } from "kubernetes-models/v1/PodSpec";
import { buildProgram } from "../cli/cli";
import { BUNDLED } from "../server/find-tesseract";

const ROOT = path.join(__dirname, "../..");
const DEPLOY = "deploy/kubernetes";
const OVERLAY = `${DEPLOY}/overlays/meshstats`;
const BASES = { engine: `${DEPLOY}/engine`, apply: `${DEPLOY}/apply` };

// ---- a subset of `kustomize build` ----

interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
type Workload = K8sObject & { spec: { replicas?: number; selector: { matchLabels: Record<string, string> }; template: { metadata: { labels: Record<string, string>; annotations?: Record<string, string> }; spec: IPodSpec } } };

/**
 * The kustomization fields the renderer implements; any other field fails the build rather than being
 * ignored. Where it differs from kustomize: configMapGenerator keeps the plain name (kustomize appends
 * a hash of the contents and rewrites every reference to it, which changes no check below).
 */
const KUSTOMIZATION_FIELDS = new Set(["apiVersion", "kind", "resources", "namespace", "configMapGenerator", "images", "replicas"]);
const CLUSTER_SCOPED = new Set(["Namespace"]);

interface Kustomization {
  apiVersion?: string;
  kind?: string;
  resources?: string[];
  namespace?: string;
  configMapGenerator?: { name: string; literals?: string[] }[];
  images?: { name: string; newName?: string; newTag?: string; digest?: string }[];
  replicas?: { name: string; count: number }[];
}

/** The objects `kustomize build DIR` would print, and every file it read. */
function build(dir: string): { objects: K8sObject[]; files: string[] } {
  const file = path.posix.join(dir, "kustomization.yaml");
  assert.ok(fs.existsSync(path.join(ROOT, file)), `${file} does not exist`);
  const k = parseYaml(fs.readFileSync(path.join(ROOT, file), "utf8")) as Kustomization;
  assert.equal(k.apiVersion, "kustomize.config.k8s.io/v1beta1", `${file}: apiVersion`);
  assert.equal(k.kind, "Kustomization", `${file}: kind`);
  for (const field of Object.keys(k)) assert.ok(KUSTOMIZATION_FIELDS.has(field), `${file}: ${field} is not implemented by this test's renderer`);
  const objects: K8sObject[] = [];
  const files = [file];
  for (const resource of k.resources ?? []) {
    const rel = path.posix.join(dir, resource);
    const full = path.join(ROOT, rel);
    assert.ok(fs.existsSync(full), `${file}: resource ${resource} does not exist`);
    if (fs.statSync(full).isDirectory()) {
      const sub = build(rel);
      objects.push(...sub.objects);
      files.push(...sub.files);
      continue;
    }
    files.push(rel);
    for (const doc of parseAllDocuments(fs.readFileSync(full, "utf8"))) {
      assert.equal(doc.errors.length, 0, `${rel}: ${doc.errors.join("; ")}`);
      const object = doc.toJS() as K8sObject | null;
      if (object !== null) objects.push(object);
    }
  }
  for (const generator of k.configMapGenerator ?? []) {
    for (const field of Object.keys(generator)) assert.ok(["name", "literals"].includes(field), `${file}: configMapGenerator ${field} is not implemented`);
    const data = Object.fromEntries((generator.literals ?? []).map((literal) => {
      const eq = literal.indexOf("=");
      assert.ok(eq > 0, `${file}: literal ${literal} is not KEY=VALUE`);
      return [literal.slice(0, eq), literal.slice(eq + 1)];
    }));
    objects.push({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: generator.name }, data });
  }
  if (k.namespace) {
    // As kustomize's namespace transformer does, a Namespace object is renamed to it.
    for (const object of objects) {
      if (object.kind === "Namespace") object.metadata.name = k.namespace;
      else if (!CLUSTER_SCOPED.has(object.kind)) object.metadata.namespace = k.namespace;
    }
  }
  for (const image of k.images ?? []) {
    const matched = objects.flatMap(containersOf).filter((c) => parseImage(c.image!).name === image.name);
    assert.ok(matched.length > 0, `${file}: images: no container uses ${image.name}`);
    for (const container of matched) {
      const old = parseImage(container.image!);
      const name = image.newName ?? old.name;
      const tag = image.newTag ?? old.tag;
      const digest = image.digest ?? old.digest;
      container.image = `${name}${tag ? `:${tag}` : ""}${digest ? `@${digest}` : ""}`;
    }
  }
  for (const { name, count } of k.replicas ?? []) {
    const matched = objects.filter((o) => ["Deployment", "StatefulSet", "ReplicaSet"].includes(o.kind) && o.metadata.name === name);
    assert.ok(matched.length > 0, `${file}: replicas: no workload named ${name}`);
    for (const object of matched) (object as Workload).spec.replicas = count;
  }
  const ids = objects.map((o) => `${o.kind}/${o.metadata.namespace ?? ""}/${o.metadata.name}`);
  assert.equal(new Set(ids).size, ids.length, `${file}: an object is defined twice: ${ids.join(", ")}`);
  return { objects, files };
}

function containersOf(object: K8sObject): IContainer[] {
  const pod = (object as Partial<Workload>).spec?.template?.spec;
  return pod ? [...(pod.initContainers ?? []), ...pod.containers] : [];
}

/** `registry:5000/name:tag@sha256:...` to its parts (a colon before the last slash is a registry port). */
function parseImage(image: string): { name: string; tag?: string; digest?: string } {
  const [rest, digest] = image.split("@");
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) return { name: rest.slice(0, colon), tag: rest.slice(colon + 1), digest };
  return { name: rest, digest };
}

// ---- schema validation ----

const MODELS: Record<string, { prototype: { validate(): void } }> = {
  "apps/v1 Deployment": Deployment,
  "v1 Service": Service,
  "v1 ConfigMap": ConfigMap,
  "v1 Namespace": Namespace,
  "policy/v1 PodDisruptionBudget": PodDisruptionBudget,
};

/**
 * Validates `object` against its kind's schema, and also refuses fields the schema does not know
 * (as `kubectl apply --validate=strict` does; the schemas alone accept them): kubernetes-models'
 * validators read every property they know, so a property never read is unknown to the API.
 */
function validate(object: K8sObject, where: string): void {
  const model = MODELS[`${object.apiVersion} ${object.kind}`];
  assert.ok(model, `${where}: ${object.apiVersion} ${object.kind} has no model in this test`);
  const read = new Map<object, Set<string>>();
  const track = (value: unknown): unknown => {
    if (value === null || typeof value !== "object") return value;
    const keys = new Set<string>();
    read.set(value, keys);
    return new Proxy(value, {
      get(target, key, receiver) {
        const v = Reflect.get(target, key, receiver) as unknown;
        if (typeof key !== "string" || !Object.hasOwn(target, key)) return v;
        keys.add(key);
        return track(v);
      },
    });
  };
  // The proxies record reads on the clone's own objects, which the walk below visits.
  const clone = structuredClone(object);
  try {
    model.prototype.validate.call(track(clone));
  } catch (e) {
    assert.fail(`${where}: ${object.kind} ${object.metadata?.name}: ${(e as Error).message}`);
  }
  const unknown: string[] = [];
  const walk = (value: unknown, at: string): void => {
    if (value === null || typeof value !== "object") return;
    const keys = read.get(value);
    for (const [key, child] of Object.entries(value)) {
      const here = Array.isArray(value) ? `${at}[${key}]` : `${at}.${key}`;
      if (!Array.isArray(value) && !keys?.has(key)) unknown.push(here);
      else walk(child, here);
    }
  };
  walk(clone, "");
  assert.deepEqual(unknown, [], `${where}: ${object.kind} ${object.metadata.name}: fields unknown to the API`);
}

// ---- the container arguments, as the CLI parses them ----

interface ServeArgs {
  tesseract: string;
  opts: { host: string; port: number; workers: number | "auto"; replicas?: string; concurrency: number; maxMessageBytes: number; graceMs: number; metricsPort?: number; maxConnectionAgeMs: number };
}

/** Parses `args` with the CLI's own `serve` definition (unknown flags and bad values throw), running nothing. */
function parseServe(args: string[]): ServeArgs {
  assert.equal(args[0], "serve", `not a serve command: ${args.join(" ")}`);
  const program = buildProgram();
  const serve = program.commands.find((c) => c.name() === "serve")!;
  let parsed: ServeArgs | undefined;
  for (const command of [program, serve]) command.exitOverride().configureOutput({ writeErr: () => {}, writeOut: () => {} });
  serve.action((tesseract: string, opts: ServeArgs["opts"]) => void (parsed = { tesseract, opts }));
  // As in the container: no TESSERACT_GRPC_* variables of this process's own.
  const saved = Object.entries(process.env).filter(([key]) => key.startsWith("TESSERACT_GRPC_"));
  for (const [key] of saved) delete process.env[key];
  try {
    program.parse(args, { from: "user" });
  } catch (e) {
    assert.fail(`serve ${args.slice(1).join(" ")}: ${(e as Error).message}`);
  } finally {
    for (const [key, value] of saved) process.env[key] = value;
  }
  assert.ok(parsed, `serve ${args.slice(1).join(" ")} did not parse`);
  return parsed;
}

/** Kubernetes' `$(VAR)` expansion of args, from the container's env (values and ConfigMap keys). */
function expandArgs(container: IContainer, objects: K8sObject[], namespace?: string): string[] {
  const env = new Map<string, string>();
  for (const variable of container.env ?? []) {
    const ref = variable.valueFrom?.configMapKeyRef;
    if (variable.value !== undefined) env.set(variable.name, variable.value);
    else if (ref) {
      const map = objects.find((o) => o.kind === "ConfigMap" && o.metadata.name === ref.name && o.metadata.namespace === namespace);
      assert.ok(map, `env ${variable.name}: no ConfigMap ${ref.name} in namespace ${namespace}`);
      assert.ok(map.data && ref.key in map.data, `env ${variable.name}: ConfigMap ${ref.name} has no key ${ref.key}`);
      env.set(variable.name, map.data[ref.key]);
    }
  }
  return (container.args ?? []).map((arg) =>
    arg.replace(/\$\$|\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (whole, name?: string) => (name === undefined ? "$" : env.get(name) ?? whole)),
  );
}

const matches = (selector: Record<string, string>, labels: Record<string, string> = {}): boolean =>
  Object.entries(selector).every(([key, value]) => labels[key] === value);

/** CPU quantity ("500m", "2") in cores. */
function cores(quantity: string | number): number {
  const text = String(quantity);
  return text.endsWith("m") ? Number(text.slice(0, -1)) / 1000 : Number(text);
}

/** Memory quantity ("256Mi", "1Gi", "1G", bytes) in bytes. */
function bytes(quantity: string | number): number {
  const m = /^(\d+(?:\.\d+)?)([KMGT]i?)?$/.exec(String(quantity));
  assert.ok(m, `not a memory quantity: ${quantity}`);
  const units: Record<string, number> = { K: 1e3, M: 1e6, G: 1e9, T: 1e12, Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40 };
  return Number(m[1]) * (m[2] ? units[m[2]] : 1);
}

describe("deploy/kubernetes (static: kustomize subset + Kubernetes API schemas)", () => {
  // Built before the tests, so that a broken kustomization fails this suite's hook and not the whole run.
  let overlay!: { objects: K8sObject[]; files: string[] };
  let objects!: K8sObject[];
  let engine!: Workload;
  let apply!: Workload;
  let workloads!: Workload[];
  const of = (kind: string) => objects.filter((o) => o.kind === kind);
  const named = <T extends K8sObject = K8sObject>(kind: string, name: string): T => {
    const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
    assert.ok(found, `no ${kind} ${name} in the overlay's output`);
    return found as T;
  };
  const container = (w: Workload) => {
    assert.equal(w.spec.template.spec.containers.length, 1, `${w.metadata.name}: one container`);
    return w.spec.template.spec.containers[0];
  };
  const serveOf = (w: Workload) => parseServe(expandArgs(container(w), objects, w.metadata.namespace));
  // Parsed in the tests that use them, so that a bad flag fails those tests and not the whole file.
  let parsedEngine: ServeArgs | undefined;
  let parsedApply: ServeArgs | undefined;
  const engineServe = () => (parsedEngine ??= serveOf(engine));
  const applyServe = () => (parsedApply ??= serveOf(apply));
  before(() => {
    overlay = build(OVERLAY);
    objects = overlay.objects;
    engine = named<Workload>("Deployment", "tesseract-gradient");
    apply = named<Workload>("Deployment", "tesseract-apply");
    workloads = [engine, apply];
  });

  it("every kustomization builds, and every file it names exists and is read", () => {
    for (const dir of [...Object.values(BASES), OVERLAY]) {
      const { files } = build(dir);
      for (const file of files) assert.ok(fs.existsSync(path.join(ROOT, file)), `${file} is missing`);
    }
    // No manifest lies outside a build: each YAML file under deploy/kubernetes is a kustomization or one of its resources.
    const all = fs.readdirSync(path.join(ROOT, DEPLOY), { recursive: true, encoding: "utf8" })
      .filter((f) => /\.ya?ml$/.test(f))
      .map((f) => path.posix.join(DEPLOY, f.split(path.sep).join("/")));
    assert.deepEqual(all.filter((f) => !overlay.files.includes(f)).sort(), [], "YAML files no kustomization uses");
  });

  it("every object of every build validates against the Kubernetes API schemas, with no unknown fields", () => {
    for (const dir of [...Object.values(BASES), OVERLAY]) {
      for (const object of build(dir).objects) validate(object, dir);
    }
  });

  it("the meshstats overlay renders the whole layout into its own namespace", () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.name}`).sort();
    assert.deepEqual(kinds, [
      "ConfigMap/tesseract-grpc",
      "Deployment/tesseract-apply",
      "Deployment/tesseract-gradient",
      "Namespace/tesseract-meshstats",
      "PodDisruptionBudget/tesseract-apply",
      "PodDisruptionBudget/tesseract-gradient",
      "Service/tesseract-apply",
      "Service/tesseract-gradient",
    ]);
    for (const object of objects) {
      if (object.kind === "Namespace") continue;
      assert.equal(object.metadata.namespace, "tesseract-meshstats", `${object.kind}/${object.metadata.name}: namespace`);
    }
  });

  it("selectors match the pod labels; each Service and PDB selects exactly one Deployment's pods", () => {
    for (const w of workloads) {
      assert.ok(Object.keys(w.spec.selector.matchLabels).length > 0, `${w.metadata.name}: empty selector`);
      assert.ok(matches(w.spec.selector.matchLabels, w.spec.template.metadata.labels), `${w.metadata.name}: selector does not match its pod labels`);
    }
    const selected = (selector: Record<string, string>) => workloads.filter((w) => matches(selector, w.spec.template.metadata.labels)).map((w) => w.metadata.name);
    for (const service of of("Service")) {
      const selector = (service.spec as { selector: Record<string, string> }).selector;
      assert.deepEqual(selected(selector), [service.metadata.name], `Service ${service.metadata.name} selects the wrong pods`);
    }
    for (const pdb of of("PodDisruptionBudget")) {
      const selector = (pdb.spec as { selector: { matchLabels: Record<string, string> } }).selector.matchLabels;
      assert.deepEqual(selected(selector), [pdb.metadata.name], `PDB ${pdb.metadata.name} selects the wrong pods`);
    }
    const enginePdb = named("PodDisruptionBudget", "tesseract-gradient").spec as { minAvailable?: number };
    assert.ok(enginePdb.minAvailable !== undefined && enginePdb.minAvailable >= 1 && enginePdb.minAvailable < engine.spec.replicas!, "the engine's PDB must keep one pod and allow a drain");
  });

  it("the replicas sit behind a headless Service on the port they serve", () => {
    const spec = named("Service", "tesseract-apply").spec as { clusterIP?: string; ports: { port: number; targetPort: string | number }[] };
    assert.equal(spec.clusterIP, "None", "tesseract-apply must be headless: one DNS record per ready pod");
    assert.equal(spec.ports.length, 1);
    const port = container(apply).ports!.find((p) => p.name === spec.ports[0].targetPort || p.containerPort === spec.ports[0].targetPort);
    assert.ok(port, `tesseract-apply targets port ${spec.ports[0].targetPort}, which the pods do not declare`);
    assert.equal(port.containerPort, applyServe().opts.port);
    assert.equal(spec.ports[0].port, applyServe().opts.port, "a headless Service maps no ports: its port must be the pods' own");
  });

  it("the engine's --replicas is dns:///<the headless Service>:<the port the replicas serve>", () => {
    const target = /^dns:\/\/\/([a-z0-9-]+):(\d+)$/.exec(engineServe().opts.replicas ?? "");
    assert.ok(target, `--replicas ${engineServe().opts.replicas}: expected dns:///NAME:PORT`);
    const service = named("Service", target[1]);
    assert.equal((service.spec as { clusterIP?: string }).clusterIP, "None", `--replicas names ${target[1]}, which is not headless`);
    assert.deepEqual((service.spec as { selector: Record<string, string> }).selector, apply.spec.selector.matchLabels);
    assert.equal(Number(target[2]), applyServe().opts.port);
    assert.ok(engineServe().opts.concurrency >= 1);
    assert.equal(applyServe().opts.replicas, undefined, "a replica evaluating on replicas");
    const engineService = named("Service", "tesseract-gradient").spec as { clusterIP?: string; ports: { port: number }[] };
    assert.notEqual(engineService.clusterIP, "None", "clients call the engine through a ClusterIP Service");
    assert.equal(engineService.ports[0].port, engineServe().opts.port);
  });

  it("container arguments are serve's real flags, with valid values, serving one bundled Tesseract on all interfaces", () => {
    for (const [w, serve] of [[engine, engineServe()], [apply, applyServe()]] as const) {
      assert.equal(serve.opts.host, "0.0.0.0", `${w.metadata.name}: --host`);
      assert.ok(Object.hasOwn(BUNDLED, serve.tesseract), `${w.metadata.name} serves ${serve.tesseract}, not a bundled Tesseract`);
    }
    assert.equal(engineServe().tesseract, "meshstats");
    assert.equal(applyServe().tesseract, engineServe().tesseract, "engine and replicas must serve the same Tesseract");
    assert.equal(applyServe().opts.maxMessageBytes, engineServe().opts.maxMessageBytes, "--max-message-bytes differs between engine and replicas");
    assert.equal(typeof applyServe().opts.workers, "number", "replicas run a fixed worker pool (--workers N)");
    assert.ok((applyServe().opts.workers as number) <= cores(container(apply).resources!.limits!.cpu!), "--workers above the replicas' CPU limit");
    // The DNS caveat's fix: replicas close engine connections now and then, so a scale-up is seen.
    assert.ok(applyServe().opts.maxConnectionAgeMs > 0, "replicas need --max-connection-age-ms for the engine to see new ones");
  });

  it("readiness and liveness probes use the gRPC health protocol on the served port", () => {
    for (const w of workloads) {
      const c = container(w);
      const port = serveOf(w).opts.port;
      assert.ok(c.ports?.some((p) => p.name === "grpc" && p.containerPort === port), `${w.metadata.name}: no port grpc ${port}`);
      for (const probe of [c.readinessProbe, c.livenessProbe]) {
        assert.ok(probe?.grpc, `${w.metadata.name}: a probe is not a grpc probe`);
        assert.equal(probe.grpc.port, port, `${w.metadata.name}: probe port`);
        assert.ok(!probe.grpc.service, `${w.metadata.name}: the health service registers "" (the whole server)`);
        assert.ok((probe.timeoutSeconds ?? 1) <= (probe.periodSeconds ?? 10));
      }
    }
  });

  it("metrics: --metrics-port is a declared container port and the scrape annotation's", () => {
    for (const w of workloads) {
      const port = serveOf(w).opts.metricsPort;
      assert.ok(port !== undefined && port > 0, `${w.metadata.name}: no --metrics-port`);
      assert.ok(container(w).ports?.some((p) => p.name === "metrics" && p.containerPort === port), `${w.metadata.name}: metrics port not declared`);
      assert.equal(w.spec.template.metadata.annotations?.["prometheus.io/port"], String(port));
    }
  });

  it("shutdown: terminationGracePeriodSeconds covers the preStop pause and --grace-ms", () => {
    for (const w of workloads) {
      const c = container(w);
      const sleep = c.lifecycle?.preStop?.exec?.command;
      const pause = sleep?.[0] === "sleep" ? Number(sleep[1]) : 0;
      const grace = w.spec.template.spec.terminationGracePeriodSeconds ?? 30;
      assert.ok(grace > pause + serveOf(w).opts.graceMs / 1000, `${w.metadata.name}: ${grace} s <= ${pause} s + --grace-ms ${serveOf(w).opts.graceMs}`);
    }
  });

  it("resources: requests and limits of CPU and memory, requests within limits", () => {
    for (const w of workloads) {
      const { requests, limits } = container(w).resources ?? {};
      for (const key of ["cpu", "memory"] as const) {
        assert.ok(requests?.[key] !== undefined && limits?.[key] !== undefined, `${w.metadata.name}: ${key} request or limit missing`);
      }
      assert.ok(cores(requests!.cpu!) <= cores(limits!.cpu!), `${w.metadata.name}: cpu request above limit`);
      assert.ok(bytes(requests!.memory!) <= bytes(limits!.memory!), `${w.metadata.name}: memory request above limit`);
    }
  });

  it("pods run as the image's non-root node user (uid 1000) under the restricted Pod Security Standard", () => {
    assert.match(fs.readFileSync(path.join(ROOT, "Dockerfile"), "utf8"), /^USER node$/m);
    const ns = named("Namespace", "tesseract-meshstats");
    assert.equal(ns.metadata.labels?.["pod-security.kubernetes.io/enforce"], "restricted");
    for (const w of workloads) {
      const pod = w.spec.template.spec;
      assert.equal(pod.securityContext?.runAsNonRoot, true);
      assert.equal(pod.securityContext?.runAsUser, 1000, "node's uid in the node images");
      assert.equal(pod.securityContext?.seccompProfile?.type, "RuntimeDefault");
      const sc = container(w).securityContext;
      assert.equal(sc?.allowPrivilegeEscalation, false);
      assert.equal(sc?.readOnlyRootFilesystem, true);
      assert.deepEqual(sc?.capabilities?.drop, ["ALL"]);
    }
  });

  it("images: the bases name the image, the overlay pins it (by kustomize images:) to package.json's version", () => {
    const version = (JSON.parse(fs.readFileSync(path.join(ROOT, "package.json"), "utf8")) as { version: string }).version;
    for (const dir of Object.values(BASES)) {
      for (const c of build(dir).objects.flatMap(containersOf)) assert.equal(c.image, "tesseract-grpc", `${dir}: image`);
    }
    const images = new Set(objects.flatMap(containersOf).map((c) => c.image));
    assert.deepEqual([...images], [`tesseract-grpc:${version}`], "one image, tagged with the package version (never latest)");
    const k = parseYaml(fs.readFileSync(path.join(ROOT, OVERLAY, "kustomization.yaml"), "utf8")) as Kustomization;
    assert.deepEqual(k.images?.map((i) => i.name), ["tesseract-grpc"]);
  });

  it("docs/kubernetes.md is linked from the README and docs/distributed.md, and applies this overlay", () => {
    const doc = fs.readFileSync(path.join(ROOT, "docs/kubernetes.md"), "utf8");
    assert.ok(doc.includes(`kubectl apply -k ${OVERLAY}`));
    assert.match(fs.readFileSync(path.join(ROOT, "README.md"), "utf8"), /\(docs\/kubernetes\.md\)/);
    assert.match(fs.readFileSync(path.join(ROOT, "docs/distributed.md"), "utf8"), /\(kubernetes\.md\)/);
  });
});
