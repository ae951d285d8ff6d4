/**
 * GraphQL requests over HTTP (api/metrics-plugin.ts records each one) with a bounded
 * `operation` label: clients choose operation names, so a name becomes a label value only
 * when the request resolved to that operation, the name is at most MAX_NAME_LENGTH long and
 * fewer than MAX_OPERATION_NAMES names have been seen in this process; everything else is
 * counted under one fixed value.
 */
import {
  GraphQLOperationType,
  type GraphQLOutcome,
  graphqlRequestSeconds,
  type GraphQLOperationType as OperationType,
} from "./metrics.ts";

export const ANONYMOUS_OPERATION = "(anonymous)";
export const OTHER_OPERATION = "(other)";
export const MAX_OPERATION_NAMES = 200;
export const MAX_NAME_LENGTH = 64;

const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;
const seen = new Set<string>();

/** The `operation` label for a request: its name, (anonymous) or (other). */
export function operationLabel(name: string | null | undefined, resolved: boolean): string {
  if (!resolved) return OTHER_OPERATION;
  if (!name) return ANONYMOUS_OPERATION;
  if (name.length > MAX_NAME_LENGTH || !NAME.test(name)) return OTHER_OPERATION;
  if (seen.has(name)) return name;
  if (seen.size >= MAX_OPERATION_NAMES) return OTHER_OPERATION;
  seen.add(name);
  return name;
}

export interface GraphQLRequestRecord {
  /** The operation's name, when the request resolved to one (null: anonymous). */
  operationName: string | null;
  /** The operation's type; absent when the request never resolved to an operation. */
  type?: Exclude<OperationType, "unknown">;
  outcome: GraphQLOutcome;
  seconds: number;
}

export function recordGraphQLRequest(r: GraphQLRequestRecord): void {
  const resolved = r.type !== undefined;
  graphqlRequestSeconds.observe(
    {
      operation: operationLabel(r.operationName, resolved),
      type: r.type ?? GraphQLOperationType.UNKNOWN,
      outcome: r.outcome,
    },
    r.seconds,
  );
}
