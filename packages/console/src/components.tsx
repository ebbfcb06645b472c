import type { ComponentChildren } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';

export function Stat(props: { label: string; value: string; testid: string; warn?: boolean; hint?: string }) {
  return (
    <div class={`stat${props.warn ? ' warn' : ''}`} data-testid={props.testid}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value">{props.value}</div>
      {props.hint && <div class="stat-hint">{props.hint}</div>}
    </div>
  );
}

export function ErrorNote(props: { error: string | null }) {
  return props.error ? (
    <p class="error" role="alert">
      {props.error}
    </p>
  ) : null;
}

export function Section(props: { title: string; children: ComponentChildren; actions?: ComponentChildren }) {
  return (
    <section class="card">
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions && <div class="card-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

export interface ConfirmRequest {
  title: string;
  /** What will happen, in plain words: shown before anything is sent. */
  effect: string;
  confirmLabel: string;
  /** Ask for a reason (it goes into the audit log). */
  reason?: boolean;
  danger?: boolean;
  extra?: ComponentChildren;
  run: (reason: string) => Promise<unknown>;
}

/**
 * A modal that states the effect of an action and sends it only on an explicit confirm. `onClose`
 * runs whenever it closes (the page clears its request); `onDone` after the action succeeded.
 */
export function Confirm(props: { request: ConfirmRequest | null; onClose: () => void; onDone: () => void }) {
  const [reason, setReason] = useState('');
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const first = useRef<HTMLInputElement & HTMLButtonElement>(null);
  const r = props.request;
  const { onClose } = props;
  // Escape cancels, wherever the focus is inside the dialog.
  useEffect(() => {
    if (!r) return;
    const onKey = (e: KeyboardEvent) => {
      if (e.key === 'Escape') onClose();
    };
    document.addEventListener('keydown', onKey);
    return () => document.removeEventListener('keydown', onKey);
  }, [r, onClose]);
  useEffect(() => {
    setReason('');
    setError(null);
    setBusy(false);
    if (r) setTimeout(() => first.current?.focus(), 0);
  }, [r]);
  if (!r) return null;
  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await r.run(reason.trim());
      props.onClose();
      props.onDone();
    } catch (err) {
      setError((err as Error).message);
      setBusy(false);
    }
  };
  return (
    <div class="overlay">
      <form class="dialog" role="dialog" aria-modal="true" aria-labelledby="confirm-title" onSubmit={submit}>
        <h2 id="confirm-title">{r.title}</h2>
        <p class="effect" data-testid="confirm-effect">
          {r.effect}
        </p>
        {r.extra}
        {r.reason && (
          <label class="field">
            Reason (recorded in the audit log)
            <input
              ref={first}
              name="reason"
              required
              minLength={3}
              value={reason}
              onInput={(e) => setReason((e.target as HTMLInputElement).value)}
            />
          </label>
        )}
        <ErrorNote error={error} />
        <div class="dialog-actions">
          <button type="button" onClick={() => props.onClose()}>
            Cancel
          </button>
          <button
            type="submit"
            class={r.danger ? 'danger' : 'primary'}
            disabled={busy}
            data-testid="confirm-submit"
            ref={r.reason ? undefined : first}
          >
            {busy ? 'Working…' : r.confirmLabel}
          </button>
        </div>
      </form>
    </div>
  );
}
