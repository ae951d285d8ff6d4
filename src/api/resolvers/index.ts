/** All resolvers, merged by type. Each file owns one area of schema.graphql. */
import { GraphQLScalarType, Kind } from "graphql";
import { healthResolvers } from "./health.ts";
import { runEventsResolvers } from "./run-events.ts";
import { serverTimeResolvers } from "./server-time.ts";

const JSONScalar = new GraphQLScalarType({
  name: "JSON",
  serialize: (value) => value,
  parseValue: (value) => value,
});

const DateTime = new GraphQLScalarType({
  name: "DateTime",
  serialize: (value) => (value instanceof Date ? value.toISOString() : String(value)),
  parseValue: (value) => new Date(String(value)),
  parseLiteral: (ast) => (ast.kind === Kind.STRING ? new Date(ast.value) : null),
});

export const resolvers = {
  DateTime,
  JSON: JSONScalar,
  Node: { __resolveType: () => null },
  Query: {
    ...healthResolvers.Query,
    node: () => null,
  },
  Subscription: {
    ...serverTimeResolvers.Subscription,
    ...runEventsResolvers.Subscription,
  },
};
