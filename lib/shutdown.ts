import type { Logger } from './logger.js';

/**
 * Ordered, memoised shutdown. Steps run in the order they were added (stop intake first, close
 * connections last); a failing step is logged and the next one still runs.
 */
export class Shutdown {
  private readonly steps: { name: string; run: () => Promise<unknown> }[] = [];
  private closing: Promise<void> | undefined;

  constructor(private readonly log: Logger) {}

  /** Adds a step; steps run in insertion order. */
  add(name: string, run: () => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  get started(): boolean {
    return this.closing !== undefined;
  }

  run(reason: string): Promise<void> {
    this.closing ??= (async () => {
      this.log.info({ reason }, 'shutting down');
      for (const step of this.steps) {
        const started = Date.now();
        try {
          await step.run();
          this.log.debug({ step: step.name, ms: Date.now() - started }, 'shutdown step done');
        } catch (error) {
          this.log.error({ err: error, step: step.name }, 'shutdown step failed');
        }
      }
      this.log.info('shutdown complete');
    })();
    return this.closing;
  }

  /**
   * SIGTERM / SIGINT start a graceful shutdown and exit 0 when it ends; a second signal exits
   * at once with 1.
   */
  installSignalHandlers(exit: (code: number) => void = code => process.exit(code)): void {
    const onSignal = (signal: NodeJS.Signals) => {
      if (this.started) {
        this.log.warn({ signal }, 'second signal: exiting now');
        exit(1);
        return;
      }
      this.run(signal).then(
        () => exit(0),
        () => exit(1),
      );
    };
    process.on('SIGTERM', onSignal);
    process.on('SIGINT', onSignal);
  }
}

/** Resolves after `ms`, without keeping the process alive. */
export const sleep = (ms: number) => new Promise<void>(resolve => setTimeout(resolve, ms).unref());
