/**
 * THE policy table: who may call every root Query, Mutation and Subscription field and every
 * HTTP route. Nothing else decides who may call what: `applyFieldPolicies` wraps each root
 * resolver with its entry and `guardRoutes` does the same for routes. A field or route with no
 * entry here stops the server at start-up (and fails test/api/authorization.test.ts).
 *
 * Roles are ordered: VIEWER < OPERATOR < ADMIN; a role includes the ones below it. Project
 * scoping (a token sees only its projects' rows) is applied to the request's database client
 * (auth/scope.ts), so it holds for nested fields too.
 */
import type { Role } from "../../generated/prisma/client.ts";
import { roleAtLeast } from "../../platform/auth/api-tokens.ts";
import { NO_TOKEN_MESSAGE, type Principal, type Refusal } from "./principal.ts";

const NO_WORKER_TOKEN_MESSAGE =
  "worker calls need a worker token: send `Authorization: Bearer inc_wt_…` (create one with `incubator worker-token create --name <site>`)";

export interface Policy {
  /** Anyone, even without a token (nothing secret). */
  public?: true;
  /** The least role an API token (or local mode) needs; absent: API tokens are refused. */
  role?: Role;
  /** Only tokens that reach every project (and local mode): global things like worker tokens. */
  allProjects?: true;
  /** Worker tokens may call it (their calls act only on jobs they hold: job-lifecycle leases). */
  worker?: true;
}

export interface RoutePolicy extends Policy {
  /**
   * The resource check after the role check: `artifact` — an API token must reach a project the
   * artifact belongs to, a worker token must hold a RUNNING job whose spec references it;
   * `shard` — a worker token must hold a RUNNING job on that dataset and shard.
   */
  resource?: "artifact" | "shard";
}

const PUBLIC: Policy = { public: true };
const VIEWER: Policy = { role: "VIEWER" };
const OPERATOR: Policy = { role: "OPERATOR" };
const ADMIN: Policy = { role: "ADMIN" };
const GLOBAL_ADMIN: Policy = { role: "ADMIN", allProjects: true };
const WORKER: Policy = { worker: true };

export type RootType = "Query" | "Mutation" | "Subscription";

export const FIELD_POLICIES: Record<RootType, Record<string, Policy>> = {
  Query: {
    health: PUBLIC,
    node: VIEWER,
    nodes: VIEWER,
    architectures: VIEWER,
    architecture: VIEWER,
    datasets: VIEWER,
    dataset: VIEWER,
    metaModels: VIEWER,
    metaModel: VIEWER,
    runs: VIEWER,
    run: VIEWER,
    projects: VIEWER,
    currentApiToken: VIEWER,
    apiTokens: ADMIN,
    workerTokens: GLOBAL_ADMIN,
    currentWorkerToken: WORKER,
  },
  Mutation: {
    createArchitecture: OPERATOR,
    registerDataset: OPERATOR,
    startRun: OPERATOR,
    cancelRun: OPERATOR,
    retryModule: OPERATOR,
    registerMetaModel: OPERATOR,
    importMetaModel: OPERATOR,
    createApiToken: ADMIN,
    revokeApiToken: ADMIN,
    createProject: GLOBAL_ADMIN,
    createWorkerToken: GLOBAL_ADMIN,
    revokeWorkerToken: GLOBAL_ADMIN,
    claimJob: WORKER,
    heartbeatJob: WORKER,
    recordJobEvents: WORKER,
    completeJob: WORKER,
    failJob: WORKER,
  },
  Subscription: {
    runEvents: VIEWER,
    serverTime: VIEWER,
  },
};

/**
 * Object types readable from more than one root field (e.g. `node(id:)`), checked on each of
 * their fields as well: worker tokens are not for viewers just because `node` is.
 */
export const TYPE_POLICIES: Record<string, Policy> = {
  WorkerToken: { role: "ADMIN", allProjects: true, worker: true },
};

/** Every HTTP route, as `METHOD path` in Express's syntax. */
export const ROUTE_POLICIES: Record<string, RoutePolicy> = {
  "POST /graphql": PUBLIC, // each field has its own entry above
  "GET /graphql": PUBLIC, // Apollo's GET queries (no mutations); fields checked as above
  "GET /healthz": PUBLIC,
  // The dashboard's page and assets hold no data: it reads everything through /graphql with the
  // token the user enters in its settings (src/api/dashboard.ts).
  "GET /ui": PUBLIC,
  "GET /ui/assets/:file": PUBLIC,
  // Prometheus scrapes with a viewer token (Authorization: Bearer); the figures cover every
  // project (counts by state, worker names), so the token must not be limited to projects.
  "GET /metrics": { role: "VIEWER", allProjects: true },
  "GET /artifacts/:sha256": { role: "VIEWER", worker: true, resource: "artifact" },
  // Workers upload what their jobs produce; operators upload weights to register (registerMetaModel).
  "PUT /artifacts/:sha256": { role: "OPERATOR", worker: true },
  "GET /datasets/:dataset/shards/:count/:index": { worker: true, resource: "shard" },
};

const ROLE_NAMES: Record<Role, string> = { VIEWER: "viewer", OPERATOR: "operator", ADMIN: "admin" };

/** null: allowed; else why not (UNAUTHENTICATED: no or a bad token; FORBIDDEN: not this one). */
export function decide(policy: Policy, principal: Principal, what: string): Refusal | null {
  if (principal.kind === "none" && principal.refusal) return principal.refusal;
  if (policy.public) return null;
  if (principal.kind === "none") {
    return {
      code: "UNAUTHENTICATED",
      message: policy.role ? NO_TOKEN_MESSAGE : NO_WORKER_TOKEN_MESSAGE,
    };
  }
  if (principal.kind === "worker") {
    return policy.worker
      ? null
      : { code: "FORBIDDEN", message: `${what} is not for worker tokens; use an API token` };
  }
  if (!policy.role) {
    return { code: "FORBIDDEN", message: `${what} is for workers: it needs a worker token (inc_wt_…)` };
  }
  if (principal.kind === "local") return null;
  const { role, projects, name } = principal.token;
  if (!roleAtLeast(role, policy.role)) {
    return {
      code: "FORBIDDEN",
      message: `${what} needs the ${ROLE_NAMES[policy.role]} role; token "${name}" is ${ROLE_NAMES[role]}`,
    };
  }
  if (policy.allProjects && projects.length > 0) {
    return {
      code: "FORBIDDEN",
      message: `${what} needs an admin token that is not limited to projects; token "${name}" is limited to ${projects.map((p) => p.name).join(", ")}`,
    };
  }
  return null;
}
