/**
 * resmagic's JupyterLab 4 / Notebook 7 extension: this kernel's GPU memory at a glance, and
 * links in outputs that jump to a cell.
 *
 * JupyterLab: one status bar item that follows the active notebook's kernel. Notebook 7 has
 * no status bar: each notebook gets the item in its toolbar instead. `resmagic:jump` (a
 * plugin of its own, so it can be disabled alone) follows `rm-jump` links (see `jump.ts`).
 */
import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import { DocumentRegistry } from '@jupyterlab/docregistry';
import { INotebookModel, INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';
import { DisposableDelegate, IDisposable } from '@lumino/disposable';
import { Signal } from '@lumino/signaling';

import { UsageItem, pollsAreUntracked } from './item';
import { followJumpLinks } from './jump';

const PLUGIN = 'resmagic:plugin';

/** Every item on the page, so a changed setting reaches each. */
class Items {
  constructor(readonly untracked: boolean) {}

  add(item: UsageItem): void {
    item.interval = this.seconds;
    this._items.add(item);
    item.disposed.connect(() => this._items.delete(item));
  }

  set interval(seconds: number) {
    this.seconds = seconds;
    this._items.forEach(item => (item.interval = seconds));
  }

  seconds = 2;
  private _items = new Set<UsageItem>();
}

function inStatusBar(statusBar: IStatusBar, tracker: INotebookTracker, items: Items): void {
  const item = new UsageItem(items.untracked);
  items.add(item);
  const changed = new Signal<unknown, void>(tracker);
  const follow = (): void => {
    item.context = tracker.currentWidget?.sessionContext ?? null;
    changed.emit();
  };
  tracker.currentChanged.connect(follow);
  follow();
  statusBar.registerStatusItem('resmagic:gpu', {
    item,
    align: 'left',
    rank: 4,
    isActive: () => tracker.currentWidget !== null,
    activeStateChanged: changed
  });
}

class InToolbar implements DocumentRegistry.IWidgetExtension<NotebookPanel, INotebookModel> {
  constructor(private _items: Items) {}

  createNew(panel: NotebookPanel): IDisposable {
    const item = new UsageItem(this._items.untracked);
    this._items.add(item);
    item.context = panel.sessionContext;
    if (!panel.toolbar.insertBefore('kernelName', 'resmagic-gpu', item)) {
      panel.toolbar.addItem('resmagic-gpu', item);
    }
    return new DisposableDelegate(() => item.dispose());
  }
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN,
  description: "This kernel's GPU memory in the status bar (resmagic).",
  autoStart: true,
  requires: [INotebookTracker],
  optional: [IStatusBar, ISettingRegistry],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    statusBar: IStatusBar | null,
    settings: ISettingRegistry | null
  ) => {
    const items = new Items(pollsAreUntracked(app.name, app.version));
    if (statusBar) {
      inStatusBar(statusBar, tracker, items);
    } else {
      app.docRegistry.addWidgetExtension('Notebook', new InToolbar(items));
    }
    if (settings) {
      void settings
        .load(PLUGIN)
        .then(loaded => {
          const read = (): void => {
            items.interval = loaded.get('refreshInterval').composite as number;
          };
          read();
          loaded.changed.connect(read);
        })
        .catch(reason => console.error('resmagic: cannot read its settings', reason));
    }
  }
};

const jumpPlugin: JupyterFrontEndPlugin<void> = {
  id: 'resmagic:jump',
  description: 'Rows and links in outputs that jump to a cell of the notebook (resmagic).',
  autoStart: true,
  requires: [INotebookTracker],
  activate: (_app: JupyterFrontEnd, tracker: INotebookTracker) => followJumpLinks(tracker)
};

export default [plugin, jumpPlugin];
