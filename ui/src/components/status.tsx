/** Small shared pieces: a state badge, a labelled progress bar, table headers, the userErrors list. */
import type { UserError } from "../api/graphql.ts";

export function StateBadge({ state }: { state: string }) {
  return <span class={`badge state-${state.toLowerCase()}`}>{state}</span>;
}

/** A native <progress> (announced by screen readers), with its percentage as text. */
export function ProgressBar({ value, max, label }: { value: number; max: number; label: string }) {
  const fraction = max > 0 ? Math.min(1, value / max) : 0;
  return (
    <span class="progress">
      <progress value={fraction} max={1} aria-label={label} />
      <span class="progress-text">{(fraction * 100).toFixed(0)}%</span>
    </span>
  );
}

export function UserErrors({ errors }: { errors: readonly UserError[] }) {
  if (!errors.length) return null;
  return (
    <ul class="user-errors" role="alert">
      {errors.map((e) => (
        <li key={`${e.field?.join(".")}:${e.message}`} data-code={e.code}>
          {e.field?.length ? <code>{e.field.join(".")}</code> : null} {e.message} <small>({e.code})</small>
        </li>
      ))}
    </ul>
  );
}

export function ErrorNote({ error }: { error: string | null }) {
  return error ? (
    <p class="error" role="alert">
      {error}
    </p>
  ) : null;
}

/** A table's caption (for screen readers) and its column headers. */
export function TableHead({ caption, columns }: { caption: string; columns: readonly string[] }) {
  return (
    <>
      <caption class="visually-hidden">{caption}</caption>
      <thead>
        <tr>
          {columns.map((c) => (
            <th key={c} scope="col">
              {c}
            </th>
          ))}
        </tr>
      </thead>
    </>
  );
}
