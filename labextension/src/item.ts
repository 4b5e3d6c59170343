/**
 * The item itself: asks the kernel for its `usage_reply` on the control channel while the
 * item is visible, and shows what `format.ts` makes of it.
 */
import { ISessionContext } from '@jupyterlab/apputils';
import { PageConfig } from '@jupyterlab/coreutils';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { frontendSkipsUntracked, listUntracksUsage } from './compat';
import { HIDDEN, IBlock, IView, view } from './format';

/** How long a kernel may take to answer before the item counts it as not answering. */
const REPLY_TIMEOUT_MS = 5000;

export const STALE =
  'The kernel is busy: these are its figures from the last idle moment. A request now ' +
  'would show the kernel "Idle" mid-cell and count as activity. Live figures need ' +
  'resmagic\'s server extension ' +
  '(jupyter server extension enable resmagic.serverext) and JupyterLab 4.5 or Notebook 7.5.';

/**
 * True when a poll during a cell neither flips the kernel indicator nor counts as activity:
 * the server keeps `usage_request` off its tracked messages (resmagic's server extension)
 * and this frontend skips the statuses of untracked messages (JupyterLab 4.5, Notebook 7.5).
 */
export function pollsAreUntracked(name: string, version: string): boolean {
  const list = PageConfig.getOption('untracked_message_types');
  return listUntracksUsage(list) && frontendSkipsUntracked(name, version);
}

/** One `usage_request`: the reply's content, or null when the kernel did not answer. */
export async function requestUsage(
  kernel: Kernel.IKernelConnection,
  timeoutMs: number = REPLY_TIMEOUT_MS
): Promise<Record<string, unknown> | null> {
  // `usage_request` is not among the typed control messages, hence the casts.
  const msg = KernelMessage.createMessage({
    channel: 'control',
    msgType: 'usage_request' as KernelMessage.ControlMessageType,
    session: kernel.clientId,
    content: {}
  } as any);
  let future: Kernel.IControlFuture;
  try {
    future = kernel.sendControlMessage(msg as any, true, true);
  } catch {
    return null; // a dead or disposed kernel: nothing to show
  }
  const done = future.done.catch(() => null); // disposed after a timeout: no answer
  let timer = 0;
  const timeout = new Promise<null>(resolve => {
    timer = window.setTimeout(() => resolve(null), timeoutMs);
  });
  const reply = await Promise.race([done, timeout]);
  window.clearTimeout(timer);
  if (reply === null) {
    future.dispose();
    return null;
  }
  return reply.content as Record<string, unknown>;
}

/** The status bar (or toolbar) item for one notebook's kernel. */
export class UsageItem extends Widget {
  /** `untracked`: polls may go to a busy kernel (see `pollsAreUntracked`). */
  constructor(untracked: boolean) {
    super();
    this.addClass('rm-usage');
    this._untracked = untracked;
    document.addEventListener('visibilitychange', this._onVisibility);
    this._schedule();
    this._render();
  }

  /** The notebook session whose kernel the item shows (null: none, the item hides). */
  set context(context: ISessionContext | null) {
    if (context === this._context) {
      return;
    }
    this._context?.kernelChanged.disconnect(this._onKernel, this);
    this._context = context;
    context?.kernelChanged.connect(this._onKernel, this);
    this._onKernel();
  }

  /** Seconds between polls (at least 0.5). */
  set interval(seconds: number) {
    this._interval = Math.max(0.5, seconds);
    this._schedule();
  }

  /** True while someone can see the item: the page shown and the item on screen. */
  get watching(): boolean {
    return document.visibilityState === 'visible' && this.isVisible;
  }

  /** Ask the kernel once, unless a request is still out or nobody is watching. */
  async poll(): Promise<void> {
    const kernel = this._context?.session?.kernel ?? null;
    if (kernel === null || this._pending || !this.watching) {
      return;
    }
    if (!this._untracked && kernel.status !== 'idle') {
      this._stale = this._view.state === 'ok';
      this._render();
      return;
    }
    this._pending = true;
    this.node.dataset.pending = 'true';
    try {
      const content = await requestUsage(kernel);
      if (kernel === (this._context?.session?.kernel ?? null)) {
        this._show(content);
      }
    } finally {
      this._pending = false;
      this.node.dataset.pending = 'false';
    }
  }

  dispose(): void {
    if (this.isDisposed) {
      return;
    }
    window.clearInterval(this._timer);
    document.removeEventListener('visibilitychange', this._onVisibility);
    this.context = null;
    super.dispose();
  }

  protected onAfterShow(): void {
    void this.poll();
  }

  private _show(content: Record<string, unknown> | null): void {
    this._view = view(content);
    this._block = (content?.['resmagic'] as IBlock | undefined) ?? null;
    this._stale = false;
    this._replies += content === null ? 0 : 1;
    this._render();
  }

  private _onKernel(): void {
    this._view = HIDDEN;
    this._block = null;
    this._stale = false;
    this._render();
    void this.poll();
  }

  private _onVisibility = (): void => {
    void this.poll();
  };

  private _schedule(): void {
    window.clearInterval(this._timer);
    this._timer = window.setInterval(() => void this.poll(), this._interval * 1000);
  }

  private _render(): void {
    const node = this.node;
    const { state, text, tooltip } = this._view;
    node.textContent = text;
    node.title = this._stale ? `${STALE}\n\n${tooltip}` : tooltip;
    node.dataset.state = state;
    node.dataset.stale = String(this._stale);
    node.dataset.replies = String(this._replies);
    const first = this._block?.devices?.[0];
    node.dataset.allocated = String(first?.allocated ?? '');
    node.dataset.peak = String(first?.peak ?? '');
    node.dataset.running = String(this._block?.cell?.running ?? '');
    node.classList.toggle('rm-hidden', state === 'hidden');
    node.classList.toggle('rm-grey', state === 'grey');
    node.classList.toggle('rm-stale', this._stale);
  }

  private _context: ISessionContext | null = null;
  private _interval = 2;
  private _timer = 0;
  private _pending = false;
  private _untracked: boolean;
  private _stale = false;
  private _view: IView = HIDDEN;
  private _block: IBlock | null = null;
  private _replies = 0;
}
