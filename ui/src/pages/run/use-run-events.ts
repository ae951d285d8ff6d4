/** The run's event stream as a Preact hook: the fold, its status, and a counter that ticks on change. */
import { useEffect, useState } from "preact/hooks";
import { followRunEvents, type RunEventStream } from "../../state/event-stream.ts";

export function useRunEvents(runId: string): { stream: RunEventStream | null; version: number } {
  const [stream, setStream] = useState<RunEventStream | null>(null);
  const [version, setVersion] = useState(0);
  useEffect(() => {
    const s = followRunEvents(runId);
    setStream(s);
    const off = s.onChange(() => setVersion((v) => v + 1));
    const save = () => s.persist();
    // A reload or a closed tab saves the fold first, so the next load resumes from its lastSeq.
    addEventListener("pagehide", save);
    return () => {
      removeEventListener("pagehide", save);
      off();
      s.stop();
    };
  }, [runId]);
  return { stream, version };
}
