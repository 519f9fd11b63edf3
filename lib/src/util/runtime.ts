/** Facts about the running process that lower layers need without importing the presentation layer. */

/** True when running inside a tslab (Jupyter) kernel. */
export function inNotebook(): boolean {
  return Object.keys(require.cache).some((k) => /[\\/]tslab[\\/]dist[\\/]jupyter\.js$/.test(k));
}
