/**
 * The executable schema: schema.graphql (the contract) joined with the resolvers.
 *
 * Attaching resolvers to a parsed SDL schema is a few lines, so we do it here rather than pull
 * in @graphql-tools, whose current releases declare Node ≥ 22. Unknown type or field names in
 * the resolver map fail at start-up, so the map cannot drift from the SDL unnoticed.
 */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import {
  buildSchema as buildSdlSchema,
  type GraphQLFieldResolver,
  GraphQLInterfaceType,
  GraphQLObjectType,
  GraphQLScalarType,
  type GraphQLSchema,
  GraphQLUnionType,
} from "graphql";
import { resolvers } from "./resolvers/index.ts";

export const SCHEMA_PATH = resolve(import.meta.dirname, "../../schema.graphql");

type FieldResolvers = Record<
  string,
  | GraphQLFieldResolver<unknown, unknown>
  | { subscribe: GraphQLFieldResolver<unknown, unknown>; resolve?: GraphQLFieldResolver<unknown, unknown> }
>;
export type ResolverMap = Record<
  string,
  GraphQLScalarType | FieldResolvers | { __resolveType: (value: unknown) => string | null }
>;

export function attachResolvers(schema: GraphQLSchema, map: ResolverMap): GraphQLSchema {
  for (const [typeName, impl] of Object.entries(map)) {
    const type = schema.getType(typeName);
    if (!type) throw new Error(`resolvers: schema.graphql has no type ${typeName}`);
    if (type instanceof GraphQLScalarType) {
      const scalar = impl as GraphQLScalarType;
      type.serialize = scalar.serialize;
      type.parseValue = scalar.parseValue;
      type.parseLiteral = scalar.parseLiteral;
      continue;
    }
    if (type instanceof GraphQLInterfaceType || type instanceof GraphQLUnionType) {
      type.resolveType = (impl as { __resolveType: (value: unknown) => string | null })
        .__resolveType as never;
      continue;
    }
    if (!(type instanceof GraphQLObjectType)) throw new Error(`resolvers: ${typeName} cannot have resolvers`);
    const fields = type.getFields();
    for (const [fieldName, fieldImpl] of Object.entries(impl as FieldResolvers)) {
      if (fieldName === "__isTypeOf") continue;
      const field = fields[fieldName];
      if (!field) throw new Error(`resolvers: schema.graphql has no field ${typeName}.${fieldName}`);
      if (typeof fieldImpl === "function") field.resolve = fieldImpl;
      else {
        field.subscribe = fieldImpl.subscribe;
        field.resolve =
          fieldImpl.resolve ?? ((payload: unknown) => (payload as Record<string, unknown>)[fieldName]);
      }
    }
  }
  return schema;
}

export function buildSchema(): GraphQLSchema {
  return attachResolvers(buildSdlSchema(readFileSync(SCHEMA_PATH, "utf8")), resolvers as ResolverMap);
}
