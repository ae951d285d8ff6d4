/** The row behind a global-ID input field, for mutations that report userErrors. */
import { decodeGlobalId } from "../global-id.ts";
import { type UserError, userError } from "../user-errors.ts";

/** Looks up the row behind a global ID input; a user error naming the field when there is none. */
export async function lookup<T>(
  errors: UserError[],
  field: string,
  type: string,
  globalId: string,
  load: (id: string) => Promise<T | null>,
): Promise<T | null> {
  const id = decodeGlobalId(type, globalId);
  const row = id ? await load(id) : null;
  if (!row) {
    errors.push(
      userError(
        ["input", field],
        id ? `no ${type} with ID ${globalId}` : `"${globalId}" is not the ID of a ${type}`,
        "NOT_FOUND",
      ),
    );
  }
  return row;
}
