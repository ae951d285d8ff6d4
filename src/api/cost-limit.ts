/**
 * A validation rule that refuses operations whose estimated cost passes `maxCost`, before
 * anything executes. The estimate counts the fields and rows an answer can hold:
 *
 *   cost(field) = multiplier × (1 + Σ cost(child fields))
 *
 * where the multiplier is `first`/`last` for a paged field (a literal; a variable counts as the
 * connection maximum unless the operation gives it a default; absent: the argument's schema
 * default or the default page), the length of a literal `ids` list, `count` for
 * `Dataset.shards`, COST_LIST_ESTIMATE for other lists of objects, and 1 otherwise. A
 * connection's own `edges`/`nodes` lists are already counted by its `first`. So
 * `runs(first: 100) { nodes { modules { jobs { id } } } }` costs 100 × (1 + 1 + 5 × (1 + 5 × 2)) = 5,700.
 * Introspection (`__schema`, `__type`) is exempt, as it is from the depth limit; the token limit
 * bounds it.
 *
 * GraphQL Armor's cost rule multiplies only by literal `first`/`last` and knows no list types,
 * so an operation that pages with variables (as every client does) would pass uncounted; this
 * rule reads the schema instead.
 */
import {
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  GraphQLError,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  isCompositeType,
  isListType,
  isNonNullType,
  Kind,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  type ValidationRule,
  type ValueNode,
} from "graphql";
import { COST_DEFAULT_PAGE, COST_LIST_ESTIMATE, COST_VARIABLE_PAGE } from "../platform/limits.ts";

function isList(type: GraphQLOutputType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

interface Walk {
  schema: GraphQLSchema;
  fragments: Map<string, FragmentDefinitionNode>;
  /** Default values of the operation's variables. */
  variableDefaults: Map<string, ValueNode>;
  visiting: Set<string>;
}

/** A whole number from an argument value (a literal, or a variable's default); null when unknown. */
function intOf(value: ValueNode | undefined, walk: Walk): number | null | "variable" {
  if (!value) return null;
  if (value.kind === Kind.VARIABLE) {
    const fallback = walk.variableDefaults.get(value.name.value);
    return fallback ? intOf(fallback, walk) : "variable";
  }
  if (value.kind === Kind.INT) return Math.max(0, Number.parseInt(value.value, 10));
  return null;
}

function multiplier(
  field: GraphQLField<unknown, unknown>,
  args: Map<string, ValueNode>,
  parentIsConnection: boolean,
  walk: Walk,
): number {
  const paged = field.args.find((a) => a.name === "first" || a.name === "last");
  if (paged) {
    for (const name of ["first", "last"]) {
      const n = intOf(args.get(name), walk);
      if (n === "variable") return COST_VARIABLE_PAGE;
      if (n !== null) return n;
    }
    const fallback = field.args.find((a) => a.name === "first")?.defaultValue;
    return typeof fallback === "number" ? fallback : COST_DEFAULT_PAGE;
  }
  if (field.args.some((a) => a.name === "count") && isList(field.type)) {
    const n = intOf(args.get("count"), walk);
    return n === "variable" || n === null ? COST_VARIABLE_PAGE : n;
  }
  const ids = args.get("ids");
  if (ids) return ids.kind === Kind.LIST ? ids.values.length : COST_VARIABLE_PAGE;
  if (parentIsConnection) return 1; // edges / nodes: the connection's `first` counted them
  return isList(field.type) && isCompositeType(getNamedType(field.type)) ? COST_LIST_ESTIMATE : 1;
}

function costOf(set: SelectionSetNode, parent: GraphQLCompositeType, walk: Walk): number {
  let total = 0;
  const parentIsConnection = parent.name.endsWith("Connection");
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (name.startsWith("__")) continue;
      const fields = "getFields" in parent ? parent.getFields() : {};
      const field = (fields as Record<string, GraphQLField<unknown, unknown>>)[name];
      if (!field) continue; // unknown fields: FieldsOnCorrectTypeRule reports them
      const args = new Map((selection.arguments ?? []).map((a) => [a.name.value, a.value]));
      const named = getNamedType(field.type);
      const below =
        selection.selectionSet && isCompositeType(named) ? costOf(selection.selectionSet, named, walk) : 0;
      total += multiplier(field, args, parentIsConnection, walk) * (1 + below);
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const on = selection.typeCondition ? walk.schema.getType(selection.typeCondition.name.value) : parent;
      total += costOf(selection.selectionSet, on && isCompositeType(on) ? on : parent, walk);
    } else {
      const name = selection.name.value;
      const fragment = walk.fragments.get(name);
      if (!fragment || walk.visiting.has(name)) continue; // unknown or cyclic: other rules report it
      const on = walk.schema.getType(fragment.typeCondition.name.value);
      walk.visiting.add(name);
      total += costOf(fragment.selectionSet, on && isCompositeType(on) ? on : parent, walk);
      walk.visiting.delete(name);
    }
    if (total > Number.MAX_SAFE_INTEGER) return Number.MAX_SAFE_INTEGER;
  }
  return total;
}

/** The estimated cost of one operation (exported for tests and for the documentation's examples). */
export function operationCost(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  fragments: Map<string, FragmentDefinitionNode>,
): number {
  const root =
    operation.operation === "query"
      ? schema.getQueryType()
      : operation.operation === "mutation"
        ? schema.getMutationType()
        : schema.getSubscriptionType();
  if (!root) return 0;
  const variableDefaults = new Map<string, ValueNode>();
  for (const v of operation.variableDefinitions ?? []) {
    if (v.defaultValue) variableDefaults.set(v.variable.name.value, v.defaultValue);
  }
  return costOf(operation.selectionSet, root, { schema, fragments, variableDefaults, visiting: new Set() });
}

export function costLimit(maxCost: number): ValidationRule {
  return (context: ValidationContext) => {
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const definition of context.getDocument().definitions) {
      if (definition.kind === Kind.FRAGMENT_DEFINITION) fragments.set(definition.name.value, definition);
    }
    return {
      OperationDefinition(operation) {
        const cost = operationCost(context.getSchema(), operation, fragments);
        if (cost > maxCost) {
          const name = operation.name ? `operation "${operation.name.value}"` : "the operation";
          context.reportError(
            new GraphQLError(
              `${name} would cost ${cost}; the limit is ${maxCost}. Ask for smaller pages (first/last) ` +
                `or fewer nested lists, and page through the rest`,
              {
                nodes: [operation],
                extensions: { code: "GRAPHQL_VALIDATION_FAILED", limit: "cost", cost, maxCost },
              },
            ),
          );
        }
      },
    };
  };
}
