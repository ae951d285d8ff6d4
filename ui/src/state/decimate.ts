/**
 * A series of any length reduced to at most about 2 × `buckets` points for drawing, keeping each
 * bucket's minimum and maximum (in x order), so spikes survive and the SVG stays small: 10,000
 * events become one path of a few hundred points, never 10,000 DOM nodes.
 */
export interface XY {
  x: number;
  y: number;
}

export function decimate(points: readonly XY[], buckets: number): XY[] {
  if (points.length <= buckets * 2) return [...points];
  const first = points[0]!;
  const span = points[points.length - 1]!.x - first.x || 1;
  const out: XY[] = [];
  let bucket = -1;
  let lo = 0;
  let hi = 0;
  const flush = () => {
    if (bucket < 0) return;
    if (lo === hi) out.push(points[lo]!);
    else out.push(points[Math.min(lo, hi)]!, points[Math.max(lo, hi)]!);
  };
  points.forEach((p, i) => {
    const b = Math.min(buckets - 1, Math.floor(((p.x - first.x) / span) * buckets));
    if (b !== bucket) {
      flush();
      bucket = b;
      lo = i;
      hi = i;
    } else {
      if (p.y < points[lo]!.y) lo = i;
      if (p.y > points[hi]!.y) hi = i;
    }
  });
  flush();
  return out;
}
