/**
 * Which cell a jump link in an output names, and where that cell is: pure functions, no
 * JupyterLab.
 *
 * A link names a cell by the URL fragment JupyterLab and nbconvert already use,
 * `#cell-id=<nbformat id>` (JupyterLab's `Notebook.setFragment`, nbconvert's HTML export puts
 * `id="cell-id=..."` on every cell), or, where the frontend sent no id, by its prompt number,
 * `#execution-count=<n>`. An `href` survives JupyterLab's sanitizer in untrusted outputs;
 * `data-*` attributes do not.
 */

/** A cell named by its nbformat id, or by its execution count ("In [3]"). */
export type Target = { id: string } | { count: number };

/** What `findCell` needs to know of one cell. */
export interface ICellKey {
  id: string;
  executionCount: number | null;
}

const BY_ID = '#cell-id=';
const BY_COUNT = '#execution-count=';

/** The cell an `href` names ("#cell-id=a3f1", "#execution-count=3"), or null. */
export function targetOf(href: string | null): Target | null {
  if (href === null) {
    return null;
  }
  if (href.startsWith(BY_ID)) {
    let id: string;
    try {
      id = decodeURIComponent(href.slice(BY_ID.length));
    } catch {
      return null; // a malformed escape: no cell has that id
    }
    return id ? { id } : null;
  }
  if (href.startsWith(BY_COUNT)) {
    const text = href.slice(BY_COUNT.length);
    return /^[1-9]\d*$/.test(text) ? { count: Number(text) } : null;
  }
  return null;
}

/**
 * The index of the cell `target` names, or -1.
 *
 * An id is unique in a notebook. A count is not, after a restart: a cell not rerun keeps the
 * number it had in the last session, which a cell of this session may show too. A count that
 * more than one cell shows names none (-1): a jump to the wrong cell is worse than none.
 */
export function findCell(cells: readonly ICellKey[], target: Target): number {
  if ('id' in target) {
    return cells.findIndex(cell => cell.id === target.id);
  }
  let found = -1;
  for (let i = 0; i < cells.length; i++) {
    if (cells[i].executionCount === target.count) {
      if (found !== -1) {
        return -1;
      }
      found = i;
    }
  }
  return found;
}

/** What a click says when `findCell` finds no cell for `target`. */
export function notFound(target: Target): string {
  if ('id' in target) {
    const id = target.id;
    return `resmagic: no cell of this notebook has the id ${id} (deleted, or another notebook's).`;
  }
  return (
    `resmagic: no single cell of this notebook shows In [${target.count}] ` +
    '(rerun since, or a number shown by two cells after a restart).'
  );
}
