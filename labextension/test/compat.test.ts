// When the item may ask a busy kernel (src/compat.ts).
import { describe, expect, it } from 'vitest';

import { frontendSkipsUntracked, listUntracksUsage } from '../src/compat';

describe('frontendSkipsUntracked', () => {
  it('is true from JupyterLab 4.5 and Notebook 7.5 on', () => {
    expect(frontendSkipsUntracked('JupyterLab', '4.5.0')).toBe(true);
    expect(frontendSkipsUntracked('JupyterLab', '4.6.6')).toBe(true);
    expect(frontendSkipsUntracked('JupyterLab', '5.0.0a1')).toBe(true);
    expect(frontendSkipsUntracked('Jupyter Notebook', '7.5.0rc1')).toBe(true);
  });

  it('is false before them, and for frontends it does not know', () => {
    expect(frontendSkipsUntracked('JupyterLab', '4.4.10')).toBe(false);
    expect(frontendSkipsUntracked('Jupyter Notebook', '7.4.7')).toBe(false);
    expect(frontendSkipsUntracked('JupyterLab', 'unknown')).toBe(false);
    expect(frontendSkipsUntracked('Voila', '9.0.0')).toBe(false);
  });
});

describe('listUntracksUsage', () => {
  it('reads the page config list', () => {
    expect(listUntracksUsage('["status", "usage_request"]')).toBe(true);
    expect(listUntracksUsage('["status"]')).toBe(false);
    expect(listUntracksUsage('')).toBe(false);
    expect(listUntracksUsage('not json')).toBe(false);
  });
});
