/**
 * Whether a poll may go to a busy kernel: only where the frontend and the server both leave
 * `usage_request` out of the kernel's state. Pure functions, no JupyterLab.
 */

/** The first JupyterLab (services 7.5) and Notebook releases whose kernel connection skips
 * status messages of the page config's `untracked_message_types`; earlier ones take every
 * status as the kernel's, so a poll mid-cell would show the kernel "Idle". */
const HONOURING: Record<string, [number, number]> = {
  JupyterLab: [4, 5],
  'Jupyter Notebook': [7, 5]
};

/** True when `name` at `version` ("4.6.6", "7.5.0rc1") skips untracked statuses. */
export function frontendSkipsUntracked(name: string, version: string): boolean {
  const first = HONOURING[name];
  const found = /^(\d+)\.(\d+)/.exec(version);
  if (!first || !found) {
    return false;
  }
  const [major, minor] = [Number(found[1]), Number(found[2])];
  return major > first[0] || (major === first[0] && minor >= first[1]);
}

/** True when the page config's list (JSON text) has `usage_request` on it. */
export function listUntracksUsage(untracked: string): boolean {
  try {
    const types = JSON.parse(untracked || '[]');
    return Array.isArray(types) && types.includes('usage_request');
  } catch {
    return false;
  }
}
