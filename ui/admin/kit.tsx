import { createContext, type ComponentChildren } from 'preact';
import { useCallback, useContext, useEffect, useState } from 'preact/hooks';
import { ApiError, type RequestOptions } from '../shared/api.js';
import { strings } from './strings.js';

/**
 * What every section of the operator console shares: the operator's token and the tenant being
 * looked at (in a context), a loader hook, a table, and the notices an action leaves.
 */

export interface Operator {
  /** Calls the hub's public API with the operator's token (and `x-ccid` for the tenant). */
  api: <T>(path: string, options?: Omit<RequestOptions, 'token'>) => Promise<T>;
  /** The tenant being looked at, or undefined before one exists. */
  tenant: string | undefined;
}

export const OperatorContext = createContext<Operator | undefined>(undefined);

export function useOperator(): Operator {
  const operator = useContext(OperatorContext);
  if (!operator) throw new Error('the console renders sections inside OperatorContext');
  return operator;
}

/** A path segment, encoded. */
export const seg = (value: string) => encodeURIComponent(value);

/** The message an operator reads for a failed call: the hub's code, message and field. */
export function describeError(error: unknown): string {
  if (error instanceof ApiError) return `${error.code}: ${error.message}`;
  return error instanceof Error ? error.message : String(error);
}

export interface Loaded<T> {
  data: T | undefined;
  error: string | undefined;
  loading: boolean;
  reload: () => void;
}

/** Loads `load()` now and whenever `deps` change or `reload` is called. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<string>();
  const [loading, setLoading] = useState(true);
  const [round, setRound] = useState(0);
  useEffect(() => {
    let current = true;
    setLoading(true);
    load().then(
      value => {
        if (!current) return;
        setData(value);
        setError(undefined);
        setLoading(false);
      },
      (failure: unknown) => {
        if (!current) return;
        setError(describeError(failure));
        setLoading(false);
      },
    );
    return () => {
      current = false;
    };
  }, [...deps, round]);
  const reload = useCallback(() => setRound(value => value + 1), []);
  return { data, error, loading, reload };
}

/** What an action left: a success line or the hub's error, announced to screen readers. */
export interface Notice {
  kind: 'ok' | 'error';
  text: string;
}

export function useNotice() {
  const [notice, setNotice] = useState<Notice>();
  /** Runs `action`; on success shows `done` (if any, of the result), on failure the hub's error. */
  const run = async <T,>(
    action: () => Promise<T>,
    done?: string | ((result: T) => string),
  ): Promise<boolean> => {
    setNotice(undefined);
    try {
      const result = await action();
      const text = typeof done === 'function' ? done(result) : done;
      if (text) setNotice({ kind: 'ok', text });
      return true;
    } catch (error) {
      setNotice({ kind: 'error', text: describeError(error) });
      return false;
    }
  };
  return { notice, setNotice, run };
}

export function NoticeLine({ notice }: { notice: Notice | undefined }) {
  if (!notice) return <p class="visually-hidden" role="status" aria-live="polite" />;
  return notice.kind === 'error' ? (
    <p class="alert" role="alert">
      {notice.text}
    </p>
  ) : (
    <p class="ok" role="status" aria-live="polite">
      {notice.text}
    </p>
  );
}

/** A value the hub shows once (a new API key): in a box to copy, until the operator dismisses it. */
export function ShownOnce({
  intro,
  value,
  onDismiss,
}: {
  intro: string;
  value: string;
  onDismiss: () => void;
}) {
  return (
    <div class="shown-once" role="status">
      <h3>{strings.shownOnce.heading}</h3>
      <p>{intro}</p>
      <output class="secret-value" data-testid="shown-once">
        {value}
      </output>
      <button type="button" onClick={onDismiss}>
        {strings.shownOnce.dismiss}
      </button>
    </div>
  );
}

export interface Column<Row> {
  label: string;
  cell: (row: Row) => ComponentChildren;
}

/** A table of rows, with the loading and empty states. */
export function Table<Row>({
  caption,
  rows,
  columns,
  rowKey,
  loaded,
}: {
  caption: string;
  rows: readonly Row[] | undefined;
  columns: Column<Row>[];
  rowKey: (row: Row) => string | number;
  loaded: Pick<Loaded<unknown>, 'error' | 'loading'>;
}) {
  if (loaded.error) {
    return (
      <p class="alert" role="alert">
        {loaded.error}
      </p>
    );
  }
  if (!rows) return <p class="muted">{strings.loading}</p>;
  if (rows.length === 0) return <p class="muted">{strings.empty}</p>;
  return (
    <div class="table-wrap">
      <table>
        <caption class="visually-hidden">{caption}</caption>
        <thead>
          <tr>
            {columns.map(column => (
              <th scope="col" key={column.label}>
                {column.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map(row => (
            <tr key={rowKey(row)}>
              {columns.map(column => (
                <td key={column.label}>{column.cell(row)}</td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** An ISO time as the operator's locale shows it. */
export const when = (value: string | null | undefined) =>
  value ? new Date(value).toLocaleString() : '—';

/** Parses a JSON field of a form, or throws naming it. */
export function parseJson(text: string, field: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new Error(strings.badJson(field));
  }
}

/** A labelled multi-line field (JSON bodies). */
export function Area({
  label,
  name,
  value,
  onValue,
  rows = 6,
  hint,
}: {
  label: string;
  name: string;
  value: string;
  onValue: (value: string) => void;
  rows?: number;
  hint?: string;
}) {
  const hintId = hint ? `${name}-hint` : undefined;
  return (
    <label>
      {label}
      <textarea
        name={name}
        rows={rows}
        spellcheck={false}
        value={value}
        aria-describedby={hintId}
        onInput={event => onValue(event.currentTarget.value)}
      />
      {hint && (
        <span id={hintId} class="muted">
          {hint}
        </span>
      )}
    </label>
  );
}

/** A datetime-local input's value as an ISO instant (the browser's zone), or undefined. */
export const isoFromLocal = (value: string) => (value ? new Date(value).toISOString() : undefined);

/** A row's Edit and Delete buttons, each named after the row for screen readers. */
export function RowActions({
  name,
  onEdit,
  onDelete,
}: {
  name: string;
  onEdit?: () => void;
  onDelete?: () => void;
}) {
  return (
    <span class="bar">
      {onEdit && (
        <button
          type="button"
          class="secondary"
          onClick={onEdit}
          aria-label={`${strings.edit} ${name}`}
        >
          {strings.edit}
        </button>
      )}
      {onDelete && (
        <button
          type="button"
          class="danger"
          onClick={onDelete}
          aria-label={`${strings.delete} ${name}`}
        >
          {strings.delete}
        </button>
      )}
    </span>
  );
}

/**
 * Asks the operator to confirm, then DELETEs `path` and reloads `loaded`, the outcome in the
 * section's notice.
 */
export function confirmDelete(
  operator: Operator,
  run: ReturnType<typeof useNotice>['run'],
  name: string,
  path: string,
  loaded: Pick<Loaded<unknown>, 'reload'>,
): void {
  if (!confirm(strings.confirmDelete(name))) return;
  void run(async () => {
    await operator.api(path, { method: 'DELETE' });
    loaded.reload();
  }, strings.deleted(name));
}
