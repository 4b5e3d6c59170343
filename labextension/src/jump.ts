/**
 * Links in a notebook's outputs that jump to a cell of the same notebook (`%resmagic top`).
 *
 * An element of class `rm-jump` (a table row, or the link itself) holding a link whose href
 * is `#cell-id=<id>` or `#execution-count=<n>` (see `target.ts`): a click anywhere on it
 * scrolls the notebook to that cell and makes it the active, selected cell. One listener on
 * each notebook's node (event delegation) serves every output, trusted or sanitised: no
 * script runs in the output. The URL and the browser's history stay as they were.
 *
 * Without this plugin the link still works as a plain one: JupyterLab 4 and Notebook 7 route
 * a changed `#cell-id=` fragment to the notebook, which scrolls there (without selecting the
 * cell), and an nbconvert HTML export scrolls to its element of that id.
 */
import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, Notebook, NotebookPanel } from '@jupyterlab/notebook';

import { ICellKey, Target, findCell, notFound, targetOf } from './target';

/** Marks the element a click on which jumps: a row of `%resmagic top`, or a link. */
export const JUMP_CLASS = 'rm-jump';

const LINK = 'a[href^="#cell-id="], a[href^="#execution-count="]';

/** The jump link a click on `element` means, or null (a click elsewhere, or on another link). */
export function jumpLinkAt(element: Element): HTMLAnchorElement | null {
  const marked = element.closest(`.${JUMP_CLASS}`);
  if (marked === null) {
    return null;
  }
  const anchor = element.closest('a');
  if (anchor !== null && marked.contains(anchor)) {
    return anchor.matches(LINK) ? anchor : null; // another link in the row: let it be
  }
  return marked.matches(LINK) ? (marked as HTMLAnchorElement) : marked.querySelector(LINK);
}

function keys(notebook: Notebook): ICellKey[] {
  return notebook.widgets.map(cell => {
    // a code cell's model has an execution count (null before it runs); other cells none
    const count = (cell.model as { executionCount?: unknown }).executionCount;
    return { id: cell.model.id, executionCount: typeof count === 'number' ? count : null };
  });
}

/** Scroll `notebook` to the cell `target` names and make it the only selected, active cell. */
export async function jump(notebook: Notebook, target: Target): Promise<boolean> {
  const index = findCell(keys(notebook), target);
  if (index === -1) {
    return false;
  }
  // As JupyterLab's table of contents does: command mode (the jump selects the cell, keys
  // typed next do not edit it; `Notebook.scrollToCell` would focus its editor), the cell
  // active and alone selected, scrolled to the top of the notebook's view.
  notebook.mode = 'command';
  notebook.activeCellIndex = index;
  notebook.deselectAll();
  await notebook.scrollToItem(index, 'start');
  notebook.activate(); // keyboard focus on the cell, as after a click on it
  return true;
}

/** The click handler for one notebook's node. */
function onClick(notebook: Notebook): (event: MouseEvent) => void {
  return (event: MouseEvent): void => {
    if (event.button !== 0 || event.defaultPrevented || !(event.target instanceof Element)) {
      return;
    }
    const link = jumpLinkAt(event.target);
    const target = link === null ? null : targetOf(link.getAttribute('href'));
    if (target === null) {
      return;
    }
    event.preventDefault(); // no fragment in the URL, no history entry, no router pass
    void jump(notebook, target).then(found => {
      if (!found) {
        Notification.info(notFound(target), { autoClose: 8000 });
      }
    });
  };
}

/** Listen on every notebook, present and future. */
export function followJumpLinks(tracker: INotebookTracker): void {
  const listen = (_: unknown, panel: NotebookPanel): void => {
    panel.content.node.addEventListener('click', onClick(panel.content));
  };
  tracker.forEach(panel => listen(tracker, panel));
  tracker.widgetAdded.connect(listen);
}
