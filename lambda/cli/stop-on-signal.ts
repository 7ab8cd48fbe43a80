/**
 * Long-running commands (serve, proxy) stop cleanly on SIGINT or SIGTERM: finish in-flight requests
 * through `close`, then exit 0. A second signal while closing is ignored rather than killing mid-close.
 */
export function stopOnSignal(running: { close(): Promise<void> }): void {
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`dcv-resolver: ${signal}, shutting down\n`);
    running.close().then(() => process.exit(0));
  };
  process.once('SIGINT', () => stop('SIGINT'));
  process.once('SIGTERM', () => stop('SIGTERM'));
}
