/**
 * Static shapes with optional symbolic dimensions.
 *
 * A dimension is a non-negative integer or a symbol such as "N" (the batch). Products of symbols
 * appear when a reshape flattens a symbolic axis, e.g. [N, 16, 64] → [16*N, 64]; they are kept
 * in a canonical text form "<coef>*<sym>*<sym>" (symbols sorted, coefficient first, omitted
 * when 1) so two dims are equal exactly when their strings are equal.
 */
export type Dim = number | string;
export type Shape = readonly Dim[];

const SYMBOL = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** A dim as coefficient × product of symbols. */
export interface DimTerm {
  coef: number;
  syms: string[];
}

export function parseDim(d: Dim): DimTerm {
  if (typeof d === "number") return { coef: d, syms: [] };
  let coef = 1;
  const syms: string[] = [];
  for (const part of d.split("*")) {
    if (/^\d+$/.test(part)) coef *= Number(part);
    else if (SYMBOL.test(part)) syms.push(part);
    else throw new Error(`malformed symbolic dim "${d}"`);
  }
  return { coef, syms: syms.sort() };
}

export function makeDim(t: DimTerm): Dim {
  if (t.syms.length === 0 || t.coef === 0) return t.coef;
  const syms = [...t.syms].sort();
  return t.coef === 1 ? syms.join("*") : `${t.coef}*${syms.join("*")}`;
}

/** Validate a user-supplied dim (integer ≥ 0 or a well-formed symbol expression). */
export function checkDim(d: Dim): Dim {
  if (typeof d === "number") {
    if (!Number.isInteger(d) || d < 0) throw new Error(`dimension must be a non-negative integer, got ${d}`);
    return d;
  }
  return makeDim(parseDim(d));
}

export function isStaticDim(d: Dim): d is number {
  return typeof d === "number";
}

export function isStaticShape(s: Shape): s is readonly number[] {
  return s.every((d) => typeof d === "number");
}

export function dimsEqual(a: Dim, b: Dim): boolean {
  return (
    typeof a === typeof b && (typeof a === "number" ? a === b : makeDim(parseDim(a)) === makeDim(parseDim(b)))
  );
}

export function shapesEqual(a: Shape, b: Shape): boolean {
  return a.length === b.length && a.every((d, i) => dimsEqual(d, b[i]!));
}

export function mulDims(a: Dim, b: Dim): Dim {
  const x = parseDim(a);
  const y = parseDim(b);
  return makeDim({ coef: x.coef * y.coef, syms: [...x.syms, ...y.syms] });
}

/** Number of elements, possibly symbolic. */
export function numel(s: Shape): Dim {
  return s.reduce<Dim>((acc, d) => mulDims(acc, d), 1);
}

/** Exact division a / b of dims, or undefined when it does not divide. */
export function divDim(a: Dim, b: Dim): Dim | undefined {
  const x = parseDim(a);
  const y = parseDim(b);
  if (y.coef === 0 || x.coef % y.coef !== 0) return undefined;
  const syms = [...x.syms];
  for (const s of y.syms) {
    const i = syms.indexOf(s);
    if (i < 0) return undefined;
    syms.splice(i, 1);
  }
  return makeDim({ coef: x.coef / y.coef, syms });
}

/** Numpy-style broadcast of two shapes; throws a message naming both when they don't broadcast. */
export function broadcastShapes(a: Shape, b: Shape): Shape {
  const rank = Math.max(a.length, b.length);
  const out: Dim[] = [];
  for (let i = 0; i < rank; i++) {
    const da = a[a.length - rank + i] ?? 1;
    const db = b[b.length - rank + i] ?? 1;
    if (dimsEqual(da, db) || db === 1) out.push(da);
    else if (da === 1) out.push(db);
    else throw new Error(`shapes ${formatShape(a)} and ${formatShape(b)} do not broadcast (axis ${i})`);
  }
  return out;
}

export function formatShape(s: Shape): string {
  return `[${s.join(",")}]`;
}

/** Resolve a possibly negative axis against a rank, with a clear error. */
export function normAxis(axis: number, rank: number, what = "axis"): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank)
    throw new Error(`${what} ${axis} out of range for rank ${rank}`);
  return a;
}
