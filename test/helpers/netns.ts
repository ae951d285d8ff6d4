/**
 * A second host for tests: a network namespace of the test's own, joined to this machine by a
 * veth pair whose two ends hold the two addresses of a private /30 — traffic goes only between
 * the test's namespace and this machine. A process started in it (`wrap`) has its own network
 * stack (its own loopback: the machine's PostgreSQL and S3 server on 127.0.0.1 are not there)
 * and its own mounts, over which `hide` lays empty tmpfs folders.
 *
 * Needs root and iproute2 (`ip`); `unavailable()` says why not, for a clear skip.
 */
import { execFileSync, spawnSync } from "node:child_process";

export interface TestHost {
  /** The namespace's name (`ip netns exec <name>`). */
  name: string;
  /** This machine's end of the veth pair: listen here to be reachable from the namespace. */
  hostAddress: string;
  /** The namespace's own address. */
  address: string;
  /** A command prefix that runs the rest inside the namespace, with `hide` folders emptied. */
  wrap(hide: string[]): string[];
  /** Delete the namespace (and with it both veth ends); safe to call twice. */
  remove(): void;
}

const ip = (...args: string[]) => execFileSync("ip", args, { stdio: ["ignore", "ignore", "pipe"] });

/** Why namespaces cannot be made here, or null when they can. */
export function netnsUnavailable(): string | null {
  if (process.getuid?.() !== 0) return "the tests do not run as root";
  if (spawnSync("ip", ["-V"]).error) return "iproute2's `ip` is not installed (apt-get install iproute2)";
  const probe = `incp${process.pid}`;
  const made = spawnSync("ip", ["netns", "add", probe], { encoding: "utf8" });
  if (made.status !== 0) return `\`ip netns add\` failed: ${made.stderr.trim()}`;
  spawnSync("ip", ["netns", "del", probe]);
  return null;
}

/**
 * A /30 inside 10.213.0.0/16 chosen from the process id, so test files running at once (each a
 * process) get different ones: .1 this machine's end, .2 the namespace's.
 */
function subnetFor(pid: number): [string, string] {
  const block = pid % 16384; // 16384 /30 blocks in a /16
  const third = Math.floor(block / 64);
  const fourth = (block % 64) * 4;
  return [`10.213.${third}.${fourth + 1}`, `10.213.${third}.${fourth + 2}`];
}

export function createTestHost(): TestHost {
  const pid = process.pid;
  const name = `inc${pid}`;
  const hostEnd = `vi${pid}h`;
  const nsEnd = `vi${pid}n`;
  const [hostAddress, address] = subnetFor(pid);
  let removed = false;
  const remove = () => {
    if (removed) return;
    removed = true;
    spawnSync("ip", ["netns", "del", name]); // takes its veth end, and so the pair, with it
    spawnSync("ip", ["link", "del", hostEnd]); // in case it failed before the end moved in
    process.removeListener("exit", remove);
  };
  process.on("exit", remove); // even when the test process ends without its afterAll
  // Left by an earlier process with this id that was killed before it could clean up.
  spawnSync("ip", ["netns", "del", name]);
  spawnSync("ip", ["link", "del", hostEnd]);
  try {
    ip("netns", "add", name);
    ip("link", "add", hostEnd, "type", "veth", "peer", "name", nsEnd);
    ip("link", "set", nsEnd, "netns", name);
    ip("addr", "add", `${hostAddress}/30`, "dev", hostEnd);
    ip("link", "set", hostEnd, "up");
    ip("-n", name, "addr", "add", `${address}/30`, "dev", nsEnd);
    ip("-n", name, "link", "set", nsEnd, "up");
    ip("-n", name, "link", "set", "lo", "up");
  } catch (error) {
    remove();
    throw new Error(
      `could not make network namespace ${name}: ${(error as { stderr?: Buffer }).stderr ?? error}`,
    );
  }
  return {
    name,
    hostAddress,
    address,
    // `ip netns exec` gives the command a mount namespace of its own (slave to this machine's),
    // so these tmpfs mounts hide the folders from it alone; `exec` keeps the process id.
    wrap: (hide) => [
      "ip",
      "netns",
      "exec",
      name,
      "sh",
      "-c",
      `${hide.map((_, i) => `mount -t tmpfs tmpfs "$${i + 1}" && `).join("")}shift ${hide.length} && exec "$@"`,
      "sh",
      ...hide,
    ],
    remove,
  };
}
