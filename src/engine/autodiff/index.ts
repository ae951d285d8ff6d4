export { keepDimsShape, sumToShape, unreduce } from "./broadcast.ts";
export { type GradientOptions, gradients } from "./gradients.ts";
export { NONDIFFERENTIABLE, VJP_RULES, type VjpArgs, type VjpRule } from "./rules.ts";
