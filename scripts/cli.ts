/** Shared CLI plumbing: run an async main, print errors as one clear line, exit non-zero. */
export function runMain(main: () => Promise<void>): void {
  main().catch((e: unknown) => {
    const msg = e instanceof Error ? e.message : String(e);
    console.error(`error: ${msg}`);
    if (process.env.RIFT_DEBUG) console.error(e);
    process.exit(1);
  });
}
