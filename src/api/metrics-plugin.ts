/**
 * An Apollo Server plugin that times every GraphQL request over HTTP and counts it by operation
 * name, operation type and outcome (platform/metrics/graphql-requests.ts bounds the names).
 * Subscriptions over graphql-ws do not pass through Apollo; `incubator_subscriptions_open` and
 * the fan-out metrics cover them.
 */
import type { ApolloServerPlugin } from "@apollo/server";
import type { GraphQLFormattedError } from "graphql";
import { recordGraphQLRequest } from "../platform/metrics/graphql-requests.ts";
import { GraphQLOutcome } from "../platform/metrics/metrics.ts";

const REFUSALS = new Set(["UNAUTHENTICATED", "FORBIDDEN"]);

/** What a response's errors say about the request: it resolved to an operation or not. */
export function outcomeOf(
  errors: readonly GraphQLFormattedError[] | undefined,
  resolved: boolean,
): GraphQLOutcome {
  if (!errors?.length) return GraphQLOutcome.OK;
  if (errors.some((e) => REFUSALS.has(String(e.extensions?.code)))) return GraphQLOutcome.REFUSED;
  return resolved ? GraphQLOutcome.ERROR : GraphQLOutcome.INVALID;
}

export function metricsPlugin(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      const started = performance.now();
      return {
        async willSendResponse({ response, operation, operationName }) {
          const body = response.body;
          const errors = body.kind === "single" ? body.singleResult.errors : body.initialResult.errors;
          recordGraphQLRequest({
            operationName: operation ? (operationName ?? null) : null,
            ...(operation ? { type: operation.operation } : {}),
            outcome: outcomeOf(errors, operation !== undefined),
            seconds: (performance.now() - started) / 1000,
          });
        },
      };
    },
  };
}
