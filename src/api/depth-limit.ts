/**
 * A validation rule that refuses operations nested deeper than `maxDepth` fields (fragments
 * followed, introspection's `__schema`/`__type` subtrees exempt), before anything executes.
 * `{ run { modules { lineage { run { id } } } } }` is 5 deep. The error carries
 * `extensions: { code: "GRAPHQL_VALIDATION_FAILED", limit: "depth", depth, maxDepth }` — the code
 * Apollo Server gives every validation error, so HTTP and WebSocket clients see the same.
 */
import {
  type ASTVisitor,
  type FragmentDefinitionNode,
  GraphQLError,
  Kind,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
} from "graphql";
import { DEFAULT_REQUEST_LIMITS } from "../platform/limits.ts";

export const MAX_QUERY_DEPTH = DEFAULT_REQUEST_LIMITS.maxDepth;

function depthOf(
  set: SelectionSetNode,
  fragments: Map<string, FragmentDefinitionNode>,
  visiting: Set<string>,
): number {
  let deepest = 0;
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      if (selection.name.value.startsWith("__")) continue;
      const below = selection.selectionSet ? depthOf(selection.selectionSet, fragments, visiting) : 0;
      deepest = Math.max(deepest, 1 + below);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      deepest = Math.max(deepest, depthOf(selection.selectionSet, fragments, visiting));
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || visiting.has(name)) continue; // unknown or cyclic: other rules report it
      visiting.add(name);
      deepest = Math.max(deepest, depthOf(fragment.selectionSet, fragments, visiting));
      visiting.delete(name);
    }
  }
  return deepest;
}

export function depthLimit(maxDepth: number = MAX_QUERY_DEPTH): ValidationRule {
  return (context: ValidationContext): ASTVisitor => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    return {
      OperationDefinition(operation) {
        const depth = depthOf(operation.selectionSet, fragments, new Set());
        if (depth > maxDepth) {
          const name = operation.name ? `operation "${operation.name.value}"` : "the operation";
          context.reportError(
            new GraphQLError(
              `${name} is ${depth} levels deep; the limit is ${maxDepth}. Ask for less nesting, or ` +
                `fetch nested objects with node(id:) in a second query`,
              {
                nodes: [operation],
                extensions: { code: "GRAPHQL_VALIDATION_FAILED", limit: "depth", depth, maxDepth },
              },
            ),
          );
        }
      },
    };
  };
}
