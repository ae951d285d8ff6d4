/** The API token, kept in this browser (localStorage), and who the server takes us for. */
import { useEffect, useState } from "preact/hooks";
import { gql } from "../api/graphql.ts";
import { WHO_AM_I_QUERY } from "../api/queries.ts";
import { readToken, writeToken } from "../api/settings.ts";

type Identity = { state: "checking" } | { state: "ok"; text: string } | { state: "error"; text: string };

export function SettingsPage() {
  const [token, setToken] = useState(readToken);
  const [identity, setIdentity] = useState<Identity>({ state: "checking" });
  const [saved, setSaved] = useState(0);
  useEffect(() => {
    setIdentity({ state: "checking" });
    gql<{ currentApiToken: { name: string; role: string } | null }>(WHO_AM_I_QUERY).then(
      ({ currentApiToken: t }) =>
        setIdentity({
          state: "ok",
          text: t
            ? `token "${t.name}" (${t.role.toLowerCase()})`
            : "no token needed: the server runs in local mode on loopback",
        }),
      (e: Error) => setIdentity({ state: "error", text: e.message }),
    );
  }, [saved]);
  return (
    <section>
      <h1 tabIndex={-1}>Settings</h1>
      <form
        class="form"
        onSubmit={(e) => {
          e.preventDefault();
          writeToken(token);
          setSaved((n) => n + 1);
        }}
      >
        <label for="token">API token</label>
        <input
          id="token"
          name="token"
          type="password"
          autocomplete="off"
          spellcheck={false}
          placeholder="inc_at_…"
          value={token}
          onInput={(e) => setToken((e.target as HTMLInputElement).value)}
          aria-describedby="token-help"
        />
        <p id="token-help" class="help">
          Kept in this browser only (localStorage) and sent as <code>Authorization: Bearer …</code> to this
          server's GraphQL API. An admin creates one with <code>incubator token create</code>. Leave it empty
          when the server runs tokenless on loopback.
        </p>
        <div class="buttons">
          <button type="submit">Save token</button>
          <button
            type="button"
            onClick={() => {
              setToken("");
              writeToken("");
              setSaved((n) => n + 1);
            }}
          >
            Forget token
          </button>
        </div>
      </form>
      <p role="status" data-identity={identity.state} class={identity.state === "error" ? "error" : ""}>
        {identity.state === "checking"
          ? "Checking…"
          : identity.state === "ok"
            ? `Connected as ${identity.text}`
            : `Not connected: ${identity.text}`}
      </p>
    </section>
  );
}
