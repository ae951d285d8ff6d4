/**
 * A link to an artifact's download (/artifacts/<sha256>). With a token in Settings the browser
 * cannot put it on a plain link, so the click fetches with the Authorization header and saves the
 * bytes; in tokenless local mode the link itself works (also for "save link as").
 */
import { authHeaders } from "../api/settings.ts";
import type { ArtifactRef } from "../api/types.ts";
import { bytes } from "../format.ts";

async function download(event: MouseEvent, artifact: ArtifactRef) {
  const headers = authHeaders();
  if (!headers.authorization) return; // the plain link works
  event.preventDefault();
  const response = await fetch(artifact.downloadUrl, { headers });
  if (!response.ok) {
    alert(`download failed: HTTP ${response.status}`);
    return;
  }
  const url = URL.createObjectURL(await response.blob());
  const a = document.createElement("a");
  a.href = url;
  a.download = `${artifact.kind.toLowerCase()}-${artifact.sha256.slice(0, 12)}`;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function ArtifactLink({ artifact, label }: { artifact: ArtifactRef; label?: string }) {
  return (
    <a
      href={artifact.downloadUrl}
      onClick={(e) => void download(e, artifact)}
      title={`${artifact.kind} ${artifact.sha256} (${bytes(artifact.sizeBytes)})`}
      data-sha256={artifact.sha256}
    >
      {label ?? artifact.kind} <small>{bytes(artifact.sizeBytes)}</small>
    </a>
  );
}
