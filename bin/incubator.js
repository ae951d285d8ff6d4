#!/usr/bin/env node
// The `incubator` command. The project runs its TypeScript directly through tsx (one way, in
// development and production alike), so this shim registers tsx and loads the CLI.
import { register } from "tsx/esm/api";

register();
await import("../src/cli/main.ts");
