// What the item says for one usage_reply (src/format.ts): pure, no JupyterLab.
import { describe, expect, it } from 'vitest';

import { IBlock, IDevice, deviceText, size, view } from '../src/format';

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

function device(over: Partial<IDevice> = {}): IDevice {
  return {
    name: 'cuda:0',
    allocated: 3 * GiB,
    reserved: 4 * GiB,
    total: 80 * GiB,
    peak: 9.1 * GiB,
    nvml_used: 5 * GiB,
    nvml_total: 80 * GiB,
    ...over
  };
}

function block(over: Partial<IBlock> = {}): IBlock {
  return {
    schema: 1,
    cell: { number: 12, running: true },
    devices: [device()],
    host: { rss: 1.5 * GiB, total: 31 * GiB, peak: 2 * GiB },
    container: null,
    notes: [],
    ...over
  };
}

describe('deviceText', () => {
  it('shows the allocator used of total and the cell peak, in one unit', () => {
    expect(deviceText(device())).toBe('cuda:0 3.0 / 80 GiB · peak 9.1');
  });

  it('falls back to NVML, labelled, before the allocator has figures', () => {
    const nvmlOnly = device({ allocated: null, reserved: null, peak: null, total: 16 * GiB });
    expect(deviceText(nvmlOnly)).toBe('cuda:0 5.0 / 16 GiB (NVML)');
  });

  it('uses MiB on a device smaller than a GiB', () => {
    const small = device({ allocated: 100 * MiB, total: 512 * MiB, peak: 300 * MiB });
    expect(deviceText(small)).toBe('cuda:0 100 / 512 MiB · peak 300');
  });

  it('says n/a when no source has a figure', () => {
    expect(deviceText(device({ allocated: null, nvml_used: null }))).toBe('cuda:0 n/a');
  });
});

describe('size', () => {
  it('formats bytes with their own unit', () => {
    expect(size(1.25 * GiB)).toBe('1.3 GiB');
    expect(size(640 * MiB)).toBe('640 MiB');
    expect(size(null)).toBe('n/a');
    expect(size(16 * GiB, true)).toBe('16 GiB');
    expect(size(15.9 * GiB, true)).toBe('15.9 GiB');
  });
});

describe('view', () => {
  it('hides the item when the kernel did not answer', () => {
    expect(view(null).state).toBe('hidden');
  });

  it('greys out, with the reason, when the reply has no resmagic block', () => {
    const grey = view({ hostname: 'h', pid: 1, kernel_memory: 5 });
    expect(grey.state).toBe('grey');
    expect(grey.text).toBe('GPU: no resmagic');
    expect(grey.tooltip).toContain('%load_ext resmagic');
  });

  it('greys out a block it cannot read', () => {
    expect(view({ resmagic: { schema: 2 } }).state).toBe('grey');
    expect(view({ resmagic: { schema: 1, error: 'boom' } }).tooltip).toContain('boom');
  });

  it('joins several devices and puts NVML, host and container in the tooltip', () => {
    const two = block({
      devices: [device(), device({ name: 'cuda:1', allocated: 0, peak: 0 })],
      container: {
        cgroup: '/k',
        version: 2,
        limit: 4 * GiB,
        usage: 3 * GiB,
        working_set: 2 * GiB,
        peak: 3 * GiB
      }
    });
    const shown = view({ resmagic: two });
    expect(shown.state).toBe('ok');
    expect(shown.text).toBe('cuda:0 3.0 / 80 GiB · peak 9.1  cuda:1 0.0 / 80 GiB · peak 0.0');
    expect(shown.tooltip).toContain('peak 9.1 GiB in In[12] (running)');
    expect(shown.tooltip).toContain('cuda:0 NVML (device-wide, every process): 5.0 GiB of 80 GiB');
    expect(shown.tooltip).toContain('host RSS 1.5 GiB of 31 GiB');
    expect(shown.tooltip).toContain('container (cgroup v2): 2.0 GiB working set of 4 GiB limit');
  });

  it('shows the host when the kernel sees no GPU, and why in the tooltip', () => {
    const none = view({ resmagic: block({ devices: [], notes: ['NVML unavailable: no driver'] }) });
    expect(none.text).toBe('no GPU · host 1.5 GiB');
    expect(none.tooltip).toContain('note: NVML unavailable: no driver');
  });
});
