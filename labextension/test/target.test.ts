// Which cell a jump link names and where it is (src/target.ts): pure, no JupyterLab.
import { describe, expect, it } from 'vitest';

import { ICellKey, findCell, notFound, targetOf } from '../src/target';

describe('targetOf', () => {
  it('reads a cell id from the fragment JupyterLab and nbconvert use', () => {
    expect(targetOf('#cell-id=a3f1-b2')).toEqual({ id: 'a3f1-b2' });
  });

  it('decodes an id the kernel had to escape, whole, "=" included', () => {
    expect(targetOf('#cell-id=vscode%3A%2Fnb%23W1%3D%3D')).toEqual({ id: 'vscode:/nb#W1==' });
  });

  it('reads an execution count', () => {
    expect(targetOf('#execution-count=12')).toEqual({ count: 12 });
  });

  it('names no cell for anything else', () => {
    for (const href of [
      null,
      '',
      '#cell-id=',
      '#cell-id=%E0%A4%A', // a malformed escape
      '#execution-count=0',
      '#execution-count=03',
      '#execution-count=3.5',
      '#execution-count=',
      '#Heading-1',
      'https://example.org/#cell-id=a3f1',
      'other.ipynb#cell-id=a3f1'
    ]) {
      expect(targetOf(href), String(href)).toBeNull();
    }
  });
});

const CELLS: ICellKey[] = [
  { id: 'md', executionCount: null },
  { id: 'c1', executionCount: 1 },
  { id: 'c2', executionCount: 3 }, // from the last session, not rerun
  { id: 'c3', executionCount: 2 },
  { id: 'c4', executionCount: 3 } // this session's In [3]
];

describe('findCell', () => {
  it('finds a cell by id', () => {
    expect(findCell(CELLS, { id: 'c3' })).toBe(3);
    expect(findCell(CELLS, { id: 'md' })).toBe(0);
  });

  it('finds a cell by a count only one cell shows', () => {
    expect(findCell(CELLS, { count: 2 })).toBe(3);
  });

  it('finds none for a count two cells show, rather than guess', () => {
    expect(findCell(CELLS, { count: 3 })).toBe(-1);
  });

  it('finds none for an id or count no cell has', () => {
    expect(findCell(CELLS, { id: 'gone' })).toBe(-1);
    expect(findCell(CELLS, { count: 9 })).toBe(-1);
    expect(findCell([], { id: 'c1' })).toBe(-1);
  });
});

describe('notFound', () => {
  it('names the id or the number that found no cell', () => {
    expect(notFound({ id: 'c9' })).toContain('no cell of this notebook has the id c9');
    expect(notFound({ count: 3 })).toContain('no single cell of this notebook shows In [3]');
  });
});
