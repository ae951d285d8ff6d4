/**
 * What one client request may cost and the bounds on every number a client sends — in one
 * place. The API server reads these (src/api/*); the ones an operator may want to change come
 * from the environment through platform/config/config.ts (`limitsFromConfig`). README
 * "Limits" and the header of schema.graphql list them; keep the three in step.
 *
 * A refused GraphQL operation carries `extensions.code: "GRAPHQL_VALIDATION_FAILED"` and
 * `extensions.limit` (the name below, e.g. "cost"); a number out of bounds in a mutation input is
 * a userError with code INVALID and the field's path; elsewhere BAD_USER_INPUT with `argument`.
 */

/** Limits on a GraphQL operation, HTTP request or WebSocket connection (env-configurable). */
export interface RequestLimits {
  /** Deepest selection nesting (introspection exempt). */
  maxDepth: number;
  /** Estimated rows and fields an operation may touch (src/api/cost-limit.ts). */
  maxCost: number;
  /** Aliased fields in one operation (fragments followed). */
  maxAliases: number;
  /** Directives in one operation (fragments followed). */
  maxDirectives: number;
  /** Lexical tokens in one document (breadth: fields, arguments, operations). */
  maxTokens: number;
  /** Bytes of a JSON body on POST /graphql. */
  maxBodyBytes: number;
  /** Bytes of one WebSocket message (the ws server's `maxPayload`). */
  maxWsPayloadBytes: number;
  /** Subscriptions running at once on one WebSocket connection. */
  maxSubscriptionsPerConnection: number;
  /** Bytes of one artifact upload (PUT /artifacts/<sha256>). */
  maxUploadBytes: number;
  /** Node http server: time to receive a request's headers. */
  headersTimeoutMs: number;
  /** Node http server: time to receive a whole request (uploads included). */
  requestTimeoutMs: number;
  /** Node http server: idle keep-alive connection lifetime. */
  keepAliveTimeoutMs: number;
  /** Total parameters of an architecture. */
  maxParameters: number;
  /** Per caller (src/api/rate-limit.ts): requests (HTTP) and operations (WebSocket) per second, sustained. */
  rateLimitPerSecond: number;
  /** Per caller: the bucket's size, the burst allowed above the sustained rate. */
  rateLimitBurst: number;
  /** Per caller: WebSocket connections open at once. */
  maxWsConnectionsPerToken: number;
  /**
   * Run events one subscription may have waiting for a slow connection; past it the subscription
   * ends with RESUBSCRIBE_WITH_AFTER_SEQ (at least 1,000: one read's page).
   */
  maxQueuedEventsPerSubscription: number;
}

export const DEFAULT_REQUEST_LIMITS: RequestLimits = {
  maxDepth: 12,
  maxCost: 50_000,
  maxAliases: 30,
  maxDirectives: 50,
  maxTokens: 5_000,
  maxBodyBytes: 1024 * 1024,
  maxWsPayloadBytes: 1024 * 1024,
  maxSubscriptionsPerConnection: 20,
  maxUploadBytes: 8 * 1024 ** 3,
  headersTimeoutMs: 30_000,
  requestTimeoutMs: 300_000,
  keepAliveTimeoutMs: 5_000,
  maxParameters: 2_000_000_000,
  rateLimitPerSecond: 20,
  rateLimitBurst: 100,
  maxWsConnectionsPerToken: 50,
  maxQueuedEventsPerSubscription: 2_000,
};

/**
 * Bytes of artifacts a project may hold, each content hash counted once (checkpoints, weights,
 * models, uploads): the default for projects without their own quota (`incubator project quota`),
 * env ARTIFACT_QUOTA_BYTES. Refusals: src/platform/artifacts/quota.ts.
 */
export const DEFAULT_ARTIFACT_QUOTA_BYTES = 100 * 1024 ** 3;

/**
 * Cost model constants (src/api/cost-limit.ts): a connection without `first`/`last` counts its
 * default page; a list field without paging arguments (a run's modules, a module's jobs) is
 * counted as this many items.
 */
export const COST_DEFAULT_PAGE = 20;
export const COST_LIST_ESTIMATE = 5;
/** Page size the cost counts for `first: $variable` (the connection maximum). */
export const COST_VARIABLE_PAGE = 100;

/** Architecture sizes (createArchitecture; the same caps for imported and registered meta models). */
export const ARCHITECTURE_LIMITS = {
  imageSize: 4096,
  channels: 16,
  patchSize: 1024,
  width: 16_384,
  depth: 256,
  heads: 256,
  mlpRatio: 16,
  numClasses: 100_000,
  modules: 256,
  /** Patches per image ((imageSize / patchSize)²): attention is quadratic in it. */
  sequenceLength: 16_384,
} as const;

/** Numbers in a startRun recipe override and the run itself. */
export const RUN_LIMITS = {
  batchSize: 65_536,
  /** Optimizer steps per phase. */
  steps: 10_000_000,
  baseLr: 10,
  minLr: 10,
  weightDecay: 10,
  mixup: 100,
  cutmix: 100,
  clipGradNorm: 1_000_000,
  priority: 1_000,
  /** Seeds are unsigned 32-bit in the engine; GraphQL's Int stops at 2^31 − 1. */
  seed: 2 ** 31 - 1,
  /** Placement entries and labels per entry. */
  placementEntries: 256,
  labelsPerEntry: 32,
} as const;

/** Numbers in a dataset spec (registerDataset). The data layer has its own, looser checks. */
export const DATASET_LIMITS = {
  syntheticLength: 2_000_000,
  numClasses: 100_000,
  imageSize: 4096,
  /** classes listed by name (idx classNames, image-folder classes). */
  classNames: 100_000,
  /** Shards a dataset may be dealt into (Dataset.shards, the shard route). */
  shards: 1024,
} as const;

/** serverTime subscription. */
export const SERVER_TIME_LIMITS = { minIntervalMs: 10, maxIntervalMs: 60_000, maxCount: 100_000 } as const;

/** Lists and strings in the worker API and other inputs. */
export const INPUT_LIMITS = {
  /** `nodes(ids:)` */
  nodeIds: 100,
  /** Events in one recordJobEvents batch. */
  eventsPerBatch: 1_000,
  /** Artifacts in one completeJob. */
  artifactsPerJob: 1_000,
  /** Shards a worker pins itself to (claimJob). */
  workerShards: 1024,
  /** Characters of a name (architecture, dataset, meta model, token). */
  nameLength: 200,
  /** Characters of a server-side file path. */
  pathLength: 4096,
} as const;

/** A loose check that a number is a whole number in [min, max]; the message names the bound. */
export function outOfRange(value: number, min: number, max: number): string | null {
  if (!Number.isFinite(value) || value < min || value > max)
    return `must be between ${min} and ${max}, got ${value}`;
  return null;
}
