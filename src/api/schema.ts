/** The executable schema: schema.graphql (the contract) joined with the resolvers. */
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { makeExecutableSchema } from "@graphql-tools/schema";
import type { GraphQLSchema } from "graphql";
import { resolvers } from "./resolvers/index.ts";

export const SCHEMA_PATH = resolve(import.meta.dirname, "../../schema.graphql");

export function buildSchema(): GraphQLSchema {
  return makeExecutableSchema({ typeDefs: readFileSync(SCHEMA_PATH, "utf8"), resolvers });
}
