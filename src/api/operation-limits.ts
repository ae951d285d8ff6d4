/**
 * The checks every GraphQL operation passes before it executes — the same list for HTTP (Apollo
 * Server) and WebSocket (graphql-ws): tokens (while parsing), depth, cost, aliases, directives,
 * and introspection when it is turned off. Each refusal is a GraphQLError with
 * `extensions: { code: "GRAPHQL_VALIDATION_FAILED", limit, … }`; limits live in platform/limits.ts.
 *
 * Aliases and directives are GraphQL Armor's rules (@escape.tech/graphql-armor-max-aliases,
 * -max-directives), reporting through `onReject` instead of throwing so their refusals carry our
 * codes. Tokens use graphql-js's own `maxTokens` parse option (what Armor's max-tokens does),
 * depth and cost are ours (depth-limit.ts, cost-limit.ts).
 */
import { maxAliasesRule } from "@escape.tech/graphql-armor-max-aliases";
import { maxDirectivesRule } from "@escape.tech/graphql-armor-max-directives";
import {
  type DocumentNode,
  GraphQLError,
  type GraphQLSchema,
  NoSchemaIntrospectionCustomRule,
  parse,
  specifiedRules,
  type ValidationContext,
  type ValidationRule,
  validate,
} from "graphql";
import type { RequestLimits } from "../platform/limits.ts";
import { costLimit } from "./cost-limit.ts";
import { depthLimit } from "./depth-limit.ts";

export const VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED";

export function limitError(
  message: string,
  limit: string,
  extra: Record<string, unknown> = {},
): GraphQLError {
  return new GraphQLError(message, { extensions: { code: VALIDATION_FAILED, limit, ...extra } });
}

/** An Armor rule's rejection ("Syntax Error: Aliases limit of 30 exceeded, found 31.") as our error. */
function armorReport(limit: string, max: number, what: string) {
  return (context: ValidationContext | null, error: GraphQLError) => {
    const found = Number(/found (\d+)/.exec(error.message)?.[1] ?? Number.NaN);
    const count = Number.isFinite(found) ? `${found} ${what}` : `more than ${max} ${what}`;
    context?.reportError(
      limitError(`the operation has ${count}; the limit is ${max}`, limit, {
        [`max${limit[0]!.toUpperCase()}${limit.slice(1)}`]: max,
      }),
    );
  };
}

/** The validation rules beyond graphql-js's own, for both transports. */
export function limitRules(limits: RequestLimits, options: { introspection: boolean }): ValidationRule[] {
  const rules: ValidationRule[] = [
    depthLimit(limits.maxDepth),
    costLimit(limits.maxCost),
    maxAliasesRule({
      n: limits.maxAliases,
      propagateOnRejection: false,
      onReject: [armorReport("aliases", limits.maxAliases, "aliases")],
    }) as unknown as ValidationRule,
    maxDirectivesRule({
      n: limits.maxDirectives,
      propagateOnRejection: false,
      onReject: [armorReport("directives", limits.maxDirectives, "directives")],
    }) as unknown as ValidationRule,
  ];
  if (!options.introspection) rules.push(NoSchemaIntrospectionCustomRule);
  return rules;
}

/** graphql-js's message when `maxTokens` stops the parser. */
const TOKEN_LIMIT = /Document contains more tha[nt] (\d+) tokens/; // graphql-js 16 says "more that"

export const isTokenLimit = (message: string) => TOKEN_LIMIT.test(message);

/** A parse error as clients see it: the token limit as a validation limit, the rest as parse errors. */
export function parseFailure(error: GraphQLError, maxTokens: number): GraphQLError {
  if (TOKEN_LIMIT.test(error.message)) {
    return limitError(
      `the document has more than ${maxTokens} tokens; the limit is ${maxTokens}. Send a smaller operation`,
      "tokens",
      { maxTokens },
    );
  }
  return new GraphQLError(error.message, { extensions: { code: "GRAPHQL_PARSE_FAILED" } });
}

/** Parse and validate one operation (graphql-ws); the document, or the errors to answer with. */
export function checkOperation(
  schema: GraphQLSchema,
  query: string,
  limits: RequestLimits,
  rules: readonly ValidationRule[],
): DocumentNode | GraphQLError[] {
  let document: DocumentNode;
  try {
    document = parse(query, { maxTokens: limits.maxTokens });
  } catch (error) {
    if (error instanceof GraphQLError) return [parseFailure(error, limits.maxTokens)];
    throw error;
  }
  const errors = validate(schema, document, [...specifiedRules, ...rules]);
  if (errors.length === 0) return document;
  return errors.map((e) =>
    e.extensions.code
      ? e
      : new GraphQLError(e.message, {
          ...(e.nodes ? { nodes: e.nodes } : {}),
          extensions: { ...e.extensions, code: VALIDATION_FAILED },
        }),
  );
}

/** Valid documents kept by their text (most recently used first out last). */
const CHECKED_CACHE_SIZE = 500;

/**
 * `checkOperation` remembering the documents that passed, by their text: a dashboard's
 * thousand viewers send one query, and each parsed copy (AST with its token list) would be kept
 * for as long as its subscription runs. Validation here sees only the schema, the text and the
 * limits (never variables), so a text that passed once passes again. Refusals are not kept.
 */
export function cachedOperationCheck(
  schema: GraphQLSchema,
  limits: RequestLimits,
  rules: readonly ValidationRule[],
): (query: string) => DocumentNode | GraphQLError[] {
  const passed = new Map<string, DocumentNode>();
  return (query) => {
    const hit = passed.get(query);
    if (hit) {
      passed.delete(query);
      passed.set(query, hit);
      return hit;
    }
    const checked = checkOperation(schema, query, limits, rules);
    if (!Array.isArray(checked)) {
      passed.set(query, checked);
      if (passed.size > CHECKED_CACHE_SIZE) passed.delete(passed.keys().next().value!);
    }
    return checked;
  };
}
