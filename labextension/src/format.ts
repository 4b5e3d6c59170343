/**
 * What the status bar item says, from one `usage_reply`: pure functions, no JupyterLab.
 *
 * The kernel's `resmagic` block (resmagic/usage.py) carries bytes as integers and null
 * where a source cannot say. The text names the allocator's figures, which are exact; NVML's
 * device-wide figure and the host go in the tooltip, labelled as what they are.
 */

/** One GPU in the block: allocator figures (null before CUDA starts) and NVML's. */
export interface IDevice {
  name: string;
  allocated: number | null;
  reserved: number | null;
  total: number | null;
  peak: number | null;
  nvml_used: number | null;
  nvml_total: number | null;
}

/** The `resmagic` block of a `usage_reply`, schema 1. */
export interface IBlock {
  schema: number;
  version?: string;
  error?: string;
  cell?: { number: number | null; running: boolean };
  devices?: IDevice[];
  host?: { rss: number | null; total: number | null; peak: number | null };
  container?: {
    cgroup: string;
    version: number;
    limit: number;
    usage: number | null;
    working_set: number | null;
    peak: number | null;
  } | null;
  notes?: string[];
}

/** What the item shows: nothing, the grey "no resmagic" state, or readings. */
export interface IView {
  state: 'hidden' | 'grey' | 'ok';
  text: string;
  tooltip: string;
}

export const HIDDEN: IView = { state: 'hidden', text: '', tooltip: '' };

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** The unit a figure of `reference` bytes reads best in: GiB from 1 GiB up, else MiB. */
export function unitFor(reference: number): [string, number] {
  return reference >= GiB ? ['GiB', GiB] : ['MiB', MiB];
}

/** `bytes` in `unit`, one decimal below 100, none above: "3.0", "80". */
export function amount(bytes: number, divisor: number): string {
  const value = bytes / divisor;
  return value >= 99.95 ? value.toFixed(0) : value.toFixed(1);
}

/** A capacity in `unit`: whole ("80", "16") unless it is not ("15.9"). */
export function capacity(bytes: number, divisor: number): string {
  const value = bytes / divisor;
  return Math.abs(value - Math.round(value)) < 0.05 ? value.toFixed(0) : amount(bytes, divisor);
}

/** "1.2 GiB", "640 MiB": a figure with its own unit (`whole`: a capacity). */
export function size(bytes: number | null | undefined, whole = false): string {
  if (bytes === null || bytes === undefined) {
    return 'n/a';
  }
  const [unit, divisor] = unitFor(bytes);
  return `${(whole ? capacity : amount)(bytes, divisor)} ${unit}`;
}

/** "cuda:0 3.0 / 80 GiB · peak 9.1": allocator used of total, and the cell's exact peak. */
export function deviceText(device: IDevice): string {
  const exact = device.allocated !== null;
  const used = exact ? device.allocated : device.nvml_used;
  const total = device.total ?? device.nvml_total;
  if (used === null) {
    return `${device.name} n/a`;
  }
  const [unit, divisor] = unitFor(total ?? used);
  const of = total === null ? ` ${unit}` : ` / ${capacity(total, divisor)} ${unit}`;
  let text = `${device.name} ${amount(used, divisor)}${of}`;
  if (exact && device.peak !== null) {
    text += ` · peak ${amount(device.peak, divisor)}`;
  }
  return exact ? text : `${text} (NVML)`;
}

function cellName(block: IBlock): string {
  const cell = block.cell;
  if (!cell || cell.number === null) {
    return cell?.running ? 'the running cell' : 'the last cell';
  }
  return `In[${cell.number}]` + (cell.running ? ' (running)' : ' (last cell)');
}

function deviceLines(device: IDevice, cell: string): string[] {
  const lines: string[] = [];
  if (device.allocated !== null) {
    let line = `${device.name} allocator (exact): ${size(device.allocated)} in tensors`;
    line += `, ${size(device.reserved)} reserved`;
    if (device.peak !== null) {
      line += `, peak ${size(device.peak)} in ${cell}`;
    }
    lines.push(line);
  }
  if (device.nvml_used !== null) {
    lines.push(
      `${device.name} NVML (device-wide, every process): ` +
        `${size(device.nvml_used)} of ${size(device.nvml_total, true)}`
    );
  }
  return lines;
}

/** The tooltip: every figure with its source, the host and the container. */
export function tooltip(block: IBlock): string {
  const cell = cellName(block);
  const lines = ['resmagic: this kernel\'s memory'];
  for (const device of block.devices ?? []) {
    lines.push(...deviceLines(device, cell));
  }
  const host = block.host;
  if (host && host.rss !== null) {
    let line = `host RSS ${size(host.rss)} of ${size(host.total, true)}`;
    if (host.peak !== null && host.peak !== undefined) {
      line += `, peak ${size(host.peak)} in ${cell}`;
    }
    lines.push(line);
  }
  const box = block.container;
  if (box) {
    lines.push(
      `container (cgroup v${box.version}): ${size(box.working_set)} working set of ` +
        `${size(box.limit, true)} limit, peak ${size(box.peak)}`
    );
  }
  for (const note of block.notes ?? []) {
    lines.push(`note: ${note}`);
  }
  return lines.join('\n');
}

export const NO_RESMAGIC =
  'This kernel answers usage requests but has no resmagic loaded: ' +
  'run %load_ext resmagic in it (pip install resmagic in the kernel\'s environment first).';

/**
 * The view for one `usage_reply` content: hidden when there is no reply (a kernel that does
 * not answer usage requests), grey when the reply lacks the block, else the readings.
 */
export function view(content: Record<string, unknown> | null): IView {
  if (content === null) {
    return HIDDEN;
  }
  const block = content['resmagic'] as IBlock | undefined;
  if (block === undefined || block === null) {
    return { state: 'grey', text: 'GPU: no resmagic', tooltip: NO_RESMAGIC };
  }
  if (block.schema !== 1 || block.error) {
    const why = block.error ?? `block schema ${block.schema}, this item reads schema 1`;
    return { state: 'grey', text: 'GPU: n/a', tooltip: `resmagic could not read: ${why}` };
  }
  const devices = block.devices ?? [];
  const text = devices.length
    ? devices.map(deviceText).join('  ')
    : `no GPU · host ${size(block.host?.rss)}`;
  return { state: 'ok', text, tooltip: tooltip(block) };
}
