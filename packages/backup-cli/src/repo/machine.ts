import { createHmac } from 'node:crypto';
import { readFileSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who this process is, beyond its host name (host names repeat: cloned images, "raspberrypi",
 * "localhost"). Recorded in repository locks, and used to tell this machine's backups from
 * others' (`latest`).
 */
export interface MachineIdentity {
  host: string;
  /**
   * From `/etc/machine-id`, else `/var/lib/dbus/machine-id` (systemd/D-Bus); absent elsewhere.
   * Never the id itself (systemd asks that it stay confidential): an HMAC-SHA256 of it under a key
   * fixed for this tool, 32 hex digits, as `sd_id128_get_machine_app_specific()` does.
   */
  machine_id?: string;
  /** From `/proc/sys/kernel/random/boot_id` (changes at every boot; Linux), hashed the same way. */
  boot_id?: string;
  /** The pid namespace (`/proc/self/ns/pid`): containers on one kernel each have their own. */
  pid_ns?: string;
}

let cached: MachineIdentity | undefined;

function firstLine(paths: string[]): string | undefined {
  for (const p of paths) {
    try {
      const v = readFileSync(p, 'utf8').trim();
      if (/^[0-9A-Za-z-]{8,128}$/.test(v)) return v;
    } catch {
      // not there: the next one
    }
  }
  return undefined;
}

const appSpecific = (id: string) => createHmac('sha256', 'dawn-backup machine identity v1').update(id).digest('hex').slice(0, 32);

export function machineIdentity(): MachineIdentity {
  if (cached) return cached;
  const id: MachineIdentity = { host: hostname() };
  const machine = firstLine(['/etc/machine-id', '/var/lib/dbus/machine-id']);
  if (machine !== undefined) id.machine_id = appSpecific(machine);
  const boot = firstLine(['/proc/sys/kernel/random/boot_id']);
  if (boot !== undefined) id.boot_id = appSpecific(boot);
  try {
    id.pid_ns = readlinkSync('/proc/self/ns/pid');
  } catch {
    // not Linux
  }
  return (cached = id);
}

/**
 * Whether a process recorded as `other` ran in this very pid space (same machine id, same boot,
 * same pid namespace, same host name), so that its pid can be checked here. Anything not
 * recorded counts as different: a lock without a machine id is judged as another machine's.
 */
export function samePidSpace(other: Partial<Record<keyof MachineIdentity, unknown>>): boolean {
  const me = machineIdentity();
  return me.machine_id !== undefined && other.machine_id === me.machine_id && other.host === me.host && other.boot_id === me.boot_id && other.pid_ns === me.pid_ns;
}
