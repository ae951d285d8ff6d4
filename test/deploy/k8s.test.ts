/**
 * docker/k8s/: every object validated against the Kubernetes OpenAPI schema (kubernetes-models,
 * a schema-aware validator that installs from npm), plus the cross-references kubectl would only
 * find at apply time: kustomization resources, selectors, Secret/ConfigMap names, probe routes.
 * Nothing is applied: no cluster runs here.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { ROUTE_POLICIES } from "../../src/api/auth/policy.ts";
import { K8S_DIR, type K8sObject, k8sObjects, podContainers } from "./deploy-files.ts";

const require = createRequire(import.meta.url);

/** The kubernetes-models class for an object's apiVersion and kind (core group: "v1/Kind"). */
async function modelOf(o: K8sObject): Promise<new (data: unknown) => { validate(): void }> {
  const module = `kubernetes-models/${o.apiVersion}/${o.kind}`;
  try {
    require.resolve(module);
  } catch {
    throw new Error(`${o.apiVersion} ${o.kind} is not a Kubernetes API kind known to kubernetes-models`);
  }
  return ((await import(module)) as Record<string, new (data: unknown) => { validate(): void }>)[o.kind]!;
}

async function schemaProblem(o: K8sObject): Promise<string | null> {
  try {
    const Model = await modelOf(o);
    new Model(o).validate();
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

const objects = k8sObjects();
const find = (kind: string, name: string) =>
  objects.find((o) => o.value.kind === kind && o.value.metadata.name === name)?.value;

describe("docker/k8s manifests", () => {
  it("every object passes the Kubernetes schema", async () => {
    expect(objects.length).toBeGreaterThanOrEqual(10);
    const problems: string[] = [];
    for (const { source, value } of objects) {
      const problem = await schemaProblem(value);
      if (problem) problems.push(`${source} ${value.kind}/${value.metadata.name}: ${problem}`);
    }
    expect(problems).toEqual([]);
  });

  it("the validator refuses a wrong type, a missing field and an unknown kind", async () => {
    const api = structuredClone(find("Deployment", "incubator-api")!);
    const spec = api.spec as {
      template: { spec: { containers: { ports: { containerPort: unknown }[] }[] } };
    };
    spec.template.spec.containers[0]!.ports[0]!.containerPort = "4000";
    expect(await schemaProblem(api)).toMatch(/containerPort must be integer/);
    const noSelector = structuredClone(find("Deployment", "incubator-api")!);
    delete (noSelector.spec as { selector?: unknown }).selector;
    expect(await schemaProblem(noSelector)).toMatch(/spec must have required property selector/);
    expect(
      await schemaProblem({ apiVersion: "apps/v1", kind: "Deploymnet", metadata: { name: "x" } }),
    ).toMatch(/not a Kubernetes API kind/);
  });

  it("kustomization.yaml lists every manifest except the secrets example, and they exist", () => {
    const kustomization = parse(readFileSync(join(K8S_DIR, "kustomization.yaml"), "utf8")) as {
      resources: string[];
    };
    for (const r of kustomization.resources) expect(existsSync(join(K8S_DIR, r)), r).toBe(true);
    const manifests = readdirSync(K8S_DIR).filter(
      (f) => f.endsWith(".yaml") && f !== "kustomization.yaml" && f !== "secrets.example.yaml",
    );
    expect([...kustomization.resources].sort()).toEqual(manifests.sort());
  });

  it("everything is in the incubator namespace, and Deployments select their own pods", () => {
    for (const { value } of objects) {
      if (value.kind !== "Namespace") expect(value.metadata.namespace, value.metadata.name).toBe("incubator");
      if (value.kind === "Deployment") {
        const spec = value.spec as {
          selector: { matchLabels: Record<string, string> };
          template: { metadata: { labels: Record<string, string> } };
        };
        expect(spec.template.metadata.labels).toMatchObject(spec.selector.matchLabels);
      }
    }
  });

  it("the Service reaches the API pods on a named container port", () => {
    const service = find("Service", "incubator-api")!.spec as {
      selector: Record<string, string>;
      ports: { targetPort: string }[];
    };
    const api = find("Deployment", "incubator-api")!;
    const pod = (api.spec as { template: { metadata: { labels: Record<string, string> } } }).template;
    expect(pod.metadata.labels).toMatchObject(service.selector);
    const ports = podContainers(api)[0]!.ports ?? [];
    for (const p of service.ports) expect(ports.map((x) => x.name)).toContain(p.targetPort);
  });

  it("probes call a public GET route of the API", () => {
    const container = podContainers(find("Deployment", "incubator-api")!)[0]!;
    for (const probe of ["startupProbe", "readinessProbe", "livenessProbe"]) {
      const path = (container[probe] as { httpGet: { path: string } }).httpGet.path;
      expect(ROUTE_POLICIES[`GET ${path}`], `${probe} ${path}`).toEqual({ public: true });
    }
  });

  it("every ConfigMap and Secret a container loads is defined; the GPU worker requests nvidia.com/gpu", () => {
    for (const { source, value } of objects) {
      for (const c of podContainers(value)) {
        for (const from of c.envFrom ?? []) {
          const ref = from.configMapRef
            ? ["ConfigMap", from.configMapRef.name]
            : ["Secret", from.secretRef!.name];
          expect(find(ref[0]!, ref[1]!), `${source}: ${ref.join(" ")}`).toBeDefined();
        }
      }
    }
    const worker = podContainers(find("Deployment", "incubator-worker-gpu")!)[0]!;
    expect(worker.resources?.limits?.["nvidia.com/gpu"]).toBe(1);
    expect(find("Job", "incubator-migrate")).toBeDefined();
  });
});
