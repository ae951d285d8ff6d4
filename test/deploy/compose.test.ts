/**
 * docker/compose.yaml: valid for Docker Compose (`docker-compose config`, Debian's 1.29 — the CI
 * installs it; skipped with a message where the binary is missing), and shaped as docs/deploy.md
 * says. No Docker engine runs here: nothing is built or started.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { COMPOSE_FILE, composeServices, isIncubatorImage } from "./deploy-files.ts";

const hasCompose = spawnSync("docker-compose", ["version"], { encoding: "utf8" }).status === 0;
if (!hasCompose)
  console.warn(
    "docker-compose not found: skipping `docker-compose config` (apt-get install -y docker-compose; .ci/run does)",
  );

const compose = (...args: string[]) =>
  spawnSync("docker-compose", ["-f", COMPOSE_FILE, ...args], {
    encoding: "utf8",
    env: { ...process.env, INCUBATOR_WORKER_TOKEN: "inc_wt_example" },
  });

describe("docker/compose.yaml", () => {
  it.skipIf(!hasCompose)("docker-compose config accepts it with every profile", () => {
    const result = compose("--profile", "cpu-workers", "--profile", "gpu", "config", "--quiet");
    expect(result.stderr).toBe("");
    expect(result.status).toBe(0);
    const services = compose("--profile", "cpu-workers", "--profile", "gpu", "config", "--services");
    expect(services.stdout.trim().split("\n").sort()).toEqual(
      ["api", "objects", "objects-init", "postgres", "worker", "worker-gpu"].sort(),
    );
  });

  it.skipIf(!hasCompose)("docker-compose config refuses a broken file (the check can fail)", () => {
    const result = spawnSync("docker-compose", ["-f", "-", "config", "--quiet"], {
      input:
        "services:\n  api:\n    image: incubator\n    depends_on:\n      db:\n        condition: service_healthy\n",
      encoding: "utf8",
    });
    expect(result.status).not.toBe(0);
  });

  const services = composeServices();

  it("PostgreSQL has a health check and a volume; the API waits for it and for the bucket", () => {
    const pg = services.postgres!;
    expect(pg.healthcheck).toBeDefined();
    expect(pg.volumes).toEqual([expect.stringMatching(/^postgres-data:/)]);
    expect(services.api!.depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      "objects-init": { condition: "service_completed_successfully" },
    });
  });

  it("workers are scalable (no container name, no host port) and GPU workers reserve an NVIDIA GPU", () => {
    for (const name of ["worker", "worker-gpu"]) {
      const w = services[name]!;
      expect(isIncubatorImage(w.image)).toBe(true);
      expect(w.container_name).toBeUndefined();
      expect(w.ports).toBeUndefined();
      expect(w.command?.slice(0, 3)).toEqual(["worker", "--api", "http://api:4000/graphql"]);
    }
    expect(services["worker-gpu"]!.deploy).toEqual({
      resources: { reservations: { devices: [{ driver: "nvidia", count: 1, capabilities: ["gpu"] }] } },
    });
  });
});
