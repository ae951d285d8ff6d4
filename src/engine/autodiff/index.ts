export { keepDimsShape, sumToShape, unreduce } from "./broadcast.ts";
export { type GradientOptions, gradients } from "./gradients.ts";
export { type NoRule, VJP_RULES, type VjpArgs, type VjpEntry, type VjpRule, ZERO_GRADIENT } from "./rules.ts";
