/**
 * One error type for everything the data layer rejects, so callers (the worker, the API) can tell
 * "your data is wrong" apart from a bug. Each message names the file or field, says what was
 * found versus expected, and — where there is one — the fix.
 */
export class DataError extends Error {
  override readonly name = "DataError";
  /** The file (or dataset spec field) the problem is in, when there is one. */
  readonly source: string | undefined;

  constructor(message: string, options?: { source?: string; cause?: unknown }) {
    super(
      options?.source ? `${options.source}: ${message}` : message,
      options?.cause === undefined ? undefined : { cause: options.cause },
    );
    this.source = options?.source;
  }
}
